//! kube-scheduler's PodTopologySpread plugin for the incoming pod's own
//! `topologySpreadConstraints`: the Filter for `DoNotSchedule` constraints, the Score and
//! NormalizeScore for `ScheduleAnyway` ones.
//!
//! The rules follow the plugin as upstream implements it (kubernetes/kubernetes,
//! `pkg/scheduler/framework/plugins/podtopologyspread/{common,filtering,scoring,plugin}.go`,
//! Kubernetes 1.31 and later, where `minDomains`, `nodeAffinityPolicy`/`nodeTaintsPolicy` and
//! `matchLabelKeys` are on by default):
//!
//! - *Counted pods*: placed pods (see [`crate::kube::cluster::Cluster::placed`]) in the
//!   incoming pod's namespace, not terminating (`deletionTimestamp` unset), that the
//!   constraint's selector selects (`labelSelector` with `matchLabelKeys` ANDed in, see
//!   [`TopologySpreadConstraint::selector_for`]). A null selector counts none; so does `{}`:
//!   released schedulers since 1.27 skip counting for a selector without requirements
//!   (kubernetes/kubernetes#141339, fixed by #141340 after 1.36), and apart does the same,
//!   with a warning.
//! - *Eligible nodes* of a constraint: nodes carrying the topology keys of *all* the
//!   constraints of the same kind (hard or soft), matching the pod's `nodeSelector` and
//!   required node affinity unless `nodeAffinityPolicy: Ignore`, and, with
//!   `nodeTaintsPolicy: Honor`, carrying no `NoSchedule`/`NoExecute` taint the pod does not
//!   tolerate. Their values of the key are the constraint's domains (a domain holding no
//!   matching pod counts, with 0).
//! - Filter, per node and constraint in the pod's order, first failure reported: a node
//!   without the key fails (`UnschedulableAndUnresolvable`); otherwise
//!   `matching pods in the node's domain + (1 if the pod matches the selector itself) −
//!   global minimum` must not exceed `maxSkew`. The global minimum is the smallest count
//!   over the eligible domains, or 0 when there are fewer eligible domains than `minDomains`
//!   (1 when unset). A node that is not eligible itself is still judged, with its domain's
//!   count (0 if its domain has no eligible node).
//! - Score, over the nodes that pass every simulated Filter: a node lacking the key of some
//!   `ScheduleAnyway` constraint is *ignored* (scores 0). For each constraint the node gets
//!   `count × ln(size + 2) + (maxSkew − 1)`, summed and rounded (half away from zero), where
//!   `count` is the matching pods in its domain (eligible nodes only; for
//!   `kubernetes.io/hostname`, the pods on the node itself) and `size` the number of distinct
//!   domains among the scored nodes (for hostname: the number of scored nodes).
//! - NormalizeScore: with `max` and `min` over the scored nodes, each gets
//!   `100 × (max + min − s) / max` in integer arithmetic (fewer matching pods score higher),
//!   all 100 when `max` is 0, and ignored nodes 0.
//!
//! Not simulated: the cluster-level default constraints kube-scheduler applies to a pod that
//! has none of its own (`defaultingType: System`: hostname maxSkew 3 and zone maxSkew 5,
//! `ScheduleAnyway`, with a selector built from the Services, ReplicaSets and StatefulSets
//! that select the pod): a snapshot of nodes, pods and namespaces cannot tell those, so apart
//! simulates only the constraints written in the pod.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::kube::cluster::{ClusterPod, Node};
use crate::kube::scheduling::{
    self, HONOR, IGNORE, RequiredNodeAffinity, SpreadConstraint, Toleration,
    TopologySpreadConstraint,
};
use crate::kube::selector::Selector;
use crate::placement::simulate::{Infeasible, MAX_NODE_SCORE, Reason};
use crate::source::path::JsonPath;

/// The label kube-scheduler counts node by node when scoring.
pub const HOSTNAME: &str = "kubernetes.io/hostname";

/// How the Filter judged a node that one constraint refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skew {
    /// Matching pods in the node's domain.
    pub matching_pods: i64,
    /// 1 when the incoming pod matches the constraint's selector itself, else 0.
    pub self_match: i64,
    /// The global minimum the skew is measured from.
    pub global_min: i64,
    /// `matching_pods + self_match − global_min`.
    pub skew: i64,
    /// The constraint's `maxSkew`.
    pub max_skew: i64,
    /// How many eligible domains the constraint has.
    pub eligible_domains: usize,
    /// The constraint's `minDomains` (1 when unset).
    pub min_domains: i64,
}

/// One of the pod's constraints as the plugin saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstraintReport {
    /// JSONPath of the constraint in the pod document.
    pub constraint: String,
    /// Its topology key.
    pub topology_key: String,
    /// `DoNotSchedule` (filters) or `ScheduleAnyway` (scores).
    pub when_unsatisfiable: String,
    /// `maxSkew`.
    pub max_skew: i64,
    /// `minDomains` as the Filter uses it (1 when unset); absent for `ScheduleAnyway`, where
    /// it has no effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i64>,
    /// `nodeAffinityPolicy` as applied (`Honor` when unset).
    pub node_affinity_policy: &'static str,
    /// `nodeTaintsPolicy` as applied (`Ignore` when unset).
    pub node_taints_policy: &'static str,
    /// The selector counted with, `matchLabelKeys` included.
    pub selector: String,
    /// Whether the incoming pod matches the selector itself.
    pub self_match: bool,
    /// Matching pods per domain: every eligible domain for `DoNotSchedule`; the domains of
    /// the scored nodes for `ScheduleAnyway` (per scored node, by name, for
    /// `kubernetes.io/hostname`, which kube-scheduler counts node by node).
    pub matching_pods: BTreeMap<String, i64>,
    /// The Filter's global minimum (`DoNotSchedule` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_min: Option<i64>,
    /// The Score's weight for this topology, `ln(size + 2)` (`ScheduleAnyway` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology_weight: Option<f64>,
}

/// What the PodTopologySpread plugin saw for the pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    /// Each constraint, in the pod's order.
    pub constraints: Vec<ConstraintReport>,
    /// Feasible nodes the Score ignores (score 0): they lack the topology key of a
    /// `ScheduleAnyway` constraint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_nodes: Vec<String>,
}

/// The Score's result, when the pod has `ScheduleAnyway` constraints.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scored {
    /// NormalizeScore's result for each feasible node (ignored ones 0).
    pub normalized: BTreeMap<String, i64>,
    /// Score's result (rounded) for each feasible node (ignored ones 0).
    pub raw: BTreeMap<String, i64>,
    /// The soft constraints' reports, in the order of `Plugin::soft`.
    reports: Vec<ConstraintReport>,
    /// Feasible nodes lacking a soft constraint's key.
    ignored: Vec<String>,
}

/// A constraint, compiled for the pod.
struct Compiled<'p> {
    /// Position in the pod's list.
    index: usize,
    spec: &'p TopologySpreadConstraint,
    selector: Selector,
    /// The scheduler counts no pod for it (null selector, or one without requirements).
    counts_nothing: bool,
    self_match: bool,
}

/// What the pod brings to the plugin.
pub(crate) struct SpreadPod<'p> {
    /// The pod's namespace: only pods there are counted.
    pub namespace: &'p str,
    /// Its labels (the self-match, `matchLabelKeys`).
    pub labels: &'p BTreeMap<String, String>,
    /// Its constraints, as written (validated).
    pub constraints: &'p [TopologySpreadConstraint],
    /// Where `topologySpreadConstraints` is in the pod document.
    pub path: &'p JsonPath,
    /// Its `nodeSelector` and required node affinity.
    pub node_affinity: &'p RequiredNodeAffinity,
    /// Its tolerations.
    pub tolerations: &'p [Toleration],
}

/// For each node: does it match the pod's required node affinity, and does the pod tolerate
/// its taints?
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeFit {
    /// The node matches the pod's `nodeSelector` and required node affinity.
    pub affinity: bool,
    /// The node has no `NoSchedule`/`NoExecute` taint the pod does not tolerate.
    pub taints: bool,
}

impl NodeFit {
    /// Both, for every node of the snapshot (in its order).
    pub fn of_all(nodes: &[Node], pod: &SpreadPod<'_>) -> Vec<Self> {
        nodes
            .iter()
            .map(|n| Self {
                affinity: pod.node_affinity.matches(n),
                taints: scheduling::untolerated(&n.taints, pod.tolerations).is_none(),
            })
            .collect()
    }
}

fn eligible(c: &Compiled<'_>, fit: NodeFit) -> bool {
    (!c.spec.honors_node_affinity() || fit.affinity) && (!c.spec.honors_node_taints() || fit.taints)
}

/// The plugin's state for one pod on one snapshot.
pub(crate) struct Plugin<'p, 'c> {
    pod: &'p SpreadPod<'p>,
    nodes: &'c [Node],
    fits: Vec<NodeFit>,
    hard: Vec<Compiled<'p>>,
    soft: Vec<Compiled<'p>>,
    /// The counted pods: node index and labels.
    pods: Vec<(usize, &'c BTreeMap<String, String>)>,
    /// PreFilter's matching pods per eligible domain, per hard constraint.
    domains: Vec<BTreeMap<&'c str, i64>>,
}

impl<'p, 'c> Plugin<'p, 'c> {
    /// PreFilter: compiles the constraints and counts the matching pods of the hard ones.
    /// `placed` holds the placed pods and their node's index in `nodes`.
    pub fn new(
        pod: &'p SpreadPod<'p>,
        nodes: &'c [Node],
        placed: impl Iterator<Item = (&'c ClusterPod, usize)>,
    ) -> Self {
        let mut hard = Vec::new();
        let mut soft = Vec::new();
        for (index, spec) in pod.constraints.iter().enumerate() {
            let selector = spec.selector_for(pod.labels);
            let compiled = Compiled {
                index,
                spec,
                counts_nothing: selector.is_nothing() || selector.is_everything(),
                self_match: selector.matches_map(pod.labels),
                selector,
            };
            if spec.is_hard() {
                hard.push(compiled);
            } else {
                soft.push(compiled);
            }
        }
        // A pod without constraints (most pods) needs no pass over the placed pods.
        let pods = if pod.constraints.is_empty() {
            Vec::new()
        } else {
            placed
                .filter(|(p, _)| p.namespace == pod.namespace && !p.terminating)
                .map(|(p, i)| (i, &p.labels))
                .collect()
        };
        let mut plugin = Self {
            pod,
            nodes,
            fits: NodeFit::of_all(nodes, pod),
            hard,
            soft,
            pods,
            domains: Vec::new(),
        };
        plugin.domains = plugin.count_hard();
        plugin
    }

    /// True when the pod has constraints of either kind.
    pub fn is_active(&self) -> bool {
        !self.hard.is_empty() || !self.soft.is_empty()
    }

    /// For each node, whether it matches the pod's required node affinity and tolerates
    /// its taints.
    pub fn fits(&self) -> &[NodeFit] {
        &self.fits
    }

    fn has_keys(node: &Node, constraints: &[Compiled<'_>]) -> bool {
        constraints
            .iter()
            .all(|c| node.labels.contains_key(&c.spec.topology_key))
    }

    fn count_hard(&self) -> Vec<BTreeMap<&'c str, i64>> {
        let mut domains: Vec<BTreeMap<&'c str, i64>> = vec![BTreeMap::new(); self.hard.len()];
        if self.hard.is_empty() {
            return domains;
        }
        let complete: Vec<bool> = self
            .nodes
            .iter()
            .map(|n| Self::has_keys(n, &self.hard))
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            let (Some(true), Some(&fit)) = (complete.get(i), self.fits.get(i)) else {
                continue;
            };
            for (c, counts) in self.hard.iter().zip(domains.iter_mut()) {
                if let Some(value) = node.topology_value(&c.spec.topology_key)
                    && eligible(c, fit)
                {
                    counts.entry(value).or_insert(0);
                }
            }
        }
        for &(i, labels) in &self.pods {
            let (Some(node), Some(true), Some(&fit)) =
                (self.nodes.get(i), complete.get(i), self.fits.get(i))
            else {
                continue;
            };
            for (c, counts) in self.hard.iter().zip(domains.iter_mut()) {
                if c.counts_nothing || !eligible(c, fit) || !c.selector.matches_map(labels) {
                    continue;
                }
                if let Some(n) = node
                    .topology_value(&c.spec.topology_key)
                    .and_then(|v| counts.get_mut(v))
                {
                    *n += 1;
                }
            }
        }
        domains
    }

    fn global_min(c: &Compiled<'_>, counts: &BTreeMap<&str, i64>) -> i64 {
        if (counts.len() as i64) < c.spec.min_domains() {
            0
        } else {
            counts.values().copied().min().unwrap_or_default()
        }
    }

    fn constraint_path(&self, c: &Compiled<'_>) -> JsonPath {
        self.pod.path.index(c.index)
    }

    /// Filter: why `node` is refused, by the first hard constraint it breaks.
    pub fn filter(&self, node: &Node) -> Option<Infeasible> {
        for (c, counts) in self.hard.iter().zip(&self.domains) {
            let key = c.spec.topology_key.as_str();
            let term = self.constraint_path(c).to_string();
            let Some(value) = node.topology_value(key) else {
                return Some(Infeasible {
                    reason: Reason::PodTopologySpreadMissingLabel,
                    message: format!(
                        "{}: the node has no {key} label, and every DoNotSchedule constraint's topology key must be on the node",
                        Reason::PodTopologySpreadMissingLabel.scheduler_message()
                    ),
                    term,
                    pod: None,
                    topology_key: key.to_owned(),
                    topology_value: None,
                    skew: None,
                });
            };
            let global_min = Self::global_min(c, counts);
            let self_match = i64::from(c.self_match);
            let matching = counts.get(value).copied().unwrap_or_default();
            let skew = matching + self_match - global_min;
            if skew <= i64::from(c.spec.max_skew) {
                continue;
            }
            let min_why = if (counts.len() as i64) < c.spec.min_domains() {
                format!(
                    "{} eligible domain(s), fewer than minDomains {}, so the global minimum counts as 0",
                    counts.len(),
                    c.spec.min_domains()
                )
            } else {
                format!(
                    "the fewest matching pods in any of the {} eligible domain(s)",
                    counts.len()
                )
            };
            let selfish = if c.self_match {
                "1 (the pod matches the selector itself)"
            } else {
                "0 (the pod does not match the selector)"
            };
            return Some(Infeasible {
                reason: Reason::PodTopologySpread,
                message: format!(
                    "{}: in {key}={value}, {matching} matching pod(s) + {selfish} − global minimum {global_min} ({min_why}) = skew {skew} > maxSkew {}",
                    Reason::PodTopologySpread.scheduler_message(),
                    c.spec.max_skew
                ),
                term,
                pod: None,
                topology_key: key.to_owned(),
                topology_value: Some(value.to_owned()),
                skew: Some(Skew {
                    matching_pods: matching,
                    self_match,
                    global_min,
                    skew,
                    max_skew: c.spec.max_skew.into(),
                    eligible_domains: counts.len(),
                    min_domains: c.spec.min_domains(),
                }),
            });
        }
        None
    }

    /// PreScore, Score and NormalizeScore over `feasible` (indices into the snapshot's
    /// nodes, the nodes that passed every simulated Filter); `None` when the pod has no
    /// `ScheduleAnyway` constraint (the plugin skips scoring and adds nothing).
    pub fn score(&self, feasible: &[usize]) -> Option<Scored> {
        if self.soft.is_empty() || self.nodes.is_empty() {
            return None;
        }
        let candidate = |i: &usize| self.nodes.get(*i).map(|n| (*i, n));
        let candidates: Vec<(usize, &Node)> = feasible.iter().filter_map(candidate).collect();
        let (scored, ignored): (Vec<_>, Vec<_>) = candidates
            .iter()
            .partition(|(_, n)| Self::has_keys(n, &self.soft));
        // Domains of the scored nodes, per constraint (hostname is counted per node).
        let mut counts: Vec<BTreeMap<&'c str, i64>> = vec![BTreeMap::new(); self.soft.len()];
        for (c, domains) in self.soft.iter().zip(counts.iter_mut()) {
            if c.spec.topology_key == HOSTNAME {
                continue;
            }
            for (_, n) in &scored {
                if let Some(v) = n.topology_value(&c.spec.topology_key) {
                    domains.entry(v).or_insert(0);
                }
            }
        }
        let weights: Vec<f64> = self
            .soft
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                let size = if c.spec.topology_key == HOSTNAME {
                    scored.len()
                } else {
                    domains.len()
                };
                (size as f64 + 2.0).ln()
            })
            .collect();
        // Matching pods: per domain over eligible nodes carrying every key; per node for
        // hostname, whatever the node inclusion policies say.
        let mut per_node: Vec<HashMap<usize, i64>> = vec![HashMap::new(); self.soft.len()];
        for &(i, labels) in &self.pods {
            let (Some(node), Some(&fit)) = (self.nodes.get(i), self.fits.get(i)) else {
                continue;
            };
            let complete = Self::has_keys(node, &self.soft);
            for ((c, domains), nodes) in self
                .soft
                .iter()
                .zip(counts.iter_mut())
                .zip(per_node.iter_mut())
            {
                if c.counts_nothing || !c.selector.matches_map(labels) {
                    continue;
                }
                if c.spec.topology_key == HOSTNAME {
                    *nodes.entry(i).or_default() += 1;
                } else if complete
                    && eligible(c, fit)
                    && let Some(n) = node
                        .topology_value(&c.spec.topology_key)
                        .and_then(|v| domains.get_mut(v))
                {
                    *n += 1;
                }
            }
        }
        let mut raw = BTreeMap::new();
        for (i, n) in &scored {
            let mut score = 0.0_f64;
            for (((c, domains), nodes), w) in
                self.soft.iter().zip(&counts).zip(&per_node).zip(&weights)
            {
                let Some(value) = n.topology_value(&c.spec.topology_key) else {
                    continue;
                };
                let count = if c.spec.topology_key == HOSTNAME {
                    nodes.get(i).copied().unwrap_or_default()
                } else {
                    domains.get(value).copied().unwrap_or_default()
                };
                score += count as f64 * w + (c.spec.max_skew - 1) as f64;
            }
            raw.insert(n.name.clone(), score.round() as i64);
        }
        let normalized = normalize(&raw);
        let mut all_raw = raw;
        let mut all_normalized = normalized;
        for (_, n) in &ignored {
            all_raw.insert(n.name.clone(), 0);
            all_normalized.insert(n.name.clone(), 0);
        }
        let reports = self
            .soft
            .iter()
            .zip(&counts)
            .zip(&per_node)
            .zip(&weights)
            .map(|(((c, domains), nodes), &w)| {
                let matching_pods = if c.spec.topology_key == HOSTNAME {
                    scored
                        .iter()
                        .map(|(i, n)| (n.name.clone(), nodes.get(i).copied().unwrap_or_default()))
                        .collect()
                } else {
                    domains.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
                };
                self.report(c, matching_pods, None, Some(w))
            })
            .collect();
        let ignored = ignored.iter().map(|(_, n)| n.name.clone()).collect();
        Some(Scored {
            normalized: all_normalized,
            raw: all_raw,
            reports,
            ignored,
        })
    }

    /// Every constraint's report in the pod's order: PreFilter's counts for the hard ones,
    /// PreScore's for the soft ones (when scoring ran).
    pub fn summary(&self, scored: Option<&Scored>) -> Spread {
        let hard = self.hard.iter().zip(&self.domains).map(|(c, counts)| {
            let matching = counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            (
                c.index,
                self.report(c, matching, Some(Self::global_min(c, counts)), None),
            )
        });
        let soft = scored.into_iter().flat_map(|s| {
            self.soft
                .iter()
                .zip(&s.reports)
                .map(|(c, r)| (c.index, r.clone()))
        });
        let mut constraints: Vec<(usize, ConstraintReport)> = hard.chain(soft).collect();
        constraints.sort_by_key(|(i, _)| *i);
        Spread {
            constraints: constraints.into_iter().map(|(_, r)| r).collect(),
            ignored_nodes: scored.map(|s| s.ignored.clone()).unwrap_or_default(),
        }
    }

    fn report(
        &self,
        c: &Compiled<'_>,
        matching_pods: BTreeMap<String, i64>,
        global_min: Option<i64>,
        topology_weight: Option<f64>,
    ) -> ConstraintReport {
        ConstraintReport {
            constraint: self.constraint_path(c).to_string(),
            topology_key: c.spec.topology_key.clone(),
            when_unsatisfiable: c.spec.when_unsatisfiable.clone(),
            max_skew: c.spec.max_skew.into(),
            min_domains: c.spec.is_hard().then(|| c.spec.min_domains()),
            node_affinity_policy: if c.spec.honors_node_affinity() {
                HONOR
            } else {
                IGNORE
            },
            node_taints_policy: if c.spec.honors_node_taints() {
                HONOR
            } else {
                IGNORE
            },
            selector: c.selector.describe(),
            self_match: c.self_match,
            matching_pods,
            global_min,
            topology_weight,
        }
    }

    /// Things worth knowing about the constraints: selectors that count no pod.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut all: Vec<&Compiled<'_>> = self.hard.iter().chain(&self.soft).collect();
        all.sort_by_key(|c| c.index);
        for c in all {
            let at = self.constraint_path(c);
            if c.selector.is_nothing() {
                out.push(format!(
                    "{at}: no labelSelector, which selects no pod: the constraint counts nothing (select the workload's pods by label)"
                ));
            } else if c.selector.is_everything() {
                out.push(format!(
                    "{at}: labelSelector {{}} selects every pod, but released kube-scheduler (1.27 and later, kubernetes/kubernetes#141339) counts no pod for a selector without requirements, so the constraint neither refuses nor prefers any node; select the workload's pods by label"
                ));
            }
        }
        out
    }
}

/// NormalizeScore: `100 × (max + min − s) / max` in integer arithmetic; every node 100 when
/// `max` is 0. `min` starts from the largest value and `max` from 0, as upstream's do.
fn normalize(raw: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let min = raw.values().copied().min().unwrap_or(i64::MAX);
    let max = raw.values().copied().fold(0, i64::max);
    raw.iter()
        .map(|(name, &s)| {
            let n = if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - s) / max
            };
            (name.clone(), n)
        })
        .collect()
}

/// Names of the nodes a plugin apart does not simulate would refuse, for a warning.
pub(crate) fn unsimulated_refusals<'n>(
    nodes: &'n [Node],
    fits: &[NodeFit],
) -> (Vec<&'n str>, Vec<&'n str>) {
    let pick = |f: fn(&NodeFit) -> bool| -> Vec<&'n str> {
        nodes
            .iter()
            .zip(fits)
            .filter(|(_, fit)| !f(fit))
            .map(|(n, _)| n.name.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    (pick(|f| f.affinity), pick(|f| f.taints))
}

#[cfg(test)]
mod tests {
    // Tests stop at the first surprise, with what it was.
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use serde_json::{Value, json};

    use super::*;
    use crate::kube::cluster::Cluster;
    use crate::placement::simulate::{IncomingPod, Options, Simulation, simulate};

    fn node(name: &str, labels: Value) -> Value {
        json!({"kind": "Node", "metadata": {"name": name, "labels": labels}})
    }

    /// Pods named `<node>-<i>`, `n` of them on `node`, labelled `foo: ""`.
    fn foos(node: &str, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                json!({"kind": "Pod", "metadata": {"name": format!("{node}-{i}"), "namespace": "default",
                       "labels": {"foo": ""}}, "spec": {"nodeName": node}, "status": {"phase": "Running"}})
            })
            .collect()
    }

    fn run(items: Vec<Value>, spec: Value) -> Simulation {
        let cluster = Cluster::from_value(&json!({"kind": "List", "items": items})).unwrap();
        let doc = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"foo": ""}}, "spec": spec});
        let pod = IncomingPod::from_json(doc.to_string().as_bytes()).unwrap();
        simulate(&cluster, &pod, &Options::default(), None).unwrap()
    }

    fn constraint(skew: i64, key: &str, when: &str) -> Value {
        json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
               "labelSelector": {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}})
    }

    /// Four nodes `a`, `b`, `x`, `y` in zones 1, 1, 2, 2, with `node` and hostname labels.
    fn four_nodes() -> Vec<Value> {
        [
            ("a", "zone1"),
            ("b", "zone1"),
            ("x", "zone2"),
            ("y", "zone2"),
        ]
        .into_iter()
        .map(|(n, z)| {
            node(
                n,
                json!({"zone": z, "node": n, "kubernetes.io/hostname": n}),
            )
        })
        .collect()
    }

    #[test]
    fn filter_keeps_domains_within_max_skew() {
        // Upstream: "pods spread across nodes as 2/1/0/3, only node-x fits".
        let mut items = four_nodes();
        for (n, k) in [("a", 2), ("b", 1), ("y", 3)] {
            items.extend(foos(n, k));
        }
        let sim = run(
            items.clone(),
            json!({"topologySpreadConstraints": [constraint(1, "node", "DoNotSchedule")]}),
        );
        assert_eq!(sim.feasible_nodes, ["x"]);
        let a = &sim.infeasible["a"];
        assert_eq!(a.reason, Reason::PodTopologySpread);
        let skew = a.skew.as_ref().unwrap();
        assert_eq!(
            (
                skew.matching_pods,
                skew.self_match,
                skew.global_min,
                skew.skew
            ),
            (2, 1, 0, 3)
        );
        // maxSkew 2: node-b and node-x fit.
        let sim = run(
            items,
            json!({"topologySpreadConstraints": [constraint(2, "node", "DoNotSchedule")]}),
        );
        assert_eq!(sim.feasible_nodes, ["b", "x"]);
    }

    #[test]
    fn a_node_without_the_key_is_refused_and_its_pods_are_not_counted() {
        // Upstream: "pods spread across zones as 1/2 due to absence of label 'zone' on node-b".
        let mut items = four_nodes();
        items[1] = node("b", json!({"zon": "zone1", "node": "b"}));
        for n in ["a", "b", "x", "y"] {
            items.extend(foos(n, 1));
        }
        let sim = run(
            items,
            json!({"topologySpreadConstraints": [constraint(1, "zone", "DoNotSchedule")]}),
        );
        assert_eq!(sim.feasible_nodes, ["a"]);
        assert_eq!(
            sim.infeasible["b"].reason,
            Reason::PodTopologySpreadMissingLabel
        );
        assert_eq!(sim.infeasible["x"].skew.as_ref().unwrap().skew, 2);
        let report = &sim.spread.as_ref().unwrap().constraints[0];
        assert_eq!(
            report.matching_pods,
            BTreeMap::from([("zone1".to_owned(), 1), ("zone2".to_owned(), 2)])
        );
    }

    #[test]
    fn fewer_domains_than_min_domains_make_the_global_minimum_zero() {
        // Upstream: "pods spread across nodes as 2/2/1, maxSkew is 2, and the number of
        // domains < minDomains, then the third node fits".
        let mut items: Vec<Value> = ["a", "b", "c"]
            .into_iter()
            .map(|n| node(n, json!({"node": n})))
            .collect();
        for (n, k) in [("a", 2), ("b", 2), ("c", 1)] {
            items.extend(foos(n, k));
        }
        let mut c = constraint(2, "node", "DoNotSchedule");
        c["minDomains"] = json!(4);
        let sim = run(
            items.clone(),
            json!({"topologySpreadConstraints": [c.clone()]}),
        );
        assert_eq!(sim.feasible_nodes, ["c"]);
        assert_eq!(sim.infeasible["a"].skew.as_ref().unwrap().global_min, 0);
        c["minDomains"] = json!(2);
        let sim = run(items, json!({"topologySpreadConstraints": [c]}));
        assert_eq!(sim.feasible_nodes, ["a", "b", "c"]);
    }

    #[test]
    fn node_inclusion_policies_choose_the_counted_nodes() {
        // Upstream: "NodeAffinityPolicy honored/ignored with labelSelectors" and
        // "NodeTaintsPolicy honored/ignored".
        let mut items: Vec<Value> = ["a", "b", "x"]
            .into_iter()
            .map(|n| node(n, json!({"node": n, "foo": ""})))
            .collect();
        items.push(json!({"kind": "Node", "metadata": {"name": "y", "labels": {"node": "y"}},
            "spec": {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}));
        for n in ["a", "b", "y"] {
            items.extend(foos(n, 1));
        }
        let with = |policy: Value| {
            let mut c = constraint(1, "node", "DoNotSchedule");
            if let Value::Object(m) = policy {
                c.as_object_mut().unwrap().extend(m);
            }
            c
        };
        let sim = run(
            items.clone(),
            json!({"nodeSelector": {"foo": ""}, "topologySpreadConstraints": [with(json!({}))]}),
        );
        assert_eq!(
            sim.feasible_nodes,
            ["x", "y"],
            "y is not counted: its domain holds 0"
        );
        assert!(
            sim.warnings
                .iter()
                .any(|w| w.contains("NodeAffinity filter") && w.contains(" y:"))
        );
        let sim = run(
            items.clone(),
            json!({"nodeSelector": {"foo": ""}, "topologySpreadConstraints": [with(json!({"nodeAffinityPolicy": "Ignore"}))]}),
        );
        assert_eq!(sim.feasible_nodes, ["x"]);
        let sim = run(
            items.clone(),
            json!({"topologySpreadConstraints": [with(json!({"nodeTaintsPolicy": "Honor"}))]}),
        );
        assert_eq!(sim.feasible_nodes, ["x", "y"]);
        assert!(
            sim.warnings
                .iter()
                .any(|w| w.contains("TaintToleration filter"))
        );
        let tolerated = json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}],
            "topologySpreadConstraints": [with(json!({"nodeTaintsPolicy": "Honor"}))]});
        assert_eq!(run(items, tolerated).feasible_nodes, ["x"]);
    }

    #[test]
    fn terminating_pods_and_other_namespaces_are_not_counted() {
        let mut items: Vec<Value> = ["a", "b"]
            .into_iter()
            .map(|n| node(n, json!({"node": n})))
            .collect();
        let mut going = foos("a", 1);
        going[0]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut elsewhere = foos("a", 1);
        elsewhere[0]["metadata"]["namespace"] = json!("other");
        elsewhere[0]["metadata"]["name"] = json!("elsewhere");
        items.extend(going);
        items.extend(elsewhere);
        items.extend(foos("b", 1));
        let sim = run(
            items,
            json!({"topologySpreadConstraints": [constraint(1, "node", "DoNotSchedule")]}),
        );
        assert_eq!(sim.feasible_nodes, ["a"]);
    }

    #[test]
    fn match_label_keys_narrow_the_count_to_the_pods_value() {
        // Upstream: "matchLabelKeys ANDed with LabelSelector when LabelSelector isn't empty".
        let mut items = four_nodes();
        let mut pods = foos("a", 2);
        pods[1]["metadata"]["labels"]["bar"] = json!("a");
        items.extend(pods);
        items.extend(foos("b", 1));
        let mut y = foos("y", 1);
        y[0]["metadata"]["labels"]["bar"] = json!("a");
        items.extend(y);
        let mut c = constraint(1, "zone", "DoNotSchedule");
        c["matchLabelKeys"] = json!(["bar"]);
        let cluster = Cluster::from_value(&json!({"kind": "List", "items": items})).unwrap();
        let doc = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"foo": "", "bar": "a"}},
            "spec": {"topologySpreadConstraints": [c]}});
        let pod = IncomingPod::from_json(doc.to_string().as_bytes()).unwrap();
        let sim = simulate(&cluster, &pod, &Options::default(), None).unwrap();
        let report = &sim.spread.as_ref().unwrap().constraints[0];
        assert_eq!(report.selector, "foo, bar=a");
        assert_eq!(
            report.matching_pods,
            BTreeMap::from([("zone1".to_owned(), 1), ("zone2".to_owned(), 1)])
        );
        assert_eq!(sim.feasible_nodes, ["a", "b", "x", "y"]);
    }

    #[test]
    fn an_empty_selector_counts_nothing_with_a_warning() {
        let mut items = four_nodes();
        items.extend(foos("a", 3));
        let mut c = constraint(1, "zone", "DoNotSchedule");
        c["labelSelector"] = json!({});
        let sim = run(items, json!({"topologySpreadConstraints": [c]}));
        assert_eq!(
            sim.feasible_nodes.len(),
            4,
            "released schedulers count no pod for {{}}"
        );
        assert!(sim.warnings.iter().any(|w| w.contains("141339")));
    }

    #[test]
    fn score_matches_upstream_normalization() {
        // Upstream: "one constraint on node, all 4 nodes are candidates" (2/1/0/3) and its
        // maxSkew=2 variant.
        let mut items = four_nodes();
        for (n, k) in [("a", 2), ("b", 1), ("y", 3)] {
            items.extend(foos(n, k));
        }
        let soft = |skew| json!({"topologySpreadConstraints": [constraint(skew, "kubernetes.io/hostname", "ScheduleAnyway")]});
        let sim = run(items.clone(), soft(1));
        let s = sim.spread_scores.unwrap();
        assert_eq!((s["a"], s["b"], s["x"], s["y"]), (20, 60, 100, 0));
        let raw = sim.spread_raw_scores.unwrap();
        assert_eq!((raw["a"], raw["b"], raw["x"], raw["y"]), (4, 2, 0, 5));
        assert_eq!(sim.chosen_node.as_deref(), Some("x"));
        assert_eq!(sim.combined_scores.unwrap()["x"], 200);
        let s = run(items, soft(2)).spread_scores.unwrap();
        assert_eq!((s["a"], s["b"], s["x"], s["y"]), (33, 66, 100, 16));
    }

    #[test]
    fn nodes_without_a_soft_key_are_ignored_and_score_zero() {
        // Upstream: "one constraint on node, 3 out of 4 nodes are candidates, one node
        // doesn't match topology key" (the fourth node, not a candidate, left out).
        let mut items = vec![
            node("a", json!({"kubernetes.io/hostname": "a"})),
            node("b", json!({"n": "b"})),
            node("x", json!({"kubernetes.io/hostname": "x"})),
        ];
        for (n, k) in [("a", 4), ("b", 2), ("x", 1)] {
            items.extend(foos(n, k));
        }
        let sim = run(
            items,
            json!({"topologySpreadConstraints": [constraint(1, "kubernetes.io/hostname", "ScheduleAnyway")]}),
        );
        let s = sim.spread_scores.unwrap();
        assert_eq!((s["a"], s["b"], s["x"]), (16, 0, 100));
        assert_eq!(sim.spread.unwrap().ignored_nodes, ["b"]);
    }

    #[test]
    fn normalizing_inverts_and_truncates_like_the_scheduler() {
        let raw: BTreeMap<String, i64> = [("a", 4), ("b", 2), ("c", 0), ("d", 5)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let n = normalize(&raw);
        assert_eq!((n["a"], n["b"], n["c"], n["d"]), (20, 60, 100, 0));
        let shifted: BTreeMap<String, i64> = [("a", 5), ("b", 3), ("c", 1), ("d", 6)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let n = normalize(&shifted);
        assert_eq!((n["a"], n["b"], n["c"], n["d"]), (33, 66, 100, 16));
        let zero: BTreeMap<String, i64> = [("a", 0), ("b", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert!(normalize(&zero).values().all(|&s| s == 100));
    }
}
