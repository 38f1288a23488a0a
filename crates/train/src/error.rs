//! Errors of training.

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
    /// A configuration file could not be read or parsed.
    #[error("{path}: {message}", path = .path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Labels that the objective cannot use (e.g. a rating of 3.5 for `click`).
    #[error("{0}")]
    Labels(String),
    /// The training rows are empty or unusable.
    #[error("no training data: {0}")]
    NoData(String),
    /// Writing an output failed.
    #[error("{path}: {message}", path = .path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The caller stopped the training ([`shortlist_core::progress::Progress::cancelled`]).
    #[error("cancelled")]
    Cancelled,
    /// Feature fitting failed.
    #[error(transparent)]
    Features(#[from] shortlist_features::Error),
    /// Model construction or I/O failed.
    #[error(transparent)]
    Model(#[from] shortlist_model::Error),
}

impl Error {
    /// An [`Error::InvalidParameter`].
    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }
}

/// An evaluation error (a split that cannot be evaluated, a scorer that fails) is an
/// invalid `evaluation`.
impl From<shortlist_eval::Error> for Error {
    fn from(e: shortlist_eval::Error) -> Self {
        Error::invalid("evaluation", e.to_string())
    }
}
