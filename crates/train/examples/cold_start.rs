//! Item cold start of the retrieval model on a log with timestamps and item features
//! (e.g. `shortlist data synth --kind products --out shop`): a temporal 90/10 split,
//! then the test metrics on every test interaction, on those of cold items (no
//! training interaction) and on the others, with the share of cold items among the
//! hits@20.
//!
//! `cargo run --release -p shortlist-train --example cold_start -- DATA [key=value …]`
//! where each `key=value` is a TOML line of `RetrievalTrainConfig`
//! (e.g. `item_id_dropout=0.3`); item features are on unless a `features.…` line is given.

use std::path::Path;

use shortlist_core::progress::NoProgress;
use shortlist_data::split::{split, SplitMethod};
use shortlist_data::LoadOptions;
use shortlist_eval::Scorer;
use shortlist_train::retrieval::{train_retrieval, DatasetScorer, RetrievalTrainConfig};

/// Scores of `inner` with every item outside `keep` at `-inf`.
struct Only<'a> {
    inner: &'a DatasetScorer,
    keep: &'a [bool],
}

impl Scorer for Only<'_> {
    fn n_items(&self) -> usize {
        self.inner.n_items()
    }
    fn score_users(&self, users: &[u32], out: &mut [f32]) -> shortlist_eval::Result<()> {
        self.inner.score_users(users, out)?;
        for row in out.chunks_exact_mut(self.keep.len()) {
            for (s, &k) in row.iter_mut().zip(self.keep) {
                if !k {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err("usage: cold_start DATA [key=value ...]".into());
    }
    let mut lines: Vec<String> = args[1..].to_vec();
    if !lines.iter().any(|l| l.starts_with("features")) {
        lines.push("features.item_features = [\"*\"]".into());
    }
    let cfg = RetrievalTrainConfig::from_toml(&lines.join("\n"), Path::new("<args>"))?;
    let d = shortlist_data::load_path(Path::new(&args[0]), &LoadOptions::default(), &NoProgress)?
        .dataset;
    let s = split(&d.interactions, SplitMethod::Temporal { ratio: 0.9 })?;
    let mut in_train = vec![false; d.items.len()];
    for &r in &s.train {
        in_train[d.interactions.items[r] as usize] = true;
    }
    let (cold, warm): (Vec<usize>, Vec<usize>) = s
        .test
        .iter()
        .partition(|&&r| !in_train[d.interactions.items[r] as usize]);
    println!(
        "{} train, {} test rows ({} on cold items, {:.1} %); {} items, {} never in training",
        s.train.len(),
        s.test.len(),
        cold.len(),
        100.0 * cold.len() as f64 / s.test.len() as f64,
        d.items.len(),
        in_train.iter().filter(|&&t| !t).count()
    );
    let (model, hist) = train_retrieval(&d, &s.train, &[], &cfg, |_| {})?;
    println!("median epoch {:.2}s", hist.median_epoch_seconds());
    let scorer = DatasetScorer::new(&model, &d);
    for (name, rows) in [("all", &s.test), ("cold", &cold), ("warm", &warm)] {
        if rows.is_empty() {
            continue;
        }
        let ev = shortlist_eval::SplitEvaluator::new(&d, &s.train, rows)?;
        let m = ev.scorer(&scorer)?;
        let pop = ev.popularity()?;
        println!(
            "{name:>5}: R@20 {:.4} N@10 {:.4} (popularity R@20 {:.4} N@10 {:.4})",
            m.get("recall@20").unwrap_or(0.0),
            m.get("ndcg@10").unwrap_or(0.0),
            pop.get("recall@20").unwrap_or(0.0),
            pop.get("ndcg@10").unwrap_or(0.0),
        );
    }
    if !cold.is_empty() {
        // How well the features order the cold items among themselves.
        let is_cold: Vec<bool> = in_train.iter().map(|&t| !t).collect();
        let ev = shortlist_eval::SplitEvaluator::new(&d, &s.train, &cold)?;
        let m = ev.scorer(&Only {
            inner: &scorer,
            keep: &is_cold,
        })?;
        println!(
            "cold items ranked among cold items only: R@20 {:.4} N@10 {:.4}",
            m.get("recall@20").unwrap_or(0.0),
            m.get("ndcg@10").unwrap_or(0.0)
        );
    }
    Ok(())
}
