//! `apart simulate`: what kube-scheduler's InterPodAffinity plugin decides for one pod on a
//! cluster snapshot: which nodes its Filter lets through (and, for the others, which term
//! and which pod ruled them out), and the score its Score and NormalizeScore give each
//! feasible node. For a pod with `topologySpreadConstraints`, the PodTopologySpread plugin
//! ([`crate::placement::spread`]) runs beside it: its Filter first (the default profile's
//! order), then both Scores over the nodes both Filters let through, combined with the
//! default profile's weights ([`INTER_POD_AFFINITY_WEIGHT`], [`POD_TOPOLOGY_SPREAD_WEIGHT`]).
//!
//! The rules follow the plugin as upstream implements it (kubernetes/kubernetes,
//! `pkg/scheduler/framework/plugins/interpodaffinity/{filtering,scoring,plugin}.go` and
//! `AffinityTerm.Matches` in `pkg/scheduler/framework/types.go`):
//!
//! - *Existing pods* are the snapshot's pods bound to a node of the snapshot and not
//!   terminated ([`Cluster::placed`]); the scheduler's informer never sees the others.
//! - A term matches a pod when the pod's namespace is in the term's scope and its labels
//!   satisfy the selector. Scope: `namespaces` ∪ the namespaces `namespaceSelector` selects;
//!   neither field = the term owner's namespace; `namespaceSelector: {}` = every namespace.
//!   The incoming pod's selectors are resolved against the snapshot's Namespace objects
//!   (upstream lists namespaces at PreFilter); an existing pod's selector is matched against
//!   the labels of the incoming pod's namespace (upstream's namespace-labels snapshot).
//! - `matchLabelKeys`/`mismatchLabelKeys` add `key in (value)`/`key notin (value)` with the
//!   term owner's value, for keys the owner carries, to a non-null selector (the API server
//!   does it when the pod is created; for existing pods, whose stored selectors already hold
//!   the merge, doing it again changes nothing).
//! - Filter, in upstream's order, first failure reported:
//!   1. the incoming pod's required affinity: the node must carry every term's topology key,
//!      and for every term some existing pod that matches *all* the terms must run in the
//!      node's domain of that term. Exception for the first pod of a group: when no existing
//!      pod (on a node carrying the topology key) matches all the terms, and the incoming
//!      pod matches all of them itself, a node carrying every key passes;
//!   2. the incoming pod's required anti-affinity: a node is refused when a pod matching a
//!      term runs in the node's domain for that term's key; a node without the key is not
//!      affected by the term;
//!   3. existing pods' required anti-affinity (symmetry): a node is refused when it shares a
//!      domain with an existing pod whose term matches the incoming pod.
//! - Score, summed per topology domain then per node: the incoming pod's preferred affinity
//!   (+weight) and anti-affinity (−weight) for every existing pod they match; every existing
//!   pod's preferred affinity (+weight), preferred anti-affinity (−weight) and required
//!   affinity (+`hardPodAffinityWeight`, default 1, 0 turns it off) that match the incoming
//!   pod. A domain counts on a node carrying the same key and value.
//! - NormalizeScore, over the feasible nodes only: `trunc(100 × (s − min) / (max − min))`
//!   computed in `f64` as upstream does; all equal (or nothing matched at all) gives 0.
//!
//! Where a snapshot cannot say what the scheduler would see, apart assumes:
//! - a namespace that has pods but no Namespace object exists, carrying only its
//!   `kubernetes.io/metadata.name` label (every namespace carries it);
//! - a Pod document already placed in the snapshot is that pod: it is not counted against
//!   itself;
//! - a workload's pod carries its template's labels, and labels its controller adds
//!   (`pod-template-hash`, ...) take a value no existing pod has, as for a new rollout;
//! - an existing pod whose term the API server would refuse loses that term's whole group
//!   (as the scheduler drops a group it cannot parse), with a warning.
//!
//! The chosen node is the feasible node with the highest combined score, ties going to the
//! first name in byte order; kube-scheduler adds other plugins' scores and picks among ties at
//! random. Only these two plugins are simulated: resources, taints and node affinity are not
//! (a warning names the nodes the NodeAffinity and TaintToleration filters would refuse).
//!
//! ```
//! use apart_policy::kube::cluster::Cluster;
//! use apart_policy::placement::simulate::{simulate, IncomingPod, Options};
//!
//! let cluster = Cluster::from_json(br#"{"kind": "List", "items": [
//!   {"kind": "Node", "metadata": {"name": "a", "labels": {"kubernetes.io/hostname": "a"}}},
//!   {"kind": "Node", "metadata": {"name": "b", "labels": {"kubernetes.io/hostname": "b"}}},
//!   {"kind": "Pod", "metadata": {"name": "web-0", "labels": {"app": "web"}},
//!    "spec": {"nodeName": "a"}, "status": {"phase": "Running"}}]}"#).unwrap();
//! let pod = IncomingPod::from_json(br#"{"apiVersion": "v1", "kind": "Pod",
//!   "metadata": {"name": "web-1", "labels": {"app": "web"}},
//!   "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
//!     {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}}}}"#).unwrap();
//! let decision = simulate(&cluster, &pod, &Options::default(), None).unwrap();
//! assert_eq!(decision.feasible_nodes, ["b"]);
//! assert_eq!(decision.infeasible["a"].pod.as_deref(), Some("default/web-0"));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

use crate::error::ObjectError;
use crate::kube::affinity::{
    self, Affinity, AffinityKey, AffinityProblem, NAMESPACE_NAME_LABEL, NamespaceFacts, PodFacts,
    Term, TermScope,
};
use crate::kube::cluster::{Cluster, ClusterPod, Node};
use crate::kube::object::{self, AffinitySlot, Origin};
use crate::kube::scheduling::SchedulingSpec;
use crate::placement::spread::{self, Skew, Spread, SpreadPod};
use crate::rules::policy::Policy;
use crate::source::path::JsonPath;

/// kube-scheduler's default `hardPodAffinityWeight` (InterPodAffinityArgs).
pub const DEFAULT_HARD_POD_AFFINITY_WEIGHT: i64 = 1;
/// The highest score a plugin gives a node (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;
/// InterPodAffinity's score weight in kube-scheduler's default profile
/// (`pkg/scheduler/apis/config/v1/default_plugins.go`).
pub const INTER_POD_AFFINITY_WEIGHT: i64 = 2;
/// PodTopologySpread's score weight in kube-scheduler's default profile.
pub const POD_TOPOLOGY_SPREAD_WEIGHT: i64 = 2;

/// The plugin's arguments (`InterPodAffinityArgs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Weight of an existing pod's required affinity term that matches the incoming pod,
    /// 0..=100 (0 disables it).
    pub hard_pod_affinity_weight: i64,
    /// Skip scoring when the incoming pod has no preferred terms of its own.
    pub ignore_preferred_terms_of_existing_pods: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            hard_pod_affinity_weight: DEFAULT_HARD_POD_AFFINITY_WEIGHT,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    /// The pod document cannot be read.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The document carries no pod.
    #[error(
        "a {kind:?} carries no pod template: pass a Pod or a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob)"
    )]
    NotAPod {
        /// The document's kind.
        kind: String,
    },
    /// The pod's affinity would be refused by the API server.
    #[error("{}", describe_problems(problems))]
    InvalidAffinity {
        /// Every problem, with its path inside the pod document.
        problems: Vec<AffinityProblem>,
    },
    /// The pod's other scheduling fields (`topologySpreadConstraints`, `nodeSelector`,
    /// `nodeAffinity`, `tolerations`) would be refused by the API server.
    #[error("{}", describe_problems(problems))]
    InvalidScheduling {
        /// Every problem, with its path inside the pod document.
        problems: Vec<AffinityProblem>,
    },
    /// `hardPodAffinityWeight` outside what kube-scheduler accepts.
    #[error("hardPodAffinityWeight {0} is out of range: kube-scheduler accepts 0 to 100")]
    HardPodAffinityWeight(i64),
}

fn describe_problems(problems: &[AffinityProblem]) -> String {
    problems
        .iter()
        .map(|p| {
            format!(
                "{}: the API server would reject this: {}",
                p.path, p.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pod to place, as the API server will store it.
#[derive(Debug, Clone)]
pub struct IncomingPod {
    /// The document's kind (`Pod`, `Deployment`, ...).
    pub kind: String,
    /// The pod's name, for a Pod document (a snapshot pod of the same namespace and name is
    /// this pod, already placed, and is not counted against itself).
    pub name: Option<String>,
    /// The pod's namespace (the document's, or `default`).
    pub namespace: String,
    /// The pod's labels. Labels its controller adds (`pod-template-hash`, ...) carry a value
    /// no existing pod has, as for the first pod of a new rollout.
    pub labels: BTreeMap<String, String>,
    /// Its affinity.
    pub affinity: Option<Affinity>,
    /// Where the affinity is in the document.
    pub affinity_path: JsonPath,
    /// Its node selector, node affinity, tolerations and topology spread constraints.
    pub scheduling: SchedulingSpec,
    /// Where the pod spec is in the document.
    pub spec_path: JsonPath,
}

/// The value a controller-added label takes on the simulated pod: not a valid label value,
/// so no existing pod can carry it.
fn new_controller_value(key: &str) -> String {
    format!("<{key} of the new pod>")
}

impl IncomingPod {
    /// Reads a Pod or a workload (its pod template) from JSON text.
    pub fn from_json(json: &[u8]) -> Result<Self, SimulateError> {
        let read = object::read(json, "default", &[])?;
        let kind = read.object.kind.clone();
        let Some(source) = read
            .sources
            .into_iter()
            .find(|s| s.origin == Origin::Template)
        else {
            return Err(SimulateError::NotAPod { kind });
        };
        let affinity = match source.affinity {
            // A pod template's affinity is never a value target's unselected one.
            AffinitySlot::Absent | AffinitySlot::Unselected { .. } => None,
            AffinitySlot::Present(a) => Some(a),
            AffinitySlot::Unreadable { path, message } => {
                return Err(SimulateError::InvalidAffinity {
                    problems: vec![AffinityProblem { path, message }],
                });
            }
        };
        let mut labels = source.labels;
        for key in source.controller_keys {
            labels
                .entry((*key).to_owned())
                .or_insert_with(|| new_controller_value(key));
        }
        let name = (kind == "Pod").then_some(read.object.name).flatten();
        let mut spec_path = source.affinity_path.clone();
        spec_path.pop();
        let scheduling = read_scheduling(json, &spec_path)?;
        Ok(Self {
            kind,
            name,
            namespace: source.namespace,
            labels,
            affinity,
            affinity_path: source.affinity_path,
            scheduling,
            spec_path,
        })
    }
}

/// Reads the pod spec's scheduling fields and checks them as the API server would (the
/// document is one pod, read again whole: its size does not matter).
fn read_scheduling(json: &[u8], spec_path: &JsonPath) -> Result<SchedulingSpec, SimulateError> {
    let whole: serde_json::Value = serde_json::from_slice(json).map_err(|e| ObjectError {
        message: format!("cannot read the object: {e}"),
    })?;
    let Some(spec) = spec_path.get(&whole) else {
        return Ok(SchedulingSpec::default());
    };
    let scheduling: SchedulingSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = spec_path.join(&crate::error::serde_path(e.path()));
        SimulateError::InvalidScheduling {
            problems: vec![AffinityProblem {
                path,
                message: e.into_inner().to_string(),
            }],
        }
    })?;
    let problems = scheduling.problems(spec_path);
    if problems.is_empty() {
        Ok(scheduling)
    } else {
        Err(SimulateError::InvalidScheduling { problems })
    }
}

/// Which Filter check refused a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The incoming pod's required affinity.
    PodAffinity,
    /// The incoming pod's required anti-affinity.
    PodAntiAffinity,
    /// An existing pod's required anti-affinity that matches the incoming pod.
    ExistingPodAntiAffinity,
    /// A `DoNotSchedule` topology spread constraint: placing the pod there would exceed
    /// `maxSkew`.
    PodTopologySpread,
    /// A `DoNotSchedule` topology spread constraint whose topology key the node lacks.
    PodTopologySpreadMissingLabel,
}

impl Reason {
    /// kube-scheduler's status message for this failure.
    pub fn scheduler_message(self) -> &'static str {
        match self {
            Self::PodAffinity => "node(s) didn't match pod affinity rules",
            Self::PodAntiAffinity => "node(s) didn't match pod anti-affinity rules",
            Self::ExistingPodAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules"
            }
            Self::PodTopologySpread => "node(s) didn't match pod topology spread constraints",
            Self::PodTopologySpreadMissingLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
            }
        }
    }
}

/// Why a node is not feasible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Infeasible {
    /// The check that refused it.
    pub reason: Reason,
    /// kube-scheduler's message, then what exactly happened.
    pub message: String,
    /// JSONPath of the term: in the pod document for the incoming pod's terms and
    /// topology spread constraints, in the snapshot (`$.items[i]...`) for an existing pod's.
    pub term: String,
    /// The existing pod (`namespace/name`) that ruled the node out, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The term's topology key.
    pub topology_key: String,
    /// The node's value for it (null when the node lacks the label).
    pub topology_value: Option<String>,
    /// For a topology spread constraint's refusal: the numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew: Option<Skew>,
}

/// Whether the chosen node keeps the pod apart from a policy's peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Apartness {
    /// The policy whose subject the pod is.
    pub policy: String,
    /// The policy's failure domain.
    pub topology_key: String,
    /// The chosen node (null when no node is feasible).
    pub node: Option<String>,
    /// The chosen node's value for the topology key (null when it has none: such a node is
    /// in no domain, as the scheduler sees it).
    pub domain: Option<String>,
    /// True when no peer runs in that domain; null when no node is feasible.
    pub apart: Option<bool>,
    /// Peer pods (`namespace/name`) in the chosen node's domain.
    pub peers: Vec<String>,
}

/// What the plugins decide for the pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// Nodes both Filters let through, by name.
    pub feasible_nodes: Vec<String>,
    /// InterPodAffinity's NormalizeScore result (0..=100) for each feasible node.
    pub scores: BTreeMap<String, i64>,
    /// InterPodAffinity's Score result (the sum of weights) for each feasible node, before
    /// normalizing.
    pub raw_scores: BTreeMap<String, i64>,
    /// PodTopologySpread's NormalizeScore result (0..=100) for each feasible node, when the
    /// pod has `ScheduleAnyway` constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread_scores: Option<BTreeMap<String, i64>>,
    /// PodTopologySpread's Score result (rounded) for each feasible node, before normalizing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread_raw_scores: Option<BTreeMap<String, i64>>,
    /// Both plugins' normalized scores times their default weights
    /// ([`INTER_POD_AFFINITY_WEIGHT`] × `scores` + [`POD_TOPOLOGY_SPREAD_WEIGHT`] ×
    /// `spread_scores`), when the pod has topology spread constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub combined_scores: Option<BTreeMap<String, i64>>,
    /// Why each other node was refused (PodTopologySpread's Filter runs first, as in
    /// kube-scheduler's default profile: a node both refuse shows its reason).
    pub infeasible: BTreeMap<String, Infeasible>,
    /// What PodTopologySpread saw for each of the pod's constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// The feasible node with the highest combined score; ties go to the first name in byte
    /// order (kube-scheduler picks among ties at random and adds other plugins' scores).
    pub chosen_node: Option<String>,
    /// With policies: one entry per policy whose subject the pod is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<Apartness>>,
    /// Things about the input worth knowing (dropped terms, unknown namespaces).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// An existing pod's terms, grouped as the scheduler's PodInfo holds them.
#[derive(Default)]
struct PodTerms<'a> {
    required_affinity: Vec<Term<'a>>,
    required_anti_affinity: Vec<Term<'a>>,
    preferred_affinity: Vec<Term<'a>>,
    preferred_anti_affinity: Vec<Term<'a>>,
}

impl PodTerms<'_> {
    fn is_empty(&self) -> bool {
        self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty()
    }
}

/// A placed pod and its node.
struct Placed<'a> {
    pod: &'a ClusterPod,
    node: &'a Node,
    /// The node's position in the snapshot.
    position: usize,
}

/// Labels of a namespace as a label lookup. A namespace missing from the snapshot still
/// exists (pods run in it), carrying at least its name label.
fn namespace_label<'a>(
    facts: &'a NamespaceFacts,
    namespace: &'a str,
) -> impl FnMut(&str) -> Option<&'a str> {
    let labels = facts.get(namespace);
    move |key| {
        if key == NAMESPACE_NAME_LABEL {
            Some(namespace)
        } else {
            labels.and_then(|l| l.get(key)).map(String::as_str)
        }
    }
}

/// Is namespace `namespace` in the term's scope? `namespaces` ∪ selected ones (`Term`'s
/// scope already holds the owner's namespace when neither field is written).
fn in_scope(scope: &TermScope, namespace: &str, facts: &NamespaceFacts) -> bool {
    scope.names.contains(namespace)
        || scope
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(namespace_label(facts, namespace)))
}

/// `AffinityTerm.Matches`: the selector first (it rules out most pods), then the scope.
fn matches(
    term: &Term<'_>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    facts: &NamespaceFacts,
) -> bool {
    term.selector.matches_map(labels) && in_scope(&term.scope, namespace, facts)
}

fn pod_ref(pod: &ClusterPod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// The term's path as reported: the `PodAffinityTerm` for required terms, the
/// `WeightedPodAffinityTerm` for preferred ones. An existing pod's terms are compiled with
/// paths relative to its affinity, so that its replicas can share them: `pod` anchors them.
fn term_path(term: &Term<'_>, pod: Option<&ClusterPod>) -> String {
    let path = term.weighted_path.as_ref().unwrap_or(&term.path);
    match pod {
        None => path.to_string(),
        Some(p) => affinity_base(p).join(path).to_string(),
    }
}

/// Where an existing pod's affinity is in the snapshot.
fn affinity_base(pod: &ClusterPod) -> JsonPath {
    pod.path.name("spec").name("affinity")
}

/// What an existing pod's compiled terms depend on: its namespace (the default scope), its
/// affinity, and its values for the terms' `matchLabelKeys`/`mismatchLabelKeys`.
#[derive(PartialEq, Eq, Hash)]
struct TermsKey<'a> {
    namespace: &'a str,
    affinity: AffinityKey<'a>,
    label_values: Vec<Option<&'a str>>,
}

impl<'a> TermsKey<'a> {
    fn of(pod: &'a ClusterPod, affinity: &'a Affinity) -> Self {
        let mut label_values = Vec::new();
        for (_, group, _) in affinity::groups(affinity) {
            let Some(group) = group else { continue };
            let required = group.required().iter();
            let preferred = group.preferred().iter().map(|w| &w.pod_affinity_term);
            for term in required.chain(preferred) {
                let keys = term.match_label_keys.iter().flatten();
                for key in keys.chain(term.mismatch_label_keys.iter().flatten()) {
                    label_values.push(pod.labels.get(key).map(String::as_str));
                }
            }
        }
        Self {
            namespace: &pod.namespace,
            affinity: AffinityKey(affinity),
            label_values,
        }
    }
}

/// Splits compiled terms into the scheduler's four groups. A group with a term the API
/// server would refuse is dropped whole, as the scheduler drops a group it cannot parse.
fn group_terms<'a>(
    affinity: &'a Affinity,
    base: &JsonPath,
    pod: &PodFacts<'_>,
) -> (PodTerms<'a>, Vec<AffinityProblem>) {
    let compiled = affinity::compile(affinity, base, pod);
    let mut out = PodTerms::default();
    let broken = |field: &str, kind: &str| {
        if compiled.problems.is_empty() {
            return false;
        }
        let prefix = base.name(field).name(kind);
        compiled
            .problems
            .iter()
            .any(|p| p.path.segments().starts_with(prefix.segments()))
    };
    let keep = [
        broken(
            "podAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
        ),
        broken(
            "podAffinity",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ),
        broken(
            "podAntiAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
        ),
        broken(
            "podAntiAffinity",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ),
    ]
    .map(|b| !b);
    let [req_aff, pref_aff, req_anti, pref_anti] = keep;
    for t in compiled.affinity {
        match (t.required(), req_aff, pref_aff) {
            (true, true, _) => out.required_affinity.push(t),
            (false, _, true) => out.preferred_affinity.push(t),
            _ => {}
        }
    }
    for t in compiled.anti_affinity {
        match (t.required(), req_anti, pref_anti) {
            (true, true, _) => out.required_anti_affinity.push(t),
            (false, _, true) => out.preferred_anti_affinity.push(t),
            _ => {}
        }
    }
    (out, compiled.problems)
}

/// A topology domain: (key, value).
type Pair<'a> = (&'a str, &'a str);

/// FxHash, the multiply-rotate hash rustc uses: several times cheaper than SipHash on the
/// short strings and affinities hashed here, once per pod. The input is the user's own
/// snapshot, so SipHash's resistance to crafted collisions buys nothing.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(<[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes));
        }
        for &b in words.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// What PreFilter and PreScore gather. Both visit every placed pod; one pass reads each
/// pod's labels once instead of twice (at 150,000 pods the reads, not the matching, cost).
#[derive(Default)]
struct State<'a, 't> {
    /// Domains holding a pod that matches *all* the incoming pod's required affinity terms
    /// (domains of nodes carrying the key only: the scheduler counts nothing else).
    affinity_counts: FxMap<Pair<'a>, u64>,
    /// Domains holding a pod that matches one of its required anti-affinity terms: the
    /// first such (placed pod, term) in snapshot order, to name it.
    anti_counts: FxMap<Pair<'a>, (usize, usize)>,
    /// Domains of existing pods whose required anti-affinity matches the incoming pod.
    existing_counts: FxMap<Pair<'a>, (usize, &'t Term<'a>)>,
    /// Summed weights per topology key and value (PreScore's `topologyScore`).
    topology_score: FxMap<&'a str, FxMap<&'a str, i64>>,
}

impl<'a> State<'a, '_> {
    fn add_score(&mut self, node: &'a Node, key: &str, weight: i64) {
        if let Some((k, v)) = node.labels.get_key_value(key) {
            *self
                .topology_score
                .entry(k.as_str())
                .or_default()
                .entry(v.as_str())
                .or_default() += weight;
        }
    }
}

/// Simulates the plugin for `pod` on `cluster`. With `policies`, also says whether the chosen
/// node keeps the pod apart from the peers of every policy whose subject it is.
pub fn simulate(
    cluster: &Cluster,
    pod: &IncomingPod,
    options: &Options,
    policies: Option<&[Policy]>,
) -> Result<Simulation, SimulateError> {
    if !(0..=100).contains(&options.hard_pod_affinity_weight) {
        return Err(SimulateError::HardPodAffinityWeight(
            options.hard_pod_affinity_weight,
        ));
    }
    let facts = &cluster.namespaces;
    let mut warnings = Vec::new();

    // The incoming pod's terms, checked as the API server checks them: a pod it would refuse
    // is never scheduled.
    let empty = Affinity::default();
    let affinity = pod.affinity.as_ref().unwrap_or(&empty);
    let own = PodFacts {
        namespace: &pod.namespace,
        labels: &pod.labels,
        controller_keys: &[],
    };
    let (incoming, problems) = group_terms(affinity, &pod.affinity_path, &own);
    if !problems.is_empty() {
        return Err(SimulateError::InvalidAffinity { problems });
    }
    if !facts.is_empty() && facts.get(&pod.namespace).is_none() {
        warnings.push(format!(
            "namespace {:?} is not in the snapshot: apart assumes it carries only its {NAMESPACE_NAME_LABEL} label",
            pod.namespace
        ));
    }

    // Existing pods. A Pod document that is already placed is the pod itself: the scheduler
    // never sees a pod as both pending and placed.
    let is_self = |p: &ClusterPod| {
        pod.name
            .as_deref()
            .is_some_and(|n| n == p.name && pod.namespace == p.namespace)
    };
    let placed: Vec<Placed<'_>> = cluster
        .placed_at()
        .filter(|(p, _, _)| !is_self(p))
        .map(|(pod, position, node)| Placed {
            pod,
            node,
            position,
        })
        .collect();
    // Their terms: replicas share one affinity, so each distinct one compiles once.
    let mut memo: FxMap<TermsKey<'_>, usize> = FxMap::default();
    let mut compiled: Vec<(PodTerms<'_>, Vec<AffinityProblem>)> = Vec::new();
    let mut uses: Vec<(usize, usize)> = Vec::new();
    for (i, p) in placed.iter().enumerate() {
        let Some(affinity) = &p.pod.affinity else {
            continue;
        };
        let key = TermsKey::of(p.pod, affinity);
        let slot = match memo.get(&key) {
            Some(&slot) => slot,
            None => {
                let owner = PodFacts {
                    namespace: &p.pod.namespace,
                    labels: &p.pod.labels,
                    controller_keys: &[],
                };
                compiled.push(group_terms(affinity, &JsonPath::root(), &owner));
                memo.insert(key, compiled.len() - 1);
                compiled.len() - 1
            }
        };
        uses.push((i, slot));
    }
    let mut existing: Vec<(usize, &PodTerms<'_>)> = Vec::new();
    for &(i, slot) in &uses {
        let (Some((terms, problems)), Some(p)) = (compiled.get(slot), placed.get(i)) else {
            continue;
        };
        if let Some(first) = problems.first() {
            warnings.push(format!(
                "{} ({}): the scheduler drops the group of terms holding {}: {}",
                pod_ref(p.pod),
                p.pod.path,
                affinity_base(p.pod).join(&first.path),
                first.message
            ));
        }
        if !terms.is_empty() {
            existing.push((i, terms));
        }
    }

    // PodTopologySpread's PreFilter, then both Filters in the default profile's order.
    let spread_pod = SpreadPod {
        namespace: &pod.namespace,
        labels: &pod.labels,
        constraints: pod
            .scheduling
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default(),
        path: &pod.spec_path.name("topologySpreadConstraints"),
        node_affinity: &pod.scheduling.required_node_affinity(),
        tolerations: pod.scheduling.tolerations.as_deref().unwrap_or_default(),
    };
    let spreading = spread::Plugin::new(
        &spread_pod,
        &cluster.nodes,
        placed.iter().map(|p| (p.pod, p.position)),
    );
    let state = gather(pod, options, facts, &placed, &existing, &incoming, affinity);
    let mut infeasible = filter(cluster, pod, facts, &placed, &incoming, &state);
    if spreading.is_active() {
        for node in &cluster.nodes {
            if let Some(why) = spreading.filter(node) {
                infeasible.insert(node.name.as_str(), why);
            }
        }
    }
    warnings.extend(spreading.warnings());
    let (off_affinity, off_taints) = spread::unsimulated_refusals(&cluster.nodes, spreading.fits());
    if !off_affinity.is_empty() {
        warnings.push(format!(
            "kube-scheduler's NodeAffinity filter, which apart does not simulate, would refuse {}: the pod's nodeSelector or required node affinity does not match",
            off_affinity.join(", ")
        ));
    }
    if !off_taints.is_empty() {
        warnings.push(format!(
            "kube-scheduler's TaintToleration filter, which apart does not simulate, would refuse {}: a NoSchedule or NoExecute taint the pod does not tolerate",
            off_taints.join(", ")
        ));
    }
    let feasible: Vec<&Node> = cluster
        .nodes
        .iter()
        .filter(|n| !infeasible.contains_key(n.name.as_str()))
        .collect();

    // Score: the node's value for each scored key picks its domain's sum.
    let raw = &state.topology_score;
    let mut raw_scores = BTreeMap::new();
    for node in &feasible {
        let s: i64 = raw
            .iter()
            .filter_map(|(key, values)| {
                node.topology_value(key)
                    .and_then(|v| values.get(v))
                    .copied()
            })
            .sum();
        raw_scores.insert(node.name.clone(), s);
    }
    let scores = normalize(&raw_scores, !raw.is_empty());

    // PodTopologySpread's PreScore, Score and NormalizeScore, over the same feasible nodes.
    let positions: Vec<usize> = feasible
        .iter()
        .filter_map(|n| cluster.node_position(&n.name))
        .collect();
    let scored = spreading.score(&positions);
    let spread = spreading
        .is_active()
        .then(|| spreading.summary(scored.as_ref()));
    let (spread_scores, spread_raw_scores) = match scored {
        Some(s) => (Some(s.normalized), Some(s.raw)),
        None => (None, None),
    };
    // Each plugin's normalized score times its weight, summed, as the framework does.
    let combined: BTreeMap<String, i64> = scores
        .iter()
        .map(|(name, &s)| {
            let spread = spread_scores
                .as_ref()
                .and_then(|m| m.get(name))
                .copied()
                .unwrap_or_default();
            (
                name.clone(),
                INTER_POD_AFFINITY_WEIGHT * s + POD_TOPOLOGY_SPREAD_WEIGHT * spread,
            )
        })
        .collect();

    let mut feasible_nodes: Vec<String> = feasible.iter().map(|n| n.name.clone()).collect();
    feasible_nodes.sort();
    // BTreeMap order is byte order of names: the first maximum wins ties.
    let chosen_node = combined
        .iter()
        .fold(None::<(&String, i64)>, |best, (name, &s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((name, s)),
        })
        .map(|(name, _)| name.clone());

    let policies = policies.map(|ps| {
        apartness(
            ps,
            pod,
            facts,
            &placed,
            chosen_node.as_deref().and_then(|n| cluster.node(n)),
        )
    });
    if policies.as_ref().is_some_and(Vec::is_empty) {
        warnings.push(format!(
            "the pod ({}/{}) is the subject of no policy",
            pod.namespace,
            pod.name.as_deref().unwrap_or(&pod.kind)
        ));
    }

    Ok(Simulation {
        feasible_nodes,
        scores,
        raw_scores,
        spread_scores,
        spread_raw_scores,
        combined_scores: spread.is_some().then_some(combined),
        infeasible: infeasible
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        spread,
        chosen_node,
        policies,
        warnings,
    })
}

/// PreFilter and PreScore: one pass over the placed pods for the incoming pod's terms, one
/// over the existing pods' terms.
#[allow(clippy::too_many_arguments)] // Upstream's cycle state, spelled out.
fn gather<'a, 't>(
    pod: &IncomingPod,
    options: &Options,
    facts: &NamespaceFacts,
    placed: &[Placed<'a>],
    existing: &[(usize, &'t PodTerms<'a>)],
    incoming: &PodTerms<'_>,
    affinity: &Affinity,
) -> State<'a, 't> {
    let mut state = State::default();
    let req_aff = &incoming.required_affinity;
    let req_anti = &incoming.required_anti_affinity;
    // Upstream asks whether the pod *wrote* preferred terms, not whether they compiled.
    let has_preferred = affinity::groups(affinity)
        .iter()
        .any(|(_, g, _)| g.is_some_and(|g| !g.preferred().is_empty()));
    // ignorePreferredTermsOfExistingPods skips PreScore altogether for such a pod.
    let scoring = has_preferred || !options.ignore_preferred_terms_of_existing_pods;
    let weight = |t: &Term<'_>| t.weight.unwrap_or_default();

    let scan = !req_aff.is_empty() || !req_anti.is_empty() || (scoring && has_preferred);
    let pods = if scan { placed } else { &[] };
    for (i, p) in pods.iter().enumerate() {
        let (ns, labels) = (p.pod.namespace.as_str(), &p.pod.labels);
        if !req_aff.is_empty() && req_aff.iter().all(|t| matches(t, ns, labels, facts)) {
            for t in req_aff {
                if let Some((k, v)) = p.node.labels.get_key_value(&t.spec.topology_key) {
                    *state
                        .affinity_counts
                        .entry((k.as_str(), v.as_str()))
                        .or_default() += 1;
                }
            }
        }
        for (j, t) in req_anti.iter().enumerate() {
            if let Some((k, v)) = p.node.labels.get_key_value(&t.spec.topology_key)
                && matches(t, ns, labels, facts)
            {
                state
                    .anti_counts
                    .entry((k.as_str(), v.as_str()))
                    .or_insert((i, j));
            }
        }
        if scoring && has_preferred {
            for t in &incoming.preferred_affinity {
                if matches(t, ns, labels, facts) {
                    state.add_score(p.node, &t.spec.topology_key, weight(t));
                }
            }
            for t in &incoming.preferred_anti_affinity {
                if matches(t, ns, labels, facts) {
                    state.add_score(p.node, &t.spec.topology_key, -weight(t));
                }
            }
        }
    }

    let hard = options.hard_pod_affinity_weight;
    let (ns, labels) = (pod.namespace.as_str(), &pod.labels);
    for &(i, terms) in existing {
        let Some(p) = placed.get(i) else { continue };
        for t in &terms.required_anti_affinity {
            if let Some((k, v)) = p.node.labels.get_key_value(&t.spec.topology_key)
                && matches(t, ns, labels, facts)
            {
                state
                    .existing_counts
                    .entry((k.as_str(), v.as_str()))
                    .or_insert((i, t));
            }
        }
        if !scoring {
            continue;
        }
        if hard > 0 {
            for t in &terms.required_affinity {
                if matches(t, ns, labels, facts) {
                    state.add_score(p.node, &t.spec.topology_key, hard);
                }
            }
        }
        for t in &terms.preferred_affinity {
            if matches(t, ns, labels, facts) {
                state.add_score(p.node, &t.spec.topology_key, weight(t));
            }
        }
        for t in &terms.preferred_anti_affinity {
            if matches(t, ns, labels, facts) {
                state.add_score(p.node, &t.spec.topology_key, -weight(t));
            }
        }
    }
    state
}

/// Filter: the refused nodes, each with its reason, in upstream's order of checks.
fn filter<'a>(
    cluster: &'a Cluster,
    pod: &IncomingPod,
    facts: &NamespaceFacts,
    placed: &[Placed<'a>],
    incoming: &PodTerms<'_>,
    state: &State<'a, '_>,
) -> BTreeMap<&'a str, Infeasible> {
    let req_aff = &incoming.required_affinity;
    // The first-pod exception needs the pod to match its own terms.
    let matches_itself = !req_aff.is_empty()
        && req_aff
            .iter()
            .all(|t| matches(t, &pod.namespace, &pod.labels, facts));
    let mut out = BTreeMap::new();
    for node in &cluster.nodes {
        let verdict = pod_affinity(node, req_aff, &state.affinity_counts, matches_itself)
            .or_else(|| {
                pod_anti_affinity(
                    node,
                    &incoming.required_anti_affinity,
                    &state.anti_counts,
                    placed,
                )
            })
            .or_else(|| existing_anti_affinity(node, &state.existing_counts, placed));
        if let Some(v) = verdict {
            out.insert(node.name.as_str(), v);
        }
    }
    out
}

fn pod_affinity(
    node: &Node,
    terms: &[Term<'_>],
    counts: &FxMap<Pair<'_>, u64>,
    matches_itself: bool,
) -> Option<Infeasible> {
    let mut unmatched: Option<(&Term<'_>, &str)> = None;
    for t in terms {
        let key = t.spec.topology_key.as_str();
        let Some(value) = node.topology_value(key) else {
            return Some(Infeasible {
                reason: Reason::PodAffinity,
                message: format!(
                    "{}: the node has no {key} label, and every required affinity term's topology key must be on the node",
                    Reason::PodAffinity.scheduler_message()
                ),
                term: term_path(t, None),
                pod: None,
                topology_key: key.to_owned(),
                topology_value: None,
                skew: None,
            });
        };
        if unmatched.is_none() && !counts.contains_key(&(key, value)) {
            unmatched = Some((t, value));
        }
    }
    let (t, value) = unmatched?;
    if counts.is_empty() && matches_itself {
        // The first pod of a group that selects itself: nothing to be near yet.
        return None;
    }
    let key = t.spec.topology_key.as_str();
    let what = match terms.len() {
        1 => "the required affinity term".to_owned(),
        n => format!("all {n} required affinity terms"),
    };
    let why = if counts.is_empty() {
        format!(
            "none runs on a node carrying the terms' keys, and the pod itself does not match {what}, so the first-pod exception does not apply"
        )
    } else {
        "such pods run in other domains, so the first-pod exception does not apply".to_owned()
    };
    Some(Infeasible {
        reason: Reason::PodAffinity,
        message: format!(
            "{}: no existing pod matching {what} runs in {key}={value}; {why}",
            Reason::PodAffinity.scheduler_message(),
        ),
        term: term_path(t, None),
        pod: None,
        topology_key: key.to_owned(),
        topology_value: Some(value.to_owned()),
        skew: None,
    })
}

fn pod_anti_affinity(
    node: &Node,
    terms: &[Term<'_>],
    counts: &FxMap<Pair<'_>, (usize, usize)>,
    placed: &[Placed<'_>],
) -> Option<Infeasible> {
    if counts.is_empty() {
        return None;
    }
    terms.iter().find_map(|t| {
        let key = t.spec.topology_key.as_str();
        // A node without the key is not affected by the term.
        let value = node.topology_value(key)?;
        let &(i, j) = counts.get(&(key, value))?;
        let p = placed.get(i)?;
        // Counts are per domain: the term that matched may be another one with this key.
        let matched = terms.get(j).unwrap_or(t);
        Some(Infeasible {
            reason: Reason::PodAntiAffinity,
            message: format!(
                "{}: the term matches {}, which runs on {} in {key}={value}",
                Reason::PodAntiAffinity.scheduler_message(),
                pod_ref(p.pod),
                p.node.name
            ),
            term: term_path(matched, None),
            pod: Some(pod_ref(p.pod)),
            topology_key: key.to_owned(),
            topology_value: Some(value.to_owned()),
            skew: None,
        })
    })
}

fn existing_anti_affinity(
    node: &Node,
    counts: &FxMap<Pair<'_>, (usize, &Term<'_>)>,
    placed: &[Placed<'_>],
) -> Option<Infeasible> {
    if counts.is_empty() {
        return None;
    }
    // Any of the node's domains may hold such a pod; name the first one in snapshot order.
    let (key, value, i, t) = node
        .labels
        .iter()
        .filter_map(|(k, v)| {
            counts
                .get(&(k.as_str(), v.as_str()))
                .map(|&(i, t)| (k, v, i, t))
        })
        .min_by_key(|&(_, _, i, _)| i)?;
    let p = placed.get(i)?;
    Some(Infeasible {
        reason: Reason::ExistingPodAntiAffinity,
        message: format!(
            "{}: {} on {} has a required anti-affinity term that matches this pod, in {key}={value}",
            Reason::ExistingPodAntiAffinity.scheduler_message(),
            pod_ref(p.pod),
            p.node.name
        ),
        term: term_path(t, Some(p.pod)),
        pod: Some(pod_ref(p.pod)),
        topology_key: key.clone(),
        topology_value: Some(value.clone()),
        skew: None,
    })
}

/// NormalizeScore: min-max to 0..=100 over the feasible nodes, in `f64`, truncated.
fn normalize(raw: &BTreeMap<String, i64>, scored: bool) -> BTreeMap<String, i64> {
    let min = raw.values().copied().min().unwrap_or_default();
    let max = raw.values().copied().max().unwrap_or_default();
    let diff = max - min;
    raw.iter()
        .map(|(name, &s)| {
            let normalized = if scored && diff > 0 {
                // Same operation order as upstream: 100 × ((s − min) / diff), so a raw score
                // of 29 out of 0..100 gives 28 (0.29 × 100 = 28.999…), as the scheduler does.
                (MAX_NODE_SCORE as f64 * ((s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
            (name.clone(), normalized)
        })
        .collect()
}

/// Is `placed` a replica of the incoming pod's workload (a `self: true` peer): in its
/// namespace, with every label of its template (the controller's keys, whose values the new
/// pod does not know yet, aside)?
fn is_replica(pod: &IncomingPod, placed: &ClusterPod) -> bool {
    placed.namespace == pod.namespace
        && pod
            .labels
            .iter()
            .filter(|(k, v)| **v != new_controller_value(k))
            .all(|(k, v)| placed.labels.get(k) == Some(v))
}

/// For each policy whose subject the pod is: does the chosen node's domain hold a peer (for
/// a `self: true` group, a replica of its own workload)?
fn apartness(
    policies: &[Policy],
    pod: &IncomingPod,
    facts: &NamespaceFacts,
    placed: &[Placed<'_>],
    chosen: Option<&Node>,
) -> Vec<Apartness> {
    policies
        .iter()
        .filter(|p| p.is_subject(&pod.namespace, &pod.labels))
        .map(|policy| {
            let key = policy.topology_key.as_str();
            let domain = chosen.and_then(|n| n.topology_value(key));
            let peers: BTreeSet<String> = match domain {
                None => BTreeSet::new(),
                Some(value) => placed
                    .iter()
                    .filter(|p| p.node.topology_value(key) == Some(value))
                    .filter(|p| {
                        policy.peers.iter().any(|g| {
                            g.selects(&p.pod.namespace, &p.pod.labels, facts)
                                || g.own_replicas && is_replica(pod, p.pod)
                        })
                    })
                    .map(|p| pod_ref(p.pod))
                    .collect(),
            };
            Apartness {
                policy: policy.name.clone(),
                topology_key: key.to_owned(),
                node: chosen.map(|n| n.name.clone()),
                domain: domain.map(str::to_owned),
                apart: chosen.map(|_| peers.is_empty()),
                peers: peers.into_iter().collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    // Tests stop at the first surprise, with what it was.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use serde_json::{Value, json};

    use super::*;

    fn node(name: &str, zone: Option<&str>) -> Value {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if let Some(z) = zone {
            labels["topology.kubernetes.io/zone"] = json!(z);
        }
        json!({"kind": "Node", "metadata": {"name": name, "labels": labels}})
    }

    fn pod(name: &str, ns: &str, node: &str, labels: Value, affinity: Value) -> Value {
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
               "spec": {"nodeName": node, "affinity": affinity}, "status": {"phase": "Running"}})
    }

    fn cluster(items: Vec<Value>) -> Cluster {
        Cluster::from_value(&json!({"kind": "List", "items": items})).unwrap()
    }

    fn incoming(labels: Value, affinity: Value) -> IncomingPod {
        let doc = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "new", "namespace": "default", "labels": labels},
            "spec": {"affinity": affinity}});
        IncomingPod::from_json(doc.to_string().as_bytes()).unwrap()
    }

    fn run(c: &Cluster, p: &IncomingPod) -> Simulation {
        simulate(c, p, &Options::default(), None).unwrap()
    }

    fn zone_affinity(app: &str) -> Value {
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": app}}}]}})
    }

    #[test]
    fn first_pod_of_a_self_selecting_group_may_go_anywhere_labelled() {
        let c = cluster(vec![node("a", Some("z1")), node("b", None)]);
        let sim = run(&c, &incoming(json!({"app": "db"}), zone_affinity("db")));
        assert_eq!(sim.feasible_nodes, ["a"]);
        let b = &sim.infeasible["b"];
        assert_eq!(
            (b.reason, b.topology_value.as_deref()),
            (Reason::PodAffinity, None)
        );
    }

    #[test]
    fn first_pod_exception_ends_once_a_matching_pod_runs_in_a_labelled_domain() {
        let items = vec![
            node("a", Some("z1")),
            node("b", Some("z2")),
            pod("db-0", "default", "a", json!({"app": "db"}), json!(null)),
        ];
        let sim = run(
            &cluster(items),
            &incoming(json!({"app": "db"}), zone_affinity("db")),
        );
        assert_eq!(sim.feasible_nodes, ["a"]);
        assert!(sim.infeasible["b"].message.contains("other domains"));
    }

    #[test]
    fn matching_pods_on_unlabelled_nodes_do_not_end_the_exception() {
        let items = vec![
            node("a", Some("z1")),
            node("b", None),
            pod("db-0", "default", "b", json!({"app": "db"}), json!(null)),
        ];
        let sim = run(
            &cluster(items),
            &incoming(json!({"app": "db"}), zone_affinity("db")),
        );
        assert_eq!(
            sim.feasible_nodes,
            ["a"],
            "counts hold only labelled domains"
        );
    }

    #[test]
    fn a_pod_that_does_not_match_its_own_terms_gets_no_exception() {
        let c = cluster(vec![node("a", Some("z1"))]);
        let sim = run(&c, &incoming(json!({"app": "web"}), zone_affinity("db")));
        assert!(sim.feasible_nodes.is_empty());
        assert!(
            sim.infeasible["a"]
                .message
                .contains("the pod itself does not match")
        );
    }

    #[test]
    fn anti_affinity_leaves_nodes_without_the_key_alone() {
        let items = vec![
            node("a", Some("z1")),
            node("b", Some("z1")),
            node("c", None),
            pod("web-0", "default", "a", json!({"app": "web"}), json!(null)),
        ];
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "web"}}}]}});
        let sim = run(&cluster(items), &incoming(json!({"app": "web"}), anti));
        assert_eq!(sim.feasible_nodes, ["c"]);
        let b = &sim.infeasible["b"];
        assert_eq!(b.pod.as_deref(), Some("default/web-0"));
        assert_eq!(
            b.term,
            "$.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        );
    }

    #[test]
    fn existing_anti_affinity_is_symmetric_and_named() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}});
        let items = vec![
            node("a", None),
            node("b", None),
            pod("guard", "default", "a", json!({"app": "guard"}), anti),
        ];
        let sim = run(
            &cluster(items),
            &incoming(json!({"app": "web"}), json!(null)),
        );
        assert_eq!(sim.feasible_nodes, ["b"]);
        let a = &sim.infeasible["a"];
        assert_eq!(a.reason, Reason::ExistingPodAntiAffinity);
        assert_eq!(
            a.term,
            "$.items[2].spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        );
    }

    #[test]
    fn normalizing_truncates_in_f64_like_the_scheduler() {
        let raw: BTreeMap<String, i64> = [("a", 0), ("b", 29), ("c", 100), ("d", 57)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let n = normalize(&raw, true);
        assert_eq!((n["a"], n["b"], n["c"], n["d"]), (0, 28, 100, 56));
        let shifted: BTreeMap<String, i64> = [("a", -7), ("b", -3), ("c", 5)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let n = normalize(&shifted, true);
        assert_eq!((n["a"], n["b"], n["c"]), (0, 33, 100));
        let equal: BTreeMap<String, i64> = [("a", 4), ("b", 4)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert!(normalize(&equal, true).values().all(|&s| s == 0));
    }

    #[test]
    fn hard_pod_affinity_weight_scores_existing_required_affinity() {
        let near = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "cache"}}}]}});
        let items = vec![
            node("a", None),
            node("b", None),
            pod("web-0", "default", "a", json!({"app": "web"}), near),
        ];
        let c = cluster(items);
        let p = incoming(json!({"app": "cache"}), json!(null));
        let sim = run(&c, &p);
        assert_eq!(
            (sim.raw_scores["a"], sim.scores["a"], sim.scores["b"]),
            (1, 100, 0)
        );
        let off = Options {
            hard_pod_affinity_weight: 0,
            ..Options::default()
        };
        let sim = simulate(&c, &p, &off, None).unwrap();
        assert_eq!((sim.raw_scores["a"], sim.scores["a"]), (0, 0));
        let bad = Options {
            hard_pod_affinity_weight: 101,
            ..Options::default()
        };
        assert!(matches!(
            simulate(&c, &p, &bad, None),
            Err(SimulateError::HardPodAffinityWeight(101))
        ));
    }

    #[test]
    fn namespace_selectors_use_snapshot_labels_and_the_name_label() {
        let by_team = |selector: Value| {
            json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                  "labelSelector": {"matchLabels": {"app": "x"}}, "namespaceSelector": selector}}]}})
        };
        let items = vec![
            json!({"kind": "Namespace", "metadata": {"name": "team-a", "labels": {"team": "a"}}}),
            node("a", None),
            node("b", None),
            node("c", None),
            pod("x-a", "team-a", "a", json!({"app": "x"}), json!(null)),
            // "unlisted" has no Namespace object: it carries only its name label.
            pod("x-b", "unlisted", "b", json!({"app": "x"}), json!(null)),
        ];
        let c = cluster(items);
        let raw = |sel: Value| run(&c, &incoming(json!({}), by_team(sel))).raw_scores;
        let r = raw(json!({"matchLabels": {"team": "a"}}));
        assert_eq!((r["a"], r["b"]), (10, 0));
        let r = raw(json!({}));
        assert_eq!(
            (r["a"], r["b"], r["c"]),
            (10, 10, 0),
            "{{}} selects every namespace"
        );
        let r = raw(json!({"matchLabels": {"kubernetes.io/metadata.name": "unlisted"}}));
        assert_eq!((r["a"], r["b"]), (0, 10));
    }

    #[test]
    fn a_placed_copy_of_the_pod_is_not_counted_against_itself() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}});
        let items = vec![
            node("a", None),
            pod("new", "default", "a", json!({"app": "web"}), anti.clone()),
        ];
        let sim = run(&cluster(items), &incoming(json!({"app": "web"}), anti));
        assert_eq!(sim.feasible_nodes, ["a"]);
    }

    #[test]
    fn match_label_keys_take_the_owners_values() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}},
             "matchLabelKeys": ["version"]}]}});
        let items = vec![
            node("a", None),
            node("b", None),
            pod(
                "web-v1",
                "default",
                "a",
                json!({"app": "web", "version": "v1"}),
                json!(null),
            ),
            pod(
                "web-v2",
                "default",
                "b",
                json!({"app": "web", "version": "v2"}),
                json!(null),
            ),
        ];
        let sim = run(
            &cluster(items),
            &incoming(json!({"app": "web", "version": "v2"}), anti),
        );
        assert_eq!(sim.feasible_nodes, ["a"], "only the same version repels");
    }

    #[test]
    fn workload_controller_labels_are_new_values() {
        let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}});
        let p = IncomingPod::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.name, None);
        assert!(p.labels["pod-template-hash"].starts_with('<'));
        assert_eq!(p.affinity_path.to_string(), "$.spec.template.spec.affinity");
        let err =
            IncomingPod::from_json(br#"{"apiVersion": "v1", "kind": "Service"}"#).unwrap_err();
        assert!(matches!(err, SimulateError::NotAPod { .. }));
    }

    #[test]
    fn an_affinity_the_api_server_refuses_is_an_error_with_its_path() {
        let bad = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 0, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {}}}]}});
        let c = cluster(vec![node("a", None)]);
        let err = simulate(&c, &incoming(json!({}), bad), &Options::default(), None).unwrap_err();
        let SimulateError::InvalidAffinity { problems } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            problems[0].path.to_string(),
            "$.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight"
        );
    }

    #[test]
    fn scheduling_fields_the_api_server_refuses_are_errors_with_their_paths() {
        let read = |spec: Value| {
            let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                "spec": {"template": {"metadata": {"labels": {"app": "w"}}, "spec": spec}}});
            IncomingPod::from_json(doc.to_string().as_bytes())
        };
        let Err(SimulateError::InvalidScheduling { problems }) =
            read(json!({"topologySpreadConstraints": [{"maxskew": 1}]}))
        else {
            panic!("an unknown field is refused")
        };
        assert_eq!(
            problems[0].path.to_string(),
            "$.spec.template.spec.topologySpreadConstraints[0].maxskew"
        );
        assert!(
            problems[0].message.contains("maxskew"),
            "{}",
            problems[0].message
        );
        let Err(SimulateError::InvalidScheduling { problems }) = read(json!({
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "w"}}, "minDomains": 0}]}))
        else {
            panic!("minDomains 0 is refused")
        };
        assert_eq!(
            problems[0].path.to_string(),
            "$.spec.template.spec.topologySpreadConstraints[0].minDomains"
        );
        let pod =
            read(json!({"nodeSelector": {"disk": "ssd"}, "tolerations": [{"operator": "Exists"}]}))
                .unwrap();
        assert_eq!(pod.spec_path.to_string(), "$.spec.template.spec");
        assert_eq!(pod.scheduling.tolerations.map(|t| t.len()), Some(1));
    }

    #[test]
    fn ignoring_existing_preferences_needs_no_preferences_of_its_own() {
        let pref = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
              "labelSelector": {"matchLabels": {"app": "web"}}}}]}});
        let items = vec![
            node("a", None),
            node("b", None),
            pod("x", "default", "a", json!({}), pref),
        ];
        let c = cluster(items);
        let p = incoming(json!({"app": "web"}), json!(null));
        let ignore = Options {
            ignore_preferred_terms_of_existing_pods: true,
            ..Options::default()
        };
        assert_eq!(run(&c, &p).scores["a"], 100);
        assert_eq!(simulate(&c, &p, &ignore, None).unwrap().scores["a"], 0);
    }
}
