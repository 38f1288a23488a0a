//! Single-query exact top-k over random items (what one served request does): wall time
//! per query for n items, k results, `excluded` seen items per query (the median of 21
//! passes over 500 queries; the thread's CPU clock ticks in 4 ms steps on some VMs,
//! longer than a pass). Run it under
//! `SHORTLIST_SIMD=avx512` and unset to compare the f32 kernel with the int8 prefilter.
//!
//! `cargo run --release -p shortlist-index --example exact_single -- N K DIM EXCLUDED`

use std::time::Instant;

use shortlist_core::Rng;
use shortlist_index::{ExactIndex, Filter, TopKIndex};

fn main() {
    let arg = |i: usize, d: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (n, k, dim, excluded) = (arg(1, 1682), arg(2, 100), arg(3, 64), arg(4, 85));
    let mut rng = Rng::new(7);
    // Item norms vary like trained towers' (popular items longer).
    let items: Vec<f32> = (0..n)
        .flat_map(|i| {
            let scale = 1.0 + 2.0 / (1.0 + i as f32 / 50.0);
            (0..dim)
                .map(|_| rng.normal() as f32 * scale)
                .collect::<Vec<_>>()
        })
        .collect();
    let index = ExactIndex::new(items, dim).expect("index");
    let queries: Vec<Vec<f32>> = (0..500)
        .map(|_| (0..dim).map(|_| rng.normal() as f32).collect())
        .collect();
    let seen: Vec<Vec<u32>> = (0..500)
        .map(|_| {
            let mut s: Vec<u32> = (0..excluded).map(|_| rng.below(n as u64) as u32).collect();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    let mut per = Vec::new();
    for pass in 0..23 {
        let c = Instant::now();
        for (q, s) in queries.iter().zip(&seen) {
            let hits = index.search(q, k, &Filter::Exclude(s)).expect("search");
            std::hint::black_box(hits);
        }
        if pass > 1 {
            per.push(c.elapsed().as_secs_f64() * 1e6 / queries.len() as f64);
        }
    }
    per.sort_by(f64::total_cmp);
    println!(
        "n {n} k {k} dim {dim} excluded {excluded}: {:.2} µs per query (median)",
        per[per.len() / 2]
    );
}
