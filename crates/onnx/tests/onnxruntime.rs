//! The exported graphs run in ONNX Runtime (Python, `scripts/onnx/ort_check.py`) give
//! our predictions within 1e-5 relative on 10,000 raw-id pairs per ranking model
//! (unknown ids included, mapped to rows by the script from the exported JSON alone)
//! and our tower vectors exactly, and the new-item tower's vectors within 1e-5 of
//! each vector's largest component on 1,000 new items' raw side features (mapped to
//! inputs by the script from the JSON alone). Skipped, saying so, when `$SHORTLIST_PYTHON`
//! (default `python3`) has no `onnxruntime`; with `SHORTLIST_ONNX_REQUIRE_ORT=1` (what
//! `.ci/run` sets when it found onnxruntime) a skip is a failure.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use common::{write_export, PAIRS};
use serde_json::json;
use shortlist_model::attributes::RawValue;
use shortlist_model::{RankingModel, RetrievalModel};

fn write_ranking(model: &RankingModel, dir: &Path, name: &str, seed: u64) {
    write_export(&shortlist_onnx::export_ranking(model).unwrap(), dir, name);
    let pairs = common::raw_pairs(
        model.spec.user_id.values(),
        model.spec.item_id.values(),
        PAIRS,
        seed,
    );
    let mut text = String::new();
    for (u, i) in &pairs {
        writeln!(text, "{u}\t{i}\t{}", model.predict_raw(u, i).rating).unwrap();
    }
    std::fs::write(dir.join(format!("{name}.pairs.tsv")), text).unwrap();
}

fn write_retrieval(model: &RetrievalModel, dir: &Path, name: &str, seed: u64) {
    write_export(&shortlist_onnx::export_retrieval(model).unwrap(), dir, name);
    let pairs = common::raw_pairs(
        model.spec.user_id.values(),
        model.spec.item_id.values(),
        2000,
        seed,
    );
    let mut v = vec![0.0; model.dim()];
    let mut text = String::new();
    let join = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    for (u, i) in &pairs {
        model.query_into(model.user_row(u).0, &mut v);
        writeln!(text, "user\t{u}\t{}", join(&v)).unwrap();
        model.candidate_into(model.spec.item_id.index(i), &mut v);
        writeln!(text, "item\t{i}\t{}", join(&v)).unwrap();
    }
    std::fs::write(dir.join(format!("{name}.vectors.tsv")), text).unwrap();
    // New items: their raw side features and our vector of each.
    let items = common::new_items(model, 1000, seed + 100);
    let mut lines = String::new();
    for (item, vector) in items.iter().zip(common::new_item_vectors(model, &items)) {
        let features: serde_json::Map<String, serde_json::Value> = item
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    RawValue::Label(l) => json!(l),
                    RawValue::Labels(ls) => json!(ls),
                    RawValue::Number(x) => json!(x),
                };
                (n.clone(), v)
            })
            .collect();
        writeln!(lines, "{}", json!({"features": features, "vector": vector})).unwrap();
    }
    std::fs::write(dir.join(format!("{name}.new_items.jsonl")), lines).unwrap();
}

#[test]
fn onnxruntime_predicts_as_we_do() {
    let python = std::env::var("SHORTLIST_PYTHON").unwrap_or_else(|_| "python3".into());
    let required = std::env::var("SHORTLIST_ONNX_REQUIRE_ORT").is_ok_and(|v| v == "1");
    let probe = Command::new(&python)
        .args(["-c", "import onnxruntime, numpy"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let msg = format!(
            "skipped: {python} cannot import onnxruntime and numpy (pip install onnxruntime onnx; \
             set SHORTLIST_PYTHON to a Python that has them)"
        );
        assert!(!required, "SHORTLIST_ONNX_REQUIRE_ORT=1 but {msg}");
        eprintln!("{msg}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_ranking(&common::ranking_full(), dir, "ranking-full", 11);
    write_ranking(&common::ranking_click_cross(), dir, "ranking-click", 12);
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/tests/fixtures/format-v1");
    write_ranking(
        &RankingModel::load(&base.join("ranking")).unwrap(),
        dir,
        "fixture-ranking",
        13,
    );
    write_retrieval(&common::retrieval(), dir, "retrieval", 14);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/onnx/ort_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script:?} failed: {stdout}");
    // Every model was checked.
    for name in [
        "ranking-full:",
        "ranking-click:",
        "fixture-ranking:",
        "retrieval query",
        "retrieval candidate tower",
        "retrieval candidate_features",
    ] {
        assert!(stdout.contains(name), "{name} missing from: {stdout}");
    }
    assert!(stdout.contains("all equal"));
}
