//! Server settings and limits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::events::{EventTable, EventsConfig, FsyncPolicy};

/// Everything [`serve`](crate::serve) needs besides the loader. Every limit has a
/// default (see [`ServeConfig::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// `BASE` of the TensorFlow Serving layout `BASE/<model name>/<version>/`.
    pub model_base_path: PathBuf,
    /// Where to listen. Default `0.0.0.0:8501` (TF Serving's REST port, every
    /// interface); port 0 picks a free port (see
    /// [`Server::local_addr`](crate::Server::local_addr)).
    pub addr: SocketAddr,
    /// How often the model base path is scanned for new versions. Default 1 s.
    pub poll_interval: Duration,
    /// Models to serve. Empty (default): every sub-directory of the base path
    /// whose name does not start with `.`. When set, `/readyz` waits for exactly
    /// these (see [`Registry::readiness`](crate::Registry::readiness)).
    pub models: Vec<String>,
    /// Default retrieval model of `/v1/recommend`. Default `retrieval`.
    pub retrieval_model: String,
    /// Default ranking model of `/v1/recommend` and `/v1/rank`. Default `ranking`.
    pub ranking_model: String,
    /// Largest accepted request body; larger ones get 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Largest `k` of `/v1/recommend`. Default 1000.
    pub max_k: usize,
    /// `num_candidates` of `/v1/recommend` when the request has none (raised to `k`
    /// if smaller). Default 100.
    pub default_num_candidates: usize,
    /// Largest `num_candidates` of `/v1/recommend`, and largest `item_ids` list of
    /// `/v1/rank`. Default 10 000.
    pub max_num_candidates: usize,
    /// Largest number of instances in one `:predict` call. Default 1000.
    pub max_instances: usize,
    /// Items returned per user by a retrieval model's `:predict`. Default 10 (the
    /// TensorFlow Recommenders `BruteForce` default).
    pub predict_k: usize,
    /// Time from a parsed request head to the answer, body reading and model
    /// computation included; past it the answer is 504 with a JSON error (a
    /// computation that already started finishes in the pool, still counted in
    /// flight, and its result is dropped). Default 10 s.
    pub request_timeout: Duration,
    /// Time a connection may take to send a complete request head, counted from
    /// accepting it (first request) or from the first byte of a later request;
    /// past it the connection is closed. Default 5 s.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection (no request in progress, no byte of the
    /// next one received) stays open. Default 60 s.
    pub idle_timeout: Duration,
    /// Most connections open at once. `None` (default): derived from the process's
    /// file-descriptor limit (raised to its hard limit at start), minus a reserve
    /// for model files — see [`crate::conn::default_max_connections`]. At the cap,
    /// the oldest connections that are idle or still sending their request head
    /// are closed to make room; if every connection is busy the new one is closed.
    pub max_connections: Option<usize>,
    /// Threads of the model-computation pool (`:predict`, `/v1/recommend`,
    /// `/v1/rank` run there, off the async I/O workers). 0 (default): one per core.
    pub compute_threads: usize,
    /// Most computations admitted at once (queued + running); beyond it the answer
    /// is 503 with `Retry-After` at once. Default 256.
    pub max_in_flight: usize,
    /// A computation is also refused (503) when the estimated wait before it starts
    /// — the queue ahead of it times the recent mean computation time, divided by
    /// the threads — exceeds this. Keeps accepted requests fast under overload
    /// whatever each request costs. Default 50 ms.
    pub max_queue_wait: Duration,
    /// Event names accepted by `POST /v1/events` (and `history[].event`) with their
    /// strengths. Default view 1, click 2, like 3, purchase 5.
    pub event_table: EventTable,
    /// When appended events reach the disk. Default [`FsyncPolicy::Batch`].
    pub events_fsync: FsyncPolicy,
    /// Events remembered per user (the latest). Default 200.
    pub events_per_user: usize,
    /// Users whose events are remembered (the most recently active). Default
    /// 1,000,000.
    pub events_max_users: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            model_base_path: PathBuf::from("models"),
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8501)),
            poll_interval: Duration::from_secs(1),
            models: Vec::new(),
            retrieval_model: "retrieval".into(),
            ranking_model: "ranking".into(),
            max_body_bytes: 1 << 20,
            max_k: 1000,
            default_num_candidates: 100,
            max_num_candidates: 10_000,
            max_instances: 1000,
            predict_k: 10,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            compute_threads: 0,
            max_in_flight: 256,
            max_queue_wait: Duration::from_millis(50),
            event_table: EventTable::default(),
            events_fsync: FsyncPolicy::Batch,
            events_per_user: 200,
            events_max_users: 1_000_000,
        }
    }
}

impl ServeConfig {
    /// The defaults with the given base path, listening on `0.0.0.0:port`.
    pub fn new(model_base_path: impl Into<PathBuf>, port: u16) -> Self {
        ServeConfig {
            model_base_path: model_base_path.into(),
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            ..ServeConfig::default()
        }
    }

    /// The event log's settings: `BASE/.events/events.log` and this config's policy.
    pub fn events(&self) -> EventsConfig {
        EventsConfig {
            fsync: self.events_fsync,
            max_per_user: self.events_per_user,
            max_users: self.events_max_users,
            table: self.event_table.clone(),
            ..EventsConfig::for_base(&self.model_base_path)
        }
    }
}
