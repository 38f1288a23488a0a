//! `shortlist data split` on the committed fixture `crates/data/tests/fixtures/split_log.tsv`
//! with the command's defaults (random, ratio 0.8, seed 42), `--method temporal` and
//! `--method leave-last-out`: `split.json` and the written files must carry the pinned SHA-256 (the
//! same values `crates/data/tests/split_fixture.rs` pins for the library). A change
//! here changes every user's split.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures/split_log.tsv")
}

/// Runs `shortlist data split FIXTURE --out DIR EXTRA…` and returns `split.json`.
fn split(out: &Path, extra: &[&str]) -> serde_json::Value {
    let fixture = fixture();
    let mut args = vec![
        "data",
        "split",
        fixture.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args(&args)
        .env("SHORTLIST_HOME", out.parent().unwrap())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("split.json")).unwrap()).unwrap()
}

fn sha256_of(path: &Path) -> String {
    shortlist_data::fetch::sha256_hex(&std::fs::read(path).unwrap())
}

#[test]
fn default_temporal_and_leave_last_out_splits_of_the_fixture_are_pinned() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra, train, test, both, rows) in [
        (
            "default",
            &[][..],
            "775acc7e2604cbc48400073243ad1bcaba64cc080ac3d2150efd31ec5281943b",
            "6893a7594bea154ef498e17ff7e906294bf09c454c391409e53ece856776abbc",
            "e39eaec46cb12d312c1d0ed80b556a17b6e534a95636cb5c440ad1190e943cae",
            (96, 24),
        ),
        (
            "temporal",
            &["--method", "temporal"][..],
            "77d0de51d6f7db215626171b6ed7e0a2f978b71f32319ab56abb5b3299dd6e39",
            "2824b5ff60b0eb6a218c6b8b49b7ff4907ea6c7aefef88b2de6115a35af6944a",
            "4af1127ec56655bf4110c220a6b9a9f0f0f72421f2848a2201daa68e57f48b18",
            (96, 24),
        ),
        (
            "leave-last-out",
            &["--method", "leave-last-out"][..],
            "1094dbe6e04461f0d1f9a965003ec8b54f133c301b9a564c462ce27893fa51e8",
            "aa5d5961a335df5c1a7a4275fa85bef4fd6c0c12ca5944191de6737a79365b09",
            "40d9a72c0941baa5cd046794679ba93cd7a07dc7c351c197e7e49c05206c2e2b",
            (108, 12),
        ),
    ] {
        let out = tmp.path().join(name);
        let record = split(&out, extra);
        assert_eq!(record["format"], "shortlist.split", "{name}");
        assert_eq!(record["train"]["sha256"], train, "{name}: train.tsv");
        assert_eq!(record["test"]["sha256"], test, "{name}: test.tsv");
        assert_eq!(record["sha256"], both, "{name}: both files");
        assert_eq!(
            (
                record["train"]["rows"].as_u64(),
                record["test"]["rows"].as_u64()
            ),
            (Some(rows.0), Some(rows.1)),
            "{name}"
        );
        // The record describes the files actually written.
        assert_eq!(sha256_of(&out.join("train.tsv")), train, "{name}");
        assert_eq!(sha256_of(&out.join("test.tsv")), test, "{name}");
    }
    let default = split(&tmp.path().join("again"), &[]);
    assert_eq!(default["method"]["method"], "random");
    assert_eq!(default["method"]["seed"], 42);
    assert_eq!(default["method"]["ratio"], 0.8);
}
