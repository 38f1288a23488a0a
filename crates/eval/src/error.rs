//! Errors of the evaluation layer. Messages name the parameter or input and, for
//! out-of-range indices, the offending row and the valid range.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the evaluation layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad parameter value (e.g. `k = 0`, an empty test set).
    #[error("invalid {parameter}: {message}")]
    InvalidParameter {
        /// The parameter's name.
        parameter: String,
        /// What was expected.
        message: String,
    },
    /// A user or item index outside `0..len`.
    #[error("{what} row {row}: index {index} is out of range (there are {len})")]
    OutOfRange {
        /// Which input and column (e.g. `test items`).
        what: String,
        /// Row of the input.
        row: usize,
        /// The index found.
        index: u32,
        /// The number of users or items.
        len: usize,
    },
    /// Two sizes that must agree do not.
    #[error("size mismatch in {what}: expected {expected}, got {found}")]
    Size {
        /// What was compared.
        what: String,
        /// The size expected.
        expected: usize,
        /// The size found.
        found: usize,
    },
}

impl Error {
    pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    pub(crate) fn size(what: impl Into<String>, expected: usize, found: usize) -> Self {
        Error::Size {
            what: what.into(),
            expected,
            found,
        }
    }
}
