//! Hot reload under load: a new version is swapped in while clients loop, with
//! zero failed requests; a corrupt version is refused, retried with backoff (at
//! once when its files change); a removed model keeps being served; readiness
//! follows the required-models rule; a kind change is refused; models load
//! independently.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ranking_spec, retrieval_spec, start_ready, write_version, TestServer};
use serde_json::json;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Highest ranking version seen in a `/v1/recommend` answer.
    ranking_version: AtomicU64,
    /// Highest bias-shifted `:predict` score seen (v1: 4.5, v2: 104.5).
    predict_v2_seen: AtomicBool,
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_with_zero_failures() {
    let s = TestServer::start_default().await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));

    // Two clients looping on the native and the TF Serving endpoints.
    let mut loops = Vec::new();
    for which in 0..2 {
        let (tally, stop, addr) = (Arc::clone(&tally), Arc::clone(&stop), s.addr);
        loops.push(tokio::spawn(async move {
            let mut c = common::Client::connect(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let r = if which == 0 {
                    c.post("/v1/recommend", &json!({"user_id": "42", "k": 3}))
                        .await
                } else {
                    c.post(
                        "/v1/models/ranking:predict",
                        &json!({"instances": [{"user_id": "42", "item_id": "2"}]}),
                    )
                    .await
                };
                if r.status != 200 {
                    eprintln!("failed request: {} {}", r.status, r.text());
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let v = r.json();
                let good = if which == 0 {
                    // Ranked by the ranking model, never the retrieval-order fallback.
                    v["model_versions"]["ranking"]
                        .as_u64()
                        .map(|ver| tally.ranking_version.fetch_max(ver, Ordering::Relaxed))
                        .is_some()
                } else {
                    match v["predictions"][0][0].as_f64() {
                        Some(104.5) => {
                            tally.predict_v2_seen.store(true, Ordering::Relaxed);
                            true
                        }
                        Some(4.5) => true,
                        _ => false,
                    }
                };
                if good {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("unexpected answer: {v}");
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    wait_until("some traffic", || tally.ok.load(Ordering::Relaxed) > 50).await;
    assert_eq!(tally.ranking_version.load(Ordering::Relaxed), 1);

    // Version 2, slow to load (300 ms), written atomically.
    let mut spec = ranking_spec(100.0);
    spec["load_ms"] = json!(300);
    let before_load = tally.ok.load(Ordering::Relaxed);
    write_version(s.base.path(), "ranking", 2, &spec, false);
    wait_until("version 2 served", || {
        tally.ranking_version.load(Ordering::Relaxed) == 2
            && tally.predict_v2_seen.load(Ordering::Relaxed)
    })
    .await;
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "requests failed during the swap"
    );
    // Requests kept flowing while the slow load ran off the request path.
    assert!(tally.ok.load(Ordering::Relaxed) > before_load + 20);

    // A corrupt version 3 is refused; version 2 keeps serving.
    let loads_before = s.loads.load(Ordering::SeqCst);
    write_version(s.base.path(), "ranking", 3, &ranking_spec(200.0), true);
    let mut c = s.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.get("/v1/models/ranking").await.json();
        let first = &v["model_version_status"][0];
        if first["version"] == "3" && first["state"] == "END" {
            assert_eq!(first["status"]["error_code"], "UNKNOWN");
            assert!(first["status"]["error_message"]
                .as_str()
                .unwrap()
                .contains("corrupt"));
            assert_eq!(v["model_version_status"][1]["state"], "AVAILABLE");
            assert_eq!(v["model_version_status"][1]["version"], "2");
            assert_eq!(v["model_version_status"][2]["state"], "END");
            break;
        }
        assert!(Instant::now() < deadline, "version 3 never refused: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not retried on every poll (50 ms) while its files are unchanged (backoff: 1 s first).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.loads.load(Ordering::SeqCst), loads_before + 1);
    let r = c
        .post("/v1/recommend", &json!({"user_id": "42", "k": 3}))
        .await;
    assert_eq!(r.json()["model_versions"]["ranking"], 2);

    // Ten more requests succeed, then the loops stop: zero failures in total.
    let ok_now = tally.ok.load(Ordering::Relaxed);
    wait_until("more traffic", || {
        tally.ok.load(Ordering::Relaxed) > ok_now + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    assert_eq!(tally.failed.load(Ordering::Relaxed), 0);
    assert!(tally.ok.load(Ordering::Relaxed) > 100);

    // Fixing version 3 in place changes its files: it is retried and served.
    std::fs::remove_file(s.base.path().join("ranking/3/corrupt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c
            .post("/v1/recommend", &json!({"user_id": "42", "k": 3}))
            .await;
        if r.json()["model_versions"]["ranking"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "fixed version 3 never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Removing the model directory keeps the last good version.
    std::fs::remove_dir_all(s.base.path().join("ranking")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .post("/v1/recommend", &json!({"user_id": "42", "k": 3}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model_versions"]["ranking"], 3);
    assert_eq!(c.get("/readyz").await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_dirs_are_ignored_and_deleting_a_version_rolls_back() {
    let base = tempfile::tempdir().unwrap();
    write_version(base.path(), "retrieval", 1, &retrieval_spec(0.0), false);
    // A half-written atomic directory must never be loaded.
    let partial = base.path().join("retrieval/.2.partial-abc");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("corrupt"), b"x").unwrap();
    std::fs::create_dir_all(base.path().join("retrieval/not-a-version")).unwrap();
    let s = TestServer::start(base, |_| {}).await;
    s.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.loads.load(Ordering::SeqCst), 1);
    let mut c = s.client().await;
    let v = c.get("/v1/models/retrieval").await.json();
    assert_eq!(v["model_version_status"].as_array().unwrap().len(), 1);

    write_version(s.base.path(), "retrieval", 2, &retrieval_spec(50.0), false);
    wait_until("version 2", || {
        std::fs::metadata(s.base.path().join("retrieval/2")).is_ok()
    })
    .await;
    wait_metadata(&mut c, "retrieval", 2, "version 2 never served").await;
    // Delete the bad release: the highest remaining version is served again.
    std::fs::remove_dir_all(s.base.path().join("retrieval/2")).unwrap();
    wait_metadata(&mut c, "retrieval", 1, "no rollback to version 1").await;
    s.stop().await;
}

async fn status_of(c: &mut common::Client, model: &str, version: u64) -> serde_json::Value {
    let v = c.get(&format!("/v1/models/{model}")).await.json();
    let version = version.to_string();
    v["model_version_status"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["version"].as_str() == Some(version.as_str()))
                .cloned()
        })
        .unwrap_or(serde_json::Value::Null)
}

/// Waits (10 s at most, else fails with `failure`) until `model/version`'s metadata
/// answers 200: that version is served.
async fn wait_metadata(c: &mut common::Client, model: &str, version: u64, failure: &str) {
    let path = format!("/v1/models/{model}/versions/{version}/metadata");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.get(&path).await.status != 200 {
        assert!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_state(c: &mut common::Client, model: &str, version: u64, state: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status_of(c, model, version).await;
        if s["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{model}/{version} never {state}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_directory_is_reported_but_does_not_block_readiness() {
    let base = tempfile::tempdir().unwrap();
    write_version(base.path(), "retrieval", 1, &retrieval_spec(0.0), false);
    write_version(base.path(), "junk", 1, &retrieval_spec(0.0), true);
    let base_str = base.path().display().to_string();
    let s = TestServer::start(base, |_| {}).await;
    s.wait_ready().await;
    let mut c = s.client().await;
    wait_state(&mut c, "junk", 1, "END", 10).await;
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["models"], json!({"junk": null, "retrieval": 1}));
    assert_eq!(
        v["unavailable"]["junk"], "version 1: junk/1: corrupt model file",
        "{v}"
    );
    // No absolute server path in any answer.
    for path in ["/readyz", "/v1/models/junk", "/v1/models/retrieval"] {
        let text = c.get(path).await.text();
        assert!(!text.contains(&base_str), "{path} shows {base_str}: {text}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_models_rule_readiness() {
    // A default model (ranking) that exists but never loads: not ready.
    let base = tempfile::tempdir().unwrap();
    write_version(base.path(), "retrieval", 1, &retrieval_spec(0.0), false);
    write_version(base.path(), "ranking", 1, &ranking_spec(0.0), true);
    let s = TestServer::start(base, |_| {}).await;
    let mut c = s.client().await;
    wait_state(&mut c, "ranking", 1, "END", 10).await;
    wait_state(&mut c, "retrieval", 1, "AVAILABLE", 10).await;
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["error"],
        "Models without a loaded version: ranking"
    );
    s.stop().await;

    // An explicit list: exactly those are required, present or not.
    let base = tempfile::tempdir().unwrap();
    write_version(base.path(), "retrieval", 1, &retrieval_spec(0.0), false);
    let s = TestServer::start(base, |c| {
        c.models = vec!["retrieval".into(), "other".into()];
    })
    .await;
    let mut c = s.client().await;
    wait_state(&mut c, "retrieval", 1, "AVAILABLE", 10).await;
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "Models without a loaded version: other");
    write_version(s.base.path(), "other", 4, &ranking_spec(0.0), false);
    s.wait_ready().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_versions_are_retried_with_backoff_until_they_load() {
    let s = start_ready(&[("ranking", &ranking_spec(0.0))], |_| {}).await;
    let mut c = s.client().await;
    // Fails twice without any change to its files (e.g. a storage hiccup):
    // retried after 1 s, then after 2 s, then served.
    let mut spec = ranking_spec(100.0);
    spec["fail_first"] = json!(2);
    let t = Instant::now();
    write_version(s.base.path(), "ranking", 2, &spec, false);
    wait_state(&mut c, "ranking", 2, "END", 10).await;
    let st = status_of(&mut c, "ranking", 2).await;
    assert!(st["status"]["error_message"]
        .as_str()
        .unwrap()
        .ends_with("ranking/2: transient failure 1"));
    assert_eq!(status_of(&mut c, "ranking", 1).await["state"], "AVAILABLE");
    wait_state(&mut c, "ranking", 2, "AVAILABLE", 15).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(10),
        "served after {took:?}"
    );
    assert_eq!(s.loads.load(Ordering::SeqCst), 1 + 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_is_picked_up_once_complete() {
    let s = start_ready(&[("ranking", &ranking_spec(0.0))], |_| {}).await;
    let mut c = s.client().await;
    // Copied in place, not atomically: half a file first.
    let dir = s.base.path().join("ranking/2");
    std::fs::create_dir_all(&dir).unwrap();
    let full = serde_json::to_vec(&ranking_spec(100.0)).unwrap();
    std::fs::write(dir.join("model.json"), &full[..full.len() / 2]).unwrap();
    wait_state(&mut c, "ranking", 2, "END", 10).await;
    std::fs::write(dir.join("model.json"), &full).unwrap();
    wait_state(&mut c, "ranking", 2, "AVAILABLE", 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_of_another_kind_is_refused() {
    let s = start_ready(&[("ranking", &ranking_spec(0.0))], |_| {}).await;
    let mut c = s.client().await;
    write_version(s.base.path(), "ranking", 2, &retrieval_spec(0.0), false);
    wait_state(&mut c, "ranking", 2, "END", 10).await;
    let st = status_of(&mut c, "ranking", 2).await;
    assert!(
        st["status"]["error_message"]
            .as_str()
            .unwrap()
            .starts_with("refused: this version is a retrieval model but version 1, being served, is a ranking model"),
        "{st}"
    );
    assert_eq!(status_of(&mut c, "ranking", 1).await["state"], "AVAILABLE");
    let r = c
        .post("/v1/rank", &json!({"user_id": "42", "item_ids": ["2"]}))
        .await;
    assert_eq!(r.json()["model_version"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_load_independently() {
    let base = tempfile::tempdir().unwrap();
    let mut slow = retrieval_spec(0.0);
    slow["load_ms"] = json!(3000);
    write_version(base.path(), "retrieval", 1, &slow, false);
    write_version(base.path(), "ranking", 1, &ranking_spec(0.0), false);
    let s = TestServer::start(base, |_| {}).await;
    let mut c = s.client().await;
    let t = Instant::now();
    wait_state(&mut c, "ranking", 1, "AVAILABLE", 10).await;
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "ranking waited for retrieval: {:?}",
        t.elapsed()
    );
    // On a loaded machine the retrieval version may not be listed yet (its loader
    // thread has not run): it is LOADING once it is, for the 3 s its load takes.
    wait_state(&mut c, "retrieval", 1, "LOADING", 3).await;
    // A new ranking version is picked up while retrieval is still loading.
    write_version(s.base.path(), "ranking", 2, &ranking_spec(1.0), false);
    wait_state(&mut c, "ranking", 2, "AVAILABLE", 10).await;
    assert_eq!(status_of(&mut c, "retrieval", 1).await["state"], "LOADING");
    s.wait_ready().await;
    s.stop().await;
}
