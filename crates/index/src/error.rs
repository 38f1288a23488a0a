//! Errors of the index layer. Messages name the file or the parameter, and for shape
//! problems both sizes, so a caller can fix the input without a debugger.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the index layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed (the message names the path).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file exists but is not a valid index (truncated, corrupt, wrong tensor or dtype).
    #[error("{path}: not a valid shortlist index file: {message}", path = .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A vector or matrix whose length does not match the index dimension.
    #[error("dimension mismatch in {what}: the index has dim {expected}, got {found}")]
    Dimension {
        /// What was passed (e.g. `query`, `queries`, `items`).
        what: String,
        /// The dimension (or length) expected.
        expected: usize,
        /// The dimension (or length) found.
        found: usize,
    },
    /// A bad parameter value (e.g. `dim = 0`, an unsorted exclusion list).
    #[error("invalid {parameter}: {message}")]
    InvalidParameter {
        /// The parameter's name.
        parameter: String,
        /// What was expected.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }
}
