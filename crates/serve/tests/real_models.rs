//! The real loader (`models::load_model_dir`) over models trained on a small synthetic
//! log: the two-stage endpoint, TF Serving predict, unknown users, and a truncated new
//! version refused while the old one keeps serving.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{item_ids, start_real_connected, Client};
use serde_json::json;
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_train::ials::IalsTrainConfig;
use shortlist_train::relevance::RelevanceTrainConfig;
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::TrainConfig;

fn train_models(base: &std::path::Path) -> Vec<String> {
    let (d, _) = generate(&SynthConfig::sized(80, 40, 3000)).unwrap();
    let rows: Vec<usize> = (0..d.interactions.len()).collect();
    let (train, test) = rows.split_at(2400);
    let rcfg = RetrievalTrainConfig {
        embedding_dim: 8,
        epochs: 2,
        batch_size: 256,
        ..Default::default()
    };
    let (retrieval, _) = train_retrieval(&d, train, test, &rcfg, |_| {}).unwrap();
    let titles: Vec<String> = (0..retrieval.num_items() as u32)
        .map(|r| {
            retrieval
                .spec
                .item_id
                .value(r)
                .and_then(|raw| d.items.get(raw))
                .map(|i| d.item_title(i).to_owned())
                .unwrap_or_default()
        })
        .collect();
    retrieval
        .save(&base.join("retrieval").join("1"), &titles)
        .unwrap();
    let cfg = TrainConfig {
        embedding_dim: 8,
        hidden: vec![16],
        epochs: 2,
        batch_size: 256,
        relevance: Some(RelevanceTrainConfig {
            retrieval: rcfg.clone(),
            ials: IalsTrainConfig {
                factors: 4,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let (ranking, _) = shortlist_train::train_ranking(&d, train, test, &cfg).unwrap();
    ranking.save(&base.join("ranking").join("1")).unwrap();
    // Items user u1 interacted with in training.
    train
        .iter()
        .filter(|&&r| d.users.raw(d.interactions.users[r]) == "u1")
        .map(|&r| d.items.raw(d.interactions.items[r]).to_owned())
        .collect()
}

/// Copies a model directory (with its sub-directories, e.g. the relevance head's).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        let dest = to.join(f.file_name().unwrap());
        if f.is_dir() {
            copy_dir(&f, &dest);
        } else {
            std::fs::copy(&f, dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_models_serve_both_stages_and_refuse_a_truncated_version() {
    let base = tempfile::tempdir().unwrap();
    let seen = train_models(base.path());
    let (mut c, _, tx, task) = start_real_connected(base.path()).await;

    let r = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "u1", "k": 5, "exclude_seen": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["known_user"], true);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(body["order_by"], "relevance");
    let scores: Vec<f64> = items
        .iter()
        .map(|i| i["ranking_score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked by the relevance head: {scores:?}"
    );
    assert!(items
        .iter()
        .all(|i| i["predicted_rating"].as_f64().is_some()));
    for i in items {
        assert!(
            !seen.iter().any(|s| s == i["item_id"].as_str().unwrap()),
            "seen item returned: {i}"
        );
        assert!(i["title"].as_str().unwrap().starts_with("Item "), "{i}");
    }

    let p = c
        .post(
            "/v1/models/retrieval:predict",
            &json!({"instances": ["u1"]}),
        )
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(
        p.json()["predictions"][0]["output_2"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let p = c
        .post(
            "/v1/models/ranking:predict",
            &json!({"instances": [{"user_id": "u1", "item_id": "i3"}]}),
        )
        .await;
    assert_eq!(p.status, 200);
    assert!(p.json()["predictions"][0][0].as_f64().is_some());

    let u = c
        .post("/v1/recommend", &json!({"user_id": "nobody", "k": 3}))
        .await
        .json();
    assert_eq!(u["known_user"], false);
    assert_eq!(u["items"].as_array().unwrap().len(), 3);

    // Version 2 of the ranking model with truncated weights: refused, v1 keeps serving.
    let v2 = base.path().join("ranking").join("2");
    let staging = base.path().join("ranking").join(".2.partial");
    copy_dir(&base.path().join("ranking").join("1"), &staging);
    let w = staging.join("weights.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::rename(&staging, &v2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = c.get("/v1/models/ranking").await.json();
        let states: Vec<String> = s["model_version_status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("{}:{}", v["version"], v["state"]))
            .collect();
        if states.iter().any(|x| x.contains("\"2\"")) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = c
        .post(
            "/v1/recommend",
            &json!({"user_id": "u1", "k": 5, "exclude_seen": true}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json()["model_versions"]["ranking"],
        1,
        "the truncated version 2 must not be served"
    );

    let _ = tx.send(());
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_change_the_next_answer_and_survive_a_restart() {
    let base = tempfile::tempdir().unwrap();
    let seen = train_models(base.path());
    let (mut c, addr, tx, task) = start_real_connected(base.path()).await;
    let ask = json!({"user_id": "u1", "k": 5});

    // A purchase of the first recommended item removes it from the next answer.
    let before = item_ids(&c.post("/v1/recommend", &ask).await.json());
    let bought = before[0].clone();
    let r = c
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": "u1", "item_id": bought, "event": "purchase", "timestamp": 1_700_000_000}]}),
        )
        .await;
    assert_eq!((r.status, r.json()), (200, json!({"accepted": 1})));
    let after = c.post("/v1/recommend", &ask).await.json();
    assert_eq!(after["user_path"], "known");
    assert!(!item_ids(&after).contains(&bought), "{after}");

    // A user the models never saw: popularity, then personalised from their events.
    let fresh = json!({"user_id": "brand-new", "k": 5});
    let r = c.post("/v1/recommend", &fresh).await.json();
    assert_eq!(r["user_path"], "popular");
    let events: Vec<_> = seen
        .iter()
        .take(3)
        .map(|i| json!({"user_id": "brand-new", "item_id": i, "event": "like"}))
        .collect();
    let r = c.post("/v1/events", &json!({ "events": events })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.post("/v1/recommend", &fresh).await.json();
    assert_eq!(r["user_path"], "history", "{r}");
    assert_eq!(r["known_user"], false);
    for i in item_ids(&r) {
        assert!(
            !seen[..3].contains(&i),
            "an item of the user's events came back: {i}"
        );
    }

    // Bad batches are refused whole, naming the entry; an oversized one gets 413.
    let r = c
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": "u1", "item_id": "i1", "event": "view"}, {"user_id": "u1", "item_id": "i2", "event": "view", "when": 3}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "events[1]: unknown field \"when\"; expected one of: user_id, item_id, event, timestamp"
    );
    let huge: Vec<_> = (0..100_000)
        .map(|n| json!({"user_id": format!("u{n}"), "item_id": "i1", "event": "view", "timestamp": 1}))
        .collect();
    let huge = serde_json::to_vec(&json!({ "events": huge })).unwrap();
    // Declared by Content-Length: answered before the body is read (and the
    // connection closed, so the body is not sent).
    let mut c2 = Client::connect(addr).await;
    c2.send_raw(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            huge.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = c2.read_response().await.unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        r.json()["error"],
        "Request body is larger than the limit of 1048576 bytes"
    );

    // Restart: the log is replayed, so the purchase and the new user's events hold.
    let _ = tx.send(());
    let _ = task.await;
    let log = base.path().join(".events").join("events.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    // The old server's writer releases the log's lock when its last handle drops.
    while shortlist_serve::events::log::Appender::open(&log, |_| {}).is_err() {
        assert!(Instant::now() < deadline, "the event log stayed locked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut n = 0;
    shortlist_serve::events::log::read(&log, |_| n += 1).unwrap();
    assert_eq!(n, 4, "1 purchase + 3 likes, nothing of the refused batches");
    let (mut c, _, tx, task) = start_real_connected(base.path()).await;
    let again = c.post("/v1/recommend", &ask).await.json();
    assert!(!item_ids(&again).contains(&bought), "{again}");
    let r = c.post("/v1/recommend", &fresh).await.json();
    assert_eq!(r["user_path"], "history", "{r}");
    let _ = tx.send(());
    let _ = task.await;
}
