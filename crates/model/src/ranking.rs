//! The ranking model: embeddings of the user id, the item id and optional side
//! features, concatenated and fed to an MLP that predicts the rating; optional
//! per-user/per-item bias terms and a user·item dot product are added to its output.

use serde::{Deserialize, Serialize};
use shortlist_features::{EncodedColumn, EncodedTable, FeatureSpec};

use crate::autorec::{AutoRec, AutoRecConfig};
use crate::dense::Mlp;
use crate::embedding::EmbeddingTable;
use crate::error::{Error, Result};
use crate::relevance::RelevanceHead;

/// Architecture hyper-parameters of a [`RankingModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankingConfig {
    /// Width of every embedding (ids and categorical side features).
    pub embedding_dim: usize,
    /// Hidden layer widths of the MLP (ReLU); the output layer (width 1) is implied.
    pub hidden: Vec<usize>,
    /// Add a learned bias per user and per item to the output.
    pub biases: bool,
    /// Add the dot product of the user-id and item-id embeddings to the output.
    pub dot: bool,
    /// SVD++-style implicit feedback: a `user_implicit` input (features\[2\]), the mean
    /// of the embeddings (own table, one row per item) of the items the user rated in
    /// training. It is an MLP input and, with `dot`, is added to the user embedding of
    /// the dot product: `(p_u + mean_j y_j) · q_i`.
    pub implicit: bool,
    /// Clip predictions to `[lo, hi]` (the training rating range); `None`: no clipping.
    pub clip: Option<[f32; 2]>,
    /// An I-AutoRec blended into the predictions ([`RankingModel::autorec`]); `None`: none.
    pub autorec: Option<AutoRecConfig>,
}

impl Default for RankingConfig {
    fn default() -> Self {
        RankingConfig {
            embedding_dim: 32,
            hidden: vec![256, 64],
            biases: false,
            dot: false,
            implicit: false,
            clip: None,
            autorec: None,
        }
    }
}

/// Whose feature an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// Indexed by the user vocabulary row.
    User,
    /// Indexed by the item vocabulary row.
    Item,
}

/// How an input feature maps an entity row to embedding rows (or a value).
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The entity row itself (the id embedding).
    Id,
    /// One embedding row per entity row.
    Index(Vec<u32>),
    /// A bag of embedding rows per entity row (mean-pooled), CSR-style.
    Bag {
        /// Entity row r holds `ids[offsets[r]..offsets[r + 1]]`.
        offsets: Vec<u32>,
        /// Concatenated embedding rows.
        ids: Vec<u32>,
    },
    /// One normalised number per entity row, fed as is.
    Dense(Vec<f32>),
}

/// One model input: a looked-up embedding or a dense value.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFeature {
    /// Feature name (`user_id`, `item_id`, or the side feature's column).
    pub name: String,
    /// Whose feature it is.
    pub side: Side,
    /// Entity row → embedding rows.
    pub lookup: Lookup,
    /// The embedding table (`None` for [`Lookup::Dense`]).
    pub table: Option<EmbeddingTable>,
}

impl InputFeature {
    /// Width of the feature in the MLP input.
    pub fn width(&self) -> usize {
        self.table.as_ref().map_or(1, |t| t.dim())
    }

    /// Embedding rows of entity row `row` (`one` is scratch for single-row lookups).
    pub fn ids<'a>(&'a self, row: u32, one: &'a mut u32) -> &'a [u32] {
        match &self.lookup {
            Lookup::Id => {
                *one = row;
                std::slice::from_ref(one)
            }
            Lookup::Index(v) => {
                *one = v[row as usize];
                std::slice::from_ref(one)
            }
            Lookup::Bag { offsets, ids } => {
                &ids[offsets[row as usize] as usize..offsets[row as usize + 1] as usize]
            }
            Lookup::Dense(_) => &[],
        }
    }

    /// Writes the feature of entity row `row` into `out` (`width()` values).
    pub fn fill(&self, row: u32, out: &mut [f32]) {
        match (&self.lookup, &self.table) {
            (Lookup::Dense(v), _) => out[0] = v[row as usize],
            (Lookup::Id, Some(t)) => t.lookup_into(row as usize, out),
            (Lookup::Index(v), Some(t)) => t.lookup_into(v[row as usize] as usize, out),
            (Lookup::Bag { .. }, Some(t)) => {
                let mut one = 0;
                t.bag_mean_into(self.ids(row, &mut one), out)
            }
            (_, None) => out[..self.width()].fill(0.0),
        }
    }

    /// Number of entity rows this feature covers.
    pub fn entity_rows(&self) -> Option<usize> {
        match &self.lookup {
            Lookup::Id => self.table.as_ref().map(|t| t.rows()),
            Lookup::Index(v) => Some(v.len()),
            Lookup::Bag { offsets, .. } => Some(offsets.len().saturating_sub(1)),
            Lookup::Dense(v) => Some(v.len()),
        }
    }
}

/// Training-side facts stored with a model in its manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The training hyper-parameters (opaque here: whatever the trainer recorded).
    pub hyper_parameters: serde_json::Value,
    /// Final metrics by name (`test_rmse`, …).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Fingerprint of the training data (hex).
    pub data_fingerprint: String,
}

/// The rating predicted for a raw (user, item) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Predicted rating.
    pub rating: f32,
    /// The user id was not in the training vocabulary (its OOV embedding was used).
    pub user_oov: bool,
    /// The item id was not in the training vocabulary.
    pub item_oov: bool,
}

/// The ranking model (inference). `==` compares everything but the derived
/// [`ScoringCache`].
#[derive(Debug, Clone)]
pub struct RankingModel {
    /// Architecture.
    pub config: RankingConfig,
    /// The fitted feature spec (id vocabularies, side feature transforms).
    pub spec: FeatureSpec,
    /// Inputs in MLP order: `user_id`, `item_id`, then side features.
    pub features: Vec<InputFeature>,
    /// Per-user output bias (`rows × 1`) when `config.biases`.
    pub user_bias: Option<EmbeddingTable>,
    /// Per-item output bias when `config.biases`.
    pub item_bias: Option<EmbeddingTable>,
    /// The MLP (`input width → hidden… → 1`).
    pub mlp: Mlp,
    /// Training facts saved in the manifest.
    pub meta: ModelMeta,
    /// Ensemble members (same feature spec): predictions are the mean of this model's
    /// and the members' raw outputs, then clipped. Saved in `member-{k}/`.
    pub members: Vec<RankingModel>,
    /// I-AutoRec blended into the ensemble mean before clipping, for pairs whose user
    /// and item had training ratings (`config.autorec` holds its shape and weight).
    /// Saved as `autorec.*` tensors.
    pub autorec: Option<AutoRec>,
    /// The relevance head that orders candidate lists (see [`crate::relevance`]);
    /// `None` for a rating-only model. Saved in the manifest and `relevance-*/`.
    pub relevance: Option<RelevanceHead>,
    /// Precomputed first-layer partial sums for fast scoring (see
    /// [`RankingModel::prepare_scoring`]); derived data, ignored by `==`.
    pub cache: Option<ScoringCache>,
}

/// Per-vocabulary-row partial products of the first MLP layer. The first layer is linear
/// in the concatenated inputs, so `x·W1 + b1 = (user inputs)·W1_user + b1 + (item
/// inputs)·W1_item`; scoring a pair is then an add, a ReLU and the remaining layers.
#[derive(Debug, Clone, Default)]
pub struct ScoringCache {
    /// `users × h1`: user-side inputs times their rows of `W1`, plus `b1`.
    pub user: Vec<f32>,
    /// `items × h1`: item-side inputs times their rows of `W1`.
    pub item: Vec<f32>,
    /// `users × dim`: the user vector of the dot term (`p_u`, plus the implicit mean).
    pub user_vec: Vec<f32>,
}

impl PartialEq for RankingModel {
    fn eq(&self, o: &Self) -> bool {
        self.config == o.config
            && self.spec == o.spec
            && self.features == o.features
            && self.user_bias == o.user_bias
            && self.item_bias == o.item_bias
            && self.mlp == o.mlp
            && self.meta == o.meta
            && self.members == o.members
            && self.autorec == o.autorec
            && self.relevance == o.relevance
    }
}

/// Largest cache [`RankingModel::prepare_scoring`] builds, in floats (256 MiB).
pub const MAX_CACHE_FLOATS: usize = 64 << 20;

/// Input features for the encoded side-feature columns of one entity. A numeric
/// column is fed as is (`dense_vector == false`, ranking: one MLP input) or scales a
/// learned `dim`-vector (`dense_vector == true`, retrieval towers that sum embeddings).
pub(crate) fn side_features(
    enc: &EncodedTable,
    side: Side,
    dim: usize,
    dense_vector: bool,
) -> Vec<InputFeature> {
    enc.columns
        .iter()
        .map(|c| match c {
            EncodedColumn::Index {
                name,
                cardinality,
                values,
            } => InputFeature {
                name: name.clone(),
                side,
                lookup: Lookup::Index(values.clone()),
                table: Some(EmbeddingTable::zeros(*cardinality, dim)),
            },
            EncodedColumn::Bag {
                name,
                cardinality,
                offsets,
                ids,
            } => InputFeature {
                name: name.clone(),
                side,
                lookup: Lookup::Bag {
                    offsets: offsets.clone(),
                    ids: ids.clone(),
                },
                table: Some(EmbeddingTable::zeros(*cardinality, dim)),
            },
            EncodedColumn::Dense { name, values } => InputFeature {
                name: name.clone(),
                side,
                lookup: Lookup::Dense(values.clone()),
                table: dense_vector.then(|| EmbeddingTable::zeros(1, dim)),
            },
        })
        .collect()
}

/// Batches of at least this many pairs are scored on two threads.
const PARALLEL_PAIRS: usize = 512;

/// Name of the implicit-feedback input (see [`RankingConfig::implicit`]).
pub const IMPLICIT: &str = "user_implicit";

/// Reusable buffers of batched prediction.
#[derive(Debug, Default)]
pub struct Scratch {
    /// MLP input, `batch × input width`.
    pub input: Vec<f32>,
    /// Per-layer outputs.
    pub acts: Vec<Vec<f32>>,
    /// Outputs of ensemble members.
    pub member: Vec<f32>,
}

impl RankingModel {
    /// A zero-initialised model for `spec` with the encoded side features
    /// `users`/`items` (from `spec.encode_users/encode_items`; pass empty tables for ids only).
    pub fn new(
        config: RankingConfig,
        spec: FeatureSpec,
        users: &EncodedTable,
        items: &EncodedTable,
    ) -> Result<Self> {
        if config.embedding_dim == 0 {
            return Err(Error::invalid("embedding_dim", "expected at least 1"));
        }
        if let Some(k) = config.hidden.iter().position(|&h| h == 0) {
            return Err(Error::invalid(
                format!("hidden[{k}]"),
                "expected at least 1",
            ));
        }
        let dim = config.embedding_dim;
        let (nu, ni) = (spec.user_id.len(), spec.item_id.len());
        let mut features = vec![
            InputFeature {
                name: "user_id".into(),
                side: Side::User,
                lookup: Lookup::Id,
                table: Some(EmbeddingTable::zeros(nu, dim)),
            },
            InputFeature {
                name: "item_id".into(),
                side: Side::Item,
                lookup: Lookup::Id,
                table: Some(EmbeddingTable::zeros(ni, dim)),
            },
        ];
        if config.implicit {
            features.push(InputFeature {
                name: IMPLICIT.into(),
                side: Side::User,
                lookup: Lookup::Bag {
                    offsets: vec![0; nu + 1],
                    ids: Vec::new(),
                },
                table: Some(EmbeddingTable::zeros(ni, dim)),
            });
        }
        features.extend(side_features(users, Side::User, dim, false));
        features.extend(side_features(items, Side::Item, dim, false));
        let width: usize = features.iter().map(InputFeature::width).sum();
        let mlp = Mlp::zeros(width, &config.hidden, 1);
        let (user_bias, item_bias) = if config.biases {
            (
                Some(EmbeddingTable::zeros(nu, 1)),
                Some(EmbeddingTable::zeros(ni, 1)),
            )
        } else {
            (None, None)
        };
        let model = RankingModel {
            config,
            spec,
            features,
            user_bias,
            item_bias,
            mlp,
            meta: ModelMeta::default(),
            members: Vec::new(),
            autorec: None,
            relevance: None,
            cache: None,
        };
        model.check()?;
        Ok(model)
    }

    /// Checks that all shapes agree (used after construction and loading).
    pub fn check(&self) -> Result<()> {
        let (nu, ni) = (self.num_users(), self.num_items());
        if self.features.len() < 2
            || self.features[0].lookup != Lookup::Id
            || self.features[1].lookup != Lookup::Id
        {
            return Err(Error::invalid(
                "features",
                "expected user_id and item_id first",
            ));
        }
        for f in &self.features {
            let want = match f.side {
                Side::User => nu,
                Side::Item => ni,
            };
            if f.entity_rows() != Some(want) {
                return Err(Error::invalid(
                    format!("feature {}", f.name),
                    format!("expected {want} entity rows, got {:?}", f.entity_rows()),
                ));
            }
            if let (Some(t), Lookup::Index(ids) | Lookup::Bag { ids, .. }) = (&f.table, &f.lookup) {
                if ids.iter().any(|&i| i as usize >= t.rows()) {
                    return Err(Error::invalid(
                        format!("feature {}", f.name),
                        format!("index out of the table's {} rows", t.rows()),
                    ));
                }
            }
            if let Lookup::Bag { offsets, ids } = &f.lookup {
                if offsets.windows(2).any(|w| w[0] > w[1])
                    || offsets.last().map(|&o| o as usize) != Some(ids.len())
                {
                    return Err(Error::invalid(format!("feature {}", f.name), "bad offsets"));
                }
            }
        }
        if self.config.implicit {
            let ok = self.features.get(2).is_some_and(|f| {
                f.name == IMPLICIT
                    && f.side == Side::User
                    && matches!(f.lookup, Lookup::Bag { .. })
                    && f.table
                        .as_ref()
                        .is_some_and(|t| t.rows() == ni && t.dim() == self.features[0].width())
            });
            if !ok {
                return Err(Error::invalid(
                    "implicit",
                    "expected features[2] to be the user_implicit bag over the item vocabulary",
                ));
            }
        }
        if let Some([lo, hi]) = self.config.clip {
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(Error::invalid("clip", format!("empty range [{lo}, {hi}]")));
            }
        }
        match (&self.config.autorec, &self.autorec) {
            (None, None) => {}
            (Some(c), Some(a)) if *c == a.config => a.check(nu, ni)?,
            _ => {
                return Err(Error::invalid(
                    "autorec",
                    "the configuration and the AutoRec weights disagree",
                ))
            }
        }
        // The configuration must describe the weights (a manifest that lies about
        // its dimensions is refused, not trusted).
        let id_width = self.features[0].width();
        if id_width != self.config.embedding_dim || self.features[1].width() != id_width {
            return Err(Error::invalid(
                "embedding_dim",
                format!(
                    "the configuration says {}, the id embeddings are {} and {} wide",
                    self.config.embedding_dim,
                    id_width,
                    self.features[1].width()
                ),
            ));
        }
        let widths: Vec<usize> = self.mlp.layers.iter().map(|l| l.output).collect();
        if widths.len() != self.config.hidden.len() + 1
            || widths.iter().zip(&self.config.hidden).any(|(w, h)| w != h)
        {
            return Err(Error::invalid(
                "hidden",
                format!(
                    "the configuration says {:?}, the MLP layers are {widths:?} wide",
                    self.config.hidden
                ),
            ));
        }
        if let Some(r) = &self.relevance {
            r.check(nu, ni)?;
        }
        let width: usize = self.features.iter().map(InputFeature::width).sum();
        if self.mlp.input() != width || self.mlp.output() != 1 {
            return Err(Error::invalid(
                "mlp",
                format!(
                    "expected input {width} and output 1, got {} and {}",
                    self.mlp.input(),
                    self.mlp.output()
                ),
            ));
        }
        for (k, pair) in self.mlp.layers.windows(2).enumerate() {
            if pair[0].output != pair[1].input {
                return Err(Error::invalid(
                    format!("mlp layer {}", k + 1),
                    "width mismatch",
                ));
            }
        }
        let dim_ok = |t: &Option<EmbeddingTable>, rows| {
            t.as_ref().is_none_or(|t| t.rows() == rows && t.dim() == 1)
        };
        if !dim_ok(&self.user_bias, nu) || !dim_ok(&self.item_bias, ni) {
            return Err(Error::invalid(
                "biases",
                "expected one value per user and per item",
            ));
        }
        if self.config.dot && self.features[0].width() != self.features[1].width() {
            return Err(Error::invalid(
                "dot",
                "user and item embeddings differ in width",
            ));
        }
        Ok(())
    }

    /// Rows of the user vocabulary.
    pub fn num_users(&self) -> usize {
        self.spec.user_id.len()
    }

    /// Rows of the item vocabulary.
    pub fn num_items(&self) -> usize {
        self.spec.item_id.len()
    }

    /// Width of the MLP input.
    pub fn input_width(&self) -> usize {
        self.mlp.input()
    }

    /// Writes the MLP input of (user row, item row) into `out`.
    pub fn fill_input(&self, user: u32, item: u32, out: &mut [f32]) {
        let mut at = 0;
        for f in &self.features {
            let w = f.width();
            let row = match f.side {
                Side::User => user,
                Side::Item => item,
            };
            f.fill(row, &mut out[at..at + w]);
            at += w;
        }
    }

    /// Sets the implicit-feedback bags: `user_items[u]` are the item vocabulary rows user
    /// row `u` interacted with in training (missing users get an empty bag).
    ///
    /// # Errors
    /// When the model has no implicit term or an item row is out of range.
    pub fn set_implicit(&mut self, user_items: &[Vec<u32>]) -> Result<()> {
        if !self.config.implicit {
            return Err(Error::invalid("implicit", "the model has no implicit term"));
        }
        let nu = self.num_users();
        let mut offsets = Vec::with_capacity(nu + 1);
        let mut ids = Vec::new();
        offsets.push(0);
        for u in 0..nu {
            if let Some(v) = user_items.get(u) {
                ids.extend_from_slice(v);
            }
            offsets.push(ids.len() as u32);
        }
        self.features[2].lookup = Lookup::Bag { offsets, ids };
        self.check()
    }

    /// Terms added to the MLP output given the filled MLP input row `x` of
    /// (user row, item row): biases and the dot product (with the implicit term).
    pub fn extra_from_input(&self, user: u32, item: u32, x: &[f32]) -> f32 {
        let mut s = 0.0;
        if let (Some(ub), Some(ib)) = (&self.user_bias, &self.item_bias) {
            s += ub.row(user as usize)[0] + ib.row(item as usize)[0];
        }
        if self.config.dot {
            let d = self.features[0].width();
            let (p, q) = (&x[..d], &x[d..2 * d]);
            if self.config.implicit {
                let y = &x[2 * d..3 * d];
                s += p
                    .iter()
                    .zip(y)
                    .zip(q)
                    .map(|((a, c), b)| (a + c) * b)
                    .sum::<f32>();
            } else {
                s += p.iter().zip(q).map(|(a, b)| a * b).sum::<f32>();
            }
        }
        s
    }

    /// Terms added to the MLP output for (user row, item row): biases and dot product.
    pub fn extra(&self, user: u32, item: u32) -> f32 {
        let mut x = vec![0.0; self.input_width()];
        self.fill_input(user, item, &mut x);
        self.extra_from_input(user, item, &x)
    }

    /// Applies the configured clipping to a prediction.
    #[inline]
    pub fn clip(&self, v: f32) -> f32 {
        match self.config.clip {
            Some([lo, hi]) => v.clamp(lo, hi),
            None => v,
        }
    }

    /// Predicted rating of (user vocabulary row, item vocabulary row).
    ///
    /// # Panics
    /// When a row is out of range (use [`RankingModel::predict_raw`] for raw ids).
    pub fn predict(&self, user: u32, item: u32) -> f32 {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
        }
        let mut out = [0.0];
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.predict_batch_with(&[user], &[item], &mut s, &mut out),
            Err(_) => self.predict_batch_with(&[user], &[item], &mut Scratch::default(), &mut out),
        });
        out[0]
    }

    /// Predicted ratings of many pairs.
    pub fn predict_batch(&self, users: &[u32], items: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0; users.len().min(items.len())];
        self.predict_batch_with(users, items, &mut Scratch::default(), &mut out);
        out
    }

    /// Predicted ratings of many pairs into `out`, reusing `scratch`: the mean of this
    /// model's and its members' outputs, blended with [`RankingModel::autorec`] when
    /// present, clipped to `config.clip`.
    pub fn predict_batch_with(
        &self,
        users: &[u32],
        items: &[u32],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        let n = users.len().min(items.len()).min(out.len());
        // Large requests use both cores: the second half on another thread with its own
        // buffers (each pair's score does not depend on the split).
        if n >= PARALLEL_PAIRS && rayon::current_num_threads() > 1 {
            let mid = n / 2;
            let (lo, hi) = out[..n].split_at_mut(mid);
            rayon::join(
                || self.predict_batch_with(&users[..mid], &items[..mid], scratch, lo),
                || {
                    let mut own = Scratch::default();
                    self.predict_batch_with(&users[mid..n], &items[mid..n], &mut own, hi)
                },
            );
            return;
        }
        self.raw_batch(users, items, scratch, &mut out[..n]);
        if !self.members.is_empty() {
            let mut tmp = std::mem::take(&mut scratch.member);
            tmp.resize(n, 0.0);
            for m in &self.members {
                m.raw_batch(users, items, scratch, &mut tmp);
                for (o, t) in out.iter_mut().zip(&tmp) {
                    *o += t;
                }
            }
            let inv = 1.0 / (self.members.len() + 1) as f32;
            for o in &mut out[..n] {
                *o *= inv;
            }
            scratch.member = tmp;
        }
        if let Some(a) = &self.autorec {
            a.blend(users, items, &mut out[..n]);
        }
        for o in &mut out[..n] {
            *o = self.clip(*o);
        }
    }

    /// Unclipped output of this model alone (members ignored) for `out.len()` pairs.
    fn raw_batch(&self, users: &[u32], items: &[u32], scratch: &mut Scratch, out: &mut [f32]) {
        let n = out.len();
        if let Some(c) = &self.cache {
            let h = self.mlp.layers[0].output;
            scratch.input.resize(n * h, 0.0);
            for (k, (&u, &i)) in users.iter().zip(items).take(n).enumerate() {
                let dst = &mut scratch.input[k * h..(k + 1) * h];
                let (cu, ci) = (
                    &c.user[u as usize * h..(u as usize + 1) * h],
                    &c.item[i as usize * h..(i as usize + 1) * h],
                );
                for ((d, a), b) in dst.iter_mut().zip(cu).zip(ci) {
                    *d = (a + b).max(0.0);
                }
            }
            let rest = &self.mlp.layers[1..];
            scratch.acts.resize_with(rest.len(), Vec::new);
            for (l, layer) in rest.iter().enumerate() {
                let (done, todo) = scratch.acts.split_at_mut(l);
                let o = &mut todo[0];
                o.resize(n * layer.output, 0.0);
                let input: &[f32] = if l == 0 { &scratch.input } else { &done[l - 1] };
                layer.forward(input, n, o);
            }
            let last = scratch.acts.last().map_or(&scratch.input[..], |a| &a[..]);
            let d = self.features[0].width();
            for k in 0..n {
                let (u, i) = (users[k] as usize, items[k] as usize);
                let mut v = last[k];
                if let (Some(ub), Some(ib)) = (&self.user_bias, &self.item_bias) {
                    v += ub.row(u)[0] + ib.row(i)[0];
                }
                if self.config.dot {
                    if let Some(t) = &self.features[1].table {
                        v += c.user_vec[u * d..(u + 1) * d]
                            .iter()
                            .zip(t.row(i))
                            .map(|(a, b)| a * b)
                            .sum::<f32>();
                    }
                }
                out[k] = v;
            }
            return;
        }
        let w = self.input_width();
        scratch.input.resize(n * w, 0.0);
        for (k, (&u, &i)) in users.iter().zip(items).take(n).enumerate() {
            self.fill_input(u, i, &mut scratch.input[k * w..(k + 1) * w]);
        }
        self.mlp.forward_all(&scratch.input, n, &mut scratch.acts);
        let last = scratch.acts.last().map_or(&[][..], |a| &a[..]);
        for k in 0..n {
            let x = &scratch.input[k * w..(k + 1) * w];
            out[k] = last[k] + self.extra_from_input(users[k], items[k], x);
        }
    }

    /// Precomputes the first MLP layer's user part and item part per vocabulary row (and
    /// the dot term's user vectors), here and in every member, so that scoring skips the
    /// gathers and the first (widest) GEMM. Skipped (the plain path is used) when the
    /// cache would exceed [`MAX_CACHE_FLOATS`]. Call again after changing any weight;
    /// [`RankingModel::load`] and the trainer call it.
    pub fn prepare_scoring(&mut self) {
        for m in &mut self.members {
            m.prepare_scoring();
        }
        self.cache = None;
        let (nu, ni) = (self.num_users(), self.num_items());
        let layer = &self.mlp.layers[0];
        let (h, w) = (layer.output, layer.input);
        let d = self.features[0].width();
        if (nu + ni) * (h + w) + nu * d > MAX_CACHE_FLOATS || self.mlp.layers.len() < 2 {
            return;
        }
        // Side inputs of every row (other side's columns zero), then one GEMM per side.
        let side_part = |side: Side, rows: usize| -> Vec<f32> {
            let mut x = vec![0.0; rows * w];
            for r in 0..rows {
                let mut at = 0;
                for f in &self.features {
                    let fw = f.width();
                    if f.side == side {
                        f.fill(r as u32, &mut x[r * w + at..r * w + at + fw]);
                    }
                    at += fw;
                }
            }
            let mut y = vec![0.0; rows * h];
            if side == Side::User {
                for row in y.chunks_exact_mut(h) {
                    row.copy_from_slice(&layer.bias);
                }
            }
            crate::kernel::gemm(
                rows,
                w,
                h,
                crate::kernel::Operand::new(&x),
                crate::kernel::Operand::new(&layer.weight),
                1.0,
                &mut y,
            );
            y
        };
        let user = side_part(Side::User, nu);
        let item = side_part(Side::Item, ni);
        let mut user_vec = vec![0.0; nu * d];
        if self.config.dot {
            let mut tmp = vec![0.0; d];
            for u in 0..nu {
                let dst = &mut user_vec[u * d..(u + 1) * d];
                self.features[0].fill(u as u32, dst);
                if self.config.implicit {
                    self.features[2].fill(u as u32, &mut tmp);
                    for (a, b) in dst.iter_mut().zip(&tmp) {
                        *a += b;
                    }
                }
            }
        }
        self.cache = Some(ScoringCache {
            user,
            item,
            user_vec,
        });
    }

    /// Vocabulary rows of raw ids (OOV ids map to their OOV rows).
    pub fn rows_of(&self, user: &str, item: &str) -> (u32, u32) {
        (self.spec.user_id.index(user), self.spec.item_id.index(item))
    }

    /// Predicted rating of a raw (user id, item id) pair, flagging unknown ids.
    pub fn predict_raw(&self, user: &str, item: &str) -> Prediction {
        let (u, i) = self.rows_of(user, item);
        Prediction {
            rating: self.predict(u, i),
            user_oov: self.spec.user_id.is_oov(u),
            item_oov: self.spec.item_id.is_oov(i),
        }
    }

    /// Number of learned parameters.
    pub fn num_parameters(&self) -> usize {
        let t: usize = self
            .features
            .iter()
            .filter_map(|f| f.table.as_ref())
            .chain(self.user_bias.iter())
            .chain(self.item_bias.iter())
            .map(|t| t.data().len())
            .sum();
        t + self.autorec.as_ref().map_or(0, AutoRec::num_parameters)
            + self
                .mlp
                .layers
                .iter()
                .map(|l| l.weight.len() + l.bias.len())
                .sum::<usize>()
    }
}
