//! In-process cost of one two-stage recommendation (what `/v1/recommend` does without
//! HTTP): retrieve 100 candidates (seen items excluded), rank them, keep the top 10.
//!
//! `cargo run --release -p shortlist-serve --example bench_recommend -- models/movielens`

use std::path::PathBuf;
use std::time::Instant;

use shortlist_serve::models::{RankingServable, RetrievalServable};
use shortlist_serve::servable::{Ranker, Retriever};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "models/movielens".into()),
    );
    let retriever = RetrievalServable::load(&base.join("retrieval/1"))?;
    let ranker = RankingServable::load(&base.join("ranking/1"))?;
    let users: Vec<String> = (1..=943).map(|u| u.to_string()).collect();
    let one = |user: &str| -> Result<usize, Box<dyn std::error::Error>> {
        let c = retriever
            .retrieve(user, 100, true, &[])
            .map_err(|e| e.public_message().to_owned())?;
        let ids: Vec<&str> = c.candidates.iter().map(|c| c.item_id).collect();
        let r = ranker
            .rank(user, &ids)
            .map_err(|e| e.public_message().to_owned())?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| r.scores[b].total_cmp(&r.scores[a]));
        order.truncate(10);
        Ok(order.len())
    };
    for u in &users {
        one(u)?; // warm-up
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for u in &users {
            one(u)?;
        }
        times.push(t.elapsed().as_secs_f64() / users.len() as f64 * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let t = Instant::now();
    for u in &users {
        retriever
            .retrieve(u, 100, true, &[])
            .map_err(|e| e.public_message().to_owned())?;
    }
    let retrieve_us = t.elapsed().as_secs_f64() / users.len() as f64 * 1e6;
    println!(
        "one recommend call (retrieve 100 → rank → top 10), median of 5 passes over {} users: {:.1} µs (retrieval alone {:.1} µs)",
        users.len(),
        times[2],
        retrieve_us
    );
    Ok(())
}
