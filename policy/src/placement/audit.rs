//! Auditing a live cluster: where subjects and their peers share a failure domain right now,
//! and what each domain's loss would take down together.
//!
//! Anti-affinity acts only when a pod is scheduled (`IgnoredDuringExecution`), and a
//! `preferred` term only prefers: pods placed before a rule existed, or placed while no other
//! node fitted, stay where they are. [`audit`] looks at where pods *are*, not at what their
//! manifests say.
//!
//! Only placed pods count ([`ClusterPod::is_placed`]: bound, not terminated), as in
//! kube-scheduler. A pod is *protected* when some policy's subject or one of its peer groups
//! selects it; every such selection is a *group* (a policy's subject, or its peer group `i`).
//!
//! A *violation* is a (policy, peer group, domain) where the policy's subject and that peer
//! group both have pods in one domain of the policy's `topologyKey` (a pod is never counted as
//! sharing with itself). Nodes without that label belong to no domain: kube-scheduler cannot
//! separate anything on them, and two unlabelled nodes are not one domain, so they are reported
//! apart ([`AuditReport::unlabelled`]) and never count as a violation.
//!
//! The *blast radius* lists, for every topology key the policies use, every domain holding
//! protected pods, with every group it holds (of any policy: losing a zone takes down a
//! hostname rule's pods too). It is ranked worst first, by:
//! 1. the number of policies violated in the domain;
//! 2. the number of groups the domain holds *whole* (every placed pod of the group is there,
//!    so the domain's loss takes the group down completely);
//! 3. the number of groups with pods there;
//! 4. the number of protected pods there;
//! 5. then by topology key and domain name, so the order is stable.
//!
//! A `self: true` peer group (a workload's replicas apart) selects the policy's subject pods
//! that have a controller (`ownerReferences` with `controller: true`); it is violated in a
//! domain that holds two or more pods of one controller (two etcd members on one node). For
//! a Deployment the controller is a ReplicaSet, one revision: during a rollout, an old and a
//! new replica on one node are not counted together (they are what `matchLabelKeys:
//! [pod-template-hash]` lets the scheduler put together). Such a violation lists the
//! replicas that share the domain as both its subjects and its peers.
//!
//! Violations follow the rank of their domain, then policy order, then peer group order.
//!
//! Cost is linear: every pod is matched once against each policy's selectors, and protected
//! pods are grouped by domain once per distinct topology key.
//!
//! [`AuditReport`] serializes to the stable shape `apart audit --output json` prints (pods are
//! `{"namespace", "name", "node"}`; lists of pods are sorted by namespace and name):
//!
//! ```text
//! {"violations": [{"policy", "strength", "topologyKey", "domain", "peerGroup", "peersSelect",
//!                  "nodes": [..], "subjects": [pod..], "peers": [pod..]}],
//!  "blastRadius": [{"topologyKey", "domain", "nodes": [..], "nodeCount", "policies": [..],
//!                   "groups": [{"policy", "role": "subject"|"peers", "peerGroup"?,
//!                               "pods": [pod..], "total", "whole"}], "pods"}],
//!  "unlabelled": [{"topologyKey", "node", "groups": [..as above..], "together": [policy..]}],
//!  "groups": [{"policy", "role", "peerGroup"?, "selects", "topologyKey", "pods"}],
//!  "summary": {"policies", "nodes", "pods", "placedPods", "podsOnUnknownNodes",
//!              "protectedPods", "violations", "violatedPolicies", "unlabelled",
//!              "topologyKeys": [{"topologyKey", "domains", "domainsWithProtectedPods",
//!                                "unlabelledNodes"}]}}
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::kube::cluster::{Cluster, ClusterPod, Node};
use crate::rules::policy::{Policy, PolicySet, Strength};

/// A pod, and where it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PodRef {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The node it is bound to.
    pub node: String,
}

/// Which part of a policy a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The pods the policy protects.
    Subject,
    /// One of its peer groups (`apartFrom[i]`).
    Peers,
}

/// A protected group: a policy's subject, or one of its peer groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The policy.
    pub policy: String,
    /// Subject or peers.
    pub role: Role,
    /// For peers: the index in `apartFrom`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<usize>,
    /// What it selects, e.g. `app=spire-server in kube-system, cilium-spire`.
    pub selects: String,
    /// The policy's failure domain.
    pub topology_key: String,
    /// Placed pods it selects in the whole cluster.
    pub pods: usize,
}

/// A group's pods inside one domain (or on one unlabelled node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPods {
    /// The policy.
    pub policy: String,
    /// Subject or peers.
    pub role: Role,
    /// For peers: the index in `apartFrom`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<usize>,
    /// Its pods here, by namespace and name.
    pub pods: Vec<PodRef>,
    /// Its placed pods in the whole cluster.
    pub total: usize,
    /// Every placed pod of the group is here: losing this domain loses the whole group.
    pub whole: bool,
}

/// A policy's subject and one of its peer groups running in one failure domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// The policy.
    pub policy: String,
    /// Its strength (a `required` rule violated means pods placed before the rule, or a rule
    /// the workload does not carry).
    pub strength: Strength,
    /// The policy's failure domain.
    pub topology_key: String,
    /// The shared domain: the nodes' value for the topology key.
    pub domain: String,
    /// Index of the peer group in `apartFrom`.
    pub peer_group: usize,
    /// What the peer group selects.
    pub peers_select: String,
    /// Nodes of the domain that run these subject and peer pods.
    pub nodes: Vec<String>,
    /// The subject's pods in the domain.
    pub subjects: Vec<PodRef>,
    /// The peer group's pods in the domain.
    pub peers: Vec<PodRef>,
}

/// One failure domain and what its loss takes down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainRisk {
    /// The topology key.
    pub topology_key: String,
    /// The nodes' value for it.
    pub domain: String,
    /// Nodes of the domain that run protected pods.
    pub nodes: Vec<String>,
    /// Nodes of the domain in the snapshot.
    pub node_count: usize,
    /// Policies violated in this domain (their key is this one).
    pub policies: Vec<String>,
    /// Every group with pods in the domain, in policy order.
    pub groups: Vec<GroupPods>,
    /// Protected pods in the domain (each counted once).
    pub pods: usize,
}

/// A node that runs protected pods but lacks a policy's topology label: its domain is
/// unknown, so the policies using that key cannot be judged on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unlabelled {
    /// The missing label.
    pub topology_key: String,
    /// The node.
    pub node: String,
    /// Groups of the policies using that key with pods on the node.
    pub groups: Vec<GroupPods>,
    /// Policies whose subject and peers run on this very node: they share whatever domain
    /// the node would be given.
    pub together: Vec<String>,
}

/// How one topology key divides the snapshot's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySummary {
    /// The topology key.
    pub topology_key: String,
    /// Distinct values among the nodes.
    pub domains: usize,
    /// Domains that hold protected pods.
    pub domains_with_protected_pods: usize,
    /// Nodes without the label.
    pub unlabelled_nodes: usize,
}

/// Counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Policies audited.
    pub policies: usize,
    /// Nodes in the snapshot.
    pub nodes: usize,
    /// Pods in the snapshot.
    pub pods: usize,
    /// Placed pods on nodes of the snapshot.
    pub placed_pods: usize,
    /// Placed pods bound to a node the snapshot does not hold (not judged).
    pub pods_on_unknown_nodes: usize,
    /// Placed pods some group selects.
    pub protected_pods: usize,
    /// Violations.
    pub violations: usize,
    /// Policies with at least one violation.
    pub violated_policies: usize,
    /// Nodes (per key) that cannot be judged.
    pub unlabelled: usize,
    /// Per topology key used by the policies, in policy order.
    pub topology_keys: Vec<KeySummary>,
}

/// What [`audit`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Subjects and peers sharing a domain, worst domain first.
    pub violations: Vec<Violation>,
    /// Every domain holding protected pods, worst first (see the module documentation).
    pub blast_radius: Vec<DomainRisk>,
    /// Nodes lacking a policy's topology label, by key then node name.
    pub unlabelled: Vec<Unlabelled>,
    /// Every group, in policy order.
    pub groups: Vec<Group>,
    /// Counts.
    pub summary: Summary,
}

impl AuditReport {
    /// Is the cluster clean (no violation)?
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// A group while auditing: its policy, and which part of it.
struct GroupDef<'a> {
    policy: &'a Policy,
    peer_group: Option<usize>,
}

impl GroupDef<'_> {
    fn role(&self) -> Role {
        if self.peer_group.is_some() {
            Role::Peers
        } else {
            Role::Subject
        }
    }

    fn selects(&self, pod: &ClusterPod, cluster: &Cluster) -> bool {
        match self.peer_group {
            None => self.policy.is_subject(&pod.namespace, &pod.labels),
            Some(i) => self.policy.peers.get(i).is_some_and(|peers| {
                if peers.own_replicas {
                    pod.owner.is_some() && self.policy.is_subject(&pod.namespace, &pod.labels)
                } else {
                    peers.selects(&pod.namespace, &pod.labels, &cluster.namespaces)
                }
            }),
        }
    }

    fn describe(&self) -> String {
        match self.peer_group {
            Some(i) => self
                .policy
                .peers
                .get(i)
                .map(crate::rules::policy::PeerGroup::describe)
                .unwrap_or_default(),
            None => {
                let scope = match &self.policy.subject_namespaces {
                    None => "any namespace".to_owned(),
                    Some(names) => names.iter().cloned().collect::<Vec<_>>().join(", "),
                };
                format!("{} in {scope}", self.policy.subject_selector.describe())
            }
        }
    }
}

/// A placed pod some group selects; its groups are `flat[start..end]`.
struct Protected<'a> {
    pod: &'a ClusterPod,
    node: &'a Node,
    start: usize,
    end: usize,
}

/// What one domain (or one unlabelled node) holds.
#[derive(Default)]
struct Holding<'a> {
    /// Group index -> indexes of its protected pods here.
    members: BTreeMap<usize, Vec<usize>>,
    /// Nodes that run them.
    nodes: BTreeSet<&'a str>,
    /// Protected pods here.
    pods: usize,
    /// Nodes of the snapshot in the domain.
    node_count: usize,
}

impl<'a> Holding<'a> {
    fn add(&mut self, index: usize, node: &'a Node, groups: impl Iterator<Item = usize>) {
        self.pods += 1;
        self.nodes.insert(node.name.as_str());
        for g in groups {
            self.members.entry(g).or_default().push(index);
        }
    }

    fn of(&self, group: usize) -> &[usize] {
        self.members.get(&group).map_or(&[], Vec::as_slice)
    }

    /// Do two different pods of `subject` and `peers` run here?
    fn shares(&self, subject: usize, peers: usize) -> bool {
        match (self.of(subject), self.of(peers)) {
            ([], _) | (_, []) => false,
            // One pod that both select is not co-located with anything.
            ([s], [p]) => s != p,
            _ => true,
        }
    }
}

/// One topology key's view of the protected pods.
struct KeyView<'a> {
    key: &'a str,
    domains: BTreeMap<&'a str, Holding<'a>>,
    unlabelled: BTreeMap<&'a str, Holding<'a>>,
    summary: KeySummary,
}

/// The matched snapshot, shared by the report's builders.
struct Audit<'a> {
    policies: &'a [Policy],
    groups: Vec<GroupDef<'a>>,
    /// Group index of each policy's subject; its peer group `i` is that plus `1 + i`.
    subject_group: Vec<usize>,
    protected: Vec<Protected<'a>>,
    /// The groups of every protected pod, one run per pod.
    flat: Vec<usize>,
    /// Placed pods per group.
    totals: Vec<usize>,
}

/// Audits a cluster snapshot against the policies: violations, blast radius, unlabelled
/// nodes. See the module documentation for the definitions and the ranking.
pub fn audit(policies: &PolicySet, cluster: &Cluster) -> AuditReport {
    let list = policies.policies();
    let mut groups = Vec::new();
    let mut subject_group = Vec::with_capacity(list.len());
    for policy in list {
        subject_group.push(groups.len());
        groups.push(GroupDef {
            policy,
            peer_group: None,
        });
        groups.extend((0..policy.peers.len()).map(|i| GroupDef {
            policy,
            peer_group: Some(i),
        }));
    }
    let mut run = Audit {
        policies: list,
        subject_group,
        protected: Vec::new(),
        flat: Vec::new(),
        totals: vec![0; groups.len()],
        groups,
    };

    // Match every placed pod once against every group.
    let mut placed_pods = 0;
    let mut pods_on_unknown_nodes = 0;
    for pod in cluster.pods.iter().filter(|p| p.is_placed()) {
        let Some(node) = pod.node_name.as_deref().and_then(|n| cluster.node(n)) else {
            pods_on_unknown_nodes += 1;
            continue;
        };
        placed_pods += 1;
        let start = run.flat.len();
        for (g, def) in run.groups.iter().enumerate() {
            if def.selects(pod, cluster) {
                run.flat.push(g);
                if let Some(total) = run.totals.get_mut(g) {
                    *total += 1;
                }
            }
        }
        let end = run.flat.len();
        if end > start {
            run.protected.push(Protected {
                pod,
                node,
                start,
                end,
            });
        }
    }

    let mut keys: Vec<&str> = Vec::new();
    for policy in list {
        if !keys.contains(&policy.topology_key.as_str()) {
            keys.push(&policy.topology_key);
        }
    }
    let views: Vec<KeyView> = keys.iter().map(|key| run.view(key, cluster)).collect();

    // Blast radius, each domain with its violations, ranked together.
    let mut ranked = Vec::new();
    for view in &views {
        for (domain, holding) in &view.domains {
            ranked.push(run.domain_risk(view.key, domain, holding));
        }
    }
    ranked.sort_by(|(a, _), (b, _)| {
        // Worst first: bigger counts first, then names in order.
        (b.violated, b.whole, b.groups, b.pods, &a.key, &a.domain)
            .cmp(&(a.violated, a.whole, a.groups, a.pods, &b.key, &b.domain))
    });
    let mut violations = Vec::new();
    let mut blast_radius = Vec::with_capacity(ranked.len());
    for (_, (risk, domain_violations)) in ranked {
        violations.extend(domain_violations);
        blast_radius.push(risk);
    }

    let mut unlabelled = Vec::new();
    for view in &views {
        for (node, holding) in &view.unlabelled {
            unlabelled.push(Unlabelled {
                topology_key: view.key.to_owned(),
                node: (*node).to_owned(),
                groups: run.group_pods(holding),
                together: run.violated(view.key, holding),
            });
        }
    }

    let violated_policies: BTreeSet<&str> = violations.iter().map(|v| v.policy.as_str()).collect();
    let summary = Summary {
        policies: list.len(),
        nodes: cluster.nodes.len(),
        pods: cluster.pods.len(),
        placed_pods,
        pods_on_unknown_nodes,
        protected_pods: run.protected.len(),
        violations: violations.len(),
        violated_policies: violated_policies.len(),
        unlabelled: unlabelled.len(),
        topology_keys: views.into_iter().map(|v| v.summary).collect(),
    };
    let groups = run
        .groups
        .iter()
        .zip(&run.totals)
        .map(|(def, &pods)| Group {
            policy: def.policy.name.clone(),
            role: def.role(),
            peer_group: def.peer_group,
            selects: def.describe(),
            topology_key: def.policy.topology_key.clone(),
            pods,
        })
        .collect();
    AuditReport {
        violations,
        blast_radius,
        unlabelled,
        groups,
        summary,
    }
}

/// A domain's place in the ranking (see the module documentation).
struct Rank {
    violated: usize,
    whole: usize,
    groups: usize,
    pods: usize,
    key: String,
    domain: String,
}

impl<'a> Audit<'a> {
    fn groups_of(&self, p: &Protected<'_>) -> &[usize] {
        self.flat.get(p.start..p.end).unwrap_or_default()
    }

    /// Groups the protected pods by the value of `key` on their node, once.
    fn view(&self, key: &'a str, cluster: &'a Cluster) -> KeyView<'a> {
        let mut domains: BTreeMap<&str, Holding> = BTreeMap::new();
        let mut unlabelled: BTreeMap<&str, Holding> = BTreeMap::new();
        for (i, p) in self.protected.iter().enumerate() {
            let groups = self.groups_of(p).iter().copied();
            match p.node.topology_value(key) {
                Some(value) => domains.entry(value).or_default().add(i, p.node, groups),
                None => {
                    // Only the policies judged by this key are in doubt here.
                    let mut judged = groups
                        .filter(|&g| {
                            self.groups
                                .get(g)
                                .is_some_and(|d| d.policy.topology_key == key)
                        })
                        .peekable();
                    if judged.peek().is_some() {
                        unlabelled
                            .entry(p.node.name.as_str())
                            .or_default()
                            .add(i, p.node, judged);
                    }
                }
            }
        }
        let mut values = BTreeSet::new();
        let mut unlabelled_nodes = 0;
        for node in &cluster.nodes {
            match node.topology_value(key) {
                Some(value) => {
                    values.insert(value);
                    if let Some(holding) = domains.get_mut(value) {
                        holding.node_count += 1;
                    }
                }
                None => unlabelled_nodes += 1,
            }
        }
        KeyView {
            key,
            summary: KeySummary {
                topology_key: key.to_owned(),
                domains: values.len(),
                domains_with_protected_pods: domains.len(),
                unlabelled_nodes,
            },
            domains,
            unlabelled,
        }
    }

    fn pod_refs(&self, members: &[usize]) -> Vec<PodRef> {
        let mut pods: Vec<PodRef> = members
            .iter()
            .filter_map(|&i| self.protected.get(i))
            .map(|p| PodRef {
                namespace: p.pod.namespace.clone(),
                name: p.pod.name.clone(),
                node: p.node.name.clone(),
            })
            .collect();
        pods.sort();
        pods
    }

    fn group_pods(&self, holding: &Holding<'_>) -> Vec<GroupPods> {
        holding
            .members
            .iter()
            .filter_map(|(&g, members)| {
                let def = self.groups.get(g)?;
                let total = self.totals.get(g).copied().unwrap_or_default();
                Some(GroupPods {
                    policy: def.policy.name.clone(),
                    role: def.role(),
                    peer_group: def.peer_group,
                    pods: self.pod_refs(members),
                    total,
                    whole: members.len() == total,
                })
            })
            .collect()
    }

    /// The policies judged by `key` whose subject shares `holding` with a peer group, with
    /// each such peer group's index.
    fn shared(&self, key: &str, holding: &Holding<'_>) -> Vec<(usize, Vec<usize>)> {
        let mut out = Vec::new();
        for (p, policy) in self.policies.iter().enumerate() {
            if policy.topology_key != key {
                continue;
            }
            let Some(&subject) = self.subject_group.get(p) else {
                continue;
            };
            let peers: Vec<usize> = (0..policy.peers.len())
                .filter(|&i| {
                    if policy.peers.get(i).is_some_and(|g| g.own_replicas) {
                        !self
                            .replicas_together(holding.of(subject + 1 + i))
                            .is_empty()
                    } else {
                        holding.shares(subject, subject + 1 + i)
                    }
                })
                .collect();
            if !peers.is_empty() {
                out.push((p, peers));
            }
        }
        out
    }

    /// The members (of a `self: true` group) whose controller has another member here.
    fn replicas_together(&self, members: &[usize]) -> Vec<usize> {
        let owner = |m: &usize| self.protected.get(*m).and_then(|p| p.pod.owner.as_deref());
        members
            .iter()
            .filter(|m| {
                let mine = owner(m);
                mine.is_some() && members.iter().filter(|o| owner(o) == mine).count() > 1
            })
            .copied()
            .collect()
    }

    fn violated(&self, key: &str, holding: &Holding<'_>) -> Vec<String> {
        self.shared(key, holding)
            .into_iter()
            .filter_map(|(p, _)| self.policies.get(p).map(|p| p.name.clone()))
            .collect()
    }

    /// One domain's blast radius and violations, with its rank.
    fn domain_risk(
        &self,
        key: &str,
        domain: &str,
        holding: &Holding<'_>,
    ) -> (Rank, (DomainRisk, Vec<Violation>)) {
        let mut violations = Vec::new();
        let shared = self.shared(key, holding);
        for (p, peers) in &shared {
            let (Some(policy), Some(&subject)) =
                (self.policies.get(*p), self.subject_group.get(*p))
            else {
                continue;
            };
            for &i in peers {
                let peer_group = subject + 1 + i;
                let own = policy.peers.get(i).is_some_and(|g| g.own_replicas);
                let together = self.replicas_together(holding.of(peer_group));
                let (subjects, peer_pods) = if own {
                    (together.as_slice(), together.as_slice())
                } else {
                    (holding.of(subject), holding.of(peer_group))
                };
                let mut nodes: BTreeSet<&str> = BTreeSet::new();
                for &m in subjects.iter().chain(peer_pods) {
                    if let Some(pr) = self.protected.get(m) {
                        nodes.insert(pr.node.name.as_str());
                    }
                }
                violations.push(Violation {
                    policy: policy.name.clone(),
                    strength: policy.strength,
                    topology_key: key.to_owned(),
                    domain: domain.to_owned(),
                    peer_group: i,
                    peers_select: policy
                        .peers
                        .get(i)
                        .map(crate::rules::policy::PeerGroup::describe)
                        .unwrap_or_default(),
                    nodes: nodes.into_iter().map(str::to_owned).collect(),
                    subjects: self.pod_refs(subjects),
                    peers: self.pod_refs(peer_pods),
                });
            }
        }
        let groups = self.group_pods(holding);
        let rank = Rank {
            violated: shared.len(),
            whole: groups.iter().filter(|g| g.whole).count(),
            groups: groups.len(),
            pods: holding.pods,
            key: key.to_owned(),
            domain: domain.to_owned(),
        };
        let risk = DomainRisk {
            topology_key: key.to_owned(),
            domain: domain.to_owned(),
            nodes: holding.nodes.iter().map(|n| (*n).to_owned()).collect(),
            node_count: holding.node_count,
            policies: shared
                .iter()
                .filter_map(|(p, _)| self.policies.get(*p).map(|p| p.name.clone()))
                .collect(),
            groups,
            pods: holding.pods,
        };
        (rank, (risk, violations))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use serde_json::{Value, json};

    use super::*;

    const HOST: &str = "kubernetes.io/hostname";
    const ZONE: &str = "topology.kubernetes.io/zone";

    const IDENTITY: &str = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: identity}\nspec:\n  subject:\n    namespaces: [kube-system, cilium-spire]\n    labelSelector: {matchLabels: {app: spire-server}}\n  apartFrom:\n    - namespaces: [flux-system]\n      labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}\n";

    fn policies(texts: &[&str]) -> PolicySet {
        let mut set = PolicySet::default();
        for (i, text) in texts.iter().enumerate() {
            set.parse_into(text, &format!("p{i}.yaml")).unwrap();
        }
        set
    }

    /// A node labelled with its hostname and, when given, a zone.
    fn node(name: &str, zone: Option<&str>) -> Value {
        let mut labels = json!({HOST: name});
        if let Some(z) = zone {
            labels[ZONE] = json!(z);
        }
        json!({"kind": "Node", "metadata": {"name": name, "labels": labels}})
    }

    fn pod(namespace: &str, name: &str, labels: Value, node: Option<&str>, phase: &str) -> Value {
        json!({"kind": "Pod",
          "metadata": {"name": name, "namespace": namespace, "labels": labels},
          "spec": {"nodeName": node}, "status": {"phase": phase}})
    }

    fn spire(node: &str) -> Value {
        pod(
            "kube-system",
            "spire-server-0",
            json!({"app": "spire-server"}),
            Some(node),
            "Running",
        )
    }

    fn flux(name: &str, node: &str) -> Value {
        pod(
            "flux-system",
            name,
            json!({"app.kubernetes.io/part-of": "flux", "app": name}),
            Some(node),
            "Running",
        )
    }

    fn cluster(items: Vec<Value>) -> Cluster {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        Cluster::from_value(&list).unwrap()
    }

    fn names(pods: &[PodRef]) -> Vec<String> {
        pods.iter()
            .map(|p| format!("{}/{}@{}", p.namespace, p.name, p.node))
            .collect()
    }

    /// An etcd member owned by `owner`.
    fn member(name: &str, owner: &str, node: &str) -> Value {
        let mut p = pod(
            "storage",
            name,
            json!({"app": "etcd"}),
            Some(node),
            "Running",
        );
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner, "controller": true}]);
        p
    }

    #[test]
    fn replicas_of_one_controller_on_one_node_violate_a_self_rule() {
        let set = policies(&[
            "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: etcd-apart}\nspec:\n  subject:\n    labelSelector: {matchLabels: {app: etcd}}\n  apartFrom:\n    - self: true\n",
        ]);
        let snapshot = cluster(vec![
            node("w1", None),
            node("w2", None),
            member("etcd-0", "etcd", "w1"),
            member("etcd-1", "etcd", "w1"),
            member("etcd-2", "etcd", "w2"),
            // Another cluster's member on w2: another controller, not a replica of etcd-2.
            member("other-0", "other", "w2"),
            // Without a controller, a pod is no workload's replica.
            pod(
                "storage",
                "loose",
                json!({"app": "etcd"}),
                Some("w2"),
                "Running",
            ),
        ]);
        let report = audit(&set, &snapshot);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        let v = &report.violations[0];
        assert_eq!(
            (v.domain.as_str(), v.peers_select.as_str()),
            ("w1", "its own replicas")
        );
        assert_eq!(
            names(&v.subjects),
            ["storage/etcd-0@w1", "storage/etcd-1@w1"]
        );
        assert_eq!(v.subjects, v.peers);
        assert_eq!(
            report.blast_radius[0].domain, "w1",
            "the violated node ranks first"
        );
    }

    #[test]
    fn the_incident_names_both_pods_and_ranks_their_node_first() {
        let set = policies(&[IDENTITY]);
        let snapshot = cluster(vec![
            node("w1", None),
            node("w2", None),
            node("w3", None),
            spire("w2"),
            flux("kustomize-controller-7b5d9f8c4-x2x9k", "w2"),
            flux("source-controller-5f7d8b6c9-abcde", "w1"),
            flux("helm-controller-6c8f9b7d5-q7r8s", "w3"),
        ]);
        let report = audit(&set, &snapshot);
        assert!(!report.is_clean());
        assert_eq!(report.violations.len(), 1);
        let v = &report.violations[0];
        assert_eq!(
            (
                v.policy.as_str(),
                v.topology_key.as_str(),
                v.domain.as_str()
            ),
            ("identity", HOST, "w2")
        );
        assert_eq!(v.strength, Strength::Preferred);
        assert_eq!(names(&v.subjects), ["kube-system/spire-server-0@w2"]);
        assert_eq!(
            names(&v.peers),
            ["flux-system/kustomize-controller-7b5d9f8c4-x2x9k@w2"]
        );
        assert_eq!(v.nodes, ["w2"]);
        assert_eq!(
            v.peers_select,
            "app.kubernetes.io/part-of=flux in flux-system"
        );
        // w2 holds the whole subject (1 of 1) and one of three peers: worst first.
        let first = &report.blast_radius[0];
        assert_eq!(first.domain, "w2");
        assert_eq!(first.policies, ["identity"]);
        assert_eq!(first.groups.len(), 2);
        assert!(first.groups[0].whole && first.groups[0].role == Role::Subject);
        assert_eq!((first.groups[1].total, first.groups[1].whole), (3, false));
        assert_eq!(report.blast_radius.len(), 3);
        assert_eq!(report.summary.violated_policies, 1);
        assert_eq!(report.summary.protected_pods, 4);
        assert_eq!(
            report.groups[0].selects,
            "app=spire-server in cilium-spire, kube-system"
        );
        assert_eq!(report.groups[1].pods, 3);
    }

    #[test]
    fn apart_is_clean_and_a_pod_never_shares_with_itself() {
        let set = policies(&[IDENTITY]);
        let clean = cluster(vec![
            node("w1", None),
            node("w2", None),
            spire("w1"),
            flux("kustomize-controller-1", "w2"),
        ]);
        let report = audit(&set, &clean);
        assert!(report.is_clean(), "{:#?}", report.violations);
        assert_eq!(report.blast_radius.len(), 2);
        assert!(report.blast_radius.iter().all(|d| d.policies.is_empty()));

        // Subject and peers select the same labels: one pod alone shares with nobody,
        // a second pod on the node does.
        let selfish = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: spread}\nspec:\n  subject:\n    labelSelector: {matchLabels: {app: etcd}}\n  apartFrom:\n    - labelSelector: {matchLabels: {app: etcd}}\n";
        let set = policies(&[selfish]);
        let etcd = |name: &str, node: &str| {
            pod(
                "kube-system",
                name,
                json!({"app": "etcd"}),
                Some(node),
                "Running",
            )
        };
        let alone = cluster(vec![
            node("w1", None),
            node("w2", None),
            etcd("etcd-0", "w1"),
            etcd("etcd-1", "w2"),
        ]);
        assert!(audit(&set, &alone).is_clean());
        let paired = cluster(vec![
            node("w1", None),
            etcd("etcd-0", "w1"),
            etcd("etcd-1", "w1"),
        ]);
        let report = audit(&set, &paired);
        assert_eq!(report.violations.len(), 1);
        assert_eq!(report.violations[0].subjects.len(), 2);
    }

    #[test]
    fn only_placed_pods_count() {
        let set = policies(&[IDENTITY]);
        let snapshot = cluster(vec![
            node("w1", None),
            spire("w1"),
            pod(
                "flux-system",
                "done",
                json!({"app.kubernetes.io/part-of": "flux"}),
                Some("w1"),
                "Succeeded",
            ),
            pod(
                "flux-system",
                "crashed",
                json!({"app.kubernetes.io/part-of": "flux"}),
                Some("w1"),
                "Failed",
            ),
            pod(
                "flux-system",
                "pending",
                json!({"app.kubernetes.io/part-of": "flux"}),
                None,
                "Pending",
            ),
            pod(
                "flux-system",
                "lost",
                json!({"app.kubernetes.io/part-of": "flux"}),
                Some("gone"),
                "Running",
            ),
        ]);
        let report = audit(&set, &snapshot);
        assert!(report.is_clean(), "{:#?}", report.violations);
        assert_eq!(report.summary.placed_pods, 1);
        assert_eq!(report.summary.pods_on_unknown_nodes, 1);
        assert_eq!(report.summary.pods, 5);
        assert_eq!(report.groups[1].pods, 0, "no peer is placed");
    }

    #[test]
    fn zones_and_unlabelled_nodes() {
        let zoned = IDENTITY
            .replace("name: identity", "name: zoned")
            .replace("apartFrom:", &format!("topologyKey: {ZONE}\n  apartFrom:"));
        let set = policies(&[&zoned]);
        let snapshot = cluster(vec![
            node("a1", Some("a")),
            node("a2", Some("a")),
            node("b1", Some("b")),
            node("x1", None),
            node("x2", None),
            node("x3", None),
            // Different nodes of zone a: a violation of a zone rule.
            spire("a1"),
            flux("kustomize-controller-1", "a2"),
            flux("helm-controller-1", "b1"),
            // Two unlabelled nodes are not one zone; one node is.
            pod(
                "cilium-spire",
                "spire-server-1",
                json!({"app": "spire-server"}),
                Some("x1"),
                "Running",
            ),
            flux("source-controller-1", "x2"),
            pod(
                "cilium-spire",
                "spire-server-2",
                json!({"app": "spire-server"}),
                Some("x3"),
                "Running",
            ),
            flux("notification-controller-1", "x3"),
        ]);
        let report = audit(&set, &snapshot);
        assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
        let v = &report.violations[0];
        assert_eq!((v.topology_key.as_str(), v.domain.as_str()), (ZONE, "a"));
        assert_eq!(v.nodes, ["a1", "a2"]);
        assert_eq!(report.blast_radius[0].node_count, 2);
        let unlabelled: Vec<(&str, &[String])> = report
            .unlabelled
            .iter()
            .map(|u| (u.node.as_str(), u.together.as_slice()))
            .collect();
        assert_eq!(
            unlabelled,
            [
                ("x1", &[][..]),
                ("x2", &[][..]),
                ("x3", &["zoned".to_owned()][..])
            ]
        );
        let key = &report.summary.topology_keys[0];
        assert_eq!((key.domains, key.unlabelled_nodes), (2, 3));
    }

    #[test]
    fn namespace_selector_peers_use_namespace_labels() {
        let by_label = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: by-label}\nspec:\n  subject:\n    labelSelector: {matchLabels: {app: spire-server}}\n  apartFrom:\n    - namespaceSelector: {matchLabels: {team: gitops}}\n      labelSelector: {matchExpressions: [{key: app, operator: Exists}]}\n";
        let set = policies(&[by_label]);
        let snapshot = cluster(vec![
            json!({"kind": "Namespace", "metadata": {"name": "flux-system", "labels": {"team": "gitops"}}}),
            json!({"kind": "Namespace", "metadata": {"name": "monitoring", "labels": {"team": "obs"}}}),
            node("w1", None),
            spire("w1"),
            pod(
                "monitoring",
                "prometheus-0",
                json!({"app": "prometheus"}),
                Some("w1"),
                "Running",
            ),
            pod(
                "flux-system",
                "source-controller-1",
                json!({"app": "source-controller"}),
                Some("w1"),
                "Running",
            ),
        ]);
        let report = audit(&set, &snapshot);
        assert_eq!(report.violations.len(), 1);
        assert_eq!(
            names(&report.violations[0].peers),
            ["flux-system/source-controller-1@w1"]
        );
    }

    #[test]
    fn ranking_two_violated_policies_then_whole_groups_then_pods() {
        let dns = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: dns}\nspec:\n  subject:\n    labelSelector: {matchLabels: {k8s-app: kube-dns}}\n  apartFrom:\n    - namespaces: [flux-system]\n      labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}\n";
        let zoned = IDENTITY
            .replace("name: identity", "name: zoned")
            .replace("apartFrom:", &format!("topologyKey: {ZONE}\n  apartFrom:"));
        let set = policies(&[IDENTITY, dns, &zoned]);
        let coredns = |name: &str, node: &str| {
            pod(
                "kube-system",
                name,
                json!({"k8s-app": "kube-dns"}),
                Some(node),
                "Running",
            )
        };
        let snapshot = cluster(vec![
            node("w1", Some("a")),
            node("w2", Some("a")),
            node("w3", Some("b")),
            node("w4", Some("b")),
            // w3: both hostname policies violated.
            spire("w3"),
            coredns("coredns-1", "w3"),
            flux("kustomize-controller-1", "w3"),
            // w1: dns violated only.
            coredns("coredns-2", "w1"),
            flux("source-controller-1", "w1"),
            flux("helm-controller-1", "w1"),
            // w4 holds flux only.
            flux("notification-controller-1", "w4"),
        ]);
        let report = audit(&set, &snapshot);
        let order: Vec<String> = report
            .blast_radius
            .iter()
            .map(|d| format!("{}={} {:?}", d.topology_key, d.domain, d.policies))
            .collect();
        assert_eq!(
            order,
            [
                // Two violated policies beat one; zone b (one violated, two whole groups)
                // beats w1 (one violated, none whole); zone a holds more groups than w4.
                format!("{HOST}=w3 [\"identity\", \"dns\"]"),
                format!("{ZONE}=b [\"zoned\"]"),
                format!("{HOST}=w1 [\"dns\"]"),
                format!("{ZONE}=a []"),
                format!("{HOST}=w4 []"),
            ]
        );
        // Violations follow the domains' rank.
        let violations: Vec<(&str, &str)> = report
            .violations
            .iter()
            .map(|v| (v.domain.as_str(), v.policy.as_str()))
            .collect();
        assert_eq!(
            violations,
            [
                ("w3", "identity"),
                ("w3", "dns"),
                ("b", "zoned"),
                ("w1", "dns")
            ]
        );
        // Zone b's loss takes every group of every policy with pods there, whatever the key.
        let b = &report.blast_radius[1];
        let groups: Vec<(&str, Role, bool)> = b
            .groups
            .iter()
            .map(|g| (g.policy.as_str(), g.role, g.whole))
            .collect();
        assert_eq!(
            groups,
            [
                ("identity", Role::Subject, true),
                ("identity", Role::Peers, false),
                ("dns", Role::Subject, false),
                ("dns", Role::Peers, false),
                ("zoned", Role::Subject, true),
                ("zoned", Role::Peers, false),
            ]
        );
        assert_eq!(report.summary.violated_policies, 3);
    }

    #[test]
    fn serialized_shape() {
        let set = policies(&[IDENTITY]);
        let snapshot = cluster(vec![
            node("w1", None),
            spire("w1"),
            flux("kustomize-controller-1", "w1"),
        ]);
        let value = serde_json::to_value(audit(&set, &snapshot)).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "violations",
                "blastRadius",
                "unlabelled",
                "groups",
                "summary"
            ]
        );
        assert_eq!(value["violations"][0]["peerGroup"], 0);
        assert_eq!(value["violations"][0]["strength"], "preferred");
        assert_eq!(value["blastRadius"][0]["groups"][1]["role"], "peers");
        assert!(
            value["blastRadius"][0]["groups"][0]
                .get("peerGroup")
                .is_none()
        );
        assert_eq!(value["summary"]["topologyKeys"][0]["topologyKey"], HOST);
    }
}
