//! `apart test`: policy test suites, as `kyverno test` and `gator verify` run them.
//!
//! A policy is code, and its author wants to pin down what it does to known manifests: which
//! objects it fails, with which codes, and what `apart fix` makes of them. A suite file
//! (`apart-test.yaml`) names policy files, manifests and, per (object, policy), the expected
//! result. The suite runs through the pipeline `apart check` and `apart fix` use
//! ([`check::run_inputs`] on the same module, the same in-place edits, [`fix::fix_input`]), so a
//! suite can never pass on logic that `apart check` does not run.
//!
//! No silent passes (the trap users of `kyverno test` fall into):
//! - a suite in which no object is a subject of any of its policies is invalid: nothing would
//!   be judged, every `pass` would be vacuous;
//! - an expectation naming an object the manifests do not hold, or a policy the suite does not
//!   load, is invalid, not skipped;
//! - `result: pass` means the policy judged the object (it is a subject) and found no error;
//!   an object the policy does not judge is `skip`, so a typo in a subject selector fails the
//!   case instead of passing it;
//! - policy files that do not load are shown with the engine's error, file and line.
//!
//! Namespaces: an object that names no namespace is in the suite's `defaultNamespace`
//! (`default` unless the suite says otherwise), exactly as `apart check --namespace` evaluates
//! it; an expectation that names no namespace means that same default namespace. So
//! `{kind: Deployment, name: web}` is the Deployment `web` written without a namespace or with
//! `namespace: default`.
//!
//! `fixed` compares what `apart fix` prints for the object's document: the document's share of
//! its file, from its `---` line (not included) to the next, comments kept. For a file of one
//! document, that is what `apart fix FILE` prints. Trailing blank lines do not count.
//!
//! Exit codes: 0 every case passes; 1 a case fails; 2 a suite is invalid (or bad usage).
//!
//! The outcome is data ([`TestReport`]: suites, cases, expected and actual), rendered as text
//! here; other renderings (JUnit) are built on it.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};

use apart_policy::kube::object;
use apart_policy::source::path::JsonPath;
use apart_policy::source::read::{self, Position, Positions};
use apart_policy::{Code, ObjectRef, Severity};
use serde::{Deserialize, Serialize};

use crate::commands::check::{self, Edit, Outcome, Policies, Reported};
use crate::commands::fix;
use crate::diagnostic::Diagnostic;
use crate::host::module;
use crate::host::wapc::PolicyModule;
use crate::manifests::{self, Input};

/// The name of a suite file, found in folders.
pub const SUITE_FILE_NAME: &str = "apart-test.yaml";
/// A suite's `apiVersion`.
pub const API_VERSION: &str = "apart.dev/v1alpha1";
/// A suite's `kind`.
pub const KIND: &str = "Test";
/// The namespace of objects that name none, unless a suite sets `defaultNamespace`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `apart test`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Suite files, or folders searched recursively for `apart-test.yaml` (hidden folders
    /// such as `.git` are skipped).
    #[arg(value_name = "DIR|FILE", default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: TestFormat,
    /// Run this policy module instead of the embedded one.
    #[arg(long, value_name = "WASM")]
    pub module: Option<PathBuf>,
    /// Objects checked at once (one module instance each); the number of cores by default.
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
}

/// `apart test --output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    /// A `PASS`/`FAIL` line per case, expected against actual under each failing one.
    Text,
    /// JUnit XML: a test suite per suite file, a test case per expectation.
    Junit,
}

/// What an expectation says of an object under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The policy judges the object (it is a subject) and finds no error.
    Pass,
    /// At least one error finding of the policy on the object.
    Fail,
    /// The policy does not judge the object (it is not a subject).
    Skip,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        })
    }
}

/// The object an expectation is about, as the suite names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectSelector {
    /// `apiVersion`; any when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`; the suite's default namespace when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

/// A suite file as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SuiteDocument {
    api_version: String,
    kind: String,
    metadata: SuiteMetadata,
    policies: Vec<String>,
    manifests: Vec<String>,
    #[serde(default)]
    default_namespace: Option<String>,
    results: Vec<ExpectationDocument>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteMetadata {
    name: String,
    #[serde(default)]
    #[allow(dead_code, reason = "free-form, accepted so suites can carry it")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[allow(dead_code, reason = "free-form, accepted so suites can carry it")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationDocument {
    policy: String,
    object: ObjectSelector,
    result: Verdict,
    #[serde(default)]
    codes: Option<Vec<Code>>,
    #[serde(default)]
    fixed: Option<String>,
}

/// Every suite's outcome, in the order the suites were found.
#[derive(Debug, Default)]
pub struct TestReport {
    /// The suites.
    pub suites: Vec<SuiteReport>,
}

/// One suite's outcome.
#[derive(Debug)]
pub struct SuiteReport {
    /// `metadata.name`, when the suite could be read that far.
    pub name: Option<String>,
    /// The suite file.
    pub file: String,
    /// Its cases, or why it could not run.
    pub result: SuiteResult,
    /// Warnings: skipped inputs, set findings (`peers-not-found`) about the suite's policies.
    pub notes: Vec<String>,
}

/// A suite that ran, or why it is invalid.
#[derive(Debug)]
pub enum SuiteResult {
    /// Every case, in the suite's order.
    Ran(Vec<CaseReport>),
    /// What must be corrected (file, line and what was expected); no case ran.
    Invalid(Vec<Diagnostic>),
}

/// One expectation and what apart found.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The policy.
    pub policy: String,
    /// The object as the suite names it.
    pub object: ObjectSelector,
    /// The object as the manifests hold it, its namespace resolved (shown in reports).
    pub resolved: ObjectRef,
    /// Where the object is: its file and first line.
    pub object_file: String,
    /// The object's first line.
    pub object_line: usize,
    /// The line of the expectation in the suite file.
    pub line: usize,
    /// What the suite expects.
    pub expected: Expected,
    /// What apart found.
    pub actual: Actual,
    /// Where the two differ; empty when the case passes.
    pub mismatches: Vec<Mismatch>,
}

impl CaseReport {
    /// Does the case pass?
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// An expectation's claims.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `result`.
    pub result: Verdict,
    /// `codes`, sorted, when given.
    pub codes: Option<Vec<Code>>,
    /// `fixed`: the file, as resolved from the suite's folder.
    pub fixed: Option<String>,
}

/// What the run found for one (object, policy).
#[derive(Debug, Clone)]
pub struct Actual {
    /// The verdict.
    pub result: Verdict,
    /// The codes of the policy's findings on the object, sorted, each once.
    pub codes: Vec<Code>,
    /// Those findings.
    pub findings: Vec<Reported>,
}

/// One way a case's actual outcome differs from its expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Another verdict.
    Result {
        /// Expected.
        expected: Verdict,
        /// Found.
        actual: Verdict,
    },
    /// Another set of codes.
    Codes {
        /// Expected.
        expected: Vec<Code>,
        /// Found.
        actual: Vec<Code>,
    },
    /// `apart fix` prints something else for the object's document.
    Fixed {
        /// The expected file.
        file: String,
        /// A unified diff from the expected file to what `apart fix` prints.
        diff: String,
    },
}

/// Case and suite counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Suites found.
    pub suites: usize,
    /// Suites that could not run.
    pub invalid: usize,
    /// Suites with a failing case.
    pub failing: usize,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
}

impl TestReport {
    /// The counts.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            suites: self.suites.len(),
            ..Counts::default()
        };
        for suite in &self.suites {
            match &suite.result {
                SuiteResult::Invalid(_) => counts.invalid += 1,
                SuiteResult::Ran(cases) => {
                    let failed = cases.iter().filter(|c| !c.passed()).count();
                    counts.failed += failed;
                    counts.passed += cases.len() - failed;
                    counts.failing += usize::from(failed > 0);
                }
            }
        }
        counts
    }

    /// 0 every case passes; 1 a case fails; 2 a suite is invalid.
    pub fn exit_code(&self) -> u8 {
        let counts = self.counts();
        if counts.invalid > 0 {
            2
        } else {
            u8::from(counts.failed > 0)
        }
    }
}

/// Runs `apart test`; returns the exit code.
pub fn run(args: &TestArgs, stdout: &mut dyn Write) -> Result<u8, Diagnostic> {
    let files = discover(&args.paths)?;
    let wasm = module::load(args.module.as_deref()).map_err(Diagnostic::Module)?;
    let module = PolicyModule::new(&wasm).map_err(|e| Diagnostic::Module(format!("{e:#}")))?;
    let jobs = args
        .jobs
        .map_or_else(check::Options::default_jobs, NonZeroUsize::get);
    let io = |e: std::io::Error| Diagnostic::Io {
        path: PathBuf::from("<stdout>"),
        message: e.to_string(),
    };
    let mut report = TestReport::default();
    for file in &files {
        let suite = run_suite(&module, file, jobs);
        if args.output == TestFormat::Text {
            stdout
                .write_all(suite_text(&suite).as_bytes())
                .map_err(io)?;
        }
        report.suites.push(suite);
    }
    let end = match args.output {
        TestFormat::Text => summary_text(&report.counts()),
        TestFormat::Junit => crate::output::junit::render_tests(&report),
    };
    stdout.write_all(end.as_bytes()).map_err(io)?;
    stdout.flush().map_err(io)?;
    Ok(report.exit_code())
}

/// The suite files the arguments name: files as given, folders searched recursively for
/// `apart-test.yaml` (hidden folders skipped), in path order. A folder with no suite is a
/// usage error: a test run that tests nothing must not pass.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Diagnostic::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !meta.is_dir() {
            found.push(tidy(path));
            continue;
        }
        let before = found.len();
        walk(path, &mut found)?;
        if found.len() == before {
            return Err(Diagnostic::Usage(format!(
                "{}: no {SUITE_FILE_NAME} in this folder or below it",
                path.display()
            )));
        }
    }
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Diagnostic::Io {
            path: dir.to_owned(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if entry.is_dir() {
            if !name.starts_with('.') {
                walk(&entry, out)?;
            }
        } else if name == SUITE_FILE_NAME {
            out.push(tidy(&entry));
        }
    }
    Ok(())
}

/// A path with `.` steps dropped and `dir/..` steps folded, for the names reports show
/// (`examples/seed/../rendered` is `examples/rendered`). Lexical: no symlink is followed.
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_name =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_name {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A suite file read: its document and where each field is.
struct Suite {
    file: String,
    dir: PathBuf,
    document: SuiteDocument,
    positions: Positions,
    start: Position,
}

impl Suite {
    /// An error about a field of the suite, at the field's line (or its nearest written
    /// parent's).
    fn error(&self, path: &JsonPath, message: impl std::fmt::Display) -> Diagnostic {
        let at = self
            .positions
            .nearest(path)
            .map_or(self.start, |(span, _)| span.start());
        Diagnostic::Input {
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            message: format!("{path}: {message}"),
        }
    }

    fn line(&self, path: &JsonPath) -> usize {
        self.positions
            .nearest(path)
            .map_or(self.start, |(span, _)| span.start())
            .line
    }

    /// A path of the suite, resolved from the suite's folder.
    fn resolve(&self, path: &str) -> PathBuf {
        tidy(&self.dir.join(path))
    }

    /// A policy entry: a shipped `builtin:NAME` as it is, a file resolved from the suite's
    /// folder.
    fn resolve_policy(&self, entry: &str) -> PathBuf {
        if entry.starts_with(apart_policy::rules::builtin::PREFIX) {
            PathBuf::from(entry)
        } else {
            self.resolve(entry)
        }
    }
}

fn serde_path(path: &serde_path_to_error::Path) -> JsonPath {
    use serde_path_to_error::Segment;
    path.iter().fold(JsonPath::root(), |p, s| match s {
        Segment::Seq { index } => p.index(*index),
        Segment::Map { key } => p.name(key),
        Segment::Enum { variant } => p.name(variant),
        Segment::Unknown => p,
    })
}

/// Reads a suite file: YAML or JSON, one document, the fields of a `Test`.
fn read_suite(path: &Path) -> Result<Suite, Diagnostic> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Diagnostic::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let text = manifests::decode(&file, bytes)?;
    let input = |position: Position, message: String| Diagnostic::Input {
        file: file.clone(),
        line: position.line,
        column: position.column,
        message,
    };
    let mut documents = read::documents(&text);
    let document = match documents.next() {
        Some(Ok(document)) => document,
        Some(Err(e)) => return Err(input(e.position, e.message)),
        None => {
            return Err(input(
                Position {
                    line: 1,
                    column: 1,
                    offset: 0,
                },
                format!(
                    "the file holds no document: expected a suite (apiVersion: {API_VERSION}, kind: {KIND})"
                ),
            ));
        }
    };
    match documents.next() {
        None => {}
        Some(Ok(second)) => {
            return Err(input(
                second.start,
                "a suite file holds one suite: a second document starts here".to_owned(),
            ));
        }
        Some(Err(e)) => return Err(input(e.position, e.message)),
    }
    let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let parsed: Result<SuiteDocument, _> = serde_path_to_error::deserialize(&document.value);
    let suite_document = match parsed {
        Ok(d) => d,
        Err(e) => {
            let field = serde_path(e.path());
            let at = document
                .positions
                .nearest(&field)
                .map_or(document.start, |(span, _)| span.start());
            return Err(input(at, format!("{field}: {}", e.into_inner())));
        }
    };
    Ok(Suite {
        file,
        dir,
        document: suite_document,
        positions: document.positions,
        start: document.start,
    })
}

/// The fields a suite must get right before it can run; every problem at once.
fn check_fields(suite: &Suite) -> Vec<Diagnostic> {
    let doc = &suite.document;
    let root = JsonPath::root();
    let mut errors = Vec::new();
    if doc.api_version != API_VERSION {
        errors.push(suite.error(
            &root.name("apiVersion"),
            format!(
                "apiVersion must be {API_VERSION}, got {:?}",
                doc.api_version
            ),
        ));
    }
    if doc.kind != KIND {
        errors.push(suite.error(
            &root.name("kind"),
            format!("kind must be {KIND}, got {:?}", doc.kind),
        ));
    }
    if doc.metadata.name.trim().is_empty() {
        errors.push(suite.error(
            &root.name("metadata").name("name"),
            "the suite needs a name",
        ));
    }
    if let Some(namespace) = &doc.default_namespace
        && let Err(message) = apart_policy::kube::names::namespace(namespace)
    {
        errors.push(suite.error(&root.name("defaultNamespace"), message));
    }
    for (field, list, what) in [
        ("policies", &doc.policies, "a policy file"),
        ("manifests", &doc.manifests, "a manifest file or folder"),
    ] {
        if list.is_empty() {
            errors.push(suite.error(&root.name(field), format!("at least {what} is needed")));
        }
        for (i, entry) in list.iter().enumerate() {
            let at = root.name(field).index(i);
            if field == "policies"
                && let Some(name) = entry.strip_prefix(apart_policy::rules::builtin::PREFIX)
            {
                if let Err(e) = crate::commands::rules::document(name) {
                    errors.push(suite.error(&at, e.to_string()));
                }
                continue;
            }
            let path = suite.resolve(entry);
            if let Err(e) = std::fs::metadata(&path) {
                errors.push(suite.error(&at, format!("{}: {e}", path.display())));
            }
        }
    }
    if doc.results.is_empty() {
        errors.push(suite.error(
            &root.name("results"),
            "at least one expected result is needed: a suite that expects nothing tests nothing",
        ));
    }
    errors
}

/// One object of the suite's manifests, as the cases need it.
struct Seen {
    /// Index into the outcome's objects.
    index: usize,
    object: ObjectRef,
    /// Its namespace, the suite's default when it names none.
    namespace: String,
    /// Indexes of the policies whose subjects it holds.
    subjects: Vec<usize>,
    file: String,
    line: usize,
}

impl Seen {
    fn selected_by(&self, selector: &ObjectSelector, default_namespace: &str) -> bool {
        selector
            .api_version
            .as_ref()
            .is_none_or(|v| *v == self.object.api_version)
            && selector.kind == self.object.kind
            && self.object.name.as_deref() == Some(selector.name.as_str())
            && selector.namespace.as_deref().unwrap_or(default_namespace) == self.namespace
    }

    fn resolved(&self) -> ObjectRef {
        ObjectRef {
            namespace: Some(self.namespace.clone()),
            ..self.object.clone()
        }
    }
}

fn selector_text(selector: &ObjectSelector, default_namespace: &str) -> String {
    let namespace = selector.namespace.as_deref().unwrap_or(default_namespace);
    match &selector.api_version {
        Some(v) => format!("{} {namespace}/{} ({v})", selector.kind, selector.name),
        None => format!("{} {namespace}/{}", selector.kind, selector.name),
    }
}

/// Reads, validates and runs one suite.
pub fn run_suite(module: &PolicyModule, path: &Path, jobs: usize) -> SuiteReport {
    let file = path.display().to_string();
    let suite = match read_suite(path) {
        Ok(suite) => suite,
        Err(e) => {
            return SuiteReport {
                name: None,
                file,
                result: SuiteResult::Invalid(vec![e]),
                notes: Vec::new(),
            };
        }
    };
    let mut notes = Vec::new();
    let result = match cases(module, &suite, jobs, &mut notes) {
        Ok(cases) => SuiteResult::Ran(cases),
        Err(errors) => SuiteResult::Invalid(errors),
    };
    SuiteReport {
        name: Some(suite.document.metadata.name.clone()),
        file,
        result,
        notes,
    }
}

/// Runs the suite's manifests through its policies and judges every expectation.
fn cases(
    module: &PolicyModule,
    suite: &Suite,
    jobs: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseReport>, Vec<Diagnostic>> {
    let errors = check_fields(suite);
    if !errors.is_empty() {
        return Err(errors);
    }
    let doc = &suite.document;
    let root = JsonPath::root();
    let default_namespace = doc
        .default_namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let policy_paths: Vec<PathBuf> = doc
        .policies
        .iter()
        .map(|p| suite.resolve_policy(p))
        .collect();
    let policies = check::read_policies(&policy_paths).map_err(|e| {
        // Point at the entry whose file failed, and show the engine's error as it is.
        let origin = match &e {
            Diagnostic::Policy(
                apart_policy::PolicyError::Syntax { origin, .. }
                | apart_policy::PolicyError::Invalid { origin, .. }
                | apart_policy::PolicyError::Empty { origin },
            ) => Some(origin.clone()),
            Diagnostic::Io { path, .. } => Some(path.display().to_string()),
            _ => None,
        };
        let index = origin
            .and_then(|o| {
                policy_paths
                    .iter()
                    .position(|p| p.display().to_string() == o)
            })
            .unwrap_or(0);
        vec![suite.error(
            &root.name("policies").index(index),
            format!("the policy file does not load: {e}"),
        )]
    })?;
    let manifest_paths: Vec<PathBuf> = doc.manifests.iter().map(|p| suite.resolve(p)).collect();
    let listed = manifests::list(&manifest_paths, true).map_err(|e| vec![e])?;
    notes.extend(listed.skipped.iter().cloned());
    let options = check::Options {
        default_namespace,
        jobs,
        fix: true,
        retain: true,
    };
    let outcome =
        check::run_inputs(module, &policies, &listed.inputs, options, None).map_err(|e| vec![e])?;
    notes.extend(outcome.notes.iter().cloned());
    for f in outcome.findings.iter().filter(|f| f.manifest.is_none()) {
        notes.push(format!(
            "{}: {}[{}] policy {}: {}",
            f.line
                .map_or_else(|| f.file.clone(), |l| format!("{}:{l}", f.file)),
            severity_text(f.severity),
            f.code,
            f.policy,
            f.message
        ));
    }
    let seen = objects(&outcome, &listed.inputs, default_namespace);
    if seen.is_empty() {
        return Err(vec![suite.error(
            &root.name("manifests"),
            "the manifests hold no Kubernetes object: there is nothing to test",
        )]);
    }
    if seen.iter().all(|s| s.subjects.is_empty()) {
        let names = policies.set.names();
        return Err(vec![suite.error(
            &root.name("manifests"),
            format!(
                "none of the {} object(s) in the manifests is a subject of the suite's policies ({}): no rule would judge anything, so every case would pass vacuously; check the policies' subject selectors and namespaces (objects that name no namespace are in {default_namespace}), or add the manifests they protect",
                seen.len(),
                names.join(", ")
            ),
        )]);
    }
    let run = SuiteRun {
        suite,
        policies: &policies,
        outcome: &outcome,
        inputs: &listed.inputs,
        seen: &seen,
        default_namespace,
    };
    let mut errors = Vec::new();
    let mut reports = Vec::new();
    for (i, expectation) in doc.results.iter().enumerate() {
        let at = root.name("results").index(i);
        match run.case(&at, expectation) {
            Ok(report) => reports.push(report),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(reports)
    } else {
        Err(errors)
    }
}

/// Every object of the run, with its identity and the policies that judge it.
fn objects(outcome: &Outcome, inputs: &[Input], default_namespace: &str) -> Vec<Seen> {
    outcome
        .retained
        .iter()
        .zip(&outcome.objects)
        .enumerate()
        .map(|(index, (retained, record))| {
            let json = serde_json::to_vec(&retained.value).unwrap_or_default();
            let object = object::read(&json, default_namespace, &[])
                .map(|r| r.object)
                .unwrap_or_default();
            // The run already knows which policies' subjects the object holds.
            let subjects = record.subject_of.clone();
            Seen {
                index,
                namespace: object
                    .namespace
                    .clone()
                    .unwrap_or_else(|| default_namespace.to_owned()),
                object,
                subjects,
                file: inputs.get(record.file).map(Input::name).unwrap_or_default(),
                line: record.line,
            }
        })
        .collect()
}

/// A suite after its run: what its expectations are judged against.
struct SuiteRun<'a> {
    suite: &'a Suite,
    policies: &'a Policies,
    outcome: &'a Outcome,
    inputs: &'a [Input],
    seen: &'a [Seen],
    default_namespace: &'a str,
}

impl SuiteRun<'_> {
    /// Judges one expectation (at `at` in the suite), or says why it cannot be judged.
    fn case(
        &self,
        at: &JsonPath,
        expectation: &ExpectationDocument,
    ) -> Result<CaseReport, Vec<Diagnostic>> {
        let SuiteRun {
            suite,
            policies,
            outcome,
            inputs,
            seen,
            default_namespace,
        } = *self;
        let mut errors = Vec::new();
        let policy_index = policies
            .set
            .policies()
            .iter()
            .position(|p| p.name == expectation.policy);
        if policy_index.is_none() {
            let names = policies.set.names();
            errors.push(suite.error(
                &at.name("policy"),
                format!(
                    "no policy named {:?} is loaded by this suite; its policies are: {}",
                    expectation.policy,
                    names.join(", ")
                ),
            ));
        }
        let matching: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.selected_by(&expectation.object, default_namespace))
            .collect();
        let wanted = selector_text(&expectation.object, default_namespace);
        let object = match matching.as_slice() {
            [one] => Some(*one),
            [] => {
                let mut held: Vec<String> = seen
                    .iter()
                    .take(10)
                    .map(|s| s.resolved().to_string())
                    .collect();
                if seen.len() > held.len() {
                    held.push(format!("and {} more", seen.len() - held.len()));
                }
                errors.push(suite.error(
                &at.name("object"),
                format!(
                    "no {wanted} in the manifests (objects that name no namespace are in {default_namespace}); they hold: {}",
                    held.join(", ")
                ),
            ));
                None
            }
            several => {
                let places: Vec<String> = several
                    .iter()
                    .map(|s| format!("{} {}:{}", s.object.api_version, s.file, s.line))
                    .collect();
                errors.push(suite.error(
                &at.name("object"),
                format!(
                    "{} objects are {wanted} ({}): name the apiVersion, or keep one of them in the manifests",
                    several.len(),
                    places.join(", ")
                ),
            ));
                None
            }
        };
        let fixed = match &expectation.fixed {
            None => None,
            Some(name) => {
                let path = suite.resolve(name);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some((path.display().to_string(), text)),
                    Err(e) => {
                        errors.push(
                            suite.error(&at.name("fixed"), format!("{}: {e}", path.display())),
                        );
                        None
                    }
                }
            }
        };
        let (Some(policy_index), Some(object)) = (policy_index, object) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let findings: Vec<Reported> = outcome
            .findings
            .iter()
            .filter(|f| f.manifest == Some(object.index) && f.policy == expectation.policy)
            .cloned()
            .collect();
        let result = if !object.subjects.contains(&policy_index) {
            Verdict::Skip
        } else if findings.iter().any(|f| f.severity == Severity::Error) {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        let mut codes: Vec<Code> = findings.iter().map(|f| f.code).collect();
        codes.sort();
        codes.dedup();
        let expected_codes = expectation.codes.as_ref().map(|c| {
            let mut c = c.clone();
            c.sort();
            c.dedup();
            c
        });
        let mut mismatches = Vec::new();
        if expectation.result != result {
            mismatches.push(Mismatch::Result {
                expected: expectation.result,
                actual: result,
            });
        }
        if let Some(expected) = &expected_codes
            && *expected != codes
        {
            mismatches.push(Mismatch::Codes {
                expected: expected.clone(),
                actual: codes.clone(),
            });
        }
        if let Some((file, expected_text)) = &fixed {
            let actual_text = fixed_document(inputs, outcome, object.index).map_err(|e| vec![e])?;
            let (expected_text, actual_text) =
                (comparable(expected_text), comparable(&actual_text));
            if expected_text != actual_text {
                let diff = similar::TextDiff::from_lines(&expected_text, &actual_text)
                    .unified_diff()
                    .header(&format!("{file} (expected)"), "apart fix (actual)")
                    .to_string();
                mismatches.push(Mismatch::Fixed {
                    file: file.clone(),
                    diff,
                });
            }
        }
        Ok(CaseReport {
            policy: expectation.policy.clone(),
            object: expectation.object.clone(),
            resolved: object.resolved(),
            object_file: object.file.clone(),
            object_line: object.line,
            line: suite.line(at),
            expected: Expected {
                result: expectation.result,
                codes: expected_codes,
                fixed: fixed.map(|(file, _)| file),
            },
            actual: Actual {
                result,
                codes,
                findings,
            },
            mismatches,
        })
    }
}

/// What `apart fix` prints for the document holding an object: the document's share of its
/// file (from its `---` line to the next), with the run's edits in it applied.
fn fixed_document(inputs: &[Input], outcome: &Outcome, index: usize) -> Result<String, Diagnostic> {
    let missing = || Diagnostic::Module("internal: an object of the run has no record".to_owned());
    let record = outcome.objects.get(index).ok_or_else(missing)?;
    let file = outcome.files.get(record.file).ok_or_else(missing)?;
    let input = inputs.get(record.file).ok_or_else(missing)?;
    let source = fix::fix_input(input, file)?;
    let text = source.original.as_str();
    let chunk = read::chunks(text)
        .take_while(|c| c.line <= record.line)
        .last()
        .ok_or_else(missing)?;
    let start = chunk.range.start;
    let piece = text.get(chunk.range.clone()).unwrap_or_default();
    let edits: Vec<Edit> = file
        .edits
        .iter()
        .filter(|e| start <= e.range.start && e.range.end <= chunk.range.end)
        .map(|e| Edit {
            range: e.range.start - start..e.range.end - start,
            ..e.clone()
        })
        .collect();
    Ok(fix::apply_edits(piece, &edits))
}

/// A document's text as `fixed` compares it: without an opening `---` line, a byte order
/// mark or trailing blank lines, ending in one line break.
fn comparable(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let is_marker = |line: &str| {
        let line = line.trim_end_matches('\r');
        line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
    };
    let body = match text.split_once('\n') {
        Some((first, rest)) if is_marker(first) => rest,
        None if is_marker(text) => "",
        _ => text,
    };
    let mut out = body.trim_end().to_owned();
    out.push('\n');
    out
}

fn severity_text(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn codes_text(codes: &[Code]) -> String {
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    format!("[{}]", codes.join(", "))
}

/// One suite as text: a header, a `PASS`/`FAIL` line per case with expected against actual
/// under each failing one, or `INVALID` and every error.
pub fn suite_text(suite: &SuiteReport) -> String {
    let mut out = String::new();
    match &suite.result {
        SuiteResult::Invalid(errors) => {
            let name = suite
                .name
                .as_ref()
                .map_or_else(String::new, |n| format!(" {n}"));
            out.push_str(&format!("INVALID suite{name} ({})\n", suite.file));
            for e in errors {
                out.push_str(&format!("  {e}\n"));
            }
        }
        SuiteResult::Ran(cases) => {
            let failed = cases.iter().filter(|c| !c.passed()).count();
            out.push_str(&format!(
                "{} suite {} ({}): {} of {} case{} passed\n",
                if failed == 0 { "PASS" } else { "FAIL" },
                suite.name.as_deref().unwrap_or_default(),
                suite.file,
                cases.len() - failed,
                cases.len(),
                if cases.len() == 1 { "" } else { "s" },
            ));
            for case in cases {
                out.push_str(&case_text(case));
            }
        }
    }
    for note in &suite.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out.push('\n');
    out
}

fn case_text(case: &CaseReport) -> String {
    let mut expected = case.expected.result.to_string();
    if let Some(codes) = &case.expected.codes {
        expected.push_str(&format!(" {}", codes_text(codes)));
    }
    if case.expected.fixed.is_some() {
        expected.push_str(", fixed");
    }
    let head = format!("{} under {}: {expected}", case.resolved, case.policy);
    if case.passed() {
        return format!("  PASS {head}\n");
    }
    let mut out = format!("  FAIL {head} (line {})\n", case.line);
    for mismatch in &case.mismatches {
        match mismatch {
            Mismatch::Result { expected, actual } => {
                out.push_str(&format!("    result: expected {expected}, got {actual}"));
                if *actual == Verdict::Skip {
                    out.push_str(" (the object is not a subject of the policy: no pod of it matches the policy's subject)");
                }
                out.push('\n');
            }
            Mismatch::Codes { expected, actual } => {
                out.push_str(&format!(
                    "    codes: expected {}, got {}\n",
                    codes_text(expected),
                    codes_text(actual)
                ));
                let missing: Vec<Code> = expected
                    .iter()
                    .filter(|c| !actual.contains(c))
                    .copied()
                    .collect();
                let unexpected: Vec<Code> = actual
                    .iter()
                    .filter(|c| !expected.contains(c))
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    out.push_str(&format!("      - missing:    {}\n", codes_text(&missing)));
                }
                if !unexpected.is_empty() {
                    out.push_str(&format!(
                        "      + unexpected: {}\n",
                        codes_text(&unexpected)
                    ));
                }
            }
            Mismatch::Fixed { file, diff } => {
                out.push_str(&format!(
                    "    fixed: apart fix prints something else than {file}:\n"
                ));
                for line in diff.lines() {
                    out.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    if case.actual.findings.is_empty() {
        out.push_str(&format!(
            "    findings: none ({}:{})\n",
            case.object_file, case.object_line
        ));
    } else {
        out.push_str("    findings:\n");
        for f in &case.actual.findings {
            let at = match (f.line, f.column) {
                (Some(line), Some(column)) => format!("{}:{line}:{column}", f.file),
                (Some(line), None) => format!("{}:{line}", f.file),
                _ => f.file.clone(),
            };
            out.push_str(&format!(
                "      {at}: {}[{}] {}\n",
                severity_text(f.severity),
                f.code,
                f.message
            ));
        }
    }
    out
}

/// The last line: suites and cases passed, failed, invalid.
pub fn summary_text(counts: &Counts) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut out = format!(
        "{}: {} passed, {} failed",
        plural(counts.suites, "suite"),
        counts.suites - counts.invalid - counts.failing,
        counts.failing
    );
    if counts.invalid > 0 {
        out.push_str(&format!(", {} invalid", counts.invalid));
    }
    out.push_str(&format!(
        "; {}: {} passed, {} failed\n",
        plural(counts.passed + counts.failed, "case"),
        counts.passed,
        counts.failed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_tidied_lexically() {
        assert_eq!(
            tidy(Path::new("./examples/seed/../rendered/")),
            PathBuf::from("examples/rendered")
        );
        assert_eq!(tidy(Path::new("../a/./b")), PathBuf::from("../a/b"));
        assert_eq!(tidy(Path::new(".")), PathBuf::from("."));
    }

    #[test]
    fn fixed_texts_compare_without_the_opening_marker_and_trailing_blanks() {
        assert_eq!(comparable("---\nkind: A\n\n\n"), "kind: A\n");
        assert_eq!(comparable("kind: A"), "kind: A\n");
        assert_eq!(comparable("--- # c\nkind: A\n"), "kind: A\n");
        assert_ne!(comparable("kind: A\n"), comparable("kind: B\n"));
    }
}
