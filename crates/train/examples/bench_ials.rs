//! iALS fitting speed on a large synthetic log, and the same matrix for a peer.
//!
//! `cargo run --release -p shortlist-train --example bench_ials -- [interactions]
//! [users] [items] [iterations] [dir]` (defaults 25,000,000, 1,000,000, 100,000, 3,
//! `target/bench-ials`): generates the planted-structure log of `shortlist bench data`,
//! writes its distinct (user, item) pairs to `dir/pairs.u32` (little-endian u32 user,
//! item, …) and `dir/shape.txt`, and times shortlist's iALS (64 factors, 3 CG steps,
//! all threads) per iteration. `bench/ials_peer.py dir` times `implicit`'s ALS on the
//! same pairs with the same settings.

use std::time::Instant;

use shortlist_data::synth::{generate, SynthConfig};
use shortlist_model::Csr;
use shortlist_train::ials::{fit_factors, IalsTrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| -> Result<usize, Box<dyn std::error::Error>> {
        match args.get(i) {
            Some(s) => Ok(s
                .replace('_', "")
                .parse()
                .map_err(|e| format!("argument {}: {e}", i + 1))?),
            None => Ok(d),
        }
    };
    let (n, users, items, iters) = (
        num(0, 25_000_000)?,
        num(1, 1_000_000)?,
        num(2, 100_000)?,
        num(3, 3)?,
    );
    let dir = std::path::PathBuf::from(args.get(4).map_or("target/bench-ials", String::as_str));
    let t = Instant::now();
    let (d, _) = generate(&SynthConfig {
        users,
        items,
        interactions: n,
        ..Default::default()
    })?;
    let it = &d.interactions;
    let by_user = Csr::from_pairs(
        d.users.len(),
        it.users.iter().copied().zip(it.items.iter().copied()),
    );
    let by_item = Csr::from_pairs(
        d.items.len(),
        it.items.iter().copied().zip(it.users.iter().copied()),
    );
    println!(
        "generated {} interactions ({} distinct pairs, {} users, {} items) in {:.1} s",
        it.len(),
        by_user.ids.len(),
        d.users.len(),
        d.items.len(),
        t.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(&dir)?;
    let mut bytes = Vec::with_capacity(by_user.ids.len() * 8);
    for u in 0..by_user.rows() {
        for &i in by_user.row(u) {
            bytes.extend_from_slice(&(u as u32).to_le_bytes());
            bytes.extend_from_slice(&i.to_le_bytes());
        }
    }
    std::fs::write(dir.join("pairs.u32"), &bytes)?;
    std::fs::write(
        dir.join("shape.txt"),
        format!("{} {}\n", d.users.len(), d.items.len()),
    )?;
    let cfg = IalsTrainConfig {
        iterations: iters,
        ..Default::default()
    };
    let mut secs = Vec::new();
    fit_factors(&by_user, &by_item, &cfg, |e| {
        println!("iteration {}: {:.2} s", e.iteration, e.seconds);
        secs.push(e.seconds);
    })?;
    secs.sort_by(f64::total_cmp);
    println!(
        "shortlist iALS ({} factors, {} CG steps, {} threads): median iteration {:.2} s",
        cfg.factors,
        cfg.cg_steps,
        rayon::current_num_threads(),
        secs[secs.len() / 2]
    );
    Ok(())
}
