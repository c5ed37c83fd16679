//! Checks over a whole manifest set, which no single object can answer.
//!
//! `peers-not-found`: a rule whose subject is in the set but none of whose peer groups'
//! pods are. It often means a typo in the peer selector or namespace, which would otherwise
//! make the rule pass vacuously.

use std::collections::{BTreeMap, BTreeSet};

use crate::kube::affinity::NamespaceFacts;
use crate::kube::object::{self, Origin};
use crate::rules::finding::{Code, Finding, ObjectRef};
use crate::rules::policy::{API_VERSION, KIND, PolicySet};
use crate::source::path::JsonPath;

/// What one manifest tells the set check, reduced to the facts it uses (a few indices, not
/// the pods' labels), so a run can fold a manifest in and drop it.
#[derive(Debug, Clone, Default)]
pub struct SetMember {
    /// Policies whose subjects it holds.
    subjects: Vec<usize>,
    /// (policy, peer group) whose peers it holds by labels and a listed namespace.
    peers: Vec<(usize, usize)>,
    /// (policy, peer group, namespace): pods with the peers' labels in a namespace the group
    /// may select by its labels, known once the set's Namespace objects are.
    by_namespace: Vec<(usize, usize, String)>,
    /// A Namespace object's name and labels.
    namespace: Option<(String, BTreeMap<String, String>)>,
}

impl SetMember {
    /// The policies (indexes into [`PolicySet::policies`]) whose subjects it holds: what
    /// tells a test suite that an object was judged by a rule, not skipped by it.
    pub fn subjects(&self) -> &[usize] {
        &self.subjects
    }
}

/// The facts of a manifest set so far: members folded in as they come, in any order.
#[derive(Debug, Clone, Default)]
pub struct SetFacts {
    subjects: BTreeSet<usize>,
    peers: BTreeSet<(usize, usize)>,
    by_namespace: BTreeSet<(usize, usize, String)>,
    namespaces: NamespaceFacts,
}

impl SetFacts {
    /// Folds one manifest in.
    pub fn add(&mut self, member: SetMember) {
        self.subjects.extend(member.subjects);
        self.peers.extend(member.peers);
        self.by_namespace.extend(member.by_namespace);
        if let Some((name, labels)) = member.namespace {
            self.namespaces.insert(&name, labels);
        }
    }
}

impl PolicySet {
    /// Reads what the set check needs from one manifest (JSON text). Unreadable objects
    /// contribute nothing (their own evaluation reports them).
    pub fn set_member(&self, json: &[u8], default_namespace: &str) -> SetMember {
        let targets: Vec<_> = self
            .policies()
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.value_targets.iter().map(move |t| (i, t)))
            .collect();
        let Ok(read) = object::read(json, default_namespace, &targets) else {
            return SetMember::default();
        };
        let mut member = SetMember {
            namespace: (read.object.kind == "Namespace" && read.object.api_version == "v1")
                .then(|| {
                    let labels = serde_json::from_slice::<serde_json::Value>(json)
                        .ok()
                        .and_then(|v| v.pointer("/metadata/labels").cloned())
                        .and_then(|l| serde_json::from_value(l).ok())
                        .unwrap_or_default();
                    read.object.name.clone().map(|n| (n, labels))
                })
                .flatten(),
            ..SetMember::default()
        };
        for source in &read.sources {
            // A value target's pods are only its own policy's business.
            let owner = match source.origin {
                Origin::Template => None,
                Origin::ValueTarget { policy } => Some(policy),
            };
            for (index, policy) in self.policies().iter().enumerate() {
                if owner.is_some_and(|o| o != index) {
                    continue;
                }
                let (namespace, labels) = (&source.namespace, &source.labels);
                if policy.is_subject(namespace, labels) {
                    member.subjects.push(index);
                }
                for (g, group) in policy.peers.iter().enumerate() {
                    if !group.selector.matches_map(labels) {
                        continue;
                    }
                    if group.namespaces.contains(namespace) {
                        member.peers.push((index, g));
                    } else if group.namespace_selector.is_some() {
                        member.by_namespace.push((index, g, namespace.clone()));
                    }
                }
            }
        }
        member
    }

    /// `peers-not-found` findings for a manifest set. The findings are about the policy
    /// document (`kind: DecorrelationPolicy`), at the peer group's path.
    pub fn check_set(&self, members: &[SetMember]) -> Vec<Finding> {
        let mut facts = SetFacts::default();
        for member in members {
            facts.add(member.clone());
        }
        self.check_facts(&facts)
    }

    /// `peers-not-found` findings for the facts of a whole manifest set.
    pub fn check_facts(&self, facts: &SetFacts) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (index, policy) in self.policies().iter().enumerate() {
            if !facts.subjects.contains(&index) {
                continue;
            }
            for (g, group) in policy.peers.iter().enumerate() {
                // A workload's own replicas are there whenever the workload is.
                if group.own_replicas {
                    continue;
                }
                let found = facts.peers.contains(&(index, g))
                    || facts
                        .by_namespace
                        .range((index, g, String::new())..)
                        .take_while(|(i, pg, _)| (*i, *pg) == (index, g))
                        .any(|(_, _, namespace)| {
                            group
                                .namespace_selector
                                .as_ref()
                                .is_some_and(|(s, _)| facts.namespaces.selects(s, namespace))
                        });
                if found {
                    continue;
                }
                let object = ObjectRef {
                    api_version: API_VERSION.to_owned(),
                    kind: KIND.to_owned(),
                    namespace: None,
                    name: Some(policy.name.clone()),
                };
                let path = JsonPath::root().name("spec").name("apartFrom").index(g);
                findings.push(Finding::new(
                    Code::PeersNotFound,
                    &policy.name,
                    &object,
                    &path,
                    format!(
                        "the manifests hold subjects of this rule but no pods of peer group {g} ({}): check the peer labelSelector and namespaces for a typo, or add the peers' manifests to the set",
                        group.describe()
                    ),
                ));
            }
        }
        findings
    }
}

#[cfg(all(test, feature = "yaml"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Peers chosen by a namespace label, so a pod alone cannot say it is one.
    const POLICY: &str = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: p}\nspec:\n  subject:\n    labelSelector: {matchLabels: {app: spire-server}}\n  apartFrom:\n    - namespaceSelector: {matchLabels: {team: gitops}}\n      labelSelector: {matchLabels: {app: flux}}\n";

    fn pod(namespace: &str, app: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{app}","namespace":"{namespace}","labels":{{"app":"{app}"}}}},"spec":{{"containers":[]}}}}"#
        )
    }

    fn namespace(name: &str, team: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}","labels":{{"team":"{team}"}}}}}}"#
        )
    }

    fn findings(set: &PolicySet, manifests: &[String]) -> usize {
        let members: Vec<SetMember> = manifests
            .iter()
            .map(|m| set.set_member(m.as_bytes(), "default"))
            .collect();
        set.check_set(&members).len()
    }

    #[test]
    fn peers_found_through_a_namespace_read_before_or_after_them() {
        let mut set = PolicySet::default();
        set.parse_into(POLICY, "p.yaml").unwrap();
        let subject = pod("kube-system", "spire-server");
        let peer = pod("flux-system", "flux");
        let gitops = namespace("flux-system", "gitops");
        for order in [
            [subject.clone(), peer.clone(), gitops.clone()],
            [gitops.clone(), subject.clone(), peer.clone()],
            [peer.clone(), gitops.clone(), subject.clone()],
        ] {
            assert_eq!(findings(&set, &order), 0);
        }
        // The same pod in a namespace of another team is not a peer; nor is it without the
        // Namespace object (its labels are unknown).
        let other = namespace("flux-system", "web");
        assert_eq!(findings(&set, &[subject.clone(), peer.clone(), other]), 1);
        assert_eq!(findings(&set, &[subject.clone(), peer]), 1);
        // No subject, nothing to say.
        assert_eq!(findings(&set, &[gitops]), 0);
    }

    #[test]
    fn a_member_keeps_facts_not_labels() {
        let mut set = PolicySet::default();
        set.parse_into(POLICY, "p.yaml").unwrap();
        let unrelated = set.set_member(pod("web", "frontend").as_bytes(), "default");
        assert!(unrelated.subjects.is_empty() && unrelated.peers.is_empty());
        assert!(unrelated.by_namespace.is_empty() && unrelated.namespace.is_none());
        let peer = set.set_member(pod("flux-system", "flux").as_bytes(), "default");
        assert_eq!(peer.by_namespace, vec![(0, 0, "flux-system".to_owned())]);
    }
}
