//! `apart`: keep critical subsystems on different failure domains.
//!
//! Exit codes: 0 no error findings; 1 error findings; 2 bad input or usage (`apart test`: 0
//! every case passes; 1 a case fails; 2 a suite is invalid).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use apart_host::commands::check::{self, Policies};
use apart_host::commands::fix;
use apart_host::diagnostic::Diagnostic;
use apart_host::host::module;
use apart_host::host::replay::{Replay, ReplayError};
use apart_host::host::wapc::PolicyModule;
use apart_host::manifests;
use apart_host::output::{self, Format};
use apart_host::ship::{kubewarden, oci};
use apart_policy::source::edit;
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
    /// DecorrelationPolicy file(s) (YAML or JSON; several documents per file), or
    /// `builtin:NAME` for a shipped rule file (`apart rules` lists them).
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
    /// Objects checked at once (one module instance each); the number of cores by default.
    #[arg(short, long, value_name = "N")]
    jobs: Option<std::num::NonZeroUsize>,
    #[command(flatten)]
    limits: Limits,
}

/// What the module may spend on one object: past either, the object is an error naming its
/// file and line (exit 2), never a hang or the host's memory.
#[derive(Args, Clone, Copy)]
struct Limits {
    /// Seconds the module may run per object (policy-server's default deadline).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = seconds)]
    timeout: f64,
    /// MiB of memory the module may grow to (per instance: one per job).
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=4096))]
    memory: u32,
}

/// A timeout in seconds: positive and at most an hour.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!(
            "{text}: give seconds, more than 0 and at most 3600"
        )),
    }
}

impl Limits {
    /// The module, compiled, with these limits.
    fn module(self, wasm: &[u8]) -> Result<PolicyModule, Diagnostic> {
        let module =
            PolicyModule::with_deadline(wasm, std::time::Duration::from_secs_f64(self.timeout))
                .map_err(|e| Diagnostic::Module(format!("{e:#}")))?;
        Ok(module.with_memory_limit(usize::try_from(self.memory).unwrap_or(4096) << 20))
    }
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
    /// Bake policies into a copy of the Kubewarden module, annotated for policy-server.
    ///
    /// Writes the module, and next to it `<name>.clusteradmissionpolicy.yaml` and
    /// `artifacthub-pkg.yml`.
    Build {
        /// DecorrelationPolicy file(s) to bake in.
        #[arg(short = 'p', long = "policy", required = true, value_name = "POLICY")]
        policies: Vec<PathBuf>,
        /// Where to write the module.
        #[arg(short, long, value_name = "WASM")]
        output: PathBuf,
        /// Bake into this module instead of the embedded one.
        #[arg(long, value_name = "WASM")]
        module: Option<PathBuf>,
        /// Where the module will be pulled from, for the ClusterAdmissionPolicy.
        #[arg(
            long,
            value_name = "REF",
            default_value = "registry://ghcr.io/apart-dev/policies/apart:latest"
        )]
        module_ref: String,
        /// Name of the ClusterAdmissionPolicy (and the Artifact Hub package).
        #[arg(long, default_value = "apart")]
        name: String,
        /// The module to bake: the waPC module, or the OPA-ABI module for Kubewarden's
        /// `gatekeeper` execution mode (validation only).
        #[arg(long, value_enum, default_value = "kubewarden-wapc")]
        mode: kubewarden::Mode,
    },
    /// Show a module's Kubewarden metadata and baked policies.
    Inspect {
        /// The module.
        #[arg(value_name = "WASM")]
        module: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: InspectFormat,
    },
    /// Evaluate one AdmissionReview with a module, printing the AdmissionResponse
    /// policy-server would return (as `kwctl run` does).
    Run {
        /// AdmissionReview (or AdmissionRequest) JSON/YAML file; `-` for stdin.
        #[arg(short = 'r', long = "request-path", value_name = "FILE")]
        request: PathBuf,
        /// Settings (JSON/YAML); `{}` when omitted (baked policies apply).
        #[arg(short, long, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// The module (the embedded one when omitted).
        #[arg(value_name = "WASM")]
        module: Option<PathBuf>,
        /// Answer the module's host-capability calls (Kubernetes lookups) from this session
        /// file, as kwctl records and replays them; without it every such call is refused.
        #[arg(long = "replay-host-capabilities-interactions", value_name = "FILE")]
        replay: Option<PathBuf>,
        #[command(flatten)]
        limits: Limits,
    },
    /// Where the live cluster runs subjects and peers on one failure domain, and what each
    /// domain's loss takes down together (exit 1 when a rule is violated).
    Audit(apart_host::commands::audit::AuditArgs),
    /// What kube-scheduler's InterPodAffinity and PodTopologySpread plugins decide for a pod on
    /// a cluster snapshot: feasible nodes, why the others are not, normalized scores (exit 1
    /// when none is feasible).
    Simulate(apart_host::commands::simulate::SimulateArgs),
    /// Push a policy module to an OCI registry as kwctl does; prints the manifest digest.
    ///
    /// Credentials: APART_REGISTRY_USERNAME/APART_REGISTRY_PASSWORD, else the Docker config.
    Push {
        /// The module (.wasm).
        #[arg(value_name = "WASM")]
        module: PathBuf,
        /// Where to push: registry://HOST/REPOSITORY:TAG.
        #[arg(value_name = "REF")]
        target: String,
        /// Use plain HTTP even though the registry is not on this machine.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Pull a policy module from an OCI registry, verifying its digests and media types.
    Pull {
        /// What to pull: registry://HOST/REPOSITORY:TAG (or @sha256:...).
        #[arg(value_name = "REF")]
        source: String,
        /// Where to write the module (replaced atomically).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Use plain HTTP even though the registry is not on this machine.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Write the Gatekeeper resources for the policies: a ConstraintTemplate (Rego), a
    /// Constraint per policy, Assign mutators for `action: mutate`, and a gator Suite.
    Gatekeeper {
        /// DecorrelationPolicy file(s).
        #[arg(short = 'p', long = "policy", required = true, value_name = "POLICY")]
        policies: Vec<PathBuf>,
        /// The folder to write into (created when missing).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
    },
    /// Run policy test suites (`apart-test.yaml`): expected results per object and policy,
    /// a diff where they differ (exit 1 when a case fails, 2 when a suite is invalid).
    Test(apart_host::commands::test::TestArgs),
    /// List the built-in rule files (`-p builtin:NAME`), or print one to copy and edit.
    Rules {
        /// The rule file to print; all are listed when omitted.
        #[arg(value_name = "NAME")]
        name: Option<String>,
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

/// `apart inspect` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InspectFormat {
    /// YAML, for reading.
    Text,
    /// JSON.
    Json,
}

/// Appends text to a file (the step summary, which other steps write too).
fn append(path: &Path, text: &str) -> Result<(), Diagnostic> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Diagnostic::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The policies, the inputs, and the outcome of running them through the module.
fn evaluate(
    common: &Common,
    fix: bool,
    sink: Option<check::Sink<'_>>,
) -> Result<(Policies, Vec<manifests::Input>, check::Outcome), Diagnostic> {
    let policies = check::read_policies(&common.policies)?;
    let listed = manifests::list(&common.inputs, fix)?;
    for skipped in &listed.skipped {
        eprintln!("apart: warning: {skipped}");
    }
    let wasm = module::load(common.module.as_deref()).map_err(Diagnostic::Module)?;
    let module = common.limits.module(&wasm)?;
    let options = check::Options {
        default_namespace: &common.namespace,
        jobs: common
            .jobs
            .map_or_else(check::Options::default_jobs, std::num::NonZeroUsize::get),
        fix,
        retain: false,
    };
    let outcome = check::run_inputs(&module, &policies, &listed.inputs, options, sink)?;
    for note in &outcome.notes {
        eprintln!("apart: warning: {note}");
    }
    Ok((policies, listed.inputs, outcome))
}

/// Reads one JSON or YAML document (a file, or `-` for stdin).
fn read_document(path: &std::path::Path) -> Result<serde_json::Value, Diagnostic> {
    let sources = manifests::read_sources(std::slice::from_ref(&path.to_path_buf()))?;
    let src = sources
        .first()
        .ok_or_else(|| Diagnostic::Usage(format!("{}: nothing to read", path.display())))?;
    let docs =
        apart_policy::source::read::parse_documents(&src.text).map_err(|e| Diagnostic::Input {
            file: src.name.clone(),
            line: e.position.line,
            column: e.position.column,
            message: e.message,
        })?;
    docs.into_iter()
        .next()
        .map(|d| d.value)
        .ok_or_else(|| Diagnostic::Input {
            file: src.name.clone(),
            line: 1,
            column: 1,
            message: "the file holds no document".to_owned(),
        })
}

fn read_module(path: &std::path::Path) -> Result<Vec<u8>, Diagnostic> {
    std::fs::read(path).map_err(|e| Diagnostic::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Diagnostic> {
    std::fs::write(path, bytes).map_err(|e| Diagnostic::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn replay_error(e: ReplayError) -> Diagnostic {
    match e {
        ReplayError::Io { path, message } => Diagnostic::Io { path, message },
        ReplayError::Invalid {
            origin,
            line,
            column,
            message,
        } => Diagnostic::Input {
            file: origin,
            line,
            column,
            message,
        },
    }
}

fn package(e: kubewarden::PackageError) -> Diagnostic {
    Diagnostic::Module(e.to_string())
}

fn build(
    policies: &[PathBuf],
    output: &std::path::Path,
    module_path: Option<&std::path::Path>,
    module_ref: &str,
    name: &str,
    mode: kubewarden::Mode,
) -> Result<(), Diagnostic> {
    let policies = check::read_policies(policies)?;
    let base = match mode {
        kubewarden::Mode::KubewardenWapc => module::load(module_path),
        kubewarden::Mode::Gatekeeper => module::load_opa(module_path),
    }
    .map_err(Diagnostic::Module)?;
    let baked = kubewarden::build_for(&base, &policies.set, mode).map_err(package)?;
    if mode == kubewarden::Mode::KubewardenWapc {
        // The baked module must load as policy-server loads it: with empty settings.
        let check = PolicyModule::new(&baked).map_err(|e| Diagnostic::Module(format!("{e:#}")))?;
        let answer = apart_host::host::evaluator::Evaluator::validate_settings(&check, b"{}")
            .map_err(|e| Diagnostic::Module(e.to_string()))?;
        if !answer.valid {
            return Err(Diagnostic::Module(format!(
                "the baked module refuses its own policies: {}",
                answer.message.unwrap_or_default()
            )));
        }
    }
    write_file(output, &baked)?;
    let metadata = kubewarden::metadata_for_mode(&policies.set, mode);
    let dir = output.parent().unwrap_or(std::path::Path::new("."));
    let stem = output
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy");
    let cap = dir.join(format!("{stem}.clusteradmissionpolicy.yaml"));
    let doc = kubewarden::cluster_admission_policy(name, module_ref, &metadata);
    write_file(&cap, edit::to_yaml(&doc).as_bytes())?;
    let pkg = dir.join("artifacthub-pkg.yml");
    let doc = kubewarden::artifacthub_pkg(name, module_ref, &metadata);
    write_file(&pkg, edit::to_yaml(&doc).as_bytes())?;
    let count = policies.set.policies().len();
    eprintln!(
        "apart: wrote {} ({} bytes, {count} {} baked), {} and {}",
        output.display(),
        baked.len(),
        if count == 1 { "policy" } else { "policies" },
        cap.display(),
        pkg.display()
    );
    Ok(())
}

fn run(cli: Cli) -> Result<u8, Diagnostic> {
    let mut stdout = std::io::stdout().lock();
    let io = |e: std::io::Error| Diagnostic::Io {
        path: PathBuf::from("<stdout>"),
        message: e.to_string(),
    };
    match cli.command {
        Command::Build {
            policies,
            output,
            module,
            module_ref,
            name,
            mode,
        } => {
            build(
                &policies,
                &output,
                module.as_deref(),
                &module_ref,
                &name,
                mode,
            )?;
            Ok(0)
        }
        Command::Inspect { module, output } => {
            let bytes = read_module(&module)?;
            let inspection = kubewarden::inspect(&bytes).map_err(package)?;
            let text = match output {
                InspectFormat::Json => {
                    serde_json::to_string_pretty(&inspection).unwrap_or_default() + "\n"
                }
                InspectFormat::Text => {
                    let as_value = serde_json::to_value(&inspection).unwrap_or_default();
                    edit::to_yaml(&as_value)
                }
            };
            stdout.write_all(text.as_bytes()).map_err(io)?;
            Ok(0)
        }
        Command::Run {
            request,
            settings,
            module: module_path,
            replay,
            limits,
        } => {
            let review = read_document(&request)?;
            let request = apart_host::commands::run::admission_request(review)
                .map_err(|e| Diagnostic::Usage(format!("{}: {e}", request.display())))?;
            let settings = match &settings {
                Some(path) => read_document(path)?,
                None => serde_json::json!({}),
            };
            let wasm = module::load(module_path.as_deref()).map_err(Diagnostic::Module)?;
            let mut policy = limits.module(&wasm)?;
            if let Some(path) = &replay {
                policy = policy.with_replay(Replay::read(path).map_err(replay_error)?);
            }
            let response = apart_host::commands::run::run(&policy, &request, &settings)
                .map_err(|e| Diagnostic::Module(e.to_string()))?;
            let text = serde_json::to_string_pretty(&response).unwrap_or_default() + "\n";
            stdout.write_all(text.as_bytes()).map_err(io)?;
            Ok(0)
        }
        Command::Audit(args) => apart_host::commands::audit::run(&args, &mut stdout),
        Command::Simulate(args) => apart_host::commands::simulate::run(&args, &mut stdout),
        Command::Test(args) => apart_host::commands::test::run(&args, &mut stdout),
        Command::Push {
            module,
            target,
            insecure_http,
        } => {
            let digest = push(&module, &target, insecure_http)?;
            writeln!(stdout, "{digest}").map_err(io)?;
            Ok(0)
        }
        Command::Pull {
            source,
            output,
            insecure_http,
        } => {
            let digest = pull(&source, &output, insecure_http)?;
            writeln!(stdout, "{digest}").map_err(io)?;
            Ok(0)
        }
        Command::Rules { name } => {
            let text = match name {
                None => apart_host::commands::rules::listing(),
                Some(n) => {
                    let n = n
                        .strip_prefix(apart_policy::rules::builtin::PREFIX)
                        .unwrap_or(&n);
                    apart_host::commands::rules::document(n)?.to_owned()
                }
            };
            write!(stdout, "{text}").map_err(io)?;
            Ok(0)
        }
        Command::Gatekeeper { policies, output } => {
            let policies = check::read_policies(&policies)?;
            for path in apart_host::ship::gatekeeper::write_dir(&policies.set, &output)? {
                writeln!(stdout, "{}", path.display()).map_err(io)?;
            }
            Ok(0)
        }
        Command::Check { common, output } if output.streams() => {
            // Each input's findings are printed once it is answered.
            let mut printer = output::Printer::new(std::io::BufWriter::new(&mut stdout), output);
            let mut print = |findings: &[check::Reported]| printer.findings(findings).map_err(io);
            let (policies, _, outcome) = evaluate(&common, false, Some(&mut print))?;
            printer
                .finish(&outcome, policies.set.policies().len())
                .map_err(io)?;
            Ok(u8::from(outcome.count(apart_policy::Severity::Error) > 0))
        }
        Command::Check { common, output } => {
            // The CI formats describe the whole run, and SARIF carries the repairs.
            let (policies, inputs, outcome) = evaluate(&common, true, None)?;
            let names = policies.set.names();
            let text = match output {
                output::Format::Sarif => {
                    let root = std::env::current_dir().map_err(io)?;
                    output::sarif::render(&outcome, &root)
                }
                output::Format::Junit => {
                    let files: Vec<String> = inputs.iter().map(manifests::Input::name).collect();
                    output::junit::render(&outcome, &names, &files)
                }
                _ => {
                    if let Some(summary) =
                        std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty())
                    {
                        let markdown = output::github::step_summary(&outcome, names.len());
                        append(Path::new(&summary), &markdown)?;
                    }
                    output::github::render(&outcome)
                }
            };
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
            let (_, inputs, outcome) = evaluate(&common, true, None)?;
            let several = inputs.len() > 1;
            for (input, record) in inputs.iter().zip(&outcome.files) {
                let f = fix::fix_input(input, record)?;
                if f.reformatted > 0 {
                    eprintln!(
                        "apart: {}: {} could not be repaired in place and {} written anew (comments in {} dropped)",
                        f.name,
                        if f.reformatted == 1 {
                            "a document"
                        } else {
                            "some documents"
                        },
                        if f.reformatted == 1 { "is" } else { "are" },
                        if f.reformatted == 1 { "it" } else { "them" },
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
                    stdout.write_all(f.diff().as_bytes()).map_err(io)?;
                } else {
                    if several {
                        let header = fix::stream_header(&f.name, &f.fixed);
                        stdout.write_all(header.as_bytes()).map_err(io)?;
                    }
                    stdout.write_all(f.fixed.as_bytes()).map_err(io)?;
                    if several && !f.fixed.is_empty() && !f.fixed.ends_with('\n') {
                        writeln!(stdout).map_err(io)?;
                    }
                }
            }
            // Errors the repairs could not remove still fail the run, and say why.
            let unrepaired = outcome.unrepaired();
            if !unrepaired.is_empty() {
                eprintln!(
                    "apart: {} error {} that no repair removes (validate-only rules, or a repair apart cannot make in place):",
                    unrepaired.len(),
                    if unrepaired.len() == 1 {
                        "finding remains"
                    } else {
                        "findings remain"
                    },
                );
                for f in &unrepaired {
                    let at = match f.line {
                        Some(line) => format!("{}:{line}", f.file),
                        None => f.file.clone(),
                    };
                    eprintln!(
                        "  {at}: error[{}] {} (policy {}): {}",
                        f.code, f.object, f.policy, f.message
                    );
                }
            }
            Ok(u8::from(!unrepaired.is_empty()))
        }
    }
}

/// `apart push`: returns the manifest digest.
fn push(module: &std::path::Path, target: &str, insecure_http: bool) -> Result<String, Diagnostic> {
    let target = oci::Target::parse(target)?;
    let bytes = std::fs::read(module).map_err(|e| Diagnostic::Io {
        path: module.to_owned(),
        message: e.to_string(),
    })?;
    let options = oci::Options {
        credentials: oci::Credentials::from_environment(target.host())?,
        insecure_http,
    };
    let pushed = oci::push(&bytes, &target, &options).map_err(|e| match e {
        oci::OciError::NotWasm => Diagnostic::Io {
            path: module.to_owned(),
            message: e.to_string(),
        },
        e => e.into(),
    })?;
    eprintln!("apart: pushed {target} ({})", pushed.immutable);
    Ok(pushed.digest)
}

/// `apart pull`: returns the manifest digest.
fn pull(source: &str, output: &std::path::Path, insecure_http: bool) -> Result<String, Diagnostic> {
    let source = oci::Target::parse(source)?;
    let options = oci::Options {
        credentials: oci::Credentials::from_environment(source.host())?,
        insecure_http,
    };
    let pulled = oci::pull(&source, &options)?;
    oci::write_atomically(output, &pulled.module)?;
    eprintln!(
        "apart: pulled {source} ({}) to {} ({} bytes)",
        pulled.digest,
        output.display(),
        pulled.module.len()
    );
    Ok(pulled.digest)
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
