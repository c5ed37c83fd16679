//! Where pods come from in an object: the pod template of a workload, or an affinity held in
//! a custom resource through a value target.
//!
//! The object is read once, leanly: only identity, labels, replica counts and the affinity
//! are materialised; everything else is skipped by the JSON reader. A custom resource that a
//! value target names is the exception: it is read whole (its paths are arbitrary).
//!
//! Every API version of a workload kind is read, the old ones included (`extensions/v1beta1`
//! Deployments, `apps/v1beta2` StatefulSets, `batch/v1beta1` CronJobs, ...): the pod template
//! has always been at the same place, so an old manifest is checked, not passed over. An
//! UPDATE is compared with its `oldObject` here too ([`update_changes`]): the admission
//! lifecycle needs to know which pod sources the update actually changed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ObjectError;
use crate::kube::affinity::Affinity;
use crate::kube::names;
use crate::kube::scheduling::TopologySpreadConstraint;
use crate::kube::selector::{LabelSelector, Selector};
use crate::placement::colocation::{Placement, Subject};
use crate::rules::finding::ObjectRef;
use crate::rules::policy::ValueTarget;
use crate::source::path::JsonPath;
use crate::source::query::Selection;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaView {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    /// Set once a deletion has begun: only finalizers are still to be removed.
    #[serde(default)]
    deletion_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    annotations: Option<AnnotationsView>,
}

/// The annotations apart acts on: only whether [`MIRROR_ANNOTATION`] is there. The values
/// (of any size) are skipped unread and no key is copied.
#[derive(Debug, Default)]
struct AnnotationsView {
    mirror: bool,
}

impl<'de> Deserialize<'de> for AnnotationsView {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Annotations;
        impl<'de> serde::de::Visitor<'de> for Annotations {
            type Value = AnnotationsView;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AnnotationsView, A::Error> {
                let mut view = AnnotationsView::default();
                while let Some(MirrorKey(is_mirror)) = map.next_key()? {
                    map.next_value::<IgnoredAny>()?;
                    view.mirror |= is_mirror;
                }
                Ok(view)
            }
        }
        deserializer.deserialize_map(Annotations)
    }
}

/// An annotation key, compared with [`MIRROR_ANNOTATION`] where it lies in the input.
struct MirrorKey(bool);

impl<'de> Deserialize<'de> for MirrorKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = MirrorKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an annotation key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<MirrorKey, E> {
                Ok(MirrorKey(key == MIRROR_ANNOTATION))
            }
        }
        deserializer.deserialize_str(Key)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpecView<'a> {
    #[serde(default, borrow)]
    affinity: Option<&'a RawValue>,
    #[serde(default, borrow)]
    topology_spread_constraints: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize, Default)]
struct TemplateView<'a> {
    #[serde(default)]
    metadata: Option<MetaView>,
    #[serde(default, borrow)]
    spec: Option<PodSpecView<'a>>,
}

#[derive(Debug, Deserialize, Default)]
struct JobTemplateView<'a> {
    #[serde(default, borrow)]
    spec: Option<Box<SpecView<'a>>>,
}

/// Every field of every workload's `spec` apart reads (a Pod's `affinity` included).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecView<'a> {
    #[serde(default)]
    replicas: Option<i64>,
    #[serde(default)]
    parallelism: Option<i64>,
    #[serde(default, borrow)]
    template: Option<TemplateView<'a>>,
    #[serde(default, borrow)]
    job_template: Option<JobTemplateView<'a>>,
    #[serde(default, borrow)]
    affinity: Option<&'a RawValue>,
    /// A Pod's own constraints (a workload's are in its template).
    #[serde(default, borrow)]
    topology_spread_constraints: Option<&'a RawValue>,
    /// A workload's pod selector: what a term about its own replicas selects.
    #[serde(default, borrow)]
    selector: Option<&'a RawValue>,
    /// A Pod's node, once bound (the co-location check reads it). Raw: in other kinds'
    /// specs a field of that name may hold anything, and must not make the object unreadable.
    #[serde(default, borrow)]
    node_name: Option<&'a RawValue>,
}

/// A Pod's `status`, read only for bound Pods.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatusView {
    #[serde(default)]
    phase: Option<String>,
    /// Set by the kubelet when it accepts the pod: the pod has started on its node.
    #[serde(default)]
    start_time: Option<IgnoredAny>,
}

/// The annotation the kubelet puts on the mirror pod of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// An object read leanly: identity, labels, replica counts and affinities only. Read it
/// with serde (it borrows the affinities from the input text); everything else is skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView<'a> {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<MetaView>,
    #[serde(default, borrow)]
    spec: Option<SpecView<'a>>,
    /// Raw for the same reason as `spec.nodeName`.
    #[serde(default, borrow)]
    status: Option<&'a RawValue>,
}

impl ObjectView<'_> {
    /// `apiVersion`, as written (empty when absent).
    pub fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or_default()
    }

    /// `kind`, as written (empty when absent).
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or_default()
    }

    /// Fills in `apiVersion` and `kind` from the admission request's `kind` when the object
    /// omits them (the API server always writes them; hand-written reviews may not), so the
    /// object is judged as what the request says it is rather than as nothing.
    pub fn fill_type(&mut self, group: &str, version: &str, kind: &str) {
        if self.api_version().is_empty() && !version.is_empty() {
            self.api_version = Some(if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            });
        }
        if self.kind().is_empty() && !kind.is_empty() {
            self.kind = Some(kind.to_owned());
        }
    }

    /// Is this a core Pod?
    pub fn is_pod(&self) -> bool {
        self.kind() == "Pod" && group_of(self.api_version()).is_empty()
    }

    /// Has a deletion begun (`metadata.deletionTimestamp` set)?
    pub fn deleting(&self) -> bool {
        self.metadata
            .as_ref()
            .is_some_and(|m| m.deletion_timestamp.is_some())
    }

    /// Is this the mirror of a static pod (the [`MIRROR_ANNOTATION`] that the kubelet writes)?
    pub fn is_mirror_pod(&self) -> bool {
        self.is_pod()
            && self
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .is_some_and(|a| a.mirror)
    }

    /// The object as the API server names it in its answers: the request's namespace when
    /// the object names none, and a `generateName` prefix marked as such.
    pub fn name(&self, request_namespace: Option<&str>) -> ObjectName {
        let metadata = self.metadata.as_ref();
        let namespace = metadata
            .and_then(|m| m.namespace.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                request_namespace
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
            });
        let name = metadata
            .and_then(|m| m.name.clone())
            .filter(|n| !n.is_empty());
        let generated = match &name {
            Some(_) => None,
            None => metadata.and_then(|m| m.generate_name.clone()),
        };
        ObjectName {
            kind: self.kind().to_owned(),
            namespace,
            name: name.or_else(|| generated.clone()),
            generated: generated.is_some(),
        }
    }

    /// The pod, when this is a core Pod bound to a node that has not terminated and is not
    /// the mirror of a static pod: what the co-location check looks at. Other objects answer
    /// `None` after two comparisons.
    pub fn bound_pod(&self, default_namespace: &str) -> Option<Subject> {
        if !self.is_pod() || self.is_mirror_pod() {
            return None;
        }
        let raw = self.spec.as_ref()?.node_name?;
        let node = serde_json::from_str::<String>(raw.get())
            .ok()
            .filter(|n| !n.is_empty())?;
        let status = self
            .status
            .and_then(|s| serde_json::from_str::<PodStatusView>(s.get()).ok())
            .unwrap_or_default();
        // A pod that has finished holds nothing a failure could take down.
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        // A pod the kubelet has started runs there now; one without a start is being created
        // with `spec.nodeName` already written by its creator, bypassing the scheduler.
        let placement = if status.start_time.is_some() || status.phase.as_deref() == Some("Running")
        {
            Placement::Running
        } else {
            Placement::BoundByCreator
        };
        let metadata = self.metadata.as_ref();
        Some(Subject {
            name: metadata
                .and_then(|m| m.name.clone().or_else(|| m.generate_name.clone()))
                .unwrap_or_default(),
            namespace: metadata
                .and_then(|m| m.namespace.clone())
                .unwrap_or_else(|| default_namespace.to_owned()),
            labels: metadata.and_then(|m| m.labels.clone()).unwrap_or_default(),
            node,
            placement,
        })
    }
}

/// An object named as the API server names it (see [`ObjectView::name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, or the request's namespace when the object names none.
    pub namespace: Option<String>,
    /// `metadata.name`, or the `generateName` prefix.
    pub name: Option<String>,
    /// True when `name` is the `generateName` prefix (the API server adds a suffix).
    pub generated: bool,
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.kind.is_empty() {
            "object"
        } else {
            &self.kind
        })?;
        f.write_str(" ")?;
        if let Some(ns) = &self.namespace {
            write!(f, "{}/", names::shortened(ns))?;
        }
        match &self.name {
            Some(n) => f.write_str(&names::shortened(n))?,
            None => f.write_str("<unnamed>")?,
        }
        if self.generated {
            f.write_str(" (generateName)")?;
        }
        Ok(())
    }
}

/// The affinity of a pod source.
#[derive(Debug, Clone)]
pub enum AffinitySlot {
    /// Not written.
    Absent,
    /// Written and readable.
    Present(Affinity),
    /// Written but not readable as an affinity: the API server would refuse it.
    Unreadable {
        /// Where the problem is.
        path: JsonPath,
        /// What is wrong.
        message: String,
    },
    /// A value target's affinity query (not a singular path) selects nothing in the object:
    /// the subject has no affinity, and no concrete place a fix could write one.
    Unselected {
        /// The query, as written.
        query: String,
    },
}

/// Where a pod source was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The workload's pod template (or the Pod itself).
    Template,
    /// A value target of the policy with this index.
    ValueTarget {
        /// Index into the policy set.
        policy: usize,
    },
}

/// Pods an object will create, as far as anti-affinity is concerned.
#[derive(Debug, Clone)]
pub struct PodSource {
    /// The pods' namespace.
    pub namespace: String,
    /// The pods' labels.
    pub labels: BTreeMap<String, String>,
    /// Their affinity.
    pub affinity: AffinitySlot,
    /// Where the affinity is (or would be written).
    pub affinity_path: JsonPath,
    /// How many pods at most run at once, when that is known (`None` for DaemonSets and
    /// value targets).
    pub replicas: Option<i64>,
    /// Labels the controller adds to each pod, values unknown here.
    pub controller_keys: &'static [&'static str],
    /// Template or value target.
    pub origin: Origin,
    /// The pod template's `topologySpreadConstraints` (none when unset or unreadable: the
    /// simulation reports those; here they can only fail to spread).
    pub spread: Vec<TopologySpreadConstraint>,
    /// Where `topologySpreadConstraints` is (or would be).
    pub spread_path: JsonPath,
    /// The workload's `spec.selector`, when it selects the template's pods: the labels a
    /// term about the workload's own replicas is written with.
    pub workload_selector: Option<LabelSelector>,
    /// Can the source run several pods of one workload (not a single Pod, not a value
    /// target)? `replicas` then says how many at once.
    pub workload: bool,
}

/// The object read for evaluation.
#[derive(Debug, Clone)]
pub struct ObjectSources {
    /// Its identity.
    pub object: ObjectRef,
    /// Its pod sources (none for objects that carry no pods).
    pub sources: Vec<PodSource>,
    /// The object, read whole, when a value target needed it.
    pub value: Option<Value>,
}

/// Workload kinds and where their pod template is.
struct WorkloadKind {
    /// The API groups that serve the kind, today's first: every version of each (`v1`,
    /// `v1beta1`, `v1beta2`, `v2alpha1`, ...) keeps the pod template at `template`.
    groups: &'static [&'static str],
    kind: &'static str,
    template: &'static str,
    /// Default pods at once when the count field is unset; `None`: one per node.
    default_replicas: Option<i64>,
    controller_keys: &'static [&'static str],
    /// The API server refuses every change to the pod template's affinity on UPDATE (a
    /// Pod's spec, a Job's template), so an UPDATE can never repair it.
    immutable: bool,
}

const JOB_KEYS: &[&str] = &[
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];

const WORKLOADS: &[WorkloadKind] = &[
    WorkloadKind {
        groups: &[""],
        kind: "Pod",
        template: "$",
        default_replicas: Some(1),
        controller_keys: &[],
        immutable: true,
    },
    WorkloadKind {
        groups: &["apps", "extensions"],
        kind: "Deployment",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &["pod-template-hash"],
        immutable: false,
    },
    WorkloadKind {
        groups: &["apps"],
        kind: "StatefulSet",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &[
            "controller-revision-hash",
            "statefulset.kubernetes.io/pod-name",
            "apps.kubernetes.io/pod-index",
        ],
        immutable: false,
    },
    WorkloadKind {
        groups: &["apps", "extensions"],
        kind: "DaemonSet",
        template: "$.spec.template",
        default_replicas: None,
        controller_keys: &["controller-revision-hash", "pod-template-generation"],
        immutable: false,
    },
    WorkloadKind {
        groups: &["apps", "extensions"],
        kind: "ReplicaSet",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &[],
        immutable: false,
    },
    WorkloadKind {
        groups: &[""],
        kind: "ReplicationController",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &[],
        immutable: false,
    },
    WorkloadKind {
        groups: &["batch"],
        kind: "Job",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: JOB_KEYS,
        immutable: true,
    },
    WorkloadKind {
        groups: &["batch"],
        kind: "CronJob",
        template: "$.spec.jobTemplate.spec.template",
        default_replicas: Some(1),
        controller_keys: JOB_KEYS,
        immutable: false,
    },
];

/// The kinds whose pod templates apart reads, as `(group, kind)` in today's API group.
pub fn workload_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    WORKLOADS
        .iter()
        .map(|w| (w.groups.first().copied().unwrap_or_default(), w.kind))
}

/// The workload kind of an object, any API version of any group that serves it.
fn workload(api_version: &str, kind: &str) -> Option<&'static WorkloadKind> {
    let group = group_of(api_version);
    WORKLOADS
        .iter()
        .find(|w| w.kind == kind && w.groups.contains(&group))
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn read_affinity(raw: Option<&RawValue>, path: &JsonPath) -> AffinitySlot {
    match raw {
        None => AffinitySlot::Absent,
        Some(raw) => read_affinity_text(raw.get(), path),
    }
}

/// Reads an affinity from its JSON text (`null`: none), at `path` in its object.
pub(crate) fn read_affinity_text(text: &str, path: &JsonPath) -> AffinitySlot {
    if text == "null" {
        return AffinitySlot::Absent;
    }
    match crate::kube::affinity::read_affinity(text) {
        Ok(a) => AffinitySlot::Present(a),
        Err(e) => {
            let at = path.join(&crate::source::locate::error_path(text.as_bytes(), &e));
            let message = e.to_string();
            AffinitySlot::Unreadable {
                path: at,
                message: strip_position(&message),
            }
        }
    }
}

/// serde_json appends " at line L column C" (positions inside the extracted text, which
/// mean nothing to the user; the JSON path says where).
fn strip_position(message: &str) -> String {
    message
        .find(" at line ")
        .map_or(message, |i| message.get(..i).unwrap_or(message))
        .to_owned()
}

pub(crate) fn object_error(json: &[u8], error: serde_json::Error) -> ObjectError {
    let path = crate::source::locate::error_path(json, &error);
    let message = if path.segments().is_empty() {
        error.to_string()
    } else {
        format!("{path}: {error}")
    };
    ObjectError {
        message: format!("cannot read the object: {message}"),
    }
}

/// Reads an object's pod sources from its JSON text. `default_namespace` is used when the
/// object names none.
pub fn read(
    json: &[u8],
    default_namespace: &str,
    value_targets: &[(usize, &ValueTarget)],
) -> Result<ObjectSources, ObjectError> {
    let view: ObjectView<'_> = serde_json::from_slice(json).map_err(|e| object_error(json, e))?;
    read_view(view, default_namespace, value_targets, &mut || {
        serde_json::from_slice(json).map_err(|e| object_error(json, e))
    })
}

/// Reads an object's pod sources from its lean view. `whole` reads the complete object, for
/// the rare objects a value target names.
pub fn read_view(
    view: ObjectView<'_>,
    default_namespace: &str,
    value_targets: &[(usize, &ValueTarget)],
    whole: &mut dyn FnMut() -> Result<Value, ObjectError>,
) -> Result<ObjectSources, ObjectError> {
    let metadata = view.metadata.unwrap_or_default();
    let object = ObjectRef {
        api_version: view.api_version.unwrap_or_default(),
        kind: view.kind.unwrap_or_default(),
        namespace: metadata.namespace.clone(),
        name: metadata.name.clone().or(metadata.generate_name.clone()),
    };
    let namespace = metadata
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_owned());
    let mut sources = Vec::new();
    if let Some(w) = workload(&object.api_version, &object.kind) {
        let spec = view.spec.unwrap_or_default();
        let template_path = JsonPath::parse(w.template).unwrap_or_default();
        let workload_selector = spec.selector;
        let (labels, affinity_raw, spread_raw, replicas) = match w.kind {
            "Pod" => (
                metadata.labels.clone().unwrap_or_default(),
                spec.affinity,
                spec.topology_spread_constraints,
                Some(1),
            ),
            _ => {
                let (holder, count) = if w.kind == "CronJob" {
                    let job = spec
                        .job_template
                        .and_then(|j| j.spec)
                        .map(|b| *b)
                        .unwrap_or_default();
                    let count = job.parallelism;
                    (job.template, count)
                } else if w.kind == "Job" {
                    (spec.template, spec.parallelism)
                } else {
                    (spec.template, spec.replicas)
                };
                let template = holder.unwrap_or_default();
                let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
                let (affinity, spread) = template
                    .spec
                    .map(|s| (s.affinity, s.topology_spread_constraints))
                    .unwrap_or_default();
                (
                    labels,
                    affinity,
                    spread,
                    w.default_replicas.map(|d| count.unwrap_or(d)),
                )
            }
        };
        let affinity_path = template_path.name("spec").name("affinity");
        let spread = spread_raw
            .and_then(|r| crate::kube::scheduling::read_spread(r.get()).ok())
            .flatten()
            .unwrap_or_default();
        // Only a selector that selects the template's pods says who the replicas are (the
        // API server refuses any other, but a manifest in CI has not met it yet).
        let workload_selector = workload_selector
            .filter(|_| w.kind != "Pod")
            .and_then(|r| crate::kube::selector::read_selector(r.get()).ok())
            .filter(|s| {
                Selector::compile(Some(s))
                    .is_ok_and(|c| !c.is_nothing() && !c.is_everything() && c.matches_map(&labels))
            });
        sources.push(PodSource {
            namespace: namespace.clone(),
            labels,
            affinity: read_affinity(affinity_raw, &affinity_path),
            affinity_path,
            replicas,
            controller_keys: w.controller_keys,
            origin: Origin::Template,
            spread,
            spread_path: template_path.name("spec").name("topologySpreadConstraints"),
            workload_selector,
            workload: w.kind != "Pod",
        });
    }
    let matching: Vec<_> = value_targets
        .iter()
        .filter(|(_, t)| {
            t.api_version == object.api_version
                && t.kind == object.kind
                && t.name
                    .as_ref()
                    .is_none_or(|n| object.name.as_ref() == Some(n))
        })
        .collect();
    let mut value = None;
    if !matching.is_empty() {
        let whole: Value = whole()?;
        for (policy, target) in matching {
            target_sources(*policy, target, &whole, &namespace, &mut sources)?;
        }
        value = Some(whole);
    }
    Ok(ObjectSources {
        object,
        sources,
        value,
    })
}

/// The node holding the affinity at `path` (its parent), with its path, when it is there.
fn holder<'v>(path: &JsonPath, whole: &'v Value) -> Option<(JsonPath, &'v Value)> {
    let mut parent = path.clone();
    if !parent.pop() {
        return None;
    }
    let value = parent.get(whole)?;
    Some((parent, value))
}

/// `$.a = "x", $.b = 3`: matches for a message, each value cut when long.
fn describe_matches(found: &[(JsonPath, &Value)]) -> String {
    found
        .iter()
        .map(|(p, v)| format!("{p} = {}", names::shortened(&v.to_string())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one distinct value `query` selects for a subject (`None`: nothing selected); several
/// different ones are an error naming the query and what it selected.
fn one_value<'v>(
    target: &ValueTarget,
    field: &str,
    what: &str,
    query: &crate::source::query::Query,
    whole: &'v Value,
    holder: Option<(&JsonPath, &'v Value)>,
    subject: &JsonPath,
) -> Result<Option<(JsonPath, &'v Value)>, ObjectError> {
    let found = query.values(whole, holder);
    let mut distinct: Vec<&(JsonPath, &Value)> = Vec::new();
    for m in &found {
        if !distinct.iter().any(|d| d.1 == m.1) {
            distinct.push(m);
        }
    }
    match distinct.as_slice() {
        [] => Ok(None),
        [(path, value)] => Ok(Some((path.clone(), value))),
        _ => Err(ObjectError {
            message: format!(
                "cannot read the object: {}: {field} {} selects {} different {what} for the pods whose affinity is at {subject}: {}; a subject has one: narrow the query (a query starting with @ reads at the node holding the affinity, e.g. @.namespace)",
                target.label,
                query.text(),
                distinct.len(),
                describe_matches(&found)
            ),
        }),
    }
}

/// The pods' namespace and labels for the subject whose affinity is at `subject`.
fn target_pods(
    target: &ValueTarget,
    whole: &Value,
    namespace: &str,
    subject: Option<&JsonPath>,
) -> Result<(String, BTreeMap<String, String>), ObjectError> {
    let held = subject.and_then(|s| holder(s, whole));
    let held = held.as_ref().map(|(p, v)| (p, *v));
    let shown = subject.cloned().unwrap_or_default();
    let pod_namespace = match &target.namespace_path {
        None => None,
        Some(q) => match one_value(
            target,
            "namespacePath",
            "namespaces",
            q,
            whole,
            held,
            &shown,
        )? {
            None => None,
            Some((_, Value::String(ns))) => Some(ns.clone()),
            Some((path, other)) => {
                return Err(ObjectError {
                    message: format!(
                        "cannot read the object: {}: namespacePath {} selects {path} = {}, which is not a namespace name (a string)",
                        target.label,
                        q.text(),
                        names::shortened(&other.to_string())
                    ),
                });
            }
        },
    };
    let pod_namespace = pod_namespace
        .or_else(|| target.default_namespace.clone())
        .unwrap_or_else(|| namespace.to_owned());
    let mut labels = target.pod_labels.clone();
    if let Some(q) = &target.pod_labels_path
        && let Some((path, found)) = one_value(
            target,
            "podLabelsPath",
            "label sets",
            q,
            whole,
            held,
            &shown,
        )?
    {
        let read = found.as_object().and_then(|m| {
            m.iter()
                .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect::<Option<Vec<_>>>()
        });
        let Some(read) = read else {
            return Err(ObjectError {
                message: format!(
                    "cannot read the object: {}: podLabelsPath {} selects {path} = {}, which is not a map of label names to string values",
                    target.label,
                    q.text(),
                    names::shortened(&found.to_string())
                ),
            });
        };
        labels.extend(read);
    }
    Ok((pod_namespace, labels))
}

/// Where each subject of a value target is in `whole` (for a query that selects none, where
/// it points instead).
fn subject_paths(target: &ValueTarget, whole: &Value) -> Vec<JsonPath> {
    match target.affinity_path.subjects(whole) {
        Selection::Subjects(s) => s.into_iter().map(|(p, _)| p).collect(),
        Selection::Nothing(at) => vec![at],
    }
}

/// The pod sources of one value target in an object read whole: one per subject its
/// affinity query selects, or, when a query that is not singular selects none, one whose
/// affinity is [`AffinitySlot::Unselected`].
fn target_sources(
    policy: usize,
    target: &ValueTarget,
    whole: &Value,
    namespace: &str,
    sources: &mut Vec<PodSource>,
) -> Result<(), ObjectError> {
    let source = |namespace: String, labels, affinity, path: JsonPath| PodSource {
        namespace,
        labels,
        affinity,
        affinity_path: path.clone(),
        replicas: None,
        controller_keys: &[],
        origin: Origin::ValueTarget { policy },
        spread: Vec::new(),
        spread_path: path,
        workload_selector: None,
        workload: false,
    };
    match target.affinity_path.subjects(whole) {
        Selection::Subjects(subjects) => {
            for (path, found) in subjects {
                let affinity = match found {
                    None | Some(Value::Null) => AffinitySlot::Absent,
                    Some(v) => read_affinity_text(&v.to_string(), &path),
                };
                let (ns, labels) = target_pods(target, whole, namespace, Some(&path))?;
                sources.push(source(ns, labels, affinity, path));
            }
        }
        Selection::Nothing(at) => {
            let (ns, labels) = target_pods(target, whole, namespace, None)?;
            let affinity = AffinitySlot::Unselected {
                query: target.affinity_path.text().to_owned(),
            };
            sources.push(source(ns, labels, affinity, at));
        }
    }
    Ok(())
}

/// What an UPDATE did to one pod source of its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    /// Where the source is: every finding about it is at or under this path (a workload's
    /// pod template, whose affinity and topologySpreadConstraints both judge its pods; a value
    /// target's affinity).
    pub scope: JsonPath,
    /// The source's affinity path: what a repair writes, and an UPDATE that leaves the source
    /// alone puts back.
    pub affinity_path: JsonPath,
    /// What apart judges is as it was in `oldObject`: the whole pod template (a change to any
    /// of it rolls the pods out anyway), or for a value target the affinity and the pods'
    /// namespace; for a kind whose template cannot change ([`SourceChange::immutable`]), its
    /// labels and affinity.
    pub unchanged: bool,
    /// The API server refuses changes to this pod template's affinity on UPDATE (a Pod's
    /// spec, a Job's template): no repair can be written.
    pub immutable: bool,
}

/// The pod template of any workload kind, as raw JSON (read only to compare an UPDATE).
/// Everything here is read from byte slices, as the rest of the module reads, so the module
/// carries one JSON reader.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TemplateHolder<'a> {
    #[serde(default, borrow)]
    spec: Option<TemplateHolderSpec<'a>>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TemplateHolderSpec<'a> {
    #[serde(default, borrow)]
    template: Option<&'a RawValue>,
    #[serde(default, borrow)]
    job_template: Option<Box<TemplateHolder<'a>>>,
    #[serde(default, borrow)]
    affinity: Option<&'a RawValue>,
}

/// Only `request.object` of a validation request, as a template holder.
#[derive(Deserialize)]
struct NewObject<'a> {
    #[serde(borrow)]
    request: NewObjectRequest<'a>,
}

#[derive(Deserialize)]
struct NewObjectRequest<'a> {
    #[serde(default, borrow)]
    object: Option<TemplateHolder<'a>>,
}

impl TemplateHolder<'_> {
    /// The pod template (for a Pod: its own labels and affinity), as JSON values.
    fn template(&self, kind: &str, immutable: bool) -> Option<Value> {
        let spec = self.spec.as_ref();
        let raw = match kind {
            "Pod" => {
                let labels = self
                    .metadata
                    .and_then(|m| serde_json::from_slice::<Value>(m.get().as_bytes()).ok())
                    .and_then(|m| m.get("labels").cloned());
                let affinity = spec
                    .and_then(|s| s.affinity)
                    .and_then(|a| serde_json::from_slice::<Value>(a.get().as_bytes()).ok());
                return Some(serde_json::json!({"labels": labels, "affinity": affinity}));
            }
            "CronJob" => spec
                .and_then(|s| s.job_template.as_ref())
                .and_then(|j| j.spec.as_ref())
                .and_then(|s| s.template),
            _ => spec.and_then(|s| s.template),
        }?;
        let template = serde_json::from_slice::<Value>(raw.get().as_bytes()).ok()?;
        if immutable {
            // Only what apart judges: the rest of an immutable template cannot differ in a
            // way that matters (a suspended Job's scheduling directives may change).
            let labels = template.pointer("/metadata/labels").cloned();
            let affinity = template.pointer("/spec/affinity").cloned();
            return Some(serde_json::json!({"labels": labels, "affinity": affinity}));
        }
        Some(template)
    }
}

/// How an UPDATE changed each pod source of its object (`object`, whose identity evaluation
/// read): the workload's pod template compared with the one in `old` (the request's
/// `oldObject`), and each matching value target's affinity and namespace. `payload` is the
/// request's text (the new template is read from it again, only here); `whole` reads the new
/// object whole, for value targets. An `oldObject` that cannot be read counts as changed:
/// the update is then judged as a CREATE.
pub fn update_changes(
    payload: &[u8],
    old: &RawValue,
    object: &ObjectRef,
    value_targets: &[(usize, &ValueTarget)],
    whole: &mut dyn FnMut() -> Result<Value, ObjectError>,
) -> Result<Vec<SourceChange>, ObjectError> {
    let mut changes = Vec::new();
    if let Some(w) = workload(&object.api_version, &object.kind) {
        let new = serde_json::from_slice::<NewObject<'_>>(payload)
            .ok()
            .and_then(|n| n.request.object)
            .and_then(|o| o.template(w.kind, w.immutable));
        let before = serde_json::from_slice::<TemplateHolder<'_>>(old.get().as_bytes())
            .ok()
            .and_then(|o| o.template(w.kind, w.immutable));
        let scope = JsonPath::parse(w.template).unwrap_or_default();
        changes.push(SourceChange {
            affinity_path: scope.name("spec").name("affinity"),
            scope,
            unchanged: new.is_some() && new == before,
            immutable: w.immutable,
        });
    }
    let matching: Vec<&ValueTarget> = value_targets
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| {
            t.api_version == object.api_version
                && t.kind == object.kind
                && t.name
                    .as_ref()
                    .is_none_or(|n| object.name.as_ref() == Some(n))
        })
        .collect();
    if !matching.is_empty() {
        let new = whole()?;
        let before = serde_json::from_slice::<Value>(old.get().as_bytes()).ok();
        for target in matching {
            let Some(before) = &before else {
                // Without a readable oldObject, every subject counts as changed.
                for path in subject_paths(target, &new) {
                    changes.push(SourceChange {
                        scope: path.clone(),
                        affinity_path: path,
                        unchanged: false,
                        immutable: false,
                    });
                }
                continue;
            };
            // What a query reads for the subject at `path` (none: a query that selected no
            // subject), compared as it reads in both objects; absent and null are the same to
            // the API server (and to the Rego).
            let same = |query: Option<&crate::source::query::Query>, path: Option<&JsonPath>| {
                let Some(query) = query else {
                    return true;
                };
                let read = |object: &Value| -> Vec<Value> {
                    let held = path.and_then(|p| holder(p, object));
                    query
                        .values(object, held.as_ref().map(|(p, v)| (p, *v)))
                        .into_iter()
                        .map(|(_, v)| v.clone())
                        .collect()
                };
                read(&new) == read(before)
            };
            let pods_same = |path: Option<&JsonPath>| {
                same(target.namespace_path.as_ref(), path)
                    && same(target.pod_labels_path.as_ref(), path)
            };
            match target.affinity_path.subjects(&new) {
                Selection::Subjects(subjects) => {
                    for (path, _) in subjects {
                        let unchanged = path.get(&new).filter(|v| !v.is_null())
                            == path.get(before).filter(|v| !v.is_null())
                            && pods_same(Some(&path));
                        changes.push(SourceChange {
                            scope: path.clone(),
                            affinity_path: path,
                            unchanged,
                            immutable: false,
                        });
                    }
                }
                Selection::Nothing(at) => {
                    let unchanged =
                        matches!(target.affinity_path.subjects(before), Selection::Nothing(_))
                            && pods_same(None);
                    changes.push(SourceChange {
                        scope: at.clone(),
                        affinity_path: at,
                        unchanged,
                        immutable: false,
                    });
                }
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::rules::policy::PolicySet;

    fn set(target: &str) -> PolicySet {
        let mut set = PolicySet::default();
        set.parse_into(
            &format!(
                "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {{name: p}}\nspec:\n  subject: {{labelSelector: {{matchLabels: {{app: a}}}}}}\n  apartFrom: [{{namespaces: [x], labelSelector: {{matchLabels: {{app: b}}}}}}]\n  valueTargets:\n    - {{apiVersion: v1, kind: Chart, {target}}}\n"
            ),
            "p.yaml",
        )
        .unwrap();
        set
    }

    fn sources(set: &PolicySet, object: &str) -> Result<Vec<PodSource>, ObjectError> {
        read(object.as_bytes(), "default", &set.value_targets()).map(|r| r.sources)
    }

    const CHART: &str = r#"{"apiVersion": "v1", "kind": "Chart", "metadata": {"name": "c", "namespace": "own"},
        "values": {"server": {"namespace": "s", "labels": {"tier": "web"}, "affinity": {}},
                   "worker": {"labels": {"app": "w"}}, "name": "x"}}"#;

    #[test]
    fn every_holder_is_a_source_at_its_concrete_path() {
        let set = set(
            "affinityPath: '$.values.*.affinity', namespacePath: '@.namespace', podLabels: {app: a}, podLabelsPath: '@.labels'",
        );
        let sources = sources(&set, CHART).unwrap();
        type Seen<'a> = (String, &'a str, Vec<(&'a str, &'a str)>, bool);
        let seen: Vec<Seen<'_>> = sources
            .iter()
            .map(|s| {
                (
                    s.affinity_path.to_string(),
                    s.namespace.as_str(),
                    s.labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    matches!(s.affinity, AffinitySlot::Present(_)),
                )
            })
            .collect();
        // Labels read are merged over podLabels, the object's value winning; a holder without
        // a namespace of its own falls back to the object's.
        assert_eq!(
            seen,
            [
                (
                    "$.values.server.affinity".to_owned(),
                    "s",
                    vec![("app", "a"), ("tier", "web")],
                    true
                ),
                (
                    "$.values.worker.affinity".to_owned(),
                    "own",
                    vec![("app", "w")],
                    false
                ),
            ]
        );
        assert!(
            sources
                .iter()
                .all(|s| s.origin == Origin::ValueTarget { policy: 0 })
        );
    }

    #[test]
    fn a_query_that_selects_nothing_is_one_unselected_source() {
        let found = sources(
            &set("affinityPath: '$.values.components[*].affinity', podLabels: {app: a}"),
            CHART,
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].affinity_path.to_string(), "$.values");
        assert!(matches!(
            &found[0].affinity,
            AffinitySlot::Unselected { query } if query == "$.values.components[*].affinity"
        ));
        // A singular path that is not there is an absent affinity at that path, as always.
        let found = sources(
            &set("affinityPath: '$.values.db.affinity', podLabels: {app: a}"),
            CHART,
        )
        .unwrap();
        assert_eq!(found[0].affinity_path.to_string(), "$.values.db.affinity");
        assert!(matches!(found[0].affinity, AffinitySlot::Absent));
    }

    #[test]
    fn namespaces_and_labels_must_be_one_value_of_their_type() {
        let error = |target: &str| sources(&set(target), CHART).unwrap_err().message;
        let two = error(
            "affinityPath: '$.values.server.affinity', namespacePath: '$..namespace', podLabels: {}",
        );
        assert!(two.contains("policy p, valueTargets[0]: namespacePath $..namespace selects 2 different namespaces for the pods whose affinity is at $.values.server.affinity: $.metadata.namespace = \"own\", $.values.server.namespace = \"s\""), "{two}");
        let not_string = error(
            "affinityPath: '$.values.server.affinity', namespacePath: '$.values.server', podLabels: {}",
        );
        assert!(
            not_string.contains("namespacePath $.values.server selects $.values.server = {"),
            "{not_string}"
        );
        let not_labels =
            error("affinityPath: '$.values.server.affinity', podLabelsPath: '$.values.name'");
        assert!(
            not_labels.contains(
                "podLabelsPath $.values.name selects $.values.name = \"x\", which is not a map"
            ),
            "{not_labels}"
        );
        // The same value at two places is one namespace.
        let twice = set(
            "affinityPath: '$.values.server.affinity', namespacePath: '$.values..namespace', podLabels: {}",
        );
        let chart = CHART.replace(r#""name": "x""#, r#""copy": {"namespace": "s"}"#);
        assert_eq!(sources(&twice, &chart).unwrap()[0].namespace, "s");
    }
}
