//! The training rows of an implicit-feedback model in its own vocabulary space: id
//! vocabularies fitted on the rows, each user's items and each item's users (sorted,
//! deduplicated), popularity — shared by EASE and iALS — and a [`Scorer`] adapter that
//! evaluates any such model in the dataset's index space.

use shortlist_core::Dataset;
use shortlist_eval::Scorer;
use shortlist_features::{FeatureConfig, FeatureSpec};
use shortlist_model::Csr;

use crate::error::Result;

/// A user–item matrix of training rows, in vocabulary rows (row 0: OOV, empty).
#[derive(Debug, Clone)]
pub struct UserItems {
    /// Id vocabularies fitted on the rows (ids only, no side features).
    pub spec: FeatureSpec,
    /// Each user row's item rows.
    pub by_user: Csr,
    /// Each item row's user rows.
    pub by_item: Csr,
    /// Interactions per item row (repeats counted).
    pub popularity: Vec<u32>,
}

impl UserItems {
    /// What a closed-form or alternating fit (EASE, iALS) starts from: the matrix of
    /// `rows` (an error when there is none) and the model's metadata (`cfg` as its
    /// hyper-parameters, the rows' fingerprint).
    pub(crate) fn for_fit(
        dataset: &Dataset,
        rows: &[usize],
        features: &FeatureConfig,
        cfg: &impl serde::Serialize,
    ) -> Result<(Self, shortlist_model::ModelMeta)> {
        if rows.is_empty() {
            return Err(crate::error::Error::NoData(
                "the training split is empty".into(),
            ));
        }
        let ui = UserItems::build(dataset, rows, features)?;
        let meta = shortlist_model::ModelMeta {
            hyper_parameters: serde_json::to_value(cfg).unwrap_or_default(),
            metrics: Default::default(),
            data_fingerprint: crate::fingerprint(dataset, rows),
        };
        Ok((ui, meta))
    }

    /// Builds the matrix of `rows` of `dataset` (every interaction is a positive;
    /// repeats of a pair count once in the matrix, every time in popularity).
    pub fn build(dataset: &Dataset, rows: &[usize], features: &FeatureConfig) -> Result<Self> {
        let ids_only = FeatureConfig {
            user_features: Vec::new(),
            item_features: Vec::new(),
            timestamp: false,
            ..features.clone()
        };
        let spec = FeatureSpec::fit(dataset, rows, &ids_only)?;
        Ok(Self::with_spec(dataset, rows, spec))
    }

    /// The matrix of `rows` in the vocabularies of an existing `spec` (e.g. a ranking
    /// model's, so that models fitted here share its rows); ids outside the
    /// vocabularies fall in its OOV slots.
    pub fn with_spec(dataset: &Dataset, rows: &[usize], spec: FeatureSpec) -> Self {
        let (urow, irow) = vocab_rows(&spec, dataset);
        let it = &dataset.interactions;
        let (nu, ni) = (spec.user_id.len(), spec.item_id.len());
        let pairs = || {
            rows.iter()
                .map(|&r| (urow[it.users[r] as usize], irow[it.items[r] as usize]))
        };
        let by_user = Csr::from_pairs(nu, pairs());
        let by_item = Csr::from_pairs(ni, pairs().map(|(u, i)| (i, u)));
        let mut popularity = vec![0u32; ni];
        for (_, i) in pairs() {
            popularity[i as usize] += 1;
        }
        UserItems {
            spec,
            by_user,
            by_item,
            popularity,
        }
    }

    /// Number of user rows.
    pub fn num_users(&self) -> usize {
        self.by_user.rows()
    }

    /// Number of item rows.
    pub fn num_items(&self) -> usize {
        self.by_item.rows()
    }
}

/// Dataset user/item index → vocabulary row (OOV slot for ids outside the vocabulary).
pub fn vocab_rows(spec: &FeatureSpec, dataset: &Dataset) -> (Vec<u32>, Vec<u32>) {
    let u = dataset
        .users
        .raw_ids()
        .iter()
        .map(|r| spec.user_id.index(r))
        .collect();
    let i = dataset
        .items
        .raw_ids()
        .iter()
        .map(|r| spec.item_id.index(r))
        .collect();
    (u, i)
}

/// Evaluates a model that scores every vocabulary item row for a vocabulary user row
/// in the dataset's index space: dataset items outside the vocabulary score `-inf`.
pub struct RowScorer<'a, F: Fn(u32, &mut [f32]) + Sync> {
    /// Dataset user index → vocabulary row.
    user_rows: Vec<u32>,
    /// Dataset item index → vocabulary row (`None`: unknown to the model).
    item_rows: Vec<Option<u32>>,
    vocab_items: usize,
    score_row: &'a F,
}

impl<'a, F: Fn(u32, &mut [f32]) + Sync> RowScorer<'a, F> {
    /// `score_row(user_row, out)` writes the scores of every vocabulary item row.
    pub fn new(spec: &FeatureSpec, dataset: &Dataset, score_row: &'a F) -> Self {
        RowScorer {
            user_rows: vocab_rows(spec, dataset).0,
            item_rows: dataset
                .items
                .raw_ids()
                .iter()
                .map(|r| spec.item_id.get(r))
                .collect(),
            vocab_items: spec.item_id.len(),
            score_row,
        }
    }
}

impl<F: Fn(u32, &mut [f32]) + Sync> Scorer for RowScorer<'_, F> {
    fn n_items(&self) -> usize {
        self.item_rows.len()
    }

    fn score_users(&self, users: &[u32], out: &mut [f32]) -> shortlist_eval::Result<()> {
        let n = self.n_items();
        let mut vocab = vec![0f32; self.vocab_items];
        for (&u, row) in users.iter().zip(out.chunks_exact_mut(n.max(1))) {
            let ur = self.user_rows.get(u as usize).copied().unwrap_or(0);
            (self.score_row)(ur, &mut vocab);
            for (o, r) in row.iter_mut().zip(&self.item_rows) {
                *o = match r {
                    Some(r) => vocab[*r as usize],
                    None => f32::NEG_INFINITY,
                };
            }
        }
        Ok(())
    }
}
