//! Evaluating one object against a policy set: which rules protect its pods, which terms keep
//! them apart from which peers, what is wrong, and (for `action: mutate`) how to repair it.
//!
//! For every subject pod source and every peer group, a term *satisfies* the rule when it is
//! a valid anti-affinity term whose selector covers every peer (selector implication), whose
//! namespace scope includes every peer namespace, whose topology key separates the rule's
//! failure domain, and which is at least as strong as the rule. When none does, the closest
//! related term (one that shares a label key with the peers, names their namespace, or has a
//! null selector) is diagnosed field by field; without one, the term is missing.

use serde_json::{Value, json};

use crate::affinity::{self, NamespaceFacts, PodFacts, Term};
use crate::error::ObjectError;
use crate::finding::{Code, Finding, ObjectRef};
use crate::mutate::{self, Plan, Repair};
use crate::object::{self, AffinitySlot, Origin, PodSource};
use crate::policy::{Action, PeerGroup, Policy, PolicySet, Strength};

/// What evaluation needs besides the object.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Namespace of objects that name none (the admission request's, or `default`).
    pub default_namespace: &'a str,
    /// Known namespace labels.
    pub namespaces: &'a NamespaceFacts,
}

/// The outcome for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The object.
    pub object: ObjectRef,
    /// Its findings, in policy order.
    pub findings: Vec<Finding>,
    /// The repaired object, when a mutate policy changed it.
    pub mutated: Option<Value>,
}

impl Evaluation {
    /// Are there error findings?
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == crate::Severity::Error)
    }
}

/// Well-known nested failure domains, narrowest first.
const DOMAINS: [&str; 3] = [
    crate::policy::HOSTNAME,
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];

fn rank(key: &str) -> Option<usize> {
    DOMAINS.iter().position(|d| *d == key)
}

/// How a term's selector relates to a peer group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelectorFit {
    Covers,
    Partial,
    Disjoint,
    Null,
}

/// A term judged against one peer group.
struct Judgement<'t, 'a> {
    term: &'t Term<'a>,
    selector: SelectorFit,
    /// Peer namespaces the term cannot see (names; or a description of the selector).
    unseen: Vec<String>,
    topology: Option<String>,
    strength: Option<String>,
    related: bool,
}

impl Judgement<'_, '_> {
    fn defects(&self) -> usize {
        usize::from(self.selector != SelectorFit::Covers)
            + usize::from(!self.unseen.is_empty())
            + usize::from(self.topology.is_some())
            + usize::from(self.strength.is_some())
    }

    fn satisfies(&self) -> bool {
        self.defects() == 0
    }

    /// Separates the domain and sees the peers, whatever its strength.
    fn separates(&self) -> bool {
        self.selector == SelectorFit::Covers && self.unseen.is_empty() && self.topology.is_none()
    }
}

fn judge<'t, 'a>(
    term: &'t Term<'a>,
    policy: &Policy,
    group: &PeerGroup,
    facts: &NamespaceFacts,
) -> Judgement<'t, 'a> {
    let selector = if term.selector.is_nothing() {
        SelectorFit::Null
    } else if group.selector.implies(&term.selector) {
        SelectorFit::Covers
    } else if term.selector.intersects(&group.selector) {
        SelectorFit::Partial
    } else {
        SelectorFit::Disjoint
    };
    let mut unseen: Vec<String> = group
        .namespaces
        .iter()
        .filter(|n| !term.scope.includes(n, facts))
        .cloned()
        .collect();
    if let Some((ns_selector, _)) = &group.namespace_selector {
        let seen = if ns_selector.is_everything() {
            term.scope.is_all()
        } else {
            term.scope.includes_selected(ns_selector, facts)
        };
        if !seen {
            unseen.push(if ns_selector.is_everything() {
                "every namespace".to_owned()
            } else {
                format!("the namespaces selected by {}", ns_selector.describe())
            });
        }
    }
    let key = term.spec.topology_key.as_str();
    let topology = topology_problem(key, &policy.topology_key, term.required());
    let strength = match (policy.strength, term.weight) {
        (Strength::Required, Some(w)) => Some(format!(
            "this term is preferred (weight {w}), but the rule requires it: move it to requiredDuringSchedulingIgnoredDuringExecution"
        )),
        (Strength::Preferred, Some(w)) if w < policy.weight => Some(format!(
            "weight {w} is below the rule's {}: set weight: {}",
            policy.weight, policy.weight
        )),
        _ => None,
    };
    let term_keys = term.selector.keys();
    let shares_key = group.selector.keys().iter().any(|k| term_keys.contains(k));
    let names_peers = !term.scope.own_namespace_only
        && group
            .namespaces
            .iter()
            .any(|n| term.scope.names.contains(n));
    let related = selector == SelectorFit::Covers
        || selector == SelectorFit::Null
        || shares_key
        || names_peers;
    Judgement {
        term,
        selector,
        unseen,
        topology,
        strength,
        related,
    }
}

fn topology_problem(key: &str, rule: &str, required: bool) -> Option<String> {
    if key == rule {
        return None;
    }
    match (rank(key), rank(rule)) {
        (Some(k), Some(r)) if k > r && required => None,
        (Some(k), Some(r)) if k > r => Some(format!(
            "topologyKey {key} is wider than the rule's {rule}: a preferred term cannot steer between {rule} domains inside one {key} domain (in a single-domain cluster it does nothing); use topologyKey: {rule}"
        )),
        (Some(_), Some(_)) => Some(format!(
            "topologyKey {key} is narrower than the rule's {rule}: it only keeps pods off the same {key} domain, not the same {rule} domain; use topologyKey: {rule}"
        )),
        _ => Some(format!(
            "topologyKey {key} is not the rule's failure domain {rule}: use topologyKey: {rule}"
        )),
    }
}

fn describe_pods(source: &PodSource) -> String {
    let labels: Vec<String> = source
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("pods {} in {}", labels.join(","), source.namespace)
}

/// The term apart would write for a group, in the shape the rule asks for.
pub(crate) fn rule_term(policy: &Policy, group: &PeerGroup) -> Value {
    let mut term = serde_json::Map::new();
    term.insert("labelSelector".into(), json!(group.label_selector));
    if !group.namespaces.is_empty() {
        term.insert("namespaces".into(), json!(group.namespaces));
    }
    if let Some((_, spec)) = &group.namespace_selector {
        term.insert("namespaceSelector".into(), json!(spec));
    }
    term.insert("topologyKey".into(), json!(policy.topology_key));
    match policy.strength {
        Strength::Required => Value::Object(term),
        Strength::Preferred => json!({"weight": policy.weight, "podAffinityTerm": term}),
    }
}

fn list_name(strength: Strength) -> &'static str {
    match strength {
        Strength::Required => "requiredDuringSchedulingIgnoredDuringExecution",
        Strength::Preferred => "preferredDuringSchedulingIgnoredDuringExecution",
    }
}

/// Findings and repair plans for one policy on one pod source.
struct Check<'p> {
    policy: &'p Policy,
    object: &'p ObjectRef,
    findings: Vec<Finding>,
    /// A plan per finding index range: `(first finding, plan)`.
    plans: Vec<(std::ops::Range<usize>, Plan)>,
}

impl Check<'_> {
    fn finding(&mut self, code: Code, path: &crate::path::JsonPath, message: String) {
        self.findings.push(Finding::new(
            code,
            &self.policy.name,
            self.object,
            path,
            message,
        ));
    }

    fn run(&mut self, source: &PodSource, facts: &NamespaceFacts) {
        let policy = self.policy;
        let empty = crate::affinity::Affinity::default();
        let affinity = match &source.affinity {
            AffinitySlot::Absent => &empty,
            AffinitySlot::Present(a) => a,
            AffinitySlot::Unreadable { path, message } => {
                self.finding(
                    Code::InvalidAffinity,
                    path,
                    format!("the API server would reject this affinity: {message}"),
                );
                return;
            }
        };
        let pod = PodFacts {
            namespace: &source.namespace,
            labels: &source.labels,
            controller_keys: source.controller_keys,
        };
        let compiled = affinity::compile(affinity, &source.affinity_path, &pod);
        for p in &compiled.problems {
            self.finding(
                Code::InvalidAffinity,
                &p.path,
                format!("the API server would reject this term: {}", p.message),
            );
        }
        let anti_path = source.affinity_path.name("podAntiAffinity");
        let mut singleton_warned = false;
        for group in &policy.peers {
            let judgements: Vec<Judgement<'_, '_>> = compiled
                .anti_affinity
                .iter()
                .map(|t| judge(t, policy, group, facts))
                .collect();
            if !singleton_warned
                && source.replicas == Some(1)
                && let Some(hard) = judgements
                    .iter()
                    .find(|j| j.term.required() && j.separates())
            {
                singleton_warned = true;
                self.finding(
                    Code::HardOnSingleton,
                    &hard.term.path,
                    format!(
                        "{} run a single replica with a required anti-affinity term against {}: when every {} domain hosts a peer, the pod cannot be scheduled; use preferredDuringSchedulingIgnoredDuringExecution with weight 100, or run 2 or more replicas",
                        describe_pods(source),
                        group.describe(),
                        policy.topology_key
                    ),
                );
            }
            if judgements.iter().any(Judgement::satisfies) {
                continue;
            }
            let first = self.findings.len();
            let best = judgements
                .iter()
                .filter(|j| j.related)
                .min_by_key(|j| j.defects());
            let plan = match best {
                None => {
                    let term = rule_term(policy, group);
                    let list = anti_path.name(list_name(policy.strength));
                    self.finding(
                        Code::MissingAntiAffinity,
                        &anti_path,
                        format!(
                            "{} have no podAntiAffinity term keeping them apart from {} on {}: add to {}: {}",
                            describe_pods(source),
                            group.describe(),
                            policy.topology_key,
                            list,
                            term
                        ),
                    );
                    Plan::AddTerm { list, term }
                }
                Some(j) => self.diagnose(j, source, group),
            };
            if policy.action == Action::Mutate {
                self.plans.push((first..self.findings.len(), plan));
            }
        }
    }

    /// Reports each defect of the closest related term; returns how to repair.
    fn diagnose(&mut self, j: &Judgement<'_, '_>, source: &PodSource, group: &PeerGroup) -> Plan {
        let policy = self.policy;
        let term = j.term;
        let term_path = &term.path;
        let wanted_selector = serde_json::to_string(&group.label_selector).unwrap_or_default();
        match j.selector {
            SelectorFit::Covers => {}
            SelectorFit::Null => self.finding(
                Code::SelectorMismatch,
                term_path,
                format!(
                    "this term has no labelSelector, so it matches no pod at all; set labelSelector: {wanted_selector} to select the peers ({})",
                    group.describe()
                ),
            ),
            SelectorFit::Partial => self.finding(
                Code::SelectorMismatch,
                &term_path.name("labelSelector"),
                format!(
                    "this term selects {}, which matches only some of the peers ({}); use labelSelector: {wanted_selector}",
                    term.selector.describe(),
                    group.describe()
                ),
            ),
            SelectorFit::Disjoint => self.finding(
                Code::SelectorMismatch,
                &term_path.name("labelSelector"),
                format!(
                    "this term selects {}, which can match none of the peers ({}): check for a typo or a wrong operator; use labelSelector: {wanted_selector}",
                    term.selector.describe(),
                    group.describe()
                ),
            ),
        }
        let mut repair = Repair {
            term: term_path.clone(),
            weighted: term.weighted_path.clone(),
            add_namespaces: Vec::new(),
            namespace_selector: None,
            weight: None,
        };
        let mut repairable = j.selector == SelectorFit::Covers && j.topology.is_none();
        if !j.unseen.is_empty() {
            let unseen = j.unseen.join(", ");
            let (message, fixable) = if term.scope.own_namespace_only {
                let mut names = vec![source.namespace.clone()];
                names.extend(
                    group
                        .namespaces
                        .iter()
                        .filter(|n| **n != source.namespace)
                        .cloned(),
                );
                let advice = match &group.namespace_selector {
                    Some((_, spec)) if group.any_namespace() => {
                        format!(
                            "add namespaceSelector: {}",
                            serde_json::to_string(spec).unwrap_or_default()
                        )
                    }
                    Some((_, spec)) => format!(
                        "add namespaceSelector: {} (and namespaces: [{}] to keep looking in the pod's own namespace)",
                        serde_json::to_string(spec).unwrap_or_default(),
                        source.namespace
                    ),
                    None => format!(
                        "add namespaces: [{}] (the pod's own namespace stays in scope)",
                        names.join(", ")
                    ),
                };
                (
                    format!(
                        "this term selects the peers' labels ({}) but has neither namespaces nor namespaceSelector, so Kubernetes only looks for them in the pod's own namespace {}; the peers run in {unseen}, so the term never matches them (a silent no-op): {advice}",
                        term.selector.describe(),
                        source.namespace
                    ),
                    true,
                )
            } else {
                let fixable =
                    term.spec.namespace_selector.is_none() || group.namespace_selector.is_none();
                (
                    format!(
                        "this term's namespace scope ({}) does not include {unseen}, where the peers run, so it never matches them there; {}",
                        describe_scope(term),
                        if group.namespace_selector.is_none() {
                            format!("add {unseen} to namespaces")
                        } else {
                            "widen namespaceSelector to the peers' (at admission apart knows only a namespace's kubernetes.io/metadata.name label)".to_owned()
                        }
                    ),
                    fixable,
                )
            };
            self.finding(Code::NamespaceBlind, &term_path.name("namespaces"), message);
            repairable &= fixable
                && (term.spec.namespace_selector.is_none() || group.namespace_selector.is_none());
            if term.scope.own_namespace_only {
                repair.add_namespaces.push(source.namespace.clone());
            }
            repair.add_namespaces.extend(
                group
                    .namespaces
                    .iter()
                    .filter(|n| !term.scope.names.contains(*n))
                    .cloned(),
            );
            if let Some((_, spec)) = &group.namespace_selector
                && term.spec.namespace_selector.is_none()
            {
                repair.namespace_selector = Some(json!(spec));
                if !term.scope.own_namespace_only {
                    // Listed namespaces stay listed; the selector adds to them.
                    repair.add_namespaces.clear();
                }
            }
            if group.namespace_selector.is_some()
                && term.scope.own_namespace_only
                && group.any_namespace()
            {
                // namespaceSelector: {} already includes the pod's own namespace.
                repair.add_namespaces.clear();
            }
        }
        if let Some(problem) = &j.topology {
            self.finding(
                Code::TopologyMismatch,
                &term_path.name("topologyKey"),
                problem.clone(),
            );
        }
        if let Some(problem) = &j.strength {
            let at = term
                .weighted_path
                .as_ref()
                .map_or_else(|| term_path.clone(), |w| w.name("weight"));
            self.finding(Code::TooWeak, &at, problem.clone());
            if policy.strength == Strength::Required {
                repairable = false;
            } else {
                repair.weight = Some(policy.weight);
            }
        }
        if repairable {
            Plan::Repair(repair)
        } else {
            Plan::AddTerm {
                list: source
                    .affinity_path
                    .name("podAntiAffinity")
                    .name(list_name(policy.strength)),
                term: rule_term(policy, group),
            }
        }
    }
}

fn describe_scope(term: &Term<'_>) -> String {
    let mut parts = Vec::new();
    if !term.scope.names.is_empty() {
        parts.push(format!("namespaces {:?}", term.scope.names));
    }
    if let Some(s) = &term.scope.selector {
        parts.push(format!("namespaceSelector {}", s.describe()));
    }
    parts.join(" and ")
}

impl PolicySet {
    /// Evaluates one object (its JSON text) against every policy.
    pub fn evaluate(&self, json: &[u8], ctx: &Context<'_>) -> Result<Evaluation, ObjectError> {
        let targets: Vec<_> = self
            .policies()
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.value_targets.iter().map(move |t| (i, t)))
            .collect();
        let read = object::read(json, ctx.default_namespace, &targets)?;
        let mut findings = Vec::new();
        let mut plans = Vec::new();
        for (index, policy) in self.policies().iter().enumerate() {
            for source in &read.sources {
                let applies = match source.origin {
                    Origin::Template => true,
                    Origin::ValueTarget { policy } => policy == index,
                };
                if !applies || !policy.is_subject(&source.namespace, &source.labels) {
                    continue;
                }
                let mut check = Check {
                    policy,
                    object: &read.object,
                    findings: Vec::new(),
                    plans: Vec::new(),
                };
                check.run(source, ctx.namespaces);
                let offset = findings.len();
                for (range, plan) in check.plans {
                    plans.push(((range.start + offset)..(range.end + offset), plan));
                }
                findings.extend(check.findings);
            }
        }
        let mutated = if plans.is_empty() {
            None
        } else {
            let mut value = match read.value {
                Some(v) => v,
                None => serde_json::from_slice(json).map_err(|e| ObjectError {
                    message: format!("cannot read the object: {e}"),
                })?,
            };
            let mut changed = false;
            for (range, plan) in plans {
                if let Some(ops) = mutate::apply(&mut value, &plan) {
                    changed |= !ops.is_empty();
                    for f in findings.get_mut(range).into_iter().flatten() {
                        f.fix = Some(ops.clone());
                    }
                }
            }
            changed.then_some(value)
        };
        Ok(Evaluation {
            object: read.object,
            findings,
            mutated,
        })
    }
}
