//! Implicit-feedback candidate models: [`EaseModel`] (closed-form item–item weights,
//! Steck 2019) and [`IalsModel`] (implicit alternating least squares, Hu, Koren &
//! Volinsky 2008). Both score every item for a user from the user's item history and
//! are saved like the other models: a directory with `manifest.json` (kind `ease` or
//! `ials`), `weights.safetensors` and `features.json` (the id vocabularies), written
//! under a temporary name and renamed into place.
//!
//! Training lives in `shortlist-train` (`ease.rs`, `ials.rs`); here is what serving
//! and evaluation need: scoring, the users' training items (the "seen" filter and the
//! history of known users), popularity (the fallback for users without history), and
//! for iALS the fold-in of a user from a history (one small solve).

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use shortlist_core::atomic::{write_file, AtomicDir};
use shortlist_core::hash::fnv1a64;
use shortlist_features::FeatureSpec;

use crate::artifact::{
    check_manifest, parse_manifest, read_spec, read_weights, tensors, Reader, Tensors, FEATURES,
    FORMAT_VERSION, MANIFEST, WEIGHTS,
};
use crate::compact::SparseRows;
use crate::embedding::EmbeddingTable;
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::linalg::cholesky_solve_small;
use crate::ranking::ModelMeta;
use crate::retrieval::Csr;

/// Model kind written in EASE manifests.
pub const EASE_KIND: &str = "ease";
/// Model kind written in iALS manifests.
pub const IALS_KIND: &str = "ials";

/// What the EASE weights were fitted with (kept for the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EaseConfig {
    /// L2 penalty λ added to the Gram matrix's diagonal.
    pub lambda: f64,
}

/// EASE: `score(u, j) = Σ_{i ∈ history(u)} B[i][j]` with an `items × items` weight
/// matrix `B` whose diagonal is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct EaseModel {
    /// Hyper-parameters.
    pub config: EaseConfig,
    /// Id vocabularies (row 0 of each is the out-of-vocabulary slot).
    pub spec: FeatureSpec,
    /// `B` (`B[i][j]`: how much history item `i` votes for `j`).
    pub weights: ItemWeights,
    /// Each user row's training item rows (sorted).
    pub seen: Csr,
    /// Training interactions per item row.
    pub popularity: Vec<u32>,
    /// Training facts.
    pub meta: ModelMeta,
}

/// EASE's item–item matrix `B`: dense as fitted, or only each row's largest weights
/// as a compact model stores them ([`crate::compact`]; kept sparse in memory too: a
/// tenth of the dense matrix's memory and of its loading time for MovieLens 100k).
#[derive(Debug, Clone, PartialEq)]
pub enum ItemWeights {
    /// `items × items`, row-major.
    Dense(Vec<f32>),
    /// The stored entries of each row; every other weight is 0.
    Sparse(SparseRows),
}

impl ItemWeights {
    /// Adds row `i` of the `n × n` matrix into `out` (nothing for a row past the end).
    fn add_row(&self, n: usize, i: usize, out: &mut [f32]) {
        match self {
            ItemWeights::Dense(w) => {
                if let Some(row) = w.get(i * n..(i + 1) * n) {
                    out.iter_mut().zip(row).for_each(|(o, w)| *o += w);
                }
            }
            ItemWeights::Sparse(s) => {
                let (cols, vals) = s.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    if let Some(o) = out.get_mut(c as usize) {
                        *o += v;
                    }
                }
            }
        }
    }

    /// The dense `n × n` matrix, row-major (a sparse matrix of another shape, which
    /// [`EaseModel::check`] refuses, gives its own shape).
    pub fn to_dense(&self, n: usize) -> std::borrow::Cow<'_, [f32]> {
        match self {
            ItemWeights::Dense(w) => w.as_slice().into(),
            ItemWeights::Sparse(s) => {
                debug_assert_eq!((s.rows, s.cols), (n, n));
                s.to_dense().into()
            }
        }
    }
}

impl EaseModel {
    /// Number of item rows (vocabulary size, OOV slot included).
    pub fn num_items(&self) -> usize {
        self.popularity.len()
    }

    /// Number of user rows.
    pub fn num_users(&self) -> usize {
        self.seen.rows()
    }

    /// Writes the score of every item for a user with item-row `history` into `out`.
    pub fn scores_into(&self, history: &[u32], out: &mut [f32]) {
        let n = self.num_items();
        out[..n].fill(0.0);
        for &h in history {
            self.weights.add_row(n, h as usize, &mut out[..n]);
        }
    }

    /// Writes the scores of `items` for a user with item-row `history` into `out`.
    pub fn score_items(&self, history: &[u32], items: &[u32], out: &mut [f32]) {
        let n = self.num_items();
        match &self.weights {
            ItemWeights::Dense(w) => {
                out[..items.len()].fill(0.0);
                for &h in history {
                    let Some(row) = w.get(h as usize * n..(h as usize + 1) * n) else {
                        continue;
                    };
                    for (o, &j) in out.iter_mut().zip(items) {
                        *o += row.get(j as usize).copied().unwrap_or(0.0);
                    }
                }
            }
            ItemWeights::Sparse(_) => {
                // The history's rows added into one scratch row (in history order, as
                // the dense sums), then the items looked up: one pass over each row's
                // stored weights instead of a search per (row, item) pair.
                let mut all = vec![0f32; n];
                for &h in history {
                    self.weights.add_row(n, h as usize, &mut all);
                }
                for (o, &j) in out.iter_mut().zip(items) {
                    *o = all.get(j as usize).copied().unwrap_or(0.0);
                }
            }
        }
    }

    /// Every user row's scores over every item row (`users × items`, row-major): row
    /// `u` holds exactly what [`score_items`](Self::score_items) gives for the user's
    /// training items (`seen` row `u`, summed in the same order, so bit for bit), so a
    /// server can look a known user's scores up instead of summing ~history × candidates
    /// scattered weights per request. Costs `users × items` floats.
    pub fn user_scores(&self) -> Vec<f32> {
        use rayon::prelude::*;
        let n = self.num_items();
        let mut out = vec![0f32; self.num_users() * n];
        if n == 0 {
            return out;
        }
        out.par_chunks_mut(n).enumerate().for_each(|(u, row)| {
            for &h in self.seen.row(u) {
                self.weights.add_row(n, h as usize, row);
            }
        });
        out
    }

    /// Checks the sizes against the vocabularies.
    pub fn check(&self) -> Result<()> {
        let (nu, ni) = (self.spec.user_id.len(), self.spec.item_id.len());
        check_common(&self.seen, &self.popularity, nu, ni)?;
        match &self.weights {
            ItemWeights::Dense(w) if w.len() != ni * ni => Err(Error::invalid(
                "weights",
                format!("expected {ni}×{ni} values, got {}", w.len()),
            )),
            ItemWeights::Sparse(s) if (s.rows, s.cols) != (ni, ni) => Err(Error::invalid(
                "weights",
                format!("expected {ni}×{ni} values, got {}×{}", s.rows, s.cols),
            )),
            _ => Ok(()),
        }
    }

    /// Saves into `dir` (replaced atomically) with the item `titles` by row (may be
    /// empty: no `items.tsv`).
    pub fn save(&self, dir: &Path, titles: &[String]) -> Result<()> {
        let n = self.num_items();
        let mut t = Tensors(Vec::new());
        t.f32("weights".into(), vec![n, n], &self.weights.to_dense(n));
        put_common(&mut t, &self.seen, &self.popularity);
        save_simple(
            dir,
            EASE_KIND,
            &self.config,
            &self.meta,
            &self.spec,
            &t,
            titles,
        )
    }

    /// Loads a model saved by [`EaseModel::save`]. Errors name the file.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_from(&ModelFiles::open(dir)?)
    }

    /// Loads a model from opened model files (a directory, or one held in
    /// memory), every file verified.
    pub fn load_from(files: &ModelFiles) -> Result<Self> {
        load_simple(files, EASE_KIND, |config, meta, spec, r| {
            let (seen, popularity) = get_common(r)?;
            // A compact model's sparse matrix stays sparse.
            let weights = match crate::compact::read_sparse(r.st, r.path, "weights")? {
                Some(sparse) => ItemWeights::Sparse(sparse),
                None => ItemWeights::Dense(r.f32("weights")?.1),
            };
            Ok(EaseModel {
                weights,
                config,
                spec,
                seen,
                popularity,
                meta,
            })
        })
        .and_then(|(m, wpath)| {
            m.check()
                .map_err(|e| Error::corrupt(wpath, format!("inconsistent: {e}")))?;
            Ok(m)
        })
    }
}

/// What the iALS factors were fitted with; fold-in uses the same values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IalsConfig {
    /// Factor width.
    pub factors: usize,
    /// L2 penalty λ.
    pub regularization: f32,
    /// Confidence of an interaction: `1 + alpha · strength`.
    pub alpha: f32,
}

/// iALS: `score(u, j) = x_u · y_j`.
#[derive(Debug, Clone, PartialEq)]
pub struct IalsModel {
    /// Hyper-parameters.
    pub config: IalsConfig,
    /// Id vocabularies.
    pub spec: FeatureSpec,
    /// `x_u`, one row per user row.
    pub user_factors: EmbeddingTable,
    /// `y_j`, one row per item row.
    pub item_factors: EmbeddingTable,
    /// Each user row's training item rows (sorted).
    pub seen: Csr,
    /// Training interactions per item row.
    pub popularity: Vec<u32>,
    /// Training facts.
    pub meta: ModelMeta,
}

impl IalsModel {
    /// Number of item rows.
    pub fn num_items(&self) -> usize {
        self.item_factors.rows()
    }

    /// Number of user rows.
    pub fn num_users(&self) -> usize {
        self.user_factors.rows()
    }

    /// Factor width.
    pub fn dim(&self) -> usize {
        self.item_factors.dim()
    }

    /// `Yᵀ Y` (`dim × dim`), the part of every user's normal equations shared by all.
    pub fn gram(&self) -> Vec<f32> {
        let f = self.dim();
        let mut g = vec![0f32; f * f];
        // The upper triangle, then its mirror: `y[a]·y[b]` and `y[b]·y[a]` are the same
        // float, summed over the items in the same order, so the matrix is exactly
        // symmetric and half the work.
        for j in 0..self.num_items() {
            let y = self.item_factors.row(j);
            for a in 0..f {
                let ya = y[a];
                g[a * f + a..(a + 1) * f]
                    .iter_mut()
                    .zip(&y[a..])
                    .for_each(|(v, yb)| *v += ya * yb);
            }
        }
        for a in 0..f {
            for b in 0..a {
                g[a * f + b] = g[b * f + a];
            }
        }
        g
    }

    /// The factor of a user who interacted with item rows `history` (each with a
    /// strength; 1 for a plain interaction), solved exactly against the fixed item
    /// factors: `(YᵀY + Σ (c−1) y yᵀ + λI) x = Σ c y` with `c = 1 + alpha · strength`.
    /// `gram` is [`IalsModel::gram`] (computed once by the caller).
    pub fn fold_in(&self, gram: &[f32], history: &[(u32, f32)]) -> Result<Vec<f32>> {
        let f = self.dim();
        let mut a = gram.to_vec();
        let mut b = vec![0f32; f];
        for d in 0..f {
            a[d * f + d] += self.config.regularization;
        }
        for &(j, strength) in history {
            if j as usize >= self.num_items() {
                continue;
            }
            let y = self.item_factors.row(j as usize);
            let c = 1.0 + self.config.alpha * strength;
            for p in 0..f {
                b[p] += c * y[p];
                let w = (c - 1.0) * y[p];
                a[p * f..(p + 1) * f]
                    .iter_mut()
                    .zip(y)
                    .for_each(|(v, yq)| *v += w * yq);
            }
        }
        cholesky_solve_small(&mut a, &mut b)?;
        Ok(b)
    }

    /// The score of every item row for user row `user` into `out` (one per item row):
    /// item factors · user factors. `O(items × factors)`, for offline evaluation.
    pub fn user_scores_into(&self, user: usize, out: &mut [f32]) {
        let x = self.user_factors.row(user);
        for (j, o) in out.iter_mut().enumerate() {
            *o = self
                .item_factors
                .row(j)
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum();
        }
    }

    /// The `k` best item rows for user row `user` by exhaustive scan, leaving out
    /// `exclude` (any order) and the out-of-vocabulary rows; best first, ties to the
    /// lower row. `O(items × factors)`: for serving, an index over
    /// [`IalsModel::item_factors`] is faster on large catalogues.
    pub fn top_items(&self, user: u32, k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
        if user as usize >= self.num_users() {
            return Vec::new();
        }
        self.top_items_for(self.user_factors.row(user as usize), k, exclude)
    }

    /// [`IalsModel::top_items`] for a user factor `x` (e.g. folded in from a history).
    pub fn top_items_for(&self, x: &[f32], k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
        if k == 0 || x.len() != self.dim() {
            return Vec::new();
        }
        let mut skip = vec![false; self.num_items()];
        for r in 0..self.spec.item_id.num_oov() {
            if let Some(s) = skip.get_mut(r as usize) {
                *s = true;
            }
        }
        for &e in exclude {
            if let Some(s) = skip.get_mut(e as usize) {
                *s = true;
            }
        }
        let mut all: Vec<(u32, f32)> = (0..self.num_items())
            .filter(|&j| !skip[j])
            .map(|j| {
                let y = self.item_factors.row(j);
                (j as u32, x.iter().zip(y).map(|(a, b)| a * b).sum())
            })
            .collect();
        let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if all.len() > k {
            all.select_nth_unstable_by(k - 1, better);
            all.truncate(k);
        }
        all.sort_unstable_by(better);
        all
    }

    /// Checks the sizes against the vocabularies.
    pub fn check(&self) -> Result<()> {
        let (nu, ni) = (self.spec.user_id.len(), self.spec.item_id.len());
        check_common(&self.seen, &self.popularity, nu, ni)?;
        if self.user_factors.rows() != nu || self.item_factors.rows() != ni {
            return Err(Error::invalid(
                "factors",
                format!(
                    "expected {nu} user and {ni} item rows, got {} and {}",
                    self.user_factors.rows(),
                    self.item_factors.rows()
                ),
            ));
        }
        if self.user_factors.dim() != self.config.factors
            || self.item_factors.dim() != self.config.factors
        {
            return Err(Error::invalid(
                "factors",
                format!("expected width {}", self.config.factors),
            ));
        }
        Ok(())
    }

    /// Saves into `dir` (replaced atomically) with the item `titles` by row (may be
    /// empty: no `items.tsv`).
    pub fn save(&self, dir: &Path, titles: &[String]) -> Result<()> {
        let mut t = Tensors(Vec::new());
        for (name, tab) in [("users", &self.user_factors), ("items", &self.item_factors)] {
            t.f32(name.into(), vec![tab.rows(), tab.dim()], tab.data());
        }
        put_common(&mut t, &self.seen, &self.popularity);
        save_simple(
            dir,
            IALS_KIND,
            &self.config,
            &self.meta,
            &self.spec,
            &t,
            titles,
        )
    }

    /// Loads a model saved by [`IalsModel::save`]. Errors name the file.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_from(&ModelFiles::open(dir)?)
    }

    /// Loads a model from opened model files (a directory, or one held in
    /// memory), every file verified.
    pub fn load_from(files: &ModelFiles) -> Result<Self> {
        load_simple(files, IALS_KIND, |config, meta, spec, r| {
            let (seen, popularity) = get_common(r)?;
            Ok(IalsModel {
                user_factors: r.table("users")?,
                item_factors: r.table("items")?,
                config,
                spec,
                seen,
                popularity,
                meta,
            })
        })
        .and_then(|(m, wpath)| {
            m.check()
                .map_err(|e| Error::corrupt(wpath, format!("inconsistent: {e}")))?;
            Ok(m)
        })
    }
}

/// `manifest.json` of the implicit models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SimpleManifest<C> {
    kind: String,
    format_version: u32,
    written_by: String,
    config: C,
    meta: ModelMeta,
    weights_checksum: String,
}

fn check_common(seen: &Csr, popularity: &[u32], nu: usize, ni: usize) -> Result<()> {
    if seen.rows() != nu || popularity.len() != ni {
        return Err(Error::invalid(
            "seen/popularity",
            format!(
                "expected {nu} users and {ni} items, got {} and {}",
                seen.rows(),
                popularity.len()
            ),
        ));
    }
    let consistent = seen.offsets.windows(2).all(|w| w[0] <= w[1])
        && seen.offsets.last().copied().unwrap_or(0) as usize == seen.ids.len()
        && seen.ids.iter().all(|&i| (i as usize) < ni);
    if !consistent {
        return Err(Error::invalid("seen", "offsets or item rows out of range"));
    }
    Ok(())
}

fn put_common(t: &mut Tensors, seen: &Csr, popularity: &[u32]) {
    t.u32("seen.offsets".into(), &seen.offsets);
    t.u32("seen.ids".into(), &seen.ids);
    t.u32("popularity".into(), popularity);
}

fn get_common(r: &Reader<'_, '_>) -> Result<(Csr, Vec<u32>)> {
    Ok((
        Csr {
            offsets: r.u32("seen.offsets")?,
            ids: r.u32("seen.ids")?,
        },
        r.u32("popularity")?,
    ))
}

fn save_simple<C: Serialize>(
    dir: &Path,
    kind: &str,
    config: &C,
    meta: &ModelMeta,
    spec: &FeatureSpec,
    t: &Tensors,
    titles: &[String],
) -> Result<()> {
    let weights = t.serialize(&dir.join(WEIGHTS))?;
    let manifest = SimpleManifest {
        kind: kind.to_owned(),
        format_version: FORMAT_VERSION,
        written_by: format!("shortlist-model {}", env!("CARGO_PKG_VERSION")),
        config,
        meta: meta.clone(),
        weights_checksum: format!("{:016x}", fnv1a64(&weights)),
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::invalid("manifest", e.to_string()))?;
    let staging = AtomicDir::new(dir).map_err(|e| Error::io(dir, e))?;
    let p = staging.path();
    write_file(&p.join(WEIGHTS), &weights).map_err(|e| Error::io(dir.join(WEIGHTS), e))?;
    write_file(&p.join(FEATURES), spec.to_json().as_bytes())
        .map_err(|e| Error::io(dir.join(FEATURES), e))?;
    if !titles.is_empty() {
        crate::retrieval_artifact::write_titles(p, spec, titles)?;
    }
    write_file(&p.join(MANIFEST), json.as_bytes()).map_err(|e| Error::io(dir.join(MANIFEST), e))?;
    crate::files::seal(p)?;
    staging.commit().map_err(|e| Error::io(dir, e))?;
    Ok(())
}

fn load_simple<C: DeserializeOwned, M>(
    files: &ModelFiles,
    kind: &str,
    build: impl FnOnce(C, ModelMeta, FeatureSpec, &Reader<'_, '_>) -> Result<M>,
) -> Result<(M, std::path::PathBuf)> {
    // Every file verified (see `crate::files`). The kind and version first, so that a
    // model of another kind is named as such rather than failing on its fields.
    let (mpath, raw): (_, serde_json::Value) = parse_manifest(files)?;
    let field = |k: &str| raw.get(k).cloned().unwrap_or_default();
    check_manifest(
        &mpath,
        field("kind").as_str().unwrap_or(""),
        kind,
        field("format_version").as_u64().unwrap_or(0) as u32,
    )?;
    let manifest: SimpleManifest<C> = serde_json::from_value(raw)
        .map_err(|e| Error::corrupt(&mpath, format!("invalid manifest: {e}")))?;
    let spec = read_spec(files)?;
    let (wpath, bytes) = read_weights(files, &manifest.weights_checksum)?;
    let st = tensors(&wpath, &bytes)?;
    let r = Reader::new(&st, &wpath);
    let m = build(manifest.config, manifest.meta, spec, &r)?;
    files.verify_unread()?;
    Ok((m, wpath))
}
