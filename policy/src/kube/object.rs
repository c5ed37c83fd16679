//! Where pods come from in an object: the pod template of a workload, or an affinity held in
//! a custom resource through a value target.
//!
//! The object is read once, leanly: only identity, labels, replica counts and the affinity
//! are materialised; everything else is skipped by the JSON reader. A custom resource that a
//! value target names is the exception: it is read whole (its paths are arbitrary).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ObjectError;
use crate::kube::affinity::Affinity;
use crate::rules::finding::ObjectRef;
use crate::rules::policy::ValueTarget;
use crate::source::path::JsonPath;

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
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpecView<'a> {
    #[serde(default, borrow)]
    affinity: Option<&'a RawValue>,
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
    /// A Pod's node, once bound (the co-location check reads it). Raw: in other kinds'
    /// specs a field of that name may hold anything, and must not make the object unreadable.
    #[serde(default, borrow)]
    node_name: Option<&'a RawValue>,
}

/// A Pod's `status`, read only for bound Pods.
#[derive(Debug, Deserialize, Default)]
struct PodStatusView {
    #[serde(default)]
    phase: Option<String>,
}

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
    /// The pod, when this is a `v1/Pod` bound to a node that has not terminated: what the
    /// co-location check looks at. Other objects answer `None` after two comparisons.
    pub fn bound_pod(
        &self,
        default_namespace: &str,
    ) -> Option<crate::placement::colocation::Subject> {
        if self.kind.as_deref() != Some("Pod") || self.api_version.as_deref() != Some("v1") {
            return None;
        }
        let raw = self.spec.as_ref()?.node_name?;
        let node = serde_json::from_str::<String>(raw.get())
            .ok()
            .filter(|n| !n.is_empty())?;
        // A pod that has finished holds nothing a failure could take down.
        let phase = self
            .status
            .and_then(|s| serde_json::from_str::<PodStatusView>(s.get()).ok())
            .and_then(|s| s.phase);
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let metadata = self.metadata.as_ref();
        Some(crate::placement::colocation::Subject {
            name: metadata
                .and_then(|m| m.name.clone().or_else(|| m.generate_name.clone()))
                .unwrap_or_default(),
            namespace: metadata
                .and_then(|m| m.namespace.clone())
                .unwrap_or_else(|| default_namespace.to_owned()),
            labels: metadata.and_then(|m| m.labels.clone()).unwrap_or_default(),
            node,
        })
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
    group: &'static str,
    kind: &'static str,
    template: &'static str,
    /// Default pods at once when the count field is unset; `None`: one per node.
    default_replicas: Option<i64>,
    controller_keys: &'static [&'static str],
}

const JOB_KEYS: &[&str] = &[
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];

const WORKLOADS: &[WorkloadKind] = &[
    WorkloadKind {
        group: "",
        kind: "Pod",
        template: "$",
        default_replicas: Some(1),
        controller_keys: &[],
    },
    WorkloadKind {
        group: "apps",
        kind: "Deployment",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &["pod-template-hash"],
    },
    WorkloadKind {
        group: "apps",
        kind: "StatefulSet",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &[
            "controller-revision-hash",
            "statefulset.kubernetes.io/pod-name",
            "apps.kubernetes.io/pod-index",
        ],
    },
    WorkloadKind {
        group: "apps",
        kind: "DaemonSet",
        template: "$.spec.template",
        default_replicas: None,
        controller_keys: &["controller-revision-hash", "pod-template-generation"],
    },
    WorkloadKind {
        group: "apps",
        kind: "ReplicaSet",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &[],
    },
    WorkloadKind {
        group: "",
        kind: "ReplicationController",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: &[],
    },
    WorkloadKind {
        group: "batch",
        kind: "Job",
        template: "$.spec.template",
        default_replicas: Some(1),
        controller_keys: JOB_KEYS,
    },
    WorkloadKind {
        group: "batch",
        kind: "CronJob",
        template: "$.spec.jobTemplate.spec.template",
        default_replicas: Some(1),
        controller_keys: JOB_KEYS,
    },
];

/// The kinds whose pod templates apart reads, as `(group, kind)`.
pub fn workload_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    WORKLOADS.iter().map(|w| (w.group, w.kind))
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn read_affinity(raw: Option<&RawValue>, path: &JsonPath) -> AffinitySlot {
    let Some(raw) = raw else {
        return AffinitySlot::Absent;
    };
    if raw.get() == "null" {
        return AffinitySlot::Absent;
    }
    match serde_json::from_str::<Affinity>(raw.get()) {
        Ok(a) => AffinitySlot::Present(a),
        Err(_) => {
            // Re-read with path tracking only now, to say exactly where.
            let mut de = serde_json::Deserializer::from_str(raw.get());
            let err = serde_path_to_error::deserialize::<_, Affinity>(&mut de).err();
            let (at, message) = err.map_or_else(
                || (path.clone(), "the affinity cannot be read".to_owned()),
                |e| {
                    (
                        path.join(&crate::error::serde_path(e.path())),
                        e.into_inner().to_string(),
                    )
                },
            );
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

pub(crate) fn object_error(json: &[u8], fallback: serde_json::Error) -> ObjectError {
    let mut de = serde_json::Deserializer::from_slice(json);
    let located = serde_path_to_error::deserialize::<_, ObjectView<'_>>(&mut de).err();
    let message = match located {
        Some(e) if !e.path().to_string().is_empty() && e.path().to_string() != "." => {
            format!("{}: {}", crate::error::serde_path(e.path()), e.into_inner())
        }
        _ => fallback.to_string(),
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
    let group = group_of(&object.api_version);
    let mut sources = Vec::new();
    if let Some(w) = WORKLOADS
        .iter()
        .find(|w| w.kind == object.kind && w.group == group)
    {
        let spec = view.spec.unwrap_or_default();
        let template_path = JsonPath::parse(w.template).unwrap_or_default();
        let (labels, affinity_raw, replicas) = match w.kind {
            "Pod" => (
                metadata.labels.clone().unwrap_or_default(),
                spec.affinity,
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
                let affinity = template.spec.and_then(|s| s.affinity);
                (
                    labels,
                    affinity,
                    w.default_replicas.map(|d| count.unwrap_or(d)),
                )
            }
        };
        let affinity_path = template_path.name("spec").name("affinity");
        sources.push(PodSource {
            namespace: namespace.clone(),
            labels,
            affinity: read_affinity(affinity_raw, &affinity_path),
            affinity_path,
            replicas,
            controller_keys: w.controller_keys,
            origin: Origin::Template,
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
            let pod_namespace = target
                .namespace_path
                .as_ref()
                .and_then(|p| p.get(&whole))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| target.default_namespace.clone())
                .unwrap_or_else(|| namespace.clone());
            let affinity = match target.affinity_path.get(&whole) {
                None | Some(Value::Null) => AffinitySlot::Absent,
                Some(v) => {
                    let text = v.to_string();
                    read_affinity(
                        RawValue::from_string(text).ok().as_deref(),
                        &target.affinity_path,
                    )
                }
            };
            sources.push(PodSource {
                namespace: pod_namespace,
                labels: target.pod_labels.clone(),
                affinity,
                affinity_path: target.affinity_path.clone(),
                replicas: None,
                controller_keys: &[],
                origin: Origin::ValueTarget { policy: *policy },
            });
        }
        value = Some(whole);
    }
    Ok(ObjectSources {
        object,
        sources,
        value,
    })
}
