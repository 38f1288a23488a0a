//! Step 3 of training the relevance head: one candidate list per user with held-out
//! rows, from the models fitted on the fitting rows, with its standardised features,
//! labels and cold flags.

use rayon::prelude::*;
use rustc_hash::FxHashSet;
use shortlist_core::{Dataset, Rng};
use shortlist_features::{FeatureSpec, Vocabulary};
use shortlist_index::{ExactIndex, Filter, TopKIndex};
use shortlist_model::relevance::{standardise, OWN_CANDIDATES_MAX_ITEMS};
use shortlist_model::{ListInputs, RankingModel, RelevanceHead, RetrievalModel};

use super::{own_count, FittedStage, Lists, RelevanceTrainConfig};
use crate::error::{Error, Result};

/// A list's standardised features, labels, cold flags and number of positives.
type BuiltList = (Vec<f32>, Vec<f32>, Vec<bool>, usize);

/// One list per user with held-out rows, from the fitted models; with the share of
/// held-out rows found in the lists (the candidate recall).
///
/// The steps: [`held_positives`], [`trained_items`], the shared model's row maps,
/// then [`ListBuilder::list`] per user in parallel (each list is independent: the
/// result does not depend on the thread count).
pub(super) fn build_lists(
    dataset: &Dataset,
    train: &[usize],
    held: &[usize],
    retrieval: &RetrievalModel,
    head: &RelevanceHead,
    shared: Option<&RankingModel>,
    cfg: &RelevanceTrainConfig,
) -> Result<(Lists, f64)> {
    let spec = &retrieval.spec;
    let (positives, held_total) = held_positives(dataset, held, spec);
    let d = retrieval.dim();
    let candidates = retrieval.all_candidates();
    let index = ExactIndex::new(candidates.clone(), d)
        .map_err(|e| Error::invalid("relevance", e.to_string()))?;
    let queries = retrieval.all_queries();
    let users: Vec<u32> = (0..spec.user_id.len() as u32)
        .filter(|&u| !positives[u as usize].is_empty())
        .collect();
    let (in_train, future) = trained_items(dataset, train, retrieval);
    // Retrieval user/item rows → rows of the shared-embedding model (by raw id).
    let shared_rows = shared.map(|m| {
        let map = |v: &Vocabulary, to: &Vocabulary| {
            (0..v.len() as u32)
                .map(|r| v.value(r).map_or(0, |raw| to.index(raw)))
                .collect::<Vec<u32>>()
        };
        (
            m,
            map(&spec.user_id, &m.spec.user_id),
            map(&spec.item_id, &m.spec.item_id),
        )
    });
    let builder = ListBuilder {
        retrieval,
        head,
        cfg,
        index: &index,
        candidates: &candidates,
        queries: &queries,
        positives: &positives,
        in_train: &in_train,
        future: &future,
        shared_rows: shared_rows.as_ref(),
        gram: &[],
    };
    let built: Vec<Option<BuiltList>> = users
        .par_iter()
        .map(|&u| builder.list(u))
        .collect::<Result<Vec<_>>>()?;
    Ok(collect(built, cfg.features.len(), held_total))
}

/// Held-out items per retrieval user row, in retrieval item rows, and the number of
/// held-out rows (unknown items can never be found: they still count in the candidate
/// recall's denominator).
fn held_positives(
    dataset: &Dataset,
    held: &[usize],
    spec: &FeatureSpec,
) -> (Vec<FxHashSet<u32>>, usize) {
    let it = &dataset.interactions;
    let mut positives: Vec<FxHashSet<u32>> = vec![FxHashSet::default(); spec.user_id.len()];
    let mut held_total = 0usize;
    for &r in held {
        let u = spec.user_id.index(dataset.users.raw(it.users[r]));
        let i = spec.item_id.get(dataset.items.raw(it.items[r]));
        held_total += 1;
        if let (false, Some(i)) = (spec.user_id.is_oov(u), i) {
            positives[u as usize].insert(i);
        }
    }
    (positives, held_total)
}

/// Which item rows have a training interaction, and the rows of those without any:
/// the catalogue's future, never in a training list.
fn trained_items(
    dataset: &Dataset,
    train: &[usize],
    retrieval: &RetrievalModel,
) -> (Vec<bool>, Vec<u32>) {
    let it = &dataset.interactions;
    let spec = &retrieval.spec;
    let mut in_train = vec![false; retrieval.num_items()];
    for &r in train {
        if let Some(i) = spec.item_id.get(dataset.items.raw(it.items[r])) {
            in_train[i as usize] = true;
        }
    }
    let future: Vec<u32> = (spec.item_id.num_oov()..retrieval.num_items() as u32)
        .filter(|&i| !in_train[i as usize])
        .collect();
    (in_train, future)
}

/// Everything a user's list is built from (shared by the parallel builds).
struct ListBuilder<'a> {
    retrieval: &'a RetrievalModel,
    head: &'a RelevanceHead,
    cfg: &'a RelevanceTrainConfig,
    index: &'a ExactIndex,
    /// Candidate vectors of every item row, `items × d`.
    candidates: &'a [f32],
    /// Query vectors of every user row, `users × d`.
    queries: &'a [f32],
    positives: &'a [FxHashSet<u32>],
    in_train: &'a [bool],
    future: &'a [u32],
    /// The shared-embedding model with its user and item row maps.
    shared_rows: Option<&'a (&'a RankingModel, Vec<u32>, Vec<u32>)>,
    /// `YᵀY` of the head's iALS model, for new users' fold-ins (empty for known users'
    /// lists).
    gram: &'a [f32],
}

impl ListBuilder<'_> {
    /// User `u`'s list: the first stage's top candidates, the head's own candidates
    /// (iALS), random trained negatives; `None` when it holds no held-out item.
    fn list(&self, u: u32) -> Result<Option<BuiltList>> {
        let (retrieval, head, cfg) = (self.retrieval, self.head, self.cfg);
        let in_train = self.in_train;
        let d = retrieval.dim();
        let num_oov = retrieval.spec.item_id.num_oov();
        let ni = retrieval.num_items() as u64;
        let seen = retrieval.seen_items(u);
        let mut exclude: Vec<u32> = (0..num_oov).collect();
        exclude.extend_from_slice(seen);
        exclude.extend_from_slice(self.future);
        let q = &self.queries[u as usize * d..(u as usize + 1) * d];
        let hits = self
            .index
            .search(q, cfg.candidates, &Filter::Exclude(&exclude))
            .map_err(|e| Error::invalid("relevance", e.to_string()))?;
        let mut items: Vec<u32> = hits.iter().map(|h| h.item).collect();
        let mut scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        let own = if retrieval.num_items() <= OWN_CANDIDATES_MAX_ITEMS {
            own_count(head.weights.own_share, cfg.candidates)
        } else {
            0
        };
        if let (Some(m), true) = (&head.ials, own > 0) {
            for (j, _) in m.top_items(u, own, &exclude) {
                self.add(q, j, &mut items, &mut scores);
            }
        }
        let first = items.len();
        let mut rng = Rng::with_stream(cfg.seed ^ u as u64, 13);
        let mut tries = 0;
        while items.len() < first + cfg.random_negatives && tries < 20 * cfg.random_negatives {
            tries += 1;
            let j = rng.below(ni) as u32;
            if j < num_oov
                || seen.binary_search(&j).is_ok()
                || !in_train[j as usize]
                || items.contains(&j)
            {
                continue;
            }
            self.add(q, j, &mut items, &mut scores);
        }
        let Some((labels, found)) = self.labels(u, &items) else {
            return Ok(None);
        };
        let mut shared_scores = Vec::new();
        if let Some((m, urows, irows)) = self.shared_rows {
            let its: Vec<u32> = items.iter().map(|&j| irows[j as usize]).collect();
            shared_scores.resize(items.len(), 0.0);
            m.shared_scores(urows[u as usize], &its, &mut shared_scores);
        }
        let inputs = ListInputs {
            ials_query: head.ials.as_ref().map(|m| m.user_factors.row(u as usize)),
            history: seen,
            ease_user: None,
            items: &items,
            retrieval: &scores,
            shared: &shared_scores,
            new_user: false,
        };
        Ok(Some(self.built(&inputs, labels, found)))
    }

    /// Adds item row `j` (scored `q · candidate`) to a list unless it holds it already.
    fn add(&self, q: &[f32], j: u32, items: &mut Vec<u32>, scores: &mut Vec<f32>) {
        if items.contains(&j) {
            return;
        }
        let d = q.len();
        let c = &self.candidates[j as usize * d..(j as usize + 1) * d];
        items.push(j);
        scores.push(q.iter().zip(c).map(|(a, b)| a * b).sum());
    }

    /// The labels of user `u`'s list of `items` (1: held out) and how many are
    /// positive; `None` without any.
    fn labels(&self, u: u32, items: &[u32]) -> Option<(Vec<f32>, usize)> {
        let labels: Vec<f32> = items
            .iter()
            .map(|i| f32::from(self.positives[u as usize].contains(i)))
            .collect();
        let found = labels.iter().filter(|&&l| l > 0.0).count();
        (found > 0).then_some((labels, found))
    }

    /// The list of `inputs`: its standardised features, `labels`, cold flags and
    /// number of positives.
    fn built(&self, inputs: &ListInputs<'_>, labels: Vec<f32>, found: usize) -> BuiltList {
        let mut z = Vec::new();
        self.head.features_into(inputs, &mut z);
        for row in z.chunks_exact_mut(inputs.items.len()) {
            standardise(row);
        }
        debug_assert_eq!(z.len(), self.cfg.features.len() * inputs.items.len());
        let cold = inputs.items.iter().map(|&i| self.head.is_cold(i)).collect();
        (z, labels, cold, found)
    }
}

/// The training lists of `built` (users without one skipped) with the share of the
/// `held_total` held-out rows they hold (the candidate recall).
fn collect(built: Vec<Option<BuiltList>>, features: usize, held_total: usize) -> (Lists, f64) {
    let mut lists = Lists {
        features,
        ..Default::default()
    };
    let mut found_total = 0;
    for (z, labels, cold, found) in built.into_iter().flatten() {
        lists.z.push(z);
        lists.labels.push(labels);
        lists.cold.push(cold);
        found_total += found;
    }
    (lists, found_total as f64 / held_total.max(1) as f64)
}

/// The new users' lists, per history length `n` of
/// [`RelevanceTrainConfig::new_user_histories`] (ascending, each once): for each user
/// with held-out rows and more than `n` fitting rows, a list for the user as a new
/// user whose history is their first `n` fitting items by time, made as the served
/// pipeline makes a history request's list: the first stage's query pooled from the
/// history, the head's own candidates from an iALS fold-in, every fitting item of the
/// user excluded (only held-out items are positives: the fitted models saw the rest of
/// the user's rows). With each length's candidate recall.
pub(super) fn build_new_user_lists(
    dataset: &Dataset,
    train: &[usize],
    fit: &[usize],
    held: &[usize],
    stage: &FittedStage,
    cfg: &RelevanceTrainConfig,
) -> Result<Vec<(usize, Lists, f64)>> {
    let (retrieval, head) = (&stage.retrieval, &stage.head);
    let spec = &retrieval.spec;
    let (positives, _) = held_positives(dataset, held, spec);
    let in_time_order = items_in_time_order(dataset, fit, spec);
    let d = retrieval.dim();
    let candidates = retrieval.all_candidates();
    let index = ExactIndex::new(candidates.clone(), d)
        .map_err(|e| Error::invalid("relevance", e.to_string()))?;
    let (in_train, future) = trained_items(dataset, train, retrieval);
    let gram = head.ials.as_ref().map(|m| m.gram()).unwrap_or_default();
    let builder = ListBuilder {
        retrieval,
        head,
        cfg,
        index: &index,
        candidates: &candidates,
        queries: &[],
        positives: &positives,
        in_train: &in_train,
        future: &future,
        shared_rows: None,
        gram: &gram,
    };
    let mut lengths = cfg.new_user_histories.clone();
    lengths.sort_unstable();
    lengths.dedup();
    let mut out = Vec::with_capacity(lengths.len());
    for n in lengths {
        let users: Vec<u32> = (0..spec.user_id.len() as u32)
            .filter(|&u| !positives[u as usize].is_empty() && in_time_order[u as usize].len() > n)
            .collect();
        let built: Vec<Option<BuiltList>> = users
            .par_iter()
            .map(|&u| builder.new_user_list(u, &in_time_order[u as usize][..n]))
            .collect::<Result<Vec<_>>>()?;
        let held_total: usize = users.iter().map(|&u| positives[u as usize].len()).sum();
        let (lists, recall) = collect(built, cfg.features.len(), held_total);
        out.push((n, lists, recall));
    }
    Ok(out)
}

/// Each retrieval user row's distinct item rows among `rows`, in time order (ties, and
/// rows without timestamps, in row order).
fn items_in_time_order(dataset: &Dataset, rows: &[usize], spec: &FeatureSpec) -> Vec<Vec<u32>> {
    let it = &dataset.interactions;
    let mut rows = rows.to_vec();
    rows.sort_by_key(|&r| (it.timestamp(r).unwrap_or(0), r));
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); spec.user_id.len()];
    for r in rows {
        let u = spec.user_id.index(dataset.users.raw(it.users[r]));
        if spec.user_id.is_oov(u) {
            continue;
        }
        if let Some(i) = spec.item_id.get(dataset.items.raw(it.items[r])) {
            if !out[u as usize].contains(&i) {
                out[u as usize].push(i);
            }
        }
    }
    out
}

impl ListBuilder<'_> {
    /// User `u`'s list as a new user whose only history is `history` (item rows);
    /// `None` when it holds no held-out item.
    fn new_user_list(&self, u: u32, history: &[u32]) -> Result<Option<BuiltList>> {
        let (retrieval, head, cfg) = (self.retrieval, self.head, self.cfg);
        let d = retrieval.dim();
        let mut rows = history.to_vec();
        rows.sort_unstable();
        let mut q = vec![0f32; d];
        retrieval.query_with_history_into(None, &rows, &mut q);
        let mut exclude: Vec<u32> = (0..retrieval.spec.item_id.num_oov()).collect();
        exclude.extend_from_slice(retrieval.seen_items(u));
        exclude.extend_from_slice(self.future);
        let hits = self
            .index
            .search(&q, cfg.candidates, &Filter::Exclude(&exclude))
            .map_err(|e| Error::invalid("relevance", e.to_string()))?;
        let mut items: Vec<u32> = hits.iter().map(|h| h.item).collect();
        let mut scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        let strengths: Vec<(u32, f32)> = history.iter().map(|&i| (i, 1.0)).collect();
        let x = head
            .ials
            .as_ref()
            .and_then(|m| m.fold_in(self.gram, &strengths).ok());
        let own = if retrieval.num_items() <= OWN_CANDIDATES_MAX_ITEMS {
            own_count(head.weights.own_share, cfg.candidates)
        } else {
            0
        };
        if let (Some(m), Some(x), true) = (&head.ials, &x, own > 0) {
            for (j, _) in m.top_items_for(x, own, &exclude) {
                self.add(&q, j, &mut items, &mut scores);
            }
        }
        let Some((labels, found)) = self.labels(u, &items) else {
            return Ok(None);
        };
        let inputs = ListInputs {
            ials_query: x.as_deref(),
            history: &rows,
            ease_user: None,
            items: &items,
            retrieval: &scores,
            shared: &[],
            new_user: true,
        };
        Ok(Some(self.built(&inputs, labels, found)))
    }
}
