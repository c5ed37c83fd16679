//! `DecorrelationPolicy` rules: the document and its compiled form, evaluation of one object,
//! repairs, the set-level checks, the findings they produce, and the region a module's baked
//! policies live in.
//!
//! Built on [`crate::kube`] for the Kubernetes semantics and [`crate::source`] for paths
//! and positions.

pub mod baked;
pub mod builtin;
pub(crate) mod evaluate;
pub(crate) mod finding;
pub(crate) mod judge;
pub(crate) mod mutate;
pub(crate) mod policy;
pub(crate) mod replicas;
pub(crate) mod set;
