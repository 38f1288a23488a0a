//! Fits EASE and iALS on a split and prints their full-ranking metrics and fit times.
//!
//! `cargo run --release -p shortlist-train --example implicit_split -- TRAIN TEST
//! [ease.lambda=400] [ials.factors=64] [ials.regularization=30] [ials.alpha=3]
//! [ials.iterations=15] [ials.seed=42]`

use std::path::Path;
use std::time::Instant;

use shortlist_core::progress::NoProgress;
use shortlist_data::loaders::tsv::load_split;
use shortlist_data::LoadOptions;
use shortlist_eval::SplitEvaluator;
use shortlist_train::ease::{train_ease, EaseTrainConfig};
use shortlist_train::ials::{train_ials, IalsTrainConfig};
use shortlist_train::interactions::RowScorer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: implicit_split TRAIN TEST [ease.KEY=V | ials.KEY=V ...]".into());
    }
    let (mut ease_toml, mut ials_toml) = (String::new(), String::new());
    for a in &args[2..] {
        match a.split_once('.') {
            Some(("ease", kv)) => ease_toml += &format!("{kv}\n"),
            Some(("ials", kv)) => ials_toml += &format!("{kv}\n"),
            _ => return Err(format!("expected ease.KEY=V or ials.KEY=V, got {a:?}").into()),
        }
    }
    let ease_cfg = EaseTrainConfig::from_toml(&ease_toml, Path::new("<args>"))?;
    let ials_cfg = IalsTrainConfig::from_toml(&ials_toml, Path::new("<args>"))?;
    let split = load_split(
        Path::new(&args[0]),
        Path::new(&args[1]),
        &LoadOptions::default(),
        &NoProgress,
    )?;
    let ev = SplitEvaluator::new(&split.dataset, &split.train, &split.test)?;
    let show = |name: &str, m: &shortlist_eval::Metrics, secs: f64| {
        println!(
            "{name:<10} NDCG@10 {:.4} Recall@20 {:.4} HR@10 {:.4}  fit {secs:.3} s",
            m.get("ndcg@10").unwrap_or(0.0),
            m.get("recall@20").unwrap_or(0.0),
            m.get("hit_rate@10").unwrap_or(0.0),
        )
    };
    show("popularity", &ev.popularity()?, 0.0);
    let t = Instant::now();
    let ease = train_ease(&split.dataset, &split.train, &ease_cfg)?;
    let secs = t.elapsed().as_secs_f64();
    let score = |u: u32, out: &mut [f32]| ease.scores_into(ease.seen.row(u as usize), out);
    show(
        "EASE",
        &ev.scorer(&RowScorer::new(&ease.spec, &split.dataset, &score))?,
        secs,
    );
    let t = Instant::now();
    let ials = train_ials(&split.dataset, &split.train, &ials_cfg, |_| {})?;
    let secs = t.elapsed().as_secs_f64();
    let score = |u: u32, out: &mut [f32]| ials.user_scores_into(u as usize, out);
    show(
        "iALS",
        &ev.scorer(&RowScorer::new(&ials.spec, &split.dataset, &score))?,
        secs,
    );
    Ok(())
}
