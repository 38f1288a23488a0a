//! What more than one test file of the binary needs.

use std::process::{Command, Output};

/// Runs the real `shortlist` binary with `args` (no log filter from the caller's
/// environment, so stderr holds only what the command says).
pub fn shortlist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}
