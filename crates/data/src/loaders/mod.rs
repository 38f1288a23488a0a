//! Loaders: every source format becomes the same [`Dataset`].

pub mod movielens;
pub mod recbole;
pub mod schema;
mod table;
pub mod tsv;

use std::path::{Path, PathBuf};

use shortlist_core::dataset::Dataset;
use shortlist_core::progress::Progress;

use crate::duplicates::{self, DuplicatePolicy};
use crate::error::{Error, Result};
use crate::read::{LoadReport, RowPolicy};

/// How to load: bad-row policy and duplicate policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Strict (default) or skip-and-report malformed rows.
    pub policy: RowPolicy,
    /// What to do with repeated (user, item) pairs.
    pub duplicates: DuplicatePolicy,
}

/// A loaded dataset and what loading skipped or merged.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The dataset.
    pub dataset: Dataset,
    /// Skipped rows and merged duplicates.
    pub report: LoadReport,
}

/// Common end of every loader: duplicate policy, feature tables padded to every id.
pub(crate) fn finish(
    mut dataset: Dataset,
    mut report: LoadReport,
    opts: &LoadOptions,
) -> Result<Loaded> {
    if dataset.interactions.is_empty() {
        return Err(Error::Format {
            path: PathBuf::from(&dataset.name),
            message: "no interactions were loaded".into(),
        });
    }
    report.duplicates_removed += duplicates::apply(&mut dataset.interactions, opts.duplicates);
    let (nu, ni) = (dataset.users.len(), dataset.items.len());
    dataset.user_features.pad_to(nu);
    dataset.item_features.pad_to(ni);
    Ok(Loaded { dataset, report })
}

/// A recognised on-disk format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// GroupLens ML-100k directory.
    Ml100k(PathBuf),
    /// RecBole's copy of ML-100k (the fallback source).
    Ml100kRecbole(PathBuf),
    /// GroupLens ML-1M directory.
    Ml1m(PathBuf),
    /// GroupLens ML-latest / ML-latest-small / ML-25M directory.
    MlLatest(PathBuf),
    /// RecBole atomic files (the `.inter` file).
    Recbole(PathBuf),
    /// A TOML schema.
    Schema(PathBuf),
    /// A split file (`user_id⇥item_id⇥rating⇥timestamp` (⇥ = tab)).
    Tsv(PathBuf),
}

/// Tells the format of `path` from the files it holds.
pub fn detect(path: &Path) -> Result<Format> {
    if !path.exists() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no such file or directory", path.display()),
        )));
    }
    if path.is_file() {
        if let Some(format) = movielens_file(path) {
            return Ok(format);
        }
        return Ok(match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Format::Schema(path.to_path_buf()),
            Some("inter") => Format::Recbole(path.to_path_buf()),
            _ => Format::Tsv(path.to_path_buf()),
        });
    }
    let has = |f: &str| path.join(f).is_file();
    Ok(if has("u.data") {
        Format::Ml100k(path.to_path_buf())
    } else if has("ml-100k.inter") {
        Format::Ml100kRecbole(path.join("ml-100k.inter"))
    } else if has("ratings.dat") {
        Format::Ml1m(path.to_path_buf())
    } else if has("ratings.csv") {
        Format::MlLatest(path.to_path_buf())
    } else if has("schema.toml") {
        Format::Schema(path.join("schema.toml"))
    } else if let Some(inter) = recbole::inter_file(path) {
        Format::Recbole(inter)
    } else {
        return Err(Error::format(
            path,
            "cannot tell the dataset format: expected u.data (ML-100k), ratings.dat (ML-1M), ratings.csv (ML-latest/25M), a RecBole .inter file or schema.toml",
        ));
    })
}

/// A MovieLens ratings file given by itself (`u.data`, `ratings.dat`, or a
/// `ratings.csv` with MovieLens' header) stands for its directory, where the loader
/// also finds the titles and side features.
fn movielens_file(path: &Path) -> Option<Format> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match path.file_name()?.to_str()? {
        "u.data" => Some(Format::Ml100k(dir)),
        "ratings.dat" => Some(Format::Ml1m(dir)),
        "ratings.csv" => {
            use std::io::BufRead as _;
            let mut first = String::new();
            let file = std::fs::File::open(path).ok()?;
            std::io::BufReader::new(file).read_line(&mut first).ok()?;
            first
                .trim_start_matches('\u{feff}')
                .starts_with("userId,movieId,rating")
                .then_some(Format::MlLatest(dir))
        }
        _ => None,
    }
}

/// Loads the dataset at `path` (a directory or file in any supported format).
pub fn load_path(path: &Path, opts: &LoadOptions, progress: &dyn Progress) -> Result<Loaded> {
    match detect(path)? {
        Format::Ml100k(dir) => movielens::load_ml100k(&dir, opts, progress),
        Format::Ml100kRecbole(inter) => {
            let mut loaded = recbole::load_recbole(&inter, opts, progress)?;
            recbole::normalise_ml100k(&mut loaded);
            Ok(loaded)
        }
        Format::Ml1m(dir) => movielens::load_ml1m(&dir, opts, progress),
        Format::MlLatest(dir) => {
            let name = dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "ml-latest".into());
            movielens::load_ml_latest(&dir, &name, opts, progress)
        }
        Format::Recbole(inter) => recbole::load_recbole(&inter, opts, progress),
        Format::Schema(schema) => schema::load_schema(&schema, opts, progress),
        Format::Tsv(file) => tsv::load_tsv(&file, opts, progress),
    }
}
