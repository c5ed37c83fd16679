//! `apart check` and `apart fix`: every manifest goes through the policy module's `validate`
//! exactly as policy-server would send it, then the set-level checks run over the whole set.
//!
//! What a part's check is, how findings are placed and what a run keeps are the library's
//! ([`apart_policy::report`], shared with the JS build); this module is the CLI's pipeline
//! around it, over files and module instances.
//!
//! The run is a pipeline, so that time grows with the input and memory does not:
//! - a reader thread takes the inputs in order and reads each piece by piece (a file is never
//!   held whole), cutting it into parts of whole documents of about [`PART_BYTES`]
//!   ([`read::chunks`]: a line scan, no parsing);
//! - workers (one per core, each with its own warm module instance) read a part, find its
//!   objects, send each to `validate`, and turn the findings' paths into lines from the
//!   positions taken while reading; for `fix`, they also rewrite the document in place;
//! - this thread puts the answers back in input order and keeps, per object, only what the
//!   set-level checks and the summary need (the pods' namespaces and labels, a few flags):
//!   objects and texts are dropped as soon as they are answered.
//!
//! The first input error in input order ends the run (exit 2). `apart check` prints each
//! input's findings once the input is answered (a sink), so memory stays flat in the number
//! of findings too; `apart fix` prints nothing before every input is read and repaired.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use apart_policy::admission::FINDINGS_ANNOTATION;
use apart_policy::report::{self as engine, Answer, FileRecord, Part, PartText};
use apart_policy::source::read::{self, Chunk};
use apart_policy::{Finding, SetFacts};
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::host::evaluator::{Evaluator, Worker};
use crate::manifests::{self, Input, Source};

pub use apart_policy::report::outcome::point_at;
pub use apart_policy::report::{
    Edit, ObjectRecord, Outcome, Policies, Reported, Retained, Tally, request_bytes,
};

/// Reads and checks policy files (`builtin:NAME` is a shipped rule file).
pub fn read_policies(paths: &[PathBuf]) -> Result<Policies, Diagnostic> {
    if paths.is_empty() {
        return Err(Diagnostic::Usage(
            "no policy: pass -p POLICY.yaml".to_owned(),
        ));
    }
    let sources = crate::commands::rules::policy_sources(paths)?;
    Ok(Policies::from_sources(sources)?)
}

/// Where findings go as each part of an input is answered, instead of into
/// [`Outcome::findings`].
pub type Sink<'a> = &'a mut dyn FnMut(&[Reported]) -> Result<(), Diagnostic>;

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Namespace of objects that name none.
    pub default_namespace: &'a str,
    /// Workers (each with its own module instance).
    pub jobs: usize,
    /// Compute `fix`'s rewrites.
    pub fix: bool,
    /// Keep every object and its repair in the outcome.
    pub retain: bool,
}

impl Options<'_> {
    /// As many workers as the machine has cores.
    pub fn default_jobs() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    }

    fn engine(&self) -> engine::Options<'_> {
        engine::Options {
            default_namespace: self.default_namespace,
            fix: self.fix,
            retain: self.retain,
        }
    }
}

/// A module instance as the check's [`engine::Validator`]: the SDK's response read back
/// into the engine's findings (they travel in the audit annotation).
struct ModuleValidator<'w>(&'w mut dyn Worker);

impl engine::Validator for ModuleValidator<'_> {
    fn validate(&mut self, request: &[u8]) -> Result<Answer, String> {
        let response = self.0.validate(request).map_err(|e| e.to_string())?;
        let findings: Vec<Finding> = match response
            .audit_annotations
            .as_ref()
            .and_then(|a| a.get(FINDINGS_ANNOTATION))
        {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format!("the module's findings annotation is not valid: {e}"))?,
            None => Vec::new(),
        };
        Ok(Answer {
            accepted: response.accepted,
            message: response.message,
            findings,
            mutated: response.mutated_object,
        })
    }
}

/// [`request_bytes`] as a value (for tests that send the request themselves).
pub fn validation_request(
    uid: usize,
    object: &Value,
    default_namespace: &str,
    settings: &Value,
) -> Value {
    let json = serde_json::to_vec(object).unwrap_or_default();
    let settings = serde_json::to_vec(settings).unwrap_or_default();
    serde_json::from_slice(&request_bytes(
        uid,
        object,
        &json,
        default_namespace,
        &settings,
    ))
    .unwrap_or_default()
}

/// Runs the policies over sources already read, keeping every object (tests and callers
/// that compare object by object).
pub fn run(
    evaluator: &(dyn Evaluator + Sync),
    policies: &Policies,
    sources: &[Source],
    default_namespace: &str,
) -> Result<Outcome, Diagnostic> {
    let inputs: Vec<Input> = sources.iter().map(Input::from).collect();
    run_inputs(
        evaluator,
        policies,
        &inputs,
        Options {
            default_namespace,
            jobs: Options::default_jobs(),
            fix: true,
            retain: true,
        },
        None,
    )
}

/// The least a part holds (whole documents; a larger document is a part of its own): enough
/// that handing parts to workers costs little beside reading them, little enough that a file
/// streams through the workers.
pub const PART_BYTES: usize = 64 * 1024;

/// What the reader and the workers tell the collector.
enum Message {
    /// An input was read to its end, in `chunks` parts, `len` bytes.
    File {
        file: usize,
        chunks: usize,
        len: usize,
    },
    /// A part was answered, or (from the reader) could not be read.
    Part {
        file: usize,
        chunk: usize,
        answer: Result<Part, Diagnostic>,
    },
}

/// A part to answer.
struct Job {
    file: usize,
    chunk_index: usize,
    /// The part's documents in `text`, and the line `text` starts on.
    chunk: Chunk,
    name: Arc<str>,
    /// The part's text only.
    text: Arc<str>,
    /// Where `text` starts in the input.
    offset: usize,
    explicit: bool,
}

/// What the workers share.
struct Shared<'a> {
    policies: &'a Policies,
    settings: Vec<u8>,
    options: Options<'a>,
    abort: AtomicBool,
}

/// Runs the policies over the inputs (the pipeline described at the top of this file); with a
/// sink, each input's findings go to it as soon as the input is answered.
///
/// The settings are checked (`validate_settings`, as policy-server does before it serves a
/// policy) on each worker's own instance, before any input is read: the guest keeps what it
/// compiled, so the workers' `validate` calls reuse it, and the settings are compiled once
/// per worker, not once more for the check. With many policies or a large one, a compile is
/// most of a run's cost.
pub fn run_inputs(
    evaluator: &(dyn Evaluator + Sync),
    policies: &Policies,
    inputs: &[Input],
    options: Options<'_>,
    sink: Option<Sink<'_>>,
) -> Result<Outcome, Diagnostic> {
    let shared = Shared {
        policies,
        settings: policies.settings(),
        options,
        abort: AtomicBool::new(false),
    };
    let jobs = options.jobs.max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(jobs * 4);
    let job_rx = Mutex::new(job_rx);
    let (tx, rx) = mpsc::sync_channel::<Message>(jobs * 16);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), Diagnostic>>();
    std::thread::scope(|scope| {
        let shared_ref = &shared;
        for _ in 0..jobs {
            let tx = tx.clone();
            let ready_tx = ready_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || {
                let mut worker = evaluator.worker();
                let ready = settings_verdict(worker.as_mut(), &shared_ref.settings);
                let refused = ready.is_err();
                if ready_tx.send(ready).is_err() || refused {
                    return;
                }
                // Until the reader is done: after an abort, jobs are taken and dropped, so the
                // reader never waits on a full queue nobody empties.
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if shared_ref.abort.load(Ordering::Relaxed) {
                        continue;
                    }
                    let answer = answer_job(&job, worker.as_mut(), shared_ref);
                    let message = Message::Part {
                        file: job.file,
                        chunk: job.chunk_index,
                        answer,
                    };
                    if tx.send(message).is_err() {
                        shared_ref.abort.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        drop(ready_tx);
        // Every worker's verdict before any input is read: refused settings end the run
        // before anything is printed. Returning drops the job queue, which ends the workers.
        for _ in 0..jobs {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(Diagnostic::Module(
                        "internal: a worker ended before checking the settings".to_owned(),
                    ));
                }
            }
        }
        let reader_tx = tx.clone();
        scope.spawn(move || read_inputs(inputs, shared_ref, &job_tx, &reader_tx));
        drop(tx);
        let collected = collect(rx, inputs, &shared, sink);
        // Stop the reader and the workers early when the run ended with an error.
        shared.abort.store(true, Ordering::Relaxed);
        collected
    })
}

/// The module's verdict on the settings, on a worker's instance.
fn settings_verdict(worker: &mut dyn Worker, settings: &[u8]) -> Result<(), Diagnostic> {
    let answer = worker
        .validate_settings(settings)
        .map_err(|e| Diagnostic::Module(e.to_string()))?;
    if answer.valid {
        Ok(())
    } else {
        Err(Diagnostic::Module(format!(
            "the module refused the policies: {}",
            answer.message.unwrap_or_default()
        )))
    }
}

/// The reader: inputs in order, each read piece by piece and cut into parts sent to the
/// workers.
fn read_inputs(
    inputs: &[Input],
    shared: &Shared<'_>,
    jobs: &mpsc::SyncSender<Job>,
    collector: &mpsc::SyncSender<Message>,
) {
    for (file, input) in inputs.iter().enumerate() {
        if shared.abort.load(Ordering::Relaxed) {
            return;
        }
        let message = match send_parts(file, input, shared, jobs) {
            Ok(Some((chunks, len))) => Message::File { file, chunks, len },
            // The workers are gone: the run is over.
            Ok(None) => return,
            Err((chunk, error)) => Message::Part {
                file,
                chunk,
                answer: Err(error),
            },
        };
        let failed = matches!(message, Message::Part { .. });
        if collector.send(message).is_err() || failed {
            return;
        }
    }
}

/// Reads one input and sends its parts: their number and the input's length, `None` when the
/// workers are gone, or the part that could not be read and why.
fn send_parts(
    file: usize,
    input: &Input,
    shared: &Shared<'_>,
    jobs: &mpsc::SyncSender<Job>,
) -> Result<Option<(usize, usize)>, (usize, Diagnostic)> {
    let name: Arc<str> = Arc::from(input.name());
    let mut reader = input.open().map_err(|e| (0, e))?;
    // Bytes read and not yet sent, which start at `offset` on `line`.
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut line = 1;
    let mut parts = 0;
    let mut json = None;
    let mut at_end = false;
    while !at_end {
        // Read at least a part's worth, and as much again as is pending (a large document
        // is then scanned a logarithmic number of times, not once per piece).
        let want = PART_BYTES.max(pending.len());
        let got = (&mut reader)
            .take(u64::try_from(want).unwrap_or(u64::MAX))
            .read_to_end(&mut pending)
            .map_err(|e| (parts, input.read_error(&e)))?;
        at_end = got == 0;
        // A JSON text is one part (its documents are not cut at lines).
        if json.is_none() {
            json = match pending.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{' | b'[') => Some(true),
                Some(_) => Some(false),
                None => None,
            };
        }
        if !at_end && json != Some(false) {
            continue;
        }
        // Whole lines only, until the end: a document marker is a line's start.
        let complete = if at_end {
            pending.len()
        } else {
            match pending.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let bytes = pending.get(..complete).unwrap_or_default();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let error = manifests::not_utf8(&name, bytes, e.valid_up_to(), line, offset);
            (parts, error)
        })?;
        // Send the documents read whole; the last one may go on past what was read.
        let cut = if at_end {
            complete
        } else {
            match read::chunks(text).last() {
                Some(last) if last.range.start >= PART_BYTES => last.range.start,
                _ => continue,
            }
        };
        let part_text = text.get(..cut).unwrap_or_default();
        if !part_text.is_empty() {
            let job = Job {
                file,
                chunk_index: parts,
                chunk: Chunk {
                    range: 0..cut,
                    line,
                },
                name: Arc::clone(&name),
                text: Arc::from(part_text),
                offset,
                explicit: input.explicit(),
            };
            line += part_text.bytes().filter(|b| *b == b'\n').count();
            if shared.abort.load(Ordering::Relaxed) || jobs.send(job).is_err() {
                return Ok(None);
            }
            parts += 1;
        }
        pending.drain(..cut);
        offset += cut;
    }
    Ok(Some((parts, offset)))
}

/// Puts the answers back in input order.
fn collect(
    rx: mpsc::Receiver<Message>,
    inputs: &[Input],
    shared: &Shared<'_>,
    mut sink: Option<Sink<'_>>,
) -> Result<Outcome, Diagnostic> {
    let mut outcome = Outcome::default();
    let mut set = SetFacts::default();
    // Per input: its part count and length once read to its end; the parts answered so far
    // that cannot be taken yet (an earlier one is still being answered).
    let mut expected: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut parts: BTreeMap<(usize, usize), Result<Part, Diagnostic>> = BTreeMap::new();
    let mut next_file = 0;
    let mut next_chunk = 0;
    let mut file_record: Option<FileRecord> = None;
    while next_file < inputs.len() {
        let Ok(message) = rx.recv() else { break };
        match message {
            Message::File { file, chunks, len } => {
                expected.insert(file, (chunks, len));
            }
            Message::Part {
                file,
                chunk,
                answer,
            } => {
                parts.insert((file, chunk), answer);
            }
        }
        // Move on as far as the order allows.
        while next_file < inputs.len() {
            let record = file_record.get_or_insert_with(|| {
                FileRecord::new(inputs.get(next_file).map(Input::name).unwrap_or_default())
            });
            if let Some(answer) = parts.remove(&(next_file, next_chunk)) {
                let findings = outcome.absorb(
                    next_file,
                    record,
                    answer?,
                    &mut set,
                    shared.options.engine(),
                );
                // Objects come in the order of their lines, each one's findings by line.
                hand_on(&mut outcome, findings, &mut sink)?;
                next_chunk += 1;
                continue;
            }
            let Some(&(chunks, len)) = expected.get(&next_file) else {
                break;
            };
            if next_chunk < chunks {
                break;
            }
            // The input is complete: its findings by line, then the next input.
            record.len = len;
            outcome.files.extend(file_record.take());
            expected.remove(&next_file);
            next_file += 1;
            next_chunk = 0;
        }
    }
    if next_file < inputs.len() {
        return Err(Diagnostic::Module(
            "internal: the check pipeline stopped before its end".to_owned(),
        ));
    }
    let set_findings = outcome.finish(shared.policies, &set);
    hand_on(&mut outcome, set_findings, &mut sink)?;
    Ok(outcome)
}

/// Counts findings and hands them on: to the sink, or into the outcome.
fn hand_on(
    outcome: &mut Outcome,
    findings: Vec<Reported>,
    sink: &mut Option<Sink<'_>>,
) -> Result<(), Diagnostic> {
    match sink {
        Some(sink) => {
            outcome.tally_findings(&findings);
            sink(&findings)
        }
        None => {
            outcome.take(findings);
            Ok(())
        }
    }
}

/// A worker's answer for one part: the library's check of the part's text, each object
/// through this worker's module instance.
fn answer_job(job: &Job, worker: &mut dyn Worker, shared: &Shared<'_>) -> Result<Part, Diagnostic> {
    let text = PartText {
        name: &job.name,
        text: &job.text,
        chunk: job.chunk.clone(),
        offset: job.offset,
        explicit: job.explicit,
    };
    let mut validator = ModuleValidator(worker);
    Ok(engine::answer_part(
        &text,
        &mut validator,
        shared.policies,
        &shared.settings,
        shared.options.engine(),
    )?)
}
