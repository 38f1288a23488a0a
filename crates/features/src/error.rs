//! Errors of feature fitting and spec I/O.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid {parameter}: {message}")]
    InvalidParameter {
        /// Parameter name as written in configs.
        parameter: String,
        /// What was expected.
        message: String,
    },
    /// A feature named in the configuration does not exist in the dataset.
    #[error("unknown {entity} feature {name:?}: the dataset has {available}")]
    UnknownFeature {
        /// `user` or `item`.
        entity: String,
        /// The requested name.
        name: String,
        /// The available names.
        available: String,
    },
    /// Reading or writing a spec file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A spec file is not valid JSON of the expected shape.
    #[error("{path}: invalid feature spec: {message}", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}
