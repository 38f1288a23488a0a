//! The retrieval model: a two-tower model scoring a (user, item) pair by the dot product
//! of a query vector and a candidate vector, divided by a temperature.
//!
//! * Query tower: user-id embedding + user side-feature embeddings + (optionally) the
//!   mean of "history" embeddings of the items the user interacted with in training.
//! * Candidate tower: item-id embedding + item side-feature embeddings (pooled title
//!   tokens, genres, …; a numeric feature contributes `value × vector`).
//!
//! Towers sum their feature embeddings (all of width `embedding_dim`): a linear tower,
//! which is what the data supports at MovieLens scale; an MLP on top is future work.
//! The model also stores each user's training items (for the history term and for
//! excluding seen items) and item popularity (the fallback for unknown users). Items
//! without training interactions (cold items, popularity 0: products launched after
//! training) may have rows with a zero id embedding, whose candidate vector then comes
//! from their side features alone (see `shortlist-train`'s `retrieval.rs`).

use serde::{Deserialize, Serialize};
use shortlist_features::{EncodedTable, FeatureSpec};

use crate::embedding::EmbeddingTable;
use crate::error::{Error, Result};
use crate::ranking::{side_features, InputFeature, Lookup, ModelMeta, Side};

/// Architecture hyper-parameters of a [`RetrievalModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Width of every embedding and of the towers' output.
    pub embedding_dim: usize,
    /// Add the mean embedding of the user's training items to the query.
    pub history: bool,
    /// Scores are `query · candidate / temperature`.
    pub temperature: f32,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            embedding_dim: 64,
            history: true,
            temperature: 1.0,
        }
    }
}

/// Compressed rows: row r holds `ids[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    /// Row starts (length rows + 1).
    pub offsets: Vec<u32>,
    /// Concatenated values.
    pub ids: Vec<u32>,
}

impl Csr {
    /// Builds rows from (row, value) pairs; values are sorted and deduplicated per row.
    pub fn from_pairs(rows: usize, pairs: impl Iterator<Item = (u32, u32)>) -> Csr {
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); rows];
        for (r, v) in pairs {
            if let Some(l) = lists.get_mut(r as usize) {
                l.push(v);
            }
        }
        let mut offsets = Vec::with_capacity(rows + 1);
        let mut ids = Vec::new();
        offsets.push(0);
        for mut l in lists {
            l.sort_unstable();
            l.dedup();
            ids.extend_from_slice(&l);
            offsets.push(ids.len() as u32);
        }
        Csr { offsets, ids }
    }

    /// Values of row `r` (empty when out of range).
    pub fn row(&self, r: usize) -> &[u32] {
        match (self.offsets.get(r), self.offsets.get(r + 1)) {
            (Some(&a), Some(&b)) if a <= b && (b as usize) <= self.ids.len() => {
                &self.ids[a as usize..b as usize]
            }
            _ => &[],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// The retrieval model (inference).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalModel {
    /// Architecture.
    pub config: RetrievalConfig,
    /// The fitted feature spec (id vocabularies, side-feature transforms).
    pub spec: FeatureSpec,
    /// Query-tower inputs: `user_id`, then user side features.
    pub query: Vec<InputFeature>,
    /// Candidate-tower inputs: `item_id`, then item side features.
    pub candidate: Vec<InputFeature>,
    /// History embeddings (items × dim) when `config.history`.
    pub history: Option<EmbeddingTable>,
    /// Each user row's training item rows (sorted): the history and the "seen" filter.
    pub seen: Csr,
    /// Training interactions per item row (popularity; the unknown-user fallback).
    pub popularity: Vec<u32>,
    /// Training facts saved in the manifest.
    pub meta: ModelMeta,
}

fn tower(enc: &EncodedTable, side: Side, id_rows: usize, dim: usize) -> Vec<InputFeature> {
    let id_name = match side {
        Side::User => "user_id",
        Side::Item => "item_id",
    };
    let mut out = vec![InputFeature {
        name: id_name.into(),
        side,
        lookup: Lookup::Id,
        table: Some(EmbeddingTable::zeros(id_rows, dim)),
    }];
    out.extend(side_features(enc, side, dim, true));
    out
}

/// Adds feature `f`'s embedding of entity `row` to `out` (`scale` times).
pub fn add_feature(f: &InputFeature, row: u32, scale: f32, out: &mut [f32]) {
    let Some(t) = &f.table else { return };
    match &f.lookup {
        Lookup::Id => axpy(scale, t.row(row as usize), out),
        Lookup::Index(v) => axpy(scale, t.row(v[row as usize] as usize), out),
        Lookup::Bag { offsets, ids } => {
            let bag = &ids[offsets[row as usize] as usize..offsets[row as usize + 1] as usize];
            if !bag.is_empty() {
                let w = scale / bag.len() as f32;
                for &b in bag {
                    axpy(w, t.row(b as usize), out);
                }
            }
        }
        Lookup::Dense(v) => axpy(scale * v[row as usize], t.row(0), out),
    }
}

/// `y += a · x`.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

impl RetrievalModel {
    /// A zero-initialised model for `spec`, with side features from the encoded tables,
    /// the users' training items `seen` and item `popularity`.
    pub fn new(
        config: RetrievalConfig,
        spec: FeatureSpec,
        users: &EncodedTable,
        items: &EncodedTable,
        seen: Csr,
        popularity: Vec<u32>,
    ) -> Result<Self> {
        let dim = config.embedding_dim;
        if dim == 0 {
            return Err(Error::invalid("embedding_dim", "expected at least 1"));
        }
        if !(config.temperature.is_finite() && config.temperature > 0.0) {
            return Err(Error::invalid(
                "temperature",
                format!("expected a positive number, found {}", config.temperature),
            ));
        }
        let (nu, ni) = (spec.user_id.len(), spec.item_id.len());
        let model = RetrievalModel {
            query: tower(users, Side::User, nu, dim),
            candidate: tower(items, Side::Item, ni, dim),
            history: config.history.then(|| EmbeddingTable::zeros(ni, dim)),
            config,
            spec,
            seen,
            popularity,
            meta: ModelMeta::default(),
        };
        model.check()?;
        Ok(model)
    }

    /// Checks that every table and lookup agrees with the vocabularies.
    pub fn check(&self) -> Result<()> {
        let (nu, ni, dim) = (
            self.num_users(),
            self.num_items(),
            self.config.embedding_dim,
        );
        for (f, rows) in self
            .query
            .iter()
            .map(|f| (f, nu))
            .chain(self.candidate.iter().map(|f| (f, ni)))
        {
            let t = f
                .table
                .as_ref()
                .ok_or_else(|| Error::invalid(&f.name, "missing embedding table"))?;
            if t.dim() != dim {
                return Err(Error::invalid(
                    &f.name,
                    format!("table width {} differs from embedding_dim {dim}", t.dim()),
                ));
            }
            if f.entity_rows() != Some(rows) {
                return Err(Error::invalid(
                    &f.name,
                    format!(
                        "covers {:?} rows, the vocabulary has {rows}",
                        f.entity_rows()
                    ),
                ));
            }
            let max = match &f.lookup {
                Lookup::Id => None,
                Lookup::Index(v) => v.iter().max().copied(),
                Lookup::Bag { ids, offsets } => {
                    if offsets.windows(2).any(|w| w[0] > w[1])
                        || offsets.last().copied().unwrap_or(0) as usize != ids.len()
                    {
                        return Err(Error::invalid(
                            &f.name,
                            "bag offsets are not monotone or do not end at the id count",
                        ));
                    }
                    ids.iter().max().copied()
                }
                Lookup::Dense(_) => None,
            };
            if max.is_some_and(|m| m as usize >= t.rows()) {
                return Err(Error::invalid(
                    &f.name,
                    "an index points past its embedding table",
                ));
            }
        }
        if let Some(h) = &self.history {
            if h.rows() != ni || h.dim() != dim {
                return Err(Error::invalid(
                    "history",
                    "table shape differs from the item vocabulary × embedding_dim",
                ));
            }
        }
        if self.seen.rows() != nu || self.seen.ids.iter().any(|&i| i as usize >= ni) {
            return Err(Error::invalid(
                "seen",
                "user history does not match the vocabularies",
            ));
        }
        if self.popularity.len() != ni {
            return Err(Error::invalid(
                "popularity",
                "length differs from the item vocabulary",
            ));
        }
        Ok(())
    }

    /// Rows of the user vocabulary (OOV slots included).
    pub fn num_users(&self) -> usize {
        self.spec.user_id.len()
    }

    /// Rows of the item vocabulary (OOV slots included).
    pub fn num_items(&self) -> usize {
        self.spec.item_id.len()
    }

    /// Output width of both towers.
    pub fn dim(&self) -> usize {
        self.config.embedding_dim
    }

    /// Writes the query vector of user row `user` into `out` (`dim` values), already
    /// divided by the temperature so that scores are plain dot products.
    pub fn query_into(&self, user: u32, out: &mut [f32]) {
        self.query_with_history_into(Some(user), self.seen.row(user as usize), out);
    }

    /// Writes the query vector of user row `user` pooling the history embeddings of
    /// item rows `items` instead of the user's training items: the query of a user
    /// whose history the model never saw (fold-in without retraining). For an unknown
    /// user (`None`) the user-side inputs are left out (the OOV rows were never
    /// trained) and the history alone makes the query. Rows outside the catalogue are
    /// ignored.
    pub fn query_with_history_into(&self, user: Option<u32>, items: &[u32], out: &mut [f32]) {
        out.fill(0.0);
        if let Some(user) = user {
            for f in &self.query {
                add_feature(f, user, 1.0, out);
            }
        }
        if let Some(h) = &self.history {
            let n = self.num_items();
            let count = items.iter().filter(|&&i| (i as usize) < n).count();
            if count > 0 {
                let w = 1.0 / count as f32;
                for &i in items.iter().filter(|&&i| (i as usize) < n) {
                    axpy(w, h.row(i as usize), out);
                }
            }
        }
        let inv = 1.0 / self.config.temperature;
        if inv != 1.0 {
            out.iter_mut().for_each(|x| *x *= inv);
        }
    }

    /// Writes the candidate vector of item row `item` into `out`.
    pub fn candidate_into(&self, item: u32, out: &mut [f32]) {
        out.fill(0.0);
        for f in &self.candidate {
            add_feature(f, item, 1.0, out);
        }
    }

    /// The candidate vector of an item the model has no row for, from its raw side
    /// features alone (`features`: column name → value; absent features count as
    /// missing, as in training): the item tower without its id embedding, which is
    /// what a cold item's vector is (`item_id_dropout` trains the tower for it). Every
    /// named feature must be one of the model's item features, with a value of its
    /// type (a label for a categorical or text one, a list of labels for a
    /// multi-categorical one, a number for a numeric one); errors name the feature.
    pub fn candidate_from_features(
        &self,
        features: &[(String, crate::attributes::RawValue)],
        out: &mut [f32],
    ) -> Result<()> {
        use crate::attributes::RawValue;
        use shortlist_features::spec::Transform;
        for (name, _) in features {
            if !self.spec.item_features.iter().any(|f| &f.name == name) {
                let known: Vec<&str> = self
                    .spec
                    .item_features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect();
                return Err(Error::invalid(
                    name,
                    format!(
                        "not an item feature of the model (it has: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        out.fill(0.0);
        for f in &self.spec.item_features {
            let value = features.iter().find(|(n, _)| n == &f.name).map(|(_, v)| v);
            let table = |name: &str| {
                self.candidate
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| c.table.as_ref())
            };
            let wrong = |t: &str| Error::invalid(&f.name, format!("expected {t}"));
            let bag = |rows: &[u32], out: &mut [f32]| {
                if let (Some(t), false) = (table(&f.name), rows.is_empty()) {
                    let w = 1.0 / rows.len() as f32;
                    for &r in rows {
                        if (r as usize) < t.rows() {
                            axpy(w, t.row(r as usize), out);
                        }
                    }
                }
            };
            match (&f.transform, value) {
                (Transform::Categorical { vocab }, None) => bag(&[vocab.index("")], out),
                (Transform::Categorical { vocab }, Some(RawValue::Label(l))) => {
                    bag(&[vocab.index(l)], out)
                }
                (Transform::Categorical { .. }, Some(_)) => {
                    return Err(wrong("a string (categorical)"))
                }
                (Transform::MultiCategorical { .. }, None) => {}
                (Transform::MultiCategorical { vocab }, Some(RawValue::Labels(ls))) => {
                    let rows: Vec<u32> = ls.iter().map(|l| vocab.index(l)).collect();
                    bag(&rows, out)
                }
                (Transform::MultiCategorical { vocab }, Some(RawValue::Label(l))) => {
                    bag(&[vocab.index(l)], out)
                }
                (Transform::MultiCategorical { .. }, Some(_)) => {
                    return Err(wrong("a list of strings (multi-categorical)"))
                }
                (Transform::Text { .. }, None) => {}
                (Transform::Text { tokenizer, vocab }, Some(RawValue::Label(text))) => {
                    let rows: Vec<u32> = tokenizer
                        .tokenize(text)
                        .iter()
                        .map(|t| vocab.index(t))
                        .collect();
                    bag(&rows, out)
                }
                (Transform::Text { .. }, Some(_)) => return Err(wrong("a string (text)")),
                (
                    Transform::Numeric {
                        normalizer,
                        buckets,
                    },
                    v,
                ) => {
                    let x = match v {
                        None => f64::NAN,
                        Some(RawValue::Number(x)) if x.is_finite() => *x,
                        Some(_) => return Err(wrong("a finite number (numeric)")),
                    };
                    if let Some(t) = table(&f.name) {
                        axpy(normalizer.transform(x), t.row(0), out);
                    }
                    if let (Some(b), Some(t)) = (buckets, table(&format!("{}#bucket", f.name))) {
                        let r = b.bucket(x) as usize;
                        if r < t.rows() {
                            axpy(1.0, t.row(r), out);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Query vectors of every user row (`num_users × dim`).
    pub fn all_queries(&self) -> Vec<f32> {
        let d = self.dim();
        let mut out = vec![0.0; self.num_users() * d];
        for (u, q) in out.chunks_exact_mut(d).enumerate() {
            self.query_into(u as u32, q);
        }
        out
    }

    /// Candidate vectors of every item row (`num_items × dim`); OOV rows included.
    pub fn all_candidates(&self) -> Vec<f32> {
        let d = self.dim();
        let mut out = vec![0.0; self.num_items() * d];
        for (i, c) in out.chunks_exact_mut(d).enumerate() {
            self.candidate_into(i as u32, c);
        }
        out
    }

    /// User row of a raw id and whether it is known (else an OOV slot).
    pub fn user_row(&self, raw: &str) -> (u32, bool) {
        match self.spec.user_id.get(raw) {
            Some(r) => (r, true),
            None => (self.spec.user_id.oov_index(raw), false),
        }
    }

    /// Item rows the user interacted with in training (sorted).
    pub fn seen_items(&self, user: u32) -> &[u32] {
        self.seen.row(user as usize)
    }

    /// Number of learned parameters.
    pub fn num_parameters(&self) -> usize {
        let tables = self
            .query
            .iter()
            .chain(&self.candidate)
            .filter_map(|f| f.table.as_ref());
        tables.map(|t| t.rows() * t.dim()).sum::<usize>()
            + self.history.as_ref().map_or(0, |h| h.rows() * h.dim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_rows() {
        let c = Csr::from_pairs(3, [(2, 5), (0, 1), (2, 3), (2, 5)].into_iter());
        assert_eq!(c.row(0), [1]);
        assert!(c.row(1).is_empty());
        assert_eq!(c.row(2), [3, 5]);
        assert!(c.row(9).is_empty());
    }
}
