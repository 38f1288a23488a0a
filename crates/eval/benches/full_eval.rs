//! Full evaluation (all default metrics) at MovieLens-100k sizes: 943 users × 1682
//! items, dim 32 random embeddings, 80k train / 20k test random interactions.
//! Prints median times over 50 repetitions.
//!
//! Run: `cargo bench -p shortlist-eval --bench full_eval`

use std::hint::black_box;
use std::time::{Duration, Instant};

use shortlist_core::Rng;
use shortlist_eval::{EmbeddingScorer, EvalConfig, Evaluator, Pairs, PopularityScorer};

const USERS: usize = 943;
const ITEMS: usize = 1682;
const DIM: usize = 32;
const REPS: usize = 50;

fn median(mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<Duration> = (0..REPS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[REPS / 2]
}

fn main() -> Result<(), shortlist_eval::Error> {
    let mut rng = Rng::new(42);
    let user_emb: Vec<f32> = (0..USERS * DIM).map(|_| rng.normal() as f32).collect();
    let item_emb: Vec<f32> = (0..ITEMS * DIM).map(|_| rng.normal() as f32).collect();
    let mut pairs = |n: usize| -> (Vec<u32>, Vec<u32>) {
        (0..n)
            .map(|_| {
                (
                    rng.below(USERS as u64) as u32,
                    rng.below(ITEMS as u64) as u32,
                )
            })
            .unzip()
    };
    let (train_u, train_i) = pairs(80_000);
    let (test_u, test_i) = pairs(20_000);
    let (train, test) = (
        Pairs::new(&train_u, &train_i)?,
        Pairs::new(&test_u, &test_i)?,
    );
    let scorer = EmbeddingScorer::new(&user_emb, &item_emb, DIM)?;
    let config = EvalConfig::default();

    println!(
        "full evaluation: {USERS} users × {ITEMS} items × dim {DIM}, 80k train / 20k test, {} rayon threads",
        rayon::current_num_threads()
    );
    let t = median(|| {
        black_box(Evaluator::new(USERS, ITEMS, train, test).ok());
    });
    println!(
        "prepare (group train/test by user)   median {:>8.3} ms",
        t.as_secs_f64() * 1e3
    );
    let eval = Evaluator::new(USERS, ITEMS, train, test)?;
    let t = median(|| {
        black_box(eval.evaluate(&scorer, &config).ok());
    });
    println!(
        "evaluate, embedding scorer           median {:>8.3} ms",
        t.as_secs_f64() * 1e3
    );
    let pop = PopularityScorer::fit(ITEMS, &train_i)?;
    let t = median(|| {
        black_box(eval.evaluate(&pop, &config).ok());
    });
    println!(
        "evaluate, popularity scorer          median {:>8.3} ms",
        t.as_secs_f64() * 1e3
    );
    let m = eval.evaluate(&scorer, &config)?;
    println!("metrics (random embeddings): {m:?}");
    Ok(())
}
