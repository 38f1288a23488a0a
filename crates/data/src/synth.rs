//! Synthetic interaction logs with planted structure.
//!
//! Users and items get latent factors (rank `rank`, entries scaled so a user–item dot
//! product is roughly standard normal) plus biases. Each interaction draws a user by a
//! power-law activity, proposes items by a power-law popularity and accepts one with
//! probability `sigmoid(affinity_scale · dot)` (default 2), so who-interacts-with-what carries the factors
//! (a retrieval model can recover them). Ratings are `3.5 + b_u + b_i + dot + noise`,
//! rounded and clipped to 1–5 (a ranking model can recover them). Side features are
//! derived from the factors (genre = strongest factor, tags = positive factors, price
//! from factor 0, title words from the two strongest factors; user segment and age).
//!
//! Generation runs in fixed-size chunks, each with its own RNG stream, so the output
//! depends only on the configuration, never on the thread count.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use shortlist_core::dataset::{Column, ColumnValues, Dataset, FeatureTable, Feedback, IdMap};
use shortlist_core::progress::Progress;
use shortlist_core::{Interactions, Rng};

use crate::error::{Error, Result};
use crate::loaders::tsv::{format_rating, HEADER};

/// Interactions generated per chunk (each chunk has its own RNG stream).
const CHUNK: usize = 1 << 16;

/// What to generate.
#[derive(Debug, Clone, Serialize)]
pub struct SynthConfig {
    /// Number of users.
    pub users: usize,
    /// Number of items.
    pub items: usize,
    /// Number of interactions.
    pub interactions: usize,
    /// Seed.
    pub seed: u64,
    /// Rank of the planted factors.
    pub rank: usize,
    /// Standard deviation of rating noise.
    pub noise: f64,
    /// Power-law exponent of item popularity (rank^-a).
    pub item_exponent: f64,
    /// Power-law exponent of user activity.
    pub user_exponent: f64,
    /// Strength of the planted preference: an item is accepted with probability
    /// `sigmoid(affinity_scale · dot)`.
    pub affinity_scale: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            users: 1000,
            items: 500,
            interactions: 50_000,
            seed: 42,
            rank: 8,
            noise: 0.4,
            item_exponent: 0.8,
            user_exponent: 0.5,
            affinity_scale: 2.0,
        }
    }
}

impl SynthConfig {
    /// The default configuration with `users`, `items` and `interactions` changed:
    /// the small logs that tests and examples generate.
    pub fn sized(users: usize, items: usize, interactions: usize) -> Self {
        SynthConfig {
            users,
            items,
            interactions,
            ..Default::default()
        }
    }
}

/// The planted truth.
#[derive(Debug, Clone)]
pub struct Planted {
    /// Rank of the factors.
    pub rank: usize,
    /// `users × rank`, row-major.
    pub user_factors: Vec<f32>,
    /// `items × rank`, row-major.
    pub item_factors: Vec<f32>,
    /// Per-user rating bias.
    pub user_bias: Vec<f32>,
    /// Per-item rating bias.
    pub item_bias: Vec<f32>,
}

impl Planted {
    /// Planted affinity of user `u` for item `i` (the dot product of their factors).
    pub fn affinity(&self, u: usize, i: usize) -> f32 {
        let r = self.rank;
        self.user_factors[u * r..(u + 1) * r]
            .iter()
            .zip(&self.item_factors[i * r..(i + 1) * r])
            .map(|(a, b)| a * b)
            .sum()
    }

    /// Noise-free expected rating (before rounding and clipping).
    pub fn expected_rating(&self, u: usize, i: usize) -> f32 {
        3.5 + self.user_bias[u] + self.item_bias[i] + self.affinity(u, i)
    }
}

/// Vose's alias table: O(1) draws from a discrete distribution.
pub(crate) struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    pub(crate) fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in large.into_iter().chain(small) {
            prob[i] = 1.0;
        }
        Alias { prob, alias }
    }

    pub(crate) fn draw(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.prob.len() as u64) as usize;
        if rng.next_f64() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

pub(crate) fn power_law(n: usize, exponent: f64, rng: &mut Rng) -> Vec<f64> {
    // Random assignment of popularity ranks, so index order carries no signal.
    let mut ranks: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut ranks);
    ranks
        .iter()
        .map(|&r| 1.0 / ((r + 1) as f64).powf(exponent))
        .collect()
}

fn factors(n: usize, rank: usize, rng: &mut Rng) -> Vec<f32> {
    let scale = 1.0 / (rank as f64).powf(0.25);
    (0..n * rank)
        .map(|_| (rng.normal() * scale) as f32)
        .collect()
}

struct Model {
    planted: Planted,
    users: Alias,
    items: Alias,
}

fn check(cfg: &SynthConfig) -> Result<()> {
    for (name, v) in [
        ("--users", cfg.users),
        ("--items", cfg.items),
        ("--interactions", cfg.interactions),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, "expected at least 1"));
        }
    }
    if cfg.users > u32::MAX as usize || cfg.items > u32::MAX as usize {
        return Err(Error::invalid(
            "--users/--items",
            "expected at most 4294967295",
        ));
    }
    if cfg.rank == 0 {
        return Err(Error::invalid("rank", "expected at least 1"));
    }
    Ok(())
}

fn model(cfg: &SynthConfig) -> Model {
    let mut rng = Rng::with_stream(cfg.seed, u64::MAX);
    let planted = Planted {
        rank: cfg.rank,
        user_factors: factors(cfg.users, cfg.rank, &mut rng),
        item_factors: factors(cfg.items, cfg.rank, &mut rng),
        user_bias: (0..cfg.users)
            .map(|_| (rng.normal() * 0.3) as f32)
            .collect(),
        item_bias: (0..cfg.items)
            .map(|_| (rng.normal() * 0.3) as f32)
            .collect(),
    };
    let users = Alias::new(&power_law(cfg.users, cfg.user_exponent, &mut rng));
    let items = Alias::new(&power_law(cfg.items, cfg.item_exponent, &mut rng));
    Model {
        planted,
        users,
        items,
    }
}

const T0: i64 = 1_600_000_000;
const SPAN: u64 = 365 * 24 * 3600;

fn chunk(cfg: &SynthConfig, m: &Model, k: usize) -> Interactions {
    let start = k * CHUNK;
    let len = CHUNK.min(cfg.interactions - start);
    let mut rng = Rng::with_stream(cfg.seed, k as u64);
    let mut out = Interactions {
        users: Vec::with_capacity(len),
        items: Vec::with_capacity(len),
        ratings: Vec::with_capacity(len),
        timestamps: Some(Vec::with_capacity(len)),
    };
    for _ in 0..len {
        let u = m.users.draw(&mut rng);
        let mut i = m.items.draw(&mut rng);
        for _ in 0..20 {
            let accept =
                1.0 / (1.0 + (-cfg.affinity_scale * m.planted.affinity(u, i) as f64).exp());
            if rng.next_f64() < accept {
                break;
            }
            i = m.items.draw(&mut rng);
        }
        let r = m.planted.expected_rating(u, i) as f64 + cfg.noise * rng.normal();
        out.users.push(u as u32);
        out.items.push(i as u32);
        out.ratings.push(r.round().clamp(1.0, 5.0) as f32);
        if let Some(t) = &mut out.timestamps {
            t.push(T0 + rng.below(SPAN) as i64);
        }
    }
    out
}

fn n_chunks(cfg: &SynthConfig) -> usize {
    cfg.interactions.div_ceil(CHUNK)
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (k, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = k;
        }
    }
    best
}

fn item_features(p: &Planted, items: usize) -> FeatureTable {
    let r = p.rank;
    let f = |i: usize| &p.item_factors[i * r..(i + 1) * r];
    let genre = (0..items).map(|i| format!("g{}", argmax(f(i)))).collect();
    let tags = (0..items)
        .map(|i| {
            f(i).iter()
                .enumerate()
                .filter(|(_, &x)| x > 0.5)
                .map(|(d, _)| format!("t{d}"))
                .collect()
        })
        .collect();
    let price = (0..items)
        .map(|i| ((10.0 * (f(i)[0] as f64).exp()) * 100.0).round() / 100.0)
        .collect();
    let title = (0..items)
        .map(|i| {
            let v = f(i);
            let a = argmax(v);
            let mut rest: Vec<(usize, f32)> = v
                .iter()
                .copied()
                .enumerate()
                .filter(|(d, _)| *d != a)
                .collect();
            rest.sort_by(|x, y| y.1.total_cmp(&x.1));
            let b = rest.first().map(|x| x.0).unwrap_or(a);
            format!("Item {i}: word{a} word{b}")
        })
        .collect();
    FeatureTable {
        columns: vec![
            Column {
                name: "title".into(),
                values: ColumnValues::Text(title),
            },
            Column {
                name: "genre".into(),
                values: ColumnValues::Categorical(genre),
            },
            Column {
                name: "tags".into(),
                values: ColumnValues::MultiCategorical(tags),
            },
            Column {
                name: "price".into(),
                values: ColumnValues::Numeric(price),
            },
        ],
    }
}

fn user_features(p: &Planted, users: usize) -> FeatureTable {
    let r = p.rank;
    let f = |u: usize| &p.user_factors[u * r..(u + 1) * r];
    FeatureTable {
        columns: vec![
            Column {
                name: "segment".into(),
                values: ColumnValues::Categorical(
                    (0..users).map(|u| format!("s{}", argmax(f(u)))).collect(),
                ),
            },
            Column {
                name: "age".into(),
                values: ColumnValues::Numeric(
                    (0..users)
                        .map(|u| {
                            (35.0 + 10.0 * f(u)[r.min(2) - 1] as f64)
                                .clamp(16.0, 80.0)
                                .round()
                        })
                        .collect(),
                ),
            },
        ],
    }
}

fn user_id(u: usize) -> String {
    format!("u{u}")
}

fn item_id(i: usize) -> String {
    format!("i{i}")
}

/// Generates a dataset in memory (users `u0…`, items `i0…`) and its planted truth.
pub fn generate(cfg: &SynthConfig) -> Result<(Dataset, Planted)> {
    check(cfg)?;
    let m = model(cfg);
    let parts: Vec<Interactions> = (0..n_chunks(cfg))
        .into_par_iter()
        .map(|k| chunk(cfg, &m, k))
        .collect();
    let mut all = Interactions {
        timestamps: Some(Vec::with_capacity(cfg.interactions)),
        ..Interactions::default()
    };
    for p in parts {
        all.users.extend_from_slice(&p.users);
        all.items.extend_from_slice(&p.items);
        all.ratings.extend_from_slice(&p.ratings);
        if let (Some(t), Some(s)) = (&mut all.timestamps, &p.timestamps) {
            t.extend_from_slice(s);
        }
    }
    let dataset = Dataset {
        name: format!("synth-{}x{}-{}", cfg.users, cfg.items, cfg.interactions),
        users: IdMap::from_raw((0..cfg.users).map(user_id).collect()),
        items: IdMap::from_raw((0..cfg.items).map(item_id).collect()),
        interactions: all,
        user_features: user_features(&m.planted, cfg.users),
        item_features: item_features(&m.planted, cfg.items),
        feedback: Feedback::Explicit,
        title_column: Some("title".into()),
    };
    Ok((dataset, m.planted))
}

/// What [`write()`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    /// Output directory.
    pub dir: PathBuf,
    /// The schema describing the files (load the directory or this file).
    pub schema: PathBuf,
    /// Interactions written.
    pub interactions: usize,
    /// Users.
    pub users: usize,
    /// Items.
    pub items: usize,
}

const SCHEMA: &str = r#"# Synthetic interaction log written by `shortlist data synth`.
name = "synth"

[interactions]
path = "interactions.tsv"
user = "user_id"
item = "item_id"
rating = "rating"
timestamp = "timestamp"

[items]
path = "items.tsv"
id = "item_id"
title = "title"
features = [
  { name = "title", type = "text" },
  { name = "genre", type = "categorical" },
  { name = "tags", type = "multi-categorical", separator = "|" },
  { name = "price", type = "numeric" },
]

[users]
path = "users.tsv"
id = "user_id"
features = [
  { name = "segment", type = "categorical" },
  { name = "age", type = "numeric" },
]
"#;

/// Writes a synthetic log to `dir` (`interactions.tsv` in the split format, `items.tsv`,
/// `users.tsv`, `schema.toml`), streaming chunks so memory stays flat at any size.
/// The directory appears atomically.
pub fn write(cfg: &SynthConfig, dir: &Path, progress: &dyn Progress) -> Result<SynthSummary> {
    check(cfg)?;
    let m = model(cfg);
    let building = shortlist_core::atomic::AtomicDir::new(dir)?;
    let path = building.path().join("interactions.tsv");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&path)?);
    writeln!(out, "{HEADER}")?;
    progress.start("generating interactions", Some(cfg.interactions as u64));
    let total = n_chunks(cfg);
    let batch = rayon::current_num_threads() * 4;
    for first in (0..total).step_by(batch) {
        let texts: Vec<Vec<u8>> = (first..(first + batch).min(total))
            .into_par_iter()
            .map(|k| {
                let c = chunk(cfg, &m, k);
                let mut buf = Vec::with_capacity(c.len() * 32);
                let ts = c.timestamps.as_deref().unwrap_or(&[]);
                for r in 0..c.len() {
                    let _ = writeln!(
                        buf,
                        "u{}\ti{}\t{}\t{}",
                        c.users[r],
                        c.items[r],
                        format_rating(c.ratings[r]),
                        ts.get(r).copied().unwrap_or(0)
                    );
                }
                progress.advance(c.len() as u64);
                buf
            })
            .collect();
        for t in texts {
            out.write_all(&t)?;
        }
    }
    out.flush()?;
    progress.finish();

    let mut items = Vec::new();
    writeln!(items, "item_id\ttitle\tgenre\ttags\tprice")?;
    let it = item_features(&m.planted, cfg.items);
    if let [Column {
        values: ColumnValues::Text(title),
        ..
    }, Column {
        values: ColumnValues::Categorical(genre),
        ..
    }, Column {
        values: ColumnValues::MultiCategorical(tags),
        ..
    }, Column {
        values: ColumnValues::Numeric(price),
        ..
    }] = &it.columns[..]
    {
        for i in 0..cfg.items {
            writeln!(
                items,
                "{}\t{}\t{}\t{}\t{}",
                item_id(i),
                title[i],
                genre[i],
                tags[i].join("|"),
                price[i]
            )?;
        }
    }
    fs_err::write(building.path().join("items.tsv"), items)?;
    let mut users = Vec::new();
    writeln!(users, "user_id\tsegment\tage")?;
    let ut = user_features(&m.planted, cfg.users);
    if let [Column {
        values: ColumnValues::Categorical(seg),
        ..
    }, Column {
        values: ColumnValues::Numeric(age),
        ..
    }] = &ut.columns[..]
    {
        for u in 0..cfg.users {
            writeln!(users, "{}\t{}\t{}", user_id(u), seg[u], age[u])?;
        }
    }
    fs_err::write(building.path().join("users.tsv"), users)?;
    fs_err::write(building.path().join("schema.toml"), SCHEMA)?;
    let dir = building.commit()?;
    Ok(SynthSummary {
        schema: dir.join("schema.toml"),
        dir,
        interactions: cfg.interactions,
        users: cfg.users,
        items: cfg.items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_structured() {
        let cfg = SynthConfig {
            interactions: 100_000,
            ..SynthConfig::default()
        };
        let (a, planted) = generate(&cfg).unwrap();
        let (b, _) = generate(&cfg).unwrap();
        assert_eq!(a.interactions, b.interactions);
        assert_eq!(a.interactions.len(), 100_000);
        // Chosen items align with the user's factors far more than random pairs do.
        let inter = &a.interactions;
        let chosen: f64 = (0..inter.len())
            .map(|r| planted.affinity(inter.users[r] as usize, inter.items[r] as usize) as f64)
            .sum::<f64>()
            / inter.len() as f64;
        let mut rng = Rng::new(5);
        let random: f64 = (0..10_000)
            .map(|_| planted.affinity(rng.below(1000) as usize, rng.below(500) as usize) as f64)
            .sum::<f64>()
            / 10_000.0;
        assert!(chosen > random + 0.4, "chosen {chosen} random {random}");
        // Ratings follow the planted expectation.
        let err: f64 = (0..inter.len())
            .map(|r| {
                let e = planted
                    .expected_rating(inter.users[r] as usize, inter.items[r] as usize)
                    .clamp(1.0, 5.0);
                (e - inter.ratings[r]).abs() as f64
            })
            .sum::<f64>()
            / inter.len() as f64;
        assert!(err < 0.6, "{err}");
        // Popularity is skewed: the top 10% of items hold a large share.
        let mut counts = vec![0usize; 500];
        for &i in &inter.items {
            counts[i as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = counts[..50].iter().sum();
        assert!(top as f64 > 0.3 * inter.len() as f64, "{top}");
    }
}
