//! Top-k retrieval of a [`ModelSource`]: the popularity fallback, the excluded rows,
//! the index search (or EASE's dense scores) merged with the added items' hits.
//! **Hot**: the served request path's first stage.

use std::sync::Arc;

use shortlist_index::{AnyIndex, Filter, ItemBitmap, IvfIndex, TopKIndex};

use super::{Candidate, ModelSource, Resolved, Retrieved, Scorer, User, UserPath};
use crate::error::{Error, Result};
use crate::live::{Live, LiveList, State};

/// One user's retrieved rows: (item row, score) best first, whether the user id is
/// known to the model, and how the query was built.
pub(super) type RowsRetrieved = (Vec<(u32, f32)>, bool, UserPath);

impl ModelSource {
    /// [`CandidateSource::retrieve`](super::CandidateSource::retrieve), restricted to
    /// `allow` when given: [`ModelSource::retrieve_rows_where`]'s rows as ids.
    pub(super) fn retrieve_where<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
        allow: Option<&ItemBitmap>,
    ) -> Result<Retrieved<'a>> {
        let st = self.live.state();
        let (hits, known_user, path) =
            self.retrieve_rows_where(&st, user, k, exclude_seen, exclude_items, allow)?;
        Ok(Retrieved {
            candidates: hits
                .into_iter()
                .map(|(item, score)| Candidate {
                    item_id: self.item_id(item),
                    score,
                })
                .collect(),
            known_user,
            path,
        })
    }

    /// One user's best `k` (item row, score), whether the id is known, and how the
    /// query was built: the most popular items when nothing personalises
    /// ([`ModelSource::popular_rows`]), else the best rows for the user's query
    /// ([`ModelSource::top_rows`]) outside [`ModelSource::excluded_rows`].
    pub(super) fn retrieve_rows_where(
        &self,
        st: &State,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
        allow: Option<&ItemBitmap>,
    ) -> Result<RowsRetrieved> {
        let excluded_rows: Vec<u32> = exclude_items
            .iter()
            .filter_map(|id| Live::row(st, self, id))
            .collect();
        let r = self.resolve(user);
        if r.path == UserPath::Popular {
            let hits = self.popular_rows(st, excluded_rows, k, allow);
            return Ok((hits, false, UserPath::Popular));
        }
        let exclude = self.excluded_rows(st, &r, user, exclude_seen, &excluded_rows);
        let hits = self.top_rows(st, &r, k, &exclude, allow)?;
        Ok((hits, r.row.is_some(), r.path))
    }

    /// Nothing to personalise with: the most popular item rows (not excluded, retired
    /// or outside `allow`), scored by their share of training interactions.
    pub(super) fn popular_rows(
        &self,
        st: &State,
        mut skip: Vec<u32>,
        k: usize,
        allow: Option<&ItemBitmap>,
    ) -> Vec<(u32, f32)> {
        skip.extend_from_slice(&st.retired);
        skip.sort_unstable();
        let pop = self.popularity();
        self.popular
            .iter()
            .filter(|i| skip.binary_search(i).is_err())
            .filter(|&&i| allow.is_none_or(|a| a.contains(i)))
            .take(k)
            .map(|&i| (i, pop[i as usize] as f32 / self.popularity_total))
            .collect()
    }

    /// The rows a personalised answer leaves out: the OOV rows, the user's seen items
    /// (training and request history) with `exclude_seen`, the request's excluded
    /// items and the retired ones.
    pub(super) fn excluded_rows(
        &self,
        st: &State,
        r: &Resolved,
        user: &User<'_>,
        exclude_seen: bool,
        excluded_rows: &[u32],
    ) -> Vec<u32> {
        let mut exclude: Vec<u32> = (0..self.spec().item_id.num_oov()).collect();
        if exclude_seen {
            exclude.extend_from_slice(&r.rows);
            // Added items among the user's history.
            exclude.extend(user.history.iter().filter_map(|h| st.by_id.get(h.item_id)));
        }
        exclude.extend_from_slice(excluded_rows);
        exclude.extend_from_slice(&st.retired);
        exclude
    }

    /// The best `k` (row, score) for the resolved user outside `exclude` (and inside
    /// `allow`): the index search merged with the added items' hits, or EASE's dense
    /// scores.
    fn top_rows(
        &self,
        st: &State,
        r: &Resolved,
        k: usize,
        exclude: &[u32],
        allow: Option<&ItemBitmap>,
    ) -> Result<Vec<(u32, f32)>> {
        let base = self.num_items() as u32;
        Ok(match &self.scorer {
            Scorer::TwoTower { index, .. } | Scorer::Ials { index, .. } => match self.query(r) {
                Some(q) => {
                    let own = allow.map(|a| {
                        let mut own = ItemBitmap::none(base as usize);
                        for row in a.iter().take_while(|&row| row < base) {
                            own.insert(row);
                        }
                        for &e in exclude.iter().filter(|&&e| e < base) {
                            own.remove(e);
                        }
                        own
                    });
                    let filter = match &own {
                        None => Filter::Exclude(exclude),
                        Some(own) => Filter::AllowBitmap(own),
                    };
                    // Added items in the IVF lists: scan those the search opened.
                    let (mut hits, lists) = match (index, &st.lists) {
                        (AnyIndex::Ivf(ivf), Some(_)) if st.count > 0 => {
                            let (hits, opened) = ivf
                                .search_opened(&q, k, &filter)
                                .map_err(|e| Error::Internal(e.to_string()))?;
                            let hits = hits.into_iter().map(|h| (h.item, h.score)).collect();
                            (hits, Some(LiveLists::from_search(opened)))
                        }
                        _ => (search(index, &q, k, &filter)?, None),
                    };
                    let floor = live_floor(&hits, k);
                    let live = search_live(st, base, lists, floor, &q, k, exclude, allow)?;
                    merge_live(&mut hits, live, k);
                    hits
                }
                None => Vec::new(),
            },
            Scorer::Ease { model } => {
                let mut scores = vec![0f32; model.num_items()];
                model.scores_into(&r.rows, &mut scores);
                for &e in exclude {
                    if let Some(s) = scores.get_mut(e as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
                if let Some(a) = allow {
                    for (i, s) in scores.iter_mut().enumerate() {
                        if !a.contains(i as u32) {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                }
                top_k(&scores, k)
            }
        })
    }
}

/// The model's `hits` and the added items' hits (`live`), merged by score (ties:
/// lower row first), the best `k` kept.
pub(super) fn merge_live(hits: &mut Vec<(u32, f32)>, live: Vec<(u32, f32)>, k: usize) {
    if !live.is_empty() {
        hits.extend(live);
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
    }
}

/// The score an added item must reach to enter the model's best-`k` `hits` (sorted,
/// best first): the `k`-th one's, or `−∞` while there are fewer.
pub(super) fn live_floor(hits: &[(u32, f32)], k: usize) -> f32 {
    match k.checked_sub(1).and_then(|i| hits.get(i)) {
        Some(h) => h.1,
        None => f32::NEG_INFINITY,
    }
}

/// The rows of `exclude` that are live rows of `st` (from `base`), as offsets from
/// `base`.
fn live_offsets<'e>(exclude: &'e [u32], base: u32, st: &State) -> impl Iterator<Item = u32> + 'e {
    let end = base + st.count;
    exclude
        .iter()
        .filter(move |&&e| e >= base && e < end)
        .map(move |&e| e - base)
}

/// Which IVF lists' added rows a query scans.
pub(super) enum LiveLists<'a> {
    /// The lists the model's search opened.
    Opened(Vec<u32>),
    /// Every list (the model's search scored its items one by one).
    All,
    /// Those this index's search for the query would open (when the model's search
    /// was made without saying).
    Ask(&'a IvfIndex),
}

impl LiveLists<'_> {
    /// The lists of an [`IvfIndex::search_opened`] answer.
    pub(super) fn from_search(opened: Option<Vec<u32>>) -> Self {
        opened.map_or(LiveLists::All, LiveLists::Opened)
    }
}

/// The best `k` added items for query `q` (rows from `base`), leaving out rows in
/// `exclude` and, with `allow`, rows it does not hold; items without a vector are
/// never returned. Over the model's IVF index (`lists` given, added items in its
/// lists) only the added rows of the lists `lists` names are scored; otherwise the
/// added items' exact index is searched.
#[allow(clippy::too_many_arguments)] // one search: state, rows, lists, query, filters
pub(super) fn search_live(
    st: &State,
    base: u32,
    lists: Option<LiveLists<'_>>,
    floor: f32,
    q: &[f32],
    k: usize,
    exclude: &[u32],
    allow: Option<&ItemBitmap>,
) -> Result<Vec<(u32, f32)>> {
    if let (Some(by_list), Some(lists)) = (&st.lists, lists) {
        return search_lists(st, by_list, base, lists, floor, q, k, exclude, allow);
    }
    let Some(index) = &st.index else {
        return Ok(Vec::new());
    };
    let mut ok = match allow {
        None => ItemBitmap::all(st.count as usize),
        Some(a) => {
            let mut b = ItemBitmap::none(st.count as usize);
            for i in 0..st.count {
                if a.contains(base + i) {
                    b.insert(i);
                }
            }
            b
        }
    };
    for (i, placed) in st.placed.iter().enumerate() {
        if !placed {
            ok.remove(i as u32);
        }
    }
    for off in live_offsets(exclude, base, st) {
        ok.remove(off);
    }
    Ok(search(index.as_ref(), q, k, &Filter::AllowBitmap(&ok))?
        .into_iter()
        .map(|(i, s)| (base + i, s))
        .collect())
}

/// [`search_live`] over an IVF index: the added rows of the lists `which` names (of
/// `lists`, every list's added rows), scored exactly; rows that cannot score above
/// `floor` (`‖q‖ ‖v‖` below it) are not scored.
#[allow(clippy::too_many_arguments)] // search_live's arguments, split by index kind
fn search_lists(
    st: &State,
    lists: &[Arc<LiveList>],
    base: u32,
    which: LiveLists<'_>,
    floor: f32,
    q: &[f32],
    k: usize,
    exclude: &[u32],
    allow: Option<&ItemBitmap>,
) -> Result<Vec<(u32, f32)>> {
    if k == 0 || st.count == 0 {
        return Ok(Vec::new());
    }
    let mut live_excluded: Vec<u32> = live_offsets(exclude, base, st).collect();
    live_excluded.sort_unstable();
    let opened: Vec<u32> = match which {
        LiveLists::Opened(o) => o,
        LiveLists::All => (0..lists.len() as u32).collect(),
        LiveLists::Ask(ivf) => {
            // The depth the model's own search uses: its admissible items.
            let admissible = match allow {
                Some(a) => a.count(),
                None => ivf.len().saturating_sub(exclude.len()),
            };
            ivf.opened_lists(q, k, admissible)
                .map_err(|e| Error::Internal(e.to_string()))?
        }
    };
    let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut hits: Vec<(u32, f32)> = Vec::new();
    let dim = q.len();
    for l in opened {
        let Some(list) = lists.get(l as usize) else {
            continue;
        };
        let rows = list.vectors.chunks_exact(dim);
        for ((&off, &norm), v) in list.rows.iter().zip(&list.norms).zip(rows) {
            // Cauchy–Schwarz, with room for the rounding of both sides; the rows are
            // by decreasing norm, so the rest of the list cannot either.
            if f64::from(qn) * f64::from(norm) * (1.0 + 1e-4) < f64::from(floor) {
                break;
            }
            if live_excluded.binary_search(&off).is_ok()
                || allow.is_some_and(|a| !a.contains(base + off))
            {
                continue;
            }
            let s = shortlist_model::autorec::dot(q, v);
            // Below the model's k-th hit it cannot enter the merged list.
            if s >= floor {
                hits.push((base + off, s));
            }
        }
    }
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_by(order);
    Ok(hits)
}

fn search(
    index: &dyn TopKIndex,
    q: &[f32],
    k: usize,
    filter: &Filter<'_>,
) -> Result<Vec<(u32, f32)>> {
    Ok(index
        .search(q, k, filter)
        .map_err(|e| Error::Internal(e.to_string()))?
        .into_iter()
        .map(|h| (h.item, h.score))
        .collect())
}

/// The `k` best finite scores, best first (ties: lower row first).
fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .map(|(i, &s)| (i as u32, s))
        .collect();
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > k && k > 0 {
        all.select_nth_unstable_by(k - 1, better);
    }
    all.truncate(k);
    all.sort_unstable_by(better);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_row_and_skips_excluded() {
        let s = [0.5, f32::NEG_INFINITY, 0.9, 0.5, 0.1];
        assert_eq!(top_k(&s, 3), vec![(2, 0.9), (0, 0.5), (3, 0.5)]);
        assert_eq!(top_k(&s, 10).len(), 4);
        assert!(top_k(&s, 0).is_empty());
    }
}
