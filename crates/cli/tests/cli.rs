//! Runs the real `shortlist` binary in temporary directories. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;
use std::process::{Command, Output};

fn shortlist(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args(args)
        .env("SHORTLIST_HOME", home)
        .env("SHORTLIST_GROUPLENS_URL", "http://127.0.0.1:1")
        .env("SHORTLIST_PYTHON", "/nonexistent/python3")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn synth_info_split_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synth");
    let d = dir.to_str().unwrap();
    let out = shortlist(
        &[
            "data",
            "synth",
            "--users",
            "200",
            "--items",
            "80",
            "--interactions",
            "5000",
            "--out",
            d,
            "--json",
        ],
        tmp.path(),
    );
    assert_eq!(json(&out)["interactions"], 5000);

    let info = json(&shortlist(&["data", "info", d, "--json"], tmp.path()));
    assert_eq!(info["interactions"], 5000);
    assert_eq!(info["name"], "synth");
    assert!(info["users"].as_u64().unwrap() <= 200);
    let features: Vec<&str> = info["item_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["title", "genre", "tags", "price"]);

    let split = |out_dir: &str, method: &[&str]| {
        let mut args = vec!["data", "split", d, "--out", out_dir, "--json"];
        args.extend_from_slice(method);
        json(&shortlist(&args, tmp.path()))
    };
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    let a = split(a_dir.to_str().unwrap(), &["--seed", "42"]);
    let b = split(b_dir.to_str().unwrap(), &["--seed", "42"]);
    assert_eq!(
        (a["train"].as_u64(), a["test"].as_u64()),
        (Some(4000), Some(1000))
    );
    assert_eq!(a["sha256"], b["sha256"], "same seed, same split");
    assert_eq!(
        std::fs::read(a_dir.join("train.tsv")).unwrap(),
        std::fs::read(b_dir.join("train.tsv")).unwrap()
    );
    let c = split(tmp.path().join("c").to_str().unwrap(), &["--seed", "43"]);
    assert_ne!(a["sha256"], c["sha256"]);

    // The split files load back and together hold every interaction exactly once.
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut both = lines(&a_dir.join("train.tsv"));
    both.extend(lines(&a_dir.join("test.tsv")));
    both.sort();
    let mut all = lines(&dir.join("interactions.tsv"));
    all.sort();
    assert_eq!(both, all);
    let train_info = json(&shortlist(
        &[
            "data",
            "info",
            a_dir.join("train.tsv").to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(train_info["interactions"], 4000);

    let lo = split(
        tmp.path().join("lo").to_str().unwrap(),
        &["--method", "leave-last-out", "--n", "1"],
    );
    assert_eq!(
        lo["test"].as_u64().unwrap() + lo["train"].as_u64().unwrap(),
        5000
    );
    let t = split(
        tmp.path().join("t").to_str().unwrap(),
        &["--method", "temporal", "--ratio", "0.9"],
    );
    assert_eq!(t["test"], 500);
}

#[test]
fn bad_input_exits_2_with_a_named_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, "user_id\titem_id\trating\ttimestamp\n1\t2\tfive\t3\n").unwrap();
    let out = shortlist(&["data", "info", bad.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "error: {}:2: column 3 (rating): expected a number, found \"five\"",
            bad.display()
        )
    );
    let out = shortlist(
        &["data", "info", bad.to_str().unwrap(), "--skip-bad-rows"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "nothing left after skipping");
    let out = shortlist(
        &[
            "data",
            "split",
            bad.to_str().unwrap(),
            "--ratio",
            "1.5",
            "--out",
            "x",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = shortlist(&["data", "info", "ml-999"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset \"ml-999\""));
}

#[test]
fn fetch_without_any_source_explains_what_was_tried() {
    let tmp = tempfile::tempdir().unwrap();
    let out = shortlist(&["data", "fetch", "ml-100k"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fetching ml-100k: every source failed"),
        "{err}"
    );
    assert!(err.contains("recbole==1.2.1 wheel via pip: "), "{err}");
    assert!(!tmp.path().join("datasets").join("ml-100k").exists());
}
