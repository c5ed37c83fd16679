//! A cluster snapshot: what `kubectl get nodes,pods,namespaces -A -o json` prints (a
//! `v1/List`, or a `NodeList`/`PodList`/`NamespaceList`), read leanly.
//!
//! Only what placement needs is kept: node names, labels and taints, namespace labels, and
//! for pods their namespace, labels, node, phase, whether they are terminating, and affinity.
//! Everything else is skipped by the JSON reader, so a 150,000-pod snapshot reads in one pass
//! without building a tree.
//!
//! kube-scheduler's cache holds the pods bound to a node that have not terminated
//! (`spec.nodeName` set, `status.phase` neither `Succeeded` nor `Failed`); [`Cluster::placed`]
//! yields exactly those. Pods that are not placed are kept (audit reports on them), but no
//! placement decision counts them.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::error::ObjectError;
use crate::kube::affinity::{Affinity, NamespaceFacts};
use crate::kube::scheduling::Taint;
use crate::source::path::JsonPath;

/// A node of the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels` (topology labels live here).
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
}

impl Node {
    /// The node's value for a topology key, if it carries the label.
    pub fn topology_value(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A pod of the snapshot.
#[derive(Debug, Clone)]
pub struct ClusterPod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when absent, as the API server fills it).
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`: where it is bound, if anywhere.
    pub node_name: Option<String>,
    /// `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    pub phase: Option<String>,
    /// `metadata.deletionTimestamp` is set: the pod is being deleted. It still runs, and
    /// inter-pod affinity still sees it; topology spreading does not count it.
    pub terminating: bool,
    /// `spec.affinity` (only its inter-pod parts are read).
    pub affinity: Option<Affinity>,
    /// Where the pod is in the snapshot (`$.items[i]`), for messages.
    pub path: JsonPath,
    /// Its controller (`Kind/name` of the `ownerReferences` entry with `controller: true`):
    /// pods with one controller are replicas of one workload (for a Deployment, of one
    /// ReplicaSet: one revision).
    pub owner: Option<String>,
}

impl ClusterPod {
    /// Bound to a node and not terminated: a pod kube-scheduler counts.
    pub fn is_placed(&self) -> bool {
        self.node_name.as_deref().is_some_and(|n| !n.is_empty())
            && !matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// A cluster snapshot.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Nodes, in snapshot order.
    pub nodes: Vec<Node>,
    /// Pods, in snapshot order.
    pub pods: Vec<ClusterPod>,
    /// Namespaces seen, with their labels.
    pub namespaces: NamespaceFacts,
    node_index: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct ListView {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Option<Vec<ItemView>>,
}

#[derive(Deserialize, Default)]
struct MetaView {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    /// Only whether it is set matters.
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "ownerReferences")]
    owner_references: Option<Vec<OwnerView>>,
}

#[derive(Deserialize, Default)]
struct OwnerView {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpecView {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default, deserialize_with = "crate::kube::affinity::strict_affinity")]
    affinity: Option<Affinity>,
    /// A Node's.
    #[serde(default, deserialize_with = "crate::kube::scheduling::lenient_taints")]
    taints: Option<Vec<Taint>>,
}

#[derive(Deserialize, Default)]
struct StatusView {
    #[serde(default)]
    phase: Option<String>,
}

/// One item of the list. Node and Namespace specs carry neither `nodeName` nor
/// `affinity`, and pod specs no `taints`, so one lean spec view serves every kind; unknown
/// fields are skipped.
#[derive(Deserialize)]
struct ItemView {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<MetaView>,
    #[serde(default)]
    spec: Option<PodSpecView>,
    #[serde(default)]
    status: Option<StatusView>,
}

impl Cluster {
    /// Reads a snapshot from JSON text.
    pub fn from_json(json: &[u8]) -> Result<Self, ObjectError> {
        Self::from_list(read_list(json)?, None)
    }

    /// Reads a snapshot already parsed (e.g. from YAML).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ObjectError> {
        let list = serde_path_to_error::deserialize(value).map_err(snapshot_error)?;
        Self::from_list(list, None)
    }

    /// Reads a list of `kind` objects a Kubewarden host returned (`list_resources_*`).
    /// policy-server answers with a `v1/List` whose items, as the API server lists them,
    /// carry no `kind` of their own, so the kind asked for is the items' kind.
    pub fn from_host_list(json: &[u8], kind: &str) -> Result<Self, ObjectError> {
        Self::from_list(read_list(json)?, Some(kind))
    }

    fn from_list(list: ListView, items_kind: Option<&str>) -> Result<Self, ObjectError> {
        let list_kind = list.kind.unwrap_or_default();
        if !list_kind.ends_with("List") {
            return Err(ObjectError {
                message: format!(
                    "the cluster snapshot must be a List (what `kubectl get nodes,pods,namespaces -A -o json` prints), got kind {list_kind:?}"
                ),
            });
        }
        // In a typed list (`PodList`), items carry no kind of their own.
        let item_kind = items_kind
            .unwrap_or_else(|| list_kind.strip_suffix("List").unwrap_or_default())
            .to_owned();
        let mut cluster = Self::default();
        for (i, item) in list.items.unwrap_or_default().into_iter().enumerate() {
            let path = JsonPath::root().name("items").index(i);
            let kind = item.kind.clone().unwrap_or_else(|| item_kind.clone());
            let metadata = item.metadata.unwrap_or_default();
            let name = metadata.name.unwrap_or_default();
            let labels = metadata.labels.unwrap_or_default();
            let terminating = metadata.deletion_timestamp.is_some();
            let owner = metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| {
                    format!(
                        "{}/{}",
                        o.kind.as_deref().unwrap_or_default(),
                        o.name.as_deref().unwrap_or_default()
                    )
                });
            match kind.as_str() {
                "Node" => cluster.add_node(Node {
                    name,
                    labels,
                    taints: item.spec.and_then(|s| s.taints).unwrap_or_default(),
                }),
                "Namespace" => cluster.namespaces.insert(&name, labels),
                "Pod" => {
                    let spec = item.spec.unwrap_or_default();
                    cluster.pods.push(ClusterPod {
                        name,
                        namespace: metadata.namespace.unwrap_or_else(|| "default".to_owned()),
                        labels,
                        node_name: spec.node_name,
                        phase: item.status.and_then(|s| s.phase),
                        terminating,
                        affinity: spec.affinity,
                        path,
                        owner,
                    });
                }
                _ => {}
            }
        }
        Ok(cluster)
    }

    /// Adds a node (a later node of the same name replaces an earlier one).
    pub fn add_node(&mut self, node: Node) {
        match self.node_index.get(&node.name) {
            Some(&i) => {
                if let Some(slot) = self.nodes.get_mut(i) {
                    *slot = node;
                }
            }
            None => {
                self.node_index.insert(node.name.clone(), self.nodes.len());
                self.nodes.push(node);
            }
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.node_index.get(name).and_then(|&i| self.nodes.get(i))
    }

    /// Where the node named `name` is in [`Cluster::nodes`].
    pub fn node_position(&self, name: &str) -> Option<usize> {
        self.node_index.get(name).copied()
    }

    /// The pods kube-scheduler counts, with their node: bound, not terminated, on a node of
    /// the snapshot.
    pub fn placed(&self) -> impl Iterator<Item = (&ClusterPod, &Node)> {
        self.placed_at().map(|(p, _, node)| (p, node))
    }

    /// [`Cluster::placed`], with each node's position in [`Cluster::nodes`] (one lookup per
    /// pod, not two).
    pub fn placed_at(&self) -> impl Iterator<Item = (&ClusterPod, usize, &Node)> {
        self.pods.iter().filter(|p| p.is_placed()).filter_map(|p| {
            let at = p.node_name.as_deref().and_then(|n| self.node_position(n))?;
            self.nodes.get(at).map(|node| (p, at, node))
        })
    }
}

/// Reads the list in one plain pass; a refused text's error says where, from its position.
fn read_list(json: &[u8]) -> Result<ListView, ObjectError> {
    serde_json::from_slice(json).map_err(|e| ObjectError {
        message: format!(
            "cannot read the cluster snapshot: {}: {e}",
            crate::source::locate::error_path(json, &e)
        ),
    })
}

/// Where and what: `$.items[3].spec.affinity...: unknown field ...`.
fn snapshot_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ObjectError {
    let path = crate::error::serde_path(e.path());
    ObjectError {
        message: format!(
            "cannot read the cluster snapshot: {path}: {}",
            e.into_inner()
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn reads_a_kubectl_list() {
        let json = br#"{"apiVersion": "v1", "kind": "List", "items": [
          {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1", "labels": {"kubernetes.io/hostname": "w1"}},
           "status": {"capacity": {"cpu": "4"}, "conditions": []}},
          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system", "labels": {"team": "gitops"}}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "flux-system", "labels": {"app": "x"}},
           "spec": {"nodeName": "w1", "containers": [], "affinity": {"nodeAffinity": {}}}, "status": {"phase": "Running"}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done"}, "spec": {"nodeName": "w1"}, "status": {"phase": "Succeeded"}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"}, "spec": {}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere"}, "spec": {"nodeName": "gone"}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ignored"}}
        ]}"#;
        let cluster = Cluster::from_json(json).unwrap();
        assert_eq!(cluster.nodes.len(), 1);
        assert_eq!(cluster.pods.len(), 4);
        assert_eq!(cluster.pods[1].namespace, "default");
        let placed: Vec<&str> = cluster.placed().map(|(p, _)| p.name.as_str()).collect();
        assert_eq!(
            placed,
            ["a"],
            "terminated, unbound and off-snapshot pods do not count"
        );
        let mut labels = BTreeMap::new();
        labels.insert("team".to_owned(), "gitops".to_owned());
        let selector = crate::kube::selector::Selector::from_requirements(vec![
            crate::kube::selector::Selector::label_equals("team", "gitops"),
        ]);
        assert!(cluster.namespaces.selects(&selector, "flux-system"));
    }

    #[test]
    fn node_taints_and_terminating_pods() {
        let json = br#"{"kind": "List", "items": [
          {"kind": "Node", "metadata": {"name": "w1"}, "spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule", "timeAdded": null}]}},
          {"kind": "Pod", "metadata": {"name": "going", "deletionTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"nodeName": "w1"}, "status": {"phase": "Running"}},
          {"kind": "Pod", "metadata": {"name": "staying", "deletionTimestamp": null}, "spec": {"nodeName": "w1"}}
        ]}"#;
        let cluster = Cluster::from_json(json).unwrap();
        let taint = &cluster.nodes[0].taints[0];
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            ("dedicated", Some("db"), "NoSchedule")
        );
        let terminating: Vec<bool> = cluster.pods.iter().map(|p| p.terminating).collect();
        assert_eq!(terminating, [true, false]);
        assert_eq!(
            cluster.placed().count(),
            2,
            "a terminating pod is still placed"
        );
    }

    #[test]
    fn typed_lists_and_refusals() {
        let cluster =
            Cluster::from_json(br#"{"kind": "NodeList", "items": [{"metadata": {"name": "n"}}]}"#)
                .unwrap();
        assert_eq!(cluster.nodes[0].name, "n");
        let err = Cluster::from_json(br#"{"kind": "Pod"}"#).unwrap_err();
        assert!(err.message.contains("must be a List"), "{}", err.message);
        let err = Cluster::from_json(
            br#"{"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "p"}, "spec": {"affinity": {"podAntiAffinity": {"bogus": 1}}}}]}"#,
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("$.items[0].spec.affinity.podAntiAffinity"),
            "{}",
            err.message
        );
    }
}
