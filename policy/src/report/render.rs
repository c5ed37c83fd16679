//! A check's report as a person reads it (one block per finding, then a summary line) or as
//! a machine does (`{"findings": [...], "summary": {...}}`, the contract in DESIGN.md),
//! written whole or as the findings come: the same bytes either way.

use std::io::Write;

use serde_json::json;

use super::outcome::{Outcome, Reported};
use crate::Severity;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Human-readable, one block per finding.
    Text,
    /// `{"findings": [...], "summary": {...}}`.
    Json,
}

/// `1 error`, `2 errors`; `policy` becomes `policies`.
pub fn plural(n: usize, word: &str) -> String {
    if word == "policy" {
        return format!("{n} {}", if n == 1 { "policy" } else { "policies" });
    }
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The summary object.
pub fn summary(outcome: &Outcome, policies: usize) -> serde_json::Value {
    json!({
        "objects": outcome.tally.objects,
        "policies": policies,
        "errors": outcome.count(Severity::Error),
        "warnings": outcome.count(Severity::Warning),
        "mutated": outcome.mutated(),
    })
}

/// Renders a whole outcome at once.
pub fn render(outcome: &Outcome, policies: usize, style: Style) -> String {
    let mut printer = Printer::new(Vec::new(), style);
    // Writing to memory does not fail.
    match printer
        .findings(&outcome.findings)
        .and_then(|()| printer.finish(outcome, policies))
    {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Writes findings as they come, then the summary: the same bytes as rendering the outcome
/// whole (JSON is written as `serde_json`'s pretty printer writes the whole document).
pub struct Printer<W: Write> {
    out: W,
    style: Style,
    written: usize,
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W, style: Style) -> Self {
        Self {
            out,
            style,
            written: 0,
        }
    }

    /// Writes some findings.
    pub fn findings(&mut self, findings: &[Reported]) -> std::io::Result<()> {
        for f in findings {
            match self.style {
                Style::Json => {
                    let opening = if self.written == 0 {
                        "{\n  \"findings\": [\n"
                    } else {
                        ",\n"
                    };
                    self.out.write_all(opening.as_bytes())?;
                    let text = serde_json::to_string_pretty(f).map_err(std::io::Error::other)?;
                    let mut lines = String::with_capacity(text.len() + 64);
                    for (i, line) in text.lines().enumerate() {
                        if i > 0 {
                            lines.push('\n');
                        }
                        lines.push_str("    ");
                        lines.push_str(line);
                    }
                    self.out.write_all(lines.as_bytes())?;
                }
                Style::Text => self.out.write_all(text_block(f).as_bytes())?,
            }
            self.written += 1;
        }
        Ok(())
    }

    /// Writes the summary and returns the writer.
    pub fn finish(mut self, outcome: &Outcome, policies: usize) -> std::io::Result<W> {
        match self.style {
            Style::Json => {
                let opening = if self.written == 0 {
                    "{\n  \"findings\": [],\n"
                } else {
                    "\n  ],\n"
                };
                let summary = serde_json::to_string_pretty(&summary(outcome, policies))
                    .map_err(std::io::Error::other)?;
                let summary = summary.replace('\n', "\n  ");
                write!(self.out, "{opening}  \"summary\": {summary}\n}}\n")?;
            }
            Style::Text => writeln!(
                self.out,
                "{}, {} in {} ({})",
                plural(outcome.count(Severity::Error), "error"),
                plural(outcome.count(Severity::Warning), "warning"),
                plural(outcome.tally.objects, "object"),
                plural(policies, "policy"),
            )?,
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One finding as text: where, what, and the repair.
fn text_block(f: &Reported) -> String {
    let location = match (f.line, f.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", f.file),
        (Some(line), None) => format!("{}:{line}", f.file),
        _ => f.file.clone(),
    };
    let severity = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut out = format!(
        "{location}: {severity}[{}] {} (policy {})\n  at {}\n  {}\n",
        f.code, f.object, f.policy, f.path, f.message
    );
    if let Some(fix) = &f.fix {
        for op in fix {
            out.push_str(&format!("  fix: {} {} {}\n", op.op, op.path, op.value));
        }
    }
    out.push('\n');
    out
}
