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

use crate::error::ObjectError;
use crate::kube::affinity::{self, NamespaceFacts, PodFacts, Term};
use crate::kube::object::{self, AffinitySlot, ObjectView, Origin, PodSource};
use crate::rules::finding::{Code, Finding, ObjectRef};
use crate::rules::mutate::{self, Plan, Repair};
use crate::rules::policy::{Action, PeerGroup, Policy, PolicySet, Strength};

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
    crate::rules::policy::HOSTNAME,
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
    /// Listed peer namespaces the term cannot see.
    missing_names: Vec<String>,
    /// The peer group selects namespaces by label, and the term does not provably see them.
    selector_unseen: bool,
    topology: Option<String>,
    strength: Option<String>,
    related: bool,
}

impl Judgement<'_, '_> {
    fn defects(&self) -> usize {
        usize::from(self.selector != SelectorFit::Covers)
            + usize::from(self.blind())
            + usize::from(self.topology.is_some())
            + usize::from(self.strength.is_some())
    }

    fn satisfies(&self) -> bool {
        self.defects() == 0
    }

    /// Separates the domain and sees the peers, whatever its strength.
    fn separates(&self) -> bool {
        self.selector == SelectorFit::Covers && !self.blind() && self.topology.is_none()
    }

    fn blind(&self) -> bool {
        !self.missing_names.is_empty() || self.selector_unseen
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
    let missing_names: Vec<String> = group
        .namespaces
        .iter()
        .filter(|n| !term.scope.includes(n, facts))
        .cloned()
        .collect();
    let selector_unseen = group.namespace_selector.as_ref().is_some_and(|(s, _)| {
        if s.is_everything() {
            !term.scope.is_all()
        } else {
            !term.scope.includes_selected(s, facts)
        }
    });
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
        missing_names,
        selector_unseen,
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

/// `pods app=web,tier=db in prod`; `pods without labels in prod` (what an empty subject
/// selector protects). A value the API server would refuse may be megabytes long: it is cut.
fn describe_pods(source: &PodSource) -> String {
    let namespace = crate::kube::names::shortened(&source.namespace);
    if source.labels.is_empty() {
        return format!("pods without labels in {namespace}");
    }
    let labels: Vec<String> = source
        .labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                crate::kube::names::shortened(k),
                crate::kube::names::shortened(v)
            )
        })
        .collect();
    format!("pods {} in {namespace}", labels.join(","))
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
    fn finding(&mut self, code: Code, path: &crate::source::path::JsonPath, message: String) {
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
        let empty = crate::kube::affinity::Affinity::default();
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
        if j.blind() {
            self.finding(
                Code::NamespaceBlind,
                &term_path.name("namespaces"),
                blind_message(j, source, group),
            );
            let own_only = term.scope.own_namespace_only;
            let mut adds_scope = !j.missing_names.is_empty();
            repair.add_namespaces = j.missing_names.clone();
            if j.selector_unseen {
                match (&term.spec.namespace_selector, &group.namespace_selector) {
                    (None, Some((_, spec))) => {
                        repair.namespace_selector = Some(json!(spec));
                        adds_scope = true;
                    }
                    // Two selectors cannot be merged into one term: add a new term instead.
                    _ => repairable = false,
                }
            }
            // Writing namespaces or a namespaceSelector ends the implicit "own namespace"
            // scope; keep it unless the new selector is `{}` (which includes it).
            if own_only && adds_scope && !group.any_namespace() {
                repair.add_namespaces.insert(0, source.namespace.clone());
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

/// The `namespace-blind` message: what the term sees, where the peers are, what to add.
fn blind_message(j: &Judgement<'_, '_>, source: &PodSource, group: &PeerGroup) -> String {
    let term = j.term;
    let mut unseen = j.missing_names.clone();
    if j.selector_unseen
        && let Some((s, _)) = &group.namespace_selector
    {
        unseen.push(if s.is_everything() {
            "every namespace".to_owned()
        } else {
            format!("the namespaces selected by {}", s.describe())
        });
    }
    let unseen = unseen.join(", ");
    let selector_json = |spec: &crate::kube::selector::LabelSelectorSpec| {
        serde_json::to_string(spec).unwrap_or_default()
    };
    let mut advice = Vec::new();
    if !j.missing_names.is_empty() {
        let mut names = j.missing_names.clone();
        let mut why = "";
        if term.scope.own_namespace_only {
            names.insert(0, source.namespace.clone());
            why = " (listing the pod's own namespace keeps it in scope)";
        }
        advice.push(format!("add namespaces: [{}]{why}", names.join(", ")));
    }
    if j.selector_unseen
        && let Some((_, spec)) = &group.namespace_selector
    {
        if term.spec.namespace_selector.is_some() {
            advice.push(format!(
                "widen namespaceSelector to the peers' {} (at admission apart knows only a namespace's kubernetes.io/metadata.name label)",
                selector_json(spec)
            ));
        } else {
            advice.push(format!("add namespaceSelector: {}", selector_json(spec)));
            if term.scope.own_namespace_only && !group.any_namespace() {
                advice.push(format!(
                    "namespaces: [{}] to keep the pod's own namespace in scope",
                    source.namespace
                ));
            }
        }
    }
    let advice = advice.join(" and ");
    if term.scope.own_namespace_only {
        format!(
            "this term selects the peers' labels ({}) but has neither namespaces nor namespaceSelector, so Kubernetes only looks for them in the pod's own namespace {}; the peers run in {unseen}, so the term never matches them (a silent no-op): {advice}",
            term.selector.describe(),
            source.namespace
        )
    } else {
        format!(
            "this term's namespace scope ({}) does not include {unseen}, where the peers run, so it never matches them there: {advice}",
            describe_scope(term)
        )
    }
}

fn describe_scope(term: &Term<'_>) -> String {
    let mut parts = Vec::new();
    if !term.scope.names.is_empty() {
        let names: Vec<&str> = term.scope.names.iter().map(String::as_str).collect();
        parts.push(format!("namespaces [{}]", names.join(", ")));
    }
    if let Some(s) = &term.scope.selector {
        parts.push(format!("namespaceSelector {}", s.describe()));
    }
    parts.join(" and ")
}

impl PolicySet {
    /// Evaluates one object (its JSON text) against every policy.
    pub fn evaluate(&self, json: &[u8], ctx: &Context<'_>) -> Result<Evaluation, ObjectError> {
        let view: ObjectView<'_> =
            serde_json::from_slice(json).map_err(|e| object::object_error(json, e))?;
        self.evaluate_view(view, ctx, &mut || {
            serde_json::from_slice(json).map_err(|e| object::object_error(json, e))
        })
    }

    /// Evaluates an object already read leanly. `whole` reads the complete object; it is
    /// called only when a value target or a repair needs it.
    pub fn evaluate_view(
        &self,
        view: ObjectView<'_>,
        ctx: &Context<'_>,
        whole: &mut dyn FnMut() -> Result<Value, ObjectError>,
    ) -> Result<Evaluation, ObjectError> {
        let targets: Vec<_> = self
            .policies()
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.value_targets.iter().map(move |t| (i, t)))
            .collect();
        let read = object::read_view(view, ctx.default_namespace, &targets, whole)?;
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
                None => whole()?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_domains() {
        let host = crate::rules::policy::HOSTNAME;
        let zone = "topology.kubernetes.io/zone";
        let region = "topology.kubernetes.io/region";
        assert_eq!(topology_problem(host, host, false), None);
        assert_eq!(
            topology_problem(zone, host, true),
            None,
            "required zone separates nodes"
        );
        assert_eq!(topology_problem(region, zone, true), None);
        assert!(topology_problem(zone, host, false).is_some_and(|m| m.contains("wider")));
        assert!(topology_problem(host, zone, true).is_some_and(|m| m.contains("narrower")));
        assert!(
            topology_problem("example.com/rack", host, true)
                .is_some_and(|m| m.contains("not the rule's"))
        );
    }
}
