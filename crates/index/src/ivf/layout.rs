//! Building an IVF index's lists: k-means centres, each item's list (the head list of
//! the largest norms included), and the stored layout — lists one after the other,
//! each padded to whole blocks of 16 and sorted by decreasing norm, so that a scan
//! can stop inside a list once the norms left cannot reach the k-th score.

use shortlist_core::Rng;

use super::IvfParams;
use crate::error::Result;
use crate::exact::ExactIndex;
use crate::index_base::{Filter, TopKIndex};
use crate::kernel::BLOCK;
use crate::quant::{up, Range};

/// `‖v‖` in `f64`.
pub(super) fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// The lists of `n` items: k-means lists `0..lists` (`nearest`, each item's nearest
/// centre), then the head (list `lists`): the items of largest norm (ties: the lower
/// item), at most `head_fraction` of them and only those whose norm is at least
/// `head_norm_ratio` times the median norm (outliers of norm, which rank high for many
/// queries wherever their list lies; a catalogue without such outliers gets no head,
/// which every query would pay for). `norms`: each item's `‖v‖`. Returns the
/// assignment and the head's size.
pub(super) fn with_head(
    norms: &[f64],
    lists: usize,
    mut assign: Vec<u32>,
    head_fraction: f64,
    head_norm_ratio: f64,
) -> (Vec<u32>, usize) {
    let n = norms.len();
    let head = ((n as f64 * head_fraction).round() as usize).min(n);
    let mut len = 0;
    if head > 0 {
        let mut sorted = norms.to_vec();
        let (_, &mut median, _) = sorted.select_nth_unstable_by(n / 2, f64::total_cmp);
        let floor = median * head_norm_ratio;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.select_nth_unstable_by(head - 1, |&a, &b| {
            norms[b as usize]
                .total_cmp(&norms[a as usize])
                .then(a.cmp(&b))
        });
        for &i in order[..head]
            .iter()
            .filter(|&&i| norms[i as usize] >= floor)
        {
            assign[i as usize] = lists as u32;
            len += 1;
        }
    }
    (assign, len)
}

/// The stored form of the lists.
pub(super) struct Layout {
    /// Per list (the head last): its blocks, where its padding starts, its largest
    /// norm; `bound` `+inf` and `sorted` set.
    pub(super) ranges: Vec<Range>,
    /// Per k-means list: the largest `‖v − c‖` of its items, rounded up.
    pub(super) radius: Vec<f32>,
    /// `positions × dim`, the items list after list (padding rows are zero).
    pub(super) items: Vec<f32>,
    /// Item number at each stored position (`u32::MAX` for padding).
    pub(super) ids: Vec<u32>,
    /// Stored position of each item.
    pub(super) pos: Vec<u32>,
}

/// Lays out `items` (`n × dim`) in the lists `assign` gives (`assign[i] ≤ lists`, the
/// head being list `lists`), each list by decreasing norm (ties: the lower item).
pub(super) fn lay_out(items: &[f32], dim: usize, centroids: &[f32], assign: &[u32]) -> Layout {
    let n = items.len() / dim;
    let lists = centroids.len() / dim;
    let norms: Vec<f64> = items.chunks_exact(dim).map(norm).collect();
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); lists + 1];
    for (i, &l) in assign.iter().enumerate() {
        members[l as usize].push(i as u32);
    }
    let mut radius = vec![0f32; lists];
    for (l, m) in members.iter_mut().enumerate() {
        m.sort_by(|&a, &b| {
            norms[b as usize]
                .total_cmp(&norms[a as usize])
                .then(a.cmp(&b))
        });
        if l < lists {
            let c = &centroids[l * dim..(l + 1) * dim];
            let r = m
                .iter()
                .map(|&i| {
                    let v = &items[i as usize * dim..(i as usize + 1) * dim];
                    v.iter()
                        .zip(c)
                        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .fold(0f64, f64::max);
            // A relative 1e-6 covers the f64 arithmetic above.
            radius[l] = up(r * (1.0 + 1e-6));
        }
    }
    let mut ranges = Vec::with_capacity(lists + 1);
    let mut block = 0usize;
    for m in &members {
        let blocks = m.len().div_ceil(BLOCK);
        ranges.push(Range {
            blocks: block..block + blocks,
            valid_end: block * BLOCK + m.len(),
            max_norm: m.first().map_or(0.0, |&i| up(norms[i as usize])),
            bound: f64::INFINITY,
            sorted: true,
        });
        block += blocks;
    }
    let positions = block * BLOCK;
    let mut permuted = vec![0f32; positions * dim];
    let mut ids = vec![u32::MAX; positions];
    let mut pos = vec![0u32; n];
    for (m, r) in members.iter().zip(&ranges) {
        for (j, &i) in m.iter().enumerate() {
            let p = r.blocks.start * BLOCK + j;
            permuted[p * dim..(p + 1) * dim]
                .copy_from_slice(&items[i as usize * dim..(i as usize + 1) * dim]);
            ids[p] = i;
            pos[i as usize] = p as u32;
        }
    }
    Layout {
        ranges,
        radius,
        items: permuted,
        ids,
        pos,
    }
}

/// k-means (L2) centres of a seeded sample of `items`: `lists × dim`.
pub(super) fn kmeans(
    items: &[f32],
    dim: usize,
    lists: usize,
    params: &IvfParams,
) -> Result<Vec<f32>> {
    let n = items.len() / dim;
    if n == 0 {
        return Ok(vec![0.0; dim]);
    }
    let mut rng = Rng::new(params.seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    order.truncate(lists.saturating_mul(params.sample_per_list).max(lists));
    let sample: Vec<f32> = order
        .iter()
        .flat_map(|&i| &items[i as usize * dim..(i as usize + 1) * dim])
        .copied()
        .collect();
    let m = order.len();
    // Initial centres: the first `lists` sampled items (a random subset).
    let mut centroids = sample[..lists * dim].to_vec();
    for _ in 0..params.iterations {
        let assign = nearest(&sample, dim, &centroids)?;
        let mut sum = vec![0f64; lists * dim];
        let mut count = vec![0usize; lists];
        for (v, &l) in sample.chunks_exact(dim).zip(&assign) {
            count[l as usize] += 1;
            for (s, &x) in sum[l as usize * dim..(l as usize + 1) * dim]
                .iter_mut()
                .zip(v)
            {
                *s += f64::from(x);
            }
        }
        for l in 0..lists {
            let c = &mut centroids[l * dim..(l + 1) * dim];
            if count[l] == 0 {
                // An empty list restarts from a random sampled item.
                let r = rng.below(m as u64) as usize;
                c.copy_from_slice(&sample[r * dim..(r + 1) * dim]);
            } else {
                for (c, s) in c.iter_mut().zip(&sum[l * dim..(l + 1) * dim]) {
                    *c = (s / count[l] as f64) as f32;
                }
            }
        }
    }
    Ok(centroids)
}

/// The nearest centre (L2; ties: the lower list) of every row of `data`, through the
/// exact index: `argmin ‖v − c‖² = argmax v·c − ‖c‖²/2`.
pub(super) fn nearest(data: &[f32], dim: usize, centroids: &[f32]) -> Result<Vec<u32>> {
    nearest_with(&centre_index(dim, centroids)?, data, dim)
}

/// The exact index [`nearest`] searches: each centre `c` as `[c, −‖c‖²/2]`.
pub(super) fn centre_index(dim: usize, centroids: &[f32]) -> Result<ExactIndex> {
    let aug: Vec<f32> = centroids
        .chunks_exact(dim)
        .flat_map(|c| {
            let half = c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / 2.0;
            c.iter().copied().chain([-half as f32])
        })
        .collect();
    ExactIndex::new(aug, dim + 1)
}

/// [`nearest`] through a [`centre_index`] made once.
pub(super) fn nearest_with(index: &ExactIndex, data: &[f32], dim: usize) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(data.len() / dim);
    for chunk in data.chunks(65_536 * dim) {
        let queries: Vec<f32> = chunk
            .chunks_exact(dim)
            .flat_map(|v| v.iter().copied().chain([1.0]))
            .collect();
        let hits = index.search_batch(&queries, 1, &|_| Filter::None)?;
        out.extend(hits.iter().map(|h| h.first().map_or(0, |h| h.item)));
    }
    Ok(out)
}
