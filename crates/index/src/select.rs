//! Selection: a bounded heap of the best `k` hits (allow-list queries, which score
//! only their items), a prepared filter, and the per-query [`Gate`] the fused kernels
//! of `kernel` feed chunk by chunk.
//!
//! Items are scanned in increasing index order, so a candidate must beat a score
//! already known to be reached by `k` items of *lower* index strictly (an equal score
//! ranks after them); within the current chunk, where the `k` bounding items may have
//! higher indices, `≥` is the test. The filter is applied by merging sorted lists.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::bitmap::ItemBitmap;
use crate::error::{Error, Result};
use crate::index_base::{Filter, Hit};

/// A NaN score ranks as `-inf` (see the ordering contract in `index_base`).
#[inline(always)]
pub(crate) fn sanitize(s: f32) -> f32 {
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
    Bitmap,
}

/// A [`Filter`] made ready for scanning: its list sorted ascending (borrowed when the
/// caller's list already is), with a cursor that only moves forward as the scan does.
#[derive(Debug, Clone)]
pub(crate) struct Admissible<'a> {
    mode: Mode,
    list: Cow<'a, [u32]>,
    cursor: usize,
    /// The admissible items, in [`Mode::Bitmap`].
    bitmap: Option<&'a ItemBitmap>,
}

/// Branch-free, so it vectorises: a 90k-item exclusion list is checked in a few µs,
/// not tens (it is checked on every query).
fn is_sorted(list: &[u32]) -> bool {
    list.iter()
        .zip(list.iter().skip(1))
        .fold(true, |ok, (a, b)| ok & (a <= b))
}

impl<'a> Admissible<'a> {
    /// Prepares `filter` for a catalogue of `n_items` items.
    pub(crate) fn prepare(filter: &Filter<'a>, n_items: usize) -> Result<Self> {
        let (mode, list) = match *filter {
            Filter::None => (Mode::All, Cow::Borrowed(&[][..])),
            Filter::AllowBitmap(b) => {
                if b.universe() != n_items {
                    return Err(Error::invalid(
                        "filter",
                        format!(
                            "the bitmap covers {} items, the index has {n_items}",
                            b.universe()
                        ),
                    ));
                }
                return Ok(Admissible {
                    mode: Mode::Bitmap,
                    list: Cow::Borrowed(&[][..]),
                    cursor: 0,
                    bitmap: Some(b),
                });
            }
            Filter::ExcludeSorted(list) => {
                if let Some(p) = (!is_sorted(list))
                    .then(|| list.windows(2).position(|w| w[0] > w[1]))
                    .flatten()
                {
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
            bitmap: None,
        })
    }

    /// A filter excluding the sorted `list` (already checked or built by this crate).
    pub(crate) fn excluding_sorted(list: Cow<'a, [u32]>) -> Self {
        debug_assert!(is_sorted(&list));
        Admissible {
            mode: Mode::Exclude,
            list,
            cursor: 0,
            bitmap: None,
        }
    }

    /// The bitmap of admissible items, in bitmap mode.
    #[inline(always)]
    pub(crate) fn bitmap(&self) -> Option<&'a ItemBitmap> {
        self.bitmap
    }

    /// Number of admissible items among `n_items` (linear in an exclusion list).
    pub(crate) fn admissible_count(&self, n_items: usize) -> usize {
        match self.mode {
            Mode::All => n_items,
            Mode::Allow => self.list.len(),
            Mode::Bitmap => self.bitmap.map_or(0, ItemBitmap::count),
            Mode::Exclude => {
                // Sorted: count the distinct entries below `n_items`.
                let mut distinct = 0;
                let mut prev = None;
                for &x in self.list.iter() {
                    if (x as usize) < n_items && prev != Some(x) {
                        distinct += 1;
                    }
                    prev = Some(x);
                }
                n_items - distinct
            }
        }
    }

    /// Whether item `item` is admissible (a binary search in an exclusion list).
    pub(crate) fn admits(&self, item: u32) -> bool {
        match self.mode {
            Mode::All => true,
            Mode::Exclude => self.list.binary_search(&item).is_err(),
            Mode::Allow => self.list.binary_search(&item).is_ok(),
            Mode::Bitmap => self.bitmap.is_some_and(|b| b.contains(item)),
        }
    }

    /// The sorted exclusion list (empty unless this excludes items).
    pub(crate) fn excluded(&self) -> &[u32] {
        if self.mode == Mode::Exclude {
            &self.list
        } else {
            &[]
        }
    }

    /// Position of the scan in [`excluded`](Self::excluded).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the int8 path
    pub(crate) fn cursor(&self) -> usize {
        self.cursor
    }

    /// Moves the scan position forward.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the int8 path
    pub(crate) fn set_cursor(&mut self, c: usize) {
        self.cursor = c;
    }

    /// The allow-list, when this is one (the single-query path scores only these).
    pub(crate) fn allow_list(&self) -> Option<&[u32]> {
        (self.mode == Mode::Allow).then_some(&self.list[..])
    }
}

/// Sets the scores of inadmissible items to `-inf`: `scores[j]` belongs to the item at
/// position `start + j`, which is that item (`ids = None`) or `ids[start + j]`.
#[inline]
pub(crate) fn mask_bitmap(b: &ItemBitmap, scores: &mut [f32], start: u32, ids: Option<&[u32]>) {
    match ids {
        None => {
            for (j, s) in scores.iter_mut().enumerate() {
                if !b.contains(start + j as u32) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        Some(ids) => {
            let ids = &ids[start as usize..start as usize + scores.len()];
            for (s, &id) in scores.iter_mut().zip(ids) {
                if !b.contains(id) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// Selection state of one query for the fused kernels, fed one chunk of scores at a
/// time (items in increasing index order, chunk after chunk).
///
/// Per chunk: excluded items and padding lanes are set to `-inf`; the kernel computes
/// the maxima of disjoint groups of items (the 16 lanes, or for `k > 16` lanes × row
/// groups; each maximum is the score of a distinct admissible item) and their k-th
/// largest `t`, given to [`bounds`](Gate::bounds): at least `k` admissible items of
/// the chunk score `≥ t`, so only scores `≥ t` can make the top `k`, and in later
/// chunks only scores `> t` (an equal score there has a higher index, so it ranks
/// after). With `b` the strict bound carried from earlier chunks, the
/// kernel's vector pass offers only lanes with `s ≥ t && s > b` to
/// [`push_lanes`](Gate::push_lanes) — typically about `k` per chunk. When no finite
/// bound exists (fewer than `k` finite maxima), the exact per-item
/// [`fallback`](Gate::fallback) runs. The buffer is cut back to its best `k`
/// when it grows past `cap`, which also raises `b` to the k-th best score.
#[derive(Debug, Clone)]
pub(crate) struct Gate<'a> {
    k: usize,
    cap: usize,
    /// No bound yet: every admissible item must be kept (fallback only).
    open: bool,
    /// Items of later chunks must score strictly above this (when `!open`).
    b: f32,
    /// Candidates, each with its score encoded by [`encode`] (so ascending [`key`]
    /// order is rank order); decoded in place at the end, so the buffer becomes the
    /// result without another allocation.
    buf: Vec<Hit>,
    adm: Admissible<'a>,
    /// The exclusion-list entries of the current chunk: `adm.list[excl.0..excl.1]`.
    excl: (usize, usize),
}

impl<'a> Gate<'a> {
    /// A gate for `k ≥ 1` hits out of `n_items`; `adm` must not be an allow-list.
    pub(crate) fn new(adm: Admissible<'a>, k: usize, n_items: usize) -> Self {
        debug_assert!(adm.mode != Mode::Allow && k > 0);
        let cap = k.saturating_mul(2).max(k.saturating_add(48));
        Gate {
            k,
            cap,
            open: true,
            b: f32::NEG_INFINITY,
            buf: Vec::with_capacity(cap.min(n_items)),
            adm,
            excl: (0, 0),
        }
    }

    /// Starts a chunk: `scores` are items `start ..`, of which the first `valid` are
    /// real; the rest (padding) and the excluded items are set to `-inf`.
    #[inline]
    pub(crate) fn begin_chunk(&mut self, scores: &mut [f32], start: u32, valid: usize) {
        for s in &mut scores[valid..] {
            *s = f32::NEG_INFINITY;
        }
        if let Some(b) = self.adm.bitmap {
            mask_bitmap(b, &mut scores[..valid], start, None);
            return;
        }
        let list = &self.adm.list[..];
        let end = start as u64 + valid as u64;
        let mut c = self.adm.cursor;
        while c < list.len() && list[c] < start {
            c += 1;
        }
        let c0 = c;
        while c < list.len() && u64::from(list[c]) < end {
            scores[(list[c] - start) as usize] = f32::NEG_INFINITY;
            c += 1;
        }
        self.adm.cursor = c;
        self.excl = (c0, c);
    }

    /// The number of hits wanted.
    #[inline(always)]
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// From `t`, the k-th largest of maxima of disjoint groups of the chunk's items
    /// (`-inf` when there are fewer than `k` groups): `Some((t, b))` when the vector
    /// pass may offer only lanes `s ≥ t && s > b`, `None` when the chunk needs the
    /// exact fallback.
    #[inline]
    pub(crate) fn bounds(&self, t: f32) -> Option<(f32, f32)> {
        // NaN never wins a maximum; `-inf` may be a placeholder, not an item.
        (t > f32::NEG_INFINITY).then_some((t, self.b))
    }

    /// Keeps lanes `l` of `group` whose bit is set in `mask`, as items `base + l`.
    #[inline(never)]
    pub(crate) fn push_lanes(&mut self, group: &[f32], mask: u32, base: u32) {
        let mut m = mask;
        while m != 0 {
            let l = m.trailing_zeros();
            m &= m - 1;
            self.buf.push(encode(group[l as usize], base + l));
        }
    }

    /// The exact per-item scan of a chunk (exclusions checked against the list, NaN as
    /// `-inf`), for when no lane bound exists.
    #[inline(never)]
    pub(crate) fn fallback(&mut self, scores: &[f32], start: u32, valid: usize) {
        let (c0, c1) = self.excl;
        let mut c = c0;
        for (j, &s) in scores[..valid].iter().enumerate() {
            // Once bounded, only a strictly higher score can enter (NaN never does).
            let passes = s > self.b;
            if !self.open && !passes {
                continue;
            }
            let item = start + j as u32;
            if self.adm.bitmap.is_some_and(|b| !b.contains(item)) {
                continue;
            }
            let list = &self.adm.list[..];
            while c < c1 && list[c] < item {
                c += 1;
            }
            if c < c1 && list[c] == item {
                continue;
            }
            self.buf.push(encode(sanitize(s), item));
            if self.buf.len() >= self.cap {
                self.cut();
            }
        }
    }

    /// Ends a chunk whose vector pass used the lane bound `t` (if any).
    #[inline]
    pub(crate) fn end_chunk(&mut self, t: Option<f32>) {
        if let Some(t) = t {
            self.open = false;
            if t > self.b {
                self.b = t;
            }
        }
        if self.buf.len() >= self.cap {
            self.cut();
        }
    }

    /// Keeps the best `k` of the buffer and raises `b` to the k-th best score.
    #[inline(never)]
    fn cut(&mut self) {
        let k = self.k;
        let (_, kth, _) = self.buf.select_nth_unstable_by_key(k - 1, key);
        let score = decode(*kth).score;
        if self.open || score > self.b {
            self.b = score;
        }
        self.open = false;
        self.buf.truncate(k);
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(mut self) -> Vec<Hit> {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by_key(self.k, key);
            self.buf.truncate(self.k);
        }
        self.buf.sort_unstable_by_key(key);
        for h in &mut self.buf {
            *h = decode(*h);
        }
        self.buf
    }
}

/// A candidate with its score replaced by a descending order-preserving `u32` (as
/// `f32` bits), so that [`key`] — those bits, then the item — sorts ascending in rank
/// order with plain integer comparisons. `score` must not be NaN. `-0.0` is encoded
/// (and returned) as `+0.0`, which `==` treats as the same score anyway; the kernels'
/// fma chains start from `+0.0` and never produce `-0.0`.
#[inline(always)]
fn encode(score: f32, item: u32) -> Hit {
    let bits = (score + 0.0).to_bits();
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    Hit {
        item,
        score: f32::from_bits(!ordered),
    }
}

/// The sort key of an [`encode`]d candidate.
#[inline(always)]
fn key(h: &Hit) -> u64 {
    (u64::from(h.score.to_bits()) << 32) | u64::from(h.item)
}

/// Inverse of [`encode`].
#[inline(always)]
fn decode(h: Hit) -> Hit {
    let ordered = !h.score.to_bits();
    let bits = if ordered >> 31 == 1 {
        ordered & 0x7FFF_FFFF
    } else {
        !ordered
    };
    Hit {
        item: h.item,
        score: f32::from_bits(bits),
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

    /// Feeds the gate chunk by chunk like a kernel would (chunks of `tile` items
    /// rounded up to 16, so the last block of each chunk may be padding).
    fn run(scores: &[f32], k: usize, filter: Filter<'_>, tile: usize) -> Vec<Hit> {
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
        // Chunks of `tile` items rounded up to 16, like the kernel's.
        let width = tile.div_ceil(16) * 16;
        for (c, chunk) in scores.chunks(width).enumerate() {
            let start = (c * width) as u32;
            let mut sc = vec![0f32; chunk.len().div_ceil(16) * 16];
            sc[..chunk.len()].copy_from_slice(chunk);
            gate.begin_chunk(&mut sc, start, chunk.len());
            let mut lm = [f32::NEG_INFINITY; 16];
            for g in sc.chunks_exact(16) {
                for l in 0..16 {
                    if g[l] > lm[l] {
                        lm[l] = g[l];
                    }
                }
            }
            let t = if k <= 16 {
                let mut m = lm;
                m.sort_by(|a, b| b.total_cmp(a));
                m[k - 1]
            } else {
                f32::NEG_INFINITY
            };
            match gate.bounds(t) {
                Some((t, b)) => {
                    for (gi, g) in sc.chunks_exact(16).enumerate() {
                        let mut mask = 0;
                        for (l, &s) in g.iter().enumerate() {
                            mask |= u32::from(s >= t && s > b) << l;
                        }
                        if mask != 0 {
                            gate.push_lanes(g, mask, start + (gi * 16) as u32);
                        }
                    }
                    gate.end_chunk(Some(t));
                }
                None => {
                    gate.fallback(&sc, start, chunk.len());
                    gate.end_chunk(None);
                }
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
