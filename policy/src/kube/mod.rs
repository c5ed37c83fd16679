//! Kubernetes shapes and their exact semantics: label selectors and names as the API server
//! validates them, inter-pod affinity as kube-scheduler reads it, the node-side scheduling
//! fields (node selector and affinity, tolerations and taints, topology spread constraints),
//! where a workload keeps its pod template, and a cluster snapshot.
//!
//! Depends only on [`crate::source::path`] (to say where a problem is) and, for the value
//! targets a policy names, on the compiled rule types; nothing here knows about findings.

pub mod affinity;
pub mod cluster;
pub mod names;
pub mod object;
pub mod scheduling;
pub mod selector;
pub(crate) mod strict;
