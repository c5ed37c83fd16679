//! `apart simulate`'s inputs and reports: the pod to place read from its text (a Pod or a
//! workload, refused at its line as the API server would refuse it), the engine's decision
//! ([`crate::placement::simulate`]), and the decision as a table or as the engine's JSON.

use std::fmt::Write as _;

use super::policies::Policies;
use super::{ReportError, Source};
use crate::kube::affinity::AffinityProblem;
use crate::kube::cluster::Cluster;
use crate::placement::simulate::{self, IncomingPod, Options, Reason, SimulateError, Simulation};
use crate::source::read;

/// The engine's decision. The engine checks the pod's terms as the API server would, so a
/// refused term is reported at its line in the pod file.
pub fn decide(
    cluster: &Cluster,
    pod: &PodInput,
    options: &Options,
    policies: Option<&Policies>,
) -> Result<Simulation, ReportError> {
    let set = policies.map(|p| p.set.policies());
    simulate::simulate(cluster, &pod.pod, options, set).map_err(|e| match e {
        SimulateError::InvalidAffinity { problems } => pod.located(&problems, AFFINITY),
        SimulateError::InvalidScheduling { problems } => pod.located(&problems, SCHEDULING),
        other => ReportError::Unusable(other.to_string()),
    })
}

/// The pod read from its file, with what is needed to point into it.
#[derive(Debug)]
pub struct PodInput {
    /// The pod.
    pub pod: IncomingPod,
    source: Source,
    document: usize,
    start: read::Position,
}

impl PodInput {
    fn located(&self, problems: &[AffinityProblem], what: &str) -> ReportError {
        refusal(&self.source, self.document, self.start, problems, what)
    }
}

/// What the API server refuses, for the messages.
const AFFINITY: &str = "this pod's affinity";
const SCHEDULING: &str = "this pod's scheduling fields";

fn input_error(source: &Source, position: read::Position, message: String) -> ReportError {
    ReportError::Input {
        file: source.name.clone(),
        line: position.line.max(1),
        column: position.column.max(1),
        message,
    }
}

/// Problems the API server would refuse the pod for, at the first one's line (the
/// document's start in JSON, which has no line index).
fn refusal(
    source: &Source,
    document: usize,
    start: read::Position,
    problems: &[AffinityProblem],
    what: &str,
) -> ReportError {
    let position = problems
        .first()
        .and_then(|p| {
            read::documents(&source.text)
                .filter_map(Result::ok)
                .find(|d| d.index == document)
                .and_then(|d| d.positions.nearest(&p.path))
        })
        .map_or(start, |(span, _)| span.start());
    let message = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    input_error(
        source,
        position,
        format!("the API server would reject {what}: {message}"),
    )
}

/// Reads the pod to place from its text: one document, a Pod or a workload.
pub fn parse_pod(source: Source) -> Result<PodInput, ReportError> {
    let at = |position: read::Position, message: String| input_error(&source, position, message);
    let docs = read::parse_documents(&source.text).map_err(|e| at(e.position, e.message))?;
    let doc = match docs.as_slice() {
        [doc] => doc,
        [] => {
            return Err(at(
                read::Position::default(),
                "empty: expected a Pod or a workload".to_owned(),
            ));
        }
        [_, second, ..] => {
            return Err(at(
                second.start,
                "a second document: --pod takes one Pod or workload".to_owned(),
            ));
        }
    };
    let (document, start) = (doc.index, doc.start);
    let bytes = serde_json::to_vec(&doc.value).map_err(|e| at(start, e.to_string()))?;
    match IncomingPod::from_json(&bytes) {
        Ok(pod) => Ok(PodInput {
            pod,
            source,
            document,
            start,
        }),
        Err(SimulateError::InvalidAffinity { problems }) => {
            Err(refusal(&source, document, start, &problems, AFFINITY))
        }
        Err(SimulateError::InvalidScheduling { problems }) => {
            Err(refusal(&source, document, start, &problems, SCHEDULING))
        }
        Err(e) => Err(at(start, e.to_string())),
    }
}

/// The JSON output: the simulation as the engine serializes it, pretty, newline-terminated.
pub fn json(simulation: &Simulation) -> String {
    let mut text = serde_json::to_string_pretty(simulation).unwrap_or_default();
    text.push('\n');
    text
}

/// The text output: a table of every node, then the spread constraints (for a pod that has
/// some), the chosen node and the policies' verdicts.
pub fn text(s: &Simulation) -> String {
    let mut names: Vec<&String> = s.scores.keys().chain(s.infeasible.keys()).collect();
    names.sort();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(4);
    let spread = s.spread.is_some();
    let mut out = String::new();
    if spread {
        let _ = writeln!(
            out,
            "{:<width$}  FEASIBLE  AFFINITY    RAW  SPREAD    RAW  TOTAL  WHY NOT",
            "NODE"
        );
    } else {
        let _ = writeln!(out, "{:<width$}  FEASIBLE  SCORE    RAW  WHY NOT", "NODE");
    }
    let ignored = |name: &str| {
        s.spread
            .as_ref()
            .is_some_and(|sp| sp.ignored_nodes.iter().any(|n| n == name))
    };
    for name in names {
        match (s.scores.get(name), s.infeasible.get(name)) {
            (Some(score), _) => {
                let raw = s.raw_scores.get(name).copied().unwrap_or_default();
                if spread {
                    let cell = |m: &Option<std::collections::BTreeMap<String, i64>>| {
                        m.as_ref()
                            .and_then(|m| m.get(name))
                            .map_or_else(|| "-".to_owned(), i64::to_string)
                    };
                    let spread_raw = if ignored(name) {
                        "ign".to_owned()
                    } else {
                        cell(&s.spread_raw_scores)
                    };
                    let total = cell(&s.combined_scores);
                    let _ = writeln!(
                        out,
                        "{name:<width$}  yes       {score:>8}  {raw:>5}  {:>6}  {spread_raw:>5}  {total:>5}",
                        cell(&s.spread_scores)
                    );
                } else {
                    let _ = writeln!(out, "{name:<width$}  yes       {score:>5}  {raw:>5}");
                }
            }
            (None, Some(why)) => {
                let domain = match &why.topology_value {
                    Some(v) => format!("{}={v}", why.topology_key),
                    None => format!("no {} label", why.topology_key),
                };
                let reason = serde_json::to_value(why.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let dashes = if spread {
                    "       -      -       -      -      -"
                } else {
                    "    -      -"
                };
                let _ = writeln!(
                    out,
                    "{name:<width$}  no        {dashes}  {reason} ({domain})"
                );
                let _ = writeln!(out, "{:width$}    {}", "", why.message);
                let what = match why.reason {
                    Reason::PodTopologySpread | Reason::PodTopologySpreadMissingLabel => {
                        "constraint"
                    }
                    _ => "term",
                };
                let _ = writeln!(out, "{:width$}    {what}: {}", "", why.term);
            }
            (None, None) => {}
        }
    }
    if let Some(sp) = &s.spread {
        let _ = writeln!(out, "\ntopology spread constraints:");
        for c in &sp.constraints {
            let min_domains = c
                .min_domains
                .map(|m| format!("minDomains {m}, "))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {} {} maxSkew {} ({min_domains}nodeAffinityPolicy {}, nodeTaintsPolicy {})",
                c.constraint,
                c.when_unsatisfiable,
                c.topology_key,
                c.max_skew,
                c.node_affinity_policy,
                c.node_taints_policy
            );
            let itself = if c.self_match {
                "the pod matches it itself"
            } else {
                "the pod does not match it itself"
            };
            let _ = writeln!(out, "    selector: {}; {itself}", c.selector);
            let counts = if c.matching_pods.is_empty() {
                "none".to_owned()
            } else {
                c.matching_pods
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match (c.global_min, c.topology_weight) {
                (Some(min), _) => {
                    let _ = writeln!(
                        out,
                        "    matching pods per eligible domain: {counts}; global minimum {min}"
                    );
                }
                (None, Some(w)) => {
                    let per = if c.topology_key == crate::placement::spread::HOSTNAME {
                        "scored node"
                    } else {
                        "domain of a scored node"
                    };
                    let _ = writeln!(
                        out,
                        "    matching pods per {per}: {counts}; topology weight {w:.3}"
                    );
                }
                (None, None) => {
                    let _ = writeln!(out, "    not scored: no node passes the filters");
                }
            }
        }
        if !sp.ignored_nodes.is_empty() {
            let _ = writeln!(
                out,
                "  ignored by the spread score (a ScheduleAnyway topology key is missing): {}",
                sp.ignored_nodes.join(", ")
            );
        }
    }
    // The ranking: the combined score with spreading, InterPodAffinity's alone without.
    let ranking = s.combined_scores.as_ref().unwrap_or(&s.scores);
    match &s.chosen_node {
        Some(node) => {
            let best = ranking.get(node).copied().unwrap_or_default();
            let tied: Vec<&str> = ranking
                .iter()
                .filter(|(n, score)| **score == best && *n != node)
                .map(|(n, _)| n.as_str())
                .collect();
            let what = if spread {
                let affinity = s.scores.get(node).copied().unwrap_or_default();
                let spreading = s
                    .spread_scores
                    .as_ref()
                    .and_then(|m| m.get(node))
                    .copied()
                    .unwrap_or_default();
                format!(
                    "total {best} = {} × {affinity} InterPodAffinity + {} × {spreading} PodTopologySpread",
                    simulate::INTER_POD_AFFINITY_WEIGHT,
                    simulate::POD_TOPOLOGY_SPREAD_WEIGHT
                )
            } else {
                format!("score {best}")
            };
            let _ = if tied.is_empty() {
                writeln!(out, "\nchosen: {node} ({what})")
            } else {
                writeln!(
                    out,
                    "\nchosen: {node} ({what}, tied with {}: the first name is taken; kube-scheduler picks among ties at random, after adding other plugins' scores)",
                    tied.join(", ")
                )
            };
        }
        None => {
            let _ = writeln!(out, "\nno node is feasible: the pod stays Pending");
        }
    }
    for p in s.policies.iter().flatten() {
        let domain = p.domain.as_ref().map_or_else(
            || format!("no {} label", p.topology_key),
            |d| format!("{}={d}", p.topology_key),
        );
        let line = match (&p.node, p.apart) {
            (Some(node), Some(true)) => {
                format!("{node} keeps the pod apart from its peers ({domain} holds none)")
            }
            (Some(node), _) => format!(
                "{node} does NOT keep the pod apart: {domain} also runs {}",
                p.peers.join(", ")
            ),
            (None, _) => "no node to judge".to_owned(),
        };
        let _ = writeln!(out, "policy {}: {line}", p.policy);
    }
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
