//! Test helpers: fake models described by a JSON file, a loader for them, a tiny
//! HTTP/1.1 client over a raw `TcpStream`, and a server started on 127.0.0.1:0 (over
//! the fake models, or over real model directories with `start_real`).
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use shortlist_pipeline::testing::{ranked, retrieved};
use shortlist_pipeline::User;
use shortlist_serve::servable::{
    predict_with_ranker, predict_with_retriever, ranking_signature, retrieval_signature,
};
use shortlist_serve::{
    ApiError, Candidate, CandidateSource, Loader, ModelKind, Ranked, Ranker, Retrieved, Servable,
    ServeConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Deserialize)]
struct Item {
    id: String,
    title: String,
    popularity: f32,
}

#[derive(Deserialize, Default)]
struct RetrievalUser {
    #[serde(default)]
    seen: Vec<String>,
    #[serde(default)]
    affinity: HashMap<String, f32>,
}

/// Fake retrieval model: score = affinity (or popularity) + bias.
struct FakeRetrieval {
    bias: f32,
    compute_ms: u64,
    items: Vec<Item>,
    users: HashMap<String, RetrievalUser>,
    k: usize,
}

impl CandidateSource for FakeRetrieval {
    fn kind(&self) -> &'static str {
        "retrieval"
    }
    fn retrieve<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> shortlist_pipeline::Result<Retrieved<'a>> {
        std::thread::sleep(Duration::from_millis(self.compute_ms));
        let user = self.users.get(user.id);
        let mut candidates: Vec<Candidate<'a>> = self
            .items
            .iter()
            .filter(|it| !exclude_items.contains(&it.id.as_str()))
            .filter(|it| !(exclude_seen && user.is_some_and(|u| u.seen.contains(&it.id))))
            .map(|it| Candidate {
                item_id: &it.id,
                score: user
                    .and_then(|u| u.affinity.get(&it.id).copied())
                    .unwrap_or(it.popularity)
                    + self.bias,
            })
            .collect();
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        candidates.truncate(k);
        Ok(retrieved(candidates, user.is_some()))
    }

    fn score_items(&self, user: &User<'_>, item_ids: &[&str], out: &mut [f32]) {
        let user_id = user.id;
        let user = self.users.get(user_id);
        for (o, id) in out.iter_mut().zip(item_ids) {
            *o = match (user, self.items.iter().find(|i| i.id == *id)) {
                (Some(u), Some(it)) => {
                    u.affinity.get(*id).copied().unwrap_or(it.popularity) + self.bias
                }
                _ => f32::NAN,
            };
        }
    }

    fn item_title(&self, item_id: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|i| i.id == item_id)
            .map(|i| i.title.as_str())
    }
}

impl Servable for FakeRetrieval {
    fn kind(&self) -> ModelKind {
        ModelKind::Retrieval
    }
    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        predict_with_retriever(self, self.k, instances)
    }
    fn signature(&self) -> Value {
        retrieval_signature(self.k)
    }
    fn as_retrieval(&self) -> Option<&dyn CandidateSource> {
        Some(self)
    }
}

/// Fake ranking model: rating from a table, else `default`, plus bias; with
/// `relevance` (the default) the same number is also its relevance score.
struct FakeRanking {
    bias: f32,
    compute_ms: u64,
    default: f32,
    items: Vec<String>,
    ratings: HashMap<String, HashMap<String, f32>>,
    relevance: bool,
}

impl Ranker for FakeRanking {
    fn has_relevance(&self) -> bool {
        self.relevance
    }

    fn rank(
        &self,
        user: &User<'_>,
        item_ids: &[&str],
        _retrieval: Option<&[f32]>,
    ) -> shortlist_pipeline::Result<Ranked> {
        std::thread::sleep(Duration::from_millis(self.compute_ms));
        let user = self.ratings.get(user.id);
        let mut unknown_items = Vec::new();
        let scores = item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                if !self.items.iter().any(|x| x == id) {
                    unknown_items.push(i);
                }
                user.and_then(|u| u.get(*id).copied())
                    .unwrap_or(self.default)
                    + self.bias
            })
            .collect();
        Ok(ranked(
            scores,
            self.relevance,
            user.is_some(),
            unknown_items,
        ))
    }
}

impl Servable for FakeRanking {
    fn kind(&self) -> ModelKind {
        ModelKind::Ranking
    }
    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        predict_with_ranker(self, instances)
    }
    fn signature(&self) -> Value {
        ranking_signature()
    }
    fn as_ranking(&self) -> Option<&dyn Ranker> {
        Some(self)
    }
}

#[derive(Deserialize)]
struct Spec {
    kind: String,
    #[serde(default)]
    bias: f32,
    #[serde(default)]
    load_ms: u64,
    /// Fail this many load attempts of the directory before succeeding.
    #[serde(default)]
    fail_first: usize,
    /// Time each retrieve / rank call takes.
    #[serde(default)]
    compute_ms: u64,
    #[serde(default)]
    items: Vec<Value>,
    #[serde(default)]
    users: Value,
    #[serde(default)]
    default: f32,
    #[serde(default = "yes")]
    relevance: bool,
}

fn yes() -> bool {
    true
}

/// Loads a fake model from `<dir>/model.json`; a `corrupt` file makes it fail.
/// `loads` counts load attempts.
pub fn fake_loader(loads: Arc<AtomicUsize>) -> Loader {
    Arc::new(move |dir: &Path| {
        loads.fetch_add(1, Ordering::SeqCst);
        if dir.join("corrupt").exists() {
            return Err(format!("{}: corrupt model file", dir.display()));
        }
        let text = std::fs::read_to_string(dir.join("model.json"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let spec: Spec = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(spec.load_ms));
        if spec.fail_first > 0 {
            static ATTEMPTS: std::sync::Mutex<Option<HashMap<std::path::PathBuf, usize>>> =
                std::sync::Mutex::new(None);
            let mut a = ATTEMPTS.lock().unwrap();
            let n = a
                .get_or_insert_with(HashMap::new)
                .entry(dir.to_path_buf())
                .or_insert(0);
            *n += 1;
            if *n <= spec.fail_first {
                return Err(format!("{}: transient failure {n}", dir.display()));
            }
        }
        let s: Arc<dyn Servable> = match spec.kind.as_str() {
            "retrieval" => Arc::new(FakeRetrieval {
                bias: spec.bias,
                compute_ms: spec.compute_ms,
                items: serde_json::from_value(Value::Array(spec.items))
                    .map_err(|e| e.to_string())?,
                users: serde_json::from_value(spec.users).map_err(|e| e.to_string())?,
                k: 3,
            }),
            "ranking" => Arc::new(FakeRanking {
                bias: spec.bias,
                compute_ms: spec.compute_ms,
                default: spec.default,
                items: serde_json::from_value(Value::Array(spec.items))
                    .map_err(|e| e.to_string())?,
                ratings: serde_json::from_value(spec.users).map_err(|e| e.to_string())?,
                relevance: spec.relevance,
            }),
            other => return Err(format!("unknown kind {other}")),
        };
        Ok(s)
    })
}

pub fn retrieval_spec(bias: f32) -> Value {
    json!({
        "kind": "retrieval",
        "bias": bias,
        "items": [
            {"id": "1", "title": "Toy Story (1995)", "popularity": 5.0},
            {"id": "2", "title": "Jumanji (1995)", "popularity": 4.0},
            {"id": "3", "title": "Heat (1995)", "popularity": 3.0},
            {"id": "4", "title": "Casino (1995)", "popularity": 2.0},
            {"id": "5", "title": "Babe (1995)", "popularity": 1.0}
        ],
        "users": {"42": {"seen": ["1"], "affinity": {"5": 9.0, "4": 8.0}}}
    })
}

pub fn ranking_spec(bias: f32) -> Value {
    json!({
        "kind": "ranking",
        "bias": bias,
        "default": 3.0,
        "items": ["1", "2", "3", "4", "5"],
        "users": {"42": {"2": 4.5, "3": 5.0, "4": 1.0, "5": 2.0}}
    })
}

/// Writes `BASE/<model>/<version>/model.json` atomically: built in a temporary
/// directory inside the model directory, then renamed into place.
pub fn write_version(base: &Path, model: &str, version: u64, spec: &Value, corrupt: bool) {
    let target = base.join(model).join(version.to_string());
    let dir = shortlist_core::atomic::AtomicDir::new(&target).unwrap();
    std::fs::write(
        dir.path().join("model.json"),
        serde_json::to_vec(spec).unwrap(),
    )
    .unwrap();
    if corrupt {
        std::fs::write(dir.path().join("corrupt"), b"x").unwrap();
    }
    dir.commit().unwrap();
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive HTTP/1.1 client on one connection.
pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            stream: BufReader::new(s),
        }
    }

    /// Sends raw bytes (a hand-made request head, maybe a partial body).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut buf = head.into_bytes();
        buf.extend_from_slice(body);
        self.send_raw(&buf).await?;
        self.read_response().await
    }

    /// Reads an interim answer without a body (`100 Continue`): its status.
    pub async fn read_response_head(&mut self) -> std::io::Result<u16> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        let mut blank = String::new();
        self.stream.read_line(&mut blank).await?;
        status.ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))
    }

    pub async fn read_response(&mut self) -> std::io::Result<Resp> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(bad("connection closed"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| bad("no content-length"))?;
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// Reads until the server closes the connection; returns the bytes read
    /// (an error such as a reset counts as closed).
    pub async fn read_until_closed(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.stream.read_to_end(&mut out).await;
        out
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, None).await.unwrap()
    }

    pub async fn post(&mut self, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.request("POST", path, Some(&b)).await.unwrap()
    }

    pub async fn post_raw(&mut self, path: &str, body: &[u8]) -> Resp {
        self.request("POST", path, Some(body)).await.unwrap()
    }
}

/// The value of one sample line of the Prometheus text (`name{labels}` exactly).
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: tempfile::TempDir,
    pub loads: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), shortlist_serve::ServeError>>>,
}

impl TestServer {
    /// A base dir with `retrieval/1` and `ranking/1`, served on 127.0.0.1:0.
    pub async fn start_default() -> TestServer {
        let models = [
            ("retrieval", &retrieval_spec(0.0)),
            ("ranking", &ranking_spec(0.0)),
        ];
        start_ready(&models, |_| {}).await
    }

    pub async fn start(
        base: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> TestServer {
        let mut config = ServeConfig {
            model_base_path: base.path().to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            poll_interval: Duration::from_millis(50),
            ..ServeConfig::default()
        };
        tweak(&mut config);
        let loads = Arc::new(AtomicUsize::new(0));
        let server = shortlist_serve::bind(config, fake_loader(Arc::clone(&loads)))
            .await
            .unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            base,
            loads,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    pub async fn wait_ready(&self) {
        let mut c = self.client().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if c.get("/readyz").await.status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful shutdown; returns the server's result.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server did not shut down")
                .unwrap()
                .unwrap();
        }
    }
}

/// A base dir with version 1 of each `(model, spec)`, served on 127.0.0.1:0 with
/// the configuration `tweak`ed; returns once the server is ready.
pub async fn start_ready(
    models: &[(&str, &Value)],
    tweak: impl FnOnce(&mut ServeConfig),
) -> TestServer {
    let base = tempfile::tempdir().unwrap();
    for (model, spec) in models {
        write_version(base.path(), model, 1, spec, false);
    }
    let s = TestServer::start(base, tweak).await;
    s.wait_ready().await;
    s
}

/// The task running a server started by [`start_real`].
pub type ServerTask = tokio::task::JoinHandle<Result<(), shortlist_serve::ServeError>>;

/// [`start_real`] and a client connected to the server (its address beside, for more).
pub async fn start_real_connected(
    base: &Path,
) -> (
    Client,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    ServerTask,
) {
    let (addr, tx, task) = start_real(base).await;
    (Client::connect(addr).await, addr, tx, task)
}

/// Starts the real server (the model loader of `shortlist serve`) over `base` on
/// 127.0.0.1:0 and waits until it is ready (20 s at most); returns its address, the
/// sender that stops it and its task.
pub async fn start_real(base: &Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, ServerTask) {
    let config = ServeConfig {
        model_base_path: base.to_path_buf(),
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
    (addr, tx, task)
}

/// The `item_id`s of an answer's `items`, in order.
pub fn item_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}
