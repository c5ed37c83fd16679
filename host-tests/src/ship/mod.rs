//! Shipping the rules: Kubewarden packaging (baking policies into a module and pre-initialising
//! it, its metadata, the ClusterAdmissionPolicy), OCI push and pull as Kubewarden's tooling
//! does them, and the Gatekeeper resources generated from the same policies.

pub mod gatekeeper;
pub mod kubewarden;
pub mod oci;
pub mod preinit;
pub mod wasm_binary;
