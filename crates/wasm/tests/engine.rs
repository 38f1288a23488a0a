//! The engine the WebAssembly module wraps, run natively on the pipeline's
//! committed model fixtures: its JSON answers are the pipeline's lists, and bad
//! requests and bundles are errors naming the field or file.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use shortlist_pipeline::{
    load_dir, recommend, CandidateSource, HistoryItem, Order, Ranker, Request, Stage, Stages, User,
};
use shortlist_wasm::engine::Engine;

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipeline/tests/fixtures/format-v1")
        .join(kind)
}

fn engine() -> Engine {
    let bytes = shortlist_model::bundle::pack(&[
        ("retrieval", &fixture("retrieval")),
        ("ranking", &fixture("ranking")),
    ])
    .unwrap();
    Engine::from_bundle(&bytes).unwrap()
}

fn disk() -> (Stage, Stage) {
    (
        load_dir(&fixture("retrieval")).unwrap(),
        load_dir(&fixture("ranking")).unwrap(),
    )
}

#[test]
fn recommend_answers_the_pipelines_list_as_the_servers_json() {
    let e = engine();
    let (Stage::Source(s), Stage::Ranking(r)) = disk() else {
        panic!("fixture kinds")
    };
    let history: Vec<HistoryItem<'_>> = [("i1", 1.0), ("i4", 2.5), ("i9", 1.0)]
        .into_iter()
        .map(|(item_id, strength)| HistoryItem { item_id, strength })
        .collect();
    let want = recommend(
        &Stages {
            primary: &s,
            extra: &[],
            ranker: Some(&r as &dyn Ranker),
        },
        &Request {
            user: User {
                id: "web",
                history: &history,
            },
            k: 4,
            num_candidates: 8,
            exclude_seen: true,
            exclude_items: &["i6"],
            order: Order::Rating,
        },
    )
    .unwrap();
    let got: Value = serde_json::from_str(
        &e.recommend_json(
            r#"{"user_id": "web", "history": ["i1", {"item_id": "i4", "strength": 2.5}, "i9"],
                "k": 4, "num_candidates": 8, "exclude_items": ["i6"], "order_by": "rating"}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(got["user_id"], "web");
    assert_eq!(got["known_user"], false);
    assert_eq!(got["user_path"], "history");
    assert_eq!(got["order_by"], "rating");
    let items = got["items"].as_array().unwrap();
    assert_eq!(items.len(), want.items.len());
    assert_eq!(items.len(), 4);
    for (g, w) in items.iter().zip(&want.items) {
        assert_eq!(g["item_id"], w.item_id);
        assert_eq!(g["title"].as_str(), w.title);
        // f32 → JSON → f32 is exact (shortest round-trip representation).
        assert_eq!(
            g["retrieval_score"].as_f64().unwrap() as f32,
            w.retrieval_score
        );
        let rating = g["predicted_rating"].as_f64().map(|v| v as f32);
        assert_eq!(rating, w.predicted_rating);
        assert!(g["ranking_score"].is_null(), "no relevance head");
    }
    // The default order without a relevance head is the retrieval score's.
    let got: Value =
        serde_json::from_str(&e.recommend_json(r#"{"user_id": "u0"}"#).unwrap()).unwrap();
    assert_eq!(got["order_by"], "retrieval");
    assert_eq!(got["known_user"], true);
    let r0 = s.retrieve(&User::id("u0"), 10, true, &[]).unwrap();
    let ids: Vec<&str> = got["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap())
        .collect();
    let want_ids: Vec<&str> = r0.candidates.iter().map(|c| c.item_id).collect();
    assert_eq!(ids, want_ids);
}

#[test]
fn rank_and_items_answer_as_the_models() {
    let e = engine();
    let (_, Stage::Ranking(r)) = disk() else {
        panic!("fixture kinds")
    };
    let got: Value = serde_json::from_str(
        &e.rank_json(r#"{"user_id": "u1", "item_ids": ["i3", 7, "i0"]}"#)
            .unwrap(),
    )
    .unwrap();
    let want = r.rank(&User::id("u1"), &["i3", "7", "i0"], None).unwrap();
    assert_eq!(got["order_by"], "rating");
    let items = got["items"].as_array().unwrap();
    let mut want_items: Vec<(&str, f32, bool)> = ["i3", "7", "i0"]
        .iter()
        .enumerate()
        .map(|(k, id)| (*id, want.ratings[k], !want.unknown_items.contains(&k)))
        .collect();
    want_items.sort_by(|a, b| b.1.total_cmp(&a.1));
    let got_items: Vec<(&str, f32, bool)> = items
        .iter()
        .map(|i| {
            (
                i["item_id"].as_str().unwrap(),
                i["score"].as_f64().unwrap() as f32,
                i["known_item"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_items, want_items);
    assert!(
        got_items.iter().any(|i| i.0 == "7" && !i.2),
        "7 is not an item id"
    );

    let items: Vec<(String, String)> = serde_json::from_str(&e.items_json()).unwrap();
    assert_eq!(items.len(), 17 - 1, "17 rows, one OOV slot");
    assert_eq!(items[0], ("i6".to_string(), "title 1".to_string()));
}

#[test]
fn bad_requests_and_bundles_are_errors_naming_the_field() {
    let e = engine();
    let err = |body: &str| e.recommend_json(body).unwrap_err();
    assert_eq!(err(r#"{"k": 0}"#), "k must be between 1 and 1000, got 0");
    assert_eq!(
        err(r#"{"k": 20, "num_candidates": 5}"#),
        "num_candidates (5) must be at least k (20)"
    );
    assert_eq!(
        err(r#"{"history": [{"item_id": "i1", "strength": -1}]}"#),
        "history[0].strength must be a positive number up to 1e6, got -1"
    );
    assert_eq!(
        err(r#"{"history": [{"item_id": "i1", "event": "like"}]}"#),
        "history[0].event is not available in the browser (no event table): give a strength"
    );
    assert!(
        err(r#"{"user": "42"}"#).starts_with("Malformed request body: unknown field `user`"),
        "{}",
        err(r#"{"user": "42"}"#)
    );
    assert_eq!(
        e.rank_json(r#"{"user_id": "u1"}"#).unwrap_err(),
        "Malformed request body: missing field `item_ids` at line 1 column 17"
    );
    assert_eq!(
        Engine::from_bundle(b"SLBUNDL2").err().unwrap(),
        "bundle: truncated: the file count needs 4 bytes at offset 8, the bundle has 8"
    );
    let only_ranking = shortlist_model::bundle::pack(&[("ranking", &fixture("ranking"))]).unwrap();
    assert_eq!(
        Engine::from_bundle(&only_ranking).err().unwrap(),
        "invalid bundle model: no model \"retrieval\" in the bundle (it holds: {\"ranking\"})"
    );
    // Without a ranking model the list is the candidate model's.
    let only_retrieval =
        shortlist_model::bundle::pack(&[("retrieval", &fixture("retrieval"))]).unwrap();
    let e = Engine::from_bundle(&only_retrieval).unwrap();
    let got: Value =
        serde_json::from_str(&e.recommend_json(r#"{"user_id": "u5", "k": 3}"#).unwrap()).unwrap();
    assert_eq!(got["items"].as_array().unwrap().len(), 3);
    assert!(got["items"][0]["predicted_rating"].is_null());
    assert_eq!(
        e.rank_json(r#"{"item_ids": []}"#).unwrap_err(),
        "the bundle has no ranking model"
    );
}
