//! The ranking model's objectives and options side by side on a split (default: the
//! shared ML-100k split42 files): for each configuration and seed, the rating head's
//! test RMSE, the click metrics with "rating ≥ 4" as the click (a rating model's
//! predicted rating is its score), the shared embeddings' full-ranking retrieval
//! metrics, training time and the scoring cost (one pair, 100 candidates of one user,
//! 1000 random pairs; medians). Configurations alternate within each seed, so a loaded
//! machine slows them alike. A configuration's `[relevance]` head is not trained here.
//!
//! `FEATURES_FROM=$SHORTLIST_HOME/datasets/ml-100k cargo run --release -p shortlist-train --example objectives_split42 -- SEEDS CONFIG.toml [CONFIG.toml…]`
//! (SEEDS: `42,1,2`; `DATA_DIR=dir` for other split files.)

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use shortlist_eval::ClickMetrics;
use shortlist_model::{Objective, RankingModel, Scratch};
use shortlist_train::multitask::shared_retrieval;
use shortlist_train::{evaluate, predictions, train_split, TrainConfig};

/// Median milliseconds of `f` over `reps` runs.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// (one pair µs, 100 candidates of one user ms, 1000 random pairs ms).
fn scoring(model: &RankingModel) -> (f64, f64, f64) {
    let (nu, ni) = (model.num_users() as u64, model.num_items() as u64);
    let mut rng = shortlist_core::Rng::new(3);
    let users: Vec<u32> = (0..1000).map(|_| 1 + rng.below(nu - 1) as u32).collect();
    let items: Vec<u32> = (0..1000).map(|_| 1 + rng.below(ni - 1) as u32).collect();
    let mut scratch = Scratch::default();
    let mut out = vec![0.0; 1000];
    let one = median_ms(2000, || {
        model.predict_batch_with(&users[..1], &items[..1], &mut scratch, &mut out[..1]);
        black_box(&out);
    }) * 1e3;
    let same = vec![users[0]; 100];
    let list = median_ms(300, || {
        model.predict_batch_with(&same, &items[..100], &mut scratch, &mut out[..100]);
        black_box(&out);
    });
    let many = median_ms(100, || {
        model.predict_batch_with(&users, &items, &mut scratch, &mut out);
        black_box(&out);
    });
    (one, list, many)
}

fn mean_sd(v: &[f64]) -> String {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    format!("{m:.4} ± {sd:.4}")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds: Vec<u64> = args
        .first()
        .ok_or("usage: objectives_split42 SEEDS CONFIG.toml [CONFIG.toml…]")?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let configs: Vec<(String, TrainConfig)> = args[1..]
        .iter()
        .map(|p| Ok((p.clone(), TrainConfig::load(&PathBuf::from(p))?)))
        .collect::<Result<_, shortlist_train::Error>>()?;
    let dir = PathBuf::from(
        std::env::var("DATA_DIR").unwrap_or_else(|_| "/work/shared/data/ml-100k-split42".into()),
    );
    let split = common::load_split_dir(&dir)?;
    let (d, test) = (&split.dataset, &split.test);
    let it = &d.interactions;
    let clicks: Vec<f32> = test
        .iter()
        .map(|&r| f32::from(u8::from(it.ratings[r] >= 4.0)))
        .collect();
    let test_users: Vec<u32> = test.iter().map(|&r| it.users[r]).collect();
    // Per configuration: rows of (name, value) per seed.
    let mut table: Vec<Vec<(String, Vec<f64>)>> = vec![Vec::new(); configs.len()];
    let mut record = |k: usize, name: &str, v: f64| {
        match table[k].iter_mut().find(|(n, _)| n == name) {
            Some((_, vs)) => vs.push(v),
            None => table[k].push((name.to_owned(), vec![v])),
        };
    };
    for &seed in &seeds {
        for (k, (path, cfg)) in configs.iter().enumerate() {
            // The relevance head orders served lists and changes none of the figures
            // here; `bench/pipeline_split42.sh` measures it.
            let cfg = TrainConfig {
                seed,
                relevance: None,
                ..cfg.clone()
            };
            let start = Instant::now();
            let (model, _) = train_split(&split, &cfg)?;
            let secs = start.elapsed().as_secs_f64();
            let p = predictions(&model, d, test);
            let c = ClickMetrics::of(&test_users, &clicks, &p)?;
            let (one, list, many) = scoring(&model);
            let (shared, pop) = shared_retrieval(&model, d, &split.train, test)?;
            println!(
                "seed {seed} {path}: {} objective, train {secs:.1} s",
                cfg.objective.name()
            );
            if cfg.objective != Objective::Click {
                record(k, "test RMSE", evaluate(&model, d, test).rmse);
            }
            record(k, "AUC (rating ≥ 4)", c.auc.unwrap_or(f64::NAN));
            record(k, "group AUC", c.group_auc.unwrap_or(f64::NAN));
            if cfg.objective == Objective::Click {
                record(k, "log-loss", c.log_loss);
            }
            for m in ["recall@20", "ndcg@10", "top_k_accuracy@100"] {
                let v = shared.get(m).unwrap_or(f64::NAN);
                record(k, &format!("shared embeddings {m}"), v);
                if k == 0 {
                    record(
                        k,
                        &format!("popularity {m}"),
                        pop.get(m).unwrap_or(f64::NAN),
                    );
                }
            }
            record(k, "train seconds", secs);
            record(k, "score 1 pair (µs)", one);
            record(k, "score 100 candidates (ms)", list);
            record(k, "score 1000 pairs (ms)", many);
            record(
                k,
                "scoring cache",
                f64::from(u8::from(model.scoring_cache().is_some())),
            );
        }
    }
    for (k, (path, _)) in configs.iter().enumerate() {
        println!("\n{path} (seeds {seeds:?})");
        for (name, v) in &table[k] {
            println!("  {name:<36} {}   {v:.4?}", mean_sd(v));
        }
    }
    Ok(())
}
