//! apart's engine: keep a cluster's critical subsystems on different failure domains.
//!
//! A [`PolicySet`] holds compiled `DecorrelationPolicy` rules ("spire-server must prefer
//! nodes that run no Flux controller"). [`PolicySet::evaluate`] reads one Kubernetes object,
//! finds its pods (a workload's pod template, or an affinity inside a custom resource), and
//! reports [`Finding`]s with stable [`Code`]s, using the exact inter-pod affinity semantics of
//! the API server and kube-scheduler; for `action: mutate` rules it also returns the repaired
//! object. [`admission::review`] wraps that for Kubewarden requests. The crate does no I/O
//! and builds for wasm32.
//!
//! ```
//! use apart_policy::{Code, Context, NamespaceFacts, PolicySet};
//!
//! let mut policies = PolicySet::default();
//! policies.parse_into(r#"
//! apiVersion: apart.dev/v1alpha1
//! kind: DecorrelationPolicy
//! metadata: {name: identity-apart-from-gitops}
//! spec:
//!   subject: {labelSelector: {matchLabels: {app: spire-server}}}
//!   apartFrom:
//!     - namespaces: [flux-system]
//!       labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}
//! "#, "policy.yaml").unwrap();
//!
//! // The term looks for Flux pods only in spire-server's own namespace: a silent no-op.
//! let statefulset = br#"{"apiVersion": "apps/v1", "kind": "StatefulSet",
//!   "metadata": {"name": "spire-server", "namespace": "kube-system"},
//!   "spec": {"template": {"metadata": {"labels": {"app": "spire-server"}},
//!     "spec": {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
//!       {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
//!         "labelSelector": {"matchLabels": {"app.kubernetes.io/part-of": "flux"}}}}]}}}}}}"#;
//! let facts = NamespaceFacts::default();
//! let ctx = Context { default_namespace: "default", namespaces: &facts };
//! let evaluation = policies.evaluate(statefulset, &ctx).unwrap();
//! assert_eq!(evaluation.findings[0].code, Code::NamespaceBlind);
//! assert!(evaluation.findings[0].message.contains("flux-system"));
//! ```
#![deny(
    // The module must never trap: no panicking shortcuts in library code.
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::todo,
    missing_docs
)]

pub mod admission;
mod error;
pub mod kube;
pub mod placement;
#[cfg(feature = "report")]
pub mod report;
pub mod rules;
pub mod source;

pub use error::{InvalidField, ObjectError, PolicyError};
pub use kube::affinity::NamespaceFacts;
pub use rules::evaluate::{Context, Evaluation};
pub use rules::finding::{Code, Finding, ObjectRef, PatchOp, Severity};
pub use rules::policy::{
    API_VERSION, Action, HOSTNAME, KIND, PeerGroup, Policy, PolicyDocument, PolicySet, Settings,
    Strength, ValueTarget,
};
pub use rules::set::{SetFacts, SetMember};
