//! [`Evaluator`]: factorized top-K accuracy and full-ranking Recall/NDCG/HitRate over
//! all items (definitions in the [crate docs](crate)).
//!
//! Ranks are counted rather than sorted: the rank of a test item `t` among all items
//! is `#{j < t : s_j ≥ s_t} + #{j > t : s_j > s_t}` (exactly "score descending, ties
//! by lower index"), one vectorisable pass over the user's score row. Its rank once
//! training items are masked subtracts the training items that beat it. A pass stops
//! early once the rank is past every cut-off that could still count.

use rayon::prelude::*;
use shortlist_core::Interactions;

use crate::error::{Error, Result};
use crate::metrics::{EvalConfig, Metrics};
use crate::scorer_base::Scorer;

/// Scores counted between early-exit checks of a rank pass.
const RANK_CHUNK: usize = 512;

/// Parallel `(user, item)` columns, e.g. the train or test part of a split.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'a> {
    users: &'a [u32],
    items: &'a [u32],
}

impl<'a> Pairs<'a> {
    /// Pairs `(users[r], items[r])`. Errors when the lengths differ.
    pub fn new(users: &'a [u32], items: &'a [u32]) -> Result<Self> {
        if users.len() != items.len() {
            return Err(Error::size(
                "pairs (users vs items column)",
                users.len(),
                items.len(),
            ));
        }
        Ok(Pairs { users, items })
    }

    /// The user and item columns of `interactions` (ratings are ignored: every
    /// interaction is a positive).
    pub fn from_interactions(interactions: &'a Interactions) -> Self {
        let n = interactions.users.len().min(interactions.items.len());
        Pairs {
            users: &interactions.users[..n],
            items: &interactions.items[..n],
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Per-user item lists: `items[offsets[u]..offsets[u + 1]]`, sorted ascending.
#[derive(Debug, Clone, Default)]
struct Csr {
    offsets: Vec<usize>,
    items: Vec<u32>,
}

impl Csr {
    /// Groups `pairs` by user (counting sort), sorting each user's items; checks ranges.
    fn build(n_users: usize, n_items: usize, pairs: Pairs<'_>, what: &str) -> Result<Self> {
        let mut offsets = vec![0usize; n_users + 1];
        for (row, (&u, &i)) in pairs.users.iter().zip(pairs.items).enumerate() {
            if u as usize >= n_users {
                return Err(Error::OutOfRange {
                    what: format!("{what} users"),
                    row,
                    index: u,
                    len: n_users,
                });
            }
            if i as usize >= n_items {
                return Err(Error::OutOfRange {
                    what: format!("{what} items"),
                    row,
                    index: i,
                    len: n_items,
                });
            }
            offsets[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            offsets[u + 1] += offsets[u];
        }
        let mut next = offsets.clone();
        let mut items = vec![0u32; pairs.len()];
        for (&u, &i) in pairs.users.iter().zip(pairs.items) {
            items[next[u as usize]] = i;
            next[u as usize] += 1;
        }
        for u in 0..n_users {
            items[offsets[u]..offsets[u + 1]].sort_unstable();
        }
        Ok(Csr { offsets, items })
    }

    fn row(&self, u: usize) -> &[u32] {
        &self.items[self.offsets[u]..self.offsets[u + 1]]
    }

    /// Removes repeated items per user (rows must be sorted).
    fn dedup(&self) -> Csr {
        let mut offsets = Vec::with_capacity(self.offsets.len());
        let mut items = Vec::with_capacity(self.items.len());
        offsets.push(0);
        for u in 0..self.offsets.len() - 1 {
            let start = items.len();
            for &i in self.row(u) {
                if items.len() == start || items.last() != Some(&i) {
                    items.push(i);
                }
            }
            offsets.push(items.len());
        }
        Csr { offsets, items }
    }
}

/// A train/test split prepared for evaluation: grouped by user once, then reusable for
/// any number of scorers (e.g. after every training epoch).
#[derive(Debug, Clone)]
pub struct Evaluator {
    n_items: usize,
    /// Distinct training items per user (masked in the full ranking).
    train: Csr,
    /// Test items per user, repeats kept (top-K accuracy counts every interaction).
    test: Csr,
    /// Distinct test items per user (the relevant set of the full ranking).
    relevant: Csr,
    /// Users with at least one test item.
    users: Vec<u32>,
    test_interactions: usize,
}

impl Evaluator {
    /// Prepares `train` and `test` for `n_users` users and `n_items` items. Errors on
    /// an index out of range, naming the input, column and row.
    pub fn new(n_users: usize, n_items: usize, train: Pairs<'_>, test: Pairs<'_>) -> Result<Self> {
        if n_users > u32::MAX as usize || n_items > u32::MAX as usize {
            return Err(Error::invalid("n_users/n_items", "must fit in u32 indices"));
        }
        let train = Csr::build(n_users, n_items, train, "train")?.dedup();
        let test_csr = Csr::build(n_users, n_items, test, "test")?;
        let relevant = test_csr.dedup();
        let users = (0..n_users)
            .filter(|&u| !test_csr.row(u).is_empty())
            .map(|u| u as u32)
            .collect();
        Ok(Evaluator {
            n_items,
            train,
            test_interactions: test.len(),
            test: test_csr,
            relevant,
            users,
        })
    }

    /// Users with at least one test item, ascending.
    pub fn users(&self) -> &[u32] {
        &self.users
    }

    /// Number of test interactions (repeats included).
    pub fn test_interactions(&self) -> usize {
        self.test_interactions
    }

    /// Evaluates `scorer` with the cut-offs of `config`.
    pub fn evaluate(&self, scorer: &dyn Scorer, config: &EvalConfig) -> Result<Metrics> {
        config.validate()?;
        if scorer.n_items() != self.n_items {
            return Err(Error::size(
                "scorer's number of items",
                self.n_items,
                scorer.n_items(),
            ));
        }
        if self.users.is_empty() {
            return Err(Error::invalid(
                "test",
                "there are no test interactions to evaluate",
            ));
        }
        let mut cuts = Cuts {
            ks: config.ks.clone(),
            acc: config.accuracy_ks.clone(),
            idcg: Vec::new(),
        };
        for v in [&mut cuts.ks, &mut cuts.acc] {
            v.sort_unstable();
            v.dedup();
        }
        let max_k = cuts.ks.last().copied().unwrap_or(0);
        // idcg[m] = Σ_{r < m} 1 / log2(r + 2)
        cuts.idcg = std::iter::once(0.0)
            .chain((0..max_k).scan(0.0, |acc, r| {
                *acc += discount(r);
                Some(*acc)
            }))
            .collect();

        let n = self.n_items;
        let partials = self
            .users
            .par_chunks(config.block_users)
            .map(|block| -> Result<Partial> {
                let mut scores = vec![0f32; block.len() * n];
                scorer.score_users(block, &mut scores)?;
                let mut p = Partial::new(&cuts);
                if n > 0 {
                    for (&u, row) in block.iter().zip(scores.chunks_exact_mut(n)) {
                        self.add_user(u as usize, row, &cuts, &mut p);
                    }
                }
                Ok(p)
            })
            .collect::<Result<Vec<_>>>()?;

        // Summed in block order, so the result does not depend on the thread count.
        let mut total = Partial::new(&cuts);
        for p in &partials {
            total.add(p);
        }
        let users = self.users.len() as f64;
        let mut metrics = Metrics {
            values: Default::default(),
            users_evaluated: self.users.len(),
        };
        for (x, k) in cuts.ks.iter().enumerate() {
            metrics
                .values
                .insert(format!("recall@{k}"), total.recall[x] / users);
            metrics
                .values
                .insert(format!("ndcg@{k}"), total.ndcg[x] / users);
            metrics
                .values
                .insert(format!("hit_rate@{k}"), total.hit_rate[x] / users);
        }
        for (a, k) in cuts.acc.iter().enumerate() {
            metrics.values.insert(
                format!("top_k_accuracy@{k}"),
                total.accuracy_hits[a] as f64 / self.test_interactions as f64,
            );
        }
        Ok(metrics)
    }

    /// Evaluates explicit ranked lists, e.g. exactly what a server returned: `list(u)`
    /// gives user `u`'s items, best first (dataset item indices). The full-ranking
    /// metrics follow the same definitions as [`Evaluator::evaluate`]: training items in
    /// a list are dropped before ranks are counted, items after a list's end are never
    /// retrieved, and a repeated item counts at its first position. Factorized top-K
    /// accuracy needs every item's score and is not reported. Errors on an item index
    /// out of range, naming the user.
    pub fn evaluate_lists(
        &self,
        list: impl Fn(u32) -> Vec<u32> + Sync,
        config: &EvalConfig,
    ) -> Result<Metrics> {
        config.validate()?;
        if self.users.is_empty() {
            return Err(Error::invalid(
                "test",
                "there are no test interactions to evaluate",
            ));
        }
        let mut ks = config.ks.clone();
        ks.sort_unstable();
        ks.dedup();
        let max_k = ks.last().copied().unwrap_or(0);
        let idcg: Vec<f64> = std::iter::once(0.0)
            .chain((0..max_k).scan(0.0, |acc, r| {
                *acc += discount(r);
                Some(*acc)
            }))
            .collect();
        let per_user = self
            .users
            .par_iter()
            .map(|&u| -> Result<Vec<(f64, f64, f64)>> {
                let train = self.train.row(u as usize);
                let relevant = self.relevant.row(u as usize);
                let mut seen_in_list: Vec<u32> = Vec::new();
                let mut hits_at: Vec<usize> = Vec::new(); // ranks of relevant hits
                let mut rank = 0usize;
                for i in list(u) {
                    if i as usize >= self.n_items {
                        return Err(Error::OutOfRange {
                            what: format!("list of user {u}"),
                            row: rank,
                            index: i,
                            len: self.n_items,
                        });
                    }
                    if rank >= max_k {
                        break;
                    }
                    if train.binary_search(&i).is_ok() || seen_in_list.contains(&i) {
                        continue;
                    }
                    seen_in_list.push(i);
                    if relevant.binary_search(&i).is_ok() {
                        hits_at.push(rank);
                    }
                    rank += 1;
                }
                let n_rel = relevant.len();
                Ok(ks
                    .iter()
                    .map(|&k| {
                        let hits: Vec<usize> = hits_at.iter().copied().filter(|&r| r < k).collect();
                        let dcg: f64 = hits.iter().map(|&r| discount(r)).sum();
                        (
                            hits.len() as f64 / n_rel as f64,
                            dcg / idcg[k.min(n_rel)],
                            if hits.is_empty() { 0.0 } else { 1.0 },
                        )
                    })
                    .collect())
            })
            // Collected whole, then the first error in user order: the same message
            // whichever thread finds a bad list first.
            .collect::<Vec<Result<Vec<_>>>>()
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let users = self.users.len() as f64;
        let mut metrics = Metrics {
            values: Default::default(),
            users_evaluated: self.users.len(),
        };
        for (x, k) in ks.iter().enumerate() {
            // Summed in user order: independent of the thread count.
            let sum =
                |f: fn(&(f64, f64, f64)) -> f64| per_user.iter().map(|p| f(&p[x])).sum::<f64>();
            metrics
                .values
                .insert(format!("recall@{k}"), sum(|p| p.0) / users);
            metrics
                .values
                .insert(format!("ndcg@{k}"), sum(|p| p.1) / users);
            metrics
                .values
                .insert(format!("hit_rate@{k}"), sum(|p| p.2) / users);
        }
        Ok(metrics)
    }

    /// Adds user `u`'s contribution; `row` is the user's score row (NaN is set to -inf).
    fn add_user(&self, u: usize, row: &mut [f32], cuts: &Cuts, p: &mut Partial) {
        for s in row.iter_mut() {
            if s.is_nan() {
                *s = f32::NEG_INFINITY;
            }
        }
        let row = &*row;
        let train = self.train.row(u);
        let relevant = self.relevant.row(u);
        let max_k = cuts.ks.last().copied().unwrap_or(0);
        let max_acc = cuts.acc.last().copied().unwrap_or(0);
        // Past this rank among all items, neither metric can count the item.
        let limit = max_acc.max(max_k + train.len());
        p.hits.iter_mut().for_each(|h| *h = 0);
        p.dcg.iter_mut().for_each(|d| *d = 0.0);

        let test = self.test.row(u);
        let mut cursor = 0;
        for &t in relevant {
            let ti = t as usize;
            // Repeats of `t` among the user's test interactions (rows are sorted).
            let start = cursor;
            while cursor < test.len() && test[cursor] == t {
                cursor += 1;
            }
            let repeats = (cursor - start) as u64;
            let rank_all = rank_of(row, ti, limit);
            for (a, &k) in cuts.acc.iter().enumerate() {
                if rank_all < k {
                    p.accuracy_hits[a] += repeats;
                }
            }
            if rank_all >= max_k + train.len() || train.binary_search(&t).is_ok() {
                continue; // masked, or too far down to reach any cut-off
            }
            let st = row[ti];
            let beaten_by = train
                .iter()
                .filter(|&&r| {
                    let sr = row[r as usize];
                    sr > st || (sr == st && (r as usize) < ti)
                })
                .count();
            let rank = rank_all - beaten_by;
            for (x, &k) in cuts.ks.iter().enumerate() {
                if rank < k {
                    p.hits[x] += 1;
                    p.dcg[x] += discount(rank);
                }
            }
        }
        let n_rel = relevant.len();
        for (x, &k) in cuts.ks.iter().enumerate() {
            p.recall[x] += p.hits[x] as f64 / n_rel as f64;
            p.ndcg[x] += p.dcg[x] / cuts.idcg[k.min(n_rel)];
            p.hit_rate[x] += if p.hits[x] > 0 { 1.0 } else { 0.0 };
        }
    }
}

/// DCG discount of 0-based rank `r`: `1 / log2(r + 2)`.
fn discount(r: usize) -> f64 {
    1.0 / ((r + 2) as f64).log2()
}

/// Rank of item `t` in `row` (score descending, ties by lower index): exact when it is
/// below `limit`, otherwise some value `≥ limit`.
fn rank_of(row: &[f32], t: usize, limit: usize) -> usize {
    let st = row[t];
    let mut count = 0usize;
    // Items before `t` win ties, items after it do not.
    for chunk in row[..t].chunks(RANK_CHUNK) {
        count += chunk.iter().map(|&s| u32::from(s >= st)).sum::<u32>() as usize;
        if count >= limit {
            return count;
        }
    }
    for chunk in row[t + 1..].chunks(RANK_CHUNK) {
        count += chunk.iter().map(|&s| u32::from(s > st)).sum::<u32>() as usize;
        if count >= limit {
            return count;
        }
    }
    count
}

/// Sorted, deduplicated cut-offs and the ideal-DCG table.
struct Cuts {
    ks: Vec<usize>,
    acc: Vec<usize>,
    idcg: Vec<f64>,
}

/// Sums over a block of users (plus per-user scratch).
struct Partial {
    recall: Vec<f64>,
    ndcg: Vec<f64>,
    hit_rate: Vec<f64>,
    accuracy_hits: Vec<u64>,
    hits: Vec<usize>,
    dcg: Vec<f64>,
}

impl Partial {
    fn new(cuts: &Cuts) -> Self {
        let n = cuts.ks.len();
        Partial {
            recall: vec![0.0; n],
            ndcg: vec![0.0; n],
            hit_rate: vec![0.0; n],
            accuracy_hits: vec![0; cuts.acc.len()],
            hits: vec![0; n],
            dcg: vec![0.0; n],
        }
    }

    fn add(&mut self, other: &Partial) {
        for (a, b) in [
            (&mut self.recall, &other.recall),
            (&mut self.ndcg, &other.ndcg),
            (&mut self.hit_rate, &other.hit_rate),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.accuracy_hits
            .iter_mut()
            .zip(&other.accuracy_hits)
            .for_each(|(x, y)| *x += y);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests;
