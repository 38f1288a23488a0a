//! `shortlist export bundle` on the pipeline's committed model fixtures: the file
//! holds the latest versions, packed as `shortlist_model::bundle::pack` packs them;
//! a base path without the model is bad input (exit 2) naming the directory.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shortlist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipeline/tests/fixtures/format-v1")
        .join(kind)
}

fn copy_fixture(base: &Path, kind: &str, version: &str) {
    let dir = base.join(kind).join(version);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture(kind)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
}

#[test]
fn export_bundle_packs_the_latest_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("models");
    copy_fixture(&base, "retrieval", "2");
    copy_fixture(&base, "retrieval", "10");
    copy_fixture(&base, "ranking", "1");
    let out = tmp.path().join("demo.bundle");
    let o = shortlist(&[
        "export",
        "bundle",
        "--model-base-path",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["models"]["retrieval"]["version"], 10);
    assert_eq!(report["models"]["ranking"]["version"], 1);
    assert_eq!(report["files"], 7);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(report["bytes"], bytes.len());
    let want = shortlist_model::bundle::pack(&[
        ("retrieval", &base.join("retrieval/10")),
        ("ranking", &base.join("ranking/1")),
    ])
    .unwrap();
    assert_eq!(bytes, want);

    // No ranking model under the base path: bad input naming the directory.
    std::fs::remove_dir_all(base.join("ranking")).unwrap();
    let o = shortlist(&[
        "export",
        "bundle",
        "--model-base-path",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!(
            "error: {}: no such model directory (expected BASE/ranking/<version>/)",
            base.join("ranking").display()
        )
    );
    // `--ranking ""` packs the candidate model alone.
    let o = shortlist(&[
        "export",
        "bundle",
        "--model-base-path",
        base.to_str().unwrap(),
        "--ranking",
        "",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["files"], 4);
}
