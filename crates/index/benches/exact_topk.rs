//! Exact top-10 at MovieLens-100k sizes (943 users × 1682 items, dim 32, random
//! embeddings): the batched path with and without a seen-items filter (and on a
//! 1-thread pool, as an in-run scaling reference), and the single-query path (943
//! queries one at a time); then one query over 1M random items of dim 64. Prints
//! median times (50 repetitions, 15 for the 1M case) and, above each, the minimum:
//! the machine is shared, so compare ratios within one run.
//!
//! Run: `cargo bench -p shortlist-index --bench exact_topk`

use std::hint::black_box;
use std::time::{Duration, Instant};

use shortlist_core::Rng;
use shortlist_index::{ExactIndex, Filter, TopKIndex};

const USERS: usize = 943;
const ITEMS: usize = 1682;
const DIM: usize = 32;
const K: usize = 10;
const REPS: usize = 50;

fn median(f: impl FnMut()) -> Duration {
    median_of(REPS, f)
}

/// Median wall time of `reps` runs (after 5 warm-ups); the minimum is printed too, as
/// the machine is shared and medians are noisy.
fn median_of(reps: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..5 {
        f(); // warm-up: thread pool, caches
    }
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    println!("  (min {:.3} ms)", times[0].as_secs_f64() * 1e3);
    times[reps / 2]
}

fn report(name: &str, d: Duration) {
    println!(
        "{name:<44} median {:>8.3} ms   {:>6.2} M users/s",
        d.as_secs_f64() * 1e3,
        USERS as f64 / d.as_secs_f64() / 1e6
    );
}

fn main() -> Result<(), shortlist_index::Error> {
    let mut rng = Rng::new(42);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let users = random(USERS * DIM);
    let index = ExactIndex::new(random(ITEMS * DIM), DIM)?;
    // About 85 seen items per user, as in ML-100k's 80% training split.
    let mut rng = Rng::new(7);
    let seen: Vec<Vec<u32>> = (0..USERS)
        .map(|_| {
            let mut v: Vec<u32> = (0..85).map(|_| rng.below(ITEMS as u64) as u32).collect();
            v.sort_unstable();
            v
        })
        .collect();
    println!(
        "exact top-{K}: {USERS} users × {ITEMS} items × dim {DIM}, {} rayon threads",
        rayon::current_num_threads()
    );
    report(
        "batch, no filter",
        median(|| {
            black_box(index.search_batch(&users, K, &|_| Filter::None).ok());
        }),
    );
    report(
        "batch, seen items excluded (ExcludeSorted)",
        median(|| {
            black_box(
                index
                    .search_batch(&users, K, &|q| Filter::ExcludeSorted(&seen[q]))
                    .ok(),
            );
        }),
    );
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| shortlist_index::Error::Io(std::io::Error::other(e)))?;
    report(
        "batch, no filter, 1 thread (scaling reference)",
        one.install(|| {
            median(|| {
                black_box(index.search_batch(&users, K, &|_| Filter::None).ok());
            })
        }),
    );
    for (name, seen_excluded) in [
        ("single-query path, sequential, no filter", false),
        ("single-query path, sequential, seen excluded", true),
    ] {
        let d = median(|| {
            for (q, u) in users.chunks_exact(DIM).enumerate() {
                let filter = if seen_excluded {
                    Filter::ExcludeSorted(&seen[q])
                } else {
                    Filter::None
                };
                black_box(index.search(u, K, &filter).ok());
            }
        });
        report(name, d);
        println!(
            "{:<44} {:>8.2} µs per query",
            "",
            d.as_secs_f64() * 1e6 / USERS as f64
        );
    }

    const BIG: usize = 1_000_000;
    const BIG_DIM: usize = 64;
    let mut rng = Rng::new(11);
    let big_items: Vec<f32> = (0..BIG * BIG_DIM).map(|_| rng.normal() as f32).collect();
    let query: Vec<f32> = (0..BIG_DIM).map(|_| rng.normal() as f32).collect();
    let big = ExactIndex::new(big_items, BIG_DIM)?;
    let d = median_of(15, || {
        black_box(big.search(&query, K, &Filter::None).ok());
    });
    println!(
        "{:<44} median {:>8.3} ms   {:>6.2} GB/s of item data",
        format!("single query, {BIG} items × dim {BIG_DIM}"),
        d.as_secs_f64() * 1e3,
        (BIG * BIG_DIM * 4) as f64 / d.as_secs_f64() / 1e9
    );
    Ok(())
}
