//! The synthetic catalogue: category, brand and tag vocabularies, and each product's
//! side features (title, price, tags, launch, popularity) and planted latent vector.
//! Kept apart from the session simulation in `products.rs`, which only reads it.

use shortlist_core::Rng;

use super::{ProductConfig, DAY, RANK, T0};
use crate::synth::power_law;

/// Categories, their SKU prefixes and the nouns of their product titles.
pub(super) const CATEGORIES: [(&str, &str, [&str; 4]); 12] = [
    ("kitchen", "KIT", ["kettle", "pan", "knife", "blender"]),
    ("garden", "GAR", ["hose", "planter", "shears", "lantern"]),
    ("toys", "TOY", ["puzzle", "robot", "doll", "kite"]),
    ("books", "BOO", ["novel", "atlas", "cookbook", "journal"]),
    (
        "electronics",
        "ELE",
        ["headphones", "speaker", "charger", "camera"],
    ),
    ("sports", "SPO", ["racket", "dumbbells", "mat", "bottle"]),
    ("beauty", "BEA", ["serum", "lipstick", "perfume", "brush"]),
    (
        "fashion",
        "FAS",
        ["jacket", "scarf", "sneakers", "backpack"],
    ),
    ("pets", "PET", ["leash", "cushion", "feeder", "collar"]),
    ("office", "OFF", ["stapler", "notebook", "lamp", "chair"]),
    ("outdoor", "OUT", ["tent", "compass", "hammock", "stove"]),
    ("home", "HOM", ["candle", "rug", "mirror", "clock"]),
];

pub(super) const TAGS: [&str; 24] = [
    "eco",
    "premium",
    "budget",
    "compact",
    "wireless",
    "handmade",
    "organic",
    "vintage",
    "kids",
    "pro",
    "travel",
    "smart",
    "classic",
    "waterproof",
    "lightweight",
    "gift",
    "bestseller",
    "limited",
    "recycled",
    "portable",
    "ergonomic",
    "minimalist",
    "luxury",
    "rugged",
];

const BRAND_HEADS: [&str; 16] = [
    "Nor", "Vik", "Al", "Cor", "Zen", "Tex", "Lu", "Mir", "Ka", "Don", "Bel", "Or", "Sol", "Ve",
    "Tra", "Qui",
];
const BRAND_TAILS: [&str; 8] = ["ra", "vo", "lix", "na", "tek", "mo", "sa", "rin"];

/// Brand `b`'s name (distinct for `b < 128`).
pub(super) fn brand_name(b: usize) -> String {
    format!(
        "{}{}",
        BRAND_HEADS[b % 16],
        BRAND_TAILS[(b / 16 + b) % BRAND_TAILS.len()]
    )
}

/// The catalogue's side features, by product index.
pub(super) struct Catalogue {
    pub(super) title: Vec<String>,
    pub(super) category: Vec<u32>,
    pub(super) brand: Vec<u32>,
    pub(super) tags: Vec<Vec<u32>>,
    pub(super) price: Vec<f64>,
    pub(super) launch: Vec<i64>,
    pub(super) popularity: Vec<f64>,
}

pub(super) fn gaussian(n: usize, scale: f64, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// Entries of the latent vectors are scaled so that a customer–component dot product
/// has variance ≈ weight².
pub(super) fn latent_scale() -> f64 {
    1.0 / (RANK as f64).powf(0.25)
}

/// The catalogue and each product's latent vector (`products × RANK`).
pub(super) fn catalogue(cfg: &ProductConfig, rng: &mut Rng) -> (Catalogue, Vec<f32>) {
    let np = cfg.products;
    let s = latent_scale();
    let brand_f = gaussian(cfg.brands * RANK, s, rng);
    let tag_f = gaussian(TAGS.len() * RANK, s * 0.7, rng);
    // Each brand has a home category; each category six typical tags.
    let brand_home: Vec<u32> = (0..cfg.brands)
        .map(|_| rng.below(cfg.categories as u64) as u32)
        .collect();
    let cat_tags: Vec<Vec<u32>> = (0..cfg.categories)
        .map(|_| {
            let mut t: Vec<u32> = (0..TAGS.len() as u32).collect();
            rng.shuffle(&mut t);
            t.truncate(6);
            t
        })
        .collect();
    let brands_by_home: Vec<Vec<u32>> = (0..cfg.categories as u32)
        .map(|c| {
            (0..cfg.brands as u32)
                .filter(|&b| brand_home[b as usize] == c)
                .collect()
        })
        .collect();
    let brand_pop = power_law(cfg.brands, cfg.brand_exponent, rng);
    let base_pop = power_law(np, cfg.popularity_exponent, rng);
    let span = cfg.days as i64 * DAY;
    let late_from = ((1.0 - cfg.late_window) * span as f64) as i64;

    let mut cat = Catalogue {
        title: Vec::with_capacity(np),
        category: Vec::with_capacity(np),
        brand: Vec::with_capacity(np),
        tags: Vec::with_capacity(np),
        price: Vec::with_capacity(np),
        launch: Vec::with_capacity(np),
        popularity: Vec::with_capacity(np),
    };
    let mut product_factors = vec![0f32; np * RANK];
    for p in 0..np {
        let c = rng.below(cfg.categories as u64) as u32;
        let home = &brands_by_home[c as usize];
        let b = if !home.is_empty() && rng.next_f64() < 0.8 {
            home[rng.below(home.len() as u64) as usize]
        } else {
            rng.below(cfg.brands as u64) as u32
        };
        let n_tags = 1 + rng.below(3) as usize;
        let mut tags: Vec<u32> = Vec::with_capacity(n_tags);
        while tags.len() < n_tags {
            let t = if rng.next_f64() < 0.7 {
                cat_tags[c as usize][rng.below(6) as usize]
            } else {
                rng.below(TAGS.len() as u64) as u32
            };
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        tags.sort_unstable();
        let v = &mut product_factors[p * RANK..(p + 1) * RANK];
        let tag_w = 1.0 / (tags.len() as f32).sqrt();
        for (d, x) in v.iter_mut().enumerate() {
            *x = brand_f[b as usize * RANK + d]
                + tags
                    .iter()
                    .map(|&t| tag_f[t as usize * RANK + d] * tag_w)
                    .sum::<f32>()
                + (rng.normal() * s * cfg.item_noise) as f32;
        }
        let price = draw_price(c, b, &tags, rng);
        cat.title.push(draw_title(c, b, &tags, rng));
        let launch = if rng.next_f64() < cfg.late_share {
            late_from + rng.below((span - late_from).max(1) as u64) as i64
        } else if rng.next_f64() < 0.6 || late_from == 0 {
            0
        } else {
            rng.below(late_from as u64) as i64
        };
        cat.launch.push(T0 + launch);
        cat.popularity.push(base_pop[p] * brand_pop[b as usize]);
        cat.price.push((price * 100.0).round() / 100.0);
        cat.category.push(c);
        cat.brand.push(b);
        cat.tags.push(tags);
    }
    (cat, product_factors)
}

/// Price: the category's level × the brand's tier × noise; some tags shift it.
fn draw_price(category: u32, brand: u32, tags: &[u32], rng: &mut Rng) -> f64 {
    let level = 8.0 * (1.0 + (category as f64 * 0.37).sin().abs() * 6.0);
    let tier = 0.6 + 1.4 * ((brand as f64 * 1.7).cos() * 0.5 + 0.5);
    let mut price = level * tier * (0.3 * rng.normal()).exp();
    for &t in tags {
        match TAGS[t as usize] {
            "premium" | "luxury" => price *= 1.6,
            "budget" => price *= 0.6,
            _ => {}
        }
    }
    price
}

/// "Brand Adjective noun model": the adjective from a tag, the noun from the category.
fn draw_title(category: u32, brand: u32, tags: &[u32], rng: &mut Rng) -> String {
    let nouns = CATEGORIES[category as usize].2;
    let adjective = TAGS[tags[rng.below(tags.len() as u64) as usize] as usize];
    let noun = nouns[rng.below(4) as usize];
    let model = format!(
        "{}{}",
        (b'A' + rng.below(26) as u8) as char,
        1 + rng.below(9)
    );
    format!(
        "{} {}{} {noun} {model}",
        brand_name(brand as usize),
        adjective[..1].to_uppercase(),
        &adjective[1..]
    )
}
