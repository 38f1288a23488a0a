//! The exported graphs run in tract (an independent ONNX runtime in Rust) give our
//! predictions: 10,000 random raw-id pairs per model, unknown ids included, mapped to
//! input rows by the rule and vocabularies of the exported features JSON; the towers'
//! vectors are ours exactly.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{rel, row_from_json, write_export, PAIRS};
use serde_json::Value;
use shortlist_model::{RankingModel, RetrievalModel};
use tract_onnx::prelude::*;

type Plan = TypedSimplePlan<TypedModel>;

/// The graph in `file`, optimised for `n`-row int64 inputs.
fn load(file: &Path, inputs: usize, n: usize) -> Plan {
    let mut m = tract_onnx::onnx().model_for_path(file).unwrap();
    for k in 0..inputs {
        m = m
            .with_input_fact(k, InferenceFact::dt_shape(i64::datum_type(), tvec!(n)))
            .unwrap();
    }
    m.into_optimized().unwrap().into_runnable().unwrap()
}

fn run(plan: &Plan, inputs: &[Vec<i64>]) -> Vec<f32> {
    let inputs: TVec<TValue> = inputs
        .iter()
        .map(|v| Tensor::from(tract_ndarray::Array1::from_vec(v.clone())).into())
        .collect();
    let out = plan.run(inputs).unwrap();
    out[0]
        .to_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// `PAIRS` raw (user, item) id pairs over the vocabularies `users` and `items`, and
/// each side's input rows by the rule of the exported features JSON.
fn pairs_and_rows(
    users: &[String],
    items: &[String],
    json: &Value,
    seed: u64,
) -> (Vec<(String, String)>, Vec<i64>, Vec<i64>) {
    let pairs = common::raw_pairs(users, items, PAIRS, seed);
    let users: Vec<i64> = pairs
        .iter()
        .map(|(u, _)| row_from_json(json, "user_id", u))
        .collect();
    let items: Vec<i64> = pairs
        .iter()
        .map(|(_, i)| row_from_json(json, "item_id", i))
        .collect();
    (pairs, users, items)
}

fn check_ranking(model: &RankingModel, seed: u64) -> f64 {
    check_ranking_graph(model, seed, None)
}

/// Checks the export of `model`, its graph replaced by `graph` when given.
fn check_ranking_graph(model: &RankingModel, seed: u64, graph: Option<Vec<u8>>) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut e = shortlist_onnx::export_ranking(model).unwrap();
    if let Some(g) = graph {
        e.graphs[0].bytes = g;
    }
    let json = write_export(&e, dir.path(), "ranking");
    let (pairs, users, items) = pairs_and_rows(
        model.spec.user_id.values(),
        model.spec.item_id.values(),
        &json,
        seed,
    );
    let oov = pairs
        .iter()
        .filter(|(u, i)| model.spec.user_id.get(u).is_none() || model.spec.item_id.get(i).is_none())
        .count();
    assert!(oov > PAIRS / 20, "{oov} pairs with an unknown id");
    let plan = load(&dir.path().join("ranking.onnx"), 2, PAIRS);
    let got = run(&plan, &[users, items]);
    let mut worst = 0f64;
    for ((u, i), g) in pairs.iter().zip(&got) {
        let want = model.predict_raw(u, i).rating;
        let r = rel(*g, want);
        assert!(r <= 1e-5, "({u}, {i}): tract {g}, ours {want}");
        worst = worst.max(r);
    }
    worst
}

#[test]
fn ranking_with_ensemble_autorec_implicit_and_side_features_matches_ours_in_tract() {
    let model = common::ranking_full();
    let worst = check_ranking(&model, 1);
    eprintln!("ranking (full): worst relative difference {worst:.2e}");
}

#[test]
fn the_graph_built_from_the_features_predicts_as_the_compact_one() {
    // The full model's members carry scoring caches, so its export is the compact
    // graph; the graph built from the features (what cross-layer models get) must
    // give the same predictions.
    let model = common::ranking_full();
    assert!(model.scoring_cache().is_some());
    let compact = shortlist_onnx::ranking::graph(&model).unwrap();
    let full = shortlist_onnx::ranking::graph_with(&model, false).unwrap();
    assert_ne!(compact, full);
    check_ranking_graph(&model, 6, Some(full));
}

#[test]
fn click_model_with_cross_layers_matches_ours_in_tract() {
    let model = common::ranking_click_cross();
    let worst = check_ranking(&model, 2);
    eprintln!("ranking (click, cross): worst relative difference {worst:.2e}");
}

#[test]
fn committed_fixture_models_match_ours_in_tract() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/tests/fixtures/format-v1");
    let model = RankingModel::load(&base.join("ranking")).unwrap();
    check_ranking(&model, 3);
    let (model, _) = RetrievalModel::load(&base.join("retrieval")).unwrap();
    check_towers(&model, 4);
}

fn check_towers(model: &RetrievalModel, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let e = shortlist_onnx::export_retrieval(model).unwrap();
    let json: Value = write_export(&e, dir.path(), "retrieval");
    let (pairs, users, items) = pairs_and_rows(
        model.spec.user_id.values(),
        model.spec.item_id.values(),
        &json,
        seed,
    );
    let d = model.dim();
    let q = run(
        &load(&dir.path().join("retrieval.query.onnx"), 1, PAIRS),
        std::slice::from_ref(&users),
    );
    let c = run(
        &load(&dir.path().join("retrieval.candidate.onnx"), 1, PAIRS),
        std::slice::from_ref(&items),
    );
    let (mut want_q, mut want_c) = (vec![0.0; d], vec![0.0; d]);
    for (k, (u, i)) in pairs.iter().enumerate() {
        let (ur, _) = model.user_row(u);
        model.query_into(ur, &mut want_q);
        model.candidate_into(model.spec.item_id.index(i), &mut want_c);
        assert_eq!(&q[k * d..(k + 1) * d], &want_q[..], "query of {u}");
        assert_eq!(&c[k * d..(k + 1) * d], &want_c[..], "candidate of {i}");
        // The score a caller computes from the two towers.
        let score: f32 = want_q.iter().zip(&want_c).map(|(a, b)| a * b).sum();
        let got: f32 = q[k * d..(k + 1) * d]
            .iter()
            .zip(&c[k * d..(k + 1) * d])
            .map(|(a, b)| a * b)
            .sum();
        assert_eq!(score, got);
    }
}

#[test]
fn retrieval_towers_are_ours_exactly_in_tract() {
    check_towers(&common::retrieval(), 5);
}

/// Runs the new-item graph on `inputs` (in its input order).
fn run_features(file: &Path, inputs: &[common::FeatureTensor]) -> Vec<f32> {
    use common::FeatureTensor;
    let mut m = tract_onnx::onnx().model_for_path(file).unwrap();
    let mut values: TVec<TValue> = TVec::new();
    for (k, t) in inputs.iter().enumerate() {
        let (fact, value): (InferenceFact, Tensor) = match t {
            FeatureTensor::Bag { rows, n, len } => (
                InferenceFact::dt_shape(i64::datum_type(), tvec!(*n, *len)),
                tract_ndarray::Array2::from_shape_vec((*n, *len), rows.clone())
                    .unwrap()
                    .into(),
            ),
            FeatureTensor::Number(x) => (
                InferenceFact::dt_shape(f64::datum_type(), tvec!(x.len())),
                tract_ndarray::Array1::from_vec(x.clone()).into(),
            ),
        };
        m = m.with_input_fact(k, fact).unwrap();
        values.push(value.into());
    }
    let plan = m.into_optimized().unwrap().into_runnable().unwrap();
    let out = plan.run(values).unwrap();
    out[0]
        .to_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn new_item_candidate_vectors_from_side_features_match_ours_in_tract() {
    let model = common::retrieval();
    let dir = tempfile::tempdir().unwrap();
    let e = shortlist_onnx::export_retrieval(&model).unwrap();
    let json = write_export(&e, dir.path(), "retrieval");
    let graph = &json["graphs"][2];
    assert_eq!(graph["role"], "candidate_features");
    // One input per item side feature: title (text), genre, tags, price.
    let names: Vec<&str> = graph["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["title", "genre", "tags", "price"]);
    let items = common::new_items(&model, 2_000, 21);
    let want = common::new_item_vectors(&model, &items);
    let got = run_features(
        &dir.path().join("retrieval.candidate_features.onnx"),
        &common::feature_tensors(&json, &items),
    );
    let d = model.dim();
    assert_eq!(got.len(), items.len() * d);
    let mut worst = 0f64;
    for (k, w) in want.iter().enumerate() {
        let g = &got[k * d..(k + 1) * d];
        let scale = w.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-3);
        for (a, b) in g.iter().zip(w) {
            let r = f64::from((a - b).abs() / scale);
            assert!(
                r <= 1e-5,
                "item {k} {:?}: tract {g:?}, ours {w:?}",
                items[k]
            );
            worst = worst.max(r);
        }
    }
    eprintln!("new items: worst difference {worst:.2e} of the vector's largest component");
}
