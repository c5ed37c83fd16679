//! `self: true` peer groups: a workload's replicas apart from each other.
//!
//! The replicas are the pods of the same workload: those its pod template's labels identify
//! (plus the labels its controller adds, `pod-template-hash` and the like, values unknown
//! here), in its own namespace. Who they are is known only per pod source, so this module
//! judges a source's terms and `topologySpreadConstraints` against its own labels directly,
//! not through selector implication as [`crate::rules::judge`] does for other groups.
//!
//! - An anti-affinity term keeps the replicas apart when its selector selects the template's
//!   labels (a requirement on a controller key matches only `Exists`: its value is not known
//!   before the pod exists), `mismatchLabelKeys` does not exclude them (a key the pods carry
//!   excludes their own value, so their own revision), its namespace scope includes the
//!   pod's own namespace, and its topology and strength are the rule's (as for other peers).
//!   `matchLabelKeys` never excludes the pod's own replicas: a key the template carries
//!   adds a requirement its replicas meet, a controller key (`pod-template-hash`) narrows the
//!   term to one revision (the replicas of one rollout, which is what the scheduler places
//!   together), an absent key is ignored by the API server.
//! - A spread constraint keeps them apart when its `topologyKey` is the rule's (a spread
//!   over zones with `maxSkew: 1` still lets two replicas share a node of one zone, so
//!   unlike a required term a wider domain does not do), its `labelSelector` selects the
//!   template's labels (a null or empty selector counts no pod), with `matchLabelKeys` read
//!   as above, `maxSkew: 1`, and `whenUnsatisfiable: DoNotSchedule` for a required rule
//!   (`ScheduleAnyway` only prefers). `minDomains`, `nodeAffinityPolicy` and
//!   `nodeTaintsPolicy` only choose which domains count toward the global minimum: the
//!   scheduler never lets the skew between counted domains exceed 1, so none of them makes a
//!   constraint spread less, and they are not judged.
//! - A group applies only to a workload that can run `minReplicas` pods at once
//!   (`spec.replicas`, absent = 1 as the API server defaults it; a Job's `parallelism`):
//!   never to a single Pod, a DaemonSet (one pod per node already) or a value target.
//!
//! When nothing keeps them apart, the closest candidate is diagnosed: every spread
//! constraint (a constraint is always about spreading pods) and every term that selects the
//! replicas. With none, the term is missing.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::kube::affinity::{NamespaceFacts, PodAffinityTerm, Term};
use crate::kube::object::PodSource;
use crate::kube::scheduling::{DO_NOT_SCHEDULE, SCHEDULE_ANYWAY, TopologySpreadConstraint};
use crate::kube::selector::{LabelSelector, Selector};
use crate::rules::finding::Code;
use crate::rules::judge::topology_problem;
use crate::rules::mutate::Repair;
use crate::rules::policy::{Policy, Strength};
use crate::source::path::JsonPath;

/// What a controller key stands for while its value is unknown: no selector value can equal
/// it (a label value never holds `<`).
const UNKNOWN: &str = "<set by the controller>";

/// One finding a candidate would get.
pub(crate) struct Defect {
    pub code: Code,
    pub path: JsonPath,
    pub message: String,
}

/// A term or a spread constraint judged against the source's own replicas.
pub(crate) struct Candidate {
    /// Empty: it keeps the replicas apart.
    pub defects: Vec<Defect>,
    /// Meant for the replicas (a spread constraint, or a term that selects them).
    pub meant: bool,
    /// How to repair it in place, when that is possible; otherwise a term is added.
    pub repair: Option<Repair>,
    /// `spreads pods app=web on kubernetes.io/hostname`, for messages about other terms.
    pub describe: String,
}

/// How many replicas the source runs, when a self group applies to it.
pub(crate) fn applies(policy: &Policy, source: &PodSource) -> Option<i64> {
    source
        .replicas
        .filter(|r| source.workload && *r >= policy.min_replicas)
}

/// The labels the replicas carry: the template's, and the controller's keys with values
/// unknown.
fn own_label<'a>(source: &'a PodSource, key: &str) -> Option<&'a str> {
    source
        .labels
        .get(key)
        .map(String::as_str)
        .or_else(|| source.controller_keys.contains(&key).then_some(UNKNOWN))
}

fn selects_own(selector: &Selector, source: &PodSource) -> bool {
    selector.matches(|k| own_label(source, k))
}

/// `app=web,tier=db` (names and values shortened as messages show them).
pub(crate) fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "no labels".to_owned();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                crate::kube::names::shortened(k),
                crate::kube::names::shortened(v)
            )
        })
        .collect();
    parts.join(",")
}

/// The selector apart writes for the replicas: the workload's own `spec.selector` when it
/// selects the template's pods, else the template's labels.
pub(crate) fn own_selector(source: &PodSource) -> LabelSelector {
    source
        .workload_selector
        .clone()
        .unwrap_or_else(|| LabelSelector {
            match_labels: (!source.labels.is_empty()).then(|| source.labels.clone()),
            match_expressions: None,
        })
}

/// The term apart writes: no `namespaces` and no `namespaceSelector`, which is the pod's own
/// namespace wherever the manifest is applied (a listed name would go stale under
/// `kubectl apply -n`).
pub(crate) fn rule_term(policy: &Policy, source: &PodSource) -> Value {
    let term = PodAffinityTerm {
        label_selector: Some(own_selector(source)),
        topology_key: policy.topology_key.clone(),
        ..Default::default()
    };
    crate::rules::mutate::written_term(policy, term)
}

/// Keys in `matchLabelKeys` that narrow to one revision (controller keys the template does
/// not carry), for messages.
fn revision_keys<'k>(keys: Option<&'k Vec<String>>, source: &PodSource) -> Vec<&'k str> {
    keys.into_iter()
        .flatten()
        .filter(|k| !source.labels.contains_key(*k) && source.controller_keys.contains(&k.as_str()))
        .map(String::as_str)
        .collect()
}

fn revision_note(keys: &[&str]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            " (matchLabelKeys {} narrow it to the replicas of one revision, which is what one rollout places)",
            keys.join(", ")
        )
    }
}

/// The spread constraint that would do instead of a term, for messages.
pub(crate) fn rule_spread(policy: &Policy) -> String {
    let when = match policy.strength {
        Strength::Required => "DoNotSchedule",
        Strength::Preferred => "ScheduleAnyway or DoNotSchedule",
    };
    format!(
        "a topologySpreadConstraint with topologyKey: {}, maxSkew: 1 and whenUnsatisfiable: {when}, counting these pods, does too",
        policy.topology_key
    )
}

/// Where a term's weight is (or, for a required term, the term itself).
fn weight_path(term: &Term<'_>) -> JsonPath {
    term.weighted_path
        .as_ref()
        .map_or_else(|| term.path.clone(), |p| p.name("weight"))
}

/// Judges an anti-affinity term.
pub(crate) fn judge_term(
    term: &Term<'_>,
    policy: &Policy,
    source: &PodSource,
    facts: &NamespaceFacts,
) -> Candidate {
    let written = Selector::compile(term.spec.label_selector.as_ref())
        .unwrap_or_else(|_| Selector::nothing());
    let excluded = term
        .spec
        .mismatch_label_keys
        .iter()
        .flatten()
        .any(|k| own_label(source, k).is_some());
    let selects = !written.is_nothing() && selects_own(&written, source) && !excluded;
    let describe = format!("{} on {}", term.selector.describe(), term.spec.topology_key);
    if !selects {
        return Candidate {
            defects: Vec::new(),
            meant: false,
            repair: None,
            describe,
        };
    }
    let note = revision_note(&revision_keys(term.spec.match_label_keys.as_ref(), source));
    let mut defects = Vec::new();
    let mut repair = Repair {
        term: term.path.clone(),
        weighted: term.weighted_path.clone(),
        add_namespaces: Vec::new(),
        namespace_selector: None,
        weight: None,
    };
    let mut repairable = true;
    if !term.scope.includes(&source.namespace, facts) {
        defects.push(Defect {
            code: Code::NamespaceBlind,
            path: term.path.name("namespaces"),
            message: format!(
                "this term selects the workload's own pods ({}){note}, but its namespace scope does not include their namespace {}, so it never sees the other replicas: add {} to namespaces",
                describe_labels(&source.labels),
                source.namespace,
                source.namespace
            ),
        });
        repair.add_namespaces = vec![source.namespace.clone()];
    }
    if let Some(problem) = topology_problem(
        &term.spec.topology_key,
        &policy.topology_key,
        term.required(),
    ) {
        defects.push(Defect {
            code: Code::TopologyMismatch,
            path: term.path.name("topologyKey"),
            message: format!("{problem}{note}"),
        });
        repairable = false;
    }
    match (policy.strength, term.weight) {
        (Strength::Required, Some(w)) => {
            defects.push(Defect {
                code: Code::TooWeak,
                path: weight_path(term),
                message: format!(
                    "this term is preferred (weight {w}), but the rule requires the replicas apart: move it to requiredDuringSchedulingIgnoredDuringExecution{note}"
                ),
            });
            repairable = false;
        }
        (Strength::Preferred, Some(w)) if w < policy.weight => {
            defects.push(Defect {
                code: Code::TooWeak,
                path: weight_path(term),
                message: format!(
                    "weight {w} is below the rule's {}: set weight: {}{note}",
                    policy.weight, policy.weight
                ),
            });
            repair.weight = Some(policy.weight);
        }
        _ => {}
    }
    Candidate {
        defects,
        meant: true,
        repair: repairable.then_some(repair),
        describe,
    }
}

/// Judges a spread constraint (`at`: its path).
pub(crate) fn judge_spread(
    constraint: &TopologySpreadConstraint,
    at: &JsonPath,
    policy: &Policy,
    source: &PodSource,
) -> Candidate {
    let key = &constraint.topology_key;
    let describe = format!("a topologySpreadConstraint on {key}");
    let mut defects = Vec::new();
    let own = serde_json::to_string(&own_selector(source)).unwrap_or_default();
    let selector = Selector::compile(constraint.label_selector.as_ref());
    let selector_problem = match &selector {
        _ if constraint.label_selector.is_none() => Some(format!(
            "this constraint has no labelSelector, so it counts no pod and spreads nothing: set labelSelector: {own}"
        )),
        Err(_) => Some(format!(
            "this constraint's labelSelector cannot be read, so it counts no pod: set labelSelector: {own}"
        )),
        Ok(s) if s.is_everything() => Some(format!(
            "labelSelector: {{}} counts no pod in a spread constraint (kube-scheduler since 1.27), so it spreads nothing: set labelSelector: {own}"
        )),
        Ok(s) if !selects_own(s, source) => Some(format!(
            "this constraint counts {}, which does not select the workload's own pods ({}): set labelSelector: {own}",
            s.describe(),
            describe_labels(&source.labels)
        )),
        Ok(_) => None,
    };
    if let Some(message) = selector_problem {
        defects.push(Defect {
            code: Code::SelectorMismatch,
            path: if constraint.label_selector.is_none() {
                at.clone()
            } else {
                at.name("labelSelector")
            },
            message,
        });
        // Until it counts the replicas, its key and skew say nothing about them.
        return Candidate {
            defects,
            meant: true,
            repair: None,
            describe,
        };
    }
    let note = revision_note(&revision_keys(constraint.match_label_keys.as_ref(), source));
    if key != &policy.topology_key {
        defects.push(Defect {
            code: Code::TopologyMismatch,
            path: at.name("topologyKey"),
            message: format!(
                "this constraint{note} spreads the replicas over {key}, not the rule's failure domain {}: a spread over another key can still put two replicas in one {} domain; use topologyKey: {}",
                policy.topology_key, policy.topology_key, policy.topology_key
            ),
        });
    }
    let skew = constraint.max_skew;
    let when = constraint.when_unsatisfiable.as_str();
    let when_ok = match policy.strength {
        Strength::Required => when == DO_NOT_SCHEDULE,
        Strength::Preferred => when == DO_NOT_SCHEDULE || when == SCHEDULE_ANYWAY,
    };
    if skew != 1 || !when_ok {
        let mut wants = Vec::new();
        if skew != 1 {
            wants.push(format!(
                "maxSkew {skew} lets a domain hold {skew} more replicas than the emptiest one, so replicas can share a domain while another has none; set maxSkew: 1"
            ));
        }
        if !when_ok {
            wants.push(match policy.strength {
                Strength::Required => format!(
                    "whenUnsatisfiable {when:?} only prefers, but the rule requires the replicas apart; set whenUnsatisfiable: DoNotSchedule"
                ),
                Strength::Preferred => format!(
                    "whenUnsatisfiable {when:?} is neither DoNotSchedule nor ScheduleAnyway"
                ),
            });
        }
        defects.push(Defect {
            code: Code::TooWeak,
            path: if skew != 1 {
                at.name("maxSkew")
            } else {
                at.name("whenUnsatisfiable")
            },
            message: wants.join("; "),
        });
    }
    Candidate {
        defects,
        meant: true,
        repair: None,
        describe,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::kube::object::{AffinitySlot, Origin};
    use serde_json::json;

    fn source(labels: &[(&str, &str)]) -> PodSource {
        PodSource {
            namespace: "prod".to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            affinity: AffinitySlot::Absent,
            affinity_path: JsonPath::parse("$.spec.template.spec.affinity").unwrap(),
            replicas: Some(3),
            controller_keys: &["pod-template-hash"],
            origin: Origin::Template,
            spread: Vec::new(),
            spread_path: JsonPath::parse("$.spec.template.spec.topologySpreadConstraints").unwrap(),
            workload_selector: None,
            workload: true,
        }
    }

    fn selector(json: &str) -> Selector {
        let spec = crate::kube::selector::read_selector(json).unwrap();
        Selector::compile(Some(&spec)).unwrap()
    }

    #[test]
    fn controller_keys_match_only_exists() {
        let s = source(&[("app", "web")]);
        assert!(selects_own(
            &selector(r#"{"matchLabels": {"app": "web"}}"#),
            &s
        ));
        assert!(selects_own(
            &selector(
                r#"{"matchExpressions": [{"key": "pod-template-hash", "operator": "Exists"}]}"#
            ),
            &s
        ));
        for other in [
            r#"{"matchLabels": {"app": "web", "tier": "db"}}"#,
            r#"{"matchLabels": {"pod-template-hash": "abc"}}"#,
            r#"{"matchExpressions": [{"key": "pod-template-hash", "operator": "DoesNotExist"}]}"#,
        ] {
            assert!(!selects_own(&selector(other), &s), "{other}");
        }
    }

    #[test]
    fn the_workload_selector_is_written_else_the_template_labels() {
        let mut s = source(&[("app", "web"), ("version", "v2")]);
        assert_eq!(
            serde_json::to_value(own_selector(&s)).unwrap(),
            json!({"matchLabels": {"app": "web", "version": "v2"}})
        );
        s.workload_selector =
            Some(serde_json::from_str(r#"{"matchLabels": {"app": "web"}}"#).unwrap());
        assert_eq!(
            serde_json::to_value(own_selector(&s)).unwrap(),
            json!({"matchLabels": {"app": "web"}})
        );
    }

    fn spread(json: Value) -> TopologySpreadConstraint {
        serde_json::from_value(json).unwrap()
    }

    fn policy(strength: &str) -> Policy {
        let mut set = crate::PolicySet::default();
        set.push(json!({
            "apiVersion": "apart.dev/v1alpha1", "kind": "DecorrelationPolicy",
            "metadata": {"name": "p"},
            "spec": {"subject": {"labelSelector": {}}, "apartFrom": [{"self": true}], "strength": strength}
        }))
        .unwrap();
        set.policies()[0].clone()
    }

    #[test]
    fn spread_constraints_are_judged_on_key_selector_skew_and_strength() {
        let s = source(&[("app", "web")]);
        let at = s.spread_path.index(0);
        let codes = |c: Value, strength: &str| -> Vec<Code> {
            judge_spread(&spread(c), &at, &policy(strength), &s)
                .defects
                .iter()
                .map(|d| d.code)
                .collect()
        };
        let good = json!({"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash"]});
        assert_eq!(codes(good.clone(), "required"), []);
        let mut anyway = good.clone();
        anyway["whenUnsatisfiable"] = json!("ScheduleAnyway");
        assert_eq!(codes(anyway.clone(), "preferred"), []);
        assert_eq!(codes(anyway, "required"), [Code::TooWeak]);
        let mut skew = good.clone();
        skew["maxSkew"] = json!(2);
        assert_eq!(codes(skew, "preferred"), [Code::TooWeak]);
        let mut zone = good.clone();
        zone["topologyKey"] = json!("topology.kubernetes.io/zone");
        assert_eq!(codes(zone, "preferred"), [Code::TopologyMismatch]);
        let mut empty = good.clone();
        empty["labelSelector"] = json!({});
        assert_eq!(codes(empty, "preferred"), [Code::SelectorMismatch]);
        let mut other = good;
        other["labelSelector"] = json!({"matchLabels": {"app": "db"}});
        other["maxSkew"] = json!(3);
        assert_eq!(
            codes(other, "preferred"),
            [Code::SelectorMismatch],
            "one finding until it counts the replicas"
        );
    }
}
