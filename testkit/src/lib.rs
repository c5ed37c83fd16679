//! Random DecorrelationPolicies and the Kubernetes objects they judge, for apart's tests.
//!
//! One generator serves three drivers, each through [`Choices`], the source of its decisions:
//! the coverage-guided fuzz targets (`fuzz/`, the fuzzer's bytes through `arbitrary`), the
//! differential test of the four evaluators (a seeded [`Seeded`] stream, so that a
//! disagreement is reproduced by its seed), and the mutation property tests (a
//! [`Tape`] of numbers proptest draws and shrinks). What it writes is drawn from a small
//! vocabulary (the seed case's namespaces and labels, near misses such as `fluxcd` for `flux`,
//! every selector operator, the well-known topology keys) so that random pairs hit the
//! interesting judgements (namespace-blind terms, selector slips, too-weak terms) rather than
//! missing each other; a few choices in each are invalid on purpose (an operator with the
//! wrong values, a weight out of range, an empty topology key).
//!
//! It depends on nothing but `serde_json`: the fuzz crate (its own workspace, built with
//! coverage instrumentation) and the host's tests both use it.

use serde_json::{Map, Value, json};

/// A source of decisions. `below(n)` is a number in `0..n` (`n >= 1`); a source that runs
/// dry answers 0, which the generator reads as its simplest choice.
pub trait Choices {
    /// A number in `0..n`.
    fn below(&mut self, n: u32) -> u32;
}

/// A seeded stream (SplitMix64): the same seed gives the same cases on every machine.
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Choices for Seeded {
    fn below(&mut self, n: u32) -> u32 {
        u32::try_from(self.next() % u64::from(n.max(1))).unwrap_or(0)
    }
}

/// Decisions read from a list of numbers (each taken modulo the choice's range), then 0s:
/// what proptest draws and shrinks (shorter lists and smaller numbers are simpler cases).
#[derive(Debug, Clone)]
pub struct Tape<'a> {
    numbers: &'a [u32],
    at: usize,
}

impl<'a> Tape<'a> {
    /// A tape over `numbers`.
    pub fn new(numbers: &'a [u32]) -> Self {
        Self { numbers, at: 0 }
    }
}

impl Choices for Tape<'_> {
    fn below(&mut self, n: u32) -> u32 {
        let value = self.numbers.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        value % n.max(1)
    }
}

/// The fuzzer's bytes as choices: what the structure-aware fuzz targets generate from, and
/// what the corpus replay decodes their saved inputs with (the same bytes, the same pair).
#[cfg(feature = "arbitrary")]
pub struct Fuzzed<'a, 'b>(pub &'a mut arbitrary::Unstructured<'b>);

#[cfg(feature = "arbitrary")]
impl Choices for Fuzzed<'_, '_> {
    fn below(&mut self, n: u32) -> u32 {
        self.0.int_in_range(0..=n.saturating_sub(1)).unwrap_or(0)
    }
}

/// The pair a fuzz input's bytes stand for ([`Fuzzed`]).
#[cfg(feature = "arbitrary")]
pub fn pair_of_bytes(data: &[u8]) -> (Vec<Value>, Value) {
    pair(&mut Fuzzed(&mut arbitrary::Unstructured::new(data)))
}

fn pick<'v, T>(c: &mut dyn Choices, items: &'v [T]) -> &'v T {
    let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
    let i = usize::try_from(c.below(n)).unwrap_or(0);
    // `items` is never empty here (every list below is a literal with entries).
    &items[i.min(items.len() - 1)]
}

/// True one time in `n`.
fn one_in(c: &mut dyn Choices, n: u32) -> bool {
    c.below(n) == n - 1
}

/// Namespaces: the seed's, a namespace of the subject's, and one no peer runs in.
pub const NAMESPACES: &[&str] = &["flux-system", "kube-system", "web", "default", "other"];
/// Label keys; `kubernetes.io/metadata.name` is what admission knows a namespace by.
const KEYS: &[&str] = &["app", "app.kubernetes.io/part-of", "tier", "team"];
/// Label values, with near misses (`fluxcd` for `flux`).
const VALUES: &[&str] = &["web", "flux", "fluxcd", "db", "a", "b"];
/// Topology keys: the nested well-known domains, a custom one.
const TOPOLOGY_KEYS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "example.com/rack",
];
/// The value target's paths in a HelmRelease.
const AFFINITY_PATH: &str = "$.spec.values.server.affinity";
const NAMESPACE_PATH: &str = "$.spec.values.namespace";

fn names(c: &mut dyn Choices, from: &[&str], most: u32) -> Vec<Value> {
    let n = 1 + c.below(most);
    let mut out: Vec<Value> = Vec::new();
    for _ in 0..n {
        let name = json!(pick(c, from));
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A `metav1.LabelSelector` over the vocabulary; `invalid` allows requirements the API
/// server refuses.
pub fn selector(c: &mut dyn Choices, invalid: bool) -> Value {
    let mut sel = Map::new();
    let labels = c.below(3);
    if labels > 0 {
        let mut m = Map::new();
        for _ in 0..labels {
            m.insert((*pick(c, KEYS)).to_owned(), json!(pick(c, VALUES)));
        }
        sel.insert("matchLabels".into(), Value::Object(m));
    }
    let exprs = if labels == 0 { c.below(3) } else { c.below(2) };
    if exprs > 0 {
        let mut list = Vec::new();
        for _ in 0..exprs {
            let op = *pick(c, &["In", "NotIn", "Exists", "DoesNotExist"]);
            let mut e = Map::new();
            e.insert("key".into(), json!(pick(c, KEYS)));
            let wants_values = matches!(op, "In" | "NotIn");
            let (op, values) = match (invalid && one_in(c, 8), wants_values) {
                (true, true) => (op, false), // In/NotIn without values
                (true, false) => (op, true), // Exists/DoesNotExist with values
                (false, wants) => (op, wants),
            };
            let op = if invalid && one_in(c, 16) { "in" } else { op };
            e.insert("operator".into(), json!(op));
            if values {
                e.insert("values".into(), Value::Array(names(c, VALUES, 2)));
            }
            list.push(Value::Object(e));
        }
        sel.insert("matchExpressions".into(), Value::Array(list));
    }
    Value::Object(sel)
}

/// A namespace selector: `{}` (every namespace), by name, or by another label.
fn namespace_selector(c: &mut dyn Choices) -> Value {
    match c.below(4) {
        0 => json!({}),
        1 => json!({"matchLabels": {"kubernetes.io/metadata.name": pick(c, NAMESPACES)}}),
        2 => json!({"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In",
            "values": names(c, NAMESPACES, 2)}]}),
        _ => json!({"matchLabels": {"team": pick(c, VALUES)}}),
    }
}

/// One DecorrelationPolicy document named `name`.
pub fn policy(c: &mut dyn Choices, name: &str) -> Value {
    let mut subject = Map::new();
    if c.below(2) == 0 {
        subject.insert("namespaces".into(), Value::Array(names(c, NAMESPACES, 2)));
    }
    let subject_labels = json!({"app": pick(c, &["web", "db"])});
    subject.insert(
        "labelSelector".into(),
        match c.below(8) {
            0 | 1 => selector(c, false),
            // Every workload: one rule lints a whole repository.
            7 => json!({}),
            _ => json!({ "matchLabels": subject_labels }),
        },
    );
    let mut groups = Vec::new();
    for _ in 0..1 + c.below(2) {
        // The workload's own replicas.
        if one_in(c, 3) {
            groups.push(json!({"self": true}));
            continue;
        }
        let mut g = Map::new();
        match c.below(4) {
            0 => {}
            1 => {
                g.insert("namespaceSelector".into(), namespace_selector(c));
            }
            2 => {
                g.insert("namespaces".into(), Value::Array(names(c, NAMESPACES, 2)));
                g.insert("namespaceSelector".into(), namespace_selector(c));
            }
            _ => {
                g.insert("namespaces".into(), Value::Array(names(c, NAMESPACES, 2)));
            }
        }
        g.insert(
            "labelSelector".into(),
            if c.below(2) == 0 {
                json!({"matchLabels": {"app.kubernetes.io/part-of": "flux"}})
            } else {
                selector(c, false)
            },
        );
        groups.push(Value::Object(g));
    }
    let mut spec = Map::new();
    spec.insert("subject".into(), Value::Object(subject));
    spec.insert("apartFrom".into(), Value::Array(groups));
    if c.below(3) > 0 {
        spec.insert("topologyKey".into(), json!(pick(c, TOPOLOGY_KEYS)));
    }
    let required = c.below(3) == 0;
    if required || c.below(2) == 0 {
        spec.insert(
            "strength".into(),
            json!(if required { "required" } else { "preferred" }),
        );
    }
    if !required && c.below(2) == 0 {
        spec.insert("weight".into(), json!(pick(c, &[1, 50, 80, 100])));
    }
    if c.below(2) == 0 {
        spec.insert(
            "action".into(),
            json!(if c.below(2) == 0 {
                "mutate"
            } else {
                "validate"
            }),
        );
    }
    if one_in(c, 4) {
        spec.insert("minReplicas".into(), json!(pick(c, &[1, 2, 3])));
    }
    if one_in(c, 4) {
        spec.insert(
            "existingViolations".into(),
            json!(pick(c, &["allow", "deny"])),
        );
    }
    if one_in(c, 5) {
        let mut target = Map::new();
        target.insert("apiVersion".into(), json!("helm.toolkit.fluxcd.io/v2"));
        target.insert("kind".into(), json!("HelmRelease"));
        target.insert("affinityPath".into(), json!(AFFINITY_PATH));
        if c.below(2) == 0 {
            target.insert("namespacePath".into(), json!(NAMESPACE_PATH));
        }
        if c.below(2) == 0 {
            target.insert("defaultNamespace".into(), json!(pick(c, NAMESPACES)));
        }
        target.insert("podLabels".into(), subject_labels);
        spec.insert(
            "valueTargets".into(),
            Value::Array(vec![Value::Object(target)]),
        );
    }
    json!({
        "apiVersion": "apart.dev/v1alpha1",
        "kind": "DecorrelationPolicy",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Some of the pod's own labels (a term or a constraint about its own replicas), maybe a
/// slip away.
fn own_selector(c: &mut dyn Choices, own: &Map<String, Value>) -> Value {
    let mut m = Map::new();
    for (k, v) in own {
        if c.below(3) > 0 {
            m.insert(k.clone(), v.clone());
        }
    }
    let mut sel = json!({"matchLabels": m});
    if one_in(c, 4) {
        slip(c, &mut sel);
    }
    sel
}

/// A pod affinity term, often aimed at one of `peers` (their selector, maybe a slip away; a
/// `self` group's: some of the pod's own labels `own`).
fn term(c: &mut dyn Choices, peers: &[Value], own: &Map<String, Value>) -> Value {
    let mut t = Map::new();
    let aimed = !peers.is_empty() && c.below(3) > 0;
    if aimed {
        let group = pick(c, peers);
        if group.get("self").is_some() {
            t.insert("labelSelector".into(), own_selector(c, own));
        } else if let Some(sel) = group.get("labelSelector") {
            let mut sel = sel.clone();
            if one_in(c, 4) {
                slip(c, &mut sel);
            }
            t.insert("labelSelector".into(), sel);
        }
        match c.below(4) {
            0 => {}
            1 => {
                if let Some(ns) = group.get("namespaces") {
                    t.insert("namespaces".into(), ns.clone());
                }
            }
            2 => {
                t.insert("namespaceSelector".into(), namespace_selector(c));
            }
            _ => {
                t.insert("namespaces".into(), Value::Array(names(c, NAMESPACES, 3)));
            }
        }
    } else {
        if !one_in(c, 8) {
            t.insert("labelSelector".into(), selector(c, true));
        }
        if c.below(2) == 0 {
            t.insert("namespaces".into(), Value::Array(names(c, NAMESPACES, 2)));
        }
    }
    let key = if one_in(c, 16) {
        ""
    } else {
        pick(c, TOPOLOGY_KEYS)
    };
    t.insert("topologyKey".into(), json!(key));
    if one_in(c, 8) {
        let key = if one_in(c, 3) {
            "pod-template-hash"
        } else {
            pick(c, KEYS)
        };
        t.insert("matchLabelKeys".into(), json!([key]));
    }
    if one_in(c, 12) {
        t.insert("mismatchLabelKeys".into(), json!([pick(c, KEYS)]));
    }
    Value::Object(t)
}

/// A slip in a selector: another value, `NotIn` for `In`, `DoesNotExist` for `Exists`.
fn slip(c: &mut dyn Choices, sel: &mut Value) {
    if let Some(Value::Object(m)) = sel.get_mut("matchLabels") {
        for v in m.values_mut() {
            *v = json!(pick(c, VALUES));
        }
    }
    if let Some(Value::Array(list)) = sel.get_mut("matchExpressions") {
        for e in list {
            let flipped = match e.get("operator").and_then(Value::as_str) {
                Some("In") => "NotIn",
                Some("NotIn") => "In",
                Some("Exists") => "DoesNotExist",
                _ => "Exists",
            };
            if let Some(op) = e.get_mut("operator") {
                *op = json!(flipped);
            }
            if flipped.ends_with("Exist")
                && let Some(m) = e.as_object_mut()
            {
                m.remove("values");
            }
        }
    }
}

/// An affinity: absent (`None`), empty, or anti-affinity terms of both strengths.
fn affinity(c: &mut dyn Choices, peers: &[Value], own: &Map<String, Value>) -> Option<Value> {
    match c.below(8) {
        0 => return None,
        1 => return Some(json!({})),
        2 => return Some(json!({"podAntiAffinity": {}})),
        _ => {}
    }
    let mut anti = Map::new();
    let required = c.below(3);
    if required > 0 {
        let terms: Vec<Value> = (0..required).map(|_| term(c, peers, own)).collect();
        anti.insert(
            "requiredDuringSchedulingIgnoredDuringExecution".into(),
            Value::Array(terms),
        );
    }
    let preferred = c.below(3);
    if preferred > 0 {
        let terms: Vec<Value> = (0..preferred)
            .map(|_| {
                let weight = if one_in(c, 12) {
                    *pick(c, &[0, 101])
                } else {
                    *pick(c, &[1, 50, 80, 100])
                };
                json!({"weight": weight, "podAffinityTerm": term(c, peers, own)})
            })
            .collect();
        anti.insert(
            "preferredDuringSchedulingIgnoredDuringExecution".into(),
            Value::Array(terms),
        );
    }
    let mut aff = Map::new();
    aff.insert("podAntiAffinity".into(), Value::Object(anti));
    if one_in(c, 6) {
        aff.insert(
            "podAffinity".into(),
            json!({"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": term(c, peers, own)}]}),
        );
    }
    Some(Value::Object(aff))
}

/// Pod labels: often the first policy's subject's (so that the object is judged).
fn labels(c: &mut dyn Choices, policies: &[Value]) -> Map<String, Value> {
    let subject = policies
        .first()
        .and_then(|p| p.pointer("/spec/subject/labelSelector/matchLabels"))
        .and_then(Value::as_object);
    let mut m = match subject {
        Some(s) if c.below(4) > 0 => s.clone(),
        _ => Map::new(),
    };
    for _ in 0..c.below(3) {
        m.insert((*pick(c, KEYS)).to_owned(), json!(pick(c, VALUES)));
    }
    m
}

/// `topologySpreadConstraints`, often about the pod's own labels `own`: none (`None`), or
/// one or two, each a key, a skew, a strength or a selector away from spreading replicas.
fn spread(c: &mut dyn Choices, own: &Map<String, Value>) -> Option<Value> {
    if c.below(3) < 2 {
        return None;
    }
    let constraints: Vec<Value> = (0..1 + c.below(2))
        .map(|_| {
            let mut s = Map::new();
            s.insert("maxSkew".into(), json!(pick(c, &[1, 1, 2])));
            s.insert("topologyKey".into(), json!(pick(c, TOPOLOGY_KEYS)));
            s.insert(
                "whenUnsatisfiable".into(),
                json!(pick(c, &["DoNotSchedule", "ScheduleAnyway"])),
            );
            match c.below(6) {
                0 => {}
                1 => {
                    s.insert("labelSelector".into(), json!({}));
                }
                2 => {
                    s.insert("labelSelector".into(), selector(c, false));
                }
                _ => {
                    s.insert("labelSelector".into(), own_selector(c, own));
                }
            }
            if one_in(c, 4) {
                s.insert("matchLabelKeys".into(), json!(["pod-template-hash"]));
            }
            Value::Object(s)
        })
        .collect();
    Some(Value::Array(constraints))
}

/// A pod spec with one container, `affinity` and `topologySpreadConstraints`.
fn pod_spec(affinity: Option<Value>, spread: Option<Value>) -> Value {
    let mut spec = Map::new();
    spec.insert("containers".into(), json!([{"name": "c", "image": "i"}]));
    if let Some(a) = affinity {
        spec.insert("affinity".into(), a);
    }
    if let Some(s) = spread {
        spec.insert("topologySpreadConstraints".into(), s);
    }
    Value::Object(spec)
}

/// An object for `policies` to judge: a Pod, a workload (its pod template), or a HelmRelease
/// holding the affinity at a value target's path.
pub fn object(c: &mut dyn Choices, policies: &[Value]) -> Value {
    let peers: Vec<Value> = policies
        .iter()
        .filter_map(|p| p.pointer("/spec/apartFrom").and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    let subject_ns = policies
        .first()
        .and_then(|p| p.pointer("/spec/subject/namespaces"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .cloned();
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(format!("o{}", c.below(100))));
    match (c.below(5), subject_ns) {
        (0, _) => {}
        (1 | 2, Some(ns)) => {
            metadata.insert("namespace".into(), ns);
        }
        _ => {
            metadata.insert("namespace".into(), json!(pick(c, NAMESPACES)));
        }
    }
    let pod_labels = labels(c, policies);
    let aff = affinity(c, &peers, &pod_labels);
    let constraints = spread(c, &pod_labels);
    let has_target = policies
        .iter()
        .any(|p| p.pointer("/spec/valueTargets").is_some());
    let kinds: &[&str] = if has_target {
        &["HelmRelease", "HelmRelease", "Deployment", "Pod"]
    } else {
        &[
            "Pod",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "CronJob",
        ]
    };
    let kind = *pick(c, kinds);
    let template = || json!({"metadata": {"labels": pod_labels}, "spec": pod_spec(aff.clone(), constraints.clone())});
    let parallelism = *pick(c, &[0, 1, 2, 3]);
    let (api_version, spec) = match kind {
        "Pod" => {
            metadata.insert("labels".into(), Value::Object(pod_labels.clone()));
            ("v1", pod_spec(aff.clone(), constraints.clone()))
        }
        // Parallelism unset (0 here) means 1.
        "Job" if parallelism == 0 => ("batch/v1", json!({"template": template()})),
        "Job" => (
            "batch/v1",
            json!({"parallelism": parallelism, "template": template()}),
        ),
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"parallelism": parallelism.max(1), "template": template()}}}),
        ),
        "HelmRelease" => {
            let mut values = Map::new();
            let mut server = Map::new();
            if let Some(a) = aff.clone() {
                server.insert("affinity".into(), a);
            }
            values.insert("server".into(), Value::Object(server));
            if c.below(2) == 0 {
                values.insert("namespace".into(), json!(pick(c, NAMESPACES)));
            }
            (
                "helm.toolkit.fluxcd.io/v2",
                json!({"chart": {"spec": {"chart": "c"}}, "values": values}),
            )
        }
        _ => {
            let mut s = Map::new();
            if kind != "DaemonSet" {
                match c.below(4) {
                    0 => {}
                    1 => {
                        s.insert("replicas".into(), json!(1));
                    }
                    2 => {
                        s.insert("replicas".into(), json!(2));
                    }
                    _ => {
                        s.insert("replicas".into(), json!(3));
                    }
                }
            }
            s.insert(
                "selector".into(),
                json!({"matchLabels": pod_labels.clone()}),
            );
            s.insert("template".into(), template());
            ("apps/v1", Value::Object(s))
        }
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec})
}

/// A (policies, object) pair: one to three policies named `p0`, `p1`, ...
pub fn pair(c: &mut dyn Choices) -> (Vec<Value>, Value) {
    let n = 1 + c.below(3);
    let policies: Vec<Value> = (0..n).map(|i| policy(c, &format!("p{i}"))).collect();
    let object = object(c, &policies);
    (policies, object)
}

/// Kubewarden settings for `policies`.
pub fn settings(policies: &[Value]) -> Value {
    json!({ "policies": policies })
}

/// The pair's object as YAML text in a layout users write (block style, two-space indent,
/// plain scalars where YAML reads them back as the same strings): what the in-place editor
/// is given.
pub fn to_block_yaml(value: &Value) -> String {
    let mut out = String::new();
    block(value, 0, &mut out);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-./_".contains(ch))
                && !matches!(
                    s.as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                )
                && s.parse::<f64>().is_err()
                && !s.starts_with(['-', '.']);
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        Value::Array(a) if a.is_empty() => "[]".to_owned(),
        Value::Object(m) if m.is_empty() => "{}".to_owned(),
        other => other.to_string(),
    }
}

fn is_collection(value: &Value) -> bool {
    match value {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                out.push_str(&pad);
                out.push_str(&scalar(&Value::String(k.clone())));
                out.push(':');
                if is_collection(v) {
                    out.push('\n');
                    block(v, indent + 2, out);
                } else {
                    out.push(' ');
                    out.push_str(&scalar(v));
                    out.push('\n');
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push_str("- ");
                if is_collection(item) {
                    // The item's first line goes after the dash; the rest are indented under it.
                    let mut inner = String::new();
                    block(item, indent + 2, &mut inner);
                    out.push_str(inner.trim_start());
                } else {
                    out.push_str(&scalar(item));
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_pairs() {
        let a = pair(&mut Seeded::new(7));
        let b = pair(&mut Seeded::new(7));
        assert_eq!(a, b);
        let others: Vec<_> = (0..20).map(|s| pair(&mut Seeded::new(s))).collect();
        assert!(others.iter().any(|p| p != &a), "seeds differ");
    }

    #[test]
    fn an_empty_tape_gives_the_simplest_pair() {
        let (policies, object) = pair(&mut Tape::new(&[]));
        assert_eq!(policies.len(), 1);
        assert_eq!(object["kind"], "Pod");
    }

    #[test]
    fn pairs_cover_every_operator_and_kind() {
        let mut seen = std::collections::BTreeSet::new();
        let mut c = Seeded::new(1);
        for _ in 0..500 {
            let (policies, object) = pair(&mut c);
            let text = serde_json::to_string(&(policies, &object)).unwrap_or_default();
            for word in [
                "\"In\"",
                "\"NotIn\"",
                "\"Exists\"",
                "\"DoesNotExist\"",
                "namespaceSelector",
                "valueTargets",
                "required",
                "matchLabelKeys",
                "\"self\"",
                "minReplicas",
                "topologySpreadConstraints",
            ] {
                if text.contains(word) {
                    seen.insert(word.to_owned());
                }
            }
            seen.insert(object["kind"].as_str().unwrap_or_default().to_owned());
        }
        for want in [
            "\"In\"",
            "\"NotIn\"",
            "\"Exists\"",
            "\"DoesNotExist\"",
            "namespaceSelector",
            "valueTargets",
            "required",
            "matchLabelKeys",
            "\"self\"",
            "minReplicas",
            "topologySpreadConstraints",
            "Pod",
            "Deployment",
            "CronJob",
            "HelmRelease",
        ] {
            assert!(seen.contains(want), "{want} never generated");
        }
    }
}
