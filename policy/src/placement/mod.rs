//! What the scheduler does with the rules and what a failure domain's loss takes down:
//! kube-scheduler's InterPodAffinity and PodTopologySpread decisions for a pod on a snapshot,
//! the audit of a live cluster, and the co-location check the context-aware module runs at
//! admission.
//!
//! Built on [`crate::kube`]; reads the compiled rules to know which pods are protected.

pub mod audit;
pub mod colocation;
pub mod simulate;
pub mod spread;
