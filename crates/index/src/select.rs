//! Partial selection shared by the single and batched search paths: a bounded heap of
//! the best `k` hits, a prepared filter, and the per-query [`Gate`] the fused kernels
//! of `kernel` offer candidate lanes to.
//!
//! Items are scanned in increasing index order, so once the heap is full a candidate
//! must beat the worst kept score *strictly* (an equal score has a higher index and
//! ranks after). That makes one vector compare per 16 scores enough to reject almost
//! every item; the filter is only consulted for the rare candidates.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::index_base::{Filter, Hit};

/// A NaN score ranks as `-inf` (see the ordering contract in `index_base`).
#[inline(always)]
fn sanitize(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

/// Ordering of the final result: best first.
pub(crate) fn rank_order(a: &Hit, b: &Hit) -> Ordering {
    if a.ranks_before(b) {
        Ordering::Less
    } else if b.ranks_before(a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// The best `k` hits seen so far, as a binary heap whose root is the *worst* kept hit.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    heap: Vec<Hit>,
}

impl TopK {
    /// An empty collector for `k` hits; `cap` bounds the preallocation (no point in
    /// reserving `k` slots when the catalogue is smaller).
    pub(crate) fn new(k: usize, cap: usize) -> Self {
        TopK {
            k,
            heap: Vec::with_capacity(k.min(cap)),
        }
    }

    /// Offers a hit (score already sanitised).
    #[inline]
    pub(crate) fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(hit);
            self.sift_up(self.heap.len() - 1);
        } else if self.k > 0 && hit.ranks_before(&self.heap[0]) {
            self.heap[0] = hit;
            self.sift_down(0);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            // The parent must rank after (be worse than) its children.
            if self.heap[p].ranks_before(&self.heap[i]) {
                self.heap.swap(p, i);
                i = p;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut worst = i;
            if l < n && self.heap[worst].ranks_before(&self.heap[l]) {
                worst = l;
            }
            if r < n && self.heap[worst].ranks_before(&self.heap[r]) {
                worst = r;
            }
            if worst == i {
                break;
            }
            self.heap.swap(i, worst);
            i = worst;
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(mut self) -> Vec<Hit> {
        self.heap.sort_unstable_by(rank_order);
        self.heap
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Exclude,
    Allow,
}

/// A [`Filter`] made ready for scanning: its list sorted ascending (borrowed when the
/// caller's list already is), with a cursor that only moves forward as the scan does.
#[derive(Debug, Clone)]
pub(crate) struct Admissible<'a> {
    mode: Mode,
    list: Cow<'a, [u32]>,
    cursor: usize,
}

fn is_sorted(list: &[u32]) -> bool {
    list.windows(2).all(|w| w[0] <= w[1])
}

impl<'a> Admissible<'a> {
    /// Prepares `filter` for a catalogue of `n_items` items.
    pub(crate) fn prepare(filter: &Filter<'a>, n_items: usize) -> Result<Self> {
        let (mode, list) = match *filter {
            Filter::None => (Mode::All, Cow::Borrowed(&[][..])),
            Filter::ExcludeSorted(list) => {
                if let Some(p) = list.windows(2).position(|w| w[0] > w[1]) {
                    return Err(Error::invalid(
                        "filter",
                        format!(
                            "Filter::ExcludeSorted needs an ascending list, but entry {} ({}) > entry {} ({}); use Filter::Exclude for unsorted lists",
                            p,
                            list[p],
                            p + 1,
                            list[p + 1]
                        ),
                    ));
                }
                (Mode::Exclude, Cow::Borrowed(list))
            }
            Filter::Exclude(list) => {
                if is_sorted(list) {
                    (Mode::Exclude, Cow::Borrowed(list))
                } else {
                    let mut v = list.to_vec();
                    v.sort_unstable();
                    (Mode::Exclude, Cow::Owned(v))
                }
            }
            Filter::AllowOnly(list) => {
                if let Some(&bad) = list.iter().find(|&&i| i as usize >= n_items) {
                    return Err(Error::invalid(
                        "filter",
                        format!(
                            "allow-list item {bad} is out of range (the index has {n_items} items)"
                        ),
                    ));
                }
                if list.windows(2).all(|w| w[0] < w[1]) {
                    (Mode::Allow, Cow::Borrowed(list))
                } else {
                    let mut v = list.to_vec();
                    v.sort_unstable();
                    v.dedup();
                    (Mode::Allow, Cow::Owned(v))
                }
            }
        };
        Ok(Admissible {
            mode,
            list,
            cursor: 0,
        })
    }

    /// The allow-list, when this is one (the single-query path scores only these).
    pub(crate) fn allow_list(&self) -> Option<&[u32]> {
        (self.mode == Mode::Allow).then_some(&self.list[..])
    }
}

/// Selection state of one query for the fused kernels: a candidate buffer, the
/// filter's cursor, and the gate the kernel tests whole vectors against.
///
/// Candidates are appended to a buffer (cheap, in index order); when it holds `cap`
/// of them it is cut back to its best `k` by a partial sort, and `thr` becomes the
/// k-th best score. Items arrive in increasing index order, so from then on a candidate
/// must beat `thr` *strictly* (an equal score has a higher index and ranks after), and
/// a kernel only calls [`offer`](Gate::offer) for lanes `> thr` (NaN never is). Until
/// the first cut (`open`) every valid lane is offered. Excluded items are checked only
/// for offered lanes, by merging the sorted exclusion list. This beats a binary heap in
/// the warm-up phase, where a heap would sift for most items.
/// Selection state of one query for the fused kernels: a candidate buffer, the
/// exclusion list's cursor, and the gate the kernel tests whole vectors against.
///
/// The kernel appends every lane that passes the gate (score `> thr`, not excluded) to
/// the buffer, branch-free (a compress-store under AVX-512), 16 slots at a time from
/// [`room`](Gate::room); when the buffer holds `cap` candidates [`commit`](Gate::commit)
/// cuts it back to its best `k` by a partial sort and `thr` becomes the k-th best
/// score. Items arrive in increasing index order, so from then on a candidate must beat
/// `thr` *strictly* (an equal score has a higher index and ranks after; NaN never
/// passes). Until the first cut (`open`) every valid lane is appended. A stale (lower)
/// threshold only lets extra candidates in; the final sort is exact either way.
#[derive(Debug, Clone)]
pub(crate) struct Gate<'a> {
    /// Lanes must score strictly above this (meaningful when `!open`).
    pub(crate) thr: f32,
    /// No cut yet: every valid lane must be appended.
    pub(crate) open: bool,
    k: usize,
    cap: usize,
    len: usize,
    scores: Vec<f32>,
    items: Vec<u32>,
    adm: Admissible<'a>,
    /// Scratch of the cuts.
    hits: Vec<Hit>,
    sel: Vec<f32>,
}

impl<'a> Gate<'a> {
    /// A gate for `k ≥ 1` hits out of `n_items`; `adm` must not be an allow-list.
    pub(crate) fn new(adm: Admissible<'a>, k: usize, n_items: usize) -> Self {
        debug_assert!(adm.mode != Mode::Allow && k > 0);
        // Never more candidates than items (+ one block of room), so a huge `k` costs
        // memory proportional to the catalogue at most.
        let cap = (2 * k).max(k + 48).min(n_items + 1).max(k + 17);
        Gate {
            thr: f32::INFINITY,
            open: k > 0,
            k,
            cap,
            len: 0,
            scores: vec![0.0; cap + 16],
            items: vec![0; cap + 16],
            adm,
            hits: Vec::new(),
            sel: Vec::new(),
        }
    }

    /// Whether this query has an exclusion list (then call
    /// [`excluded_in`](Gate::excluded_in) before appending a block's lanes).
    #[inline(always)]
    pub(crate) fn filters(&self) -> bool {
        !self.adm.list.is_empty()
    }

    /// Bit `l` set when item `base + l` is excluded; blocks must be asked in
    /// increasing `base` order (blocks may be skipped).
    #[inline]
    pub(crate) fn excluded_in(&mut self, base: u32) -> u32 {
        let list = &self.adm.list[..];
        let mut c = self.adm.cursor;
        while c < list.len() && list[c] < base {
            c += 1;
        }
        let mut bits = 0u32;
        let end = base.saturating_add(16);
        while c < list.len() && list[c] < end {
            bits |= 1 << (list[c] - base);
            c += 1;
        }
        self.adm.cursor = c;
        bits
    }

    /// Space for one block of candidates: 16 score slots and 16 item slots.
    #[inline(always)]
    pub(crate) fn room(&mut self) -> (&mut [f32], &mut [u32]) {
        let l = self.len;
        (&mut self.scores[l..l + 16], &mut self.items[l..l + 16])
    }

    /// Keeps the first `count` slots of the last [`room`](Gate::room).
    #[inline(always)]
    pub(crate) fn commit(&mut self, count: usize) {
        debug_assert!(count <= 16);
        self.len += count;
        if self.len >= self.cap {
            self.cut();
        }
    }

    /// The buffered candidates as hits (NaN mapped to `-inf`) in `self.hits`.
    fn gather(&mut self) {
        self.hits.clear();
        self.hits.extend(
            self.scores[..self.len]
                .iter()
                .zip(&self.items[..self.len])
                .map(|(&s, &item)| Hit {
                    item,
                    score: sanitize(s),
                }),
        );
    }

    /// Drops the candidates that cannot make the top `k` and sets the threshold to
    /// the k-th best score `t`: keeps every score `≥ t` (at least `k`, more on ties;
    /// the final sort settles those). Only when ties keep the buffer nearly full does
    /// it fall back to an exact cut to `k` by rank.
    #[inline(never)]
    fn cut(&mut self) {
        let k = self.k;
        let len = self.len;
        for s in &mut self.scores[..len] {
            *s = sanitize(*s);
        }
        self.sel.clear();
        self.sel.extend_from_slice(&self.scores[..len]);
        let (_, &mut t, _) = self
            .sel
            .select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let mut w = 0;
        for r in 0..len {
            let (s, item) = (self.scores[r], self.items[r]);
            self.scores[w] = s;
            self.items[w] = item;
            w += usize::from(s >= t);
        }
        self.len = w;
        self.thr = t;
        self.open = false;
        if self.len + 16 >= self.cap {
            self.gather();
            self.hits.select_nth_unstable_by(k - 1, rank_order);
            for (j, h) in self.hits[..k].iter().enumerate() {
                self.scores[j] = h.score;
                self.items[j] = h.item;
            }
            self.len = k;
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(mut self) -> Vec<Hit> {
        self.gather();
        let mut hits = self.hits;
        hits.sort_unstable_by(rank_order);
        hits.truncate(self.k);
        hits
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    fn naive(scores: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<Hit> {
        let mut all: Vec<Hit> = scores
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i as u32))
            .map(|(i, &s)| Hit {
                item: i as u32,
                score: sanitize(s),
            })
            .collect();
        all.sort_by(rank_order);
        all.truncate(k);
        all
    }

    /// Offers blocks of 16 scores like a kernel would: a lane goes to the gate when the
    /// gate is open or the lane beats the threshold; `tile` is ignored beyond checking
    /// that results do not depend on how calls are split (each call is one block).
    fn run(scores: &[f32], k: usize, filter: Filter<'_>, _tile: usize) -> Vec<Hit> {
        let adm = Admissible::prepare(&filter, scores.len()).unwrap();
        if let Some(allowed) = adm.allow_list() {
            let mut top = TopK::new(k, scores.len());
            for &i in allowed {
                top.push(Hit {
                    item: i,
                    score: sanitize(scores[i as usize]),
                });
            }
            return top.into_sorted();
        }
        if k == 0 {
            return Vec::new();
        }
        let mut gate = Gate::new(adm, k, scores.len());
        for (b, chunk) in scores.chunks(16).enumerate() {
            let base = (b * 16) as u32;
            let valid = (1u32 << chunk.len()) - 1;
            let mut mask = 0;
            for (l, &s) in chunk.iter().enumerate() {
                mask |= u32::from(s > gate.thr) << l;
            }
            if gate.open {
                mask = valid;
            }
            if mask != 0 && gate.filters() {
                mask &= !gate.excluded_in(base);
            }
            if mask != 0 {
                let (rs, ri) = gate.room();
                let mut c = 0;
                for (l, &s) in chunk.iter().enumerate() {
                    if mask >> l & 1 == 1 {
                        rs[c] = s;
                        ri[c] = base + l as u32;
                        c += 1;
                    }
                }
                gate.commit(c);
            }
        }
        gate.into_sorted()
    }

    #[test]
    fn ties_nan_and_k_larger_than_catalogue() {
        let scores = [1.0, 3.0, f32::NAN, 3.0, -1.0, 3.0, f32::NEG_INFINITY];
        let got = run(&scores, 3, Filter::None, 100);
        let items: Vec<u32> = got.iter().map(|h| h.item).collect();
        assert_eq!(items, vec![1, 3, 5]);
        let got = run(&scores, 100, Filter::None, 2);
        let items: Vec<u32> = got.iter().map(|h| h.item).collect();
        // NaN ranks as -inf; among the two -inf scores the lower index (2) comes first.
        assert_eq!(items, vec![1, 3, 5, 0, 4, 2, 6]);
        assert!(run(&scores, 0, Filter::None, 3).is_empty());
    }

    #[test]
    fn heap_matches_sort_on_many_ties() {
        let mut rng = shortlist_core::Rng::new(7);
        for trial in 0..200 {
            let n = 1 + rng.below(300) as usize;
            // Few distinct values, so ties are everywhere.
            let scores: Vec<f32> = (0..n).map(|_| rng.below(5) as f32).collect();
            let k = rng.below(n as u64 + 5) as usize;
            let tile = 1 + rng.below(70) as usize;
            let excl: Vec<u32> = (0..rng.below(20))
                .map(|_| rng.below(n as u64) as u32)
                .collect();
            let allow: Vec<u32> = (0..rng.below(40))
                .map(|_| rng.below(n as u64) as u32)
                .collect();
            assert_eq!(
                run(&scores, k, Filter::None, tile),
                naive(&scores, k, |_| true),
                "trial {trial}"
            );
            assert_eq!(
                run(&scores, k, Filter::Exclude(&excl), tile),
                naive(&scores, k, |i| !excl.contains(&i)),
                "trial {trial}"
            );
            assert_eq!(
                run(&scores, k, Filter::AllowOnly(&allow), tile),
                naive(&scores, k, |i| allow.contains(&i)),
                "trial {trial}"
            );
        }
    }

    #[test]
    fn bad_filters_are_errors() {
        let e = Admissible::prepare(&Filter::ExcludeSorted(&[3, 1]), 10).unwrap_err();
        assert!(e.to_string().contains("ascending"), "{e}");
        let e = Admissible::prepare(&Filter::AllowOnly(&[1, 10]), 10).unwrap_err();
        assert!(e.to_string().contains("item 10"), "{e}");
        // Out-of-range exclusions exclude nothing.
        assert!(Admissible::prepare(&Filter::Exclude(&[99]), 10).is_ok());
    }
}
