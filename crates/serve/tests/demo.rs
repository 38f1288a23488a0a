//! `/demo` over the real loader and the pipeline's committed model fixtures: the
//! page and script, the catalogue, the bundle of the served versions (which loads
//! and answers as the server does), and the WebAssembly files' absence explained.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{start_real, Client};
use serde_json::json;
use shortlist_pipeline::{load_files, recommend, Order, Request, Stage, Stages, User};

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipeline/tests/fixtures/format-v1")
        .join(kind)
}

/// `base/<kind>/<version>/` as a copy of the fixture.
fn copy_fixture(base: &Path, kind: &str, version: u64) {
    let dir = base.join(kind).join(version.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture(kind)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_page_catalogue_and_a_bundle_of_the_served_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("models");
    copy_fixture(&base, "retrieval", 3);
    copy_fixture(&base, "ranking", 1);
    // No WebAssembly build here: the page must say how to build it.
    let empty = tmp.path().join("no-wasm");
    std::env::set_var("SHORTLIST_DEMO_WASM_DIR", &empty);
    let (addr, stop, _task) = start_real(&base).await;
    let mut c = Client::connect(addr).await;

    let page = c.get("/demo").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .text()
        .contains(r#"<script type="module" src="/demo/demo.js">"#));
    let script = c.get("/demo/demo.js").await;
    assert_eq!(script.status, 200);
    assert!(script.text().contains("\"/v1/recommend\""));

    let status = c.get("/demo/status").await.json();
    assert_eq!(status["wasm"], false);
    assert_eq!(status["wasm_dir"], empty.display().to_string());
    assert_eq!(status["build"], "scripts/wasm/build.sh");
    assert_eq!(status["models"], json!({"retrieval": 3, "ranking": 1}));
    let wasm = c.get("/demo/shortlist_wasm_bg.wasm").await;
    assert_eq!(wasm.status, 404);
    let msg = wasm.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("build it with scripts/wasm/build.sh"), "{msg}");
    assert_eq!(c.get("/demo/secret.txt").await.status, 404);

    // The catalogue: the fixture's 16 items with ids (row 0 is the OOV slot).
    let items = c.get("/demo/items").await.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 16);
    assert_eq!(items[0], json!(["i6", "title 1"]));

    // The bundle holds the served versions and answers as /v1/recommend does.
    let resp = c.get("/demo/bundle").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    let want = shortlist_model::bundle::pack(&[
        ("retrieval", &base.join("retrieval/3")),
        ("ranking", &base.join("ranking/1")),
    ])
    .unwrap();
    assert_eq!(resp.body, want);
    let files = Arc::new(shortlist_model::bundle::unpack(&resp.body).unwrap());
    let stages = [
        load_files(&shortlist_model::bundle::open(&files, "retrieval").unwrap()).unwrap(),
        load_files(&shortlist_model::bundle::open(&files, "ranking").unwrap()).unwrap(),
    ];
    let (Stage::Source(s), Stage::Ranking(r)) = (&stages[0], &stages[1]) else {
        panic!("bundle kinds");
    };
    let history = [shortlist_pipeline::HistoryItem {
        item_id: "i4",
        strength: 1.0,
    }];
    let local = recommend(
        &Stages {
            primary: s,
            extra: &[],
            ranker: Some(r),
        },
        &Request {
            user: User {
                id: "web",
                history: &history,
            },
            k: 5,
            num_candidates: 10,
            exclude_seen: true,
            exclude_items: &[],
            order: Order::Auto,
        },
    )
    .unwrap();
    let served = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "web", "history": ["i4"], "k": 5, "num_candidates": 10}),
        )
        .await
        .json();
    let served_ids: Vec<&str> = served["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap())
        .collect();
    let local_ids: Vec<&str> = local.items.iter().map(|i| i.item_id).collect();
    assert_eq!(served_ids, local_ids);
    assert!(!local_ids.is_empty());
    let _ = stop.send(());
}
