//! `apart`: keep critical subsystems on different failure domains.
//!
//! Exit codes: 0 no error findings; 1 error findings; 2 bad input or usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use apart_host::check::{self, Policies};
use apart_host::diagnostic::Diagnostic;
use apart_host::output::{self, Format};
use apart_host::wapc::PolicyModule;
use apart_host::{fix, manifests, module};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "apart",
    version,
    about = "Keep critical subsystems on different failure domains: check and fix podAntiAffinity with apart's Kubewarden module."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// DecorrelationPolicy file(s) (YAML or JSON; several documents per file).
    #[arg(short = 'p', long = "policy", required = true, value_name = "POLICY")]
    policies: Vec<PathBuf>,
    /// Manifests: files, folders (*.yaml, *.yml, *.json, recursively) or - for stdin.
    #[arg(value_name = "PATH", required = true)]
    inputs: Vec<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Run this policy module instead of the embedded one.
    #[arg(long, value_name = "WASM")]
    module: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Report findings (exit 1 on error findings).
    Check {
        #[command(flatten)]
        common: Common,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Print the manifests repaired by the mutate rules.
    Fix {
        #[command(flatten)]
        common: Common,
        /// Print a unified diff instead of the manifests.
        #[arg(long, conflicts_with = "write")]
        diff: bool,
        /// Rewrite the files in place (not for stdin).
        #[arg(short, long)]
        write: bool,
    },
}

fn evaluate(
    common: &Common,
) -> Result<(Policies, Vec<manifests::Source>, check::Outcome), Diagnostic> {
    let policies = Policies::read(&common.policies)?;
    let sources = manifests::read_sources(&common.inputs)?;
    let wasm = module::load(common.module.as_deref()).map_err(Diagnostic::Module)?;
    let module = PolicyModule::new(&wasm).map_err(|e| Diagnostic::Module(format!("{e:#}")))?;
    let outcome = check::run(&module, &policies, &sources, &common.namespace)?;
    Ok((policies, sources, outcome))
}

fn run(cli: Cli) -> Result<u8, Diagnostic> {
    let mut stdout = std::io::stdout().lock();
    let io = |e: std::io::Error| Diagnostic::Io {
        path: PathBuf::from("<stdout>"),
        message: e.to_string(),
    };
    match cli.command {
        Command::Check { common, output } => {
            let (policies, _, outcome) = evaluate(&common)?;
            let text = output::render(&outcome, policies.set.policies().len(), output);
            stdout.write_all(text.as_bytes()).map_err(io)?;
            Ok(u8::from(outcome.count(apart_policy::Severity::Error) > 0))
        }
        Command::Fix {
            common,
            diff,
            write,
        } => {
            if write && common.inputs.iter().any(|p| p.as_os_str() == "-") {
                return Err(Diagnostic::Usage(
                    "--write cannot rewrite standard input".to_owned(),
                ));
            }
            let (_, sources, outcome) = evaluate(&common)?;
            let fixed = fix::fix_sources(&sources, &outcome);
            for f in &fixed {
                if f.reformatted {
                    eprintln!(
                        "apart: {}: the repair could not be made in place; the file is re-emitted (comments dropped)",
                        f.name
                    );
                }
                if write {
                    if f.fixed != f.original {
                        std::fs::write(&f.name, &f.fixed).map_err(|e| Diagnostic::Io {
                            path: PathBuf::from(&f.name),
                            message: e.to_string(),
                        })?;
                        eprintln!("apart: repaired {}", f.name);
                    }
                } else if diff {
                    let d = similar::TextDiff::from_lines(&f.original, &f.fixed);
                    let text = d.unified_diff().header(&f.name, &f.name).to_string();
                    stdout.write_all(text.as_bytes()).map_err(io)?;
                } else {
                    if fixed.len() > 1 {
                        writeln!(stdout, "# Source: {}", f.name).map_err(io)?;
                    }
                    stdout.write_all(f.fixed.as_bytes()).map_err(io)?;
                    if fixed.len() > 1 && !f.fixed.ends_with('\n') {
                        writeln!(stdout).map_err(io)?;
                    }
                }
            }
            // Errors the repairs could not remove still fail the run.
            let unfixed = outcome.accepted.iter().any(|a| !a)
                || outcome
                    .findings
                    .iter()
                    .any(|f| f.severity == apart_policy::Severity::Error && f.manifest.is_none());
            Ok(u8::from(unfixed))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("apart: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
