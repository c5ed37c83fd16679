//! Checks over a whole manifest set, which no single object can answer.
//!
//! `peers-not-found`: a rule whose subject is in the set but none of whose peer groups'
//! pods are. It often means a typo in the peer selector or namespace, which would otherwise
//! make the rule pass vacuously.

use std::collections::BTreeMap;

use crate::kube::affinity::NamespaceFacts;
use crate::kube::object::{self, Origin};
use crate::rules::finding::{Code, Finding, ObjectRef};
use crate::rules::policy::{API_VERSION, KIND, PolicySet};
use crate::source::path::JsonPath;

/// Pods (namespace and labels) of one manifest, as far as the set check is concerned.
#[derive(Debug, Clone, Default)]
pub struct SetMember {
    pods: Vec<(Option<usize>, String, BTreeMap<String, String>)>,
    namespace: Option<(String, BTreeMap<String, String>)>,
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
        let namespace = (read.object.kind == "Namespace" && read.object.api_version == "v1")
            .then(|| {
                let labels = serde_json::from_slice::<serde_json::Value>(json)
                    .ok()
                    .and_then(|v| v.pointer("/metadata/labels").cloned())
                    .and_then(|l| serde_json::from_value(l).ok())
                    .unwrap_or_default();
                read.object.name.clone().map(|n| (n, labels))
            })
            .flatten();
        let pods = read
            .sources
            .into_iter()
            .map(|s| {
                let owner = match s.origin {
                    Origin::Template => None,
                    Origin::ValueTarget { policy } => Some(policy),
                };
                (owner, s.namespace, s.labels)
            })
            .collect();
        SetMember { pods, namespace }
    }

    /// `peers-not-found` findings for a manifest set. The findings are about the policy
    /// document (`kind: DecorrelationPolicy`), at the peer group's path.
    pub fn check_set(&self, members: &[SetMember]) -> Vec<Finding> {
        let mut facts = NamespaceFacts::default();
        for (name, labels) in members.iter().filter_map(|m| m.namespace.as_ref()) {
            facts.insert(name, labels.clone());
        }
        let mut findings = Vec::new();
        for (index, policy) in self.policies().iter().enumerate() {
            let pods = || {
                members
                    .iter()
                    .flat_map(|m| m.pods.iter())
                    .filter(move |(owner, _, _)| owner.is_none_or(|o| o == index))
            };
            if !pods().any(|(_, ns, labels)| policy.is_subject(ns, labels)) {
                continue;
            }
            for (g, group) in policy.peers.iter().enumerate() {
                if pods().any(|(_, ns, labels)| group.selects(ns, labels, &facts)) {
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
