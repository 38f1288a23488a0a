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
mod tests {
    use super::*;
    use shortlist_core::Rng;

    /// A fixed `n_users × n_items` score matrix.
    struct Dense {
        n_items: usize,
        scores: Vec<f32>,
    }

    impl Scorer for Dense {
        fn n_items(&self) -> usize {
            self.n_items
        }
        fn score_users(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
            let n = self.n_items;
            for (r, &u) in users.iter().enumerate() {
                out[r * n..(r + 1) * n]
                    .copy_from_slice(&self.scores[u as usize * n..(u as usize + 1) * n]);
            }
            Ok(())
        }
    }

    fn close(m: &Metrics, key: &str, want: f64) {
        let got = m.get(key).unwrap_or_else(|| panic!("no {key} in {m:?}"));
        assert!((got - want).abs() < 1e-6, "{key}: got {got}, want {want}");
    }

    /// Hand computation (6 items; user 3 has no test items and is not evaluated):
    ///
    /// user 0: scores [.9 .5 .5 .1 .7 .5], train {0}, test {2, 3}
    ///   all items:   0(.9) 4(.7) 1(.5) 2(.5) 5(.5) 3(.1) → rank(2)=3, rank(3)=5
    ///   train masked:      4     1     2     5     3     → rank(2)=2, rank(3)=4
    /// user 1: scores all .2 (one big tie), train {1, 3}, test {0, 5, 5} (5 twice)
    ///   all items: 0 1 2 3 4 5 → rank(0)=0, rank(5)=5 (counted twice)
    ///   masked:    0 2 4 5     → rank(0)=0, rank(5)=3; relevant {0, 5}
    /// user 2: scores [.3 .8 .6 .8 0 .4], train {1}, test {3, 1}
    ///   all items: 1(.8) 3(.8) 2 5 0 4 → rank(1)=0, rank(3)=1
    ///   masked:    3 2 5 0 4 → rank(3)=0; item 1 is relevant but masked
    ///
    /// top_k_accuracy over the 7 test interactions, ranks 3,5,0,5,5,1,0:
    ///   @1 = 2/7, @4 = 4/7, @6 = 7/7
    /// full ranking, |R| = 2 for every user, IDCG(2) = 1 + 1/log2(3) = 1.6309298:
    ///   @2: user0 no hit; user1 hit at 0; user2 hit at 0
    ///       recall = (0 + .5 + .5)/3 = 1/3, hit_rate = 2/3,
    ///       ndcg = (0 + 2 · 1/1.6309298)/3 = 0.4087648
    ///   @3: user0 hit at 2 (DCG 1/log2(4) = .5); users 1, 2 as at @2
    ///       recall = .5, hit_rate = 1, ndcg = (.5/1.6309298 + 2/1.6309298)/3 = 0.5109560
    #[test]
    fn hand_computed_example_with_ties_and_masking() {
        let scores = vec![
            0.9, 0.5, 0.5, 0.1, 0.7, 0.5, //
            0.2, 0.2, 0.2, 0.2, 0.2, 0.2, //
            0.3, 0.8, 0.6, 0.8, 0.0, 0.4, //
            1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let scorer = Dense { n_items: 6, scores };
        let train = Pairs::new(&[0, 1, 1, 2, 3, 1], &[0, 1, 3, 1, 4, 3]).unwrap();
        let test = Pairs::new(&[0, 0, 1, 1, 1, 2, 2], &[2, 3, 0, 5, 5, 3, 1]).unwrap();
        let eval = Evaluator::new(4, 6, train, test).unwrap();
        assert_eq!(eval.users(), &[0, 1, 2]);
        let config = EvalConfig {
            ks: vec![3, 2],
            accuracy_ks: vec![1, 4, 6],
            block_users: 2,
        };
        let m = eval.evaluate(&scorer, &config).unwrap();
        assert_eq!(m.users_evaluated, 3);
        assert_eq!(m.values.len(), 9);
        close(&m, "top_k_accuracy@1", 2.0 / 7.0);
        close(&m, "top_k_accuracy@4", 4.0 / 7.0);
        close(&m, "top_k_accuracy@6", 1.0);
        close(&m, "recall@2", 1.0 / 3.0);
        close(&m, "hit_rate@2", 2.0 / 3.0);
        close(&m, "ndcg@2", 0.4087648);
        close(&m, "recall@3", 0.5);
        close(&m, "hit_rate@3", 1.0);
        close(&m, "ndcg@3", 0.5109560);
    }

    /// The same hand-computed example as explicit lists: each user's list is the score
    /// order of the example above, so the full-ranking metrics must be identical; a
    /// list holding a training item and a repeat, or ending early, follows the rules.
    #[test]
    fn lists_follow_the_full_ranking_definitions() {
        let train = Pairs::new(&[0, 1, 1, 2, 3, 1], &[0, 1, 3, 1, 4, 3]).unwrap();
        let test = Pairs::new(&[0, 0, 1, 1, 1, 2, 2], &[2, 3, 0, 5, 5, 3, 1]).unwrap();
        let eval = Evaluator::new(4, 6, train, test).unwrap();
        let config = EvalConfig {
            ks: vec![3, 2],
            accuracy_ks: vec![1],
            block_users: 2,
        };
        let lists = |u: u32| match u {
            0 => vec![0, 4, 1, 2, 5, 3],
            1 => vec![0, 1, 2, 3, 4, 5],
            2 => vec![1, 3, 2, 5, 0, 4],
            _ => vec![],
        };
        let m = eval.evaluate_lists(lists, &config).unwrap();
        assert_eq!(m.values.len(), 6);
        close(&m, "recall@2", 1.0 / 3.0);
        close(&m, "hit_rate@2", 2.0 / 3.0);
        close(&m, "ndcg@2", 0.4087648);
        close(&m, "recall@3", 0.5);
        close(&m, "ndcg@3", 0.5109560);
        // User 0: [4, 4, 2] → the repeat is skipped, 2 lands at rank 1 (DCG 1/log2 3).
        // User 1: [] → nothing. User 2: [3] → hit at rank 0.
        let short = |u: u32| match u {
            0 => vec![4, 4, 2],
            2 => vec![3],
            _ => vec![],
        };
        let m = eval.evaluate_lists(short, &config).unwrap();
        let idcg2 = 1.0 + 1.0 / 3f64.log2();
        close(
            &m,
            "ndcg@2",
            ((1.0 / 3f64.log2()) / idcg2 + 1.0 / idcg2) / 3.0,
        );
        close(&m, "recall@3", (0.5 + 0.0 + 0.5) / 3.0);
        let err = eval.evaluate_lists(|_| vec![9], &config).unwrap_err();
        assert!(err.to_string().contains("list of user 0"), "{err}");
    }

    #[test]
    fn default_keys_and_json_shape() {
        let scorer = Dense {
            n_items: 3,
            scores: vec![1.0, 2.0, 3.0],
        };
        let eval = Evaluator::new(
            1,
            3,
            Pairs::new(&[], &[]).unwrap(),
            Pairs::new(&[0], &[1]).unwrap(),
        )
        .unwrap();
        let m = eval.evaluate(&scorer, &EvalConfig::default()).unwrap();
        let json: serde_json::Value = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "recall@10",
            "recall@20",
            "ndcg@10",
            "ndcg@20",
            "hit_rate@10",
            "hit_rate@20",
            "top_k_accuracy@1",
            "top_k_accuracy@5",
            "top_k_accuracy@10",
            "top_k_accuracy@50",
            "top_k_accuracy@100",
            "users_evaluated",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(json["users_evaluated"], 1);
        // Item 1 is second of 3: a top-1 miss, a top-5 hit; NDCG = 1/log2(3).
        assert_eq!(json["top_k_accuracy@1"], 0.0);
        assert_eq!(json["top_k_accuracy@5"], 1.0);
        close(&m, "ndcg@10", 1.0 / 3f64.log2());
        let back: Metrics = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    /// Reference: sort every user's admissible items, truncate, look up.
    fn naive(
        n_users: usize,
        n_items: usize,
        scores: &[f32],
        train: &[(u32, u32)],
        test: &[(u32, u32)],
        ks: &[usize],
        acc_ks: &[usize],
    ) -> Metrics {
        let key = |u: usize, j: usize| {
            let s = scores[u * n_items + j];
            if s.is_nan() {
                f32::NEG_INFINITY
            } else {
                s
            }
        };
        let order = |u: usize, keep: &dyn Fn(usize) -> bool| {
            let mut v: Vec<usize> = (0..n_items).filter(|&j| keep(j)).collect();
            v.sort_by(|&a, &b| key(u, b).partial_cmp(&key(u, a)).unwrap().then(a.cmp(&b)));
            v
        };
        let mut values = std::collections::BTreeMap::new();
        for &k in acc_ks {
            let hits = test
                .iter()
                .filter(|&&(u, i)| {
                    order(u as usize, &|_| true)[..k.min(n_items)].contains(&(i as usize))
                })
                .count();
            values.insert(
                format!("top_k_accuracy@{k}"),
                hits as f64 / test.len() as f64,
            );
        }
        let mut users = 0;
        let mut sums = vec![[0f64; 3]; ks.len()];
        for u in 0..n_users {
            let mut rel: Vec<usize> = test
                .iter()
                .filter(|p| p.0 as usize == u)
                .map(|p| p.1 as usize)
                .collect();
            rel.sort_unstable();
            rel.dedup();
            if rel.is_empty() {
                continue;
            }
            users += 1;
            let seen: Vec<usize> = train
                .iter()
                .filter(|p| p.0 as usize == u)
                .map(|p| p.1 as usize)
                .collect();
            let ranked = order(u, &|j| !seen.contains(&j));
            for (x, &k) in ks.iter().enumerate() {
                let top = &ranked[..k.min(ranked.len())];
                let hits: Vec<usize> = (0..top.len()).filter(|&r| rel.contains(&top[r])).collect();
                let dcg: f64 = hits.iter().map(|&r| 1.0 / ((r + 2) as f64).log2()).sum();
                let idcg: f64 = (0..k.min(rel.len()))
                    .map(|r| 1.0 / ((r + 2) as f64).log2())
                    .sum();
                sums[x][0] += hits.len() as f64 / rel.len() as f64;
                sums[x][1] += dcg / idcg;
                sums[x][2] += if hits.is_empty() { 0.0 } else { 1.0 };
            }
        }
        for (x, &k) in ks.iter().enumerate() {
            values.insert(format!("recall@{k}"), sums[x][0] / users as f64);
            values.insert(format!("ndcg@{k}"), sums[x][1] / users as f64);
            values.insert(format!("hit_rate@{k}"), sums[x][2] / users as f64);
        }
        Metrics {
            values,
            users_evaluated: users,
        }
    }

    #[test]
    fn equals_naive_sort_on_random_data_with_ties_repeats_and_nan() {
        for seed in 0..8 {
            let mut rng = Rng::new(100 + seed);
            let (nu, ni) = (1 + rng.below(40) as usize, 1 + rng.below(300) as usize);
            // Few distinct score values: ties everywhere; a few NaN.
            let scores: Vec<f32> = (0..nu * ni)
                .map(|_| {
                    if rng.below(50) == 0 {
                        f32::NAN
                    } else {
                        rng.below(6) as f32
                    }
                })
                .collect();
            let pairs = |rng: &mut Rng, n: usize| -> Vec<(u32, u32)> {
                (0..n)
                    .map(|_| (rng.below(nu as u64) as u32, rng.below(ni as u64) as u32))
                    .collect()
            };
            let train = pairs(&mut rng, 20 * nu);
            let test = pairs(&mut rng, 1 + 5 * nu);
            let cols = |p: &[(u32, u32)]| -> (Vec<u32>, Vec<u32>) { p.iter().copied().unzip() };
            let ((tu, ti), (su, si)) = (cols(&train), cols(&test));
            let eval = Evaluator::new(
                nu,
                ni,
                Pairs::new(&tu, &ti).unwrap(),
                Pairs::new(&su, &si).unwrap(),
            )
            .unwrap();
            let (ks, acc) = (vec![1, 3, 10, 50], vec![1, 5, 20, 100]);
            let config = EvalConfig {
                ks: ks.clone(),
                accuracy_ks: acc.clone(),
                block_users: 1 + seed as usize,
            };
            let got = eval
                .evaluate(
                    &Dense {
                        n_items: ni,
                        scores: scores.clone(),
                    },
                    &config,
                )
                .unwrap();
            let want = naive(nu, ni, &scores, &train, &test, &ks, &acc);
            assert_eq!(got.users_evaluated, want.users_evaluated, "seed {seed}");
            for (k, v) in &want.values {
                close(&got, k, *v);
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = Evaluator::new(
            2,
            3,
            Pairs::new(&[0], &[0]).unwrap(),
            Pairs::new(&[0, 1], &[1, 3]).unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test items row 1: index 3 is out of range (there are 3)"
        );
        let e = Evaluator::new(
            2,
            3,
            Pairs::new(&[2], &[0]).unwrap(),
            Pairs::new(&[], &[]).unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("train users row 0"), "{e}");
        assert!(Pairs::new(&[0, 1], &[0]).is_err());
        let eval = Evaluator::new(
            1,
            3,
            Pairs::new(&[], &[]).unwrap(),
            Pairs::new(&[], &[]).unwrap(),
        )
        .unwrap();
        let dense = Dense {
            n_items: 3,
            scores: vec![0.0; 3],
        };
        assert!(eval
            .evaluate(&dense, &EvalConfig::default())
            .unwrap_err()
            .to_string()
            .contains("no test"));
        let eval = Evaluator::new(
            1,
            4,
            Pairs::new(&[], &[]).unwrap(),
            Pairs::new(&[0], &[0]).unwrap(),
        )
        .unwrap();
        assert!(eval
            .evaluate(&dense, &EvalConfig::default())
            .unwrap_err()
            .to_string()
            .contains("expected 4, got 3"));
        let config = EvalConfig {
            ks: vec![0],
            ..Default::default()
        };
        assert!(eval.evaluate(&dense, &config).is_err());
    }

    /// Item popularity follows a power law and each user's test items are drawn like
    /// their training items, so counting training interactions must beat chance.
    #[test]
    fn popularity_beats_random_on_skewed_data() {
        let (nu, ni) = (300, 200);
        let mut rng = Rng::new(5);
        // P(item j) ∝ 1 / (j + 1): draw by inverting the cumulative weights.
        let cum: Vec<f64> = (0..ni)
            .scan(0.0, |acc, j| {
                *acc += 1.0 / (j as f64 + 1.0);
                Some(*acc)
            })
            .collect();
        let total = cum[ni - 1];
        let draw = |rng: &mut Rng, n: usize| -> (Vec<u32>, Vec<u32>) {
            (0..n)
                .map(|_| {
                    let x = rng.next_f64() * total;
                    (
                        rng.below(nu as u64) as u32,
                        cum.partition_point(|&c| c < x).min(ni - 1) as u32,
                    )
                })
                .unzip()
        };
        let (tu, ti) = draw(&mut rng, 12_000);
        let (su, si) = draw(&mut rng, 3_000);
        let eval = Evaluator::new(
            nu,
            ni,
            Pairs::new(&tu, &ti).unwrap(),
            Pairs::new(&su, &si).unwrap(),
        )
        .unwrap();
        let pop = crate::PopularityScorer::fit(ni, &ti).unwrap();
        let random = Dense {
            n_items: ni,
            scores: (0..nu * ni).map(|_| rng.next_f32()).collect(),
        };
        let config = EvalConfig::default();
        let (p, r) = (
            eval.evaluate(&pop, &config).unwrap(),
            eval.evaluate(&random, &config).unwrap(),
        );
        for key in ["recall@10", "ndcg@10", "hit_rate@20", "top_k_accuracy@10"] {
            assert!(
                p.get(key).unwrap() > 1.5 * r.get(key).unwrap(),
                "{key}: popularity {p:?} vs random {r:?}"
            );
        }
    }
}
