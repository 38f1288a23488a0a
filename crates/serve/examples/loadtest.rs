//! Load test of `/v1/recommend` with synthetic in-memory models (no training code).
//!
//! ```text
//! cargo run --release -p shortlist-serve --example loadtest -- [connections] [seconds] [items]
//! ```
//!
//! Starts the server on 127.0.0.1:0 with a brute-force retrieval model over `items`
//! items (dimension 32) and a dot-product ranking model, then `connections`
//! keep-alive clients in the same process send requests back to back for `seconds`,
//! and prints throughput and latency percentiles. Client and server share the
//! machine's cores, so this is a lower bound on the server's capacity.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shortlist_pipeline::testing::{ranked, retrieved};
use shortlist_pipeline::User;
use shortlist_serve::servable::{predict_with_ranker, predict_with_retriever};
use shortlist_serve::{
    ApiError, Candidate, CandidateSource, Loader, ModelKind, Ranked, Ranker, Retrieved, Servable,
    ServeConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const DIM: usize = 32;

struct Synthetic {
    kind: ModelKind,
    ids: Vec<String>,
    titles: Vec<String>,
    index: rustc_hash::FxHashMap<String, usize>,
    item_vecs: Vec<f32>,
    users: usize,
}

fn vec_for(seed: u64) -> [f32; DIM] {
    let mut rng = shortlist_core::Rng::new(seed);
    let mut v = [0.0; DIM];
    for f in &mut v {
        *f = rng.next_f32() - 0.5;
    }
    v
}

impl Synthetic {
    fn new(kind: ModelKind, n: usize) -> Self {
        let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let mut item_vecs = Vec::with_capacity(n * DIM);
        for i in 0..n {
            item_vecs.extend_from_slice(&vec_for(i as u64 + 1_000_000));
        }
        Synthetic {
            kind,
            titles: ids.iter().map(|i| format!("Movie {i}")).collect(),
            index: ids
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i))
                .collect(),
            ids,
            item_vecs,
            users: 10_000,
        }
    }

    fn user(&self, user_id: &str) -> ([f32; DIM], bool) {
        match user_id.parse::<usize>() {
            Ok(u) if u < self.users => (vec_for(u as u64), true),
            _ => (vec_for(u64::MAX), false),
        }
    }

    fn score(&self, u: &[f32; DIM], item: usize) -> f32 {
        let v = &self.item_vecs[item * DIM..(item + 1) * DIM];
        u.iter().zip(v).map(|(a, b)| a * b).sum()
    }
}

impl CandidateSource for Synthetic {
    fn kind(&self) -> &'static str {
        "retrieval"
    }

    fn retrieve<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        _exclude_seen: bool,
        exclude_items: &[&str],
    ) -> shortlist_pipeline::Result<Retrieved<'a>> {
        let (u, known) = self.user(user.id);
        let mut all: Vec<Candidate<'a>> = (0..self.ids.len())
            .map(|i| Candidate {
                item_id: &self.ids[i],
                score: self.score(&u, i),
            })
            .filter(|c| !exclude_items.contains(&c.item_id))
            .collect();
        let k = k.min(all.len());
        if k > 0 && k < all.len() {
            all.select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
        }
        all.truncate(k);
        all.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        Ok(retrieved(all, known))
    }

    fn score_items(&self, user: &User<'_>, item_ids: &[&str], out: &mut [f32]) {
        let user_id = user.id;
        let (u, _) = self.user(user_id);
        for (o, id) in out.iter_mut().zip(item_ids) {
            *o = self.index.get(*id).map_or(f32::NAN, |&i| self.score(&u, i));
        }
    }

    fn item_title(&self, item_id: &str) -> Option<&str> {
        self.index.get(item_id).map(|&i| self.titles[i].as_str())
    }
}

impl Ranker for Synthetic {
    fn has_relevance(&self) -> bool {
        true
    }

    fn rank(
        &self,
        user: &User<'_>,
        item_ids: &[&str],
        _retrieval: Option<&[f32]>,
    ) -> shortlist_pipeline::Result<Ranked> {
        let (u, known) = self.user(user.id);
        let mut unknown_items = Vec::new();
        let scores = item_ids
            .iter()
            .enumerate()
            .map(|(n, id)| match self.index.get(*id) {
                Some(&i) => 3.0 + self.score(&u, i),
                None => {
                    unknown_items.push(n);
                    3.0
                }
            })
            .collect();
        Ok(ranked(scores, true, known, unknown_items))
    }
}

impl Servable for Synthetic {
    fn kind(&self) -> ModelKind {
        self.kind
    }
    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        match self.kind {
            ModelKind::Retrieval => predict_with_retriever(self, 10, instances),
            ModelKind::Ranking => predict_with_ranker(self, instances),
        }
    }
    fn signature(&self) -> Value {
        Value::Null
    }
    fn as_retrieval(&self) -> Option<&dyn CandidateSource> {
        (self.kind == ModelKind::Retrieval).then_some(self as &dyn CandidateSource)
    }
    fn as_ranking(&self) -> Option<&dyn Ranker> {
        (self.kind == ModelKind::Ranking).then_some(self as &dyn Ranker)
    }
}

async fn client(addr: SocketAddr, until: Instant, id: usize) -> Vec<u32> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut s = BufReader::new(s);
    let mut lat = Vec::new();
    let mut n = id;
    let mut line = String::new();
    while Instant::now() < until {
        n = (n * 7 + 13) % 12_000;
        let body = format!(r#"{{"user_id": "{n}", "k": 10, "num_candidates": 100}}"#);
        let req = format!(
            "POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        s.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut len = 0;
        line.clear();
        s.read_line(&mut line).await.unwrap();
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            s.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.unwrap();
        lat.push(t.elapsed().as_micros() as u32);
    }
    lat
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let conns = args.first().copied().unwrap_or(16);
    let secs = args.get(1).copied().unwrap_or(5);
    let items = args.get(2).copied().unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let base = tempfile::tempdir().unwrap();
        for m in ["retrieval", "ranking"] {
            std::fs::create_dir_all(base.path().join(m).join("1")).unwrap();
        }
        let loader: Loader = Arc::new(move |dir: &Path| {
            let kind = if dir.parent().is_some_and(|p| p.ends_with("retrieval")) {
                ModelKind::Retrieval
            } else {
                ModelKind::Ranking
            };
            Ok(Arc::new(Synthetic::new(kind, items)) as Arc<dyn Servable>)
        });
        let config = ServeConfig {
            model_base_path: base.path().to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServeConfig::default()
        };
        let server = shortlist_serve::bind(config, loader).await.unwrap();
        let addr = server.local_addr();
        let reg = Arc::clone(&server.state().registry);
        tokio::spawn(server.run(std::future::pending()));
        while !reg.readiness().ready {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let until = Instant::now() + Duration::from_secs(secs as u64);
        let tasks: Vec<_> = (0..conns).map(|i| tokio::spawn(client(addr, until, i))).collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "{conns} connections, {items} items, {secs} s: {} requests, {:.0} req/s; latency µs p50 {} p90 {} p99 {} max {}",
            lat.len(),
            lat.len() as f64 / secs as f64,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            lat[lat.len() - 1]
        );
    });
}
