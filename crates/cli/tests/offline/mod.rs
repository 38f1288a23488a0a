//! Runners of the real `shortlist` binary for the tests that work in a temporary
//! `SHORTLIST_HOME` with no network and no Python, and the commands they run most.

#![allow(dead_code)] // each test file uses its own share of these

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cmd` (the binary, or a shell that runs it) with `args`, `home` as
/// `SHORTLIST_HOME`, and the download source and the Python interpreter pointed at
/// nothing: no test reaches the network or a Python.
pub fn run_offline(cmd: &mut Command, args: &[&str], home: &Path) -> Output {
    cmd.args(args)
        .env("SHORTLIST_HOME", home)
        .env("SHORTLIST_GROUPLENS_URL", "http://127.0.0.1:1")
        .env("SHORTLIST_PYTHON", "/nonexistent/python3")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}

/// `shortlist ARGS…` offline, in `home`.
pub fn shortlist(args: &[&str], home: &Path) -> Output {
    run_offline(
        &mut Command::new(env!("CARGO_BIN_EXE_shortlist")),
        args,
        home,
    )
}

/// `shortlist eval --model MODEL --test TEST`, then `extra`.
pub fn eval_model(model: &str, test: &str, extra: &[&str], home: &Path) -> Output {
    let args = ["eval", "--model", model, "--test", test];
    shortlist(&[&args[..], extra].concat(), home)
}

/// `shortlist train KIND --train TRAIN --test TEST`, then `extra`.
pub fn train_model(kind: &str, train: &str, test: &str, extra: &[&str], home: &Path) -> Output {
    let args = ["train", kind, "--train", train, "--test", test];
    shortlist(&[&args[..], extra].concat(), home)
}

/// `shortlist data synth --users U --items I --interactions N`, then `extra`.
pub fn synth_data(
    users: &str,
    items: &str,
    interactions: &str,
    extra: &[&str],
    home: &Path,
) -> Output {
    let args = ["data", "synth", "--users", users, "--items", items];
    shortlist(
        &[&args[..], &["--interactions", interactions], extra].concat(),
        home,
    )
}

/// `shortlist COMMAND… --model MODEL`, then `extra` (predict, recommend, index tune).
pub fn on_model(command: &[&str], model: &str, extra: &[&str], home: &Path) -> Output {
    shortlist(&[command, &["--model", model], extra].concat(), home)
}

/// The report of `shortlist data info FILE --json`.
pub fn info_json(file: &str, home: &Path) -> serde_json::Value {
    json(&shortlist(&["data", "info", file, "--json"], home))
}

/// The trimmed stderr of a run that must have exited 2 (bad input).
pub fn exit_2(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// The one JSON object on stdout of a run that must have succeeded.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}
