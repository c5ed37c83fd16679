//! The wasmtime host: a waPC host that runs a Kubewarden module as policy-server does,
//! replayed host capabilities (as `kwctl run` replays them), which module to load and where
//! its compiled form is kept, and the native twin of the guest's entry points that the tests
//! compare it with.

pub mod cache;
pub mod evaluator;
pub mod module;
pub mod replay;
pub mod wapc;
