//! The real loader (`models::load_model_dir`) over models trained on a small synthetic
//! log: the two-stage endpoint, TF Serving predict, unknown users, and a truncated new
//! version refused while the old one keeps serving.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Client;
use serde_json::json;
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_serve::config::ServeConfig;
use shortlist_train::ials::IalsTrainConfig;
use shortlist_train::relevance::RelevanceTrainConfig;
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::TrainConfig;

fn train_models(base: &std::path::Path) -> Vec<String> {
    let (d, _) = generate(&SynthConfig {
        users: 80,
        items: 40,
        interactions: 3000,
        ..Default::default()
    })
    .unwrap();
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
    let config = ServeConfig {
        model_base_path: base.path().to_path_buf(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_interval: Duration::from_millis(50),
        ..ServeConfig::default()
    };
    let server = shortlist_serve::bind(config, Arc::new(shortlist_serve::models::load_model_dir))
        .await
        .unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let mut c = Client::connect(addr).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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
