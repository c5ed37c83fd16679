//! JUnit XML for CI test reports (GitLab, Jenkins, Azure Pipelines, test-report actions).
//!
//! One test suite per policy and one test case per object the policy is about (its
//! subjects, and any object it has a finding on), named by the object and carrying its file
//! and line, so a report reads "policy X: Deployment ns/name passed/failed". Error findings
//! fail the case; warnings are not failures and go to the case's `system-out`. Findings about
//! the manifest set as a whole (`peers-not-found`) form one more case of their policy.
//!
//! `apart test` reports the same way: a suite per suite file, a case per expectation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use apart_policy::Severity;

use crate::commands::check::{Outcome, Reported};
use crate::commands::test::{Mismatch, SuiteResult, TestReport, Verdict};

/// One (object, policy) case.
#[derive(Default)]
struct Case<'a> {
    name: String,
    file: String,
    line: Option<usize>,
    findings: Vec<&'a Reported>,
}

/// The JUnit document of a run; `policies` are the policies' names in order.
pub fn render(outcome: &Outcome, policies: &[&str], files: &[String]) -> String {
    // Per policy, its cases in input order: keyed by the object's index, the manifest set's
    // own case last.
    let mut suites: Vec<BTreeMap<usize, Case<'_>>> =
        policies.iter().map(|_| BTreeMap::new()).collect();
    for (index, object) in outcome.objects.iter().enumerate() {
        for &policy in &object.subject_of {
            if let Some(suite) = suites.get_mut(policy) {
                suite.insert(
                    index,
                    Case {
                        name: object.object.to_string(),
                        file: files.get(object.file).cloned().unwrap_or_default(),
                        line: Some(object.line),
                        findings: Vec::new(),
                    },
                );
            }
        }
    }
    // A policy's suite by its name: one look-up per finding, not a scan of the policies.
    let by_name: std::collections::HashMap<&str, usize> =
        policies.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    for f in &outcome.findings {
        let Some(&policy) = by_name.get(f.policy.as_str()) else {
            continue;
        };
        let Some(suite) = suites.get_mut(policy) else {
            continue;
        };
        let key = f.manifest.unwrap_or(usize::MAX);
        let case = suite.entry(key).or_insert_with(|| match f.manifest {
            Some(m) => {
                let object = outcome.objects.get(m);
                Case {
                    name: f.object.to_string(),
                    file: object
                        .and_then(|o| files.get(o.file).cloned())
                        .unwrap_or_else(|| f.file.clone()),
                    line: object.map(|o| o.line),
                    findings: Vec::new(),
                }
            }
            None => Case {
                name: "the manifest set".to_owned(),
                file: f.file.clone(),
                line: f.line,
                findings: Vec::new(),
            },
        });
        case.findings.push(f);
    }
    let failed = |case: &Case<'_>| case.findings.iter().any(|f| f.severity == Severity::Error);
    let total: usize = suites.iter().map(BTreeMap::len).sum();
    let failures: usize = suites
        .iter()
        .flat_map(BTreeMap::values)
        .filter(|c| failed(c))
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"apart check\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\">"
    );
    for (policy, suite) in policies.iter().zip(&suites) {
        let suite_failures = suite.values().filter(|c| failed(c)).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{suite_failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            escape(policy),
            suite.len()
        );
        for case in suite.values() {
            let line = case
                .line
                .map(|l| format!(" line=\"{l}\""))
                .unwrap_or_default();
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\"{line} time=\"0\"",
                escape(&case.name),
                escape(policy),
                escape(&case.file),
            );
            if case.findings.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            let errors: Vec<&&Reported> = case
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            if let Some(first) = errors.first() {
                let codes: Vec<&str> = errors.iter().map(|f| f.code.as_str()).collect();
                let body: String = errors.iter().map(|f| block(f)).collect();
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(&format!("{}: {}", first.code, first.message)),
                    escape(&codes.join(",")),
                    escape(&body)
                );
            }
            let warnings: String = case
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Warning)
                .map(|f| block(f))
                .collect();
            if !warnings.is_empty() {
                let _ = writeln!(out, "      <system-out>{}</system-out>", escape(&warnings));
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// The JUnit document of `apart test`: a test suite per suite file, a test case per
/// expectation (failing with what differs); a suite that cannot run is one erroring case.
pub fn render_tests(report: &TestReport) -> String {
    let counts = report.counts();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"apart test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"0\">",
        counts.passed + counts.failed + counts.invalid,
        counts.failed,
        counts.invalid
    );
    for suite in &report.suites {
        let name = escape(suite.name.as_deref().unwrap_or(&suite.file));
        match &suite.result {
            SuiteResult::Invalid(errors) => {
                let _ = writeln!(
                    out,
                    "  <testsuite name=\"{name}\" file=\"{}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0\">",
                    escape(&suite.file)
                );
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "    <testcase name=\"the suite\" classname=\"{name}\" file=\"{}\" time=\"0\">\n      <error message=\"the suite is invalid\" type=\"invalid-suite\">{}</error>\n    </testcase>",
                    escape(&suite.file),
                    escape(&text.join("\n"))
                );
            }
            SuiteResult::Ran(cases) => {
                let failures = cases.iter().filter(|c| !c.passed()).count();
                let _ = writeln!(
                    out,
                    "  <testsuite name=\"{name}\" file=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
                    escape(&suite.file),
                    cases.len()
                );
                for case in cases {
                    let _ = write!(
                        out,
                        "    <testcase name=\"{}\" classname=\"{name}\" file=\"{}\" line=\"{}\" time=\"0\"",
                        escape(&format!("{} ({})", case.resolved, case.policy)),
                        escape(&suite.file),
                        case.line
                    );
                    if case.passed() {
                        out.push_str("/>\n");
                        continue;
                    }
                    let what: Vec<String> = case.mismatches.iter().map(mismatch).collect();
                    let findings: String = case.actual.findings.iter().map(block).collect();
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"mismatch\">{}</failure>\n    </testcase>",
                        escape(what.first().map_or("", |w| w.lines().next().unwrap_or(""))),
                        escape(&format!("{}\n{findings}", what.join("\n")))
                    );
                }
            }
        }
        if !suite.notes.is_empty() {
            let _ = writeln!(
                out,
                "    <system-out>{}</system-out>",
                escape(&suite.notes.join("\n"))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// What one difference says.
fn mismatch(m: &Mismatch) -> String {
    let verdict = |v: &Verdict| {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let codes =
        |c: &[apart_policy::Code]| c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
    match m {
        Mismatch::Result { expected, actual } => {
            format!("expected {}, found {}", verdict(expected), verdict(actual))
        }
        Mismatch::Codes { expected, actual } => format!(
            "expected codes [{}], found [{}]",
            codes(expected),
            codes(actual)
        ),
        Mismatch::Fixed { file, diff } => format!("apart fix prints other than {file}:\n{diff}"),
    }
}

/// One finding in a failure's or an output's text.
fn block(f: &Reported) -> String {
    let at = match (f.line, f.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", f.file),
        (Some(l), None) => format!("{}:{l}", f.file),
        _ => f.file.clone(),
    };
    format!("{at}: [{}] at {}\n{}\n", f.code, f.path, f.message)
}

/// Text as XML character data or an attribute value: markup escaped, and characters XML 1.0
/// cannot hold at all (control characters) replaced, so the document always parses.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_the_document_well_formed() {
        assert_eq!(
            escape("a<b & \"c\" 'd'\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;\u{FFFD}"
        );
    }
}
