//! Trains a ranking model on a split (default: the shared ML-100k split42 files) and
//! prints per-epoch metrics (`CURVES_DIR=dir` also writes `curves.csv` per seed, and `curves.png` with `--features plot`;
//! `FEATURES_FROM=/tmp/slhome/datasets/ml-100k` attaches that dataset's side features by raw id).
//!
//! `PRED_OUT=prefix` writes every test row's prediction to `prefix-{seed}.tsv`;
//! `SCORE_BENCH=1` times in-process scoring of the trained model (1 pair, 1000 pairs).
//!
//! `cargo run --release -p shortlist-train --example ranking_split42 -- CONFIG.toml [EPOCHS] [SEED,SEED…] [DATA_DIR]`

mod common;

use std::path::PathBuf;

use shortlist_train::{train_split, TrainConfig};

/// Prints the median cost of scoring one pair and 1000 pairs with `model`.
fn score_bench(model: &shortlist_model::RankingModel) {
    use std::hint::black_box;
    use std::time::Instant;
    let (nu, ni) = (model.num_users() as u64, model.num_items() as u64);
    let mut rng = shortlist_core::Rng::new(3);
    let users: Vec<u32> = (0..1000).map(|_| rng.below(nu) as u32).collect();
    let items: Vec<u32> = (0..1000).map(|_| rng.below(ni) as u32).collect();
    let reps = 100_000;
    let t = Instant::now();
    let mut s = 0.0;
    for k in 0..reps {
        s += model.predict(users[k % 1000], items[k % 1000]);
    }
    let one = t.elapsed().as_secs_f64() / reps as f64 * 1e6;
    black_box(s);
    let mut scratch = shortlist_model::Scratch::default();
    let mut out = vec![0.0; 1000];
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            model.predict_batch_with(&users, &items, &mut scratch, &mut out);
            black_box(&out);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "scoring ({} model(s), autorec: {}): one pair {one:.2} us; 1000 pairs {:.3} ms (median)",
        model.members.len() + 1,
        model.autorec.is_some(),
        times[times.len() / 2]
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| "configs/ranking-tfrs.toml".into());
    let mut cfg = TrainConfig::load(&config)?;
    if let Some(e) = args.get(1) {
        cfg.epochs = e.parse()?;
    }
    let seeds: Vec<u64> = match args.get(2) {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![cfg.seed],
    };
    let dir = PathBuf::from(
        args.get(3)
            .map_or("/work/shared/data/ml-100k-split42", String::as_str),
    );
    let split = common::load_split_dir(&dir)?;
    let mut finals = Vec::new();
    for seed in seeds {
        cfg.seed = seed;
        let (model, h) = train_split(&split, &cfg)?;
        for e in &h.epochs {
            println!(
                "seed {seed} epoch {:3} train_rmse {:.4} valid_rmse {} test_rmse {:.4} test_mae {:.4} {:.3}s",
                e.epoch,
                e.train_rmse,
                e.valid_rmse.map_or("-".into(), |v| format!("{v:.4}")),
                e.test_rmse.unwrap_or(f64::NAN),
                e.test_mae.unwrap_or(f64::NAN),
                e.seconds
            );
        }
        let t = model
            .meta
            .metrics
            .get("test_rmse")
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "seed {seed}: kept epoch {} test_rmse {t:.4} ({} model(s))",
            h.best_epoch,
            model.members.len() + 1
        );
        finals.push(t);
        if std::env::var_os("SCORE_BENCH").is_some() {
            score_bench(&model);
        }
        if let Ok(out) = std::env::var("PRED_OUT") {
            // raw user, raw item, rating, prediction of every test row
            let mut text = String::new();
            let it = &split.dataset.interactions;
            for &r in &split.test {
                let (u, i) = (
                    split.dataset.users.raw(it.users[r]),
                    split.dataset.items.raw(it.items[r]),
                );
                let p = model.predict_raw(u, i).rating;
                text.push_str(&format!("{u}\t{i}\t{}\t{p}\n", it.ratings[r]));
            }
            std::fs::write(format!("{out}-{seed}.tsv"), text)?;
        }
        if let Ok(out) = std::env::var("CURVES_DIR") {
            h.write_curves(&PathBuf::from(out).join(format!("seed-{seed}")))?;
        }
    }
    let n = finals.len() as f64;
    let mean = finals.iter().sum::<f64>() / n;
    let sd = (finals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    println!(
        "test_rmse over {} seed(s): {mean:.4} ± {sd:.4}",
        finals.len()
    );
    Ok(())
}
