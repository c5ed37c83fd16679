//! Repairs, applied to the object and recorded as RFC 6902 operations.
//!
//! A repair only ever adds: a missing term, missing namespaces or namespaceSelector on a term
//! that cannot see its peers, a higher weight. Nothing the user wrote is removed or weakened,
//! and a repaired object evaluates clean, so applying the fix twice changes nothing.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::kube::affinity::{PodAffinityTerm, WeightedPodAffinityTerm};
use crate::kube::selector::LabelSelector;
use crate::rules::finding::PatchOp;
use crate::rules::policy::{Policy, Strength};
use crate::source::path::{JsonPath, Segment};

/// The term a rule writes, in the rule's strength: the `k8s-openapi` `PodAffinityTerm`, or a
/// `WeightedPodAffinityTerm` with the rule's weight around it.
pub(crate) fn written_term(policy: &Policy, term: PodAffinityTerm) -> Value {
    match policy.strength {
        Strength::Required => api_value(&term),
        Strength::Preferred => api_value(&WeightedPodAffinityTerm {
            // A compiled policy's weight is 1 to 100.
            weight: i32::try_from(policy.weight.clamp(1, 100)).unwrap_or(100),
            pod_affinity_term: term,
        }),
    }
}

/// A `LabelSelector` as a repair writes it.
pub(crate) fn written_selector(selector: &LabelSelector) -> Value {
    api_value(selector)
}

/// Members in the order people write them (and the API server returns them: `weight` before
/// `podAffinityTerm`, `matchLabels` before `matchExpressions`), where `k8s-openapi`
/// serialises them alphabetically; a repair's diff then reads like a hand-written term.
const WRITTEN_ORDER: &[&str] = &[
    "weight",
    "podAffinityTerm",
    "labelSelector",
    "namespaces",
    "namespaceSelector",
    "topologyKey",
    "matchLabels",
    "matchExpressions",
];

fn api_value<T: Serialize>(value: &T) -> Value {
    // The API types serialise to JSON objects of strings, numbers and lists: never an error.
    ordered(serde_json::to_value(value).unwrap_or_default())
}

fn ordered(value: Value) -> Value {
    match value {
        Value::Object(mut members) => {
            let mut out = Map::with_capacity(members.len());
            for key in WRITTEN_ORDER {
                if let Some((k, v)) = members.shift_remove_entry(*key) {
                    out.insert(k, ordered(v));
                }
            }
            for (k, v) in members {
                out.insert(k, ordered(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(ordered).collect()),
        other => other,
    }
}

/// How to repair one rule's findings on one pod source.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Append a term to a (possibly missing) list.
    AddTerm {
        /// The `...DuringSchedulingIgnoredDuringExecution` list.
        list: JsonPath,
        /// The term.
        term: Value,
    },
    /// Fix an existing term in place.
    Repair(Repair),
}

/// In-place repair of a term.
#[derive(Debug, Clone)]
pub(crate) struct Repair {
    /// The `PodAffinityTerm`.
    pub term: JsonPath,
    /// The `WeightedPodAffinityTerm` (preferred terms).
    pub weighted: Option<JsonPath>,
    /// Namespaces to add to `namespaces`.
    pub add_namespaces: Vec<String>,
    /// `namespaceSelector` to set (the term has none).
    pub namespace_selector: Option<Value>,
    /// Weight to raise to.
    pub weight: Option<i64>,
}

/// Applies a plan; returns the operations, or `None` when the object's shape makes the
/// repair impossible (a path through a non-object).
pub(crate) fn apply(value: &mut Value, plan: &Plan) -> Option<Vec<PatchOp>> {
    let mut ops = Vec::new();
    match plan {
        Plan::AddTerm { list, term } => match list.get(value) {
            Some(Value::Array(items)) => {
                let at = list.index(items.len());
                add(value, &at, term.clone(), &mut ops)?;
            }
            Some(Value::Null) | None => {
                ensure(value, list, Value::Array(vec![term.clone()]), &mut ops)?
            }
            Some(_) => return None,
        },
        Plan::Repair(r) => {
            // Another peer group's plan may have given this term a namespaceSelector already
            // (plans are made on the object as it was, applied one after another): `{}`
            // (every namespace) covers any other, so it is kept or written; two other
            // selectors cannot be joined into one, so instead of overwriting the first, a
            // copy of the term with this group's scope is appended to its list (a copy sees
            // at least what the term did: nothing is weakened). Decided before anything is
            // written.
            let selector = match (
                &r.namespace_selector,
                r.term.name("namespaceSelector").get(value),
            ) {
                (Some(new), Some(old)) if !old.is_null() => {
                    if is_everything(old) || old == new {
                        None
                    } else if is_everything(new) {
                        Some(new)
                    } else {
                        return append_copy(value, r, new);
                    }
                }
                (new, _) => new.as_ref(),
            };
            if !r.add_namespaces.is_empty() {
                let list = r.term.name("namespaces");
                let existing: Vec<String> = match list.get(value) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut missing: Vec<String> = Vec::new();
                for n in &r.add_namespaces {
                    if !existing.contains(n) && !missing.contains(n) {
                        missing.push(n.clone());
                    }
                }
                match list.get(value) {
                    Some(Value::Array(items)) => {
                        let start = items.len();
                        for (at, n) in (start..).zip(missing) {
                            add(value, &list.index(at), json!(n), &mut ops)?;
                        }
                    }
                    _ if !missing.is_empty() => add(value, &list, json!(missing), &mut ops)?,
                    _ => {}
                }
            }
            if let Some(selector) = selector {
                add(
                    value,
                    &r.term.name("namespaceSelector"),
                    selector.clone(),
                    &mut ops,
                )?;
            }
            if let (Some(weight), Some(weighted)) = (r.weight, &r.weighted) {
                let at = weighted.name("weight");
                let slot = at.get_mut(value)?;
                // Only ever raised: another rule's plan may have raised it further already.
                if slot.as_i64().is_some_and(|w| w >= weight) {
                    return Some(ops);
                }
                *slot = json!(weight);
                ops.push(PatchOp {
                    op: "replace".into(),
                    path: at.pointer(),
                    value: json!(weight),
                });
            }
        }
    }
    Some(ops)
}

/// Appends to a term's list a copy of the term (with its weight, for a preferred one) whose
/// scope is the term's namespaces and `add_namespaces`, selected by `selector`; the weight
/// raised as `r` asks.
fn append_copy(value: &mut Value, r: &Repair, selector: &Value) -> Option<Vec<PatchOp>> {
    let item = r.weighted.as_ref().unwrap_or(&r.term);
    let mut list = item.clone();
    list.pop();
    let mut copy = item.get(value)?.clone();
    let term = match r.weighted {
        Some(_) => copy.get_mut("podAffinityTerm")?,
        None => &mut copy,
    };
    let Value::Object(fields) = term else {
        return None;
    };
    fields.insert("namespaceSelector".into(), selector.clone());
    if !r.add_namespaces.is_empty() {
        let mut names: Vec<Value> = match fields.get("namespaces") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        for n in &r.add_namespaces {
            let n = json!(n);
            if !names.contains(&n) {
                names.push(n);
            }
        }
        fields.insert("namespaces".into(), Value::Array(names));
    }
    if let (Some(weight), Some(Value::Object(w))) =
        (r.weight, r.weighted.as_ref().map(|_| &mut copy))
    {
        let lower = w
            .get("weight")
            .and_then(Value::as_i64)
            .is_none_or(|old| old < weight);
        if lower {
            w.insert("weight".into(), json!(weight));
        }
    }
    let len = match list.get(value)? {
        Value::Array(items) => items.len(),
        _ => return None,
    };
    let mut ops = Vec::new();
    add(value, &list.index(len), copy, &mut ops)?;
    Some(ops)
}

/// A label selector that selects everything (`{}`, or empty lists).
fn is_everything(selector: &Value) -> bool {
    selector.as_object().is_some_and(|m| {
        m.values().all(|v| match v {
            Value::Object(o) => o.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        })
    })
}

/// `add` at a path whose parent exists.
fn add(root: &mut Value, at: &JsonPath, new: Value, ops: &mut Vec<PatchOp>) -> Option<()> {
    let mut parent_path = at.clone();
    let last = at.segments().last()?.clone();
    parent_path.pop();
    match (parent_path.get_mut(root)?, last) {
        (Value::Object(map), Segment::Name(name)) => {
            map.insert(name, new.clone());
        }
        (Value::Array(items), Segment::Index(i)) if i <= items.len() => {
            items.insert(i, new.clone())
        }
        _ => return None,
    }
    ops.push(PatchOp {
        op: "add".into(),
        path: at.pointer(),
        value: new,
    });
    Some(())
}

/// Writes `leaf` at `path`, creating the missing objects on the way with one `add` at the
/// first missing (or null) member.
fn ensure(root: &mut Value, path: &JsonPath, leaf: Value, ops: &mut Vec<PatchOp>) -> Option<()> {
    let segments = path.segments();
    let mut existing = JsonPath::root();
    for (depth, segment) in segments.iter().enumerate() {
        let next = match segment {
            Segment::Name(n) => existing.name(n),
            Segment::Index(i) => existing.index(*i),
        };
        match next.get(root) {
            Some(Value::Null) | None => {
                let mut nested = leaf;
                for s in segments.iter().skip(depth + 1).rev() {
                    let Segment::Name(n) = s else { return None };
                    let mut map = Map::new();
                    map.insert(n.clone(), nested);
                    nested = Value::Object(map);
                }
                return add(root, &next, nested, ops);
            }
            Some(_) => existing = next,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn add_term_creates_missing_parents_with_one_operation() {
        let mut v = json!({"spec": {"template": {"spec": {"containers": []}}}});
        let list = JsonPath::parse("$.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution").unwrap();
        let ops = apply(
            &mut v,
            &Plan::AddTerm {
                list: list.clone(),
                term: json!({"weight": 1}),
            },
        )
        .unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].path, "/spec/template/spec/affinity");
        assert_eq!(list.get(&v).unwrap(), &json!([{"weight": 1}]));
        let ops = apply(
            &mut v,
            &Plan::AddTerm {
                list: list.clone(),
                term: json!({"weight": 2}),
            },
        )
        .unwrap();
        assert_eq!(
            ops[0].path,
            "/spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/1"
        );
    }

    #[test]
    fn repair_adds_namespaces_and_raises_weight() {
        let mut v = json!({"a": [{"weight": 5, "podAffinityTerm": {"topologyKey": "k", "namespaces": ["x"]}}]});
        let plan = Plan::Repair(Repair {
            term: JsonPath::parse("$.a[0].podAffinityTerm").unwrap(),
            weighted: Some(JsonPath::parse("$.a[0]").unwrap()),
            add_namespaces: vec!["x".into(), "y".into()],
            namespace_selector: None,
            weight: Some(100),
        });
        let ops = apply(&mut v, &plan).unwrap();
        assert_eq!(
            v,
            json!({"a": [{"weight": 100, "podAffinityTerm": {"topologyKey": "k", "namespaces": ["x", "y"]}}]})
        );
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn refuses_to_write_through_a_scalar() {
        let mut v = json!({"spec": {"values": "oops"}});
        let list = JsonPath::parse("$.spec.values.affinity.podAntiAffinity.x").unwrap();
        assert!(
            apply(
                &mut v,
                &Plan::AddTerm {
                    list,
                    term: json!(1)
                }
            )
            .is_none()
        );
    }
}
