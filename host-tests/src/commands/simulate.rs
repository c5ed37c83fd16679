//! `apart simulate`: what kube-scheduler's InterPodAffinity and PodTopologySpread plugins
//! decide for one pod on a cluster snapshot.
//!
//! The engine (`apart_policy::placement::simulate`) decides and the library reads and
//! presents (`apart_policy::report::simulate`); this module reads the input files (the snapshot
//! through [`crate::commands::audit::read_cluster`], so both commands accept and refuse the same files;
//! the pod as one YAML or JSON document), and prints the decision as a table or as the
//! engine's JSON.
//!
//! Exit codes: 0 when at least one node is feasible; 1 when none is; 2 bad input
//! ([`Diagnostic`], with file and position).

use std::io::Write;
use std::path::{Path, PathBuf};

use apart_policy::kube::cluster::Cluster;
use apart_policy::placement::simulate::{self, Options, Simulation};
use apart_policy::report;

use crate::commands::check::{self, Policies};
use crate::diagnostic::Diagnostic;
use crate::manifests;

pub use apart_policy::report::simulate::{PodInput, json, parse_pod, text};

/// `apart simulate --output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimulateFormat {
    /// A table, one row per node, with why a node is ruled out.
    Text,
    /// `{"feasible_nodes", "scores", "raw_scores", "infeasible", "chosen_node", ...}`, with
    /// `spread`, `spread_scores`, `spread_raw_scores` and `combined_scores` for a pod with
    /// topology spread constraints.
    Json,
}

/// `apart simulate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The cluster snapshot: `kubectl get nodes,pods,namespaces -A -o json` (or YAML); - for
    /// stdin.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: PathBuf,
    /// The pod to place: a Pod manifest, or a workload whose pod template is used (its
    /// namespace is the workload's, or `default`); - for stdin.
    #[arg(long, value_name = "POD")]
    pub pod: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: SimulateFormat,
    /// The plugin's hardPodAffinityWeight: how much an existing pod's required affinity
    /// that matches the pod adds to its node's domain (0 to 100; 0 turns it off).
    #[arg(long, default_value_t = simulate::DEFAULT_HARD_POD_AFFINITY_WEIGHT,
          value_parser = clap::value_parser!(i64).range(0..=100), value_name = "N")]
    pub hard_pod_affinity_weight: i64,
    /// The plugin's ignorePreferredTermsOfExistingPods: when the pod has no preferred terms,
    /// do not score existing pods' preferences.
    #[arg(long)]
    pub ignore_preferred_terms_of_existing_pods: bool,
    /// DecorrelationPolicy file(s): also say whether the chosen node keeps the pod apart from
    /// its peers.
    #[arg(short = 'p', long = "policy", value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
}

impl SimulateArgs {
    /// The plugin arguments.
    pub fn options(&self) -> Options {
        Options {
            hard_pod_affinity_weight: self.hard_pod_affinity_weight,
            ignore_preferred_terms_of_existing_pods: self.ignore_preferred_terms_of_existing_pods,
        }
    }
}

/// Runs `apart simulate`; returns the exit code (0 a node is feasible, 1 none is).
pub fn run(args: &SimulateArgs, stdout: &mut dyn Write) -> Result<u8, Diagnostic> {
    if args.cluster.as_os_str() == "-" && args.pod.as_os_str() == "-" {
        return Err(Diagnostic::Usage(
            "--cluster and --pod cannot both read standard input".to_owned(),
        ));
    }
    let (_, cluster) = crate::commands::audit::read_cluster(&args.cluster)?;
    let pod = read_pod(&args.pod)?;
    let policies = if args.policies.is_empty() {
        None
    } else {
        Some(check::read_policies(&args.policies)?)
    };
    let simulation = decide(&cluster, &pod, &args.options(), policies.as_ref())?;
    let text = match args.output {
        SimulateFormat::Json => json(&simulation),
        SimulateFormat::Text => text(&simulation),
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|e| Diagnostic::Io {
            path: PathBuf::from("<stdout>"),
            message: e.to_string(),
        })?;
    Ok(exit_code(&simulation))
}

/// 0 when a node is feasible, 1 when none is.
pub fn exit_code(simulation: &Simulation) -> u8 {
    u8::from(simulation.feasible_nodes.is_empty())
}

/// Reads POD: one document, a Pod or a workload.
pub fn read_pod(path: &Path) -> Result<PodInput, Diagnostic> {
    if path.is_dir() {
        return Err(Diagnostic::Usage(format!(
            "--pod {}: a folder; pass one file holding a Pod or a workload",
            path.display()
        )));
    }
    let source = manifests::read_sources(&[path.to_owned()])?
        .into_iter()
        .next()
        .ok_or_else(|| Diagnostic::Usage(format!("--pod {}: nothing to read", path.display())))?;
    Ok(parse_pod(source)?)
}

/// The engine's decision, refusals at their line in the pod file.
pub fn decide(
    cluster: &Cluster,
    pod: &PodInput,
    options: &Options,
    policies: Option<&Policies>,
) -> Result<Simulation, Diagnostic> {
    Ok(report::simulate::decide(cluster, pod, options, policies)?)
}
