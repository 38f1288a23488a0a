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

#[test]
fn export_onnx_writes_the_graphs_and_the_features_json_beside_them() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("models");
    copy_fixture(&base, "ranking", "3");
    copy_fixture(&base, "retrieval", "1");
    // A model directory: its latest version is exported.
    let out = tmp.path().join("rank.onnx");
    let o = shortlist(&[
        "export",
        "onnx",
        "--model",
        base.join("ranking").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["kind"], "ranking");
    assert_eq!(
        report["model"],
        base.join("ranking/3").display().to_string()
    );
    let model = shortlist_model::RankingModel::load(&base.join("ranking/3")).unwrap();
    let want = shortlist_onnx::export_ranking(&model).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), want.graphs[0].bytes);
    assert_eq!(report["files"][0]["bytes"], want.graphs[0].bytes.len());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("rank.features.json")).unwrap())
            .unwrap();
    assert_eq!(json["graphs"][0]["file"], "rank.onnx");
    assert_eq!(json["graphs"][0]["inputs"][1]["name"], "item");
    assert_eq!(
        json["feature_spec"]["item_id"],
        serde_json::to_value(&model.spec.item_id).unwrap()
    );

    // A retrieval version: two towers named after the stem, and the JSON.
    let o = shortlist(&[
        "export",
        "onnx",
        "--model",
        base.join("retrieval/1").to_str().unwrap(),
        "--out",
        tmp.path().join("two.onnx").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["two.query.onnx", "two.candidate.onnx", "two.features.json"] {
        assert!(tmp.path().join(f).is_file(), "{f} missing");
    }
    assert!(!tmp.path().join("two.onnx").exists());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("two.features.json")).unwrap())
            .unwrap();
    assert_eq!(json["graphs"][1]["file"], "two.candidate.onnx");
    let (tower, _) = shortlist_model::RetrievalModel::load(&base.join("retrieval/1")).unwrap();
    assert_eq!(json["graphs"][1]["outputs"][0]["shape"][1], tower.dim());

    // Bad input: named, exit 2, nothing written.
    let bad = |args: &[&str]| {
        let mut all = vec!["export", "onnx"];
        all.extend_from_slice(args);
        let o = shortlist(&all);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).trim().to_owned()
    };
    let ranking = base.join("ranking/3");
    let r = ranking.to_str().unwrap();
    let no_suffix = tmp.path().join("model.bin");
    assert_eq!(
        bad(&["--model", r, "--out", no_suffix.to_str().unwrap()]),
        format!(
            "error: --out {}: expected a file name ending in .onnx",
            no_suffix.display()
        )
    );
    assert!(!no_suffix.exists());
    let missing = tmp.path().join("nothing");
    assert_eq!(
        bad(&[
            "--model",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap()
        ]),
        format!(
            "error: {}: no such model directory (expected BASE/<name>/<version>/ or BASE/<name>/)",
            missing.display()
        )
    );
    assert_eq!(
        bad(&["--model", base.to_str().unwrap(), "--out", out.to_str().unwrap()]),
        format!(
            "error: {}: neither a model version (no manifest.json) nor a model directory (no integer version directory in it)",
            base.display()
        )
    );
}
