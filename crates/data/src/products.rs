//! A synthetic **product log** (`shortlist data synth --kind products`): string ids
//! (`cust-00042`, `SKU-KIT-00421`), a catalogue with side features (category, brand,
//! tags, price, a text title), implicit events of four strengths (view 1, click 2,
//! like 3, purchase 4) with timestamps, and products launched late in the timeline, so
//! that a temporal split tests on products that training never saw.
//!
//! Planted structure, in which the side features matter: each customer has one to
//! three favourite categories (a non-favourite weighs `category_spread` of a favourite),
//! a latent vector and a price sensitivity; every product's latent vector is the sum
//! of its brand's and its tags' vectors plus a smaller product-specific part
//! (`item_noise`), so a customer's affinity for a product (latent dot product plus
//! price term) is mostly a preference for brands, tags and prices. A session draws a
//! time, a customer (power-law activity) and a category from the customer's category
//! weights, then proposes the category's launched products by popularity (power law ×
//! brand popularity, with a launch boost that fades over `novelty_days`); a proposal is
//! accepted with probability `sigmoid(affinity_scale · affinity)`. The session then
//! walks the funnel view → click → like → purchase, each step likelier the higher the
//! affinity, one event row per step reached.
//!
//! Launches: a share `late_share` of the products launch uniformly in the last
//! `late_window` of the timeline; the others at its start (60 %) or uniformly before
//! the late window. A temporal 90/10 split therefore has test events on products
//! without a single training event (cold items), which only their features describe.
//!
//! Generation is chunked with one RNG stream per chunk: the output depends only on the
//! configuration, never on the thread count.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shortlist_core::dataset::{Column, ColumnValues, Dataset, FeatureTable, Feedback, IdMap};
use shortlist_core::progress::Progress;
use shortlist_core::{Interactions, Rng};

use crate::duplicates::{self, DuplicatePolicy};
use crate::error::{Error, Result};
use crate::synth::{power_law, Alias, SynthSummary};

mod catalogue;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use catalogue::{brand_name, catalogue, gaussian, latent_scale, Catalogue, CATEGORIES, TAGS};

/// Sessions generated per chunk (each chunk has its own RNG stream).
const CHUNK: usize = 1 << 14;
/// Width of the planted latent vectors.
const RANK: usize = 16;
/// Start of the timeline (2021-01-01T00:00:00Z).
const T0: i64 = 1_609_459_200;
const DAY: i64 = 24 * 3600;

/// The funnel's event names by strength − 1.
pub const EVENTS: [&str; 4] = ["view", "click", "like", "purchase"];

/// What to generate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductConfig {
    /// Number of customers.
    pub customers: usize,
    /// Number of products in the catalogue.
    pub products: usize,
    /// Number of sessions (each yields one to four event rows).
    pub sessions: usize,
    /// Seed.
    pub seed: u64,
    /// Length of the timeline in days.
    pub days: u32,
    /// Share of products launched in the last `late_window` of the timeline.
    pub late_share: f64,
    /// Fraction of the timeline (at its end) in which late products launch.
    pub late_window: f64,
    /// Extra popularity of a product at launch (×(1 + novelty), fading).
    pub novelty: f64,
    /// Time constant of the launch boost's fading, in days.
    pub novelty_days: f64,
    /// Strength of the planted preference (acceptance `sigmoid(scale · affinity)`).
    pub affinity_scale: f64,
    /// Weight of a non-favourite category relative to a favourite one in a customer's
    /// choice of category.
    pub category_spread: f64,
    /// Power-law exponent of product popularity (rank^-a, times the brand's).
    pub popularity_exponent: f64,
    /// Power-law exponent of brand popularity.
    pub brand_exponent: f64,
    /// Weight of the product-specific part of a product's latent vector (the part no
    /// side feature explains; brand and tags weigh 1.0 and 0.7).
    pub item_noise: f64,
    /// Number of categories (at most 12).
    pub categories: usize,
    /// Number of brands (at most 128).
    pub brands: usize,
}

impl Default for ProductConfig {
    fn default() -> Self {
        ProductConfig {
            customers: 6000,
            products: 3000,
            sessions: 150_000,
            seed: 42,
            days: 180,
            late_share: 0.2,
            late_window: 0.2,
            novelty: 1.0,
            novelty_days: 14.0,
            affinity_scale: 2.0,
            category_spread: 0.05,
            popularity_exponent: 0.5,
            brand_exponent: 1.0,
            item_noise: 0.3,
            categories: 12,
            brands: 60,
        }
    }
}

/// Raw id of customer `c`.
pub fn customer_id(c: usize) -> String {
    format!("cust-{c:05}")
}

/// The catalogue and the planted truth behind the log.
#[derive(Debug, Clone)]
pub struct ProductTruth {
    /// Width of the latent vectors.
    pub rank: usize,
    /// `customers × rank`, row-major.
    pub customer_factors: Vec<f32>,
    /// `products × rank`, row-major (brand + tags + product-specific part).
    pub product_factors: Vec<f32>,
    /// `customers × categories`, row-major: each customer's probability of shopping a
    /// category in a session.
    pub category_weights: Vec<f32>,
    /// Number of categories.
    pub categories: usize,
    /// Per customer: weight of the product's standardised log-price in the affinity.
    pub price_sensitivity: Vec<f32>,
    /// Per product: standardised log-price.
    pub price_z: Vec<f32>,
    /// Per product: category index (`0..categories`).
    pub category: Vec<u32>,
    /// Per product: launch time (Unix seconds).
    pub launch: Vec<i64>,
    /// Per product: raw id (`SKU-…`).
    pub product_ids: Vec<String>,
    /// Start and end of the timeline (Unix seconds).
    pub timeline: (i64, i64),
}

impl ProductTruth {
    /// Probability that customer `c` shops category `k` in a session.
    pub fn category_weight(&self, c: usize, k: usize) -> f32 {
        self.category_weights[c * self.categories + k]
    }

    /// Planted affinity of customer `c` for product `p` (within its category).
    pub fn affinity(&self, c: usize, p: usize) -> f32 {
        let r = self.rank;
        let dot: f32 = self.customer_factors[c * r..(c + 1) * r]
            .iter()
            .zip(&self.product_factors[p * r..(p + 1) * r])
            .map(|(a, b)| a * b)
            .sum();
        dot + self.price_sensitivity[c] * self.price_z[p]
    }
}

struct World {
    truth: ProductTruth,
    catalogue: Catalogue,
    customers: Alias,
    /// Per category: its products and an alias table over their popularity.
    by_category: Vec<(Vec<u32>, Alias)>,
}

fn check(cfg: &ProductConfig) -> Result<()> {
    for (name, v) in [
        ("--users", cfg.customers),
        ("--items", cfg.products),
        ("--interactions", cfg.sessions),
        ("days", cfg.days as usize),
        ("categories", cfg.categories),
        ("brands", cfg.brands),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, "expected at least 1"));
        }
    }
    if cfg.customers > 99_999 || cfg.products > 99_999 {
        return Err(Error::invalid(
            "--users/--items",
            "a product log has at most 99999 customers and 99999 products",
        ));
    }
    if cfg.categories > CATEGORIES.len() {
        return Err(Error::invalid(
            "categories",
            format!("expected at most {}", CATEGORIES.len()),
        ));
    }
    if cfg.brands > 128 {
        return Err(Error::invalid("brands", "expected at most 128"));
    }
    for (name, v) in [
        ("late_share", cfg.late_share),
        ("late_window", cfg.late_window),
    ] {
        if !(0.0..1.0).contains(&v) {
            return Err(Error::invalid(
                name,
                format!("expected a fraction in [0, 1), found {v}"),
            ));
        }
    }
    for (name, v) in [
        ("novelty", cfg.novelty),
        ("novelty_days", cfg.novelty_days),
        ("affinity_scale", cfg.affinity_scale),
        ("category_spread", cfg.category_spread),
        ("popularity_exponent", cfg.popularity_exponent),
        ("brand_exponent", cfg.brand_exponent),
        ("item_noise", cfg.item_noise),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::invalid(
                name,
                format!("expected a number ≥ 0, found {v}"),
            ));
        }
    }
    Ok(())
}

fn world(cfg: &ProductConfig) -> World {
    let mut rng = Rng::with_stream(cfg.seed, u64::MAX);
    let (np, nc) = (cfg.products, cfg.customers);
    let (cat, product_factors) = catalogue(cfg, &mut rng);
    let log_price: Vec<f64> = cat.price.iter().map(|p| p.max(0.01).ln()).collect();
    let mean = log_price.iter().sum::<f64>() / np as f64;
    let sd = (log_price.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / np as f64)
        .sqrt()
        .max(1e-9);
    let price_z = log_price.iter().map(|x| ((x - mean) / sd) as f32).collect();
    let customer_factors = gaussian(nc * RANK, latent_scale(), &mut rng);
    let price_sensitivity = (0..nc)
        .map(|_| (-0.2 + 0.3 * rng.normal()) as f32)
        .collect();
    let customers = Alias::new(&power_law(nc, 0.5, &mut rng));
    let by_category: Vec<(Vec<u32>, Alias)> = (0..cfg.categories as u32)
        .map(|k| {
            let members: Vec<u32> = (0..np as u32)
                .filter(|&p| cat.category[p as usize] == k)
                .collect();
            let weights: Vec<f64> = members
                .iter()
                .map(|&p| cat.popularity[p as usize])
                .collect();
            let alias = Alias::new(if weights.is_empty() { &[1.0] } else { &weights });
            (members, alias)
        })
        .collect();
    // One to three favourite categories (among those with products) per customer.
    let stocked: Vec<usize> = (0..cfg.categories)
        .filter(|&k| !by_category[k].0.is_empty())
        .collect();
    let mut category_weights = vec![0f32; nc * cfg.categories];
    for row in category_weights.chunks_exact_mut(cfg.categories) {
        for &k in &stocked {
            row[k] = cfg.category_spread as f32;
        }
        for _ in 0..1 + rng.below(3) {
            row[stocked[rng.below(stocked.len() as u64) as usize]] = 1.0;
        }
        let total: f32 = row.iter().sum();
        row.iter_mut().for_each(|w| *w /= total);
    }
    let product_ids = (0..np)
        .map(|p| format!("SKU-{}-{p:05}", CATEGORIES[cat.category[p] as usize].1))
        .collect();
    World {
        truth: ProductTruth {
            rank: RANK,
            customer_factors,
            product_factors,
            category_weights,
            categories: cfg.categories,
            price_sensitivity,
            price_z,
            category: cat.category.clone(),
            launch: cat.launch.clone(),
            product_ids,
            timeline: (T0, T0 + cfg.days as i64 * DAY),
        },
        catalogue: cat,
        customers,
        by_category,
    }
}

/// One event row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    ts: i64,
    customer: u32,
    product: u32,
    strength: u8,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn chunk(cfg: &ProductConfig, w: &World, k: usize) -> Vec<Event> {
    let start = k * CHUNK;
    let len = CHUNK.min(cfg.sessions - start);
    let mut rng = Rng::with_stream(cfg.seed, k as u64);
    let (t0, t1) = w.truth.timeline;
    let tau = (cfg.novelty_days * DAY as f64).max(1.0);
    let mut out = Vec::with_capacity(len * 2);
    for _ in 0..len {
        let t = t0 + rng.below((t1 - t0) as u64) as i64;
        let c = w.customers.draw(&mut rng);
        let weights = &w.truth.category_weights[c * w.truth.categories..][..w.truth.categories];
        let mut x = rng.next_f64() as f32;
        let mut k = 0;
        while k + 1 < weights.len() && x >= weights[k] {
            x -= weights[k];
            k += 1;
        }
        let (members, alias) = &w.by_category[k];
        // Propose the category's launched products by popularity (the launch boost as
        // a thinning of the boosted proposal) until one is accepted by the customer's
        // affinity.
        let mut chosen = None;
        let mut last_launched = None;
        for _ in 0..400 {
            let Some(&p) = members.get(alias.draw(&mut rng)) else {
                break;
            };
            let p = p as usize;
            let launch = w.catalogue.launch[p];
            if launch > t {
                continue;
            }
            last_launched = Some(p);
            let boost = 1.0 + cfg.novelty * (-((t - launch) as f64) / tau).exp();
            if rng.next_f64() * (1.0 + cfg.novelty) > boost {
                continue;
            }
            let a = w.truth.affinity(c, p) as f64;
            if rng.next_f64() < sigmoid(cfg.affinity_scale * a) {
                chosen = Some((p, a));
                break;
            }
        }
        let Some((p, a)) =
            chosen.or_else(|| last_launched.map(|p| (p, w.truth.affinity(c, p) as f64)))
        else {
            continue;
        };
        // The funnel: each further step likelier the higher the affinity.
        let mut strength = 1u8;
        for offset in [0.5, 1.5, 2.5] {
            if rng.next_f64() < sigmoid(1.5 * a - offset) {
                strength += 1;
            } else {
                break;
            }
        }
        let mut ts = t;
        for s in 1..=strength {
            out.push(Event {
                ts,
                customer: c as u32,
                product: p as u32,
                strength: s,
            });
            ts += 30 + rng.below(600) as i64;
        }
    }
    out
}

/// Every event, in time order (ties by generation order).
fn events(cfg: &ProductConfig, w: &World, progress: &dyn Progress) -> Vec<Event> {
    let n_chunks = cfg.sessions.div_ceil(CHUNK);
    progress.start("generating sessions", Some(cfg.sessions as u64));
    let parts: Vec<Vec<Event>> = (0..n_chunks)
        .into_par_iter()
        .map(|k| {
            let e = chunk(cfg, w, k);
            progress.advance(CHUNK.min(cfg.sessions - k * CHUNK) as u64);
            e
        })
        .collect();
    progress.finish();
    let mut all: Vec<Event> = parts.into_iter().flatten().collect();
    all.sort_by_key(|e| e.ts);
    all
}

/// The catalogue's feature columns, by catalogue index.
fn product_table(w: &World) -> FeatureTable {
    let c = &w.catalogue;
    FeatureTable {
        columns: vec![
            Column {
                name: "title".into(),
                values: ColumnValues::Text(c.title.clone()),
            },
            Column {
                name: "category".into(),
                values: ColumnValues::Categorical(
                    c.category
                        .iter()
                        .map(|&k| CATEGORIES[k as usize].0.to_owned())
                        .collect(),
                ),
            },
            Column {
                name: "brand".into(),
                values: ColumnValues::Categorical(
                    c.brand.iter().map(|&b| brand_name(b as usize)).collect(),
                ),
            },
            Column {
                name: "tags".into(),
                values: ColumnValues::MultiCategorical(
                    c.tags
                        .iter()
                        .map(|t| t.iter().map(|&t| TAGS[t as usize].to_owned()).collect())
                        .collect(),
                ),
            },
            Column {
                name: "price".into(),
                values: ColumnValues::Numeric(c.price.clone()),
            },
        ],
    }
}

/// Generates the log in memory, as loading the written files gives it: customers and
/// products indexed in order of first event (products without any event after them,
/// in catalogue order), repeated (customer, product) pairs reduced to the latest event
/// (the schema's `duplicates = "keep-last"`), and the planted truth (by catalogue
/// index: map with the raw ids).
pub fn generate(cfg: &ProductConfig) -> Result<(Dataset, ProductTruth)> {
    check(cfg)?;
    let w = world(cfg);
    let all = events(cfg, &w, &shortlist_core::progress::NoProgress);
    let mut users = IdMap::default();
    let mut items = IdMap::default();
    let mut inter = Interactions {
        users: Vec::with_capacity(all.len()),
        items: Vec::with_capacity(all.len()),
        ratings: Vec::with_capacity(all.len()),
        timestamps: Some(Vec::with_capacity(all.len())),
    };
    for e in &all {
        inter
            .users
            .push(users.intern(&customer_id(e.customer as usize)));
        inter
            .items
            .push(items.intern(&w.truth.product_ids[e.product as usize]));
        inter.ratings.push(f32::from(e.strength));
        if let Some(t) = &mut inter.timestamps {
            t.push(e.ts);
        }
    }
    for id in &w.truth.product_ids {
        items.intern(id);
    }
    duplicates::apply(&mut inter, DuplicatePolicy::KeepLast);
    // Feature rows by the dataset's item index.
    let by_catalogue = product_table(&w);
    let order: Vec<usize> = items
        .raw_ids()
        .iter()
        .map(|raw| catalogue_index(raw))
        .collect();
    let item_features = FeatureTable {
        columns: by_catalogue
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                values: permute(&c.values, &order),
            })
            .collect(),
    };
    let mut dataset = Dataset {
        name: "products".into(),
        users,
        items,
        interactions: inter,
        item_features,
        feedback: Feedback::Explicit,
        title_column: Some("title".into()),
        ..Dataset::default()
    };
    dataset.user_features.pad_to(dataset.users.len());
    Ok((dataset, w.truth))
}

/// Catalogue index of a raw product id (`SKU-XXX-nnnnn`).
pub fn catalogue_index(raw: &str) -> usize {
    raw.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn permute(values: &ColumnValues, order: &[usize]) -> ColumnValues {
    fn pick<T: Clone>(v: &[T], order: &[usize]) -> Vec<T> {
        order.iter().map(|&i| v[i].clone()).collect()
    }
    match values {
        ColumnValues::Categorical(v) => ColumnValues::Categorical(pick(v, order)),
        ColumnValues::Text(v) => ColumnValues::Text(pick(v, order)),
        ColumnValues::MultiCategorical(v) => ColumnValues::MultiCategorical(pick(v, order)),
        ColumnValues::Numeric(v) => ColumnValues::Numeric(pick(v, order)),
    }
}

const SCHEMA: &str = r#"# Synthetic product log written by `shortlist data synth --kind products`.
name = "products"
# A session's events come in funnel order (view, click, like, purchase), so its last
# event is its strongest; a later visit of the same product replaces an earlier one.
duplicates = "keep-last"

[interactions]
path = "events.tsv"
user = "customer_id"
item = "sku"
rating = "strength"          # 1 view, 2 click, 3 like, 4 purchase (the `event` column)
timestamp = "timestamp"

[items]
path = "products.tsv"
id = "sku"
title = "title"
# `launched` (Unix seconds) is in the file but not a feature.
features = [
  { name = "title", type = "text" },
  { name = "category", type = "categorical" },
  { name = "brand", type = "categorical" },
  { name = "tags", type = "multi-categorical", separator = "|" },
  { name = "price", type = "numeric" },
]
"#;

/// Writes the product log to `dir` (`events.tsv`, `products.tsv`, `schema.toml`); the
/// directory appears atomically. Load the directory (or its `schema.toml`).
pub fn write(cfg: &ProductConfig, dir: &Path, progress: &dyn Progress) -> Result<SynthSummary> {
    check(cfg)?;
    let w = world(cfg);
    let all = events(cfg, &w, progress);
    let building = shortlist_core::atomic::AtomicDir::new(dir)?;
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        fs_err::File::create(building.path().join("events.tsv"))?,
    );
    writeln!(out, "customer_id\tsku\tevent\tstrength\ttimestamp")?;
    for e in &all {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            customer_id(e.customer as usize),
            w.truth.product_ids[e.product as usize],
            EVENTS[e.strength as usize - 1],
            e.strength,
            e.ts
        )?;
    }
    out.flush()?;
    drop(out);
    let c = &w.catalogue;
    let mut products = Vec::new();
    writeln!(
        products,
        "sku\ttitle\tcategory\tbrand\ttags\tprice\tlaunched"
    )?;
    for p in 0..cfg.products {
        let tags: Vec<&str> = c.tags[p].iter().map(|&t| TAGS[t as usize]).collect();
        writeln!(
            products,
            "{}\t{}\t{}\t{}\t{}\t{:.2}\t{}",
            w.truth.product_ids[p],
            c.title[p],
            CATEGORIES[c.category[p] as usize].0,
            brand_name(c.brand[p] as usize),
            tags.join("|"),
            c.price[p],
            c.launch[p]
        )?;
    }
    fs_err::write(building.path().join("products.tsv"), products)?;
    fs_err::write(building.path().join("schema.toml"), SCHEMA)?;
    let dir = building.commit()?;
    let users = all
        .iter()
        .map(|e| e.customer)
        .collect::<rustc_hash::FxHashSet<u32>>()
        .len();
    Ok(SynthSummary {
        schema: dir.join("schema.toml"),
        dir,
        interactions: all.len(),
        users,
        items: cfg.products,
    })
}
