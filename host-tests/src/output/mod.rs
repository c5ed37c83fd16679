//! Rendering an outcome: human text or JSON for machines (the contract in DESIGN.md), whole
//! or as it comes; and the formats CI systems read: SARIF ([`sarif`]), JUnit ([`junit`]) and
//! GitHub workflow commands ([`github`]), written once the run is complete.

pub mod github;
pub mod junit;
pub mod sarif;

use std::io::Write;

use apart_policy::report::render::{self, Style};

use crate::commands::check::{Outcome, Reported};

pub(crate) use apart_policy::report::render::plural;

/// `--output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, one block per finding.
    Text,
    /// `{"findings": [...], "summary": {...}}`.
    Json,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
    /// JUnit XML: a suite per policy, a case per object.
    Junit,
    /// GitHub Actions annotations (and a step summary when `GITHUB_STEP_SUMMARY` is set).
    Github,
}

impl Format {
    /// Is it written as the findings come (else once the run is complete)?
    pub fn streams(self) -> bool {
        matches!(self, Format::Text | Format::Json)
    }
}

impl From<Format> for Style {
    fn from(format: Format) -> Self {
        match format {
            Format::Json => Style::Json,
            _ => Style::Text,
        }
    }
}

/// Renders a whole outcome at once in a streaming format (text, JSON).
pub fn render(outcome: &Outcome, policies: usize, format: Format) -> String {
    apart_policy::report::render::render(outcome, policies, format.into())
}

/// Writes findings as they come, then the summary.
pub struct Printer<W: Write>(render::Printer<W>);

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W, format: Format) -> Self {
        Self(render::Printer::new(out, format.into()))
    }

    /// Writes some findings.
    pub fn findings(&mut self, findings: &[Reported]) -> std::io::Result<()> {
        self.0.findings(findings)
    }

    /// Writes the summary and returns the writer.
    pub fn finish(self, outcome: &Outcome, policies: usize) -> std::io::Result<W> {
        self.0.finish(outcome, policies)
    }
}
