//! Native cost of what the browser runs per query: the WebAssembly build's engine
//! (bundle loaded, JSON request in, JSON answer out) for an unknown user with a
//! three-item history, 100 candidates, ranked, top 10 — to set beside the
//! browser's figure of `scripts/demo/browser_test.sh` (same models, same request).
//!
//! `cargo run --release -p shortlist-wasm --example bench_engine -- BUNDLE [HISTORY_IDS]`
//! (`shortlist export bundle --model-base-path models/movielens --out BUNDLE`;
//! history default `50,1,100`: Star Wars, Toy Story, Fargo in ML-100k).

use std::time::Instant;

use shortlist_wasm::engine::Engine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: bench_engine BUNDLE [HISTORY_IDS]")?;
    let history: Vec<String> = args
        .next()
        .unwrap_or_else(|| "50,1,100".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let t0 = Instant::now();
    let engine = Engine::from_bundle(&bytes)?;
    let load = t0.elapsed();
    let body = serde_json::json!({
        "user_id": "demo-browser-user", "history": history, "k": 10,
        "num_candidates": 100, "exclude_seen": true,
    })
    .to_string();
    let t1 = Instant::now();
    engine.recommend_json(&body)?;
    let first = t1.elapsed();
    let runs = 1000;
    let mut passes = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..runs {
            engine.recommend_json(&body)?;
        }
        passes.push(t.elapsed().as_secs_f64() * 1e6 / runs as f64);
    }
    passes.sort_by(f64::total_cmp);
    println!(
        "bundle {:.2} MB: load {:.0} ms, first query {:.2} ms, per query {:.1} µs (median of 5 passes of {runs})",
        bytes.len() as f64 / 1e6,
        load.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        passes[2]
    );
    Ok(())
}
