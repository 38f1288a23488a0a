//! Connection hygiene and load shedding over real sockets: header-read and idle
//! timeouts, the connection cap, 503 with `Retry-After` beyond the in-flight limit,
//! the request timeout covering computation, and the protocol-error metrics.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{metric, ranking_spec, retrieval_spec, start_ready, Client, TestServer};
use serde_json::json;

async fn metrics_text(s: &TestServer) -> String {
    s.client()
        .await
        .get("/monitoring/prometheus/metrics")
        .await
        .text()
}

async fn closed_after(c: &mut Client) -> Duration {
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), c.read_until_closed())
        .await
        .expect("the server never closed the connection");
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let s = start_ready(&[("ranking", &ranking_spec(0.0))], |c| {
        c.header_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(900);
    })
    .await;

    // Silent after connecting: closed by the header timeout.
    let mut silent = s.client().await;
    let t = closed_after(&mut silent).await;
    assert!(
        t < Duration::from_millis(800),
        "silent connection open {t:?}"
    );

    // Headers a byte every 50 ms (slowloris): closed ~300 ms after the first byte
    // although bytes keep coming.
    let mut slow = s.client().await;
    let trickle = tokio::spawn(async move {
        let start = Instant::now();
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
        {
            if slow.send_raw(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (start.elapsed(), slow.read_until_closed().await)
    });
    let (t, answer) = trickle.await.unwrap();
    assert!(answer.is_empty(), "answered a request never completed");
    assert!(
        t < Duration::from_millis(1500),
        "trickling connection open {t:?}"
    );

    // Keep-alive after a request: the idle timeout applies, not the header one.
    let mut idle = s.client().await;
    assert_eq!(idle.get("/healthz").await.status, 200);
    let t = closed_after(&mut idle).await;
    assert!(
        t > Duration::from_millis(700) && t < Duration::from_millis(2500),
        "idle connection closed after {t:?}"
    );

    // A connection in active use is not closed.
    let mut active = s.client().await;
    for _ in 0..8 {
        assert_eq!(active.get("/healthz").await.status, 200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let text = metrics_text(&s).await;
    let closed = |reason: &str| {
        metric(
            &text,
            &format!("shortlist_connections_closed_by_server_total{{reason=\"{reason}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(closed("header_timeout"), 2.0, "{text}");
    assert_eq!(closed("idle_timeout"), 1.0, "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_idle_connection_makes_room() {
    let mut spec = ranking_spec(0.0);
    // Long computations, so that the four busy connections below are surely still
    // busy when the fifth arrives, even on a loaded machine.
    spec["compute_ms"] = json!(2000);
    // Once ready: readiness is checked through a connection that is then closed.
    let s = start_ready(&[("ranking", &spec)], |c| {
        c.max_connections = Some(4);
        c.header_timeout = Duration::from_secs(30);
        c.compute_threads = 4;
    })
    .await;
    while metric(&metrics_text(&s).await, "shortlist_open_connections") != Some(1.0) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Four silent connections fill the cap; a fifth client still gets answered,
    // and the oldest silent one is the one closed.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(s.client().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut probe = s.client().await;
    let t = Instant::now();
    assert_eq!(probe.get("/healthz").await.status, 200);
    // Bounds loose enough for a loaded 2-core machine; without eviction the probe
    // would wait for the 30 s header timeout.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(closed_after(&mut silent[0]).await < Duration::from_secs(3));
    drop(probe);
    drop(silent);

    // Four busy connections: a fifth is closed at once, unanswered.
    while metric(&metrics_text(&s).await, "shortlist_open_connections") != Some(1.0) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut c = s.client().await;
        busy.push(tokio::spawn(async move {
            c.post(
                "/v1/rank",
                &json!({"user_id": "42", "item_ids": ["1", "2"]}),
            )
            .await
            .status
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = s.client().await;
    let _ = refused
        .send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(refused.read_until_closed().await.is_empty());
    for b in busy {
        assert_eq!(b.await.unwrap(), 200);
    }
    let text = metrics_text(&s).await;
    assert!(
        metric(
            &text,
            "shortlist_connections_closed_by_server_total{reason=\"evicted\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "shortlist_connections_closed_by_server_total{reason=\"refused\"}"
        ),
        Some(1.0),
        "{text}"
    );
    s.stop().await;
}

/// A server (ranking and retrieval models) whose one computation slot is held by a
/// slow `/v1/rank` for ~500 ms.
async fn saturated() -> (TestServer, tokio::task::JoinHandle<common::Resp>) {
    let mut spec = ranking_spec(0.0);
    spec["compute_ms"] = json!(500);
    let s = start_ready(
        &[("ranking", &spec), ("retrieval", &retrieval_spec(0.0))],
        |c| {
            c.compute_threads = 1;
            c.max_in_flight = 1;
        },
    )
    .await;
    let mut a = s.client().await;
    let slow = tokio::spawn(async move {
        a.post("/v1/rank", &json!({"user_id": "42", "item_ids": ["2"]}))
            .await
    });
    while metric(&metrics_text(&s).await, "shortlist_in_flight_requests") != Some(1.0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (s, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_in_flight_limit_the_answer_is_503_at_once() {
    let (s, slow) = saturated().await;
    let mut b = s.client().await;
    for (path, body) in [
        ("/v1/rank", json!({"user_id": "42", "item_ids": ["2"]})),
        ("/v1/recommend", json!({"user_id": "42"})),
        (
            "/v1/models/ranking:predict",
            json!({"instances": [{"user_id": "42", "item_id": "2"}]}),
        ),
    ] {
        let t = Instant::now();
        let r = b.post(path, &body).await;
        let took = t.elapsed();
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert!(
            took < Duration::from_millis(100),
            "{path}: 503 after {took:?}"
        );
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(
            r.json(),
            json!({"error": "Server overloaded (1 requests in flight); retry later"})
        );
    }
    // Cheap endpoints are not computations: still answered.
    assert_eq!(b.get("/v1/models/ranking").await.status, 200);
    assert_eq!(b.get("/readyz").await.status, 200);
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let text = metrics_text(&s).await;
    assert_eq!(metric(&text, "shortlist_shed_requests_total"), Some(3.0));
    assert_eq!(metric(&text, "shortlist_in_flight_requests"), Some(0.0));
    s.stop().await;
}

fn rank_head(len: usize, expect: bool) -> String {
    let expect = if expect {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    format!("POST /v1/rank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{expect}Content-Length: {len}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_that_expects_continue_never_sends_its_body() {
    let (s, slow) = saturated().await;
    let body = serde_json::to_vec(&json!({"user_id": "42", "item_ids": ["2"]})).unwrap();
    let mut c = s.client().await;
    c.send_raw(rank_head(body.len(), true).as_bytes())
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(1), c.read_response())
        .await
        .expect("no answer without the body")
        .unwrap();
    assert_eq!(
        r.status, 503,
        "the first answer is the refusal, not 100 Continue"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    // The body was never asked for, so the connection cannot carry another request.
    let rest = tokio::time::timeout(Duration::from_secs(2), c.read_until_closed())
        .await
        .expect("the connection stays open after a refused 100-continue request");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(slow.await.unwrap().status, 200);

    // Admitted, the same request is asked for its body and answered.
    let mut c = s.client().await;
    c.send_raw(rank_head(body.len(), true).as_bytes())
        .await
        .unwrap();
    let cont = c.read_response_head().await.unwrap();
    assert_eq!(cont, 100);
    c.send_raw(&body).await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_is_read_and_the_connection_kept() {
    let (s, slow) = saturated().await;
    let body = serde_json::to_vec(&json!({"user_id": "42", "item_ids": ["2", "3"]})).unwrap();
    let mut c = s.client().await;
    let (first, second) = body.split_at(body.len() / 2);
    c.send_raw(rank_head(body.len(), false).as_bytes())
        .await
        .unwrap();
    c.send_raw(first).await.unwrap();
    // The refusal waits for the rest of the body, so that the connection can
    // carry the next request.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.read_response())
            .await
            .is_err(),
        "answered before the body was read"
    );
    c.send_raw(second).await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), None);
    assert_eq!(slow.await.unwrap().status, 200);
    let r = c
        .post("/v1/rank", &json!({"user_id": "42", "item_ids": ["2"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_covers_computation() {
    let mut spec = ranking_spec(0.0);
    spec["compute_ms"] = json!(800);
    let s = start_ready(&[("ranking", &spec)], |c| {
        c.request_timeout = Duration::from_millis(150)
    })
    .await;
    let mut c = s.client().await;
    let t = Instant::now();
    let r = c
        .post("/v1/rank", &json!({"user_id": "42", "item_ids": ["2"]}))
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json(), json!({"error": "Request timed out after 150 ms"}));
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_answered_and_counted() {
    let s = start_ready(&[("ranking", &ranking_spec(0.0))], |_| {}).await;

    let mut c = s.client().await;
    c.send_raw(b"NOT AN HTTP REQUEST\r\n\r\n").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().status, 400);

    let mut c = s.client().await;
    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let _ = c.send_raw(&big).await;
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 431, "{:?} {}", r.headers, r.text());

    let mut c = s.client().await;
    let uri = format!("/{}", "a".repeat(70 * 1024));
    let _ = c
        .send_raw(format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await;
    let status = c.read_response().await.unwrap().status;
    assert!(status == 414 || status == 431, "{status}");

    // Counted when each connection's task ends, just after its answer was written:
    // wait for both counts rather than race them (the parse error's connection may
    // end after the later ones on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = metrics_text(&s).await;
    while (metric(&text, "shortlist_protocol_errors_total{kind=\"too_large\"}") != Some(2.0)
        || metric(&text, "shortlist_protocol_errors_total{kind=\"parse\"}") != Some(1.0))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = metrics_text(&s).await;
    }
    assert_eq!(
        metric(&text, "shortlist_protocol_errors_total{kind=\"parse\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "shortlist_protocol_errors_total{kind=\"too_large\"}"),
        Some(2.0),
        "{text}"
    );
    s.stop().await;
}
