//! Every user's list at once, timed: what the Python package's `Model.recommend` runs
//! ([`ModelSource::retrieve_rows_batch`]) for all of a model's users, k 10, seen items
//! excluded, on every core.
//!
//! ```text
//! cargo run --release -p shortlist-pipeline --example batch_recommend -- MODEL_DIR [CALLS] [GAP_MS]
//! ```
//!
//! Prints the median, minimum, 90th percentile and maximum wall time of `CALLS` calls
//! (default 301) after 20 warm-up calls. With `GAP_MS`, the process sleeps that long
//! before each call, as a notebook's single calls come: on this project's 2-core VMs a
//! call after 20 ms idle takes about twice as long as one of a back-to-back series
//! (BENCHMARKS.md, "The Python package").
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use shortlist_pipeline::{load_dir, Stage};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .expect("usage: batch_recommend MODEL_DIR [CALLS] [GAP_MS]");
    let calls: usize = args.get(2).map_or(301, |c| c.parse().unwrap());
    let Stage::Source(source) = load_dir(Path::new(dir)).unwrap() else {
        panic!("{dir}: expected a retrieval, iALS or EASE model");
    };
    let ids: Vec<&str> = source
        .spec()
        .user_id
        .values()
        .iter()
        .map(String::as_str)
        .collect();
    for _ in 0..20 {
        std::hint::black_box(source.retrieve_rows_batch(&ids, 10, true).unwrap());
    }
    let gap: u64 = args.get(3).map_or(0, |g| g.parse().unwrap());
    let mut times: Vec<f64> = (0..calls)
        .map(|_| {
            if gap > 0 {
                std::thread::sleep(Duration::from_millis(gap));
            }
            let t = Instant::now();
            std::hint::black_box(source.retrieve_rows_batch(&ids, 10, true).unwrap());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{} users, k 10, seen excluded: median {:.3} ms, min {:.3}, p90 {:.3}, max {:.3} ({calls} calls)",
        ids.len(),
        times[calls / 2],
        times[0],
        times[calls * 9 / 10],
        times[calls - 1]
    );
}
