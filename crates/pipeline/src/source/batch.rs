//! Many users' top-k at once ([`ModelSource::retrieve_rows_batch`]), for offline
//! callers that want every user's list (the Python package's `recommend`): the known
//! users' trained queries go through the index's batched search (one pass over the
//! items per block of queries, on every core) instead of one search per user. The
//! lists equal [`CandidateSource::retrieve`](super::CandidateSource::retrieve)'s for
//! the same user, `k` and `exclude_seen`, bit for bit (every index path computes a
//! score with the same arithmetic; tested in `tests/batch.rs`).

use rayon::prelude::*;
use shortlist_index::{Filter, TopKIndex};

use super::retrieve::{live_floor, merge_live, search_live, LiveLists};
use super::{ModelSource, Scorer, User, UserPath};
use crate::error::{Error, Result};

/// One user's list of [`ModelSource::retrieve_rows_batch`]: item rows, not ids, so
/// that a caller holding a table of the rows' ids ([`ModelSource::item_id_of`])
/// copies no string per item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowList {
    /// `(item row, score)`, best first.
    pub hits: Vec<(u32, f32)>,
    /// How the query was built ([`UserPath::Popular`]: an unknown user, given the
    /// most popular items).
    pub path: UserPath,
}

impl ModelSource {
    /// The top `k` item rows of each of `users` (raw ids, known or not), as
    /// [`CandidateSource::retrieve`](super::CandidateSource::retrieve) answers
    /// `User::id(id)` with no excluded items: the same rows and scores, in the same
    /// order, one list per user in `users`' order. Known users of a two-tower or iALS
    /// model are searched together ([`TopKIndex::search_batch`]); EASE and unknown
    /// users (the popularity fallback) are answered one by one, on every core.
    pub fn retrieve_rows_batch(
        &self,
        users: &[&str],
        k: usize,
        exclude_seen: bool,
    ) -> Result<Vec<RowList>> {
        let st = self.live.state();
        let one = |id: &str| -> Result<RowList> {
            let (hits, _, path) =
                self.retrieve_rows_where(&st, &User::id(id), k, exclude_seen, &[], None)?;
            Ok(RowList { hits, path })
        };
        let index = match &self.scorer {
            Scorer::TwoTower { index, .. } | Scorer::Ials { index, .. } => index,
            Scorer::Ease { .. } => return users.par_iter().map(|u| one(u)).collect(),
        };
        let rows: Vec<Option<u32>> = users.iter().map(|u| self.spec().user_id.get(u)).collect();
        // The known users' queries as one matrix, and each one's excluded rows: the
        // same set `excluded_rows` gives a user known by id alone (OOV rows, training
        // items with `exclude_seen`, retired items).
        let oov = self.spec().item_id.num_oov();
        let mut queries = Vec::new();
        let mut excluded: Vec<Vec<u32>> = Vec::new();
        for &u in rows.iter().flatten() {
            let q = self.known_query(u).ok_or_else(|| {
                Error::Internal(format!("user row {u} has no query in the model"))
            })?;
            queries.extend_from_slice(q);
            let seen = if exclude_seen {
                self.seen().row(u as usize)
            } else {
                &[]
            };
            let mut e = Vec::with_capacity(oov as usize + seen.len() + st.retired.len());
            e.extend(0..oov);
            e.extend_from_slice(seen);
            e.extend_from_slice(&st.retired);
            excluded.push(e);
        }
        let found = index
            .search_batch(&queries, k, &|q| Filter::Exclude(&excluded[q]))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let base = self.num_items() as u32;
        let mut found = found.into_iter().zip(&excluded).enumerate();
        rows.iter()
            .zip(users)
            .map(|(row, id)| match row {
                None => one(id),
                Some(_) => {
                    let Some((q, (hits, exclude))) = found.next() else {
                        return Err(Error::Internal("a batched search lost a query".into()));
                    };
                    let mut hits: Vec<(u32, f32)> =
                        hits.into_iter().map(|h| (h.item, h.score)).collect();
                    let floor = live_floor(&hits, k);
                    let d = index.dim();
                    let query = &queries[q * d..(q + 1) * d];
                    merge_live(
                        &mut hits,
                        search_live(
                            &st,
                            base,
                            self.ivf().map(LiveLists::Ask),
                            floor,
                            query,
                            k,
                            exclude,
                            None,
                        )?,
                        k,
                    );
                    Ok(RowList {
                        hits,
                        path: UserPath::Known,
                    })
                }
            })
            .collect()
    }
}
