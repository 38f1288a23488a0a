//! Subcommands. Each parses flags into a validated configuration, calls the library
//! crates and prints a human report or, with `--json`, one JSON object.

pub mod bench;
pub mod data;
pub mod events;
pub mod export;
pub mod index;
pub mod items;
pub mod model;
pub mod pipeline;
pub mod quickstart;
pub mod serve;
pub mod train;
pub mod train_implicit;

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

/// Global settings every command sees.
pub struct Context {
    /// No progress bars.
    pub quiet: bool,
    /// Where progress goes instead of the terminal's bars (the Python package draws
    /// it with tqdm); `None`: bars on stderr unless `quiet`.
    pub sink: Option<std::sync::Arc<dyn shortlist_core::progress::Progress + Send>>,
}

impl Context {
    /// Bars on stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Context { quiet, sink: None }
    }

    /// The progress reporter for this run.
    pub fn progress(&self) -> crate::progress::Bars {
        match &self.sink {
            Some(sink) => crate::progress::Bars::forwarding(sink.clone()),
            None => crate::progress::Bars::new(self.quiet),
        }
    }
}

/// An error that is the user's input, not a failure of ours (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// I/O errors that mean the user named a bad path: missing, unreadable, empty or
/// with a NUL byte, a directory where a file was expected (or the reverse), a FIFO
/// or device instead of a regular file, a file over the size limit, not text.
fn is_bad_path(io: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        io.kind(),
        K::NotFound
            | K::PermissionDenied
            | K::InvalidInput
            | K::InvalidData
            | K::IsADirectory
            | K::NotADirectory
    )
}

/// Whether `e` is the user's input (exit code 2; a `ValueError` in Python).
pub fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<BadInput>()
            // A file the user named does not exist, cannot be read or is not a file.
            || c.downcast_ref::<std::io::Error>().is_some_and(is_bad_path)
            || c.downcast_ref::<shortlist_data::Error>().is_some_and(|d| {
                d.is_bad_input() || matches!(d, shortlist_data::Error::Io(io) if is_bad_path(io))
            })
            || c.is::<shortlist_features::Error>()
            // A request the models cannot answer as asked (a rule over an attribute
            // the items lack, an order without its model, k = 0).
            || matches!(
                c.downcast_ref::<shortlist_pipeline::Error>(),
                Some(shortlist_pipeline::Error::InvalidArgument(_))
            )
            || c.downcast_ref::<shortlist_model::Error>().is_some_and(|m| {
                matches!(m, shortlist_model::Error::Corrupt { .. })
                    || matches!(m, shortlist_model::Error::Io { source, .. } if is_bad_path(source))
            })
            || c.downcast_ref::<shortlist_index::Error>().is_some_and(|i| {
                matches!(i, shortlist_index::Error::Io(io) if is_bad_path(io))
            })
            || c.downcast_ref::<shortlist_train::Error>().is_some_and(|t| {
                matches!(
                    t,
                    shortlist_train::Error::InvalidParameter { .. }
                        | shortlist_train::Error::Config { .. }
                )
            })
    })
}

/// Prints the error chain once and picks the exit code (a closed pipe is not an error).
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {}", message(e));
    if is_bad_input(e) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// The error and its causes as the command prints them (after `error: `).
pub fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    let mut last = msg.clone();
    for cause in e.chain().skip(1) {
        // Errors that already quote their source (fs_err's, ours) are not repeated.
        let text = cause.to_string();
        if !last.contains(&text) {
            msg.push_str(&format!("\n  caused by: {text}"));
        }
        last = text;
    }
    msg
}

/// Writes `value` as one JSON object on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// `println!` that returns I/O errors (a closed pipe) instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
