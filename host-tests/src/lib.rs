//! The `apart` CLI's library: a waPC host on wasmtime that runs apart's Kubewarden module as
//! policy-server does, and the commands built on it.
//!
//! Everything here is an adapter: the rules, their semantics and the findings live in
//! `apart-policy` and reach the CLI through the module's `validate` answers.

pub mod audit;
pub mod check;
pub mod diagnostic;
pub mod evaluator;
pub mod fix;
pub mod gatekeeper;
pub mod kubewarden;
pub mod manifests;
pub mod module;
pub mod oci;
pub mod output;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod wapc;
pub mod yaml_edit;
