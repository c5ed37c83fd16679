//! The inter-pod part of a pod's `affinity`, read leanly, checked as the API server checks it,
//! and compiled into terms whose meaning apart can reason about.
//!
//! Semantics (kube-scheduler's InterPodAffinity and the API server):
//! - a term's pods are those its `labelSelector` selects (null: none; `{}`: all), in the
//!   namespaces of `namespaces` ∪ those `namespaceSelector` selects; with neither, only the
//!   pod's own namespace; `namespaceSelector: {}` means every namespace;
//! - `matchLabelKeys`/`mismatchLabelKeys` AND `key in (pod's value)` / `key notin (pod's
//!   value)` into the selector, for keys the pod carries;
//! - required terms filter nodes; preferred terms add `weight` (1-100) to a node's score.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use serde::Deserializer;
use serde::de::MapAccess;

pub use k8s_openapi::api::core::v1::{
    Affinity, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
};

use crate::kube::names;
use crate::kube::selector::{LabelSelector, Operator, Requirement, Selector, SelectorMembers};
use crate::kube::strict::{self, Members, Strict};
use crate::source::path::JsonPath;

/// The two lists of `podAffinity` and of `podAntiAffinity` (two `k8s-openapi` types with
/// the same members).
pub trait TermLists {
    /// `requiredDuringSchedulingIgnoredDuringExecution`: hard terms.
    fn required(&self) -> &[PodAffinityTerm];
    /// `preferredDuringSchedulingIgnoredDuringExecution`: soft, weighted terms.
    fn preferred(&self) -> &[WeightedPodAffinityTerm];
}

macro_rules! term_lists {
    ($($group:ty => $reader:ident),*) => {$(
        impl TermLists for $group {
            fn required(&self) -> &[PodAffinityTerm] {
                self.required_during_scheduling_ignored_during_execution.as_deref().unwrap_or_default()
            }
            fn preferred(&self) -> &[WeightedPodAffinityTerm] {
                self.preferred_during_scheduling_ignored_during_execution.as_deref().unwrap_or_default()
            }
        }

        /// The strict reader of the group.
        struct $reader;

        impl Members for $reader {
            type Value = $group;
            // Both groups were one struct of apart's: messages keep its name.
            const NAME: &'static str = "PodAffinity";
            const FIELDS: &'static [&'static str] = &[
                "requiredDuringSchedulingIgnoredDuringExecution",
                "preferredDuringSchedulingIgnoredDuringExecution",
            ];

            fn member<'de, A: MapAccess<'de>>(
                g: &mut $group,
                map: &mut A,
                field: usize,
            ) -> Result<(), A::Error> {
                if field == 0 {
                    g.required_during_scheduling_ignored_during_execution =
                        strict::list::<TermMembers, A>(map)?;
                } else {
                    g.preferred_during_scheduling_ignored_during_execution =
                        strict::list::<WeightedMembers, A>(map)?;
                }
                Ok(())
            }
        }
    )*};
}

term_lists!(PodAffinity => PodAffinityMembers, PodAntiAffinity => PodAntiAffinityMembers);

/// `podAffinity` (`false`) and `podAntiAffinity` (`true`) of an affinity, with their field
/// names.
pub fn groups(affinity: &Affinity) -> [(&'static str, Option<&dyn TermLists>, bool); 2] {
    [
        (
            "podAffinity",
            affinity.pod_affinity.as_ref().map(|g| g as &dyn TermLists),
            false,
        ),
        (
            "podAntiAffinity",
            affinity
                .pod_anti_affinity
                .as_ref()
                .map(|g| g as &dyn TermLists),
            true,
        ),
    ]
}

/// Reads the inter-pod part of an `affinity` from JSON text, as strictly as the API server
/// reads it (`nodeAffinity` and unknown members of `affinity` itself are skipped: the
/// node-side reader, [`crate::kube::scheduling`], has its own).
pub fn read_affinity(text: &str) -> Result<Affinity, serde_json::Error> {
    serde_json::from_str::<Strict<InterPodMembers>>(text).map(|a| a.0)
}

/// [`read_affinity`] for `#[serde(deserialize_with)]` on an optional member.
pub fn strict_affinity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Affinity>, D::Error> {
    serde::Deserialize::deserialize(d).map(|a: Option<Strict<InterPodMembers>>| a.map(|a| a.0))
}

/// The reader of `affinity`'s inter-pod members.
pub(crate) struct InterPodMembers;

impl Members for InterPodMembers {
    type Value = Affinity;
    const NAME: &'static str = "Affinity";
    const FIELDS: &'static [&'static str] = &["podAffinity", "podAntiAffinity"];
    const LENIENT: bool = true;

    fn member<'de, A: MapAccess<'de>>(
        a: &mut Affinity,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        if field == 0 {
            a.pod_affinity = strict::optional::<PodAffinityMembers, A>(map)?;
        } else {
            a.pod_anti_affinity = strict::optional::<PodAntiAffinityMembers, A>(map)?;
        }
        Ok(())
    }
}

struct WeightedMembers;

impl Members for WeightedMembers {
    type Value = WeightedPodAffinityTerm;
    const NAME: &'static str = "WeightedPodAffinityTerm";
    const FIELDS: &'static [&'static str] = &["weight", "podAffinityTerm"];
    const REQUIRED: &'static [usize] = &[0, 1];

    fn member<'de, A: MapAccess<'de>>(
        w: &mut WeightedPodAffinityTerm,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        if field == 0 {
            w.weight = strict::int32(map, weight_range)?;
        } else {
            w.pod_affinity_term = map.next_value::<Strict<TermMembers>>()?.0;
        }
        Ok(())
    }
}

fn weight_range(weight: i64) -> String {
    format!("weight {weight} is out of range: must be 1 to 100")
}

struct TermMembers;

impl Members for TermMembers {
    type Value = PodAffinityTerm;
    const NAME: &'static str = "PodAffinityTerm";
    const FIELDS: &'static [&'static str] = &[
        "labelSelector",
        "namespaces",
        "namespaceSelector",
        "topologyKey",
        "matchLabelKeys",
        "mismatchLabelKeys",
    ];

    fn member<'de, A: MapAccess<'de>>(
        t: &mut PodAffinityTerm,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        match field {
            0 => t.label_selector = strict::optional::<SelectorMembers, A>(map)?,
            1 => t.namespaces = map.next_value()?,
            2 => t.namespace_selector = strict::optional::<SelectorMembers, A>(map)?,
            3 => t.topology_key = map.next_value()?,
            4 => t.match_label_keys = map.next_value()?,
            _ => t.mismatch_label_keys = map.next_value()?,
        }
        Ok(())
    }
}

/// An affinity's inter-pod part as a map key: a snapshot's replicas share one affinity, so
/// it is compiled once. `k8s-openapi`'s types have neither `Eq` nor `Hash`; their
/// `PartialEq` compares strings and integers only, so it is an equivalence, and the hash
/// covers every member the inter-pod reader fills.
#[derive(Debug, Clone, Copy)]
pub struct AffinityKey<'a>(pub &'a Affinity);

impl PartialEq for AffinityKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.pod_affinity == other.0.pod_affinity
            && self.0.pod_anti_affinity == other.0.pod_anti_affinity
    }
}

impl Eq for AffinityKey<'_> {}

impl Hash for AffinityKey<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for (_, group, _) in groups(self.0) {
            group.is_some().hash(h);
            let Some(group) = group else { continue };
            group.required().len().hash(h);
            for t in group.required() {
                hash_term(t, h);
            }
            group.preferred().len().hash(h);
            for w in group.preferred() {
                w.weight.hash(h);
                hash_term(&w.pod_affinity_term, h);
            }
        }
    }
}

fn hash_term<H: Hasher>(t: &PodAffinityTerm, h: &mut H) {
    let selector = |s: &Option<LabelSelector>, h: &mut H| {
        s.is_some().hash(h);
        if let Some(s) = s {
            s.match_labels.hash(h);
            s.match_expressions.is_some().hash(h);
            for r in s.match_expressions.iter().flatten() {
                (&r.key, &r.operator, &r.values).hash(h);
            }
        }
    };
    selector(&t.label_selector, h);
    t.namespaces.hash(h);
    selector(&t.namespace_selector, h);
    t.topology_key.hash(h);
    t.match_label_keys.hash(h);
    t.mismatch_label_keys.hash(h);
}

/// Where a term may look for pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermScope {
    /// Listed namespaces (the pod's own when neither field is set).
    pub names: BTreeSet<String>,
    /// Namespaces selected by label.
    pub selector: Option<Selector>,
    /// True when neither `namespaces` nor `namespaceSelector` was written.
    pub own_namespace_only: bool,
}

/// What apart knows of namespaces' labels (from Namespace objects in a manifest set or a
/// cluster snapshot). Every namespace also carries `kubernetes.io/metadata.name`.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFacts {
    labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl NamespaceFacts {
    /// Records a namespace's labels (all of them: the namespace was seen).
    pub fn insert(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.labels.insert(name.to_owned(), labels);
    }

    /// The labels of namespace `name`, when the namespace was seen.
    pub fn get(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.labels.get(name)
    }

    /// True when no namespace was seen.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Does `selector` provably select namespace `name`? With the namespace's labels known,
    /// this is plain matching; otherwise only what its name label implies counts.
    pub fn selects(&self, selector: &Selector, name: &str) -> bool {
        match self.labels.get(name) {
            Some(labels) => selector.matches(|k| {
                if k == NAMESPACE_NAME_LABEL {
                    Some(name)
                } else {
                    labels.get(k).map(String::as_str)
                }
            }),
            None => Selector::from_requirements(vec![Selector::label_equals(
                NAMESPACE_NAME_LABEL,
                name,
            )])
            .implies(selector),
        }
    }
}

impl TermScope {
    /// The scope of a term of a pod in `own_namespace`; the problems of an invalid
    /// `namespaceSelector` otherwise.
    pub fn of(
        term: &PodAffinityTerm,
        own_namespace: &str,
    ) -> Result<Self, Vec<crate::kube::selector::SelectorProblem>> {
        let names: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        let selector = match &term.namespace_selector {
            Some(spec) => Some(Selector::compile(Some(spec))?),
            None => None,
        };
        if names.is_empty() && selector.is_none() {
            return Ok(Self {
                names: BTreeSet::from([own_namespace.to_owned()]),
                selector: None,
                own_namespace_only: true,
            });
        }
        Ok(Self {
            names,
            selector,
            own_namespace_only: false,
        })
    }

    /// Does the scope provably include namespace `name`?
    pub fn includes(&self, name: &str, facts: &NamespaceFacts) -> bool {
        self.names.contains(name)
            || self
                .selector
                .as_ref()
                .is_some_and(|s| facts.selects(s, name))
    }

    /// Does the scope include every namespace?
    pub fn is_all(&self) -> bool {
        self.selector.as_ref().is_some_and(Selector::is_everything)
    }

    /// Does the scope include every namespace a namespace selector selects?
    pub fn includes_selected(&self, namespaces: &Selector, facts: &NamespaceFacts) -> bool {
        if self
            .selector
            .as_ref()
            .is_some_and(|s| namespaces.implies(s))
        {
            return true;
        }
        // A selector that pins the namespace name to a finite set is a list in disguise.
        namespaces
            .pinned_values(NAMESPACE_NAME_LABEL)
            .is_some_and(|names| names.iter().all(|n| self.includes(n, facts)))
    }
}

/// An API-server validation problem in an affinity, at a path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityProblem {
    /// Absolute path of the offending field.
    pub path: JsonPath,
    /// What is wrong, what is expected.
    pub message: String,
}

/// A term that passed validation, compiled.
#[derive(Debug, Clone)]
pub struct Term<'a> {
    /// Path of the `PodAffinityTerm` (`...podAffinityTerm` for preferred ones).
    pub path: JsonPath,
    /// Path of the `WeightedPodAffinityTerm`, for preferred ones.
    pub weighted_path: Option<JsonPath>,
    /// The term as written.
    pub spec: &'a PodAffinityTerm,
    /// `None` for required, the weight for preferred.
    pub weight: Option<i64>,
    /// The selector with `matchLabelKeys`/`mismatchLabelKeys` applied.
    pub selector: Selector,
    /// The namespace scope.
    pub scope: TermScope,
}

impl Term<'_> {
    /// Required (hard)?
    pub fn required(&self) -> bool {
        self.weight.is_none()
    }
}

/// The terms of an affinity, valid ones compiled, invalid ones reported.
#[derive(Debug, Default)]
pub struct CompiledAffinity<'a> {
    /// Valid anti-affinity terms.
    pub anti_affinity: Vec<Term<'a>>,
    /// Valid (pod) affinity terms: the policy checks need only anti-affinity, a placement
    /// simulation needs both.
    pub affinity: Vec<Term<'a>>,
    /// Every API-server validation problem.
    pub problems: Vec<AffinityProblem>,
}

/// What the pod itself contributes to term semantics.
pub struct PodFacts<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's labels (the template's).
    pub labels: &'a BTreeMap<String, String>,
    /// Label keys its controller adds with values unknown here (`pod-template-hash`, ...).
    pub controller_keys: &'a [&'a str],
}

/// Compiles and validates `affinity` found at `base`.
pub fn compile<'a>(
    affinity: &'a Affinity,
    base: &JsonPath,
    pod: &PodFacts<'_>,
) -> CompiledAffinity<'a> {
    let mut out = CompiledAffinity::default();
    for (field, group, anti) in groups(affinity) {
        let Some(group) = group else { continue };
        let group_path = base.name(field);
        let required = group_path.name("requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in group.required().iter().enumerate() {
            let path = required.index(i);
            if let Some(t) = compile_term(term, path, None, None, pod, &mut out.problems) {
                if anti {
                    out.anti_affinity.push(t);
                } else {
                    out.affinity.push(t);
                }
            }
        }
        let preferred = group_path.name("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, weighted) in group.preferred().iter().enumerate() {
            let weighted_path = preferred.index(i);
            let mut weight_ok = true;
            if !(1..=100).contains(&weighted.weight) {
                weight_ok = false;
                out.problems.push(AffinityProblem {
                    path: weighted_path.name("weight"),
                    message: weight_range(weighted.weight.into()),
                });
            }
            let path = weighted_path.name("podAffinityTerm");
            let term = compile_term(
                &weighted.pod_affinity_term,
                path,
                Some(weighted_path),
                Some(weighted.weight.into()),
                pod,
                &mut out.problems,
            );
            if let Some(t) = term
                && weight_ok
            {
                if anti {
                    out.anti_affinity.push(t);
                } else {
                    out.affinity.push(t);
                }
            }
        }
    }
    out
}

fn compile_term<'a>(
    term: &'a PodAffinityTerm,
    path: JsonPath,
    weighted_path: Option<JsonPath>,
    weight: Option<i64>,
    pod: &PodFacts<'_>,
    problems: &mut Vec<AffinityProblem>,
) -> Option<Term<'a>> {
    let before = problems.len();
    let mut report_at =
        |at: JsonPath, message: String| problems.push(AffinityProblem { path: at, message });
    let field = |name: &str| path.name(name);
    if term.topology_key.is_empty() {
        report_at(
            field("topologyKey"),
            "topologyKey is required: name the failure domain, e.g. kubernetes.io/hostname"
                .to_owned(),
        );
    } else if let Err(m) = names::label_key(&term.topology_key) {
        report_at(field("topologyKey"), m);
    }
    let selector = Selector::compile(term.label_selector.as_ref());
    if let Err(ps) = &selector {
        for p in ps {
            report_at(field("labelSelector").join(&p.field), p.message.clone());
        }
    }
    if let Some(spec) = &term.namespace_selector
        && let Err(ps) = Selector::compile(Some(spec))
    {
        for p in ps {
            report_at(field("namespaceSelector").join(&p.field), p.message);
        }
    }
    for (i, name) in term.namespaces.iter().flatten().enumerate() {
        if let Err(m) = names::namespace(name) {
            report_at(field("namespaces").index(i), m);
        }
    }
    let match_keys = term.match_label_keys.as_deref().unwrap_or_default();
    let mismatch_keys = term.mismatch_label_keys.as_deref().unwrap_or_default();
    if (!match_keys.is_empty() || !mismatch_keys.is_empty()) && term.label_selector.is_none() {
        report_at(
            field("labelSelector"),
            "matchLabelKeys and mismatchLabelKeys need a labelSelector: add one".to_owned(),
        );
    }
    for (name, keys) in [
        ("matchLabelKeys", match_keys),
        ("mismatchLabelKeys", mismatch_keys),
    ] {
        let mut seen = BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            if let Err(m) = names::label_key(key) {
                report_at(field(name).index(i), m);
            }
            if !seen.insert(key) {
                report_at(field(name).index(i), format!("{key:?} is listed twice"));
            }
        }
    }
    let overlap: BTreeSet<&String> = match_keys
        .iter()
        .filter(|k| mismatch_keys.contains(k))
        .collect();
    for key in overlap {
        report_at(
            field("mismatchLabelKeys"),
            format!("{key:?} is in both matchLabelKeys and mismatchLabelKeys: keep it in one"),
        );
    }
    if problems.len() > before {
        return None;
    }
    let selector = selector
        .ok()?
        .and(label_key_requirements(match_keys, mismatch_keys, pod));
    let scope = TermScope::of(term, pod.namespace).ok()?;
    Some(Term {
        path,
        weighted_path,
        spec: term,
        weight,
        selector,
        scope,
    })
}

/// `matchLabelKeys`/`mismatchLabelKeys` as requirements. A key the pod's controller adds
/// (value unknown until the pod exists) stands for a value no other pod is known to share.
fn label_key_requirements(
    match_keys: &[String],
    mismatch_keys: &[String],
    pod: &PodFacts<'_>,
) -> Vec<Requirement> {
    let value_of = |key: &str| -> Option<String> {
        pod.labels.get(key).cloned().or_else(|| {
            pod.controller_keys
                .contains(&key)
                .then(|| format!("<value of {key} on this pod>"))
        })
    };
    let mut out = Vec::new();
    for (keys, operator) in [(match_keys, Operator::In), (mismatch_keys, Operator::NotIn)] {
        for key in keys {
            if let Some(value) = value_of(key) {
                out.push(Requirement {
                    key: key.clone(),
                    operator,
                    values: BTreeSet::from([value]),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn term(json: &str) -> PodAffinityTerm {
        serde_json::from_str::<Strict<TermMembers>>(json).unwrap().0
    }

    #[test]
    fn namespace_scope_forms() {
        let facts = NamespaceFacts::default();
        let own = TermScope::of(&term(r#"{"topologyKey": "k"}"#), "kube-system").unwrap();
        assert!(
            own.own_namespace_only
                && own.includes("kube-system", &facts)
                && !own.includes("flux-system", &facts)
        );
        let all = TermScope::of(
            &term(r#"{"topologyKey": "k", "namespaceSelector": {}}"#),
            "a",
        )
        .unwrap();
        assert!(all.is_all() && all.includes("flux-system", &facts));
        let union = TermScope::of(
            &term(r#"{"namespaces": ["a"], "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["flux-system"]}]}}"#),
            "x",
        )
        .unwrap();
        assert!(
            union.includes("a", &facts)
                && union.includes("flux-system", &facts)
                && !union.includes("x", &facts)
        );
        let by_label = TermScope::of(
            &term(r#"{"namespaceSelector": {"matchLabels": {"team": "gitops"}}}"#),
            "x",
        )
        .unwrap();
        assert!(
            !by_label.includes("flux-system", &facts),
            "unknown labels prove nothing"
        );
        let mut known = NamespaceFacts::default();
        known.insert(
            "flux-system",
            BTreeMap::from([("team".to_owned(), "gitops".to_owned())]),
        );
        assert!(by_label.includes("flux-system", &known));
    }

    #[test]
    fn validation_follows_the_api_server() {
        let labels = BTreeMap::new();
        let pod = PodFacts {
            namespace: "ns",
            labels: &labels,
            controller_keys: &[],
        };
        let affinity = read_affinity(
            r#"{"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 0, "podAffinityTerm": {"topologyKey": "", "labelSelector": {}}}],
              "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "k", "matchLabelKeys": ["a", "a"], "mismatchLabelKeys": ["a"]}]}}"#,
        )
        .unwrap();
        let compiled = compile(&affinity, &JsonPath::root(), &pod);
        let paths: Vec<String> = compiled
            .problems
            .iter()
            .map(|p| p.path.to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "$.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector",
                "$.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].matchLabelKeys[1]",
                "$.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].mismatchLabelKeys",
                "$.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
                "$.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey",
            ]
        );
        assert!(compiled.anti_affinity.is_empty());
    }
}
