//! What a check run keeps: each finding placed in its text, each object's record, each
//! input's rewrites, and the counts. Parts are folded in input order ([`Outcome::absorb`]);
//! the set-level checks run once every object is in ([`Outcome::finish`]).

use std::ops::Range;

use serde::Serialize;
use serde_json::Value;

use super::Options;
use super::part::Part;
use super::policies::Policies;
use crate::source::path::JsonPath;
use crate::source::read::{self, Position};
use crate::{Code, Finding, ObjectRef, PatchOp, SetFacts, Severity};

/// A finding as a check reports it: the engine's finding plus file and position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reported {
    /// Stable code.
    pub code: Code,
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

impl Reported {
    /// The finding placed at `at` (start and end) of `file`.
    pub fn new(
        f: Finding,
        file: &str,
        at: Option<(Position, Position)>,
        manifest: Option<usize>,
    ) -> Self {
        let start = at.map(|(start, _)| start);
        Self {
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

impl FileRecord {
    /// An input nothing was read from yet.
    pub fn new(name: String) -> Self {
        Self {
            name,
            len: 0,
            objects: 0,
            edits: Vec::new(),
        }
    }
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

/// The result of running the policies over a manifest set.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The counts.
    pub tally: Tally,
    /// Every finding the caller kept ([`Outcome::take`]; a CLI that prints them as they come
    /// keeps none): object findings in input order (objects in the order of their lines,
    /// each one's findings by line); then set findings.
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

    /// Folds in the next part of input `file` (parts in input order): its objects, notes and
    /// rewrites. Returns its findings, for [`Outcome::take`] or [`Outcome::tally_findings`].
    pub fn absorb(
        &mut self,
        file: usize,
        record: &mut FileRecord,
        part: Part,
        set: &mut SetFacts,
        options: Options<'_>,
    ) -> Vec<Reported> {
        let records = options.fix || options.retain;
        let mut findings = Vec::new();
        self.notes.extend(part.notes);
        for object in part.objects {
            let index = self.tally.objects;
            self.tally.objects += 1;
            self.tally.mutated += usize::from(object.changed);
            record.objects += 1;
            if records {
                self.objects.push(ObjectRecord {
                    file,
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
                self.retained.push(Retained {
                    value,
                    mutated: object.mutated,
                });
            }
            set.add(object.member);
        }
        record.edits.extend(part.edits);
        findings
    }

    /// The set-level findings, once every object is in (and a note when there was none).
    pub fn finish(&mut self, policies: &Policies, set: &SetFacts) -> Vec<Reported> {
        let findings = policies.locate(policies.set.check_facts(set));
        if self.tally.objects == 0 {
            self.notes
                .push("no Kubernetes objects in the input: nothing was checked".to_owned());
        }
        findings
    }

    /// Counts findings (for a caller that prints them instead of keeping them).
    pub fn tally_findings(&mut self, findings: &[Reported]) {
        for f in findings {
            match f.severity {
                Severity::Error => self.tally.errors += 1,
                Severity::Warning => self.tally.warnings += 1,
            }
        }
    }

    /// Counts findings and keeps them.
    pub fn take(&mut self, mut findings: Vec<Reported>) {
        self.tally_findings(&findings);
        self.findings.append(&mut findings);
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
