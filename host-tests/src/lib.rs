//! The `apart` CLI's library: a waPC host on wasmtime that runs apart's Kubewarden module as
//! policy-server does, and the commands built on it.
//!
//! Everything here is an adapter: the rules, their semantics and the findings live in
//! `apart-policy` and reach the CLI through the module's `validate` answers.

pub mod commands;
pub mod diagnostic;
pub mod host;
pub mod manifests;
pub mod output;
pub mod ship;
