//! Trains the retrieval model on a split and prints per-epoch metrics.
//!
//! `cargo run --release -p shortlist-train --example retrieval_split -- TRAIN TEST [key=value …]`
//! where each `key=value` is a TOML line of `RetrievalTrainConfig` (e.g. `epochs=10`).
//! `DUMP_EMBEDDINGS=dir` also writes the trained towers as raw little-endian `f32`
//! (`dir/queries.f32`, every user's query embedding, `dir/items.f32`, every item's, and
//! `dir/dim.txt`),
//! e.g. for `TOPK_EMBEDDINGS=dir cargo bench -p shortlist-index --bench exact_topk`.

use std::path::Path;

use shortlist_core::progress::NoProgress;
use shortlist_data::loaders::tsv::load_split;
use shortlist_data::LoadOptions;
use shortlist_eval::SplitEvaluator;
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: retrieval_split TRAIN TEST [key=value ...]".into());
    }
    let toml = args[2..].join("\n");
    let cfg = RetrievalTrainConfig::from_toml(&toml, Path::new("<args>"))?;
    let split = load_split(
        Path::new(&args[0]),
        Path::new(&args[1]),
        &LoadOptions::default(),
        &NoProgress,
    )?;
    let ev = SplitEvaluator::new(&split.dataset, &split.train, &split.test)?;
    let pop = ev.popularity()?;
    let show = |m: &shortlist_eval::Metrics| {
        format!(
            "R@10 {:.4} R@20 {:.4} N@10 {:.4} N@20 {:.4} acc@100 {:.4}",
            m.get("recall@10").unwrap_or(0.0),
            m.get("recall@20").unwrap_or(0.0),
            m.get("ndcg@10").unwrap_or(0.0),
            m.get("ndcg@20").unwrap_or(0.0),
            m.get("top_k_accuracy@100").unwrap_or(0.0)
        )
    };
    println!("popularity: {}", show(&pop));
    let (model, hist) = train_retrieval(&split.dataset, &split.train, &split.test, &cfg, |e| {
        println!(
            "epoch {:3} loss {:.4} {:.2}s+{:.3}s {}",
            e.epoch,
            e.train_loss,
            e.seconds,
            e.eval_seconds,
            e.test.as_ref().map(&show).unwrap_or_default()
        );
    })?;
    println!("median epoch {:.3}s", hist.median_epoch_seconds());
    if let Some(dir) = std::env::var_os("DUMP_EMBEDDINGS") {
        let dir = Path::new(&dir);
        let write = |name: &str, bytes: Vec<u8>| -> Result<(), Box<dyn std::error::Error>> {
            let path = dir.join(name);
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, bytes))
                .map_err(|e| format!("{}: {e}", path.display()).into())
        };
        let raw = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        write("queries.f32", raw(model.all_queries()))?;
        write("items.f32", raw(model.all_candidates()))?;
        write("dim.txt", model.dim().to_string().into_bytes())?;
        println!(
            "wrote {} queries and {} items of dim {} to {}",
            model.num_users(),
            model.num_items(),
            model.dim(),
            dir.display()
        );
    }
    Ok(())
}
