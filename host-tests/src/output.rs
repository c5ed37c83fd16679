//! Rendering an outcome: human text, or JSON for machines (the contract in DESIGN.md).

use apart_policy::Severity;
use serde_json::json;

use crate::commands::check::Outcome;

/// `--output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, one block per finding.
    Text,
    /// `{"findings": [...], "summary": {...}}`.
    Json,
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The summary object.
pub fn summary(outcome: &Outcome, policies: usize) -> serde_json::Value {
    json!({
        "objects": outcome.objects.len(),
        "policies": policies,
        "errors": outcome.count(Severity::Error),
        "warnings": outcome.count(Severity::Warning),
        "mutated": outcome.mutated(),
    })
}

/// Renders the findings.
pub fn render(outcome: &Outcome, policies: usize, format: Format) -> String {
    match format {
        Format::Json => {
            let doc = json!({"findings": outcome.findings, "summary": summary(outcome, policies)});
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Text => {
            let mut out = String::new();
            for f in &outcome.findings {
                let location = match (f.line, f.column) {
                    (Some(line), Some(column)) => format!("{}:{line}:{column}", f.file),
                    (Some(line), None) => format!("{}:{line}", f.file),
                    _ => f.file.clone(),
                };
                let severity = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                out.push_str(&format!(
                    "{location}: {severity}[{}] {} (policy {})\n  at {}\n  {}\n",
                    f.code, f.object, f.policy, f.path, f.message
                ));
                if let Some(fix) = &f.fix {
                    for op in fix {
                        out.push_str(&format!("  fix: {} {} {}\n", op.op, op.path, op.value));
                    }
                }
                out.push('\n');
            }
            out.push_str(&format!(
                "{}, {} in {} ({})\n",
                plural(outcome.count(Severity::Error), "error"),
                plural(outcome.count(Severity::Warning), "warning"),
                plural(outcome.objects.len(), "object"),
                plural(policies, "policy").replace("policys", "policies"),
            ));
            out
        }
    }
}
