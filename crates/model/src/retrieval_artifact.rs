//! Saving and loading [`RetrievalModel`]s: `manifest.json` (kind `retrieval`),
//! `weights.safetensors` (tower tables, history table, users' training items,
//! popularity), `features.json` and `items.tsv` (display titles by item row).
//! Written into a temporary directory renamed into place.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shortlist_core::atomic::{write_file, AtomicDir};
use shortlist_core::hash::fnv1a64;
use shortlist_features::FeatureSpec;

use crate::artifact::{
    check_manifest, get_features, parse_manifest, put_features, read_spec, read_weights, tensors,
    FeatureEntry, Reader, Tensors, FEATURES, FORMAT_VERSION, MANIFEST, WEIGHTS,
};
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::ranking::ModelMeta;
use crate::retrieval::{Csr, RetrievalConfig, RetrievalModel};

/// Model kind written in retrieval manifests.
pub const RETRIEVAL_KIND: &str = "retrieval";
/// Display titles by item row.
pub const ITEMS: &str = "items.tsv";

/// `manifest.json` of a retrieval model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalManifest {
    /// `retrieval`.
    pub kind: String,
    /// [`FORMAT_VERSION`] at save time.
    pub format_version: u32,
    /// Crate version that wrote it.
    pub written_by: String,
    /// Architecture.
    pub config: RetrievalConfig,
    /// Query-tower inputs (tensors `query.{k}.*`).
    pub query: Vec<FeatureEntry>,
    /// Candidate-tower inputs (tensors `candidate.{k}.*`).
    pub candidate: Vec<FeatureEntry>,
    /// Training facts.
    pub meta: ModelMeta,
    /// FNV-1a 64 of the weights file (hex).
    pub weights_checksum: String,
}

/// Writes `titles` (by item row) next to the item ids of `spec`.
fn items_tsv(spec: &FeatureSpec, titles: &[String]) -> String {
    let mut out = String::from("row\titem_id\ttitle\n");
    for (row, title) in titles.iter().enumerate() {
        let id = spec.item_id.value(row as u32).unwrap_or("");
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        out.push_str(&format!("{row}\t{}\t{}\n", clean(id), clean(title)));
    }
    out
}

/// Reads `items.tsv` of the model directory `dir`, verified against its manifest
/// (see [`crate::files`]); missing file → no titles.
pub fn read_titles(dir: &Path, rows: usize) -> Result<Vec<String>> {
    titles_from(&ModelFiles::open(dir)?, rows)
}

/// [`read_titles`] from opened model files.
pub fn titles_from(files: &ModelFiles, rows: usize) -> Result<Vec<String>> {
    let path = files.path(ITEMS);
    let Some(bytes) = files.read_optional(ITEMS)? else {
        return Ok(vec![String::new(); rows]);
    };
    let text = String::from_utf8(bytes).map_err(|_| Error::corrupt(&path, "not UTF-8 text"))?;
    let mut titles = vec![String::new(); rows];
    for (n, line) in text.lines().enumerate().skip(1) {
        let mut parts = line.splitn(3, '\t');
        let row: usize = parts
            .next()
            .and_then(|r| r.parse().ok())
            .filter(|&r| r < rows)
            .ok_or_else(|| {
                Error::corrupt(
                    &path,
                    format!("line {}: expected an item row below {rows}", n + 1),
                )
            })?;
        parts.next();
        titles[row] = parts.next().unwrap_or("").to_owned();
    }
    Ok(titles)
}

/// Writes `titles` as `items.tsv` into `dir` (a staging directory).
pub fn write_titles(dir: &Path, spec: &FeatureSpec, titles: &[String]) -> Result<()> {
    write_file(&dir.join(ITEMS), items_tsv(spec, titles).as_bytes())
        .map_err(|e| Error::io(dir.join(ITEMS), e))
}

impl RetrievalModel {
    /// Saves the model and the item `titles` into `dir` (replaced atomically).
    pub fn save(&self, dir: &Path, titles: &[String]) -> Result<()> {
        let staging = AtomicDir::new(dir).map_err(|e| Error::io(dir, e))?;
        self.save_into(staging.path(), titles)?;
        staging.commit().map_err(|e| Error::io(dir, e))?;
        Ok(())
    }

    /// Writes the model's files into an existing directory (e.g. a staging directory
    /// that also receives an index).
    pub fn save_into(&self, dir: &Path, titles: &[String]) -> Result<()> {
        let mut t = Tensors(Vec::new());
        let query = put_features(&mut t, "query", &self.query);
        let candidate = put_features(&mut t, "candidate", &self.candidate);
        if let Some(h) = &self.history {
            t.f32("history".into(), vec![h.rows(), h.dim()], h.data());
        }
        t.u32("seen.offsets".into(), &self.seen.offsets);
        t.u32("seen.ids".into(), &self.seen.ids);
        t.u32("popularity".into(), &self.popularity);
        let wpath = dir.join(WEIGHTS);
        let weights = t.serialize(&wpath)?;
        let manifest = RetrievalManifest {
            kind: RETRIEVAL_KIND.into(),
            format_version: FORMAT_VERSION,
            written_by: format!("shortlist-model {}", env!("CARGO_PKG_VERSION")),
            config: self.config.clone(),
            query,
            candidate,
            meta: self.meta.clone(),
            weights_checksum: format!("{:016x}", fnv1a64(&weights)),
        };
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| Error::invalid("manifest", e.to_string()))?;
        write_file(&wpath, &weights).map_err(|e| Error::io(&wpath, e))?;
        write_file(&dir.join(FEATURES), self.spec.to_json().as_bytes())
            .map_err(|e| Error::io(dir.join(FEATURES), e))?;
        write_titles(dir, &self.spec, titles)?;
        write_file(&dir.join(MANIFEST), json.as_bytes())
            .map_err(|e| Error::io(dir.join(MANIFEST), e))?;
        // Callers that add files afterwards (an index) seal again.
        crate::files::seal(dir)
    }

    /// Loads a model saved by [`RetrievalModel::save`] and its titles, every file
    /// of the directory verified (see [`crate::files`]; the saved index too, which
    /// the caller loads). Errors name the file.
    pub fn load(dir: &Path) -> Result<(Self, Vec<String>)> {
        Self::load_from(&ModelFiles::open(dir)?)
    }

    /// Loads a model and its titles from opened model files (a directory, or one
    /// held in memory), every file verified.
    pub fn load_from(files: &ModelFiles) -> Result<(Self, Vec<String>)> {
        let (mpath, manifest): (_, RetrievalManifest) = parse_manifest(files)?;
        check_manifest(
            &mpath,
            &manifest.kind,
            RETRIEVAL_KIND,
            manifest.format_version,
        )?;
        let spec = read_spec(files)?;
        let (wpath, bytes) = read_weights(files, &manifest.weights_checksum)?;
        let st = tensors(&wpath, &bytes)?;
        let r = Reader::new(&st, &wpath);
        let history = if manifest.config.history {
            Some(r.table("history")?)
        } else {
            None
        };
        let model = RetrievalModel {
            query: get_features(&r, "query", &manifest.query)?,
            candidate: get_features(&r, "candidate", &manifest.candidate)?,
            history,
            seen: Csr {
                offsets: r.u32("seen.offsets")?,
                ids: r.u32("seen.ids")?,
            },
            popularity: r.u32("popularity")?,
            config: manifest.config,
            spec,
            meta: manifest.meta,
        };
        model
            .check()
            .map_err(|e| Error::corrupt(&wpath, format!("inconsistent with the manifest: {e}")))?;
        let titles = titles_from(files, model.num_items())?;
        files.verify_unread()?;
        Ok((model, titles))
    }
}
