//! Evaluating one object against a policy set: which rules protect its pods, which terms keep
//! them apart from which peers, what is wrong, and (for `action: mutate`) how to repair it.
//!
//! For every subject pod source and every peer group, a term *satisfies* the rule when it is
//! a valid anti-affinity term whose selector covers every peer (selector implication), whose
//! namespace scope includes every peer namespace, whose topology key separates the rule's
//! failure domain, and which is at least as strong as the rule ([`crate::rules::judge`]).
//! When none does, the closest term *meant for the peers* is diagnosed: a term that does not
//! select them gets one finding (its selector); one that does, a finding per field that falls
//! short. Without such a term the group's term is missing, and the pod's other terms (replica
//! spreads, terms about other groups) are left alone.

use serde_json::Value;

use crate::error::ObjectError;
use crate::kube::affinity::{self, NamespaceFacts, PodFacts, Term};
use crate::kube::object::{self, AffinitySlot, ObjectView, Origin, PodSource};
use crate::rules::finding::{Code, Finding, ObjectRef};
use crate::rules::judge::{Judgement, SelectorFit, judge};
use crate::rules::mutate::{self, Plan, Repair};
use crate::rules::policy::{Action, PeerGroup, Policy, PolicySet, Strength};
use crate::rules::replicas;
use crate::source::path::Segment;
use crate::source::splice::{self, MemberSpan};

/// What evaluation needs besides the object.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Namespace of objects that name none (the admission request's, or `default`).
    pub default_namespace: &'a str,
    /// Known namespace labels.
    pub namespaces: &'a NamespaceFacts,
}

/// The outcome for one object.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The object.
    pub object: ObjectRef,
    /// Its findings, in policy order.
    pub findings: Vec<Finding>,
    /// The repaired object as JSON text, when a mutate policy changed it: the object's own
    /// text with only the repaired affinity written anew, where that can be done, else the
    /// whole object written from its tree.
    pub mutated: Option<String>,
    /// The pod sources read, for the re-check of the repaired object.
    pub(crate) sources: Vec<PodSource>,
    /// Each source's affinity after its repairs (JSON text), for the sources a plan touched.
    pub(crate) repaired: Vec<Option<String>>,
}

impl Evaluation {
    /// Are there error findings?
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == crate::Severity::Error)
    }
}

/// `pods app=web,tier=db in prod`; `pods without labels in prod` (what an empty subject
/// selector protects). A value the API server would refuse may be megabytes long: it is cut.
fn describe_pods(source: &PodSource) -> String {
    let namespace = crate::kube::names::shortened(&source.namespace);
    if source.labels.is_empty() {
        return format!("pods without labels in {namespace}");
    }
    format!(
        "pods {} in {namespace}",
        replicas::describe_labels(&source.labels)
    )
}

/// The term apart would write for a group, in the shape the rule asks for.
pub(crate) fn rule_term(policy: &Policy, group: &PeerGroup) -> Value {
    let term = affinity::PodAffinityTerm {
        label_selector: Some(group.label_selector.clone()),
        namespaces: (!group.namespaces.is_empty())
            .then(|| group.namespaces.iter().cloned().collect()),
        namespace_selector: group.namespace_selector.as_ref().map(|(_, s)| s.clone()),
        topology_key: policy.topology_key.clone(),
        ..Default::default()
    };
    mutate::written_term(policy, term)
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
            AffinitySlot::Unselected { query } => {
                self.unselected(source, query);
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
            if group.own_replicas {
                self.run_own_replicas(source, &compiled.anti_affinity, facts);
                continue;
            }
            let judgements: Vec<Judgement<'_, '_>> = compiled
                .anti_affinity
                .iter()
                .map(|t| judge(t, policy, group, &pod, facts))
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
                .filter(|j| j.meant_for_peers)
                .min_by_key(|j| j.defects());
            let plan = match best {
                None => {
                    let term = rule_term(policy, group);
                    let list = anti_path.name(list_name(policy.strength));
                    self.finding(
                        Code::MissingAntiAffinity,
                        &anti_path,
                        format!(
                            "{} have no podAntiAffinity term keeping them apart from {} on {}: add to {}: {}{}",
                            describe_pods(source),
                            group.describe(),
                            policy.topology_key,
                            list,
                            term,
                            other_terms(&judgements)
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

    /// A value target whose affinity query selects nothing in the object: the subject's pods
    /// have no affinity, and there is no concrete place a repair could write one, so one
    /// finding says so, with no fix. (`self: true` groups judge workloads only, never value
    /// targets.)
    fn unselected(&mut self, source: &PodSource, query: &str) {
        let groups: Vec<String> = self
            .policy
            .peers
            .iter()
            .filter(|g| !g.own_replicas)
            .map(PeerGroup::describe)
            .collect();
        if groups.is_empty() {
            return;
        }
        self.finding(
            Code::MissingAntiAffinity,
            &source.affinity_path,
            format!(
                "{} get their affinity from the value target's affinityPath {query}, which selects nothing in this object, so no podAntiAffinity term keeps them apart from {} on {}: write the affinity where the query selects it, or correct the query (apart cannot add it: the query names no place to write)",
                describe_pods(source),
                groups.join(" or "),
                self.policy.topology_key
            ),
        );
    }

    /// A `self: true` group: the workload's replicas apart from each other, by an
    /// anti-affinity term or a spread constraint ([`crate::rules::replicas`]).
    fn run_own_replicas(&mut self, source: &PodSource, terms: &[Term<'_>], facts: &NamespaceFacts) {
        let policy = self.policy;
        let Some(replicas) = replicas::applies(policy, source) else {
            return;
        };
        let candidates: Vec<replicas::Candidate> = terms
            .iter()
            .map(|t| replicas::judge_term(t, policy, source, facts))
            .chain(source.spread.iter().enumerate().map(|(i, c)| {
                replicas::judge_spread(c, &source.spread_path.index(i), policy, source)
            }))
            .collect();
        if candidates.iter().any(|c| c.meant && c.defects.is_empty()) {
            return;
        }
        let first = self.findings.len();
        let anti_path = source.affinity_path.name("podAntiAffinity");
        let list = anti_path.name(list_name(policy.strength));
        let add_term = Plan::AddTerm {
            list: list.clone(),
            term: replicas::rule_term(policy, source),
        };
        let best = candidates
            .iter()
            .filter(|c| c.meant)
            .min_by_key(|c| c.defects.len());
        let plan = match best {
            None => {
                let others: Vec<&str> = candidates.iter().map(|c| c.describe.as_str()).collect();
                let others = match others.as_slice() {
                    [] => String::new(),
                    [one] => format!(
                        " (its existing term, {one}, does not select its own pods and stays as it is)"
                    ),
                    many => format!(
                        " (its existing terms, {}, do not select its own pods and stay as they are)",
                        many.join("; ")
                    ),
                };
                self.finding(
                    Code::MissingAntiAffinity,
                    &anti_path,
                    format!(
                        "{} run {replicas} replicas, and no podAntiAffinity term or topologySpreadConstraint keeps them apart from each other on {}: add to {}: {} ({}){others}",
                        describe_pods(source),
                        policy.topology_key,
                        list,
                        replicas::rule_term(policy, source),
                        replicas::rule_spread(policy),
                    ),
                );
                add_term
            }
            Some(c) => {
                for d in &c.defects {
                    self.finding(d.code, &d.path, d.message.clone());
                }
                c.repair.clone().map_or(add_term, Plan::Repair)
            }
        };
        if policy.action == Action::Mutate {
            self.plans.push((first..self.findings.len(), plan));
        }
    }

    /// Reports the defects of the closest term meant for the peers; returns how to repair.
    fn diagnose(&mut self, j: &Judgement<'_, '_>, source: &PodSource, group: &PeerGroup) -> Plan {
        let policy = self.policy;
        let term = j.term;
        let term_path = &term.path;
        let wanted_selector = serde_json::to_string(&group.label_selector).unwrap_or_default();
        let add_term = || Plan::AddTerm {
            list: source
                .affinity_path
                .name("podAntiAffinity")
                .name(list_name(policy.strength)),
            term: rule_term(policy, group),
        };
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
        // Until it selects the peers, its namespaces, topology and weight say nothing about
        // them: one finding, and a term that does select them.
        if j.selector != SelectorFit::Covers {
            return add_term();
        }
        let mut repair = Repair {
            term: term_path.clone(),
            weighted: term.weighted_path.clone(),
            add_namespaces: Vec::new(),
            namespace_selector: None,
            weight: None,
        };
        let mut repairable = j.topology.is_none();
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
                        repair.namespace_selector = Some(mutate::written_selector(spec));
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
            add_term()
        }
    }
}

/// What a `missing-anti-affinity` message says of the pod's other terms: what they select
/// and on which key (a chart often spreads its replicas over hosts and zones alike), and
/// that they stay.
fn other_terms(judgements: &[Judgement<'_, '_>]) -> String {
    let described: Vec<String> = judgements
        .iter()
        .map(|j| {
            let selects = if j.spreads_replicas {
                format!(
                    "a spread of its own replicas ({})",
                    j.term.selector.describe()
                )
            } else {
                j.term.selector.describe()
            };
            format!("{selects} on {}", j.term.spec.topology_key)
        })
        .collect();
    match described.as_slice() {
        [] => String::new(),
        [one] => {
            format!(" (its existing term, {one}, is not about these peers and stays as it is)")
        }
        many => format!(
            " (its existing terms, {}, are not about these peers and stay as they are)",
            many.join("; ")
        ),
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
    let selector_json = |spec: &crate::kube::selector::LabelSelector| {
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
    if !term.scope.own_namespace_only {
        return format!(
            "this term's namespace scope ({}) does not include {unseen}, where the peers run, so it never matches them there: {advice}",
            describe_scope(term)
        );
    }
    let own = &source.namespace;
    let head = format!(
        "this term selects the peers' labels ({}) but has neither namespaces nor namespaceSelector, so Kubernetes only looks for them in the pod's own namespace {own}",
        term.selector.describe()
    );
    let own_is_peers = group.namespaces.contains(own) || group.any_namespace();
    let by_label = group
        .namespace_selector
        .as_ref()
        .is_some_and(|(s, _)| !s.is_everything());
    if own_is_peers {
        let missed = if group.any_namespace() && j.missing_names.is_empty() {
            "every other namespace".to_owned()
        } else {
            unseen
        };
        format!("{head}: it sees the peers there but misses those in {missed}: {advice}")
    } else if by_label {
        format!(
            "{head}; the peers run in {unseen}, which it sees only if {own} is one of them: {advice}"
        )
    } else {
        format!(
            "{head}, where no peer runs; the peers run in {unseen}, so the term never matches them (a silent no-op): {advice}"
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
        // Checked only when a repair or a value target needs the text.
        self.evaluate_view(view, ctx, &mut || {
            std::str::from_utf8(json).map_err(|e| ObjectError {
                message: format!("cannot read the object: {e}"),
            })
        })
    }

    /// Evaluates an object already read leanly. `text` gives the object's JSON text; it is
    /// called only when a value target or a repair needs more than the lean view.
    pub fn evaluate_view<'t>(
        &self,
        view: ObjectView<'_>,
        ctx: &Context<'_>,
        text: &mut dyn FnMut() -> Result<&'t str, ObjectError>,
    ) -> Result<Evaluation, ObjectError> {
        let targets = self.value_targets();
        let read = object::read_view(view, ctx.default_namespace, &targets, &mut || {
            text().and_then(whole)
        })?;
        let (mut findings, plans) = self.check_sources(&read.sources, &read.object, ctx);
        let mut repaired = vec![None; read.sources.len()];
        let mutated = if plans.is_empty() {
            None
        } else {
            // The object's own text with only the repaired affinity rewritten, when it has one
            // pod source and the affinity's parent is there to write into (nearly always);
            // otherwise the whole object as a tree.
            let one_source = match read.value {
                None => plans
                    .first()
                    .map(|(s, _, _)| *s)
                    .filter(|first| plans.iter().all(|(s, _, _)| s == first)),
                Some(_) => None,
            };
            let spliced = match (one_source, one_source.and_then(|s| read.sources.get(s))) {
                (Some(index), Some(source)) => {
                    let json = text()?;
                    repair_text(json, source, &plans, &mut findings).map(|(out, affinity)| {
                        if let Some(slot) = repaired.get_mut(index) {
                            *slot = Some(affinity);
                        }
                        out
                    })
                }
                _ => None,
            };
            match spliced {
                Some(out) => out,
                None => {
                    let value = match read.value {
                        Some(v) => v,
                        None => whole(text()?)?,
                    };
                    repair_tree(value, &read.sources, &plans, &mut findings, &mut repaired)
                }
            }
        };
        Ok(Evaluation {
            object: read.object,
            findings,
            mutated,
            sources: read.sources,
            repaired,
        })
    }

    /// Every policy's findings and repair plans on an object's pod sources, in policy order:
    /// `(source index, the findings the plan repairs, plan)`.
    fn check_sources(
        &self,
        sources: &[PodSource],
        object: &ObjectRef,
        ctx: &Context<'_>,
    ) -> (Vec<Finding>, Vec<PlannedRepair>) {
        let mut findings = Vec::new();
        let mut plans = Vec::new();
        for (index, policy) in self.policies().iter().enumerate() {
            for (at, source) in sources.iter().enumerate() {
                let applies = match source.origin {
                    Origin::Template => true,
                    Origin::ValueTarget { policy } => policy == index,
                };
                if !applies || !policy.is_subject(&source.namespace, &source.labels) {
                    continue;
                }
                let mut check = Check {
                    policy,
                    object,
                    findings: Vec::new(),
                    plans: Vec::new(),
                };
                check.run(source, ctx.namespaces);
                let offset = findings.len();
                for (range, plan) in check.plans {
                    plans.push((at, (range.start + offset)..(range.end + offset), plan));
                }
                findings.extend(check.findings);
            }
        }
        (findings, plans)
    }

    /// The findings on the object once repaired: every pod source judged again with its
    /// repaired affinity, except those `keep` refuses (an UPDATE leaves their repair out),
    /// which keep their own. Nothing else of the object changes with a repair, so this is
    /// what evaluating the repaired object would find, without reading it again.
    pub(crate) fn recheck(
        &self,
        evaluation: &Evaluation,
        ctx: &Context<'_>,
        keep: impl Fn(&PodSource) -> bool,
    ) -> Vec<Finding> {
        let sources: Vec<PodSource> = evaluation
            .sources
            .iter()
            .zip(&evaluation.repaired)
            .map(|(source, repaired)| match repaired {
                Some(affinity) if keep(source) => PodSource {
                    affinity: object::read_affinity_text(affinity, &source.affinity_path),
                    ..source.clone()
                },
                _ => source.clone(),
            })
            .collect();
        self.check_sources(&sources, &evaluation.object, ctx).0
    }
}

/// Applies every plan to the whole object's tree, then writes all of it: for the objects
/// [`repair_text`] cannot repair in place (value targets, a pod spec missing). Records each
/// planned source's repaired affinity; the object's text when something changed.
fn repair_tree(
    mut value: Value,
    sources: &[PodSource],
    plans: &[PlannedRepair],
    findings: &mut [Finding],
    repaired: &mut [Option<String>],
) -> Option<String> {
    let changed = apply_plans(&mut value, plans, findings);
    for (index, _, _) in plans {
        if let (Some(slot), Some(source)) = (repaired.get_mut(*index), sources.get(*index)) {
            *slot = Some(affinity_text(source, &value));
        }
    }
    changed.then(|| value.to_string())
}

/// Applies `plans` one after another to `tree`, giving each plan's findings the operations
/// it wrote as their fix; true when one of them changed something.
fn apply_plans(tree: &mut Value, plans: &[PlannedRepair], findings: &mut [Finding]) -> bool {
    let mut changed = false;
    for (_, range, plan) in plans {
        if let Some(ops) = mutate::apply(tree, plan) {
            changed |= !ops.is_empty();
            for f in findings.get_mut(range.clone()).into_iter().flatten() {
                f.fix = Some(ops.clone());
            }
        }
    }
    changed
}

/// A source's affinity in `tree`, as JSON text (`null` when there is none).
fn affinity_text(source: &PodSource, tree: &Value) -> String {
    source
        .affinity_path
        .get(tree)
        .map_or_else(|| "null".to_owned(), Value::to_string)
}

/// The whole object read from its JSON text into a tree.
fn whole(json: &str) -> Result<Value, ObjectError> {
    serde_json::from_str(json).map_err(|e| object::object_error(json.as_bytes(), e))
}

/// A repair plan: its pod source's index, the findings it repairs, and the plan.
type PlannedRepair = (usize, std::ops::Range<usize>, Plan);

/// Applies the plans of one pod source to its affinity alone and writes the result into the
/// object's text in place of the old affinity (or after the pod spec's last member): the rest
/// of the object is copied as it came. The plans see a tree made of the affinity and its
/// parents only, so their operations (each finding's fix) are those they would write on the
/// whole object. `None` when this cannot be done (the affinity's parent is not an object with
/// members, or is not reached by names only): the caller repairs the whole tree instead.
/// Returns the repaired object's text (`None` inside when nothing changed) and the repaired
/// affinity's.
fn repair_text(
    json: &str,
    source: &PodSource,
    plans: &[PlannedRepair],
    findings: &mut [Finding],
) -> Option<(Option<String>, String)> {
    let mut parent = source.affinity_path.clone();
    let Some(Segment::Name(key)) = parent.segments().last().cloned() else {
        return None;
    };
    parent.pop();
    let span = splice::member(json, parent.segments(), &key)?;
    let mut tree = Value::Object(serde_json::Map::new());
    let mut slot = &mut tree;
    for segment in parent.segments() {
        let (Segment::Name(name), Value::Object(map)) = (segment, slot) else {
            return None;
        };
        slot = map
            .entry(name.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    if let (MemberSpan::Value(range), Value::Object(map)) = (&span, slot) {
        let current: Value = serde_json::from_str(json.get(range.clone())?).ok()?;
        map.insert(key.clone(), current);
    }
    let changed = apply_plans(&mut tree, plans, findings);
    let affinity = affinity_text(source, &tree);
    let out = changed.then(|| splice::with_member(json, &span, &key, &affinity));
    Some((out, affinity))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]
    use super::*;
    use crate::kube::affinity::NamespaceFacts;

    const POLICIES: &str = r#"
apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: apart-from-db}
spec:
  subject: {labelSelector: {matchLabels: {app: web}}}
  apartFrom: [{namespaces: [db], labelSelector: {matchLabels: {app: db}}}]
  action: mutate
---
apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: apart-from-cache}
spec:
  subject: {labelSelector: {matchLabels: {app: web}}}
  apartFrom: [{namespaceSelector: {matchLabels: {tier: cache}}, labelSelector: {matchLabels: {app: cache}}}]
  strength: required
  action: mutate
"#;

    /// The object's text repaired in place, and the same plans applied to its whole tree.
    fn both_ways(object: &str) -> (Option<String>, Option<String>, Vec<Finding>, Vec<Finding>) {
        let mut set = PolicySet::default();
        set.parse_into(POLICIES, "p.yaml").unwrap();
        let facts = NamespaceFacts::default();
        let ctx = Context {
            default_namespace: "shop",
            namespaces: &facts,
        };
        let evaluation = set.evaluate(object.as_bytes(), &ctx).unwrap();
        let view: ObjectView<'_> = serde_json::from_str(object).unwrap();
        let read = object::read_view(view, "shop", &[], &mut || whole(object)).unwrap();
        let (mut findings, plans) = set.check_sources(&read.sources, &read.object, &ctx);
        let mut repaired = vec![None; read.sources.len()];
        let tree = repair_tree(
            whole(object).unwrap(),
            &read.sources,
            &plans,
            &mut findings,
            &mut repaired,
        );
        assert_eq!(
            evaluation.repaired, repaired,
            "the same repaired affinity: {object}"
        );
        (evaluation.mutated, tree, evaluation.findings, findings)
    }

    #[test]
    fn a_repair_in_place_writes_what_the_whole_tree_repair_writes() {
        let pod_spec = |affinity: &str| {
            format!(
                r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "web", "namespace": "shop"}},
  "spec": {{"replicas": 3, "template": {{"metadata": {{"labels": {{"app": "web"}}}},
    "spec": {{"containers": [{{"name": "web", "image": "web:1", "args": ["a\"}}b"]}}]{affinity}}}}}}}}}"#
            )
        };
        let objects = [
            pod_spec(""),
            pod_spec(r#", "affinity": null"#),
            pod_spec(r#", "affinity": {}"#),
            pod_spec(r#", "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Exists"}]}]}}}"#),
            // A term meant for the db pods that misses their namespace, and one that is fine
            // for another group.
            pod_spec(r#", "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}}], "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}"#),
            // A key written with an escape is the same key.
            pod_spec(r#", "a\u0066finity": {"podAntiAffinity": {}}"#),
            // A Pod, and a CronJob's template.
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "w", "image": "w"}]}}"#.to_owned(),
            r#"{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "w"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"parallelism": 2, "template": {
                  "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [], "restartPolicy": "Never"}}}}}}"#.to_owned(),
        ];
        for object in &objects {
            let (text, tree, text_findings, tree_findings) = both_ways(object);
            let text: Value = serde_json::from_str(&text.expect("repaired")).unwrap();
            let tree: Value = serde_json::from_str(&tree.expect("repaired")).unwrap();
            assert_eq!(text, tree, "{object}");
            assert_eq!(text_findings, tree_findings, "the same fixes: {object}");
        }
        // Everything outside the affinity is the submitted text, byte for byte.
        let object = &objects[0];
        let (text, ..) = both_ways(object);
        let text = text.unwrap();
        let cut = object.rfind(']').unwrap() + 1;
        assert!(text.starts_with(&object[..cut]), "{text}");
        assert!(text.ends_with("}}}}"), "{text}");
    }

    #[test]
    fn without_a_pod_spec_to_write_into_the_whole_tree_is_repaired() {
        let object = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}}"#;
        let (text, tree, ..) = both_ways(object);
        assert!(text.is_some());
        assert_eq!(text, tree, "written from the tree");
        let object = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}"#;
        let (text, tree, ..) = both_ways(object);
        assert!(text.is_some());
        assert_eq!(text, tree, "written from the tree");
    }

    #[test]
    fn the_recheck_finds_what_evaluating_the_repaired_object_finds() {
        let mut set = PolicySet::default();
        set.parse_into(POLICIES, "p.yaml").unwrap();
        let facts = NamespaceFacts::default();
        let ctx = Context {
            default_namespace: "shop",
            namespaces: &facts,
        };
        // The required term cannot be added to a single replica without a warning; a term
        // with an invalid selector stays invalid.
        let object = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [],
              "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}, "topologyKey": "kubernetes.io/hostname"}]}}}}}}"#;
        let evaluation = set.evaluate(object.as_bytes(), &ctx).unwrap();
        let mutated = evaluation.mutated.clone().expect("repaired");
        let again = set.evaluate(mutated.as_bytes(), &ctx).unwrap();
        let recheck = set.recheck(&evaluation, &ctx, |_| true);
        let codes = |f: &[Finding]| {
            f.iter()
                .map(|f| (f.code, f.path.clone(), f.message.clone()))
                .collect::<Vec<_>>()
        };
        assert!(!again.findings.is_empty());
        assert_eq!(codes(&recheck), codes(&again.findings));
        // A source whose repair is left out keeps its findings.
        let kept = set.recheck(&evaluation, &ctx, |_| false);
        assert_eq!(codes(&kept), codes(&evaluation.findings));
    }
}
