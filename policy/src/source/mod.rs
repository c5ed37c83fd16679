//! Text in and out: JSONPath (where a node is, where a JSON reading error is, and the queries
//! of value targets), YAML and JSON read with the position of
//! every node, the Kubernetes objects a manifest text holds, the in-place YAML editor, and
//! the in-place JSON member splice the admission repair writes with.
//! The CLI and the JS build read and edit through here, so they agree byte for byte.
//!
//! Depends on nothing else in the crate but the patch operation type of [`crate::rules`]
//! that the editor applies.

#[cfg(feature = "yaml")]
pub mod edit;
pub mod locate;
#[cfg(feature = "yaml")]
pub mod manifest;
pub mod path;
pub mod query;
#[cfg(feature = "yaml")]
pub mod read;
mod scan;
pub mod splice;
