//! In-process cost of one two-stage recommendation (what `/v1/recommend` does without
//! HTTP): `shortlist_pipeline::recommend` with 100 candidates (seen items excluded),
//! ranked, top 10 — the server's function, called directly.
//!
//! `cargo run --release -p shortlist-serve --example bench_recommend -- models/movielens`

use std::path::PathBuf;
use std::time::Instant;

/// CPU time of the calling thread, from /proc (the machine is shared: wall time
/// counts other processes' turns, CPU time does not).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

use shortlist_pipeline::{
    load_dir, recommend, CandidateSource, Order, Ranker, Request, Stage, Stages, User,
};

/// The allocator `shortlist serve` uses (huge pages for large model arrays).
#[global_allocator]
static ALLOC: shortlist_core::alloc::HugePageAlloc = shortlist_core::alloc::HugePageAlloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "models/movielens".into()),
    );
    let Stage::Source(source) = load_dir(&base.join("retrieval/1"))? else {
        return Err("retrieval/1 is not a candidate source".into());
    };
    let Stage::Ranking(ranker) = load_dir(&base.join("ranking/1"))? else {
        return Err("ranking/1 is not a ranking model".into());
    };
    let stages = Stages {
        primary: &source,
        extra: &[],
        ranker: Some(&ranker as &dyn Ranker),
    };
    let users: Vec<String> = (1..=943).map(|u| u.to_string()).collect();
    let one = |user: &str| -> Result<usize, Box<dyn std::error::Error>> {
        let r = recommend(
            &stages,
            &Request {
                user: User::id(user),
                k: 10,
                num_candidates: 100,
                exclude_seen: true,
                exclude_items: &[],
                order: Order::Auto,
            },
        )?;
        Ok(r.items.len())
    };
    for u in &users {
        one(u)?; // warm-up
    }
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let c = thread_cpu_ns();
        for u in &users {
            one(u)?;
        }
        times.push(t.elapsed().as_secs_f64() / users.len() as f64 * 1e6);
        if let (Some(a), Some(b)) = (c, thread_cpu_ns()) {
            cpu.push((b - a) as f64 / 1e3 / users.len() as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let t = Instant::now();
    for u in &users {
        source.retrieve(&User::id(u), 100, true, &[])?;
    }
    let retrieve_us = t.elapsed().as_secs_f64() / users.len() as f64 * 1e6;
    if let Some(c) = cpu.get(cpu.len() / 2) {
        println!("CPU time per call (median of 5 passes): {c:.1} µs");
    }
    println!(
        "one recommend call (retrieve 100 → rank ({}) → top 10), median of 5 passes over {} users: {:.1} µs (retrieval alone {:.1} µs)",
        if ranker.has_relevance() { "relevance head" } else { "rating only" },
        users.len(),
        times[2],
        retrieve_us
    );
    Ok(())
}
