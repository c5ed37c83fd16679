//! Co-location of one running subject pod: the peers that share its failure domain right now.
//!
//! What the check is for: it reports where pods *already run* next to their peers, what one
//! domain's loss takes down together. Anti-affinity acts only when a pod is scheduled, so a
//! pod placed before its rule was right (or while no other node fitted a `preferred` rule)
//! stays next to its peers, and no manifest check can see that. Kubewarden's audit scanner
//! sends existing objects as CREATE requests; for a started Pod ([`Placement::Running`]) that a
//! policy protects, [`check`] asks the host (Kubewarden's `kubernetes` capabilities) for the
//! pod's node, the nodes of its failure domain and the pods on them, and reports every peer
//! there as a [`Code::CoLocated`] finding, an error, so the scanner's report shows it. This is
//! the per-pod check used at admission; the cluster-wide view is [`crate::placement::audit`].
//!
//! It is not a placement gate. A pod created with `spec.nodeName` already written
//! ([`Placement::BoundByCreator`], a manual binding) bypasses the scheduler, so its term is
//! never enforced whatever it says: its co-location is reported as a warning that says so
//! ([`warning`]), and the request is judged by its manifest alone. Mirror pods (the kubelet's
//! copies of static pods) are never checked: the kubelet runs a static pod from its file on
//! its own node whatever admission answers.
//!
//! The engine does no I/O: the host calls go through [`KubernetesHost`], which the guest
//! implements with waPC `host_call` and tests implement with recorded answers. The requests
//! use the field names of `kubewarden-policy-sdk`'s `GetResourceRequest` and
//! `ListAllResourcesRequest`, so any Kubewarden host (policy-server, `kwctl`) understands them.
//! Only what the policies need is asked: the node list of a domain only when the domain is
//! wider than the node itself, namespaces only when a peer group selects them by label.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::kube::cluster::{Cluster, ClusterPod, Node};
use crate::rules::finding::{Code, Finding, ObjectRef};
use crate::rules::policy::{HOSTNAME, Policy, PolicySet};
use crate::source::path::JsonPath;

/// The `kubernetes` capability that reads one object.
pub const GET_RESOURCE: &str = "get_resource";
/// The `kubernetes` capability that lists objects across namespaces.
pub const LIST_RESOURCES_ALL: &str = "list_resources_all";

/// A running Pod bound to a node: the subject of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (the request's namespace when the object names none).
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`.
    pub node: String,
    /// How it got there.
    pub placement: Placement,
}

/// How a bound pod got onto its node, which decides what its co-location means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// It has started there (`status.startTime`, or phase `Running`): what the audit scanner
    /// sends for a running pod. Co-location is an error finding.
    Running,
    /// The request creates it with `spec.nodeName` already written (a manual binding): the
    /// scheduler never sees it, so its anti-affinity is not enforced. Co-location is a
    /// warning: the request is the binding itself.
    BoundByCreator,
}

/// Kubewarden's `kubernetes` host capabilities, as the guest reaches them.
pub trait KubernetesHost {
    /// Calls `operation` (e.g. [`LIST_RESOURCES_ALL`]) with a JSON request; returns the
    /// answer's JSON text, or the host's error message (for instance when the policy's
    /// `contextAwareResources` do not grant the resource).
    fn call(&mut self, operation: &str, request: &[u8]) -> Result<Vec<u8>, String>;
}

/// Why the co-location of a pod could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The host refused or failed the call.
    #[error("kubernetes/{operation} ({asked}) failed: {message}")]
    Host {
        /// The capability called.
        operation: &'static str,
        /// What was asked, e.g. `v1/Pod spec.nodeName=worker-2`.
        asked: String,
        /// The host's message.
        message: String,
    },
    /// The host answered something that is not the expected list or object.
    #[error("the answer to kubernetes/{operation} ({asked}) cannot be read: {message}")]
    Answer {
        /// The capability called.
        operation: &'static str,
        /// What was asked.
        asked: String,
        /// What is wrong with the answer.
        message: String,
    },
}

/// `GetResourceRequest` of kubewarden-policy-sdk (field for field).
#[derive(Serialize)]
struct GetResourceRequest<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: Option<&'a str>,
    disable_cache: bool,
    field_masks: Option<Vec<String>>,
}

/// `ListAllResourcesRequest` of kubewarden-policy-sdk (field for field).
#[derive(Serialize)]
struct ListAllResourcesRequest<'a> {
    api_version: &'a str,
    kind: &'a str,
    label_selector: Option<&'a str>,
    field_selector: Option<&'a str>,
    field_masks: Option<Vec<String>>,
}

/// The policies whose subject `subject` is, in policy order.
fn protecting<'p>(policies: &'p PolicySet, subject: &Subject) -> Vec<&'p Policy> {
    policies
        .policies()
        .iter()
        .filter(|p| p.is_subject(&subject.namespace, &subject.labels))
        .collect()
}

/// Does any policy protect `subject`? When none does, [`check`] asks the host nothing.
pub fn protects(policies: &PolicySet, subject: &Subject) -> bool {
    !protecting(policies, subject).is_empty()
}

/// Does a peer group need namespace labels to tell its peers? Listed namespaces, "any
/// namespace" and selectors on the namespace's own name are decided without them.
fn needs_namespace_labels(policy: &Policy) -> bool {
    policy.peers.iter().any(|g| {
        g.namespace_selector
            .as_ref()
            .is_some_and(|(s, _)| !s.is_everything())
    })
}

struct Asker<'h> {
    host: &'h mut dyn KubernetesHost,
}

impl Asker<'_> {
    /// One call; `wrap` reads a single object (what `get_resource` answers) as a list of one.
    fn ask(
        &mut self,
        operation: &'static str,
        request: &impl Serialize,
        asked: String,
        kind: &str,
        wrap: bool,
    ) -> Result<Cluster, ContextError> {
        // The request structs hold strings and options only: serialising cannot fail.
        let body = serde_json::to_vec(request).unwrap_or_default();
        let answer = self
            .host
            .call(operation, &body)
            .map_err(|message| ContextError::Host {
                operation,
                asked: asked.clone(),
                message,
            })?;
        let list = if wrap {
            [&b"{\"kind\":\"List\",\"items\":["[..], &answer, b"]}"].concat()
        } else {
            answer
        };
        Cluster::from_host_list(&list, kind).map_err(|e| ContextError::Answer {
            operation,
            asked,
            message: e.message,
        })
    }

    fn node(&mut self, name: &str) -> Result<Option<Node>, ContextError> {
        let request = GetResourceRequest {
            api_version: "v1",
            kind: "Node",
            name,
            namespace: None,
            disable_cache: false,
            field_masks: None,
        };
        let got = self.ask(
            GET_RESOURCE,
            &request,
            format!("v1/Node {name}"),
            "Node",
            true,
        )?;
        Ok(got.nodes.into_iter().next())
    }

    fn list(
        &mut self,
        kind: &str,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Cluster, ContextError> {
        let request = ListAllResourcesRequest {
            api_version: "v1",
            kind,
            label_selector,
            field_selector,
            field_masks: None,
        };
        let asked = [
            Some(format!("v1/{kind}")),
            label_selector.map(str::to_owned),
        ]
        .into_iter()
        .chain([field_selector.map(str::to_owned)])
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        self.ask(LIST_RESOURCES_ALL, &request, asked, kind, false)
    }
}

/// Asks the host for what [`co_located`] needs around `subject`: its node, the other nodes of
/// each failure domain the protecting policies use, the pods bound to those nodes and, when a
/// peer group selects namespaces by label, the namespaces.
pub fn gather(
    host: &mut dyn KubernetesHost,
    subject: &Subject,
    policies: &PolicySet,
) -> Result<Cluster, ContextError> {
    let protecting = protecting(policies, subject);
    let mut cluster = Cluster::default();
    if protecting.is_empty() {
        return Ok(cluster);
    }
    let mut asker = Asker { host };
    let Some(node) = asker.node(&subject.node)? else {
        return Err(ContextError::Answer {
            operation: GET_RESOURCE,
            asked: format!("v1/Node {}", subject.node),
            message: "the answer holds no Node".to_owned(),
        });
    };
    // Sorted, so the same pod always asks the same questions in the same order.
    let mut domain_nodes = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for policy in &protecting {
        let key = policy.topology_key.as_str();
        if !keys.insert(key) {
            continue;
        }
        // A node without the label belongs to no domain of that key: nothing shares it.
        let Some(value) = node.topology_value(key) else {
            continue;
        };
        if key == HOSTNAME && value == node.name {
            // The node itself is the domain: no need to list nodes.
            domain_nodes.insert(node.name.clone());
            continue;
        }
        let listed = asker.list("Node", Some(&format!("{key}={value}")), None)?;
        for n in listed.nodes {
            domain_nodes.insert(n.name.clone());
            cluster.add_node(n);
        }
    }
    // The node as read by name is authoritative for the subject's own domain values.
    cluster.add_node(node);
    if domain_nodes.is_empty() {
        return Ok(cluster);
    }
    for name in &domain_nodes {
        let pods = asker.list("Pod", None, Some(&format!("spec.nodeName={name}")))?;
        cluster.pods.extend(pods.pods);
    }
    if protecting.iter().any(|p| needs_namespace_labels(p)) {
        cluster.namespaces = asker.list("Namespace", None, None)?.namespaces;
    }
    Ok(cluster)
}

/// The co-located findings for `subject` (the Pod `object`) on `cluster`: for every policy
/// whose subject it is, the placed peers on nodes whose value of the policy's topology key
/// equals that of the subject's node. One finding per policy, peers sorted by name.
/// `faulty_terms` names the policies whose term the pod's own manifest gets wrong (its
/// evaluation's error findings): the advice differs when the term is already right.
pub fn co_located(
    subject: &Subject,
    object: &ObjectRef,
    policies: &PolicySet,
    cluster: &Cluster,
    faulty_terms: &BTreeSet<&str>,
) -> Vec<Finding> {
    let Some(node) = cluster.node(&subject.node) else {
        return Vec::new();
    };
    let path = JsonPath::root().name("spec").name("nodeName");
    let mut findings = Vec::new();
    for policy in protecting(policies, subject) {
        let key = policy.topology_key.as_str();
        let Some(value) = node.topology_value(key) else {
            continue;
        };
        let mut groups = BTreeSet::new();
        let mut peers: Vec<(&ClusterPod, &Node)> = cluster
            .placed()
            .filter(|(p, _)| !(p.namespace == subject.namespace && p.name == subject.name))
            .filter(|(_, n)| n.topology_value(key) == Some(value))
            .filter(|(p, _)| {
                let mut selected = false;
                for group in &policy.peers {
                    if group.selects(&p.namespace, &p.labels, &cluster.namespaces) {
                        groups.insert(group.describe());
                        selected = true;
                    }
                }
                selected
            })
            .collect();
        if peers.is_empty() {
            continue;
        }
        peers.sort_by(|(a, _), (b, _)| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let sharing = Sharing {
            subject,
            key,
            value,
            node,
            peers: &peers,
            groups: &groups,
        };
        let message = sharing.message(faulty_terms.contains(policy.name.as_str()));
        findings.push(Finding::new(
            Code::CoLocated,
            &policy.name,
            object,
            &path,
            message,
        ));
    }
    findings
}

/// One policy's peers on the subject's failure domain, for the message.
struct Sharing<'a> {
    subject: &'a Subject,
    key: &'a str,
    value: &'a str,
    node: &'a Node,
    peers: &'a [(&'a ClusterPod, &'a Node)],
    groups: &'a BTreeSet<String>,
}

impl Sharing<'_> {
    fn message(&self, term_faulty: bool) -> String {
        let Self {
            subject,
            key,
            value,
            node,
            peers,
            groups,
        } = self;
        let names: Vec<String> = peers
            .iter()
            .map(|(p, n)| {
                if n.name == node.name {
                    format!("{}/{}", p.namespace, p.name)
                } else {
                    format!("{}/{} on node {}", p.namespace, p.name, n.name)
                }
            })
            .collect();
        let (noun, pronoun) = if peers.len() == 1 {
            ("peer", "both")
        } else {
            ("peers", "all of them")
        };
        let group_noun = if groups.len() == 1 {
            "peer group"
        } else {
            "peer groups"
        };
        let domain = if *key == HOSTNAME {
            "node".to_owned()
        } else {
            format!("{key} domain")
        };
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        let (ns, name) = (&subject.namespace, &subject.name);
        let sharing = format!(
            "{noun} {names} ({group_noun} {groups})",
            names = names.join(", "),
            groups = groups.join("; "),
        );
        match subject.placement {
            Placement::Running => {
                let advice = if term_faulty {
                    format!(
                        "fix the rule's term on the pod's workload first (apart check, apart fix), then run `kubectl delete pod -n {ns} {name}` so the scheduler places it again with the anti-affinity in force"
                    )
                } else {
                    format!(
                        "the pod's term is already right, so it was placed before the term was, or while no other node fitted a preferred term: run `kubectl delete pod -n {ns} {name}` so the scheduler places it again with the anti-affinity in force"
                    )
                };
                format!(
                    "pod {ns}/{name} runs on node {node} ({key}={value}) together with its {sharing}: losing that one {domain} takes {pronoun} down. This is apart's audit of where pods run now (anti-affinity acts only when a pod is scheduled, and placed pods never move): {advice}",
                    node = node.name,
                )
            }
            Placement::BoundByCreator => format!(
                "pod {ns}/{name} is created already bound to node {node} (spec.nodeName), so the scheduler never places it and its podAntiAffinity is not enforced: {node} ({key}={value}) runs its {sharing}, and losing that one {domain} would take {pronoun} down. Remove spec.nodeName and let the scheduler place the pod",
                node = node.name,
            ),
        }
    }
}

/// Checks `subject` (the Pod `object`) for co-located peers, asking `host` only when a policy
/// protects it. `faulty_terms`: as for [`co_located`].
pub fn check(
    host: &mut dyn KubernetesHost,
    subject: &Subject,
    object: &ObjectRef,
    policies: &PolicySet,
    faulty_terms: &BTreeSet<&str>,
) -> Result<Vec<Finding>, ContextError> {
    if !protects(policies, subject) {
        return Ok(Vec::new());
    }
    let cluster = gather(host, subject, policies)?;
    Ok(co_located(
        subject,
        object,
        policies,
        &cluster,
        faulty_terms,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::admission::{self, ValidationRequest, Verdict};
    use serde_json::{Value, json};

    const ZONE: &str = "topology.kubernetes.io/zone";

    const POLICY: &str = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: identity}\nspec:\n  subject:\n    labelSelector: {matchLabels: {app: spire-server}}\n  apartFrom:\n    - namespaces: [flux-system]\n      labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}\n";

    fn policies(texts: &[String]) -> PolicySet {
        let mut set = PolicySet::default();
        for (i, t) in texts.iter().enumerate() {
            set.parse_into(t, &format!("p{i}.yaml")).unwrap();
        }
        set
    }

    fn zoned() -> String {
        POLICY.replace("name: identity", "name: zoned").replace(
            "  apartFrom:",
            &format!("  topologyKey: {ZONE}\n  apartFrom:"),
        )
    }

    fn node(name: &str, zone: Option<&str>) -> Value {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if let Some(z) = zone {
            labels[ZONE] = json!(z);
        }
        json!({"kind": "Node", "metadata": {"name": name, "labels": labels}})
    }

    fn pod(ns: &str, name: &str, labels: Value, node: &str, phase: &str) -> Value {
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
               "spec": {"nodeName": node}, "status": {"phase": phase}})
    }

    fn flux(name: &str, node: &str) -> Value {
        pod(
            "flux-system",
            name,
            json!({"app.kubernetes.io/part-of": "flux"}),
            node,
            "Running",
        )
    }

    fn spire() -> Value {
        pod(
            "kube-system",
            "spire-server-0",
            json!({"app": "spire-server"}),
            "w1",
            "Running",
        )
    }

    fn cluster(items: Vec<Value>) -> Cluster {
        let list = json!({"kind": "List", "items": items});
        Cluster::from_json(list.to_string().as_bytes()).unwrap()
    }

    fn subject() -> Subject {
        Subject {
            name: "spire-server-0".to_owned(),
            namespace: "kube-system".to_owned(),
            labels: BTreeMap::from([("app".to_owned(), "spire-server".to_owned())]),
            node: "w1".to_owned(),
            placement: Placement::Running,
        }
    }

    fn object() -> ObjectRef {
        ObjectRef {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            namespace: Some("kube-system".to_owned()),
            name: Some("spire-server-0".to_owned()),
        }
    }

    fn findings(set: &PolicySet, items: Vec<Value>) -> Vec<Finding> {
        co_located(
            &subject(),
            &object(),
            set,
            &cluster(items),
            &BTreeSet::new(),
        )
    }

    #[test]
    fn a_peer_on_the_same_node_is_reported_with_both_names() {
        let set = policies(&[POLICY.to_owned()]);
        let found = findings(
            &set,
            vec![
                node("w1", Some("a")),
                node("w2", Some("a")),
                spire(),
                flux("kustomize-controller-1", "w1"),
                flux("helm-controller-1", "w2"),
            ],
        );
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            (f.code, f.severity, f.path.as_str(), f.policy.as_str()),
            (
                Code::CoLocated,
                crate::Severity::Error,
                "$.spec.nodeName",
                "identity"
            )
        );
        assert!(
            f.message.starts_with("pod kube-system/spire-server-0 runs on node w1 (kubernetes.io/hostname=w1) together with its peer flux-system/kustomize-controller-1 (peer group app.kubernetes.io/part-of=flux in flux-system): losing that one node takes both down."),
            "{}",
            f.message
        );
        assert!(
            f.message
                .ends_with("run `kubectl delete pod -n kube-system spire-server-0` so the scheduler places it again with the anti-affinity in force"),
            "{}",
            f.message
        );
        assert!(
            !f.message.contains("helm-controller"),
            "another node is another hostname domain"
        );
    }

    #[test]
    fn a_zone_rule_reports_peers_on_other_nodes_of_the_zone() {
        let set = policies(&[zoned()]);
        let found = findings(
            &set,
            vec![
                node("w1", Some("a")),
                node("w2", Some("a")),
                node("w3", Some("b")),
                spire(),
                flux("source-controller-1", "w2"),
                flux("helm-controller-1", "w3"),
            ],
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains(&format!(
                "runs on node w1 ({ZONE}=a) together with its peer flux-system/source-controller-1 on node w2 (peer group "
            )),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .message
                .contains(&format!("that one {ZONE} domain"))
        );
        assert!(!found[0].message.contains("helm-controller"));
    }

    #[test]
    fn a_node_without_the_topology_label_shares_no_domain() {
        let set = policies(&[zoned()]);
        let found = findings(
            &set,
            vec![
                node("w1", None),
                node("w2", None),
                spire(),
                flux("source-controller-1", "w1"),
                flux("helm-controller-1", "w2"),
            ],
        );
        assert_eq!(found, []);
    }

    #[test]
    fn only_selected_placed_peers_count() {
        let set = policies(&[POLICY.to_owned()]);
        let flux_labels = json!({"app.kubernetes.io/part-of": "flux"});
        let found = findings(
            &set,
            vec![
                node("w1", None),
                spire(),
                // The peers' labels, but not in a peer namespace.
                pod("tenant", "lookalike", flux_labels.clone(), "w1", "Running"),
                // Terminated: kube-scheduler no longer counts them, nor does a failure.
                pod(
                    "flux-system",
                    "done",
                    flux_labels.clone(),
                    "w1",
                    "Succeeded",
                ),
                pod(
                    "flux-system",
                    "crashed",
                    flux_labels.clone(),
                    "w1",
                    "Failed",
                ),
                // In the peer namespace, without the peers' labels.
                pod(
                    "flux-system",
                    "other",
                    json!({"app": "other"}),
                    "w1",
                    "Running",
                ),
            ],
        );
        assert_eq!(found, []);
        // Pending and Unknown pods are still bound: they count.
        let found = findings(
            &set,
            vec![
                node("w1", None),
                spire(),
                pod("flux-system", "starting", flux_labels, "w1", "Pending"),
            ],
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("flux-system/starting"));
    }

    #[test]
    fn the_subject_is_never_its_own_peer() {
        // A rule whose peers would select the subject's own pod.
        let selfish = POLICY
            .replace("namespaces: [flux-system]", "namespaces: [kube-system]")
            .replace("app.kubernetes.io/part-of: flux", "app: spire-server");
        let set = policies(&[selfish]);
        assert_eq!(findings(&set, vec![node("w1", None), spire()]), []);
    }

    #[test]
    fn each_protecting_policy_reports_once_with_all_its_peers() {
        let dns = POLICY
            .replace("name: identity", "name: dns")
            .replace("app: spire-server", "app: coredns");
        let set = policies(&[POLICY.to_owned(), zoned(), dns]);
        let found = findings(
            &set,
            vec![
                node("w1", Some("a")),
                node("w2", Some("a")),
                spire(),
                flux("source-controller-1", "w2"),
                flux("kustomize-controller-1", "w1"),
                flux("helm-controller-1", "w1"),
            ],
        );
        let summary: Vec<(&str, usize)> = found
            .iter()
            .map(|f| (f.policy.as_str(), f.message.matches("flux-system/").count()))
            .collect();
        assert_eq!(
            summary,
            [("identity", 2), ("zoned", 3)],
            "dns does not protect spire-server"
        );
        assert!(found[0].message.contains(
            "its peers flux-system/helm-controller-1, flux-system/kustomize-controller-1 ("
        ));
        assert!(found[0].message.contains("takes all of them down"));
    }

    /// A host that answers from a table and records what it was asked.
    struct Fake {
        answers: Vec<(String, Value, Result<Value, String>)>,
        asked: Vec<String>,
    }

    impl Fake {
        fn new(answers: Vec<(&str, Value, Result<Value, String>)>) -> Self {
            Self {
                answers: answers
                    .into_iter()
                    .map(|(o, r, a)| (o.to_owned(), r, a))
                    .collect(),
                asked: Vec::new(),
            }
        }
    }

    impl KubernetesHost for Fake {
        fn call(&mut self, operation: &str, request: &[u8]) -> Result<Vec<u8>, String> {
            let request: Value = serde_json::from_slice(request).unwrap();
            let what = [
                &request["kind"],
                &request["label_selector"],
                &request["field_selector"],
                &request["name"],
            ]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" ");
            self.asked.push(format!("{operation} {what}"));
            self.answers
                .iter()
                .find(|(o, r, _)| o == operation && *r == request)
                .map(|(_, _, a)| a.clone())
                .unwrap_or_else(|| Err(format!("nothing recorded for {request}")))
                .map(|v| v.to_string().into_bytes())
        }
    }

    fn get_node(name: &str) -> Value {
        json!({"api_version": "v1", "kind": "Node", "name": name, "namespace": null,
               "disable_cache": false, "field_masks": null})
    }

    fn list(kind: &str, label: Option<&str>, field: Option<&str>) -> Value {
        json!({"api_version": "v1", "kind": kind, "label_selector": label,
               "field_selector": field, "field_masks": null})
    }

    /// What policy-server answers: a `v1/List` whose items carry no kind.
    fn host_list(items: Vec<Value>) -> Value {
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut i| {
                i.as_object_mut().unwrap().remove("kind");
                i
            })
            .collect();
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
    }

    #[test]
    fn a_hostname_rule_asks_for_the_node_and_its_pods_only() {
        let set = policies(&[POLICY.to_owned()]);
        let mut host = Fake::new(vec![
            (GET_RESOURCE, get_node("w1"), Ok(node("w1", Some("a")))),
            (
                LIST_RESOURCES_ALL,
                list("Pod", None, Some("spec.nodeName=w1")),
                Ok(host_list(vec![
                    spire(),
                    flux("kustomize-controller-1", "w1"),
                ])),
            ),
        ]);
        let found = check(&mut host, &subject(), &object(), &set, &BTreeSet::new()).unwrap();
        assert_eq!(
            host.asked,
            [
                "get_resource Node w1",
                "list_resources_all Pod spec.nodeName=w1"
            ]
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("flux-system/kustomize-controller-1")
        );
    }

    #[test]
    fn a_zone_rule_lists_the_zone_and_a_namespace_selector_the_namespaces() {
        let by_label = zoned().replace(
            "namespaces: [flux-system]",
            "namespaceSelector: {matchLabels: {toolkit.fluxcd.io/tenant: sre}}",
        );
        let set = policies(&[by_label]);
        let namespaces = host_list(vec![
            json!({"kind": "Namespace", "metadata": {"name": "flux-system", "labels": {"toolkit.fluxcd.io/tenant": "sre"}}}),
        ]);
        let mut host = Fake::new(vec![
            (GET_RESOURCE, get_node("w1"), Ok(node("w1", Some("a")))),
            (
                LIST_RESOURCES_ALL,
                list("Node", Some(&format!("{ZONE}=a")), None),
                Ok(host_list(vec![
                    node("w2", Some("a")),
                    node("w1", Some("a")),
                ])),
            ),
            (
                LIST_RESOURCES_ALL,
                list("Pod", None, Some("spec.nodeName=w1")),
                Ok(host_list(vec![spire()])),
            ),
            (
                LIST_RESOURCES_ALL,
                list("Pod", None, Some("spec.nodeName=w2")),
                Ok(host_list(vec![flux("source-controller-1", "w2")])),
            ),
            (
                LIST_RESOURCES_ALL,
                list("Namespace", None, None),
                Ok(namespaces),
            ),
        ]);
        let found = check(&mut host, &subject(), &object(), &set, &BTreeSet::new()).unwrap();
        assert_eq!(
            host.asked,
            [
                "get_resource Node w1",
                &format!("list_resources_all Node {ZONE}=a"),
                "list_resources_all Pod spec.nodeName=w1",
                "list_resources_all Pod spec.nodeName=w2",
                "list_resources_all Namespace",
            ]
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("flux-system/source-controller-1 on node w2 (peer group ")
        );
    }

    #[test]
    fn nothing_is_asked_for_an_unprotected_pod_and_little_for_an_unlabelled_node() {
        let set = policies(&[zoned()]);
        let mut host = Fake::new(vec![]);
        let mut other = subject();
        other.labels = BTreeMap::from([("app".to_owned(), "podinfo".to_owned())]);
        assert_eq!(
            check(&mut host, &other, &object(), &set, &BTreeSet::new()).unwrap(),
            []
        );
        assert_eq!(host.asked, Vec::<String>::new());
        let mut host = Fake::new(vec![(GET_RESOURCE, get_node("w1"), Ok(node("w1", None)))]);
        assert_eq!(
            check(&mut host, &subject(), &object(), &set, &BTreeSet::new()).unwrap(),
            []
        );
        assert_eq!(host.asked, ["get_resource Node w1"]);
    }

    #[test]
    fn host_errors_and_unreadable_answers_are_errors_that_say_what_was_asked() {
        let set = policies(&[POLICY.to_owned()]);
        let mut host = Fake::new(vec![]);
        let err = check(&mut host, &subject(), &object(), &set, &BTreeSet::new()).unwrap_err();
        assert!(
            matches!(&err, ContextError::Host { operation: GET_RESOURCE, asked, message }
                if asked == "v1/Node w1" && message.starts_with("nothing recorded")),
            "{err}"
        );
        let mut host = Fake::new(vec![
            (GET_RESOURCE, get_node("w1"), Ok(node("w1", None))),
            (
                LIST_RESOURCES_ALL,
                list("Pod", None, Some("spec.nodeName=w1")),
                Ok(json!({"kind": "Pod"})),
            ),
        ]);
        let err = check(&mut host, &subject(), &object(), &set, &BTreeSet::new()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the answer to kubernetes/list_resources_all (v1/Pod spec.nodeName=w1) cannot be read"
            ),
            "{err}"
        );
    }

    fn review(set: &PolicySet, operation: &str, object: Value, host: &mut Fake) -> Verdict {
        let payload = json!({"request": {"uid": "u", "operation": operation,
            "namespace": "kube-system", "object": object}})
        .to_string();
        let parsed = ValidationRequest::parse(payload.as_bytes()).unwrap();
        admission::review_with_cluster(set, parsed.request, payload.as_bytes(), host)
    }

    fn running_spire(node: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "spire-server-0", "namespace": "kube-system", "labels": {"app": "spire-server"}},
            "spec": {"nodeName": node, "containers": [{"name": "s", "image": "spire"}], "affinity": {"podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                    "topologyKey": "kubernetes.io/hostname", "namespaces": ["kube-system", "flux-system"],
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/part-of": "flux"}}}}]}}},
            "status": {"phase": "Running"}})
    }

    fn incident_host() -> Fake {
        Fake::new(vec![
            (GET_RESOURCE, get_node("w1"), Ok(node("w1", None))),
            (
                LIST_RESOURCES_ALL,
                list("Pod", None, Some("spec.nodeName=w1")),
                Ok(host_list(vec![
                    spire(),
                    flux("kustomize-controller-1", "w1"),
                ])),
            ),
        ])
    }

    #[test]
    fn admission_rejects_a_created_running_pod_next_to_its_peer() {
        let set = policies(&[POLICY.to_owned()]);
        let mut host = incident_host();
        let verdict = review(&set, "CREATE", running_spire("w1"), &mut host);
        assert!(!verdict.accepted);
        let codes: Vec<Code> = verdict.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, [Code::CoLocated], "the manifest itself is right");
        let message = verdict.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("apart: 1 problem on Pod kube-system/spire-server-0:\n[co-located] identity at $.spec.nodeName: pod kube-system/spire-server-0 runs on node w1"),
            "{message}"
        );
        assert!(
            verdict
                .findings_annotation()
                .unwrap()
                .contains("\"co-located\"")
        );
        // A mutate rule cannot repair where a pod runs: still rejected, nothing patched.
        let mutate = policies(&[format!("{POLICY}  action: mutate\n")]);
        let mut bare = running_spire("w1");
        bare["spec"].as_object_mut().unwrap().remove("affinity");
        let verdict = review(&mutate, "CREATE", bare, &mut incident_host());
        assert!(!verdict.accepted && verdict.mutated_object.is_none());
        let codes: Vec<Code> = verdict.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, [Code::MissingAntiAffinity, Code::CoLocated]);
        assert_eq!(
            verdict.message.unwrap_or_default().matches("\n[").count(),
            1,
            "only the co-location is left after repair"
        );
    }

    #[test]
    fn admission_asks_nothing_outside_a_created_running_subject_pod() {
        let set = policies(&[POLICY.to_owned()]);
        let mut statefulset = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "spire-server", "namespace": "kube-system"},
            "spec": {"template": {"metadata": {"labels": {"app": "spire-server"}},
                "spec": running_spire("w1")["spec"].clone()}}});
        // A field named nodeName in another kind's spec is none of the check's business.
        statefulset["spec"]["nodeName"] = json!({"not": "a string"});
        let mut unbound = running_spire("w1");
        unbound["spec"].as_object_mut().unwrap().remove("nodeName");
        let mut finished = running_spire("w1");
        finished["status"]["phase"] = json!("Succeeded");
        let mut other = running_spire("w1");
        other["metadata"]["labels"] = json!({"app": "podinfo"});
        for (operation, object) in [
            ("CREATE", statefulset),
            ("CREATE", unbound),
            ("CREATE", finished),
            ("CREATE", other),
            ("UPDATE", running_spire("w1")),
        ] {
            let mut host = Fake::new(vec![]);
            let verdict = review(&set, operation, object.clone(), &mut host);
            assert!(verdict.accepted, "{operation} {object}: {verdict:?}");
            assert_eq!(verdict.warnings, Vec::<String>::new(), "{object}");
            assert_eq!(host.asked, Vec::<String>::new(), "{operation} {object}");
        }
    }

    #[test]
    fn a_pod_created_already_bound_is_warned_about_never_rejected() {
        let set = policies(&[POLICY.to_owned()]);
        let mut bound = running_spire("w1");
        bound.as_object_mut().unwrap().remove("status");
        let mut host = incident_host();
        let verdict = review(&set, "CREATE", bound, &mut host);
        assert!(verdict.accepted, "{verdict:?}");
        assert_eq!(verdict.findings, [], "co-location is no finding here");
        assert_eq!(host.asked.len(), 2, "the node and its pods are asked for");
        assert_eq!(verdict.warnings.len(), 1);
        assert!(
            verdict.warnings[0].contains("is created already bound to node w1 (spec.nodeName), so the scheduler never places it and its podAntiAffinity is not enforced")
                && verdict.warnings[0].contains("Remove spec.nodeName"),
            "{}",
            verdict.warnings[0]
        );
    }

    #[test]
    fn a_running_pod_with_a_right_term_is_told_only_to_be_rescheduled() {
        let set = policies(&[POLICY.to_owned()]);
        let verdict = review(&set, "CREATE", running_spire("w1"), &mut incident_host());
        let message = verdict.message.unwrap_or_default();
        assert!(
            message.contains("the pod's term is already right")
                && !message.contains("fix the rule's term"),
            "{message}"
        );
    }

    #[test]
    fn a_mirror_pod_is_never_checked_nor_rejected() {
        let set = policies(&[POLICY.to_owned()]);
        let mut mirror = running_spire("w1");
        mirror["metadata"]["annotations"] =
            json!({"kubernetes.io/config.mirror": "3f1c", "kubernetes.io/config.source": "file"});
        mirror["spec"].as_object_mut().unwrap().remove("affinity");
        let mut host = incident_host();
        let verdict = review(&set, "CREATE", mirror, &mut host);
        assert!(verdict.accepted && verdict.mutated_object.is_none());
        assert_eq!(host.asked, Vec::<String>::new());
        assert_eq!(verdict.violations, []);
        assert!(
            verdict.warnings[0].starts_with("[missing-anti-affinity]")
                && verdict.warnings[0].contains("the mirror of a static pod"),
            "{:?}",
            verdict.warnings
        );
    }

    #[test]
    fn admission_warns_and_accepts_when_the_host_cannot_answer() {
        let set = policies(&[POLICY.to_owned()]);
        let mut host = Fake::new(vec![]);
        let verdict = review(&set, "CREATE", running_spire("w1"), &mut host);
        assert!(verdict.accepted);
        assert_eq!(verdict.findings, []);
        assert_eq!(verdict.warnings.len(), 1);
        assert!(
            verdict.warnings[0].starts_with("apart: co-location of Pod kube-system/spire-server-0 on node w1 not checked (the module needs contextAwareResources v1 Pod, v1 Node and v1 Namespace to check co-location): kubernetes/get_resource (v1/Node w1) failed: nothing recorded"),
            "{}",
            verdict.warnings[0]
        );
    }
}
