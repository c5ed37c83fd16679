//! `DecorrelationPolicy` documents: their schema, their checks, and the compiled form the
//! engine evaluates.
//!
//! Compilation happens once per policy set (per settings payload in the module), never per
//! object: selectors, JSONPaths and topology ranks are resolved here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{InvalidField, PolicyError};
use crate::kube::names;
use crate::kube::selector::{LabelSelector, Selector};
use crate::source::path::JsonPath;
use crate::source::query::Query;

/// `apiVersion` of the document.
pub const API_VERSION: &str = "apart.dev/v1alpha1";
/// `kind` of the document.
pub const KIND: &str = "DecorrelationPolicy";
/// The default failure domain.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// `minReplicas` when unset: one pod has no replica to be apart from.
pub const DEFAULT_MIN_REPLICAS: i64 = 2;

/// Soft or hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strength {
    /// `preferredDuringSchedulingIgnoredDuringExecution`: always schedules.
    #[default]
    Preferred,
    /// `requiredDuringSchedulingIgnoredDuringExecution`: never shares the domain.
    Required,
}

/// Report, or repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Report findings; reject at admission.
    #[default]
    Validate,
    /// Add or repair the affinity term.
    Mutate,
}

/// What an UPDATE that leaves a violation as it was (the pod template unchanged from
/// `oldObject`) gets at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExistingViolations {
    /// Accepted with a warning, never patched: the update did not make the violation, and a
    /// repair would roll out pods nobody asked to restart (Kyverno's `allowExistingViolations`).
    #[default]
    Allow,
    /// Rejected like a new violation (still never patched): the object must be fixed before
    /// it can be updated at all.
    Deny,
}

/// The document as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDocument {
    /// Must be `apart.dev/v1alpha1`.
    pub api_version: String,
    /// Must be `DecorrelationPolicy`.
    pub kind: String,
    /// `name` is required.
    pub metadata: Metadata,
    /// The rule.
    pub spec: PolicySpec,
}

/// Document metadata.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The policy's name, used in every finding.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The rule as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// The pods the rule protects.
    pub subject: SubjectSpec,
    /// The peer groups to keep apart from.
    pub apart_from: Vec<PeerSpec>,
    /// The failure domain; `kubernetes.io/hostname` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_key: Option<String>,
    /// `preferred` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<Strength>,
    /// 1..100, preferred only; 100 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// `validate` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Affinity held inside custom resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_targets: Option<Vec<ValueTargetSpec>>,
    /// UPDATEs that leave a violation as it was: `allow` (default) or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_violations: Option<ExistingViolations>,
    /// `self` peer groups apply only to workloads that can run this many pods at once (2 by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i64>,
}

/// `spec.subject`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectSpec {
    /// Namespaces the subject runs in; any when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Pod labels of the subject.
    #[serde(default, deserialize_with = "crate::kube::selector::strict_selector")]
    pub label_selector: Option<LabelSelector>,
}

/// One `spec.apartFrom` entry: a group of other pods, or (`self: true`) the subject's own
/// replicas.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerSpec {
    /// The subject's own replicas: the pods of the same workload, in its own namespace.
    #[serde(default, rename = "self", skip_serializing_if = "Option::is_none")]
    pub own_replicas: Option<bool>,
    /// The peers' namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// The peers' namespaces, by label.
    #[serde(
        default,
        deserialize_with = "crate::kube::selector::strict_selector",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace_selector: Option<LabelSelector>,
    /// The peers' pod labels.
    #[serde(
        default,
        deserialize_with = "crate::kube::selector::strict_selector",
        skip_serializing_if = "Option::is_none"
    )]
    pub label_selector: Option<LabelSelector>,
}

/// One `spec.valueTargets` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueTargetSpec {
    /// The custom resource's `apiVersion`.
    pub api_version: String,
    /// The custom resource's `kind`.
    pub kind: String,
    /// Only the object with this name, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSONPath query (RFC 9535) of the affinity: every node it selects is a subject.
    pub affinity_path: String,
    /// JSONPath query of the rendered pods' namespace (`@...`: at the node holding the
    /// affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_path: Option<String>,
    /// Namespace when `namespacePath` selects nothing in the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_namespace: Option<String>,
    /// Labels the rendered pods will carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// JSONPath query of more labels, read from the object (`@...`: at the node holding the
    /// affinity) and merged over `podLabels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_labels_path: Option<String>,
}

/// A peer group, compiled.
#[derive(Debug, Clone)]
pub struct PeerGroup {
    /// `self: true`: the subject's own replicas. Who they are depends on the workload judged
    /// (its pod template's labels and namespace), so the selector fields below are empty
    /// (selecting nothing) and evaluation works the group out per pod source.
    pub own_replicas: bool,
    /// The peers' pod selector.
    pub selector: Selector,
    /// As written, for terms apart writes.
    pub label_selector: LabelSelector,
    /// Listed namespaces.
    pub namespaces: BTreeSet<String>,
    /// Namespaces by label, compiled and as written (`{}` when the group names none: any).
    pub namespace_selector: Option<(Selector, LabelSelector)>,
}

impl PeerGroup {
    /// Are the peers in every namespace?
    pub fn any_namespace(&self) -> bool {
        self.namespace_selector
            .as_ref()
            .is_some_and(|(s, _)| s.is_everything())
    }

    /// Could a pod in `namespace` with `labels` be a peer?
    pub fn selects(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        facts: &crate::kube::affinity::NamespaceFacts,
    ) -> bool {
        let in_scope = self.namespaces.contains(namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|(s, _)| facts.selects(s, namespace));
        in_scope && self.selector.matches_map(labels)
    }

    /// `app.kubernetes.io/part-of=flux in flux-system`.
    pub fn describe(&self) -> String {
        if self.own_replicas {
            return "its own replicas".to_owned();
        }
        let mut scopes: Vec<String> = self.namespaces.iter().cloned().collect();
        if let Some((s, _)) = &self.namespace_selector {
            scopes.push(if s.is_everything() {
                "any namespace".to_owned()
            } else {
                format!("namespaces selected by {}", s.describe())
            });
        }
        format!("{} in {}", self.selector.describe(), scopes.join(" or "))
    }
}

/// A value target, compiled.
#[derive(Debug, Clone)]
pub struct ValueTarget {
    /// `apiVersion` to match.
    pub api_version: String,
    /// `kind` to match.
    pub kind: String,
    /// Name to match.
    pub name: Option<String>,
    /// Where the affinities are: each node the query selects is a subject.
    pub affinity_path: Query,
    /// Where the namespace is.
    pub namespace_path: Option<Query>,
    /// Fallback namespace.
    pub default_namespace: Option<String>,
    /// The rendered pods' labels (those `pod_labels_path` reads are merged over them).
    pub pod_labels: BTreeMap<String, String>,
    /// Where more of the pods' labels are.
    pub pod_labels_path: Option<Query>,
    /// `policy NAME, valueTargets[i]`: what messages about an object call the target.
    pub label: String,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `metadata.name`.
    pub name: String,
    /// Subject namespaces (`None`: any).
    pub subject_namespaces: Option<BTreeSet<String>>,
    /// Subject pod selector.
    pub subject_selector: Selector,
    /// Peer groups.
    pub peers: Vec<PeerGroup>,
    /// Failure domain.
    pub topology_key: String,
    /// Strength.
    pub strength: Strength,
    /// Weight (preferred rules).
    pub weight: i64,
    /// Action.
    pub action: Action,
    /// Value targets.
    pub value_targets: Vec<ValueTarget>,
    /// What an UPDATE that leaves a violation as it was gets.
    pub existing_violations: ExistingViolations,
    /// `self` groups judge only pod sources that can run this many pods at once.
    pub min_replicas: i64,
}

impl Policy {
    /// Is a pod in `namespace` with `labels` a subject of this policy?
    pub fn is_subject(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.subject_namespaces
            .as_ref()
            .is_none_or(|ns| ns.contains(namespace))
            && self.subject_selector.matches_map(labels)
    }
}

/// Reads and compiles a document already read into a JSON value. Errors name the field.
pub fn compile(value: &Value) -> Result<(PolicyDocument, Policy), InvalidField> {
    let doc: PolicyDocument = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = crate::error::serde_path(e.path());
        let message = e.into_inner().to_string();
        InvalidField::new(path, message)
    })?;
    let policy = compile_document(&doc)?;
    Ok((doc, policy))
}

fn at(path: &str) -> JsonPath {
    // Paths below are written by this file and always parse.
    JsonPath::parse(path).unwrap_or_default()
}

fn compile_selector(
    spec: Option<&LabelSelector>,
    path: &str,
    what: &str,
) -> Result<(Selector, LabelSelector), InvalidField> {
    let Some(spec) = spec else {
        return Err(InvalidField::new(
            at(path),
            format!("{what} is required (a labelSelector with matchLabels or matchExpressions)"),
        ));
    };
    let selector = Selector::compile(Some(spec)).map_err(|problems| {
        let first = problems.into_iter().next();
        let (field, message) = first.map(|p| (p.field, p.message)).unwrap_or_default();
        InvalidField::new(at(path).join(&field), message)
    })?;
    Ok((selector, spec.clone()))
}

fn compile_namespaces(
    names_: Option<&Vec<String>>,
    path: &str,
) -> Result<BTreeSet<String>, InvalidField> {
    let mut out = BTreeSet::new();
    for (i, n) in names_.into_iter().flatten().enumerate() {
        names::namespace(n).map_err(|m| InvalidField::new(at(path).index(i), m))?;
        out.insert(n.clone());
    }
    Ok(out)
}

fn compile_document(doc: &PolicyDocument) -> Result<Policy, InvalidField> {
    if doc.api_version != API_VERSION {
        return Err(InvalidField::new(
            at("$.apiVersion"),
            format!(
                "apiVersion must be {API_VERSION}, got {:?}",
                doc.api_version
            ),
        ));
    }
    if doc.kind != KIND {
        return Err(InvalidField::new(
            at("$.kind"),
            format!("kind must be {KIND}, got {:?}", doc.kind),
        ));
    }
    if doc.metadata.name.is_empty() {
        return Err(InvalidField::new(
            at("$.metadata.name"),
            "metadata.name must not be empty".to_owned(),
        ));
    }
    let spec = &doc.spec;
    let (subject_selector, _) = compile_selector(
        spec.subject.label_selector.as_ref(),
        "$.spec.subject.labelSelector",
        "spec.subject.labelSelector",
    )?;
    let subject_namespaces = match &spec.subject.namespaces {
        None => None,
        Some(list) => Some(compile_namespaces(Some(list), "$.spec.subject.namespaces")?),
    };
    if spec.apart_from.is_empty() {
        return Err(InvalidField::new(
            at("$.spec.apartFrom"),
            "apartFrom is empty: list at least one peer group (labelSelector, and namespaces or namespaceSelector; or self: true for the workload's own replicas)".to_owned(),
        ));
    }
    let mut peers = Vec::new();
    for (i, peer) in spec.apart_from.iter().enumerate() {
        let base = format!("$.spec.apartFrom[{i}]");
        if peer.own_replicas == Some(true) {
            // The replicas are the workload's own pods: a selector or a namespace here would
            // say something the workload already says, and could contradict it.
            let extra = [
                ("labelSelector", peer.label_selector.is_some()),
                ("namespaces", peer.namespaces.is_some()),
                ("namespaceSelector", peer.namespace_selector.is_some()),
            ];
            if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(InvalidField::new(
                    at(&format!("{base}.{field}")),
                    format!(
                        "a self: true group is the workload's own replicas (its pod template's labels, in its own namespace): remove {field}"
                    ),
                ));
            }
            peers.push(PeerGroup {
                own_replicas: true,
                selector: Selector::nothing(),
                label_selector: LabelSelector::default(),
                namespaces: BTreeSet::new(),
                namespace_selector: None,
            });
            continue;
        }
        let (selector, label_selector) = compile_selector(
            peer.label_selector.as_ref(),
            &format!("{base}.labelSelector"),
            &format!("spec.apartFrom[{i}].labelSelector"),
        )?;
        let namespaces =
            compile_namespaces(peer.namespaces.as_ref(), &format!("{base}.namespaces"))?;
        let namespace_selector = match &peer.namespace_selector {
            Some(s) => Some(compile_selector(
                Some(s),
                &format!("{base}.namespaceSelector"),
                "namespaceSelector",
            )?),
            None if namespaces.is_empty() => {
                Some((Selector::everything(), LabelSelector::default()))
            }
            None => None,
        };
        peers.push(PeerGroup {
            own_replicas: false,
            selector,
            label_selector,
            namespaces,
            namespace_selector,
        });
    }
    let topology_key = spec
        .topology_key
        .clone()
        .unwrap_or_else(|| HOSTNAME.to_owned());
    names::label_key(&topology_key).map_err(|m| InvalidField::new(at("$.spec.topologyKey"), m))?;
    let strength = spec.strength.unwrap_or_default();
    let weight = match (strength, spec.weight) {
        (Strength::Required, Some(_)) => {
            return Err(InvalidField::new(
                at("$.spec.weight"),
                "weight applies to preferred rules only: remove it, or set strength: preferred"
                    .to_owned(),
            ));
        }
        (_, Some(w)) if !(1..=100).contains(&w) => {
            return Err(InvalidField::new(
                at("$.spec.weight"),
                format!("weight must be 1 to 100, got {w}"),
            ));
        }
        (_, Some(w)) => w,
        (_, None) => 100,
    };
    let min_replicas = match spec.min_replicas {
        Some(n) if n < 1 => {
            return Err(InvalidField::new(
                at("$.spec.minReplicas"),
                format!("minReplicas must be 1 or more, got {n}"),
            ));
        }
        Some(n) => n,
        None => DEFAULT_MIN_REPLICAS,
    };
    let mut value_targets = Vec::new();
    for (i, t) in spec.value_targets.iter().flatten().enumerate() {
        let base = format!("$.spec.valueTargets[{i}]");
        if t.api_version.is_empty() || t.kind.is_empty() {
            return Err(InvalidField::new(
                at(&base),
                "apiVersion and kind must not be empty".to_owned(),
            ));
        }
        // Parsed once here, never per object; a query that no object of the kind can match
        // is refused now rather than found silently clean later.
        let path = |field: &str, text: &str, relative: bool| {
            // The field's path only for an error: a valid query is the common case.
            let field = || at(&format!("{base}.{field}"));
            let parsed = if relative {
                Query::parse_relative(text)
            } else {
                Query::parse(text)
            };
            let query = parsed.map_err(|e| InvalidField::new(field(), e.to_string()))?;
            match query.impossible(&t.kind) {
                Some(why) => Err(InvalidField::new(
                    field(),
                    format!("the JSONPath {text:?} can never select anything: {why}"),
                )),
                None => Ok(query),
            }
        };
        let affinity_path = path("affinityPath", &t.affinity_path, false)?;
        let namespace_path = t
            .namespace_path
            .as_deref()
            .map(|p| path("namespacePath", p, true))
            .transpose()?;
        let pod_labels_path = t
            .pod_labels_path
            .as_deref()
            .map(|p| path("podLabelsPath", p, true))
            .transpose()?;
        if t.pod_labels.is_none() && pod_labels_path.is_none() {
            return Err(InvalidField::new(
                at(&format!("{base}.podLabels")),
                "podLabels is required: the labels the rendered pods carry (or podLabelsPath, a JSONPath to read them from the object)".to_owned(),
            ));
        }
        let pod_labels = t.pod_labels.clone().unwrap_or_default();
        if let Some(ns) = &t.default_namespace {
            names::namespace(ns)
                .map_err(|m| InvalidField::new(at(&format!("{base}.defaultNamespace")), m))?;
        }
        for (k, v) in &pod_labels {
            names::label_key(k)
                .and_then(|()| names::label_value(v))
                .map_err(|m| InvalidField::new(at(&format!("{base}.podLabels")).name(k), m))?;
        }
        value_targets.push(ValueTarget {
            api_version: t.api_version.clone(),
            kind: t.kind.clone(),
            name: t.name.clone(),
            affinity_path,
            namespace_path,
            default_namespace: t.default_namespace.clone(),
            pod_labels,
            pod_labels_path,
            label: format!("policy {}, valueTargets[{i}]", doc.metadata.name),
        });
    }
    Ok(Policy {
        name: doc.metadata.name.clone(),
        subject_namespaces,
        subject_selector,
        peers,
        topology_key,
        strength,
        weight,
        action: spec.action.unwrap_or_default(),
        value_targets,
        existing_violations: spec.existing_violations.unwrap_or_default(),
        min_replicas,
    })
}

/// A set of compiled policies, ready to evaluate objects.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
    /// The documents, in order (what the module receives as settings).
    documents: Vec<PolicyDocument>,
    /// The policies' names, to refuse a duplicate in O(log n): settings with ten thousand
    /// policies must compile well within policy-server's 2 s deadline.
    names: BTreeMap<String, usize>,
}

/// Kubewarden settings: the policies to enforce.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// DecorrelationPolicy documents.
    #[serde(default)]
    pub policies: Vec<PolicyDocument>,
}

impl PolicySet {
    /// The policies.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The same policies, judging only: each `action: mutate` is evaluated as `validate`, so
    /// an evaluation plans, applies and re-checks no repair. For an edge that never repairs
    /// (the OPA-ABI module in Gatekeeper mode reports the findings a request is judged by,
    /// before any repair): the findings are the same, without their `fix`. The documents, and
    /// so [`settings`](Self::settings), stay as written.
    #[must_use]
    pub fn without_repairs(mut self) -> Self {
        for policy in &mut self.policies {
            policy.action = Action::Validate;
        }
        self
    }

    /// The policies' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.policies.iter().map(|p| p.name.as_str()).collect()
    }

    /// Every value target, with the index of its policy.
    pub fn value_targets(&self) -> Vec<(usize, &ValueTarget)> {
        self.policies
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.value_targets.iter().map(move |t| (i, t)))
            .collect()
    }

    /// The policy named `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.names.get(name).and_then(|i| self.policies.get(*i))
    }

    /// True when there is no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Adds a document (already read as JSON).
    pub fn push(&mut self, value: Value) -> Result<(), InvalidField> {
        let (doc, policy) = compile(&value)?;
        self.add(doc, policy)
    }

    fn add(&mut self, doc: PolicyDocument, policy: Policy) -> Result<(), InvalidField> {
        if self.names.contains_key(&policy.name) {
            return Err(InvalidField::new(
                at("$.metadata.name"),
                format!(
                    "a policy named {:?} is already defined: names must be unique",
                    policy.name
                ),
            ));
        }
        self.names.insert(policy.name.clone(), self.policies.len());
        self.policies.push(policy);
        self.documents.push(doc);
        Ok(())
    }

    /// The Kubewarden settings that carry these policies.
    pub fn settings(&self) -> Value {
        serde_json::json!({ "policies": self.documents })
    }

    /// Reads Kubewarden settings (`{"policies": [DecorrelationPolicy, ...]}`). This runs for
    /// every fresh module instance, so it reads straight into the typed documents.
    pub fn from_settings(json: &[u8]) -> Result<Self, PolicyError> {
        // A list of policies given as the settings themselves would otherwise be read as a
        // struct in sequence form ("expected a sequence" about its first policy).
        let given = match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => Some("a list"),
            Some(b'"') => Some("a string"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'-' | b'0'..=b'9') => Some("a number"),
            _ => None,
        };
        if let Some(given) = given {
            return Err(PolicyError::Settings {
                path: "settings".to_owned(),
                message: format!(
                    "must be a mapping with the policies under `policies`, {{\"policies\": [DecorrelationPolicy, ...]}}, not {given}: put the list of DecorrelationPolicy documents under `policies:`"
                ),
            });
        }
        let settings: Settings =
            serde_json::from_slice(json).map_err(|e| PolicyError::Settings {
                path: names::shortened(
                    &crate::source::locate::error_path(json, &e)
                        .to_string()
                        .replacen('$', "settings", 1),
                )
                .into_owned(),
                message: names::clip_values(&e.to_string()),
            })?;
        let mut set = Self::default();
        for (i, doc) in settings.policies.into_iter().enumerate() {
            let added = compile_document(&doc).and_then(|policy| set.add(doc, policy));
            added.map_err(|e| PolicyError::Settings {
                path: names::shortened(&e.path.to_string().replacen(
                    '$',
                    &format!("settings.policies[{i}]"),
                    1,
                ))
                .into_owned(),
                message: names::clip_values(&e.message),
            })?;
        }
        Ok(set)
    }

    /// Reads policy documents from YAML or JSON text (several per file). `origin` (a file
    /// name) and the line of the offending field are in every error. Returns the index of
    /// each added policy's document in the text.
    #[cfg(feature = "yaml")]
    pub fn parse_into(&mut self, text: &str, origin: &str) -> Result<Vec<usize>, PolicyError> {
        self.parse_into_with(text, origin, |_, _| {})
    }

    /// As [`PolicySet::parse_into`], and shows `each` every policy added with the document
    /// it was read from, so that a caller keeps what it needs of the document's positions
    /// (where later findings about the policy point) without reading the text again.
    ///
    /// Documents are read, compiled and dropped one at a time: memory holds one document's
    /// positions, not the whole file's. The first problem in the text's order is the error.
    #[cfg(feature = "yaml")]
    pub fn parse_into_with(
        &mut self,
        text: &str,
        origin: &str,
        mut each: impl FnMut(&Policy, &crate::source::read::Document),
    ) -> Result<Vec<usize>, PolicyError> {
        let mut indexes = Vec::new();
        for doc in crate::source::read::documents(text) {
            let doc = doc.map_err(|e| PolicyError::Syntax {
                origin: origin.to_owned(),
                line: e.position.line,
                column: e.position.column,
                message: e.message,
            })?;
            let position = |path: &JsonPath| {
                doc.positions
                    .nearest(path)
                    .map_or(doc.start, |(span, _)| span.start())
            };
            let (document, policy) = compile(&doc.value).map_err(|e| PolicyError::Invalid {
                origin: origin.to_owned(),
                line: position(&e.path).line,
                field: e.path.to_string(),
                message: e.message,
            })?;
            self.add(document, policy)
                .map_err(|e| PolicyError::Invalid {
                    origin: origin.to_owned(),
                    line: position(&e.path).line,
                    field: e.path.to_string(),
                    message: e.message,
                })?;
            if let Some(policy) = self.policies.last() {
                each(policy, &doc);
            }
            indexes.push(doc.index);
        }
        if indexes.is_empty() {
            return Err(PolicyError::Empty {
                origin: origin.to_owned(),
            });
        }
        Ok(indexes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const GOOD: &str = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: p}\nspec:\n  subject:\n    labelSelector: {matchLabels: {app: a}}\n  apartFrom:\n    - namespaces: [flux-system]\n      labelSelector: {matchLabels: {x: y}}\n";

    fn error(text: &str) -> String {
        PolicySet::default()
            .parse_into(text, "p.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults() {
        let mut set = PolicySet::default();
        set.parse_into(GOOD, "p.yaml").unwrap();
        let p = &set.policies()[0];
        assert_eq!(
            (p.topology_key.as_str(), p.strength, p.weight, p.action),
            (HOSTNAME, Strength::Preferred, 100, Action::Validate)
        );
        // Settings round-trip to the same compiled set.
        let again = PolicySet::from_settings(set.settings().to_string().as_bytes()).unwrap();
        assert_eq!(again.settings(), set.settings());
    }

    #[test]
    fn settings_must_be_a_mapping_of_policies() {
        let mut set = PolicySet::default();
        set.parse_into(GOOD, "p.yaml").unwrap();
        let list = set.settings()["policies"].to_string();
        let error = PolicySet::from_settings(list.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("settings: must be a mapping with the policies under `policies`")
                && error.contains("not a list")
                && !error.contains("expected a sequence"),
            "{error}"
        );
        for (text, given) in [
            ("\"x\"", "a string"),
            ("42", "a number"),
            (" true", "a boolean"),
        ] {
            let error = PolicySet::from_settings(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("not {given}")), "{error}");
        }
    }

    #[test]
    fn existing_violations_default_to_allow_and_round_trip() {
        let mut set = PolicySet::default();
        set.parse_into(&format!("{GOOD}  existingViolations: deny\n"), "p.yaml")
            .unwrap();
        assert_eq!(
            set.policies()[0].existing_violations,
            ExistingViolations::Deny
        );
        let again = PolicySet::from_settings(set.settings().to_string().as_bytes()).unwrap();
        assert_eq!(
            again.policy("p").unwrap().existing_violations,
            ExistingViolations::Deny
        );
        let mut plain = PolicySet::default();
        plain.parse_into(GOOD, "p.yaml").unwrap();
        assert_eq!(
            plain.policies()[0].existing_violations,
            ExistingViolations::Allow
        );
        assert!(
            error(&format!("{GOOD}  existingViolations: maybe\n"))
                .contains("unknown variant `maybe`")
        );
    }

    #[test]
    fn names_stay_unique_across_thousands_of_policies() {
        let mut set = PolicySet::default();
        set.parse_into(GOOD, "p.yaml").unwrap();
        let document = set.settings()["policies"][0].clone();
        let policies: Vec<Value> = (0..3_000)
            .map(|i| {
                let mut d = document.clone();
                d["metadata"]["name"] = Value::from(format!("p{i}"));
                d
            })
            .collect();
        let settings = serde_json::json!({ "policies": policies }).to_string();
        let again = PolicySet::from_settings(settings.as_bytes()).unwrap();
        assert_eq!(again.policies().len(), 3_000);
        assert_eq!(
            again.policy("p2999").map(|p| p.name.as_str()),
            Some("p2999")
        );
        let duplicate = settings.replace("\"p2999\"", "\"p0\"");
        let error = PolicySet::from_settings(duplicate.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "settings.policies[2999].metadata.name: a policy named \"p0\" is already defined"
            ),
            "{error}"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        assert_eq!(
            error(&GOOD.replace("[flux-system]", "[Flux]"))
                .split(": ")
                .take(2)
                .collect::<Vec<_>>(),
            ["p.yaml:8", "$.spec.apartFrom[0].namespaces[0]"]
        );
        assert!(
            error(&format!("{GOOD}  weight: 0\n"))
                .starts_with("p.yaml:10: $.spec.weight: weight must be 1 to 100")
        );
        assert!(
            error(&format!("{GOOD}  strength: required\n  weight: 5\n"))
                .contains("weight applies to preferred rules only")
        );
        assert!(
            error(&GOOD.replace("apartFrom", "apartFROM")).contains("unknown field `apartFROM`")
        );
        assert!(error(&format!("{GOOD}---\n{GOOD}")).contains("already defined"));
        assert!(error(&GOOD.replace("    - namespaces: [flux-system]\n      labelSelector: {matchLabels: {x: y}}\n", "    []\n").replace("apartFrom:\n    []", "apartFrom: []")).contains("apartFrom is empty"));
        assert!(error("").contains("no DecorrelationPolicy"));
    }

    #[test]
    fn value_target_queries_are_checked_when_compiled() {
        let target = |fields: &str| {
            format!("{GOOD}  valueTargets:\n    - {{apiVersion: v1, kind: X, {fields}}}\n")
        };
        let jsonpath = target("affinityPath: '$..', podLabels: {app: a}");
        assert_eq!(
            error(&jsonpath),
            "p.yaml:11: $.spec.valueTargets[0].affinityPath: invalid JSONPath \"$..\" at character 3: expected bracketed selection, wildcard selector, or a letter"
        );
        assert!(
            error(&target("affinityPath: 'spec.x', podLabels: {app: a}")).ends_with(
                "invalid JSONPath \"spec.x\" at character 0: a JSONPath starts with '$'"
            )
        );
        assert!(
            error(&target("affinityPath: '$[0].affinity', podLabels: {app: a}")).contains(
                "$.spec.valueTargets[0].affinityPath: the JSONPath \"$[0].affinity\" can never select anything: a X is a mapping, never a list"
            )
        );
        assert!(
            error(&target(
                "affinityPath: '$.spec.affinity', namespacePath: '$.kind.x', podLabels: {app: a}"
            ))
            .contains("$.spec.valueTargets[0].namespacePath: the JSONPath \"$.kind.x\" can never select anything: $.kind of a X is a string")
        );
        assert!(
            error(&target(
                "affinityPath: '$.spec.affinity', podLabelsPath: '@..'"
            ))
            .contains(
                "$.spec.valueTargets[0].podLabelsPath: invalid JSONPath \"@..\" at character 3"
            )
        );
        assert!(
            error(&target("affinityPath: '@.affinity', podLabels: {}")).contains(
                "affinityPath: invalid JSONPath \"@.affinity\" at character 0: a JSONPath starts with '$'"
            )
        );
        assert!(
            error(&target("affinityPath: '$.spec.affinity'"))
                .contains("$.spec.valueTargets[0].podLabels: podLabels is required")
        );
    }

    #[test]
    fn without_repairs_judges_the_same_and_repairs_nothing() {
        let text = GOOD.replace("spec:\n", "spec:\n  action: mutate\n");
        let mut set = PolicySet::default();
        set.parse_into(&text, "p.yaml").unwrap();
        let deployment = br#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}, "spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}}}"#;
        let facts = crate::NamespaceFacts::default();
        let ctx = crate::Context {
            default_namespace: "n",
            namespaces: &facts,
        };
        let repaired = set.evaluate(deployment, &ctx).unwrap();
        assert!(repaired.mutated.is_some(), "action: mutate repairs");
        assert!(repaired.findings.iter().all(|f| f.fix.is_some()));
        let settings = set.settings();
        let judged = set.without_repairs();
        let evaluation = judged.evaluate(deployment, &ctx).unwrap();
        assert_eq!(evaluation.mutated, None);
        let unfixed: Vec<crate::Finding> = repaired
            .findings
            .into_iter()
            .map(|f| crate::Finding { fix: None, ..f })
            .collect();
        assert!(!unfixed.is_empty());
        assert_eq!(evaluation.findings, unfixed);
        assert_eq!(judged.settings(), settings, "the documents stay as written");
    }

    #[test]
    fn value_target_queries_compile_once_and_round_trip() {
        let text = format!(
            "{GOOD}  valueTargets:\n    - {{apiVersion: v1, kind: X, affinityPath: '$.spec.values.*.affinity', namespacePath: '@.namespace', podLabelsPath: '@.podLabels'}}\n    - {{apiVersion: v1, kind: X, affinityPath: \"$['spec'].affinity\", podLabels: {{}}}}\n"
        );
        let mut set = PolicySet::default();
        set.parse_into(&text, "p.yaml").unwrap();
        let targets = &set.policies()[0].value_targets;
        assert!(targets[0].affinity_path.singular().is_none());
        assert!(targets[0].namespace_path.as_ref().unwrap().relative());
        assert_eq!(targets[0].label, "policy p, valueTargets[0]");
        assert_eq!(
            targets[1].affinity_path.singular().map(ToString::to_string),
            Some("$.spec.affinity".to_owned())
        );
        let again = PolicySet::from_settings(set.settings().to_string().as_bytes()).unwrap();
        assert_eq!(again.settings(), set.settings());
        assert_eq!(
            set.settings()["policies"][0]["spec"]["valueTargets"][1]["podLabels"],
            serde_json::json!({})
        );
    }
}
