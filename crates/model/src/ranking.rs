//! The ranking model: embeddings of the user id, the item id and optional side
//! features, concatenated, optionally crossed by DCN-v2 layers ([`crate::cross`]) and
//! fed to an MLP that predicts the rating (or, for the `click` objective, the logit of
//! a click probability); optional per-user/per-item bias terms and a user·item dot
//! product are added to its output.

use serde::{Deserialize, Serialize};
use shortlist_features::{EncodedTable, FeatureSpec};

use crate::autorec::{AutoRec, AutoRecConfig};
use crate::cross::CrossNet;
use crate::dense::Mlp;
use crate::embedding::EmbeddingTable;
use crate::error::{Error, Result};
pub(crate) use crate::input::side_features;
pub use crate::input::{InputFeature, Lookup, Side};
use crate::relevance::RelevanceHead;
pub use crate::scoring::{ScoringCache, MAX_CACHE_FLOATS};

/// What the rating head is trained for, and so what its output means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Mean squared error on the rating column: the output is a rating.
    #[default]
    Rating,
    /// Binary cross-entropy on click labels (impressions with 0/1 outcomes): the
    /// output is the click probability `σ(logit)`; no clipping, no AutoRec blend.
    Click,
    /// The rating MSE plus a retrieval loss (in-batch softmax over the batch's items)
    /// on the dot product of the shared user and item embeddings, with configurable
    /// weights (TensorFlow Recommenders' multitask model): the output is a rating, and
    /// [`RankingModel::shared_scores`] is a retrieval score.
    Multitask,
}

impl Objective {
    /// The name used in configurations and reports.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Rating => "rating",
            Objective::Click => "click",
            Objective::Multitask => "multitask",
        }
    }

    fn is_rating(&self) -> bool {
        *self == Objective::Rating
    }
}

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
    /// What the model was trained for (absent in older manifests: `rating`).
    #[serde(skip_serializing_if = "Objective::is_rating")]
    pub objective: Objective,
    /// Click models: a rating ≥ this value is a click (label 1), below it a non-click;
    /// `None`: the rating column holds 0/1 labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_threshold: Option<f32>,
    /// Number of DCN-v2 cross layers between the inputs and the MLP (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub cross_layers: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
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
            objective: Objective::Rating,
            label_threshold: None,
            cross_layers: 0,
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
    /// DCN-v2 cross layers applied to the input before the MLP (`config.cross_layers`).
    pub cross: CrossNet,
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
    /// [`RankingModel::prepare_scoring`]); derived data, ignored by `==`. Private: only
    /// `prepare_scoring` may build it, so that it always matches the weights; read it
    /// through [`RankingModel::scoring_cache`].
    pub(crate) cache: Option<ScoringCache>,
}

impl PartialEq for RankingModel {
    fn eq(&self, o: &Self) -> bool {
        self.config == o.config
            && self.spec == o.spec
            && self.features == o.features
            && self.user_bias == o.user_bias
            && self.item_bias == o.item_bias
            && self.cross == o.cross
            && self.mlp == o.mlp
            && self.meta == o.meta
            && self.members == o.members
            && self.autorec == o.autorec
            && self.relevance == o.relevance
    }
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
    /// Cross-layer outputs `x_1 … x_L` (see [`CrossNet::forward_all`]).
    pub cross_x: Vec<Vec<f32>>,
    /// Cross-layer pre-products `x_l · W_l + b_l`.
    pub cross_t: Vec<Vec<f32>>,
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
        let cross = CrossNet::zeros(width, config.cross_layers);
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
            cross,
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
        if self.config.objective == Objective::Click {
            if self.config.clip.is_some() {
                return Err(Error::invalid(
                    "clip",
                    "a click model predicts probabilities; clipping does not apply",
                ));
            }
            if self.config.autorec.is_some() {
                return Err(Error::invalid(
                    "autorec",
                    "the AutoRec blend predicts ratings and does not apply to a click model",
                ));
            }
        }
        if self.cross.layers.len() != self.config.cross_layers {
            return Err(Error::invalid(
                "cross_layers",
                format!(
                    "the configuration says {} and the model has {}",
                    self.config.cross_layers,
                    self.cross.layers.len()
                ),
            ));
        }
        self.cross.check(self.mlp.input())?;
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
            if r.weights.features.contains(&crate::ListFeature::Multitask)
                && self.config.objective != Objective::Multitask
            {
                return Err(Error::invalid(
                    "relevance.features",
                    "the multitask feature needs a model trained with objective = \"multitask\"",
                ));
            }
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

    /// The output of the model given its raw score: the score itself, or for a click
    /// model the probability `σ(score)`.
    #[inline]
    pub fn link(&self, raw: f32) -> f32 {
        match self.config.objective {
            Objective::Click => sigmoid(raw),
            Objective::Rating | Objective::Multitask => raw,
        }
    }

    /// The user vector of the shared-embedding score: `p_u` (plus the implicit mean
    /// of the user's training items with `implicit`), written into `out` (`dim` values).
    pub fn shared_user_vector(&self, user: u32, out: &mut [f32]) {
        let d = self.features[0].width();
        self.features[0].fill(user, &mut out[..d]);
        if self.config.implicit {
            let mut tmp = vec![0.0; d];
            self.features[2].fill(user, &mut tmp);
            out[..d].iter_mut().zip(&tmp).for_each(|(a, b)| *a += b);
        }
    }

    /// The shared-embedding score of `user` for each of `items` into `out`: the dot
    /// product of [`Self::shared_user_vector`] with the item-id embedding (the dot term
    /// of the rating head; the retrieval score of a `multitask` model), averaged over
    /// the ensemble members.
    pub fn shared_scores(&self, user: u32, items: &[u32], out: &mut [f32]) {
        let d = self.features[0].width();
        let mut p = vec![0.0; d];
        out[..items.len()].fill(0.0);
        for m in std::iter::once(self).chain(&self.members) {
            m.shared_user_vector(user, &mut p);
            if let Some(t) = &m.features[1].table {
                for (o, &i) in out.iter_mut().zip(items) {
                    *o += p
                        .iter()
                        .zip(t.row(i as usize))
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
                }
            }
        }
        let inv = 1.0 / (self.members.len() + 1) as f32;
        out[..items.len()].iter_mut().for_each(|o| *o *= inv);
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

    /// Predicted ratings (click probabilities for a click model) of many pairs into
    /// `out`, reusing `scratch`: the mean of this model's and its members' outputs (each
    /// through [`Self::link`]), blended with [`RankingModel::autorec`] when present,
    /// clipped to `config.clip`.
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
        let click = self.config.objective == Objective::Click;
        if click {
            out[..n].iter_mut().for_each(|o| *o = sigmoid(*o));
        }
        if !self.members.is_empty() {
            let mut tmp = std::mem::take(&mut scratch.member);
            tmp.resize(n, 0.0);
            for m in &self.members {
                m.raw_batch(users, items, scratch, &mut tmp);
                for (o, t) in out.iter_mut().zip(&tmp) {
                    *o += if click { sigmoid(*t) } else { *t };
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

    /// Raw score (before [`Self::link`] and clipping) of this model alone (members
    /// ignored) for `out.len()` pairs.
    pub fn raw_batch(&self, users: &[u32], items: &[u32], scratch: &mut Scratch, out: &mut [f32]) {
        let n = out.len();
        if let Some(c) = &self.cache {
            self.raw_batch_cached(c, users, items, scratch, out);
            return;
        }
        let w = self.input_width();
        scratch.input.resize(n * w, 0.0);
        for (k, (&u, &i)) in users.iter().zip(items).take(n).enumerate() {
            self.fill_input(u, i, &mut scratch.input[k * w..(k + 1) * w]);
        }
        if self.cross.is_empty() {
            self.mlp.forward_all(&scratch.input, n, &mut scratch.acts);
        } else {
            self.cross.forward_all(
                &scratch.input,
                n,
                &mut scratch.cross_x,
                &mut scratch.cross_t,
            );
            let crossed = scratch.cross_x.last().map_or(&[][..], |v| &v[..]);
            self.mlp.forward_all(crossed, n, &mut scratch.acts);
        }
        let last = scratch.acts.last().map_or(&[][..], |a| &a[..]);
        for k in 0..n {
            let x = &scratch.input[k * w..(k + 1) * w];
            out[k] = last[k] + self.extra_from_input(users[k], items[k], x);
        }
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
                .chain(&self.cross.layers)
                .map(|l| l.weight.len() + l.bias.len())
                .sum::<usize>()
    }
}

/// The logistic function, `1 / (1 + e^{−x})`, without overflow for large |x|.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
