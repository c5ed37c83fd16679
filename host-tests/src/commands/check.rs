//! `apart check` and `apart fix`: every manifest goes through the policy module's `validate`
//! exactly as policy-server would send it, then the set-level checks run over the whole set.
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
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use apart_policy::admission::FINDINGS_ANNOTATION;
use apart_policy::source::edit;
use apart_policy::source::manifest::{self, Contents, Unrendered};
use apart_policy::source::path::JsonPath;
use apart_policy::source::read::{self, Chunk, Position};
use apart_policy::{Finding, ObjectRef, PatchOp, PolicySet, SetFacts, SetMember, Severity};
use serde::Serialize;
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::host::evaluator::{Evaluator, Worker};
use crate::manifests::{self, Input, Source, input_error};

/// Policies read from files, with where each came from.
#[derive(Debug)]
pub struct Policies {
    /// The compiled set.
    pub set: PolicySet,
    /// The policy files.
    pub sources: Vec<Source>,
    /// For each policy: (source index, document index).
    pub origins: Vec<(usize, usize)>,
    /// For each policy: where the nodes that set findings name are (its peer groups), kept
    /// from the reading so that reporting them does not read the policy files again.
    set_spans: Vec<Vec<SetSpan>>,
}

/// A path a set finding may name (as findings write it) and where its node is.
type SetSpan = (String, Option<(Position, Position)>);

impl Policies {
    /// Reads and checks policy files.
    pub fn read(paths: &[PathBuf]) -> Result<Self, Diagnostic> {
        if paths.is_empty() {
            return Err(Diagnostic::Usage(
                "no policy: pass -p POLICY.yaml".to_owned(),
            ));
        }
        // `builtin:NAME` is a shipped rule file.
        let sources = crate::commands::rules::policy_sources(paths)?;
        let mut set = PolicySet::default();
        let mut origins = Vec::new();
        let mut set_spans = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            let keep = |policy: &apart_policy::Policy, document: &read::Document| {
                set_spans.push(set_finding_spans(policy, &document.positions));
            };
            for doc in set.parse_into_with(&src.text, &src.name, keep)? {
                origins.push((i, doc));
            }
        }
        Ok(Self {
            set,
            sources,
            origins,
            set_spans,
        })
    }

    /// The Kubewarden settings carrying these policies.
    pub fn settings(&self) -> Vec<u8> {
        self.set.settings().to_string().into_bytes()
    }

    /// Set findings as the CLI reports them, each with its policy's file and the position of
    /// its path in the policy's document: kept from the reading for the paths set findings
    /// name (one finding per policy is common: `peers-not-found` in a set without the
    /// peers); for any other path, each policy file is read again at most once, only as far
    /// as its last document with such a finding.
    fn locate(&self, findings: Vec<Finding>) -> Vec<Reported> {
        let index: std::collections::HashMap<&str, usize> = self
            .set
            .policies()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        // The origin of each finding's policy, and the documents each source must be read for.
        let origins: Vec<Option<(usize, usize)>> = findings
            .iter()
            .map(|f| {
                index
                    .get(f.policy.as_str())
                    .and_then(|i| self.origins.get(*i))
                    .copied()
                    .filter(|(s, _)| *s < self.sources.len())
            })
            .collect();
        let mut spans: Vec<Option<(Position, Position)>> = vec![None; findings.len()];
        let mut wanted: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (at, (f, origin)) in findings.iter().zip(&origins).enumerate() {
            let kept = index
                .get(f.policy.as_str())
                .and_then(|i| self.set_spans.get(*i))
                .and_then(|kept| kept.iter().find(|(path, _)| *path == f.path));
            match (kept, origin) {
                (Some((_, span)), _) => {
                    if let Some(slot) = spans.get_mut(at) {
                        *slot = *span;
                    }
                }
                (None, Some(origin)) => wanted.entry(*origin).or_default().push(at),
                (None, None) => {}
            }
        }
        let paths: Vec<JsonPath> = findings
            .iter()
            .map(|f| JsonPath::parse(&f.path).unwrap_or_default())
            .collect();
        for (src_index, src) in self.sources.iter().enumerate() {
            let mut docs: Vec<(usize, &Vec<usize>)> = wanted
                .range((src_index, 0)..=(src_index, usize::MAX))
                .map(|((_, doc), at)| (*doc, at))
                .collect();
            let Some(&(last, _)) = docs.last() else {
                continue;
            };
            docs.reverse();
            for document in read::documents(&src.text).map_while(Result::ok) {
                while docs.last().is_some_and(|(doc, _)| *doc < document.index) {
                    docs.pop();
                }
                if let Some((_, at)) = docs.last().filter(|(doc, _)| *doc == document.index) {
                    for &i in *at {
                        if let (Some(slot), Some(path)) = (spans.get_mut(i), paths.get(i)) {
                            *slot = point_at(&document.positions, path);
                        }
                    }
                }
                if document.index >= last {
                    break;
                }
            }
        }
        findings
            .into_iter()
            .zip(origins)
            .zip(spans)
            .map(|((f, origin), span)| {
                let file = origin
                    .and_then(|(s, _)| self.sources.get(s))
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                report(f, &file, span, None)
            })
            .collect()
    }
}

/// Where the nodes a set finding about `policy` names are in its document: its peer groups
/// (`peers-not-found` points at `$.spec.apartFrom[i]`), by the path as findings write it.
fn set_finding_spans(policy: &apart_policy::Policy, positions: &read::Positions) -> Vec<SetSpan> {
    (0..policy.peers.len())
        .map(|g| {
            let path = JsonPath::root().name("spec").name("apartFrom").index(g);
            let span = point_at(positions, &path);
            (path.to_string(), span)
        })
        .collect()
}

/// A finding as the CLI reports it: the engine's finding plus file and position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reported {
    /// Stable code.
    pub code: apart_policy::Code,
    /// Severity.
    pub severity: Severity,
    /// Policy name.
    pub policy: String,
    /// The object.
    pub object: ObjectRef,
    /// The file.
    pub file: String,
    /// The line of the node the path names (its key), or of its nearest written parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The column of that node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// JSONPath inside the object.
    pub path: String,
    /// What to do.
    pub message: String,
    /// The repair, for mutate rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Vec<PatchOp>>,
    /// Where the node's text ends (for reports that mark a region).
    #[serde(skip)]
    pub end: Option<Position>,
    /// Index of the object it is about (none for set findings).
    #[serde(skip)]
    pub manifest: Option<usize>,
}

/// Where a finding about `path` points: the node's key when the node is written (the
/// `labelSelector:` line, not its first child), else the body of its nearest written parent,
/// where the missing field belongs.
pub fn point_at(positions: &read::Positions, path: &JsonPath) -> Option<(Position, Position)> {
    let (span, depth) = positions.nearest(path)?;
    let start = if depth == path.segments().len() {
        span.start()
    } else {
        span.value.start
    };
    Some((start, span.value.end))
}

fn report(
    f: Finding,
    file: &str,
    at: Option<(Position, Position)>,
    manifest: Option<usize>,
) -> Reported {
    let start = at.map(|(start, _)| start);
    Reported {
        code: f.code,
        severity: f.severity,
        policy: f.policy,
        object: f.object,
        file: file.to_owned(),
        line: start.map(|p| p.line),
        column: start.map(|p| p.column),
        path: f.path,
        message: f.message,
        fix: f.fix,
        end: at.map(|(_, end)| end),
        manifest,
    }
}

/// One object of a run: where it is, and what became of it.
#[derive(Debug, Clone)]
pub struct ObjectRecord {
    /// Index of its input.
    pub file: usize,
    /// Which document of the input.
    pub document: usize,
    /// Where it is inside its document (`$`, or `$.items[i]` in a List).
    pub base: JsonPath,
    /// Its first line.
    pub line: usize,
    /// Admitted (after repairs)?
    pub accepted: bool,
    /// Did a mutate rule change it?
    pub mutated: bool,
    /// Its type and name, as written.
    pub object: ObjectRef,
    /// The policies (indices) whose subjects it holds.
    pub subject_of: Vec<usize>,
}

/// An object and its repair, kept when [`Options::retain`] asks (tests, the differential).
#[derive(Debug, Clone)]
pub struct Retained {
    /// The object as read.
    pub value: Value,
    /// The repaired object.
    pub mutated: Option<Value>,
}

/// A rewrite of one document's lines, for `fix`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edit {
    /// The bytes of the input it replaces.
    pub range: Range<usize>,
    /// The new text.
    pub text: String,
    /// True when the document could not be edited in place and was written anew (its
    /// comments are lost).
    pub reformatted: bool,
    /// The lines it replaces (1-based, inclusive), and the column just past the end of the
    /// last one (for reports that describe the edit as a region).
    pub lines: (usize, usize),
    /// See `lines`.
    pub end_column: usize,
    /// The document of its input it rewrites.
    pub document: usize,
}

/// One input of a run.
#[derive(Debug, Clone)]
pub struct FileRecord {
    /// Its name.
    pub name: String,
    /// Its length, to notice a file that changed between `fix`'s reading and writing.
    pub len: usize,
    /// Objects read from it.
    pub objects: usize,
    /// The rewrites `fix` makes, in order.
    pub edits: Vec<Edit>,
}

/// How many of what a run saw (kept whether or not the findings and objects are).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Objects checked.
    pub objects: usize,
    /// Error findings.
    pub errors: usize,
    /// Warning findings.
    pub warnings: usize,
    /// Objects a mutate rule changed.
    pub mutated: usize,
}

/// Where findings go as each part of an input is answered, instead of into
/// [`Outcome::findings`].
pub type Sink<'a> = &'a mut dyn FnMut(&[Reported]) -> Result<(), Diagnostic>;

/// The result of running the policies over a manifest set.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The counts.
    pub tally: Tally,
    /// Every finding, unless a sink took them: object findings in input order (objects in
    /// the order of their lines, each one's findings by line); then set findings.
    pub findings: Vec<Reported>,
    /// Every object, in input order, for `fix` and when retained (a plain check only counts
    /// them).
    pub objects: Vec<ObjectRecord>,
    /// Every input, in order.
    pub files: Vec<FileRecord>,
    /// The objects themselves, when retained, parallel to `objects`.
    pub retained: Vec<Retained>,
    /// Warnings for the user: skipped folders and documents, an input with no object.
    pub notes: Vec<String>,
}

impl Outcome {
    /// Number of findings of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        match severity {
            Severity::Error => self.tally.errors,
            Severity::Warning => self.tally.warnings,
        }
    }

    /// Number of objects a mutate rule changed.
    pub fn mutated(&self) -> usize {
        self.tally.mutated
    }

    /// Counts findings and hands them on: to the sink, or into the outcome.
    fn take(
        &mut self,
        findings: &mut Vec<Reported>,
        sink: &mut Option<Sink<'_>>,
    ) -> Result<(), Diagnostic> {
        for f in findings.iter() {
            match f.severity {
                Severity::Error => self.tally.errors += 1,
                Severity::Warning => self.tally.warnings += 1,
            }
        }
        match sink {
            Some(sink) => {
                sink(findings)?;
                findings.clear();
            }
            None => self.findings.append(findings),
        }
        Ok(())
    }

    /// Error findings a repair does not remove: on objects still refused after their repairs
    /// (validate-only rules, repairs apart cannot make), and set findings of error severity.
    pub fn unrepaired(&self) -> Vec<&Reported> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .filter(|f| {
                f.manifest
                    .and_then(|m| self.objects.get(m))
                    .is_none_or(|o| !o.accepted)
            })
            .collect()
    }
}

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
}

/// Writes the `ValidationRequest` policy-server sends for creating an object, around the
/// object's JSON text (written once, and reused for the set-level checks).
pub fn request_bytes(
    uid: usize,
    object: &Value,
    object_json: &[u8],
    default_namespace: &str,
    settings: &[u8],
) -> Vec<u8> {
    fn text<'v>(v: &'v Value, key: &str) -> &'v str {
        v.get(key).and_then(Value::as_str).unwrap_or_default()
    }
    let api_version = text(object, "apiVersion");
    let kind = text(object, "kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let metadata = object.get("metadata").unwrap_or(&Value::Null);
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_namespace);
    let name = text(metadata, "name");
    let quote = |s: &str| Value::String(s.to_owned()).to_string();
    let gvk = format!(
        r#"{{"group":{},"version":{},"kind":{}}}"#,
        quote(group),
        quote(version),
        quote(kind)
    );
    let gvr = format!(
        r#"{{"group":{},"version":{},"resource":{}}}"#,
        quote(group),
        quote(version),
        quote(&format!("{}s", kind.to_lowercase()))
    );
    let mut out = Vec::with_capacity(object_json.len() + settings.len() + 512);
    out.extend_from_slice(
        format!(
            r#"{{"request":{{"uid":"apart-{uid}","kind":{gvk},"resource":{gvr},"requestKind":{gvk},"requestResource":{gvr},"name":{},"namespace":{},"operation":"CREATE","userInfo":{{"username":"apart","groups":["system:authenticated"]}},"object":"#,
            quote(name),
            quote(namespace)
        )
        .as_bytes(),
    );
    out.extend_from_slice(object_json);
    out.extend_from_slice(
        br#","oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}},"settings":"#,
    );
    out.extend_from_slice(settings);
    out.push(b'}');
    out
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

/// What a worker found in one part.
#[derive(Default)]
struct Part {
    objects: Vec<Answered>,
    notes: Vec<String>,
    edits: Vec<Edit>,
}

/// One object, answered.
struct Answered {
    document: usize,
    base: JsonPath,
    line: usize,
    findings: Vec<Reported>,
    accepted: bool,
    changed: bool,
    mutated: Option<Value>,
    value: Option<Value>,
    object: ObjectRef,
    member: SetMember,
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
                    let answer = answer_part(&job, worker.as_mut(), shared_ref);
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

/// A worker's answer for one part: its objects through `validate`, findings with positions,
/// and (for `fix`) the document's rewrite.
fn answer_part(
    job: &Job,
    worker: &mut dyn Worker,
    shared: &Shared<'_>,
) -> Result<Part, Diagnostic> {
    let mut part = Part::default();
    let name = &*job.name;
    for document in read::chunk_documents(&job.text, &job.chunk) {
        let document = document.map_err(|e| {
            let e = manifest::syntax_error(&job.text, job.chunk.line, e);
            input_error(name, e.position, e.message)
        })?;
        let positions = document.positions.clone();
        let lines = document.lines(&job.text);
        let document_index = document.index;
        let whole = shared.options.fix.then(|| document.value.clone());
        let objects = match manifest::contents(document, name)
            .map_err(|e| input_error(name, e.position, e.message))?
        {
            Contents::Objects(objects) => objects,
            // Named by the user: an error. Met in a folder: another tool's file, or one to
            // render first; skipped with a warning.
            Contents::Unrendered(Unrendered { position, message })
            | Contents::Foreign(Unrendered { position, message }) => {
                if job.explicit {
                    return Err(input_error(name, position, message));
                }
                part.notes
                    .push(format!("{name}:{}: skipped: {message}", position.line));
                continue;
            }
        };
        let mut repairs: Vec<(JsonPath, Vec<PatchOp>, Value)> = Vec::new();
        for object in objects {
            let object_json = serde_json::to_vec(&object.value).unwrap_or_default();
            let request = request_bytes(
                0,
                &object.value,
                &object_json,
                shared.options.default_namespace,
                &shared.settings,
            );
            let response = worker.validate(&request).map_err(|e| {
                // A deadline or memory limit hit names the object, so that the user knows
                // which one to split or raise the limit for.
                let kind = object.value.get("kind").and_then(Value::as_str);
                let id = object
                    .value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str);
                Diagnostic::Module(format!(
                    "{name}:{}: {} {}: {e}",
                    object.start.line,
                    kind.unwrap_or("object"),
                    id.unwrap_or("(unnamed)"),
                ))
            })?;
            let findings: Vec<Finding> = match response
                .audit_annotations
                .as_ref()
                .and_then(|a| a.get(FINDINGS_ANNOTATION))
            {
                Some(json) => serde_json::from_str(json).map_err(|e| {
                    Diagnostic::Module(format!(
                        "the module's findings annotation is not valid: {e}"
                    ))
                })?,
                None => Vec::new(),
            };
            if !response.accepted && findings.is_empty() {
                // Not about the rules: the module could not read the object.
                return Err(input_error(
                    name,
                    object.start,
                    response
                        .message
                        .unwrap_or_else(|| "rejected without a message".to_owned()),
                ));
            }
            let mut reported: Vec<Reported> = findings
                .into_iter()
                .map(|f| {
                    let at = JsonPath::parse(&f.path)
                        .ok()
                        .and_then(|p| point_at(&positions, &object.base.join(&p)));
                    report(f, name, at, None)
                })
                .collect();
            reported.sort_by_key(|f| (f.line, f.column));
            if let Some(mutated) = &response.mutated_object {
                let ops = ops_of(&reported);
                repairs.push((object.base.clone(), ops, mutated.clone()));
            }
            let member = shared
                .policies
                .set
                .set_member(&object_json, shared.options.default_namespace);
            part.objects.push(Answered {
                object: object_ref(&object.value),
                document: object.document,
                base: object.base,
                line: object.start.line,
                findings: reported,
                accepted: response.accepted,
                changed: response.mutated_object.is_some(),
                mutated: response.mutated_object.filter(|_| shared.options.retain),
                value: shared.options.retain.then_some(object.value),
                member,
            });
        }
        if let Some(mut whole) = whole
            && !repairs.is_empty()
        {
            let mut edit = narrow(&job.text, rewrite(&job.text, lines, &mut whole, repairs));
            (edit.lines, edit.end_column) = line_span(&job.text, job.chunk.line, &edit.range);
            edit.document = document_index;
            edit.range = edit.range.start + job.offset..edit.range.end + job.offset;
            part.edits.push(edit);
        }
    }
    Ok(part)
}

/// An object's type and name as written (`generateName` when it has no name).
fn object_ref(value: &Value) -> ObjectRef {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let metadata = value.get("metadata");
    ObjectRef {
        api_version: text(value.get("apiVersion")).unwrap_or_default(),
        kind: text(value.get("kind")).unwrap_or_default(),
        namespace: text(metadata.and_then(|m| m.get("namespace"))),
        name: text(metadata.and_then(|m| m.get("name")))
            .or_else(|| text(metadata.and_then(|m| m.get("generateName")))),
    }
}

/// The edit reduced to the lines it changes: the lines it leaves as they were, at its start
/// and at its end, are not part of it (one line is kept on each side, so the edit is never
/// empty of lines to replace).
fn narrow(text: &str, edit: Edit) -> Edit {
    let original = text.get(edit.range.clone()).unwrap_or_default();
    let old: Vec<&str> = original.split('\n').collect();
    let new: Vec<&str> = edit.text.split('\n').collect();
    let keep = old.len().min(new.len()).saturating_sub(1);
    let prefix = old
        .iter()
        .zip(&new)
        .take(keep)
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(keep - prefix)
        .take_while(|(a, b)| a == b)
        .count();
    let cut = |lines: &[&str]| lines.iter().map(|l| l.len() + 1).sum::<usize>();
    let start = edit.range.start + cut(old.get(..prefix).unwrap_or_default());
    let end = edit.range.end - cut(old.get(old.len() - suffix..).unwrap_or_default());
    Edit {
        range: start..end,
        text: new
            .get(prefix..new.len() - suffix)
            .unwrap_or_default()
            .join("\n"),
        ..edit
    }
}

/// The lines (first and last, 1-based) that `range` of `text` covers, `text` starting on
/// line `first`, and the column just past the range's end on its last line.
fn line_span(text: &str, first: usize, range: &Range<usize>) -> ((usize, usize), usize) {
    let before = text.get(..range.start).unwrap_or_default();
    let inside = text.get(range.clone()).unwrap_or_default();
    let start = first + before.matches('\n').count();
    let end = start + inside.matches('\n').count();
    let last_line = inside.rsplit('\n').next().unwrap_or_default();
    ((start, end), last_line.chars().count() + 1)
}

/// The fix operations of one object's findings, each plan's once (the findings of one plan
/// share its operations).
fn ops_of(findings: &[Reported]) -> Vec<PatchOp> {
    let mut ops: Vec<PatchOp> = Vec::new();
    let mut seen: Vec<&Vec<PatchOp>> = Vec::new();
    for fix in findings.iter().filter_map(|f| f.fix.as_ref()) {
        if !seen.contains(&fix) {
            ops.extend(fix.iter().cloned());
            seen.push(fix);
        }
    }
    ops
}

/// A document's rewrite: in place when the editor can make it (and it reads back as the
/// repaired document), else the repaired document written anew. JSON is written anew.
fn rewrite(
    text: &str,
    lines: Range<usize>,
    whole: &mut Value,
    repairs: Vec<(JsonPath, Vec<PatchOp>, Value)>,
) -> Edit {
    let mut all = Vec::new();
    for (base, ops, mutated) in repairs {
        if let Some(slot) = base.get_mut(whole) {
            *slot = mutated;
        }
        all.push((base, ops));
    }
    let original = text.get(lines.clone()).unwrap_or_default();
    let json = read::looks_like_json(original);
    let in_place = if json {
        None
    } else {
        edit::edit_document(original, &all, whole)
    };
    match in_place {
        Some(text) => Edit {
            range: lines,
            text,
            reformatted: false,
            ..Edit::default()
        },
        None => {
            let mut text = if json {
                serde_json::to_string_pretty(whole).unwrap_or_default()
            } else {
                edit::to_yaml(whole)
            };
            // The document's lines end before their line break.
            if text.ends_with('\n') {
                text.pop();
            }
            Edit {
                range: lines,
                text,
                reformatted: !json,
                ..Edit::default()
            }
        }
    }
}

/// Puts the answers back in input order.
fn collect(
    rx: mpsc::Receiver<Message>,
    inputs: &[Input],
    shared: &Shared<'_>,
    mut sink: Option<Sink<'_>>,
) -> Result<Outcome, Diagnostic> {
    let records = shared.options.fix || shared.options.retain;
    let mut outcome = Outcome::default();
    let mut set = SetFacts::default();
    // Per input: its part count and length once read to its end; the parts answered so far
    // that cannot be taken yet (an earlier one is still being answered).
    let mut expected: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut parts: BTreeMap<(usize, usize), Result<Part, Diagnostic>> = BTreeMap::new();
    let mut next_file = 0;
    let mut next_chunk = 0;
    let mut findings: Vec<Reported> = Vec::new();
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
            let record = file_record.get_or_insert_with(|| FileRecord {
                name: inputs.get(next_file).map(Input::name).unwrap_or_default(),
                len: 0,
                objects: 0,
                edits: Vec::new(),
            });
            if let Some(answer) = parts.remove(&(next_file, next_chunk)) {
                let part = answer?;
                outcome.notes.extend(part.notes);
                for object in part.objects {
                    let index = outcome.tally.objects;
                    outcome.tally.objects += 1;
                    outcome.tally.mutated += usize::from(object.changed);
                    record.objects += 1;
                    if records {
                        outcome.objects.push(ObjectRecord {
                            file: next_file,
                            document: object.document,
                            base: object.base,
                            line: object.line,
                            accepted: object.accepted,
                            mutated: object.changed,
                            subject_of: object.member.subjects().to_vec(),
                            object: object.object,
                        });
                    }
                    findings.extend(object.findings.into_iter().map(|mut f| {
                        f.manifest = Some(index);
                        f
                    }));
                    if let Some(value) = object.value {
                        outcome.retained.push(Retained {
                            value,
                            mutated: object.mutated,
                        });
                    }
                    set.add(object.member);
                }
                record.edits.extend(part.edits);
                // Objects come in the order of their lines, each one's findings by line.
                outcome.take(&mut findings, &mut sink)?;
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
    let mut set_findings = shared
        .policies
        .locate(shared.policies.set.check_facts(&set));
    outcome.take(&mut set_findings, &mut sink)?;
    if outcome.tally.objects == 0 {
        outcome
            .notes
            .push("no Kubernetes objects in the input: nothing was checked".to_owned());
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(range: Range<usize>, text: &str) -> Edit {
        Edit {
            range,
            text: text.to_owned(),
            ..Edit::default()
        }
    }

    #[test]
    fn an_edit_keeps_only_the_lines_it_changes() {
        let text = "a: 1\nb:\n  c: 2\nd: 3";
        let whole = edit(0..text.len(), "a: 1\nb:\n  c: 2\n  e: 4\nd: 3");
        let narrowed = narrow(text, whole.clone());
        // The inserted line goes before the last one, which is kept as the line replaced.
        assert_eq!(narrowed.range, 15..19);
        assert_eq!(narrowed.text, "  e: 4\nd: 3");
        assert_eq!(line_span(text, 1, &narrowed.range), ((4, 4), 5));
        // Applying either gives the same text.
        let apply = |e: &Edit| {
            let mut out = text.to_owned();
            out.replace_range(e.range.clone(), &e.text);
            out
        };
        assert_eq!(apply(&narrowed), apply(&whole));
        // A one-line document keeps its line.
        let one = narrow("a: 1", edit(0..4, "a: 2"));
        assert_eq!((one.range, one.text.as_str()), (0..4, "a: 2"));
    }
}
