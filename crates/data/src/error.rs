//! Errors of the data layer. Every message names the file (and, for row errors, the
//! line, column and what was expected), so a user can fix the input without a debugger.

use std::fmt;
use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A problem with one row of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number, when the problem is in one field.
    pub column: Option<usize>,
    /// Name of that column, when known.
    pub field: Option<String>,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        match (&self.column, &self.field) {
            (Some(c), Some(name)) => write!(f, "column {c} ({name}): ")?,
            (Some(c), None) => write!(f, "column {c}: ")?,
            (None, _) => {}
        }
        f.write_str(&self.message)
    }
}

/// Errors of the data layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed (the message names the path).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file has no content.
    #[error("{path}: the file is empty (expected {expected})", path = .path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
        /// What it should have held.
        expected: String,
    },
    /// A malformed row (strict mode) — see [`RowError`].
    #[error("{0}")]
    Row(RowError),
    /// A schema or header problem that is not about one row.
    #[error("{path}: {message}", path = .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A name that is neither a known dataset nor an existing path.
    #[error(
        "unknown dataset {name:?}{}: expected one of {known} or the path of a file or directory",
        did_you_mean(.suggestion)
    )]
    UnknownDataset {
        /// What the user typed.
        name: String,
        /// The known names.
        known: String,
        /// The known name closest to `name`, if one is close.
        suggestion: Option<String>,
    },
    /// A bad parameter value (e.g. a split ratio of 1.5).
    #[error("invalid {parameter}: {message}")]
    InvalidParameter {
        /// The parameter's name as the user types it.
        parameter: String,
        /// What was expected.
        message: String,
    },
    /// A download or fallback fetch failed.
    #[error("fetching {dataset}: {message}")]
    Fetch {
        /// The dataset.
        dataset: String,
        /// What failed, with every source that was tried.
        message: String,
    },
    /// A file's checksum does not match the published one.
    #[error("{path}: SHA-256 mismatch: expected {expected}, got {actual}", path = .path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The published SHA-256.
        expected: String,
        /// The SHA-256 of what was received.
        actual: String,
    },
}

impl Error {
    /// True when the error is the user's input (bad file, bad flag) rather than the system.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Io(_) | Error::Fetch { .. } | Error::Checksum { .. } => false,
            Error::EmptyFile { .. }
            | Error::Row(_)
            | Error::Format { .. }
            | Error::UnknownDataset { .. }
            | Error::InvalidParameter { .. } => true,
        }
    }

    pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<RowError> for Error {
    fn from(e: RowError) -> Self {
        Error::Row(e)
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}
