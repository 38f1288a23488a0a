//! Exact top-10 at MovieLens-100k sizes (943 users × 1682 items, dim 32, random
//! embeddings): the batched path with and without a seen-items filter (and on a
//! 1-thread pool, as an in-run scaling reference), and the single-query path (943
//! queries one at a time); then one query over 1M random items of dim 64. Prints
//! median times (201 repetitions after a warm-up of at least 0.2 s; 15 for the 1M case) and, above each, the minimum:
//! the machine is shared, so compare ratios within one run.
//!
//! Run: `cargo bench -p shortlist-index --bench exact_topk`
//!
//! The exact index takes the int8 prefilter on CPUs with AVX-512 VNNI; run it again with
//! `SHORTLIST_SIMD=avx512` (or `avx2`, `off`) to time the f32 kernels on the same machine.
//!
//! `TOPK_EMBEDDINGS=dir` replaces the random ML-100k-sized vectors by a trained model's
//! towers (`queries.f32`, `items.f32`, `dim.txt`, as written by `DUMP_EMBEDDINGS=dir
//! cargo run --release -p shortlist-train --example retrieval_split -- …`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use shortlist_core::Rng;
use shortlist_index::{ExactIndex, Filter, TopKIndex};

const USERS: usize = 943;
const ITEMS: usize = 1682;
const DIM: usize = 32;
const K: usize = 10;
const REPS: usize = 201;

fn median(f: impl FnMut()) -> Duration {
    median_of(REPS, f)
}

/// Median wall time of `reps` runs (after 5 warm-ups); the minimum is printed too, as
/// the machine is shared and medians are noisy.
fn median_of(reps: usize, mut f: impl FnMut()) -> Duration {
    // Warm-up: thread pool, caches, clock ramp (at least 50 runs and 0.2 s).
    let start = Instant::now();
    let mut runs = 0;
    while runs < 50 || start.elapsed() < Duration::from_millis(200) {
        f();
        runs += 1;
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

fn report(name: &str, d: Duration, users: usize) {
    println!(
        "{name:<44} median {:>8.3} ms   {:>6.2} M users/s",
        d.as_secs_f64() * 1e3,
        users as f64 / d.as_secs_f64() / 1e6
    );
}

/// A trained model's towers from `dir` (see the module docs); errors name the file.
fn load_towers(dir: &std::path::Path) -> std::io::Result<(Vec<f32>, Vec<f32>, usize)> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    let floats = |name: &str| -> std::io::Result<Vec<f32>> {
        Ok(read(name)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let dim: usize = String::from_utf8_lossy(&read("dim.txt")?)
        .trim()
        .parse()
        .map_err(|e| std::io::Error::other(format!("{}: {e}", dir.join("dim.txt").display())))?;
    let (queries, items) = (floats("queries.f32")?, floats("items.f32")?);
    if dim == 0 || queries.len() % dim != 0 || items.len() % dim != 0 {
        return Err(std::io::Error::other(format!(
            "{}: queries.f32 / items.f32 are not whole rows of dim {dim}",
            dir.display()
        )));
    }
    Ok((queries, items, dim))
}

fn main() -> Result<(), shortlist_index::Error> {
    let (users, items, dim, source) = match std::env::var_os("TOPK_EMBEDDINGS") {
        Some(dir) => {
            let (q, i, dim) = load_towers(std::path::Path::new(&dir))?;
            (
                q,
                i,
                dim,
                format!("trained towers from {}", dir.to_string_lossy()),
            )
        }
        None => {
            let mut rng = Rng::new(42);
            let mut random =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
            let users = random(USERS * DIM);
            (
                users,
                random(ITEMS * DIM),
                DIM,
                "random normal vectors".to_string(),
            )
        }
    };
    let (n_users, n_items) = (users.len() / dim, items.len() / dim);
    let index = ExactIndex::new(items, dim)?;
    // About 85 seen items per user, as in ML-100k's 80% training split.
    let mut rng = Rng::new(7);
    let seen: Vec<Vec<u32>> = (0..n_users)
        .map(|_| {
            let mut v: Vec<u32> = (0..85).map(|_| rng.below(n_items as u64) as u32).collect();
            v.sort_unstable();
            v
        })
        .collect();
    println!(
        "exact top-{K}: {n_users} users × {n_items} items × dim {dim} ({source}), {} rayon threads",
        rayon::current_num_threads()
    );
    report(
        "batch, no filter",
        median(|| {
            black_box(index.search_batch(&users, K, &|_| Filter::None).ok());
        }),
        n_users,
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
        n_users,
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
        n_users,
    );
    for (name, seen_excluded) in [
        ("single-query path, sequential, no filter", false),
        ("single-query path, sequential, seen excluded", true),
    ] {
        let d = median(|| {
            for (q, u) in users.chunks_exact(dim).enumerate() {
                let filter = if seen_excluded {
                    Filter::ExcludeSorted(&seen[q])
                } else {
                    Filter::None
                };
                black_box(index.search(u, K, &filter).ok());
            }
        });
        report(name, d, n_users);
        println!(
            "{:<44} {:>8.2} µs per query",
            "",
            d.as_secs_f64() * 1e6 / n_users as f64
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
