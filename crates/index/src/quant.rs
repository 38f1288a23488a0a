//! Exact top-K through an int8 prefilter (AVX-512 VNNI), for batches and single queries.
//!
//! The f32 kernels of `kernel` spend two fused multiply-adds per score (dim 32); one
//! `vpdpbusd` does 64 int8 multiply-adds, four times the f32 rate. So the items are also
//! kept quantised (per item: `v ≈ s_v · v̂`, `v̂ ∈ [-127, 127]`, stored `+128` as u8 in
//! blocks of 16 items × 4 dimensions), each query is quantised the same way, and every
//! item gets an approximate score `a = s_q · s_v · (q̂ · v̂)` plus a rigorous bound on its
//! distance to the f32 score the other kernels compute:
//!
//! `|q·v − a| ≤ ‖q − s_q q̂‖·‖v‖ + ‖s_q q̂‖·‖v − s_v v̂‖` (+ float rounding slack),
//!
//! i.e. `E = A_q·‖v‖ + B_q·‖v − s_v v̂‖`, per query two numbers, per item two norms.
//! With `lb = a − E` and `ub = a + E`: at least `k` items score `≥ L`, the k-th largest
//! lower bound (taken, as in `kernel`, from the maxima of disjoint groups of items), so
//! the k-th best f32 score is `≥ L` and every item of the top k (ties included) has
//! `ub ≥ L`. Only those candidates — about 17 of 1682 for k = 10 on random vectors —
//! are scored exactly, with the same serial fma chain as every other path, so the
//! result is the exact top-k, bit for bit. (Approximate scores are kept in units of
//! `s_q`, and so are `A_q`, `B_q`: one multiply less per score.)
//!
//! Measured at ML-100k sizes (943 × 1682, dim 32, one thread; re-measure with `cargo
//! bench -p shortlist-index --bench exact_topk`, once as is and once with
//! `SHORTLIST_SIMD=avx512` for the f32 kernel): 0.95–1.05 µs per query against
//! 1.55–1.65 µs for the f32 AVX-512 kernel; of that, int8 scoring ≈ 0.3 µs
//! (one `vpdpbusd` per 16 items × 4 dims, the floor of this design), bounds and the
//! k-th lower bound ≈ 0.15, exact rescoring ≈ 0.12, query preparation ≈ 0.08, the rest
//! selection and the result. Things tried that did not pay on this CPU (Zen 4): 16-lane
//! gathers for rescoring (the compiler's own auto-vectorised gathers were the slowest),
//! scoring whole packed f32 blocks, a global instead of per-item bound, bounds fused
//! into the tile epilogue, 4 × 4 tiles, smaller chunks, a branch per row on its
//! candidate mask; and a compress-and-store of candidate numbers per row was replaced
//! (its 64-byte unaligned stores cost 13 % of one thread, and two threads reached only
//! 1.5–1.8× of one; scanning the set bits of the masks reaches 1.7–2.0×).
//!
//! Used only when the CPU has AVX-512 F/BW/VNNI and every item is finite (and its norms
//! fit `f32`); a query that cannot be quantised (zero, non-finite) takes the f32 path.

// The int8 path runs on x86-64 only; elsewhere its machinery is compiled (the
// layout is shared) but never called.
#![cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_imports, unused_variables)
)]
#![allow(unsafe_code)]

use crate::cpu::{Row, BLOCK};
use crate::index_base::Hit;
use crate::select::{sanitize, Admissible};

#[cfg(test)]
thread_local! {
    /// Candidates scored exactly on this thread (tests check the prefilter actually
    /// prunes; per thread, so tests running in parallel do not count each other's).
    pub(crate) static CANDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Unit roundoff of `f32`.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Items per chunk of approximate scores kept in scratch (as in `kernel`).
const CHUNK_BLOCKS: usize = 128;

/// One 64-byte row of a quantised block: 16 items × 4 coordinates, `v̂ + 128`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct QRow([u8; 64]);

/// The items quantised to int8 with their per-item scale and norms (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Int8Items {
    dim: usize,
    /// Coordinates padded to a multiple of 4 (zeros), in groups of 4.
    dim4: usize,
    n: usize,
    /// `blocks × dim4` rows; block `b` is `rows[b * dim4 .. (b + 1) * dim4]`.
    rows: Vec<QRow>,
    /// Per block: the 16 items' scales `s_v` (0 for padding).
    scale: Vec<Row>,
    /// Per block: `‖v‖`, rounded up.
    norm: Vec<Row>,
    /// Per block: `‖v − s_v v̂‖`, rounded up.
    resid: Vec<Row>,
}

/// Whether this CPU runs the int8 kernel (and `SHORTLIST_SIMD` allows it, see
/// [`simd_cap`](crate::cpu::simd_cap)).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::cpu::simd_cap() == crate::cpu::SimdCap::All
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` (≥ 0) as `f32`, rounded up.
pub(crate) fn up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x {
        f.next_up()
    } else {
        f
    }
}

/// Symmetric int8 quantisation of finite `v`: `Some(s)` with `v ≈ s · v̂` written to
/// `out`; `None` when the scale over- or underflows (tiny, subnormal coordinates).
#[inline(always)]
fn quantize(v: &[f32], out: &mut [i8]) -> Option<f32> {
    // Eight partial maxima, so that it vectorises (`v` is finite: no NaN to order).
    let mut m8 = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            m8[l] = if c[l].abs() > m8[l] {
                c[l].abs()
            } else {
                m8[l]
            };
        }
    }
    let max =
        chunks
            .remainder()
            .iter()
            .chain(&m8)
            .fold(0f32, |m, x| if x.abs() > m { x.abs() } else { m });
    if max == 0.0 {
        out.fill(0);
        return Some(0.0);
    }
    let s = max / 127.0;
    let inv = 127.0 / max;
    if !(s > 0.0 && inv.is_finite()) {
        return None;
    }
    for (o, &x) in out.iter_mut().zip(v) {
        // Round half away from zero without a libm call (`as` truncates toward 0).
        // (`q̂` need not be the nearest: the bound uses the `q̂` actually chosen.)
        let y = (x * inv).clamp(-127.0, 127.0);
        // SAFETY: `x` and `inv` are finite and `|x| ≤ max`, so `y` is finite and
        // `y ± 0.5` lies within ±127.5, which fits `i32`.
        *o = unsafe { (y + 0.5f32.copysign(y)).to_int_unchecked::<i32>() } as i8;
    }
    Some(s)
}

/// `(‖v‖, ‖v − s·v̂‖, ‖s·v̂‖)` in `f64` (eight partial sums, so it vectorises).
#[inline(always)]
fn norms(v: &[f32], s: f32, vh: &[i8]) -> (f64, f64, f64) {
    let (mut n, mut r, mut h) = ([0f64; 8], [0f64; 8], [0f64; 8]);
    let s = f64::from(s);
    let vh = &vh[..v.len()]; // `vh` may carry zero padding
    let mut xs = v.chunks_exact(8);
    let mut qs = vh.chunks_exact(8);
    for (x8, q8) in (&mut xs).zip(&mut qs) {
        for l in 0..8 {
            let x = f64::from(x8[l]);
            let y = s * f64::from(q8[l]);
            n[l] += x * x;
            r[l] += (x - y) * (x - y);
            h[l] += y * y;
        }
    }
    for (&x, &q) in xs.remainder().iter().zip(qs.remainder()) {
        let x = f64::from(x);
        let y = s * f64::from(q);
        n[0] += x * x;
        r[0] += (x - y) * (x - y);
        h[0] += y * y;
    }
    let sum = |a: [f64; 8]| a.iter().sum::<f64>().sqrt();
    (sum(n), sum(r), sum(h))
}

impl Int8Items {
    /// Quantises `items` (`n × dim`, row-major). `None` when the kernel cannot serve
    /// them exactly: a non-finite coordinate or a norm beyond `f32`.
    pub(crate) fn new(items: &[f32], dim: usize) -> Option<Self> {
        // Beyond ~66k dimensions the i32 dot products could wrap.
        if dim == 0 || dim > 60_000 || items.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let n = items.len() / dim;
        let dim4 = dim.div_ceil(4);
        let blocks = n.div_ceil(BLOCK);
        let mut rows = vec![QRow([128; 64]); blocks * dim4];
        let mut scale = vec![Row([0.0; BLOCK]); blocks];
        let mut norm = vec![Row([0.0; BLOCK]); blocks];
        let mut resid = vec![Row([0.0; BLOCK]); blocks];
        let mut vh = vec![0i8; dim];
        for (i, v) in items.chunks_exact(dim).enumerate() {
            let (b, lane) = (i / BLOCK, i % BLOCK);
            let s = quantize(v, &mut vh)?;
            let (nv, ev, _) = norms(v, s, &vh);
            let (nv, ev) = (up(nv), up(ev));
            if !nv.is_finite() || !ev.is_finite() {
                return None;
            }
            scale[b].0[lane] = s;
            norm[b].0[lane] = nv;
            resid[b].0[lane] = ev;
            for (d, &q) in vh.iter().enumerate() {
                rows[b * dim4 + d / 4].0[lane * 4 + d % 4] = (i16::from(q) + 128) as u8;
            }
        }
        Some(Int8Items {
            dim,
            dim4,
            n,
            rows,
            scale,
            norm,
            resid,
        })
    }

    fn blocks(&self) -> usize {
        self.scale.len()
    }
}

/// A quantised query with its error coefficients.
#[derive(Debug, Clone)]
struct QQuery {
    /// Where its `dim4` words (`q̂` in groups of 4 bytes, little-endian, zero-padded)
    /// start in the scan's shared word buffer.
    off: usize,
    /// `128 · Σ q̂`: the offset the `+128` item encoding adds to every dot product.
    corr: i32,
    /// Coefficient of `‖v‖` in the bound.
    a: f32,
    /// Coefficient of `‖v − s_v v̂‖` in the bound.
    b: f32,
    /// Absolute slack (underflow).
    c: f32,
    /// The query's scale `s_q` (thresholds `l` are in its units).
    s: f32,
    /// `‖q‖`.
    norm: f64,
}

impl QQuery {
    /// `None` for a query the bound cannot cover (zero or non-finite).
    /// Appends the query's words to `words` (`qh` is a work buffer).
    #[inline(always)]
    fn new(q: &[f32], dim4: usize, words: &mut Vec<i32>, qh: &mut Vec<i8>) -> Option<Self> {
        if q.iter().any(|x| !x.is_finite()) {
            return None;
        }
        qh.clear();
        qh.resize(dim4 * 4, 0);
        let s = quantize(q, &mut qh[..q.len()])?;
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        let (nq, eq, nqh) = norms(q, s, qh);
        let d = q.len() as f64;
        // The f32 chain's rounding (γ_d · ‖q‖‖v‖), the rounding of `a` (a few u ·
        // ‖s_q q̂‖‖s_v v̂‖ ≤ … (‖v‖ + ‖v − s_v v̂‖)) and of the bound arithmetic itself,
        // all generously rounded up: a few parts per million of ‖q‖‖v‖.
        let slack = (d + 16.0) * 2.0 * U * (nq + nqh + eq);
        // Approximate scores are kept in units of `s_q` (one multiply less per score),
        // so the coefficients are too.
        let sq = f64::from(s);
        let a = up((eq + slack) * (1.0 + 1e-6) / sq);
        let b = up((nqh + slack) * (1.0 + 1e-6) / sq);
        if !a.is_finite() || !b.is_finite() {
            return None;
        }
        let off = words.len();
        words.extend(
            qh.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])),
        );
        let corr = 128 * qh.iter().map(|&x| i32::from(x)).sum::<i32>();
        // Subnormal products round to multiples of the smallest subnormal. Never
        // below the smallest normal `f32`: a subnormal operand makes every bound's
        // fma take a microcode assist on Intel cores (about 100 cycles; the whole
        // batched scan ran 5–10× slower), and a larger slack only loosens the bound.
        let c =
            up((f64::from(f32::from_bits(1)) * (d + 8.0) * 4.0 / sq)
                .max(f64::from(f32::MIN_POSITIVE)));
        Some(QQuery {
            off,
            corr,
            a,
            b,
            c,
            s,
            norm: nq,
        })
    }
}

/// Per-query selection state across chunks.
struct State<'a> {
    q: QQuery,
    adm: Admissible<'a>,
    k: usize,
    /// At least `k` admissible items have a lower bound `≥ l`.
    l: f32,
    /// Exactly scored candidates as [`key`]s (ascending = rank order), cut back to
    /// the best `k` when they pile up.
    keys: Vec<u64>,
    /// The answer, when the catalogue is one chunk (finished in place, no `keys`).
    result: Option<Vec<Hit>>,
    /// Item number of each position, when the items are stored permuted (IVF lists).
    ids: Option<&'a [u32]>,
    /// With `ids`: the best `k` exactly scored candidates as [`key`]s, worst on top.
    best: std::collections::BinaryHeap<u64>,
}

impl<'a> State<'a> {
    fn new(q: QQuery, adm: Admissible<'a>, k: usize, ids: Option<&'a [u32]>) -> Self {
        State {
            q,
            adm,
            k,
            l: f32::NEG_INFINITY,
            keys: Vec::new(),
            result: None,
            ids,
            best: std::collections::BinaryHeap::with_capacity(if ids.is_some() { k } else { 0 }),
        }
    }

    /// `kth`, the exact k-th best score of `k` admissible items already scored, is a
    /// proven lower bound on the final k-th score: it bounds the candidates of later
    /// chunks (a chunk's own lower bounds cannot when it holds fewer than `k` items:
    /// small IVF lists, large `k`). Raises `l` to it, in units of `s_q`, rounded down.
    fn raise(&mut self, kth: f32) {
        let kth = f64::from(kth) / f64::from(self.q.s);
        let l = (kth - kth.abs() * 1e-6) as f32;
        // `as` rounds to nearest: step down once more if that rounded up.
        let l = if f64::from(l) > kth { l.next_down() } else { l };
        if l > self.l {
            self.l = l;
        }
    }
}

/// Sort key of a hit: ascending order is rank order (higher score first, then lower
/// item). `score` must not be NaN.
#[inline(always)]
pub(crate) fn key(score: f32, item: u32) -> u64 {
    let bits = (score + 0.0).to_bits(); // -0 → +0
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    (u64::from(!ordered) << 32) | u64::from(item)
}

/// Inverse of [`key`].
pub(crate) fn unkey(k: u64) -> Hit {
    let ordered = !((k >> 32) as u32);
    let bits = if ordered >> 31 == 1 {
        ordered & 0x7FFF_FFFF
    } else {
        !ordered
    };
    Hit {
        item: k as u32,
        score: f32::from_bits(bits),
    }
}

/// The best `k` of `keys` (distinct: each holds its item), best first. Reorders
/// `keys`.
///
/// # Safety
/// On x86-64 the CPU must have AVX-512F and POPCNT (as [`available`] checks): a few
/// dozen keys are ranked with AVX-512 code.
unsafe fn finish(keys: &mut [u64], k: usize) -> Vec<Hit> {
    let n = keys.len();
    if n <= 64 {
        // A few dozen candidates, in item order: place each at its rank (the number
        // of smaller keys), branch-free, instead of an insertion sort that
        // mispredicts on every shift.
        let mut out = vec![
            Hit {
                item: 0,
                score: 0.0
            };
            n.min(k)
        ];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX-512F and POPCNT (this function's contract).
        unsafe {
            x86::place_by_rank(keys, &mut out)
        };
        #[cfg(not(target_arch = "x86_64"))]
        for &x in keys.iter() {
            let rank = keys.iter().filter(|&&y| y < x).count();
            if rank < out.len() {
                out[rank] = unkey(x);
            }
        }
        return out;
    }
    keys.sort_unstable();
    keys[..k.min(n)].iter().map(|&x| unkey(x)).collect()
}

/// Per-chunk work buffers, shared by the queries of a scan.
#[derive(Default)]
struct Bufs {
    maxima: Vec<f32>,
    keys: Vec<u64>,
    cand: Vec<u32>,
    scores: Vec<f32>,
}

/// The exact top-`k` of every query of `queries` (`m × dim`) whose filter is not an
/// allow-list; `None` for a query the int8 path does not take (the caller runs it
/// through the f32 kernel). Requires [`available`].
pub(crate) fn search<'a>(
    t: &Int8Items,
    items: &[f32],
    queries: &[f32],
    adms: Vec<Admissible<'a>>,
    k: usize,
) -> Vec<Option<Vec<Hit>>> {
    assert!(available() && k > 0);
    // SAFETY: `available()` asserted above: the target features are present.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::search(t, items, queries, adms, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("available() is false off x86_64")
}

/// A run of stored positions scanned by [`search_ranges`]: blocks `blocks` (of 16
/// positions), of which positions `< valid_end` hold items (the rest is padding).
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) blocks: std::ops::Range<usize>,
    pub(crate) valid_end: usize,
    /// The largest `‖v‖` of its items, rounded up: the range is skipped when
    /// `‖q‖ · max_norm` (plus rounding) is below the k-th best score already proven.
    pub(crate) max_norm: f32,
    /// An upper bound, for the current query, on the `f32` score of every item of the
    /// range (rounding included), or `+inf`: the range is skipped when it is below the
    /// k-th best score already proven (an IVF list's centre bound).
    pub(crate) bound: f64,
    /// The items are stored by decreasing norm: the scan stops inside the range, chunk
    /// by chunk, once `‖q‖ ·` the next item's norm cannot reach the proven k-th score.
    pub(crate) sorted: bool,
}

/// Blocks per chunk inside a range sorted by norm (the granularity of the early stop).
const SORTED_CHUNK_BLOCKS: usize = 4;

/// Exact `f32` scores of the rows `which` of `items` (`n × dim`) against `q`, each the
/// same serial fma chain as every kernel (so they match a full scan bit for bit),
/// appended to `out` in the order of `which`. Fast (eight chains at a time) when the
/// CPU has FMA.
pub(crate) fn exact_scores(
    items: &[f32],
    dim: usize,
    q: &[f32],
    which: &[u32],
    out: &mut Vec<f32>,
) {
    assert_eq!(q.len(), dim);
    assert!(which.iter().all(|&i| (i as usize + 1) * dim <= items.len()));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: FMA is present; rows `which` lie inside `items` (asserted above).
        unsafe { x86::exact_chains_fma(items, dim, q, which, out) };
        return;
    }
    out.clear();
    out.extend(which.iter().map(|&i| {
        let row = &items[i as usize * dim..(i as usize + 1) * dim];
        row.iter()
            .zip(q)
            .fold(0f32, |s, (&x, &y)| crate::kernel::fused(y, x, s))
    }));
}

/// The exact top-`k` of one query over the items in `ranges` only (an IVF probe):
/// `t` and `items` hold the items at permuted positions, `ids[p]` is the item number
/// at position `p`, `adm` excludes positions (sorted ascending). The hits carry item
/// numbers. `None` when the query cannot be quantised (the caller scans in `f32`).
/// Requires [`available`].
pub(crate) fn search_ranges(
    t: &Int8Items,
    items: &[f32],
    ids: &[u32],
    query: &[f32],
    adm: Admissible<'_>,
    k: usize,
    ranges: &[Range],
) -> Option<Vec<Hit>> {
    assert!(available() && k > 0);
    assert_eq!(query.len(), t.dim);
    assert_eq!(items.len(), t.n * t.dim);
    assert!(ids.len() >= t.n);
    assert!(ranges
        .iter()
        .all(|r| r.blocks.end <= t.blocks() && r.valid_end <= t.n.min(r.blocks.end * BLOCK)));
    let mut words = Vec::with_capacity(t.dim4);
    let mut qh = Vec::new();
    let q = QQuery::new(query, t.dim4, &mut words, &mut qh)?;
    let mut st = State::new(q, adm, k, Some(ids));
    // SAFETY: `available()` asserted above: the target features are present.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::scan_ranges(t, items, query, &words, &mut st, ranges)
    };
    let mut keys = std::mem::take(&mut st.best).into_vec();
    Some(match st.result.take() {
        Some(hits) => hits,
        // SAFETY: `available()` asserted above: AVX-512F and POPCNT are present.
        None => unsafe { finish(&mut keys, k) },
    })
}

/// [`search`]'s body, inlined into `x86::search` so that the query preparation is
/// compiled for AVX-512 too.
///
/// # Safety
/// [`available`] must hold (the int8 kernel's target features are present).
#[inline(always)]
unsafe fn search_inline<'a>(
    t: &Int8Items,
    items: &[f32],
    queries: &[f32],
    adms: Vec<Admissible<'a>>,
    k: usize,
) -> Vec<Option<Vec<Hit>>> {
    assert_eq!(queries.len(), adms.len() * t.dim);
    assert_eq!(items.len(), t.n * t.dim);
    let mut out: Vec<Option<Vec<Hit>>> = vec![None; adms.len()];
    let mut states = Vec::with_capacity(adms.len());
    let mut which = Vec::with_capacity(adms.len());
    let mut words = Vec::with_capacity(adms.len() * t.dim4);
    let mut qh = Vec::new();
    for (i, (q, adm)) in queries.chunks_exact(t.dim).zip(adms).enumerate() {
        if let Some(q) = QQuery::new(q, t.dim4, &mut words, &mut qh) {
            states.push(State::new(q, adm, k, None));
            which.push(i);
        }
    }
    if t.n > 0 && !states.is_empty() {
        let qs: Vec<&[f32]> = which
            .iter()
            .map(|&i| &queries[i * t.dim..(i + 1) * t.dim])
            .collect();
        // SAFETY: the caller guarantees `available()`: the target features are present.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::scan(t, items, &qs, &words, &mut states)
        };
    }
    for (i, s) in which.into_iter().zip(states) {
        let mut s = s;
        out[i] = Some(match s.result.take() {
            Some(hits) => hits,
            // SAFETY: the caller guarantees `available()`, which includes AVX-512F and
            // POPCNT.
            None => unsafe { finish(&mut s.keys, k) },
        });
    }
    out
}

/// Sets padding lanes (from `valid` on) and the excluded items of a chunk to `-inf`
/// (an exclusion list holds positions; a bitmap holds items, found through `ids` when
/// the items are stored permuted).
fn mask_chunk(
    adm: &mut Admissible<'_>,
    scores: &mut [f32],
    start: u32,
    valid: usize,
    ids: Option<&[u32]>,
) {
    for s in &mut scores[valid..] {
        *s = f32::NEG_INFINITY;
    }
    if let Some(b) = adm.bitmap() {
        crate::select::mask_bitmap(b, &mut scores[..valid], start, ids);
        return;
    }
    let list = adm.excluded();
    let end = u64::from(start) + valid as u64;
    let mut c = adm.cursor();
    while c < list.len() && list[c] < start {
        c += 1;
    }
    while c < list.len() && u64::from(list[c]) < end {
        scores[(list[c] - start) as usize] = f32::NEG_INFINITY;
        c += 1;
    }
    adm.set_cursor(c);
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(all(test, target_arch = "x86_64"))]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests;
