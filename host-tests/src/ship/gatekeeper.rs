//! `apart gatekeeper`: the Gatekeeper resources for a policy set, generated from the same
//! DecorrelationPolicy documents the Kubewarden module reads.
//!
//! - `template.yaml`: one ConstraintTemplate (`templates.gatekeeper.sh/v1`, kind
//!   [`CONSTRAINT_KIND`]) whose Rego ([`REGO`], v1 syntax, in the `code: [{engine: Rego,
//!   source: {version: "v1"}}]` form) implements the engine's checks on
//!   `input.review` (the object, and for an UPDATE `oldObject`: the same lifecycle as the
//!   engine's admission), with one policy as `input.parameters` ([`parameters`]);
//! - `constraint-<policy>.yaml`: a Constraint per policy, matching the workload kinds and the
//!   policy's value-target kinds;
//! - `mutation-<policy>.yaml`: for `action: mutate`, `Assign` mutators that add the rule's
//!   terms where a pod has no `podAntiAffinity` at all, on CREATE only: Assign cannot see
//!   `oldObject`, so it cannot follow apart's UPDATE rules (see [`ASSIGN_LIMITS`]);
//! - `suite.yaml` and `samples/<policy>/{allowed,disallowed}.yaml`: a gator `Suite`, so
//!   `gator verify` checks the template against samples for each policy.

use std::collections::{BTreeMap, BTreeSet};

use apart_policy::kube::affinity::NAMESPACE_NAME_LABEL;
use apart_policy::kube::names;
use apart_policy::kube::selector::{Operator, Selector};
use apart_policy::source::path::{JsonPath, Segment};
use apart_policy::{Action, Policy, PolicySet, Strength};
use serde_json::{Map, Value, json};

use apart_policy::source::edit::to_yaml;

/// The Rego of the ConstraintTemplate (Rego v1).
pub const REGO: &str = include_str!("gatekeeper/apart.rego");

/// Stands for the Rego in [`template`]'s value; [`template_yaml`] writes it as a block.
const REGO_PLACEHOLDER: &str = "<apart.rego>";

/// The Constraint kind the template defines.
pub const CONSTRAINT_KIND: &str = "ApartDecorrelation";

/// What a Gatekeeper `Assign` cannot do that apart's own mutation does; written into the
/// generated mutators' annotations.
pub const ASSIGN_LIMITS: &str = "Assign only writes the whole podAntiAffinity term list, and only where the pod has no podAntiAffinity (pathTests MustNotExist), so a user's affinity is never overwritten. It runs on CREATE only (applyTo operations, Gatekeeper v3.23 or later): it cannot see oldObject, so on UPDATE it could not tell a changed pod template from an unchanged one, and it would patch Pods and Jobs, whose template the API server refuses to change. Unlike apart's mutation it cannot repair a term in place (add the peers' namespaces or namespaceSelector to a namespace-blind term, raise a weight), cannot append a term next to the user's own, cannot tell a workload's pod-template labels from the workload's labels (match.labelSelector sees the object's labels), and cannot read a value target's namespace path. Objects it leaves alone are still denied by the Constraint, with the finding that says what to write (an UPDATE that changes the pod template is judged, not repaired).";

/// Workload kinds by API group, as Gatekeeper's `match.kinds` names them (the old
/// `extensions` group too: the Rego checks every version that serves a pod template).
const KINDS: [(&str, &[&str]); 4] = [
    ("", &["Pod", "ReplicationController"]),
    (
        "apps",
        &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
    ),
    ("batch", &["Job", "CronJob"]),
    ("extensions", &["Deployment", "DaemonSet", "ReplicaSet"]),
];

/// Where each kind's pod affinity is, for the mutators: (group, version, kinds, location).
const AFFINITY_LOCATIONS: [(&str, &str, &[&str], &str); 5] = [
    ("", "v1", &["Pod"], "spec.affinity"),
    (
        "",
        "v1",
        &["ReplicationController"],
        "spec.template.spec.affinity",
    ),
    (
        "apps",
        "v1",
        &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
        "spec.template.spec.affinity",
    ),
    ("batch", "v1", &["Job"], "spec.template.spec.affinity"),
    (
        "batch",
        "v1",
        &["CronJob"],
        "spec.jobTemplate.spec.template.spec.affinity",
    ),
];

/// A policy the ConstraintTemplate's Rego cannot check exactly as the engine does: it is
/// refused when the Gatekeeper resources are generated, rather than checked differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{target}: {field} {query:?} cannot be checked by the Gatekeeper ConstraintTemplate: {why}; the Kubewarden module and apart check read it (or write one value target per component, each with a singular path)"
)]
pub struct Unsupported {
    /// `policy NAME, valueTargets[i]`.
    pub target: String,
    /// `affinityPath`, `namespacePath` or `podLabelsPath`.
    pub field: &'static str,
    /// The query as written.
    pub query: String,
    /// What the Rego supports.
    pub why: &'static str,
}

const SINGULAR_ONLY: &str = "its Rego reads a value target at a singular path only (names and non-negative indexes from $, e.g. $.spec.values.server.affinity), not a query with wildcards, descendants, filters, slices, negative indexes or @";

/// Can the Rego check `policy` as the engine does? Every value target must name its affinity
/// and namespace by singular paths, and its labels by `podLabels` alone.
pub fn supported(policy: &Policy) -> Result<(), Unsupported> {
    for t in &policy.value_targets {
        let refuse = |field, query: &apart_policy::source::query::Query, why| Unsupported {
            target: t.label.clone(),
            field,
            query: query.text().to_owned(),
            why,
        };
        if t.affinity_path.singular().is_none() {
            return Err(refuse("affinityPath", &t.affinity_path, SINGULAR_ONLY));
        }
        if let Some(q) = t.namespace_path.as_ref().filter(|q| q.singular().is_none()) {
            return Err(refuse("namespacePath", q, SINGULAR_ONLY));
        }
        if let Some(q) = &t.pod_labels_path {
            return Err(refuse(
                "podLabelsPath",
                q,
                "its Rego takes a value target's pod labels from podLabels only",
            ));
        }
    }
    Ok(())
}

/// One generated file: its name inside the output folder and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path (`/`-separated).
    pub name: String,
    /// YAML text.
    pub text: String,
}

fn path_keys(path: &JsonPath) -> Value {
    Value::Array(
        path.segments()
            .iter()
            .map(|s| match s {
                Segment::Name(n) => json!(n),
                Segment::Index(i) => json!(i),
            })
            .collect(),
    )
}

/// Gatekeeper's dotted `location` for a path of names (`None` when it has an index).
fn location(path: &JsonPath) -> Option<String> {
    let mut parts = Vec::new();
    for s in path.segments() {
        match s {
            Segment::Name(n) if n.contains(['.', '"', '[', ']', ':']) => {
                parts.push(format!("\"{n}\""));
            }
            Segment::Name(n) => parts.push(n.clone()),
            Segment::Index(_) => return None,
        }
    }
    Some(parts.join("."))
}

/// The Constraint parameters for policy `index`: the policy's spec with the defaults filled
/// in (topologyKey, strength, weight; a peer group with neither namespaces nor
/// namespaceSelector gets `namespaceSelector: {}`), value-target paths also as key lists, and
/// `derived`: what the Rego reads instead of working it out per request (see `fn derived`).
pub fn parameters(set: &PolicySet, index: usize) -> Option<Value> {
    let policy = set.policies().get(index)?;
    supported(policy).ok()?;
    let settings = set.settings();
    let document = settings.pointer(&format!("/policies/{index}"))?;
    let mut p = Map::new();
    p.insert("policy".into(), json!(policy.name));
    let mut subject = Map::new();
    if let Some(ns) = &policy.subject_namespaces {
        subject.insert("namespaces".into(), json!(ns));
    }
    subject.insert(
        "labelSelector".into(),
        document
            .pointer("/spec/subject/labelSelector")
            .cloned()
            .unwrap_or(Value::Null),
    );
    p.insert("subject".into(), Value::Object(subject));
    let groups: Vec<Value> = policy
        .peers
        .iter()
        .map(|g| {
            if g.own_replicas {
                return json!({"self": true});
            }
            let mut m = Map::new();
            m.insert("labelSelector".into(), json!(g.label_selector));
            if !g.namespaces.is_empty() {
                m.insert("namespaces".into(), json!(g.namespaces));
            }
            if let Some((_, spec)) = &g.namespace_selector {
                m.insert("namespaceSelector".into(), json!(spec));
            }
            Value::Object(m)
        })
        .collect();
    p.insert("apartFrom".into(), Value::Array(groups));
    p.insert("topologyKey".into(), json!(policy.topology_key));
    p.insert("strength".into(), json!(policy.strength));
    p.insert("weight".into(), json!(policy.weight));
    p.insert("minReplicas".into(), json!(policy.min_replicas));
    p.insert("action".into(), json!(policy.action));
    p.insert(
        "existingViolations".into(),
        json!(policy.existing_violations),
    );
    let targets: Vec<Value> = policy
        .value_targets
        .iter()
        .map(|t| {
            let mut m = Map::new();
            m.insert("apiVersion".into(), json!(t.api_version));
            m.insert("kind".into(), json!(t.kind));
            if let Some(n) = &t.name {
                m.insert("name".into(), json!(n));
            }
            // Singular, as `supported` has checked.
            let affinity = t.affinity_path.singular().cloned().unwrap_or_default();
            m.insert("affinityPath".into(), json!(affinity.to_string()));
            m.insert("affinityKeys".into(), path_keys(&affinity));
            if let Some(np) = t.namespace_path.as_ref().and_then(|q| q.singular()) {
                m.insert("namespaceKeys".into(), path_keys(np));
            }
            if let Some(d) = &t.default_namespace {
                m.insert("defaultNamespace".into(), json!(d));
            }
            m.insert("podLabels".into(), json!(t.pod_labels));
            Value::Object(m)
        })
        .collect();
    if !targets.is_empty() {
        p.insert("valueTargets".into(), Value::Array(targets));
    }
    p.insert("derived".into(), derived(policy));
    Some(Value::Object(p))
}

/// What the Rego would otherwise work out from the policy on every request, worked out once
/// here: the subject's requirements, each peer group's selectors as per-key facts (what the
/// engine's selector implication reads), and the strings of the policy that the engine has
/// validated as label keys, label values or namespace names, so that a term that copies them
/// is known valid by a lookup instead of a regular expression.
fn derived(policy: &Policy) -> Value {
    let groups: Vec<Value> = policy
        .peers
        .iter()
        .map(|g| {
            if g.own_replicas {
                // Who the replicas are is the request's object's business.
                return json!({"self": true});
            }
            json!({
                "selector": selector_facts(&g.selector),
                "namespaceSelector": g.namespace_selector.as_ref().map(|(s, _)| selector_facts(s)),
            })
        })
        .collect();
    let mut strings: BTreeSet<&str> = WELL_KNOWN_KEYS.into_iter().collect();
    strings.insert("");
    strings.insert(&policy.topology_key);
    let selectors =
        std::iter::once(&policy.subject_selector).chain(policy.peers.iter().flat_map(|g| {
            std::iter::once(&g.selector).chain(g.namespace_selector.iter().map(|(s, _)| s))
        }));
    for r in selectors.flat_map(Selector::requirements) {
        strings.insert(&r.key);
        strings.extend(r.values.iter().map(String::as_str));
    }
    strings.extend(
        policy
            .subject_namespaces
            .iter()
            .flatten()
            .map(String::as_str),
    );
    strings.extend(
        policy
            .peers
            .iter()
            .flat_map(|g| g.namespaces.iter().map(String::as_str)),
    );
    let valid = |check: fn(&str) -> Result<(), String>| -> Map<String, Value> {
        strings
            .iter()
            .filter(|s| check(s).is_ok())
            .map(|s| ((*s).to_owned(), Value::Bool(true)))
            .collect()
    };
    json!({
        "subject": subject_requirements(&policy.subject_selector),
        "groups": groups,
        "labelKeys": valid(names::label_key),
        "labelValues": valid(names::label_value),
        "namespaces": valid(names::namespace),
    })
}

/// Label keys terms often carry that are not in a policy: the well-known failure domains, the
/// namespace name label, and the keys controllers add to pods (for matchLabelKeys).
const WELL_KNOWN_KEYS: [&str; 13] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    NAMESPACE_NAME_LABEL,
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "pod-template-generation",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];

/// The subject selector's requirements in the form the Rego matches labels with in one
/// expression: the label must (`want`) or must not have a value among `values` (an object,
/// for lookup), or with `any`, any value at all.
fn subject_requirements(selector: &Selector) -> Value {
    selector
        .requirements()
        .iter()
        .map(|r| {
            let values: Map<String, Value> = r
                .values
                .iter()
                .map(|v| (v.clone(), Value::Bool(true)))
                .collect();
            let (want, any) = match r.operator {
                Operator::In => (true, false),
                Operator::NotIn => (false, false),
                Operator::Exists => (true, true),
                Operator::DoesNotExist => (false, true),
            };
            json!({"key": r.key, "values": values, "any": any, "want": want})
        })
        .collect()
}

fn operator(op: Operator) -> &'static str {
    match op {
        Operator::In => "In",
        Operator::NotIn => "NotIn",
        Operator::Exists => "Exists",
        Operator::DoesNotExist => "DoesNotExist",
    }
}

/// A selector's requirements as the Rego reads them: `{key, op, values}`, values sorted.
fn requirements(selector: &Selector) -> Value {
    selector
        .requirements()
        .iter()
        .map(|r| json!({"key": r.key, "op": operator(r.operator), "values": r.values}))
        .collect()
}

/// What a selector's requirements say about one key: must exist, must not exist, the values
/// its `In`s allow (intersected; `None` without one), the values its `NotIn`s forbid.
type KeyFacts<'a> = (bool, bool, Option<BTreeSet<&'a str>>, BTreeSet<&'a str>);

/// A (compiled, non-null) selector as the Rego's implication reads it: whether any label set
/// satisfies it, and per key whether the key must exist, must not exist, which values it may
/// still take (`null`: any) and which it may not, as the engine's selector combines them.
fn selector_facts(selector: &Selector) -> Value {
    let mut facts: BTreeMap<&str, KeyFacts> = BTreeMap::new();
    for r in selector.requirements() {
        let (exists, absent, allowed, forbidden) = facts.entry(&r.key).or_default();
        let values: BTreeSet<&str> = r.values.iter().map(String::as_str).collect();
        match r.operator {
            Operator::In => {
                *exists = true;
                *allowed = Some(match allowed.take() {
                    Some(prev) => prev.intersection(&values).copied().collect(),
                    None => values,
                });
            }
            Operator::NotIn => forbidden.extend(values),
            Operator::Exists => *exists = true,
            Operator::DoesNotExist => *absent = true,
        }
    }
    let facts: Map<String, Value> = facts
        .into_iter()
        .map(|(key, (exists, absent, allowed, forbidden))| {
            let possible = allowed.map(|a| a.difference(&forbidden).copied().collect::<Vec<_>>());
            let forbidden: Map<String, Value> = forbidden
                .into_iter()
                .map(|v| (v.to_owned(), Value::Bool(true)))
                .collect();
            (
                key.to_owned(),
                json!({"exists": exists, "absent": absent, "possible": possible, "forbidden": forbidden}),
            )
        })
        .collect();
    json!({
        "requirements": requirements(selector),
        "satisfiable": selector.satisfiable(),
        "everything": selector.is_everything(),
        "facts": facts,
        "names": selector.pinned_values(NAMESPACE_NAME_LABEL),
    })
}

/// The ConstraintTemplate (the Rego stands as a placeholder; see [`template_yaml`]).
fn template() -> Value {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {
            "name": CONSTRAINT_KIND.to_lowercase(),
            "annotations": {
                "description": "apart: keeps the pods a DecorrelationPolicy protects apart from their peers with exact podAntiAffinity (generated by apart gatekeeper; the parameters are one policy)."
            }
        },
        "spec": {
            "crd": {"spec": {
                "names": {"kind": CONSTRAINT_KIND},
                "validation": {
                    "legacySchema": false,
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            }},
            "targets": [{
                "target": "admission.k8s.gatekeeper.sh",
                "code": [{"engine": "Rego", "source": {"version": "v1", "rego": REGO_PLACEHOLDER}}]
            }]
        }
    })
}

/// The ConstraintTemplate as YAML, with the Rego as a literal block (`rego: |`).
pub fn template_yaml() -> String {
    let text = to_yaml(&template());
    let mut out = String::new();
    for line in text.lines() {
        match line.strip_suffix(&format!("rego: \"{REGO_PLACEHOLDER}\"")) {
            Some(indent) => {
                out.push_str(indent);
                out.push_str("rego: |\n");
                let pad = format!("{indent}  ");
                for rego in REGO.lines() {
                    if !rego.is_empty() {
                        out.push_str(&pad);
                        out.push_str(rego);
                    }
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn match_kinds(policy: &Policy) -> Value {
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, kinds) in KINDS {
        by_group
            .entry(group.to_owned())
            .or_default()
            .extend(kinds.iter().map(|k| (*k).to_owned()));
    }
    for t in &policy.value_targets {
        let group = t
            .api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_owned();
        let kinds = by_group.entry(group).or_default();
        if !kinds.contains(&t.kind) {
            kinds.push(t.kind.clone());
        }
    }
    Value::Array(
        by_group
            .into_iter()
            .map(|(g, kinds)| json!({"apiGroups": [g], "kinds": kinds}))
            .collect(),
    )
}

/// The Constraint for policy `index`.
pub fn constraint(set: &PolicySet, index: usize) -> Option<Value> {
    let policy = set.policies().get(index)?;
    Some(json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": CONSTRAINT_KIND,
        "metadata": {"name": policy.name},
        "spec": {
            "enforcementAction": "deny",
            "match": {"kinds": match_kinds(policy)},
            "parameters": parameters(set, index)?
        }
    }))
}

fn list_name(policy: &Policy) -> &'static str {
    match policy.strength {
        Strength::Required => "requiredDuringSchedulingIgnoredDuringExecution",
        Strength::Preferred => "preferredDuringSchedulingIgnoredDuringExecution",
    }
}

/// The terms apart writes for a policy, one per peer group; a `self: true` group's selects
/// `own` (the workload's labels).
fn rule_terms(policy: &Policy, own: &Map<String, Value>) -> Vec<Value> {
    policy
        .peers
        .iter()
        .map(|g| {
            let mut term = Map::new();
            if g.own_replicas {
                term.insert("labelSelector".into(), json!({"matchLabels": own}));
            } else {
                term.insert("labelSelector".into(), json!(g.label_selector));
            }
            if !g.namespaces.is_empty() {
                term.insert("namespaces".into(), json!(g.namespaces));
            }
            if let Some((_, spec)) = &g.namespace_selector {
                term.insert("namespaceSelector".into(), json!(spec));
            }
            term.insert("topologyKey".into(), json!(policy.topology_key));
            match policy.strength {
                Strength::Required => Value::Object(term),
                Strength::Preferred => {
                    json!({"weight": policy.weight, "podAffinityTerm": term})
                }
            }
        })
        .collect()
}

/// An `applyTo` entry. CREATE only: Assign cannot see `oldObject`, so CREATE is the one
/// operation where it can do what apart's mutation does (see [`ASSIGN_LIMITS`]).
fn apply_to(group: &str, version: &str, kinds: Value) -> Value {
    json!({"groups": [group], "versions": [version], "kinds": kinds, "operations": ["CREATE"]})
}

fn assign(
    name: String,
    apply_to: Value,
    kinds: Value,
    affinity: &str,
    policy: &Policy,
    extra_match: Map<String, Value>,
) -> Value {
    let mut matching = Map::new();
    matching.insert("scope".into(), json!("Namespaced"));
    matching.insert("kinds".into(), kinds);
    matching.extend(extra_match);
    json!({
        "apiVersion": "mutations.gatekeeper.sh/v1",
        "kind": "Assign",
        "metadata": {
            "name": name,
            "annotations": {"apart.dev/policy": policy.name, "apart.dev/limits": ASSIGN_LIMITS}
        },
        "spec": {
            "applyTo": [apply_to],
            "match": matching,
            "location": format!("{affinity}.podAntiAffinity.{}", list_name(policy)),
            "parameters": {
                "pathTests": [{"subPath": format!("{affinity}.podAntiAffinity"), "condition": "MustNotExist"}],
                "assign": {"value": rule_terms(policy, &Map::new())}
            }
        }
    })
}

/// The `Assign` mutators for policy `index` (none unless `action: mutate`).
pub fn mutators(set: &PolicySet, index: usize) -> Vec<Value> {
    let Some(policy) = set.policies().get(index) else {
        return Vec::new();
    };
    // An Assign writes one value for every object it matches, and a term about a workload's
    // own replicas must name that workload's labels: no Assign can write it.
    if policy.action != Action::Mutate || policy.peers.iter().any(|g| g.own_replicas) {
        return Vec::new();
    }
    let document = set.settings();
    let subject_selector = document
        .pointer(&format!("/policies/{index}/spec/subject/labelSelector"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut out = Vec::new();
    for (group, version, kinds, affinity) in AFFINITY_LOCATIONS {
        let mut extra = Map::new();
        if let Some(ns) = &policy.subject_namespaces {
            extra.insert("namespaces".into(), json!(ns));
        }
        extra.insert("labelSelector".into(), subject_selector.clone());
        let suffix = kinds.first().map_or("pod", |k| k).to_lowercase();
        out.push(assign(
            format!("{}-{suffix}", policy.name),
            apply_to(group, version, json!(kinds)),
            json!([{"apiGroups": [group], "kinds": kinds}]),
            affinity,
            policy,
            extra,
        ));
    }
    for (i, t) in policy.value_targets.iter().enumerate() {
        let Some(affinity) = t.affinity_path.singular().and_then(location) else {
            continue;
        };
        let (group, version) = t
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", t.api_version.as_str()));
        let mut extra = Map::new();
        if let Some(n) = &t.name {
            extra.insert("name".into(), json!(n));
        }
        out.push(assign(
            format!("{}-target-{i}", policy.name),
            apply_to(group, version, json!([t.kind])),
            json!([{"apiGroups": [group], "kinds": [t.kind]}]),
            &affinity,
            policy,
            extra,
        ));
    }
    out
}

/// Labels a pod needs to be selected by `spec` (matchLabels, the first `In` value, `Exists`).
fn labels_for(spec: &Value) -> Map<String, Value> {
    let mut labels = Map::new();
    if let Some(m) = spec.get("matchLabels").and_then(Value::as_object) {
        labels.extend(m.clone());
    }
    for e in spec
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let value = match e.get("operator").and_then(Value::as_str) {
            Some("In") => e.pointer("/values/0").cloned().unwrap_or(json!("x")),
            Some("Exists") => json!("x"),
            _ => continue,
        };
        labels.insert(key.to_owned(), value);
    }
    labels
}

/// A Deployment of the policy's subject pods; with the rule's terms when `allowed`.
pub fn sample(set: &PolicySet, index: usize, allowed: bool) -> Option<Value> {
    let policy = set.policies().get(index)?;
    let settings = set.settings();
    let selector = settings.pointer(&format!("/policies/{index}/spec/subject/labelSelector"))?;
    let mut labels = labels_for(selector);
    if labels.is_empty() && policy.subject_selector.is_everything() {
        // Every workload is a subject; a Deployment still needs a selector.
        labels.insert("app".into(), json!(policy.name));
    }
    let namespace = policy
        .subject_namespaces
        .as_ref()
        .and_then(|ns| ns.first().cloned())
        .unwrap_or_else(|| "default".to_owned());
    let mut pod_spec = Map::new();
    if allowed {
        pod_spec.insert(
            "affinity".into(),
            json!({"podAntiAffinity": {list_name(policy): rule_terms(policy, &labels)}}),
        );
    }
    pod_spec.insert(
        "containers".into(),
        json!([{"name": "main", "image": "registry.k8s.io/pause:3.10"}]),
    );
    Some(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": format!("{}-{}", policy.name, if allowed { "allowed" } else { "disallowed" }), "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec}
        }
    }))
}

/// Every generated file, in a stable order; a policy the Rego cannot check is refused.
pub fn generate(set: &PolicySet) -> Result<Vec<File>, Unsupported> {
    for policy in set.policies() {
        supported(policy)?;
    }
    let mut files = vec![File {
        name: "template.yaml".to_owned(),
        text: template_yaml(),
    }];
    let mut tests = Vec::new();
    for (index, policy) in set.policies().iter().enumerate() {
        let name = &policy.name;
        if let Some(c) = constraint(set, index) {
            files.push(File {
                name: format!("constraint-{name}.yaml"),
                text: to_yaml(&c),
            });
        }
        let mutators = mutators(set, index);
        if !mutators.is_empty() {
            let docs: Vec<String> = mutators.iter().map(to_yaml).collect();
            files.push(File {
                name: format!("mutation-{name}.yaml"),
                text: docs.join("---\n"),
            });
        }
        let mut cases = Vec::new();
        for (case, allowed) in [("allowed", true), ("disallowed", false)] {
            if let Some(s) = sample(set, index, allowed) {
                let file = format!("samples/{name}/{case}.yaml");
                files.push(File {
                    name: file.clone(),
                    text: to_yaml(&s),
                });
                let assertion = if allowed {
                    json!({"violations": "no"})
                } else {
                    json!({"violations": "yes", "message": "missing-anti-affinity"})
                };
                cases.push(json!({"name": case, "object": file, "assertions": [assertion]}));
            }
        }
        tests.push(json!({
            "name": name,
            "template": "template.yaml",
            "constraint": format!("constraint-{name}.yaml"),
            "cases": cases
        }));
    }
    files.push(File {
        name: "suite.yaml".to_owned(),
        text: to_yaml(&json!({
            "kind": "Suite",
            "apiVersion": "test.gatekeeper.sh/v1alpha1",
            "metadata": {"name": "apart"},
            "tests": tests
        })),
    });
    Ok(files)
}

/// Writes the generated files under `dir` (created as needed); returns their paths.
pub fn write_dir(
    set: &PolicySet,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, crate::diagnostic::Diagnostic> {
    let io = |path: &std::path::Path, e: std::io::Error| crate::diagnostic::Diagnostic::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut written = Vec::new();
    for file in generate(set)? {
        let path = dir.join(&file.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, &file.text).map_err(|e| io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}
