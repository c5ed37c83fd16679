//! The node-side scheduling fields of a pod spec (`nodeSelector`, required node affinity,
//! `tolerations`, `topologySpreadConstraints`) and a node's `taints`: read, checked as the API
//! server checks them, and matched as kube-scheduler's helpers match them.
//!
//! Semantics (`k8s.io/component-helpers/scheduling/corev1` and its `nodeaffinity` package,
//! `pkg/apis/core/validation`):
//! - a pod's *required node affinity* is its `nodeSelector` (every pair must be a label of the
//!   node) AND `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution` (some
//!   term must match; a term with neither `matchExpressions` nor `matchFields` matches no
//!   node). Expressions: `In`, `NotIn` (also true when the node lacks the label), `Exists`,
//!   `DoesNotExist`, `Gt`/`Lt` (the label value read as an integer; a node without the label,
//!   or with a non-integer value, does not match). `matchFields` knows only `metadata.name`;
//! - a taint is tolerated by a toleration with the same effect (or none), the same key (or
//!   none, with `Exists`), and `Exists` or `Equal` to the same value. Only `NoSchedule` and
//!   `NoExecute` taints keep pods off a node; `PreferNoSchedule` only scores;
//! - a topology spread constraint counts the pods its `labelSelector` selects (null: none),
//!   with `matchLabelKeys` ANDed in as `key in (the pod's value)` for the keys the pod
//!   carries ([`TopologySpreadConstraint::selector_for`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{IgnoredAny, MapAccess};
use serde::{Deserialize, Deserializer};

use crate::kube::affinity::{Affinity, AffinityProblem};
use crate::kube::cluster::Node;
use crate::kube::names;
use crate::kube::selector::{Selector, SelectorMembers};
use crate::kube::strict::{self, Members, Strict};
use crate::source::path::JsonPath;

/// `whenUnsatisfiable: DoNotSchedule`: the constraint filters nodes.
pub const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
/// `whenUnsatisfiable: ScheduleAnyway`: the constraint only scores nodes.
pub const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";
/// A node inclusion policy that counts only nodes the pod could run on.
pub const HONOR: &str = "Honor";
/// A node inclusion policy that counts every node.
pub const IGNORE: &str = "Ignore";

pub use k8s_openapi::api::core::v1::{
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
    TopologySpreadConstraint,
};

/// A node's taints (`spec.taints`), read leniently from a snapshot: unknown members and
/// `timeAdded` (which scheduling never reads) are skipped.
pub(crate) fn lenient_taints<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Taint>>, D::Error> {
    strict::list_member::<TaintMembers, D>(d)
}

struct TaintMembers;

impl Members for TaintMembers {
    type Value = Taint;
    const NAME: &'static str = "Taint";
    const FIELDS: &'static [&'static str] = &["key", "value", "effect"];
    const LENIENT: bool = true;

    fn member<'de, A: MapAccess<'de>>(
        t: &mut Taint,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        match field {
            // Null is the default, as derive's `#[serde(default)]` read it.
            0 => t.key = map.next_value::<Option<String>>()?.unwrap_or_default(),
            1 => t.value = map.next_value()?,
            _ => t.effect = map.next_value::<Option<String>>()?.unwrap_or_default(),
        }
        Ok(())
    }
}

struct TolerationMembers;

impl Members for TolerationMembers {
    type Value = Toleration;
    const NAME: &'static str = "Toleration";
    const FIELDS: &'static [&'static str] =
        &["key", "operator", "value", "effect", "tolerationSeconds"];

    fn member<'de, A: MapAccess<'de>>(
        t: &mut Toleration,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        match field {
            0 => t.key = map.next_value()?,
            1 => t.operator = map.next_value()?,
            2 => t.value = map.next_value()?,
            3 => t.effect = map.next_value()?,
            _ => t.toleration_seconds = map.next_value()?,
        }
        Ok(())
    }
}

/// `ToleratesTaint` (`k8s.io/api/core/v1`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// The first `NoSchedule`/`NoExecute` taint of `taints` that no toleration tolerates
/// (`FindMatchingUntoleratedTaint` with `DoNotScheduleTaintsFilterFunc`).
pub fn untolerated<'t>(taints: &'t [Taint], tolerations: &[Toleration]) -> Option<&'t Taint> {
    taints
        .iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

// The names of apart's former structs, so that messages stay as they were.
strict::requirement_members!(
    RequirementMembers,
    NodeSelectorRequirement,
    "NodeSelectorRequirementSpec"
);

struct NodeTermMembers;

impl Members for NodeTermMembers {
    type Value = NodeSelectorTerm;
    const NAME: &'static str = "NodeSelectorTermSpec";
    const FIELDS: &'static [&'static str] = &["matchExpressions", "matchFields"];

    fn member<'de, A: MapAccess<'de>>(
        t: &mut NodeSelectorTerm,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        if field == 0 {
            t.match_expressions = strict::list::<RequirementMembers, A>(map)?;
        } else {
            t.match_fields = strict::list::<RequirementMembers, A>(map)?;
        }
        Ok(())
    }
}

struct NodeSelectorMembers;

impl Members for NodeSelectorMembers {
    type Value = NodeSelector;
    const NAME: &'static str = "NodeSelectorSpec";
    const FIELDS: &'static [&'static str] = &["nodeSelectorTerms"];

    fn member<'de, A: MapAccess<'de>>(
        s: &mut NodeSelector,
        map: &mut A,
        _: usize,
    ) -> Result<(), A::Error> {
        s.node_selector_terms = map
            .next_value::<Vec<Strict<NodeTermMembers>>>()?
            .into_iter()
            .map(|t| t.0)
            .collect();
        Ok(())
    }
}

/// `affinity.nodeAffinity`: its preferred terms only score, and are skipped unread.
struct NodeAffinityMembers;

impl Members for NodeAffinityMembers {
    type Value = NodeAffinity;
    const NAME: &'static str = "NodeAffinitySpec";
    const FIELDS: &'static [&'static str] = &[
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ];

    fn member<'de, A: MapAccess<'de>>(
        n: &mut NodeAffinity,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        if field == 0 {
            n.required_during_scheduling_ignored_during_execution =
                strict::optional::<NodeSelectorMembers, A>(map)?;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// `affinity`, for its `nodeAffinity` only (the inter-pod parts are read by
/// [`crate::kube::affinity`]).
struct NodeSideMembers;

impl Members for NodeSideMembers {
    type Value = Affinity;
    const NAME: &'static str = "NodeAffinityHolder";
    const FIELDS: &'static [&'static str] = &["nodeAffinity"];
    const LENIENT: bool = true;

    fn member<'de, A: MapAccess<'de>>(
        a: &mut Affinity,
        map: &mut A,
        _: usize,
    ) -> Result<(), A::Error> {
        a.node_affinity = strict::optional::<NodeAffinityMembers, A>(map)?;
        Ok(())
    }
}

struct SpreadMembers;

impl Members for SpreadMembers {
    type Value = TopologySpreadConstraint;
    const NAME: &'static str = "TopologySpreadConstraint";
    const FIELDS: &'static [&'static str] = &[
        "maxSkew",
        "topologyKey",
        "whenUnsatisfiable",
        "labelSelector",
        "minDomains",
        "nodeAffinityPolicy",
        "nodeTaintsPolicy",
        "matchLabelKeys",
    ];

    fn member<'de, A: MapAccess<'de>>(
        c: &mut TopologySpreadConstraint,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        match field {
            0 => {
                c.max_skew = strict::int32(map, |n| {
                    format!("maxSkew {n} is out of range: must be greater than zero")
                })?
            }
            1 => c.topology_key = map.next_value()?,
            2 => c.when_unsatisfiable = map.next_value()?,
            3 => c.label_selector = strict::optional::<SelectorMembers, A>(map)?,
            4 => {
                c.min_domains = strict::optional_int32(map, |n| {
                    format!("minDomains {n} is out of range: must be greater than zero")
                })?
            }
            5 => c.node_affinity_policy = map.next_value()?,
            6 => c.node_taints_policy = map.next_value()?,
            _ => c.match_label_keys = map.next_value()?,
        }
        Ok(())
    }
}

/// Reads `topologySpreadConstraints` from JSON text, as strictly as the API server does.
pub fn read_spread(text: &str) -> Result<Option<Vec<TopologySpreadConstraint>>, serde_json::Error> {
    serde_json::from_str::<Option<Vec<Strict<SpreadMembers>>>>(text)
        .map(|v| v.map(|v| v.into_iter().map(|c| c.0).collect()))
}

/// How kube-scheduler reads a `TopologySpreadConstraint`'s members.
pub trait SpreadConstraint {
    /// The selector kube-scheduler counts with: `labelSelector` with `key in (value)` ANDed
    /// in for each `matchLabelKeys` key the pod carries. A null selector stays null.
    ///
    /// Since Kubernetes 1.34 the API server writes those requirements into `labelSelector`
    /// when the pod is created (`MatchLabelKeysInPodTopologySpreadSelectorMerge`), and the
    /// scheduler still ANDs them in: the same requirement twice selects the same pods, so
    /// one computation serves both a manifest and a stored pod.
    fn selector_for(&self, pod_labels: &BTreeMap<String, String>) -> Selector;
    /// Filters (`DoNotSchedule`) rather than scores.
    fn is_hard(&self) -> bool;
    /// `minDomains`, 1 when absent.
    fn min_domains(&self) -> i64;
    /// Counts only nodes matching the pod's required node affinity (`Honor`, the default).
    fn honors_node_affinity(&self) -> bool;
    /// Counts only nodes whose taints the pod tolerates (`Honor`; `Ignore` is the default).
    fn honors_node_taints(&self) -> bool;
}

impl SpreadConstraint for TopologySpreadConstraint {
    fn selector_for(&self, pod_labels: &BTreeMap<String, String>) -> Selector {
        let Ok(selector) = Selector::compile(self.label_selector.as_ref()) else {
            return Selector::nothing();
        };
        let extra: Vec<_> = self
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| pod_labels.get(k).map(|v| Selector::label_equals(k, v)))
            .collect();
        if extra.is_empty() {
            selector
        } else {
            selector.and(extra)
        }
    }

    fn is_hard(&self) -> bool {
        self.when_unsatisfiable == DO_NOT_SCHEDULE
    }

    fn min_domains(&self) -> i64 {
        self.min_domains.map_or(1, i64::from)
    }

    fn honors_node_affinity(&self) -> bool {
        self.node_affinity_policy.as_deref().unwrap_or(HONOR) == HONOR
    }

    fn honors_node_taints(&self) -> bool {
        self.node_taints_policy.as_deref().unwrap_or(IGNORE) == HONOR
    }
}

/// The scheduling fields of a pod spec that apart reads besides the inter-pod affinity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// `nodeSelector`.
    #[serde(default)]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// `affinity`, with only `nodeAffinity` read.
    #[serde(
        default,
        deserialize_with = "strict::optional_member::<NodeSideMembers, _>"
    )]
    pub affinity: Option<Affinity>,
    /// `tolerations`.
    #[serde(
        default,
        deserialize_with = "strict::list_member::<TolerationMembers, _>"
    )]
    pub tolerations: Option<Vec<Toleration>>,
    /// `topologySpreadConstraints`.
    #[serde(default, deserialize_with = "strict::list_member::<SpreadMembers, _>")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

impl SchedulingSpec {
    /// Every problem the API server would refuse the pod for in these fields; `spec` is
    /// where the pod spec is in its document.
    pub fn problems(&self, spec: &JsonPath) -> Vec<AffinityProblem> {
        let mut out = Vec::new();
        let mut report = |path: JsonPath, message: String| {
            out.push(AffinityProblem { path, message });
        };
        for (key, value) in self.node_selector.iter().flatten() {
            let at = spec.name("nodeSelector").name(key);
            if let Err(m) = names::label_key(key) {
                report(at.clone(), m);
            }
            if let Err(m) = names::label_value(value) {
                report(at, m);
            }
        }
        let required = self
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        if let Some(selector) = required {
            let at = spec
                .name("affinity")
                .name("nodeAffinity")
                .name("requiredDuringSchedulingIgnoredDuringExecution");
            node_selector_problems(selector, &at, &mut report);
        }
        for (i, t) in self.tolerations.iter().flatten().enumerate() {
            toleration_problems(t, &spec.name("tolerations").index(i), &mut report);
        }
        let constraints = self
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default();
        for (i, c) in constraints.iter().enumerate() {
            let at = spec.name("topologySpreadConstraints").index(i);
            spread_problems(c, &at, &mut report);
            let repeated = constraints.iter().skip(i + 1).any(|o| {
                o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
            });
            if repeated {
                report(
                    at,
                    format!(
                        "another constraint has the same topologyKey {:?} and whenUnsatisfiable {:?}: the API server allows one constraint per pair",
                        c.topology_key, c.when_unsatisfiable
                    ),
                );
            }
        }
        out
    }

    /// The pod's required node affinity, compiled (a term that cannot be read matches no
    /// node, as kube-scheduler's lazy node selector does).
    pub fn required_node_affinity(&self) -> RequiredNodeAffinity {
        let terms = self
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.iter().map(compile_term).collect());
        RequiredNodeAffinity {
            node_selector: self
                .node_selector
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            terms,
        }
    }
}

fn node_selector_problems(
    selector: &NodeSelector,
    at: &JsonPath,
    report: &mut impl FnMut(JsonPath, String),
) {
    if selector.node_selector_terms.is_empty() {
        report(
            at.name("nodeSelectorTerms"),
            "must have at least one node selector term".to_owned(),
        );
    }
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        let term_at = at.name("nodeSelectorTerms").index(i);
        for (j, r) in term.match_expressions.iter().flatten().enumerate() {
            let r_at = term_at.name("matchExpressions").index(j);
            if let Err(m) = names::label_key(&r.key) {
                report(r_at.name("key"), m);
            }
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => report(
                    r_at.name("values"),
                    format!("{} needs at least one value", r.operator),
                ),
                "Exists" | "DoesNotExist" if !values.is_empty() => report(
                    r_at.name("values"),
                    format!("{} must not have values: remove them", r.operator),
                ),
                // The API server checks the count only: a value that is not an integer
                // makes the term match no node (the scheduler's lazy selector).
                "Gt" | "Lt" if values.len() != 1 => report(
                    r_at.name("values"),
                    format!("{} needs exactly one value, an integer", r.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
                other => report(
                    r_at.name("operator"),
                    format!(
                        "unsupported operator {other:?}: use In, NotIn, Exists, DoesNotExist, Gt or Lt"
                    ),
                ),
            }
        }
        for (j, r) in term.match_fields.iter().flatten().enumerate() {
            let r_at = term_at.name("matchFields").index(j);
            if r.key != "metadata.name" {
                report(
                    r_at.name("key"),
                    format!(
                        "unsupported field {:?}: matchFields knows only metadata.name",
                        r.key
                    ),
                );
            }
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" | "NotIn" if values.len() != 1 => report(
                    r_at.name("values"),
                    format!("{} on a node field needs exactly one value", r.operator),
                ),
                "In" | "NotIn" => {}
                other => report(
                    r_at.name("operator"),
                    format!("unsupported operator {other:?}: matchFields takes In or NotIn"),
                ),
            }
        }
    }
}

fn toleration_problems(t: &Toleration, at: &JsonPath, report: &mut impl FnMut(JsonPath, String)) {
    let key = t.key.as_deref().unwrap_or_default();
    let operator = t.operator.as_deref().unwrap_or_default();
    let value = t.value.as_deref().unwrap_or_default();
    if !key.is_empty()
        && let Err(m) = names::label_key(key)
    {
        report(at.name("key"), m);
    }
    if key.is_empty() && operator != "Exists" {
        report(
            at.name("operator"),
            "operator must be Exists when key is empty (which tolerates every taint)".to_owned(),
        );
    }
    match operator {
        "" | "Equal" => {
            if let Err(m) = names::label_value(value) {
                report(at.name("value"), m);
            }
        }
        "Exists" if !value.is_empty() => report(
            at.name("value"),
            "value must be empty when operator is Exists".to_owned(),
        ),
        "Exists" => {}
        other => report(
            at.name("operator"),
            format!("unsupported operator {other:?}: use Equal or Exists"),
        ),
    }
    let effect = t.effect.as_deref().unwrap_or_default();
    if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        report(
            at.name("effect"),
            format!("unsupported effect {effect:?}: use NoSchedule, PreferNoSchedule or NoExecute"),
        );
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        report(
            at.name("effect"),
            "tolerationSeconds needs effect NoExecute".to_owned(),
        );
    }
}

fn spread_problems(
    c: &TopologySpreadConstraint,
    at: &JsonPath,
    report: &mut impl FnMut(JsonPath, String),
) {
    if c.max_skew < 1 {
        report(
            at.name("maxSkew"),
            format!(
                "maxSkew {} is out of range: must be greater than zero",
                c.max_skew
            ),
        );
    }
    // `ValidateTopologyKey` only requires a key: unlike an affinity term's, a malformed one
    // is accepted (and matches no node label).
    if c.topology_key.is_empty() {
        report(
            at.name("topologyKey"),
            "topologyKey is required: name the node label of the domains, e.g. topology.kubernetes.io/zone"
                .to_owned(),
        );
    }
    if !matches!(
        c.when_unsatisfiable.as_str(),
        DO_NOT_SCHEDULE | SCHEDULE_ANYWAY
    ) {
        report(
            at.name("whenUnsatisfiable"),
            format!(
                "unsupported whenUnsatisfiable {:?}: use DoNotSchedule or ScheduleAnyway",
                c.when_unsatisfiable
            ),
        );
    }
    if let Some(m) = c.min_domains {
        if m < 1 {
            report(
                at.name("minDomains"),
                format!("minDomains {m} is out of range: must be greater than zero"),
            );
        } else if !c.is_hard() {
            report(
                at.name("minDomains"),
                "minDomains can only be set with whenUnsatisfiable: DoNotSchedule".to_owned(),
            );
        }
    }
    for (field, policy) in [
        ("nodeAffinityPolicy", &c.node_affinity_policy),
        ("nodeTaintsPolicy", &c.node_taints_policy),
    ] {
        if let Some(p) = policy
            && !matches!(p.as_str(), HONOR | IGNORE)
        {
            report(
                at.name(field),
                format!("unsupported {field} {p:?}: use Honor or Ignore"),
            );
        }
    }
    if let Err(ps) = Selector::compile(c.label_selector.as_ref()) {
        for p in ps {
            report(at.name("labelSelector").join(&p.field), p.message);
        }
    }
    let keys = c.match_label_keys.as_deref().unwrap_or_default();
    if !keys.is_empty() && c.label_selector.is_none() {
        report(
            at.name("matchLabelKeys"),
            "matchLabelKeys needs a labelSelector: add one".to_owned(),
        );
    }
    let in_selector: BTreeSet<&str> = c
        .label_selector
        .iter()
        .flat_map(|s| {
            let labels = s.match_labels.iter().flatten().map(|(k, _)| k.as_str());
            let exprs = s.match_expressions.iter().flatten().map(|e| e.key.as_str());
            labels.chain(exprs)
        })
        .collect();
    for (i, key) in keys.iter().enumerate() {
        if let Err(m) = names::label_key(key) {
            report(at.name("matchLabelKeys").index(i), m);
        } else if in_selector.contains(key.as_str()) {
            report(
                at.name("matchLabelKeys").index(i),
                format!("{key:?} is also in labelSelector: name it in one of the two"),
            );
        }
    }
}

/// One compiled requirement of a node selector term.
#[derive(Debug, Clone)]
enum NodeRequirement {
    Label {
        key: String,
        test: LabelTest,
    },
    Name {
        values: BTreeSet<String>,
        negated: bool,
    },
}

#[derive(Debug, Clone)]
enum LabelTest {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

impl NodeRequirement {
    fn matches(&self, node: &Node) -> bool {
        match self {
            Self::Label { key, test } => {
                let value = node.labels.get(key).map(String::as_str);
                match test {
                    LabelTest::In(values) => value.is_some_and(|v| values.contains(v)),
                    LabelTest::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
                    LabelTest::Exists => value.is_some(),
                    LabelTest::DoesNotExist => value.is_none(),
                    LabelTest::Gt(n) => value
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| v > *n),
                    LabelTest::Lt(n) => value
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| v < *n),
                }
            }
            Self::Name { values, negated } => values.contains(&node.name) != *negated,
        }
    }
}

/// A compiled node selector term; `None` when it cannot be read (it matches nothing).
type CompiledTerm = Option<Vec<NodeRequirement>>;

fn compile_term(term: &NodeSelectorTerm) -> CompiledTerm {
    let mut out = Vec::new();
    for r in term.match_expressions.iter().flatten() {
        let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
        let one = || values.iter().next().and_then(|v| v.parse::<i64>().ok());
        let test = match r.operator.as_str() {
            "In" => LabelTest::In(values.clone()),
            "NotIn" => LabelTest::NotIn(values.clone()),
            "Exists" => LabelTest::Exists,
            "DoesNotExist" => LabelTest::DoesNotExist,
            "Gt" if values.len() == 1 => LabelTest::Gt(one()?),
            "Lt" if values.len() == 1 => LabelTest::Lt(one()?),
            _ => return None,
        };
        out.push(NodeRequirement::Label {
            key: r.key.clone(),
            test,
        });
    }
    for r in term.match_fields.iter().flatten() {
        let negated = match (r.key.as_str(), r.operator.as_str()) {
            ("metadata.name", "In") => false,
            ("metadata.name", "NotIn") => true,
            _ => return None,
        };
        out.push(NodeRequirement::Name {
            values: r.values.iter().flatten().cloned().collect(),
            negated,
        });
    }
    // A term without requirements selects no node.
    (!out.is_empty()).then_some(out)
}

/// `nodeaffinity.RequiredNodeAffinity`: `nodeSelector` AND the required node affinity.
#[derive(Debug, Clone, Default)]
pub struct RequiredNodeAffinity {
    node_selector: Vec<(String, String)>,
    /// `None`: no required node affinity written; `Some`: its terms, ORed.
    terms: Option<Vec<CompiledTerm>>,
}

impl RequiredNodeAffinity {
    /// True when the pod neither has a `nodeSelector` nor a required node affinity.
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.terms.is_none()
    }

    /// Does `node` satisfy it?
    pub fn matches(&self, node: &Node) -> bool {
        let selected = self
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v));
        selected
            && self.terms.as_ref().is_none_or(|terms| {
                terms
                    .iter()
                    .flatten()
                    .any(|reqs| reqs.iter().all(|r| r.matches(node)))
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            taints: Vec::new(),
        }
    }

    fn spec(json: &str) -> SchedulingSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn node_selector_and_required_node_affinity_are_anded() {
        let s = spec(
            r#"{"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}]}}}}"#,
        );
        let req = s.required_node_affinity();
        assert!(req.matches(&node("a", &[("disk", "ssd"), ("cpus", "8")])));
        assert!(
            !req.matches(&node("a", &[("disk", "ssd"), ("cpus", "4")])),
            "Gt is strict"
        );
        assert!(!req.matches(&node("a", &[("disk", "ssd"), ("cpus", "many")])));
        assert!(
            req.matches(&node("special", &[("disk", "ssd")])),
            "terms are ORed"
        );
        assert!(
            !req.matches(&node("special", &[])),
            "nodeSelector still applies"
        );
        assert!(
            SchedulingSpec::default()
                .required_node_affinity()
                .matches(&node("x", &[]))
        );
    }

    #[test]
    fn not_in_matches_nodes_without_the_label_and_an_empty_term_matches_none() {
        let s = spec(
            r#"{"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "node", "operator": "NotIn", "values": ["b"]}]}]}}}}"#,
        );
        let req = s.required_node_affinity();
        assert!(req.matches(&node("x", &[])));
        assert!(!req.matches(&node("b", &[("node", "b")])));
        let empty = spec(
            r#"{"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}"#,
        );
        assert!(!empty.required_node_affinity().matches(&node("x", &[])));
    }

    #[test]
    fn the_api_types_are_read_as_strictly_as_the_api_server_reads_them() {
        let spec = |json: &str| {
            serde_json::from_str::<SchedulingSpec>(json)
                .map_err(|e| e.to_string().split(" at line ").next().unwrap().to_owned())
        };
        // k8s-openapi's own readers would skip each of these members.
        assert_eq!(
            spec(r#"{"tolerations": [{"key": "a", "opertor": "Exists"}]}"#).unwrap_err(),
            "unknown field `opertor`, expected one of `key`, `operator`, `value`, `effect`, `tolerationSeconds`"
        );
        assert_eq!(
            spec(r#"{"topologySpreadConstraints": [{"maxSkew": 1, "topologykey": "zone"}]}"#)
                .unwrap_err(),
            "unknown field `topologykey`, expected one of `maxSkew`, `topologyKey`, `whenUnsatisfiable`, `labelSelector`, `minDomains`, `nodeAffinityPolicy`, `nodeTaintsPolicy`, `matchLabelKeys`"
        );
        assert_eq!(
            spec(r#"{"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"operator": "Exists"}]}]}}}}"#)
                .unwrap_err(),
            "missing field `key`"
        );
        // int32 members out of range get the range check's message, not a type error.
        assert_eq!(
            spec(r#"{"topologySpreadConstraints": [{"maxSkew": 4294967296}]}"#).unwrap_err(),
            "maxSkew 4294967296 is out of range: must be greater than zero"
        );
        // The inter-pod members and preferred node terms are not this reader's.
        let read = spec(
            r#"{"affinity": {"podAntiAffinity": {"bogus": 1}, "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": "anything"}}}"#,
        )
        .unwrap();
        assert_eq!(
            read.affinity,
            Some(Affinity {
                node_affinity: Some(NodeAffinity::default()),
                ..Default::default()
            })
        );
        // A snapshot's taints are read leniently: unknown members and timeAdded are skipped.
        let taints: Vec<Taint> = lenient_taints(&mut serde_json::Deserializer::from_str(
            r#"[{"key": "k", "effect": "NoSchedule", "timeAdded": "not a time", "x": 1}]"#,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (taints[0].key.as_str(), taints[0].effect.as_str()),
            ("k", "NoSchedule")
        );
        assert_eq!(taints[0].time_added, None);
    }

    #[test]
    fn tolerations_follow_tolerates_taint() {
        let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect: effect.to_owned(),
            ..Default::default()
        };
        let tol: Vec<Toleration> = serde_json::from_str(
            r#"[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
                {"key": "gpu", "operator": "Exists"}]"#,
        )
        .unwrap();
        let taints = vec![
            taint("dedicated", Some("db"), "NoSchedule"),
            taint("gpu", Some("a100"), "NoExecute"),
            taint("soft", None, "PreferNoSchedule"),
        ];
        assert_eq!(
            untolerated(&taints, &tol),
            None,
            "PreferNoSchedule never filters"
        );
        let other = vec![taint("dedicated", Some("web"), "NoSchedule")];
        assert_eq!(untolerated(&other, &tol), other.first());
        let all: Vec<Toleration> = serde_json::from_str(r#"[{"operator": "Exists"}]"#).unwrap();
        assert_eq!(
            untolerated(&other, &all),
            None,
            "an empty key with Exists tolerates all"
        );
    }

    #[test]
    fn match_label_keys_narrow_a_non_null_selector_with_the_pods_values() {
        let c: TopologySpreadConstraint = serde_json::from_str(
            r#"{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["version", "absent"]}"#,
        )
        .unwrap();
        let labels: BTreeMap<String, String> = [("app", "web"), ("version", "v2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let s = c.selector_for(&labels);
        assert_eq!(
            s.describe(),
            "app=web, version=v2",
            "a key the pod lacks is ignored"
        );
        let null = TopologySpreadConstraint {
            match_label_keys: Some(vec!["version".to_owned()]),
            ..c
        };
        let null = TopologySpreadConstraint {
            label_selector: None,
            ..null
        };
        assert!(null.selector_for(&labels).is_nothing());
    }

    #[test]
    fn validation_follows_the_api_server() {
        let lenient = spec(
            r#"{"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "not a label key!", "whenUnsatisfiable": "DoNotSchedule"}]}"#,
        );
        assert!(
            lenient.problems(&JsonPath::root()).is_empty(),
            "the API server accepts any non-empty topologyKey"
        );
        let s = spec(
            r#"{"topologySpreadConstraints": [
                {"maxSkew": 0, "topologyKey": "", "whenUnsatisfiable": "Maybe"},
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2,
                 "nodeTaintsPolicy": "honor", "labelSelector": {"matchLabels": {"app": "x"}}, "matchLabelKeys": ["app"]},
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "matchLabelKeys": ["v"]}],
              "tolerations": [{"operator": "Equal", "value": "x"}]}"#,
        );
        let paths: Vec<String> = s
            .problems(&JsonPath::root().name("spec"))
            .iter()
            .map(|p| p.path.to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "$.spec.tolerations[0].operator",
                "$.spec.topologySpreadConstraints[0].maxSkew",
                "$.spec.topologySpreadConstraints[0].topologyKey",
                "$.spec.topologySpreadConstraints[0].whenUnsatisfiable",
                "$.spec.topologySpreadConstraints[1].minDomains",
                "$.spec.topologySpreadConstraints[1].nodeTaintsPolicy",
                "$.spec.topologySpreadConstraints[1].matchLabelKeys[0]",
                "$.spec.topologySpreadConstraints[1]",
                "$.spec.topologySpreadConstraints[2].matchLabelKeys",
            ]
        );
    }
}
