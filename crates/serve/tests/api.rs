//! Every endpoint over real HTTP on 127.0.0.1, with fake models.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ranking_spec, retrieval_spec, start_ready, write_version, TestServer};
use serde_json::{json, Value};

fn assert_json_error(r: &common::Resp, status: u16, contains: &str) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "body: {}",
        r.text()
    );
    let v = r.json();
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string in {v}"));
    assert!(
        msg.contains(contains),
        "error {msg:?} does not contain {contains:?}"
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "extra keys in {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_status_and_metadata() {
    let s = TestServer::start_default().await;
    let mut c = s.client().await;

    let r = c.get("/v1/models/ranking").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]})
    );
    let r = c.get("/v1/models/ranking/versions/1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model_version_status"][0]["version"], "1");

    let r = c.get("/v1/models/retrieval/metadata").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v["model_spec"],
        json!({"name": "retrieval", "signature_name": "", "version": "1"})
    );
    let sig = &v["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["method_name"], "tensorflow/serving/predict");
    assert_eq!(sig["inputs"]["input_1"]["dtype"], "DT_STRING");
    assert_eq!(
        sig["outputs"]["output_2"]["tensor_shape"]["dim"][1]["size"],
        "3"
    );
    let r = c.get("/v1/models/ranking/versions/1/metadata").await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
            ["user_id"]
            .is_object()
    );

    // Unknown model and version: TF Serving's wording.
    for (path, status, contains) in [
        ("/v1/models/nope", 404, "Could not find any versions of model nope"),
        ("/v1/models/ranking/versions/7", 404, "Could not find version 7 of model ranking"),
        ("/v1/models/nope/metadata", 404, "Servable not found for request: Latest(nope)"),
        // After TF Serving's words, what the base path lacks and what is loaded; an
        // absolute base path is never shown to clients, so it reads ".".
        ("/v1/models/nope/metadata", 404, "Servable not found for request: Latest(nope). The model base path . has no model \"nope\" (expected ./nope/<version>); models loaded: ranking, retrieval"),
        ("/v1/models/ranking/versions/7/metadata", 404, "Servable not found for request: Specific(ranking, 7)"),
        ("/v1/models/ranking/versions/x", 400, "Failed to convert version: x to numeric."),
    ] {
        assert_json_error(&c.get(path).await, status, contains);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_row_and_columnar() {
    let s = TestServer::start_default().await;
    let mut c = s.client().await;

    // The seed tutorial's request against a retrieval model.
    let r = c
        .post(
            "/v1/models/retrieval:predict",
            &json!({"instances": ["42"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"predictions": [{"output_1": [9.0, 8.0, 5.0], "output_2": ["5", "4", "1"]}]})
    );
    // Seen items are not excluded by :predict (TFRS's layer does not either); an
    // unknown user gets the popularity fallback; an integer id works too.
    let r = c
        .post(
            "/v1/models/retrieval/versions/1:predict",
            &json!({"instances": [42, "7"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["predictions"][1]["output_2"], json!(["1", "2", "3"]));

    // Columnar: a list of instances, and an object of named lists.
    let r = c
        .post(
            "/v1/models/retrieval:predict",
            &json!({"inputs": ["42", "7"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"outputs": {
            "output_1": [[9.0, 8.0, 5.0], [5.0, 4.0, 3.0]],
            "output_2": [["5", "4", "1"], ["1", "2", "3"]]
        }})
    );
    let r = c
        .post(
            "/v1/models/ranking:predict",
            &json!({"inputs": {"user_id": ["42", "42"], "movie_title": ["3", "4"]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"outputs": [[5.0], [1.0]]}));
    // An unknown item id is scored (a new item); an unknown title is an error.
    let r = c
        .post(
            "/v1/models/ranking:predict",
            &json!({"instances": [{"user_id": "42", "item_id": "9"}]}),
        )
        .await;
    assert_eq!(r.json(), json!({"predictions": [[3.0]]}));
    assert_json_error(
        &c.post(
            "/v1/models/ranking:predict",
            &json!({"instances": [{"user_id": "42", "item_id": "2"}, {"user_id": "42", "movie_title": "Spede (1994)"}]}),
        )
        .await,
        400,
        "instances[1].movie_title: \"Spede (1994)\" is not a title of the model's catalogue (titles match exactly, e.g. \"Speed (1994)\"; an unknown item_id is scored as a new item instead)",
    );

    let r = c
        .post(
            "/v1/models/ranking:predict",
            &json!({"signature_name": "serving_default", "instances": [{"user_id": "42", "item_id": "2"}, {"user_id": 1, "movie_id": 4}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"predictions": [[4.5], [3.0]]}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_errors() {
    let s = start_ready(
        &[
            ("retrieval", &retrieval_spec(0.0)),
            ("ranking", &ranking_spec(0.0)),
        ],
        |c| c.max_instances = 2,
    )
    .await;
    let mut c = s.client().await;

    assert_json_error(
        &c.post_raw("/v1/models/ranking:predict", b"{\"instances\": [")
            .await,
        400,
        "JSON Parse error",
    );
    // A key given twice is refused (serde_json's Value would keep the last one).
    assert_json_error(
        &c.post_raw(
            "/v1/models/ranking:predict",
            br#"{"instances": [{"user_id": "1", "item_id": "2", "user_id": "3"}]}"#,
        )
        .await,
        400,
        "JSON Parse error: duplicate key \"user_id\" at line 1 column 57",
    );
    assert_json_error(
        &c.post_raw("/v1/models/ranking:predict", b"[1]").await,
        400,
        "must be a JSON object",
    );
    for (body, status, contains) in [
        (
            json!({"x": 1}),
            400,
            "Missing \"inputs\" or \"instances\" key",
        ),
        (
            json!({"inputs": [], "instances": []}),
            400,
            "only one of \"inputs\" or \"instances\"",
        ),
        (
            json!({"instances": "42"}),
            400,
            "instances: expected a list",
        ),
        (
            json!({"instances": [{"user_id": "42"}]}),
            400,
            "instances[0]: missing field \"item_id\"",
        ),
        (
            json!({"instances": [{"user_id": "1", "item_id": "1"}, {"user_id": true, "item_id": "1"}]}),
            400,
            "instances[1].user_id: expected a string or integer id, got a boolean",
        ),
    ] {
        assert_json_error(
            &c.post("/v1/models/ranking:predict", &body).await,
            status,
            contains,
        );
    }
    for (path, body, status, contains) in [
        (
            "/v1/models/retrieval:predict",
            json!({"instances": [1.5]}),
            400,
            "instances[0]",
        ),
        (
            "/v1/models/ranking:predict",
            json!({"inputs": {"user_id": ["1"], "item_id": ["1", "2"]}}),
            400,
            "same length",
        ),
        (
            "/v1/models/retrieval:predict",
            json!({"instances": ["1", "2", "3"]}),
            400,
            "instances: 3 instances exceed the limit of 2",
        ),
        (
            "/v1/models/retrieval:predict",
            json!({"signature_name": "other", "instances": ["1"]}),
            400,
            "Serving signature name: \"other\" not found",
        ),
        (
            "/v1/models/nope:predict",
            json!({"instances": ["1"]}),
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "/v1/models/retrieval/versions/9:predict",
            json!({"instances": ["1"]}),
            404,
            "Servable not found for request: Specific(retrieval, 9)",
        ),
        (
            "/v1/models/retrieval:classify",
            json!({"instances": ["1"]}),
            501,
            ":classify",
        ),
        (
            "/v1/models/retrieval",
            json!({"instances": ["1"]}),
            400,
            "Malformed request: POST /v1/models/retrieval",
        ),
    ] {
        assert_json_error(&c.post(path, &body).await, status, contains);
    }
    assert_json_error(&c.get("/v1/other").await, 400, "Malformed request");
    assert_json_error(&c.get("/nothing/here").await, 404, "Not found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_two_stage() {
    let s = TestServer::start_default().await;
    let mut c = s.client().await;

    // Retrieval (user 42, seen "1" excluded): 5:9, 4:8, 2:4, 3:3. Ranking: 3:5, 2:4.5, 5:2, 4:1.
    let r = c
        .post("/v1/recommend", &json!({"user_id": "42", "k": 3}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({
            "user_id": "42",
            "known_user": true,
            "user_path": "known",
            "order_by": "relevance",
            "model_versions": {"retrieval": 1, "ranking": 1},
            "items": [
                {"item_id": "3", "title": "Heat (1995)", "retrieval_score": 3.0, "ranking_score": 5.0, "predicted_rating": 5.0},
                {"item_id": "2", "title": "Jumanji (1995)", "retrieval_score": 4.0, "ranking_score": 4.5, "predicted_rating": 4.5},
                {"item_id": "5", "title": "Babe (1995)", "retrieval_score": 9.0, "ranking_score": 2.0, "predicted_rating": 2.0}
            ]
        })
    );
    // History: bad entries are named; good ones reach the models (the fakes ignore them).
    for (body, status, contains) in [
        (json!({"user_id": "42", "history": [{"item_id": "1", "strength": -1}]}), 400, "history[0].strength must be a positive number up to 1e6, got -1"),
        (json!({"user_id": "42", "history": ["1", {"item_id": "2", "event": "stare"}]}), 400, "history[1].event must be one of \"view\", \"click\", \"like\", \"purchase\", got \"stare\""),
        (json!({"user_id": "42", "history": [{"item_id": "2", "timestamp": -5}]}), 400, "history[0].timestamp must be Unix seconds between 0 and 32503680000, got -5"),
        (json!({"user_id": "42", "history": [{"item": "2"}]}), 400, "field \"history\" must be a list of item ids or {\"item_id\", \"strength\", \"event\", \"timestamp\"} objects"),
    ] {
        assert_json_error(&c.post("/v1/recommend", &body).await, status, contains);
    }
    let r = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "42", "k": 1, "history": ["1", 2, {"item_id": "3", "event": "purchase", "timestamp": 900000000}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["user_path"], "known");
    // Ordered by the first stage on request, ratings still given.
    let r = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "42", "k": 2, "order_by": "retrieval"}),
        )
        .await;
    let v = r.json();
    assert_eq!(v["order_by"], "retrieval");
    assert_eq!(v["items"][0]["item_id"], "5");
    assert_eq!(v["items"][0]["predicted_rating"], 2.0);
    assert_eq!(v["items"][1]["item_id"], "4");
    // Candidates are limited before ranking; exclusions apply; seen items can come back.
    let r = c
        .post(
            "/v1/recommend",
            &json!({"user_id": 42, "k": 2, "num_candidates": 3, "exclude_items": ["5"], "exclude_seen": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let got: Vec<&Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["item_id"])
        .collect();
    // Candidates: 4 (8), 1 (5), 2 (4); ranked: 2 (4.5), 1 (3.0 default), 4 (1.0).
    assert_eq!(got, vec![&json!("2"), &json!("1")]);

    // Unknown user: popularity fallback, flagged.
    let r = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "999", "k": 2, "ranking_model": ""}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["known_user"], false);
    assert_eq!(v["model_versions"], json!({"retrieval": 1}));
    assert_eq!(
        v["items"][0],
        json!({"item_id": "1", "title": "Toy Story (1995)", "retrieval_score": 5.0, "ranking_score": null, "predicted_rating": null})
    );
    assert_eq!(v["order_by"], "retrieval");
    assert_eq!(v["items"][1]["item_id"], "2");

    // Rank a given list.
    let r = c
        .post(
            "/v1/rank",
            &json!({"user_id": "42", "item_ids": ["4", "3", "zzz"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"user_id": "42", "known_user": true, "model_version": 1, "order_by": "relevance", "items": [
            {"item_id": "3", "score": 5.0, "predicted_rating": 5.0, "known_item": true},
            {"item_id": "zzz", "score": 3.0, "predicted_rating": 3.0, "known_item": false},
            {"item_id": "4", "score": 1.0, "predicted_rating": 1.0, "known_item": true}
        ]})
    );
    let r = c
        .post("/v1/rank", &json!({"user_id": "nobody", "item_ids": ["1"]}))
        .await;
    assert_eq!(r.json()["known_user"], false);
    s.stop().await;
}

/// A ranking model without a relevance head never reorders a list by predicted
/// rating unless asked: the list keeps the first stage's order, with the ratings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rating_only_ranking_keeps_retrieval_order_unless_asked() {
    let mut spec = ranking_spec(0.0);
    spec["relevance"] = json!(false);
    let s = start_ready(
        &[("retrieval", &retrieval_spec(0.0)), ("ranking", &spec)],
        |_| {},
    )
    .await;
    let mut c = s.client().await;
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let v = c
        .post("/v1/recommend", &json!({"user_id": "42", "k": 3}))
        .await
        .json();
    assert_eq!(v["order_by"], "retrieval");
    assert_eq!(ids(&v), ["5", "4", "2"]);
    assert_eq!(v["items"][0]["ranking_score"], Value::Null);
    assert_eq!(v["items"][0]["predicted_rating"], 2.0);
    let v = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "42", "k": 3, "order_by": "rating"}),
        )
        .await
        .json();
    assert_eq!(v["order_by"], "rating");
    assert_eq!(ids(&v), ["3", "2", "5"]);
    assert_json_error(
        &c.post(
            "/v1/recommend",
            &json!({"user_id": "42", "order_by": "relevance"}),
        )
        .await,
        400,
        "order_by \"relevance\" needs a ranking model with a relevance head",
    );
    assert_json_error(
        &c.post("/v1/recommend", &json!({"user_id": "42", "order_by": "best"}))
            .await,
        400,
        "field \"order_by\" must be one of \"auto\", \"relevance\", \"rating\", \"retrieval\", got \"best\"",
    );
    // /v1/rank orders by rating for such a model.
    let v = c
        .post(
            "/v1/rank",
            &json!({"user_id": "42", "item_ids": ["4", "3"]}),
        )
        .await
        .json();
    assert_eq!(v["order_by"], "rating");
    assert_eq!(v["items"][0]["item_id"], "3");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_without_ranking_model_uses_retrieval_order() {
    let base = tempfile::tempdir().unwrap();
    write_version(base.path(), "retrieval", 4, &retrieval_spec(0.0), false);
    let s = TestServer::start(base, |_| {}).await;
    s.wait_ready().await;
    let mut c = s.client().await;
    let r = c
        .post("/v1/recommend", &json!({"user_id": "42", "k": 2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model_versions"], json!({"retrieval": 4}));
    assert_eq!(v["items"][0]["item_id"], "5");
    assert_eq!(v["items"][0]["ranking_score"], Value::Null);
    assert_eq!(v["items"][1]["item_id"], "4");
    // A ranking model named in the request must exist.
    assert_json_error(
        &c.post(
            "/v1/recommend",
            &json!({"user_id": "42", "ranking_model": "ranking"}),
        )
        .await,
        404,
        "Latest(ranking)",
    );
    assert_json_error(
        &c.post("/v1/rank", &json!({"user_id": "42", "item_ids": ["1"]}))
            .await,
        404,
        "Latest(ranking)",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_errors_name_the_field() {
    let s = start_ready(
        &[
            ("retrieval", &retrieval_spec(0.0)),
            ("ranking", &ranking_spec(0.0)),
        ],
        |c| c.max_body_bytes = 64 * 1024,
    )
    .await;
    let mut c = s.client().await;

    assert_json_error(
        &c.post_raw("/v1/recommend", b"{\"user_id\": ").await,
        400,
        "JSON Parse error",
    );
    assert_json_error(
        &c.post_raw("/v1/recommend", b"").await,
        400,
        "JSON Parse error",
    );
    for (body, status, contains) in [
        (json!({"k": 3}), 400, "missing field \"user_id\""),
        (
            json!({"user_id": "42", "k": "3"}),
            400,
            "field \"k\" must be a non-negative integer",
        ),
        (json!({"user_id": ["42"]}), 400, "field \"user_id\""),
        (
            json!({"user_id": "42", "k": 1001}),
            400,
            "k must be between 1 and 1000, got 1001",
        ),
        (
            json!({"user_id": "42", "k": 0}),
            400,
            "k must be between 1 and 1000",
        ),
        (json!({"user_id": "42", "k": -1}), 400, "field \"k\""),
        (
            json!({"user_id": "42", "num_candidates": 10001}),
            400,
            "num_candidates must be at most 10000",
        ),
        (
            json!({"user_id": "42", "k": 5, "num_candidates": 2}),
            400,
            "num_candidates (2) must be at least k (5)",
        ),
        (
            json!({"user_id": "42", "exclude_seen": "yes"}),
            400,
            "field \"exclude_seen\"",
        ),
        (
            json!({"user_id": "42", "exclude_items": "1"}),
            400,
            "field \"exclude_items\"",
        ),
        (
            json!({"user_id": "42", "kk": 1}),
            400,
            "unknown field \"kk\"",
        ),
        (
            json!({"user_id": "42", "retrieval_model": "ranking"}),
            400,
            "not a candidate source (retrieval_model)",
        ),
        (
            json!({"user_id": "42", "ranking_model": "retrieval"}),
            400,
            "not a ranking model (ranking_model)",
        ),
        (
            json!({"user_id": "42", "retrieval_model": "x"}),
            404,
            "Latest(x)",
        ),
    ] {
        assert_json_error(&c.post("/v1/recommend", &body).await, status, contains);
    }
    assert_json_error(
        &c.post("/v1/rank", &json!({"user_id": "42"})).await,
        400,
        "missing field \"item_ids\"",
    );
    assert_json_error(
        &c.post("/v1/rank", &json!({"user_id": "42", "item_ids": [1.5]}))
            .await,
        400,
        "field \"item_ids\"",
    );

    // Wrong method on a native endpoint.
    assert_json_error(
        &c.get("/v1/recommend").await,
        405,
        "Method GET is not allowed",
    );

    // Body too large: declared by Content-Length (answered before reading)...
    let mut c2 = s.client().await;
    c2.send_raw(b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        .await
        .unwrap();
    assert_json_error(
        &c2.read_response().await.unwrap(),
        413,
        "larger than the limit of 65536 bytes",
    );
    // ...and streamed without a length.
    let mut c3 = s.client().await;
    let big = vec![b' '; 70 * 1024];
    let mut req = format!("POST /v1/models/ranking:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", big.len()).into_bytes();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    c3.send_raw(&req).await.unwrap();
    assert_json_error(
        &c3.read_response().await.unwrap(),
        413,
        "larger than the limit",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_times_out_with_json() {
    let s = start_ready(&[("retrieval", &retrieval_spec(0.0))], |c| {
        c.request_timeout = Duration::from_millis(200)
    })
    .await;
    let mut c = s.client().await;
    c.send_raw(
        b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user_id\"",
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), c.read_response())
        .await
        .unwrap()
        .unwrap();
    assert_json_error(&r, 504, "timed out after 200 ms");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let base = tempfile::tempdir().unwrap();
    // Only a corrupt version: alive but not ready.
    write_version(base.path(), "ranking", 1, &ranking_spec(0.0), true);
    let s = TestServer::start(base, |_| {}).await;
    let mut c = s.client().await;
    let r = c.get("/healthz").await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    // Wait for the first scan, then readiness stays 503.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.get("/v1/models/ranking").await;
        // The version shows as LOADING while the first scan loads it: wait for END.
        if r.status == 200 && r.json()["model_version_status"][0]["state"] != "LOADING" {
            let v = r.json();
            assert_eq!(v["model_version_status"][0]["state"], "END");
            assert_eq!(
                v["model_version_status"][0]["status"]["error_code"],
                "UNKNOWN"
            );
            assert!(v["model_version_status"][0]["status"]["error_message"]
                .as_str()
                .unwrap()
                .contains("corrupt"));
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["ready"], false);
    assert!(v["error"].as_str().unwrap().contains("ranking"));

    // Now a good version arrives: ready.
    write_version(s.base.path(), "ranking", 2, &ranking_spec(0.0), false);
    s.wait_ready().await;
    let r = c.get("/readyz").await;
    assert_eq!(r.json(), json!({"ready": true, "models": {"ranking": 2}}));

    let _ = c
        .post(
            "/v1/models/ranking:predict",
            &json!({"instances": [{"user_id": "1", "item_id": "1"}]}),
        )
        .await;
    let _ = c
        .post("/v1/models/ranking:predict", &json!({"instances": 1}))
        .await;
    let r = c.get("/monitoring/prometheus/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    for needle in [
        "shortlist_requests_total{endpoint=\"predict\",code=\"2xx\"} 1\n",
        "shortlist_requests_total{endpoint=\"predict\",code=\"4xx\"} 1\n",
        "shortlist_request_errors_total{endpoint=\"predict\",code=\"4xx\"} 1\n",
        "shortlist_requests_total{endpoint=\"readyz\",code=\"5xx\"} ",
        "shortlist_request_duration_seconds_count{endpoint=\"predict\"} 2\n",
        "shortlist_request_duration_seconds_bucket{endpoint=\"predict\",le=\"+Inf\"} 2\n",
        "shortlist_model_version{model=\"ranking\"} 2\n",
        "shortlist_model_load_failures_total{model=\"ranking\"} 1\n",
        "# TYPE shortlist_request_duration_seconds histogram\n",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    s.stop().await;
}

/// The router alone, without a socket (how unit tests of a CLI can use it).
#[tokio::test]
async fn router_works_with_oneshot() {
    use tower::ServiceExt;
    let base = tempfile::tempdir().unwrap();
    write_version(base.path(), "retrieval", 3, &retrieval_spec(0.0), false);
    let config = shortlist_serve::ServeConfig {
        model_base_path: base.path().to_path_buf(),
        ..Default::default()
    };
    let state = shortlist_serve::AppState::new(config, common::fake_loader(Default::default()));
    state.registry.poll_once();
    let app = shortlist_serve::app(state);
    let req = axum::http::Request::post("/v1/models/retrieval:predict")
        .body(axum::body::Body::from(r#"{"instances": ["42"]}"#))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let req = axum::http::Request::get("/v1/models/retrieval")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn config_defaults() {
    let c = shortlist_serve::ServeConfig::default();
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.max_k, 1000);
    assert_eq!(c.max_num_candidates, 10_000);
    assert_eq!(c.addr.port(), 8501);
    assert_eq!(c.poll_interval, Duration::from_secs(1));
    assert_eq!(
        (c.retrieval_model.as_str(), c.ranking_model.as_str()),
        ("retrieval", "ranking")
    );
}
