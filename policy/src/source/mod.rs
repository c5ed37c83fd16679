//! Text in and out: JSONPath (where a node is), YAML and JSON read with the position of
//! every node, and the in-place YAML editor `apart fix` and the JS build share.
//!
//! Depends on nothing else in the crate but the patch operation type of [`crate::rules`]
//! that the editor applies.

#[cfg(feature = "yaml")]
pub mod edit;
pub mod path;
#[cfg(feature = "yaml")]
pub mod read;
