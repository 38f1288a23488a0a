//! Errors of model construction and artifact I/O.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shape or hyper-parameter is inconsistent.
    #[error("invalid {parameter}: {message}")]
    InvalidParameter {
        /// Parameter name.
        parameter: String,
        /// What was expected.
        message: String,
    },
    /// Reading or writing an artifact file failed.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An artifact file is corrupt, truncated or of the wrong kind.
    #[error("{path}: {message}", path = .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The feature spec could not be read or written.
    #[error(transparent)]
    Features(#[from] shortlist_features::Error),
}

impl Error {
    /// An [`Error::InvalidParameter`].
    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
