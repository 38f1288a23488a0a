//! The int8 path's AVX-512 VNNI code: the scans, the tiles, the candidate selection and
//! the exact rescoring, every function compiled for the features `available` checked.
//! Kept apart from `quant.rs`, which holds the layout, the bounds and the safe entry
//! points, so that the intrinsics and their `SAFETY` arguments read in one place.

use super::*;
use std::arch::x86_64::*;

thread_local! {
    /// Approximate-score chunks and work buffers of the current thread (as in
    /// `kernel`), reused across calls.
    static SCRATCH: std::cell::RefCell<(Vec<Row>, Bufs)> =
        std::cell::RefCell::new((Vec::new(), Bufs::default()));
}

/// [`super::search`] compiled for the int8 kernel's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,popcnt")]
pub(super) fn search<'a>(
    t: &Int8Items,
    items: &[f32],
    queries: &[f32],
    adms: Vec<Admissible<'a>>,
    k: usize,
) -> Vec<Option<Vec<Hit>>> {
    // SAFETY: this function is compiled for the int8 kernel's features and entered
    // only through `super::search`, which asserts `available()`.
    unsafe { search_inline(t, items, queries, adms, k) }
}

/// All queries in groups of 8 (then 4, 2, 1), chunk by chunk.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,popcnt")]
pub(super) fn scan(
    t: &Int8Items,
    items: &[f32],
    qs: &[&[f32]],
    words: &[i32],
    states: &mut [State<'_>],
) {
    let chunk = CHUNK_BLOCKS.min(t.blocks());
    let (mut scratch, mut bufs) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let need = states.len().min(8) * chunk;
    if scratch.len() < need {
        scratch.resize(need, Row([0.0; BLOCK]));
    }
    let m = states.len();
    let mut q0 = 0;
    while q0 < m {
        let left = m - q0;
        let (s, q) = (&mut states[q0..], &qs[q0..]);
        let used = if left >= 8 {
            group::<8>(t, items, q, words, s, &mut scratch, &mut bufs)
        } else if left >= 4 {
            group::<4>(t, items, q, words, s, &mut scratch, &mut bufs)
        } else if left >= 2 {
            group::<2>(t, items, q, words, s, &mut scratch, &mut bufs)
        } else {
            group::<1>(t, items, q, words, s, &mut scratch, &mut bufs)
        };
        q0 += used;
    }
    SCRATCH.with(|s| *s.borrow_mut() = (scratch, bufs));
}

/// One query over the blocks of `ranges`, each cut into chunks (see
/// [`super::search_ranges`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,popcnt")]
pub(super) fn scan_ranges(
    t: &Int8Items,
    items: &[f32],
    query: &[f32],
    words: &[i32],
    st: &mut State<'_>,
    ranges: &[Range],
) {
    let (mut scratch, mut bufs) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if scratch.len() < CHUNK_BLOCKS {
        scratch.resize(CHUNK_BLOCKS, Row([0.0; BLOCK]));
    }
    let words: [&[i32]; 1] = [&words[..t.dim4]];
    let corr = [st.q.corr];
    // `fl(q·v) ≤ ‖q‖‖v‖ (1 + γ_d)`: a range whose bound is below the proven k-th
    // score (`l · s_q`, shaved by a relative 1e-6 for its own rounding) cannot
    // hold a result (ties included: the comparison is strict).
    let slack = 1.0 + (t.dim as f64 + 4.0) * 2.0 * U;
    let proven = |st: &State<'_>| {
        let p = f64::from(st.l) * f64::from(st.q.s);
        p - p.abs() * 1e-6
    };
    for r in ranges {
        if (st.q.norm * f64::from(r.max_norm) * slack).min(r.bound) < proven(st) {
            continue;
        }
        let start = (r.blocks.start * BLOCK) as u32;
        // Ranges come in any order: re-seek the exclusion cursor.
        let c = st.adm.excluded().partition_point(|&x| x < start);
        st.adm.set_cursor(c);
        let step = if r.sorted {
            SORTED_CHUNK_BLOCKS
        } else {
            CHUNK_BLOCKS
        };
        for cb in r.blocks.clone().step_by(step) {
            // Sorted by norm: the first item of the chunk has the largest norm of
            // the rest of the range.
            if r.sorted
                && cb > r.blocks.start
                && st.q.norm * f64::from(t.norm[cb].0[0]) * slack < proven(st)
            {
                break;
            }
            let end = r.blocks.end.min(cb + step);
            let mut b = cb;
            while b + 4 <= end {
                // SAFETY: features enabled; `b + 4 ≤ end ≤ blocks` (asserted by
                // the caller); scratch holds `CHUNK_BLOCKS ≥ end - cb` rows.
                unsafe { tile::<1, 4>(t, &words, &corr, &mut scratch, CHUNK_BLOCKS, cb, b) };
                b += 4;
            }
            while b < end {
                // SAFETY: as above with one block.
                unsafe { tile::<1, 1>(t, &words, &corr, &mut scratch, CHUNK_BLOCKS, cb, b) };
                b += 1;
            }
            let valid = r.valid_end.min(end * BLOCK).saturating_sub(cb * BLOCK);
            let rows = &mut scratch[..end - cb];
            select(t, items, query, st, &mut bufs, rows, cb, valid);
        }
    }
    SCRATCH.with(|s| *s.borrow_mut() = (scratch, bufs));
}

/// `Q` queries over all items; returns `Q`.
#[inline(always)]
fn group<const Q: usize>(
    t: &Int8Items,
    items: &[f32],
    qs: &[&[f32]],
    words: &[i32],
    states: &mut [State<'_>],
    scratch: &mut [Row],
    bufs: &mut Bufs,
) -> usize {
    let nb = t.blocks();
    let chunk = CHUNK_BLOCKS.min(nb);
    assert!(states.len() >= Q && qs.len() >= Q && scratch.len() >= Q * chunk);
    let words: [&[i32]; Q] =
        std::array::from_fn(|q| &words[states[q].q.off..states[q].q.off + t.dim4]);
    let corr: [i32; Q] = std::array::from_fn(|q| states[q].q.corr);
    for cb in (0..nb).step_by(chunk) {
        let end = nb.min(cb + chunk);
        let mut b = cb;
        // One query alone: four blocks per tile, for independent accumulators.
        while Q == 1 && b + 4 <= end {
            // SAFETY: as below with four blocks.
            unsafe { tile::<Q, 4>(t, &words, &corr, scratch, chunk, cb, b) };
            b += 4;
        }
        while b + 2 <= end {
            // SAFETY: features enabled (caller); `b + 2 ≤ nb`, scratch holds `Q`
            // chunks of `chunk ≥ end - cb` rows (asserted above).
            unsafe { tile::<Q, 2>(t, &words, &corr, scratch, chunk, cb, b) };
            b += 2;
        }
        if b < end {
            // SAFETY: as above with one block.
            unsafe { tile::<Q, 1>(t, &words, &corr, scratch, chunk, cb, b) };
        }
        let valid = t.n.min(end * BLOCK) - cb * BLOCK;
        for q in 0..Q {
            let rows = &mut scratch[q * chunk..q * chunk + (end - cb)];
            select(t, items, qs[q], &mut states[q], bufs, rows, cb, valid);
        }
    }
    Q
}

/// Approximate scores of `Q` queries × the `NB` blocks from `b`, to scratch.
///
/// # Safety
/// AVX-512 F/BW/VNNI must be enabled; `b + NB ≤ blocks`, `cb ≤ b`,
/// `b + NB - cb ≤ chunk` and `scratch.len() ≥ Q · chunk`; every `words[q]` holds
/// `dim4` words.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<const Q: usize, const NB: usize>(
    t: &Int8Items,
    words: &[&[i32]; Q],
    corr: &[i32; Q],
    scratch: &mut [Row],
    chunk: usize,
    cb: usize,
    b: usize,
) {
    let dim4 = t.dim4;
    debug_assert!(b + NB <= t.blocks() && b >= cb && b + NB - cb <= chunk);
    debug_assert!(scratch.len() >= Q * chunk && words.iter().all(|w| w.len() == dim4));
    let rows = t.rows.as_ptr();
    let out = scratch.as_mut_ptr();
    // SAFETY: row `(b + v) · dim4 + d4` exists for `v < NB`, `d4 < dim4` (caller's
    // `b + NB ≤ blocks`); `QRow` is 64-byte aligned for the aligned loads; word
    // `d4` of each query exists; stores go to row `q · chunk + b + v - cb` of
    // scratch, below `Q · chunk`; scale rows `b + v` exist.
    unsafe {
        // Starting from `-128 · Σ q̂` removes the `+128` of the item encoding.
        let mut acc: [[__m512i; NB]; Q] =
            std::array::from_fn(|q| [_mm512_set1_epi32(corr[q].wrapping_neg()); NB]);
        for d4 in 0..dim4 {
            let x: [__m512i; NB] = std::array::from_fn(|v| {
                _mm512_load_si512(rows.add((b + v) * dim4 + d4).cast::<__m512i>())
            });
            for q in 0..Q {
                let s = _mm512_set1_epi32(*words[q].get_unchecked(d4));
                for v in 0..NB {
                    acc[q][v] = _mm512_dpbusd_epi32(acc[q][v], x[v], s);
                }
            }
        }
        for q in 0..Q {
            for v in 0..NB {
                let sv = _mm512_load_ps(t.scale.as_ptr().add(b + v).cast::<f32>());
                // In units of `s_q` (the bound coefficients are divided by it too).
                let a = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[q][v]), sv);
                _mm512_store_ps(out.add(q * chunk + b + v - cb).cast::<f32>(), a);
            }
        }
    }
}

/// Writes `unkey(x)` to `out[rank(x)]` for every key of rank `< out.len()`, the
/// rank being the number of smaller keys (`keys.len() ≤ 64`, distinct).
///
/// # Safety
/// AVX-512 F must be enabled.
#[target_feature(enable = "avx512f,popcnt")]
pub(super) fn place_by_rank(keys: &[u64], out: &mut [Hit]) {
    debug_assert!(keys.len() <= 64);
    let mut vals = [u64::MAX; 64];
    vals[..keys.len()].copy_from_slice(keys);
    let groups = keys.len().div_ceil(8);
    // SAFETY: loads of 8 u64 at offsets `8 · g < 64`.
    unsafe {
        let v: [__m512i; 8] =
            std::array::from_fn(|g| _mm512_loadu_si512(vals.as_ptr().add(8 * g).cast()));
        for &x in keys {
            let bx = _mm512_set1_epi64(x as i64);
            let mut rank = 0u32;
            for vg in v.iter().take(groups) {
                rank += _mm512_cmplt_epu64_mask(*vg, bx).count_ones();
            }
            if let Some(slot) = out.get_mut(rank as usize) {
                *slot = unkey(x);
            }
        }
    }
}

/// The `k`-th largest of `m` (`k ≤ len ≤ 64`, a multiple of 16, no NaN): the
/// largest value with at least `k` values `≥` it. Counts for all values at once
/// (one broadcast compare per value), then a masked maximum.
///
/// # Safety
/// AVX-512 F must be enabled.
#[inline(always)]
unsafe fn kth_largest_simd(m: &[f32], k: usize) -> f32 {
    debug_assert!(m.len().is_multiple_of(BLOCK) && (1..=4).contains(&(m.len() / BLOCK)));
    let g = m.len() / BLOCK;
    // SAFETY: loads of 16 floats at offsets `16 · i < m.len()`.
    unsafe {
        let vals: [__m512; 4] = std::array::from_fn(|i| {
            if i < g {
                _mm512_loadu_ps(m.as_ptr().add(i * BLOCK))
            } else {
                _mm512_set1_ps(f32::NEG_INFINITY)
            }
        });
        let one = _mm512_set1_epi32(1);
        let mut count = [_mm512_setzero_si512(); 4];
        for &v in m {
            let vb = _mm512_set1_ps(v);
            for i in 0..g {
                let ge = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(vals[i], vb);
                count[i] = _mm512_mask_add_epi32(count[i], ge, count[i], one);
            }
        }
        let kv = _mm512_set1_epi32(k as i32);
        let mut best = f32::NEG_INFINITY;
        for i in 0..g {
            let ok = _mm512_cmpge_epi32_mask(count[i], kv);
            best = best.max(_mm512_mask_reduce_max_ps(ok, vals[i]));
        }
        best
    }
}

/// Exact scores of the candidates, each the serial chain `s = fma(q[d], x[d], s)`
/// from 0 (as every kernel computes it): scalar fmas, eight independent chains at
/// a time (a short last group repeats its last item, scored and dropped) — on
/// this hardware cheaper than 16-lane gathers or scoring whole packed blocks.
///
/// # Safety
/// FMA must be enabled; `items` is `n × dim`, every id is `< n`, `q.len() == dim`.
#[inline(always)]
unsafe fn exact_chains(items: &[f32], dim: usize, q: &[f32], ids: &[u32], out: &mut Vec<f32>) {
    debug_assert!(ids.iter().all(|&i| (i as usize + 1) * dim <= items.len()));
    out.clear();
    let base = items.as_ptr();
    for g in ids.chunks(8) {
        let last = g.len() - 1;
        // SAFETY (whole block): row `g[j] · dim` starts inside `items` and `d < dim`
        // stays inside the row (contract).
        unsafe {
            let rows: [*const f32; 8] =
                std::array::from_fn(|j| base.add(g[j.min(last)] as usize * dim));
            // Scalar `vfmadd231ss` on purpose: left to itself the compiler turns the
            // eight chains into one vector fma fed by gathers, slow on this CPU.
            let mut acc = [_mm_setzero_ps(); 8];
            for (d, &qd) in q.iter().enumerate() {
                let qv = _mm_set_ss(qd);
                for j in 0..8 {
                    // One `vfmadd231ss` with a memory operand: the intrinsic's
                    // upper-lane semantics cost a blend or permute per fma.
                    std::arch::asm!(
                        "vfmadd231ss {acc}, {q}, dword ptr [{p}]",
                        acc = inout(xmm_reg) acc[j],
                        q = in(xmm_reg) qv,
                        p = in(reg) rows[j].add(d),
                        options(pure, readonly, nostack, preserves_flags),
                    );
                }
            }
            let s: [f32; 8] = std::array::from_fn(|j| _mm_cvtss_f32(acc[j]));
            out.extend_from_slice(&s[..g.len()]);
        }
    }
}

/// [`exact_chains`] for [`super::exact_scores`].
///
/// # Safety
/// FMA must be present; rows `ids` lie inside `items` (`n × dim`), `q.len() == dim`.
#[target_feature(enable = "fma")]
pub(super) unsafe fn exact_chains_fma(
    items: &[f32],
    dim: usize,
    q: &[f32],
    ids: &[u32],
    out: &mut Vec<f32>,
) {
    // SAFETY: the caller's contract is `exact_chains`'.
    unsafe { exact_chains(items, dim, q, ids, out) }
}

/// One query's chunk: mask, bounds, the k-th largest lower bound, candidates, exact
/// scores.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn select(
    t: &Int8Items,
    items: &[f32],
    query: &[f32],
    st: &mut State<'_>,
    bufs: &mut Bufs,
    rows: &mut [Row],
    cb: usize,
    valid: usize,
) {
    let start = (cb * BLOCK) as u32;
    {
        let flat = rows.as_mut_ptr().cast::<f32>();
        // SAFETY: `rows` is `rows.len()` contiguous `[f32; 16]` (`Row` is
        // `repr(C)`), not used while this view lives.
        let flat = unsafe { std::slice::from_raw_parts_mut(flat, rows.len() * BLOCK) };
        mask_chunk(&mut st.adm, flat, start, valid, st.ids);
    }
    let k = st.k;
    // Lower bounds' maxima over `groups` disjoint row ranges × 16 lanes (≥ 2k
    // distinct items), upper bounds stored in place of the scores.
    let groups = k.saturating_mul(2).div_ceil(BLOCK).max(1).min(rows.len());
    let per = rows.len().div_ceil(groups).max(1);
    let maxima = &mut bufs.maxima;
    maxima.clear();
    // SAFETY: features enabled (caller); loads/stores of 16 floats at 64-byte
    // aligned `Row`s: scratch rows, and the norm rows `cb + r` (< blocks).
    unsafe {
        let (av, bv, cv) = (
            _mm512_set1_ps(st.q.a),
            _mm512_set1_ps(st.q.b),
            _mm512_set1_ps(st.q.c),
        );
        for (g, part) in rows.chunks_mut(per).enumerate() {
            // Per row: `E`, then `lb` into the running maximum and `ub` stored
            // over `a`; `-inf` (masked) stays `-inf` in `lb`. Two maxima chains.
            let bound = |blk: usize, p: *mut f32, mx: __m512| {
                let nv = _mm512_load_ps(t.norm.as_ptr().add(blk).cast::<f32>());
                let ev = _mm512_load_ps(t.resid.as_ptr().add(blk).cast::<f32>());
                let e = _mm512_fmadd_ps(av, nv, _mm512_fmadd_ps(bv, ev, cv));
                let a = _mm512_load_ps(p);
                _mm512_store_ps(p, _mm512_add_ps(a, e));
                _mm512_max_ps(_mm512_sub_ps(a, e), mx)
            };
            let (mut m0, mut m1) = (
                _mm512_set1_ps(f32::NEG_INFINITY),
                _mm512_set1_ps(f32::NEG_INFINITY),
            );
            let base = cb + g * per;
            let last_blk = base + part.len() - 1;
            let mut pairs = part.chunks_exact_mut(2);
            for (j, pair) in (&mut pairs).enumerate() {
                m0 = bound(base + 2 * j, pair[0].0.as_mut_ptr(), m0);
                m1 = bound(base + 2 * j + 1, pair[1].0.as_mut_ptr(), m1);
            }
            if let [last] = pairs.into_remainder() {
                m0 = bound(last_blk, last.0.as_mut_ptr(), m0);
            }
            let mut m = [0f32; BLOCK];
            _mm512_storeu_ps(m.as_mut_ptr(), _mm512_max_ps(m0, m1));
            maxima.extend_from_slice(&m);
        }
    }
    let t_k = if maxima.len() >= k && maxima.len() <= 4 * BLOCK {
        // SAFETY: features enabled (caller).
        unsafe { kth_largest_simd(maxima, k) }
    } else if maxima.len() >= k {
        let (_, &mut t, _) = maxima.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        t
    } else {
        f32::NEG_INFINITY
    };
    if t_k > st.l {
        st.l = t_k;
    }
    let cand = &mut bufs.cand;
    cand.clear();
    // SAFETY: as above.
    unsafe {
        // Only masked lanes (excluded, padding) have `ub = -inf` or NaN
        // (`-inf + inf`): an admissible item's `a` and `E` are finite, so
        // `ub ≥ max(L, -MAX)` keeps exactly the admissible candidates.
        let lv = _mm512_set1_ps(st.l.max(f32::MIN));
        cand.reserve(rows.len() * BLOCK);
        let dst = cand.as_mut_ptr();
        let mut len = 0usize;
        debug_assert!(rows.len() <= CHUNK_BLOCKS);
        // Masks of all rows first (independent compares), then the item numbers
        // of the set bits, 64 lanes (4 rows) per word: few words have any, and a
        // compress-and-store per row costs more than the branch on the word.
        let mut masks = [0u64; CHUNK_BLOCKS / 4];
        // Row `r`'s 16 lanes are bits `16 (r % 4) ..` of word `r / 4` (little
        // endian); `r < CHUNK_BLOCKS` keeps the `u16` writes inside `masks`.
        let m16 = masks.as_mut_ptr().cast::<u16>();
        for (r, row) in rows.iter().enumerate() {
            *m16.add(r) = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_load_ps(row.0.as_ptr()), lv);
        }
        for (w, &word) in masks[..rows.len().div_ceil(4)].iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                *dst.add(len) = start + (w * 64) as u32 + bits.trailing_zeros();
                len += 1;
                bits &= bits - 1;
            }
        }
        // The first `len` entries were written above (at most one per lane of
        // the chunk, within the reserved capacity).
        cand.set_len(len);
    }
    #[cfg(test)]
    CANDS.with(|c| c.set(c.get() + cand.len()));
    // SAFETY: FMA is enabled (caller); candidates are item numbers `< n` and
    // `items` is `n × dim`.
    unsafe { exact_chains(items, t.dim, query, cand, &mut bufs.scores) };
    if let Some(ids) = st.ids {
        // Ranked and returned under their item numbers (ties: lower item first).
        for c in cand.iter_mut() {
            *c = ids[*c as usize];
        }
    }
    if cb == 0 && rows.len() == t.blocks() {
        // The whole catalogue in one chunk: finish now, from a reused buffer.
        bufs.keys.clear();
        bufs.keys.extend(
            cand.iter()
                .zip(&bufs.scores)
                .map(|(&item, &s)| key(sanitize(s), item)),
        );
        // SAFETY: `select` is inlined only into `scan` and `scan_ranges`, compiled for
        // (and entered after the check of) AVX-512F and POPCNT, among others.
        st.result = Some(unsafe { finish(&mut bufs.keys, k) });
        return;
    }
    if st.ids.is_some() {
        // Ranges (an IVF probe): many small chunks, so the best `k` so far are
        // kept in a heap whose worst, once `k` are in, bounds every later chunk.
        for (&item, &s) in cand.iter().zip(&bufs.scores) {
            let x = key(sanitize(s), item);
            if st.best.len() < k {
                st.best.push(x);
            } else if st.best.peek().is_some_and(|&worst| x < worst) {
                if let Some(mut worst) = st.best.peek_mut() {
                    *worst = x;
                }
            }
        }
        if st.best.len() == k {
            if let Some(&worst) = st.best.peek() {
                st.raise(unkey(worst).score);
            }
        }
        return;
    }
    st.keys.extend(
        cand.iter()
            .zip(&bufs.scores)
            .map(|(&item, &s)| key(sanitize(s), item)),
    );
    // Bounded memory over many chunks: keep the best `k`.
    if st.keys.len() > k.saturating_mul(4).max(64) {
        st.keys.select_nth_unstable(k - 1);
        st.keys.truncate(k);
        st.raise(unkey(st.keys[k - 1]).score);
    }
}
