//! The engine's errors. Each names where the problem is (file and line, or a settings path)
//! and what was expected.

use crate::source::path::JsonPath;

/// A policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not YAML/JSON.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// A document breaks the DecorrelationPolicy schema or rules.
    #[error("{origin}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// 1-based line of the field (or of its nearest written parent).
        line: usize,
        /// JSONPath of the field inside the document.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The file holds no document.
    #[error("{origin}: no DecorrelationPolicy document found")]
    Empty {
        /// The file.
        origin: String,
    },
    /// Kubewarden settings that do not hold valid policies.
    #[error("{path}: {message}")]
    Settings {
        /// Path inside the settings, e.g. `settings.policies[0].spec.weight`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A field of a policy document that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InvalidField {
    /// Where, inside the document.
    pub path: JsonPath,
    /// What is wrong and what is expected.
    pub message: String,
}

impl InvalidField {
    pub(crate) fn new(path: JsonPath, message: String) -> Self {
        Self { path, message }
    }
}

/// An object (manifest or admitted object) that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ObjectError {
    /// What is wrong with it.
    pub message: String,
}

/// A serde_path_to_error path as a JSONPath.
pub(crate) fn serde_path(path: &serde_path_to_error::Path) -> JsonPath {
    use serde_path_to_error::Segment;
    path.iter().fold(JsonPath::root(), |p, s| match s {
        Segment::Seq { index } => p.index(*index),
        Segment::Map { key } => p.name(key),
        Segment::Enum { variant } => p.name(variant),
        Segment::Unknown => p,
    })
}
