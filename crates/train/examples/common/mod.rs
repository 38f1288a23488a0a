//! What more than one example needs.

use std::path::{Path, PathBuf};

use shortlist_core::progress::NoProgress;
use shortlist_data::loaders::tsv::{attach_features, load_split, SplitData};
use shortlist_data::{load_path, LoadOptions};

/// The split files `train.tsv` and `test.tsv` in `dir`; with `FEATURES_FROM` set, the
/// side features of the dataset there attached by raw id (the ML-100k split files
/// carry none).
pub fn load_split_dir(dir: &Path) -> Result<SplitData, shortlist_data::Error> {
    let mut split = load_split(
        &dir.join("train.tsv"),
        &dir.join("test.tsv"),
        &LoadOptions::default(),
        &NoProgress,
    )?;
    if let Ok(src) = std::env::var("FEATURES_FROM") {
        let source = load_path(&PathBuf::from(&src), &LoadOptions::default(), &NoProgress)?;
        let (u, i) = attach_features(&mut split, &source.dataset);
        eprintln!("side features from {src}: {u} users, {i} items matched");
    }
    Ok(split)
}
