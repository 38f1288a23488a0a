//! Writes a synthetic product log with any `ProductConfig` field set:
//! `cargo run --release -p shortlist-data --example products_synth -- DIR [key=value …]`
//! (TOML lines, e.g. `affinity_scale=3` `late_share=0.25`).

use std::path::Path;

use shortlist_data::products::{write, ProductConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: products_synth DIR [key=value ...]".into());
    };
    let cfg: ProductConfig = toml::from_str(&args[1..].join("\n"))?;
    let s = write(&cfg, Path::new(dir), &shortlist_core::progress::NoProgress)?;
    println!(
        "{} events, {} products → {}",
        s.interactions,
        s.items,
        s.dir.display()
    );
    Ok(())
}
