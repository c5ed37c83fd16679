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

use serde::{Deserialize, Serialize};

use crate::kube::names;
use crate::kube::selector::{LabelSelector, Operator, Requirement, Selector};
use crate::source::path::JsonPath;

/// `affinity` (only the inter-pod parts are read; `nodeAffinity` is left as it is).
/// Hashable so that a snapshot's replicas, which share one affinity, compile it once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    /// `podAffinity`.
    #[serde(default)]
    pub pod_affinity: Option<PodAffinity>,
    /// `podAntiAffinity`.
    #[serde(default)]
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// `podAffinity` or `podAntiAffinity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinity {
    /// Hard terms.
    #[serde(default)]
    pub required_during_scheduling_ignored_during_execution: Option<Vec<PodAffinityTerm>>,
    /// Soft, weighted terms.
    #[serde(default)]
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<WeightedPodAffinityTerm>>,
}

/// A preferred term.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedPodAffinityTerm {
    /// 1..100.
    pub weight: i64,
    /// The term.
    pub pod_affinity_term: PodAffinityTerm,
}

/// `PodAffinityTerm`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAffinityTerm {
    /// Pods this term is about (null selects none).
    #[serde(default, deserialize_with = "crate::kube::selector::strict_selector")]
    pub label_selector: Option<LabelSelector>,
    /// Namespaces the selector looks in.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// Namespaces (by label) the selector looks in.
    #[serde(default, deserialize_with = "crate::kube::selector::strict_selector")]
    pub namespace_selector: Option<LabelSelector>,
    /// The failure domain.
    #[serde(default)]
    pub topology_key: String,
    /// Keys whose pod value is ANDed in with `In`.
    #[serde(default)]
    pub match_label_keys: Option<Vec<String>>,
    /// Keys whose pod value is ANDed in with `NotIn`.
    #[serde(default)]
    pub mismatch_label_keys: Option<Vec<String>>,
}

// `k8s-openapi`'s selector types have neither `Eq` nor `Hash`; their `PartialEq` compares
// strings only, so it is an equivalence, and the hash covers every member it compares.
impl Eq for PodAffinityTerm {}

impl Hash for PodAffinityTerm {
    fn hash<H: Hasher>(&self, h: &mut H) {
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
        selector(&self.label_selector, h);
        self.namespaces.hash(h);
        selector(&self.namespace_selector, h);
        self.topology_key.hash(h);
        self.match_label_keys.hash(h);
        self.mismatch_label_keys.hash(h);
    }
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
    let groups = [
        ("podAffinity", affinity.pod_affinity.as_ref(), false),
        ("podAntiAffinity", affinity.pod_anti_affinity.as_ref(), true),
    ];
    for (field, group, anti) in groups {
        let Some(group) = group else { continue };
        let group_path = base.name(field);
        let required = group_path.name("requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in group
            .required_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
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
        for (i, weighted) in group
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let weighted_path = preferred.index(i);
            let mut weight_ok = true;
            if !(1..=100).contains(&weighted.weight) {
                weight_ok = false;
                out.problems.push(AffinityProblem {
                    path: weighted_path.name("weight"),
                    message: format!(
                        "weight {} is out of range: must be 1 to 100",
                        weighted.weight
                    ),
                });
            }
            let path = weighted_path.name("podAffinityTerm");
            let term = compile_term(
                &weighted.pod_affinity_term,
                path,
                Some(weighted_path),
                Some(weighted.weight),
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
        serde_json::from_str(json).unwrap()
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
        let affinity: Affinity = serde_json::from_str(
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
