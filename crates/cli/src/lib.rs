//! The `shortlist` command-line tool's commands as a library: the binary
//! (`src/main.rs`) parses flags and calls these, and the Python bindings
//! (`python/`) call the same functions, so both do exactly the same work (same
//! loading, training, evaluation and artifacts) without a second copy.

pub mod cmd;
pub mod progress;
pub mod table;
