//! Repairs, applied to the object and recorded as RFC 6902 operations.
//!
//! A repair only ever adds: a missing term, missing namespaces or namespaceSelector on a term
//! that cannot see its peers, a higher weight. Nothing the user wrote is removed or weakened,
//! and a repaired object evaluates clean, so applying the fix twice changes nothing.

use serde_json::{Map, Value, json};

use crate::rules::finding::PatchOp;
use crate::source::path::{JsonPath, Segment};

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
            if let Some(selector) = &r.namespace_selector {
                add(
                    value,
                    &r.term.name("namespaceSelector"),
                    selector.clone(),
                    &mut ops,
                )?;
            }
            if let (Some(weight), Some(weighted)) = (r.weight, &r.weighted) {
                let at = weighted.name("weight");
                *at.get_mut(value)? = json!(weight);
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
