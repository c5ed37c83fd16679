//! GitHub Actions workflow commands: each finding as an `::error` or `::warning` annotation
//! on its file, line and column, errors first, escaped as the Actions toolkit escapes them;
//! and a Markdown table for the job's step summary.
//!
//! GitHub shows at most 10 annotations of each level per step and drops the rest silently,
//! so only the first 10 of each are written as annotations; the others are printed as plain
//! log lines, and a notice says how many were not annotated.

use std::fmt::Write as _;

use apart_policy::Severity;

use super::plural;
use crate::commands::check::{Outcome, Reported};

/// Annotations GitHub shows per level and step.
pub const SHOWN_PER_LEVEL: usize = 10;
/// Rows of the step summary (GitHub refuses a summary over 1 MiB).
const SUMMARY_ROWS: usize = 500;

/// The workflow commands (and log lines) of a run.
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    let mut hidden = [0usize; 2];
    for (slot, severity, command) in [
        (0, Severity::Error, "error"),
        (1, Severity::Warning, "warning"),
    ] {
        let findings = outcome.findings.iter().filter(|f| f.severity == severity);
        for (i, f) in findings.enumerate() {
            if i < SHOWN_PER_LEVEL {
                out.push_str(&annotation(command, f));
            } else {
                hidden[slot] += 1;
                let _ = writeln!(out, "{}: {command}: {}", location(f), message(f));
            }
        }
    }
    let [errors, warnings] = hidden;
    if errors + warnings > 0 {
        let _ = writeln!(
            out,
            "::notice title=apart::{}",
            escape_data(&format!(
                "{errors} more errors and {warnings} more warnings are not shown as annotations (GitHub shows {SHOWN_PER_LEVEL} of each per step); they are listed in this step's log"
            ))
        );
    }
    let _ = writeln!(
        out,
        "apart: {}, {} in {}",
        plural(outcome.count(Severity::Error), "error"),
        plural(outcome.count(Severity::Warning), "warning"),
        plural(outcome.tally.objects, "object")
    );
    out
}

fn annotation(command: &str, f: &Reported) -> String {
    let mut properties = vec![format!("file={}", escape_property(&f.file))];
    if let Some(line) = f.line {
        properties.push(format!("line={line}"));
        if let Some(column) = f.column {
            properties.push(format!("col={column}"));
        }
        if let Some(end) = f.end.filter(|e| e.line >= line) {
            properties.push(format!("endLine={}", end.line));
            if end.line == line {
                // GitHub reads endColumn only on a one-line annotation.
                properties.push(format!("endColumn={}", end.column));
            }
        }
    }
    properties.push(format!(
        "title={}",
        escape_property(&format!("apart {} (policy {})", f.code, f.policy))
    ));
    format!(
        "::{command} {}::{}\n",
        properties.join(","),
        escape_data(&message(f))
    )
}

fn location(f: &Reported) -> String {
    match (f.line, f.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", f.file),
        (Some(l), None) => format!("{}:{l}", f.file),
        _ => f.file.clone(),
    }
}

fn message(f: &Reported) -> String {
    format!("{}: {} (at {})", f.object, f.message, f.path)
}

/// A command's message, as the toolkit's `escapeData` writes it.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value, as the toolkit's `escapeProperty` writes it.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The Markdown for `$GITHUB_STEP_SUMMARY`: the counts and a table of the findings.
pub fn step_summary(outcome: &Outcome, policies: usize) -> String {
    let mut out = format!(
        "### apart check\n\n{}, {} in {} ({})\n\n",
        plural(outcome.count(Severity::Error), "error"),
        plural(outcome.count(Severity::Warning), "warning"),
        plural(outcome.tally.objects, "object"),
        plural(policies, "policy")
    );
    if outcome.findings.is_empty() {
        return out;
    }
    out.push_str("| | code | object | where | message |\n|---|---|---|---|---|\n");
    let mut ordered: Vec<&Reported> = outcome
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    ordered.extend(
        outcome
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning),
    );
    for f in ordered.iter().take(SUMMARY_ROWS) {
        let mark = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(
            out,
            "| {mark} | `{}` | {} | `{}` | {} |",
            f.code,
            cell(&f.object.to_string()),
            cell(&location(f)),
            cell(&f.message)
        );
    }
    if ordered.len() > SUMMARY_ROWS {
        let _ = writeln!(
            out,
            "\n{} more findings are in the step's log.",
            ordered.len() - SUMMARY_ROWS
        );
    }
    out
}

/// Text for one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_toolkit() {
        assert_eq!(escape_data("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }
}
