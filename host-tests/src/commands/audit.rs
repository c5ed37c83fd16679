//! `apart audit`: where the live cluster already runs subjects and their peers on one failure
//! domain, and what each domain's loss would take down together.
//!
//! The engine (`apart_policy::placement::audit`) decides and the library presents
//! (`apart_policy::report::audit`: the snapshot read from text, the text, JSON and HTML
//! reports, the SVG picture; shared with the JS build); this module reads the snapshot file
//! and writes the report.
//!
//! Exit codes: 0 clean; 1 a subject shares a domain with its peers (so a scheduled job fails);
//! 2 bad input ([`Diagnostic`], with file and position).

use std::io::Write;
use std::path::{Path, PathBuf};

use apart_policy::kube::cluster::Cluster;
use apart_policy::placement::audit::{self, AuditReport};

use crate::commands::check;
use crate::diagnostic::Diagnostic;
use crate::manifests;

pub use apart_policy::report::audit::{
    HIGHLIGHT, MAX_COLUMNS, PALETTE, escape, html, json, parse_cluster, svg, text,
};

/// `apart audit --output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// Human-readable, worst first.
    Text,
    /// The report: `{"violations", "blastRadius", "unlabelled", "groups", "summary"}`.
    Json,
    /// One self-contained HTML page with an SVG picture of the failure domains.
    Html,
}

/// `apart audit`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// DecorrelationPolicy file(s) (YAML or JSON; several documents per file).
    #[arg(short = 'p', long = "policy", required = true, value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// The cluster snapshot: `kubectl get nodes,pods,namespaces -A -o json` (or YAML); - for
    /// stdin.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: AuditFormat,
    /// Write the output to this file instead of standard output.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `apart audit`; returns the exit code (0 clean, 1 violations).
pub fn run(args: &AuditArgs, stdout: &mut dyn Write) -> Result<u8, Diagnostic> {
    let policies = check::read_policies(&args.policies)?;
    let (name, cluster) = read_cluster(&args.cluster)?;
    let report = audit::audit(&policies.set, &cluster);
    let text = render(&report, args.output, &name);
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|e| Diagnostic::Io {
            path: path.clone(),
            message: e.to_string(),
        })?,
        None => stdout
            .write_all(text.as_bytes())
            .map_err(|e| Diagnostic::Io {
                path: PathBuf::from("<stdout>"),
                message: e.to_string(),
            })?,
    }
    Ok(u8::from(!report.is_clean()))
}

/// Renders the report.
pub fn render(report: &AuditReport, format: AuditFormat, cluster_name: &str) -> String {
    match format {
        AuditFormat::Text => text(report, cluster_name),
        AuditFormat::Json => json(report),
        AuditFormat::Html => html(report, cluster_name),
    }
}

/// Reads the snapshot file (`-`: standard input); returns its name and the cluster.
pub fn read_cluster(path: &Path) -> Result<(String, Cluster), Diagnostic> {
    if path.is_dir() {
        return Err(Diagnostic::Usage(format!(
            "--cluster {}: a folder; pass one file, the output of `kubectl get nodes,pods,namespaces -A -o json`",
            path.display()
        )));
    }
    let sources = manifests::read_sources(&[path.to_owned()])?;
    let Some(src) = sources.into_iter().next() else {
        return Err(Diagnostic::Usage(format!(
            "--cluster {}: nothing to read",
            path.display()
        )));
    };
    let cluster = parse_cluster(&src)?;
    Ok((src.name, cluster))
}
