//! The CLI's errors and their exit codes, in one place.
//!
//! Exit codes: 0 no error findings; 1 error findings (or, for `fix`, errors left after
//! repair); 2 bad input or usage (this type).

use std::path::PathBuf;

/// Something the user must correct before apart can answer.
#[derive(Debug, thiserror::Error)]
pub enum Diagnostic {
    /// A file or folder that cannot be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Malformed or unusable manifest input.
    #[error("{file}:{line}:{column}: {message}")]
    Input {
        /// The file (`<stdin>` for standard input).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An invalid policy file.
    #[error(transparent)]
    Policy(#[from] apart_policy::PolicyError),
    /// The policy module cannot be loaded or run.
    #[error("{0}")]
    Module(String),
    /// Wrong use of the command line.
    #[error("{0}")]
    Usage(String),
    /// A policy the Gatekeeper Rego cannot check as the engine does (`apart gatekeeper`).
    #[error(transparent)]
    Gatekeeper(#[from] crate::ship::gatekeeper::Unsupported),
    /// A registry push or pull that failed (`apart push`, `apart pull`).
    #[error(transparent)]
    Registry(#[from] crate::ship::oci::OciError),
}

impl From<apart_policy::report::ReportError> for Diagnostic {
    fn from(e: apart_policy::report::ReportError) -> Self {
        use apart_policy::report::ReportError;
        match e {
            ReportError::Input {
                file,
                line,
                column,
                message,
            } => Diagnostic::Input {
                file,
                line,
                column,
                message,
            },
            ReportError::Policy(e) => Diagnostic::Policy(e),
            ReportError::Module(message) => Diagnostic::Module(message),
            ReportError::Unusable(message) => Diagnostic::Usage(message),
        }
    }
}

impl Diagnostic {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        2
    }
}
