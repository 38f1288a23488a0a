//! `shortlist export bundle` on the pipeline's committed model fixtures: the file
//! holds the latest versions, packed as `shortlist_model::bundle::pack` packs them;
//! a base path without the model is bad input (exit 2) naming the directory.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::shortlist;

/// `shortlist export WHAT ARGS…`.
fn export(what: &str, args: &[&str]) -> Output {
    shortlist(&[&["export", what], args].concat())
}

/// The JSON report of a run that must have succeeded.
fn json_report(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A JSON file written by the run.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A temporary directory with a base path `models` holding copies of the committed
/// fixtures as `(kind, version)`.
fn base_path(versions: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("models");
    for (kind, version) in versions {
        copy_fixture(&base, kind, version);
    }
    (tmp, base)
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
    let (tmp, base) = base_path(&[("retrieval", "2"), ("retrieval", "10"), ("ranking", "1")]);
    let out = tmp.path().join("demo.bundle");
    let (b, out_s) = (base.to_str().unwrap(), out.to_str().unwrap());
    let report = json_report(&export(
        "bundle",
        &["--model-base-path", b, "--out", out_s, "--json"],
    ));
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
    let o = export("bundle", &["--model-base-path", b, "--out", out_s]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!(
            "error: {}: no such model directory (expected BASE/ranking/<version>/)",
            base.join("ranking").display()
        )
    );
    // `--ranking ""` packs the candidate model alone.
    let report = json_report(&export(
        "bundle",
        &[
            "--model-base-path",
            b,
            "--ranking",
            "",
            "--out",
            out_s,
            "--json",
        ],
    ));
    assert_eq!(report["files"], 4);
}

#[test]
fn export_onnx_writes_the_graphs_and_the_features_json_beside_them() {
    let (tmp, base) = base_path(&[("ranking", "3"), ("retrieval", "1")]);
    // A model directory: its latest version is exported.
    let out = tmp.path().join("rank.onnx");
    let ranking_dir = base.join("ranking");
    let (m, o) = (ranking_dir.to_str().unwrap(), out.to_str().unwrap());
    let report = json_report(&export("onnx", &["--model", m, "--out", o, "--json"]));
    assert_eq!(report["kind"], "ranking");
    assert_eq!(
        report["model"],
        base.join("ranking/3").display().to_string()
    );
    let model = shortlist_model::RankingModel::load(&base.join("ranking/3")).unwrap();
    let want = shortlist_onnx::export_ranking(&model).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), want.graphs[0].bytes);
    assert_eq!(report["files"][0]["bytes"], want.graphs[0].bytes.len());
    let json = read_json(&tmp.path().join("rank.features.json"));
    assert_eq!(json["graphs"][0]["file"], "rank.onnx");
    assert_eq!(json["graphs"][0]["inputs"][1]["name"], "item");
    assert_eq!(
        json["feature_spec"]["item_id"],
        serde_json::to_value(&model.spec.item_id).unwrap()
    );

    // A retrieval version: two towers named after the stem, the new-item tower (the
    // fixture has item side features), and the JSON.
    let (retrieval_dir, two) = (base.join("retrieval/1"), tmp.path().join("two.onnx"));
    let (m, t) = (retrieval_dir.to_str().unwrap(), two.to_str().unwrap());
    let o = export("onnx", &["--model", m, "--out", t]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "two.query.onnx",
        "two.candidate.onnx",
        "two.candidate_features.onnx",
        "two.features.json",
    ] {
        assert!(tmp.path().join(f).is_file(), "{f} missing");
    }
    assert!(!tmp.path().join("two.onnx").exists());
    let json = read_json(&tmp.path().join("two.features.json"));
    assert_eq!(json["graphs"][1]["file"], "two.candidate.onnx");
    assert_eq!(json["graphs"][2]["file"], "two.candidate_features.onnx");
    let (tower, _) = shortlist_model::RetrievalModel::load(&base.join("retrieval/1")).unwrap();
    assert_eq!(json["graphs"][1]["outputs"][0]["shape"][1], tower.dim());

    // Bad input: named, exit 2, nothing written.
    let bad = |args: &[&str]| {
        let o = export("onnx", args);
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

#[test]
fn export_compact_writes_loadable_8_bit_copies_of_the_latest_versions() {
    let (tmp, base) = base_path(&[("retrieval", "2"), ("retrieval", "10"), ("ranking", "1")]);
    let out = tmp.path().join("compact");
    let (b, out_s) = (base.to_str().unwrap(), out.to_str().unwrap());
    let report = json_report(&export(
        "compact",
        &["--model-base-path", b, "--out", out_s, "--json"],
    ));
    let retrieval = &report["models"]["retrieval"];
    assert_eq!(retrieval["version"], 10);
    assert_eq!(
        retrieval["left_out"],
        serde_json::json!(["index.safetensors"])
    );
    assert_eq!(report["models"]["ranking"]["version"], 1);
    // The fixtures' tensors are below the 4,096 values quantised: only ids shrink.
    for (name, version) in [("retrieval", "10"), ("ranking", "1")] {
        let dir = out.join(name).join(version);
        let written = report["models"][name]["bytes_after"].as_u64().unwrap();
        let on_disk: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(written, on_disk, "{name}");
        assert!(written < report["models"][name]["bytes_before"].as_u64().unwrap());
        shortlist_pipeline::load_dir(&dir).unwrap();
    }
    assert!(!out.join("retrieval/2").exists());
    // The copies bundle like any model.
    let bundle = tmp.path().join("compact.bundle");
    let o = export(
        "bundle",
        &[
            "--model-base-path",
            out_s,
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Bad input: exit 2 and a message naming the flag or the directory.
    let bad = |args: &[&str]| {
        let o = export("compact", args);
        assert_eq!(o.status.code(), Some(2));
        String::from_utf8_lossy(&o.stderr).trim().to_string()
    };
    assert_eq!(
        bad(&["--model-base-path", b, "--out", out_s, "--ease-keep", "0"]),
        "error: --ease-keep must be at least 1"
    );
    assert_eq!(
        bad(&["--model-base-path", b, "--out", b]),
        format!(
            "error: --out {b} is the model base path itself: write the compact copies elsewhere"
        )
    );
    let missing = tmp.path().join("missing");
    let m = missing.to_str().unwrap();
    let err = bad(&["--model-base-path", m, "--out", out_s]);
    assert!(
        err.starts_with(&format!("error: {m}: "))
            && err.ends_with("(expected a model base directory, BASE/<name>/<version>/)"),
        "{err}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.to_str().unwrap();
    assert_eq!(
        bad(&["--model-base-path", e, "--out", out_s]),
        format!("error: {e}: no model in it (expected BASE/<name>/<version>/)")
    );
}
