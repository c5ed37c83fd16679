//! Text in, reports out: what the `apart` CLI and the JS build share, so that they print the
//! same findings, lines, rewrites and JSON for the same texts.
//!
//! A manifest set is checked as `apart check` and `apart fix` check it, whatever runs the
//! rules: the CLI hands each object to the Kubewarden module on wasmtime, the JS build to the
//! engine in the same module ([`Engine`]).
//! - [`policies`]: policy texts read and compiled, with where each policy came from;
//! - [`part`]: documents of a text cut into objects, each sent to a [`Validator`] as the
//!   `ValidationRequest` policy-server would send, findings placed at their lines, and the
//!   document's rewrite for `fix`;
//! - [`outcome`]: what a run keeps (findings, objects, files, counts) as parts come in input
//!   order, then the set-level checks;
//! - [`render`]: the text and JSON reports; [`fix`]: the repaired texts and their diff.
//!
//! [`audit`] and [`simulate`] read a cluster snapshot and a pod from text (errors at their
//! line) and present the placement engine's answers as text, JSON, HTML and SVG.
//!
//! Threads, files and module instances are the caller's: [`check_sources`] is the one-thread
//! run over texts already read.
//!
//! Depends on [`crate::rules`], [`crate::source`], [`crate::placement`] and
//! [`crate::admission`]; no I/O.

pub mod audit;
pub mod fix;
pub mod outcome;
pub mod part;
pub mod policies;
pub mod render;
pub mod simulate;

use serde_json::Value;

use crate::admission::{self, ValidationRequest};
use crate::{Finding, PolicyError, PolicySet, SetFacts};

pub use outcome::{Edit, FileRecord, ObjectRecord, Outcome, Reported, Retained, Tally};
pub use part::{Part, PartText, answer_part, request_bytes};
pub use policies::Policies;

/// One input text and the name findings and errors give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// File path, `<stdin>`, or the name a caller gives the text.
    pub name: String,
    /// Its text.
    pub text: String,
}

impl Source {
    /// A named text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Was it JSON (so output stays JSON)?
    pub fn is_json(&self) -> bool {
        crate::source::read::looks_like_json(&self.text)
    }
}

/// Why a run has no outcome: something the user must correct.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// Malformed or unusable input text.
    #[error("{file}:{line}:{column}: {message}")]
    Input {
        /// The text's name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An invalid policy document.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// What runs the rules failed or answered something unreadable.
    #[error("{0}")]
    Module(String),
    /// Input that cannot be used as given (a simulation the cluster cannot answer).
    #[error("{0}")]
    Unusable(String),
}

impl ReportError {
    /// An input error at a position of a named text.
    pub fn input(file: &str, position: crate::source::read::Position, message: String) -> Self {
        Self::Input {
            file: file.to_owned(),
            line: position.line,
            column: position.column,
            message,
        }
    }
}

/// What `validate` answered for one object, as the check reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// Let through (after repairs)?
    pub accepted: bool,
    /// The rejection's message.
    pub message: Option<String>,
    /// The findings on the object as submitted.
    pub findings: Vec<Finding>,
    /// The repaired object, for mutate rules.
    pub mutated: Option<Value>,
}

/// Runs `validate` on one `ValidationRequest` (the JSON policy-server sends).
pub trait Validator {
    /// The answer, or why there is none (a trap, a deadline, an unreadable answer).
    fn validate(&mut self, request: &[u8]) -> Result<Answer, String>;
}

/// The engine itself as the [`Validator`]: the same review the Kubewarden module makes of
/// the same request, without a module around it.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a>(pub &'a PolicySet);

impl Validator for Engine<'_> {
    fn validate(&mut self, request: &[u8]) -> Result<Answer, String> {
        let verdict = match ValidationRequest::parse(request) {
            Ok(parsed) => admission::review(self.0, parsed.request, request),
            Err(e) => admission::Verdict::reject(format!("apart: {e}")),
        };
        Ok(Answer {
            accepted: verdict.accepted,
            message: verdict.message,
            findings: verdict.findings,
            mutated: verdict.mutated_object.map(|m| m.to_value()),
        })
    }
}

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Namespace of objects that name none.
    pub default_namespace: &'a str,
    /// Compute `fix`'s rewrites.
    pub fix: bool,
    /// Keep every object and its repair in the outcome.
    pub retain: bool,
}

/// Runs the policies over texts already read, on this thread, one part per text: the run
/// `apart check` makes with one worker, the text not cut into parts.
pub fn check_sources(
    policies: &Policies,
    sources: &[Source],
    validator: &mut dyn Validator,
    options: Options<'_>,
) -> Result<Outcome, ReportError> {
    let settings = policies.settings();
    let mut outcome = Outcome::default();
    let mut set = SetFacts::default();
    for (file, source) in sources.iter().enumerate() {
        let text = PartText::whole(&source.name, &source.text);
        let part = answer_part(&text, validator, policies, &settings, options)?;
        let mut record = FileRecord::new(source.name.clone());
        let findings = outcome.absorb(file, &mut record, part, &mut set, options);
        outcome.take(findings);
        record.len = source.text.len();
        outcome.files.push(record);
    }
    let findings = outcome.finish(policies, &set);
    outcome.take(findings);
    Ok(outcome)
}
