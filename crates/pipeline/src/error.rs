//! Errors of the pipeline: bad requests (the caller's fault, named) and internal faults.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request does not fit the models (the message names the parameter).
    #[error("{0}")]
    InvalidArgument(String),
    /// A model directory could not be loaded (the message names the file).
    #[error("{0}")]
    Load(String),
    /// A broken model or a bug.
    #[error("{0}")]
    Internal(String),
}
