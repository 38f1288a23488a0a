//! The pipeline itself: retrieve candidates (from one source, or merged from several
//! with per-source quotas, plus the ranking model's own proposals), drop excluded
//! items, rank, order, cut to `k`.
//!
//! This is what `/v1/recommend` answers and what `shortlist recommend` and
//! `shortlist eval --pipeline` compute, so that the list evaluated offline is exactly
//! the list served.

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ranking::Ranker;
use crate::rules::{Compiled, Rules};
use crate::source::{Candidate, CandidateSource, User, UserPath};

/// What orders the final list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// The ranking model's relevance score when it has a relevance head, else the
    /// first stage's order (ranking by a rating never reorders a list by default).
    #[default]
    Auto,
    /// The relevance score (an error without a relevance head).
    Relevance,
    /// The predicted rating, best first (an error without a ranking model).
    Rating,
    /// The first stage's score.
    Retrieval,
}

impl Order {
    /// Parses `auto`, `relevance`, `rating` or `retrieval`.
    pub fn parse(s: &str) -> Result<Order> {
        match s {
            "auto" => Ok(Order::Auto),
            "relevance" => Ok(Order::Relevance),
            "rating" => Ok(Order::Rating),
            "retrieval" => Ok(Order::Retrieval),
            other => Err(Error::InvalidArgument(format!(
                "field \"order_by\" must be one of \"auto\", \"relevance\", \"rating\", \"retrieval\", got {other:?}"
            ))),
        }
    }

    /// The name used in requests and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Auto => "auto",
            Order::Relevance => "relevance",
            Order::Rating => "rating",
            Order::Retrieval => "retrieval",
        }
    }
}

/// One request to the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The user (an id, and any interactions beyond training).
    pub user: User<'a>,
    /// Items in the answer.
    pub k: usize,
    /// Candidates asked from the primary source.
    pub num_candidates: usize,
    /// Leave out the user's training items.
    pub exclude_seen: bool,
    /// Leave out these items.
    pub exclude_items: &'a [&'a str],
    /// What orders the list.
    pub order: Order,
}

/// The stages a request runs through.
#[derive(Clone, Copy)]
pub struct Stages<'a> {
    /// The first stage whose score is each item's `retrieval_score`.
    pub primary: &'a dyn CandidateSource,
    /// More sources merged into the candidates, each with its quota.
    pub extra: &'a [(&'a dyn CandidateSource, usize)],
    /// The ranking stage, if any.
    pub ranker: Option<&'a dyn Ranker>,
}

/// One item of the answer; serializes as an item of `/v1/recommend`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Item<'a> {
    /// Raw item id.
    pub item_id: &'a str,
    /// Display title, when a model ships one.
    pub title: Option<&'a str>,
    /// The primary source's score (NaN when it does not know the item).
    pub retrieval_score: f32,
    /// The relevance score that ordered the list (`None` without a relevance head).
    pub ranking_score: Option<f32>,
    /// The predicted rating (`None` without a ranking model).
    pub predicted_rating: Option<f32>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation<'a> {
    /// `false` when the primary source does not know the user id.
    pub known_user: bool,
    /// How the primary source built the user's query (known user, from the request's
    /// history, or the popularity fallback).
    pub path: UserPath,
    /// What ordered the list (never [`Order::Auto`]).
    pub order: Order,
    /// Best first, at most `k`.
    pub items: Vec<Item<'a>>,
}

/// Higher first; NaN last (the order of every served list).
pub fn desc(a: f32, b: f32) -> std::cmp::Ordering {
    let key = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    key(b).total_cmp(&key(a))
}

/// Runs `req` through `stages`.
pub fn recommend<'a>(stages: &Stages<'a>, req: &Request<'_>) -> Result<Recommendation<'a>> {
    recommend_with(stages, req, &Rules::default())
}

/// [`recommend()`] under a request's business `rules` (see [`crate::rules`]), checked
/// against the primary source's item attributes: the filter restricts the primary's
/// index search and drops inadmissible candidates of the other sources, the freshness
/// boost is added to the ordering score, the caps apply while cutting to `k`. When
/// the caps leave fewer than `k` of the candidates, the request runs again with
/// four times as many (up to 64 times what it asked, at least 10,000) until `k` fit or the primary source has no more. When fewer than `k`
/// items pass, the answer holds those that do.
///
/// The steps: `resolve_order`, `gather_candidates` (the primary's, the other
/// sources' and the ranking model's own, merged), `rank_candidates`,
/// `order_and_cut`, `rate_kept`, then the titles. **Hot**: this is the served
/// request path (`/v1/recommend`); each step runs once per request and loops per
/// candidate.
pub fn recommend_with<'a>(
    stages: &Stages<'a>,
    req: &Request<'_>,
    rules: &Rules<'_>,
) -> Result<Recommendation<'a>> {
    if req.k == 0 {
        return Err(Error::InvalidArgument("k must be at least 1".into()));
    }
    let order = resolve_order(req.order, stages.ranker)?;
    let primary = stages.primary;
    let attributes = if rules.is_empty() {
        None
    } else {
        primary.attributes()
    };
    let ruled = rules.compile(attributes.as_deref(), primary.kind())?;
    let mut asked = *req;
    let (gathered, mut indexed) = loop {
        let gathered = gather_candidates(stages, &asked, &ruled)?;
        let items = rank_candidates(stages.ranker, &asked, &gathered.candidates, order)?;
        let indexed = order_and_cut(items, order, rules, &ruled, primary, req.k);
        // Caps can leave fewer than k of the candidates: ask for more until k fit,
        // the primary has no more to give, or the bound is reached.
        let more =
            (asked.num_candidates.saturating_mul(CAP_REFILL_FACTOR)).min(cap_refill_bound(req));
        if !ruled.has_caps()
            || indexed.len() >= req.k
            || gathered.retrieved < asked.num_candidates
            || more <= asked.num_candidates
        {
            break (gathered, indexed);
        }
        asked.num_candidates = more;
    };
    if let Some(ranker) = stages.ranker {
        rate_kept(ranker, req, &mut indexed)?;
    }
    let origin = &gathered.origin;
    let items = indexed
        .into_iter()
        .map(|(pos, mut it)| {
            it.title = stages
                .primary
                .item_title(it.item_id)
                .or_else(|| origin[pos].and_then(|s| s.item_title(it.item_id)));
            it
        })
        .collect();
    Ok(Recommendation {
        known_user: gathered.known_user,
        path: gathered.path,
        order,
        items,
    })
}

/// What orders the list: [`Order::Auto`] resolved by the ranking model at hand, and
/// an error when the order needs a model (or a relevance head) that is not there.
fn resolve_order(asked: Order, ranker: Option<&dyn Ranker>) -> Result<Order> {
    match (asked, ranker) {
        (Order::Auto, Some(r)) if r.has_relevance() => Ok(Order::Relevance),
        (Order::Auto, _) => Ok(Order::Retrieval),
        (Order::Relevance, Some(r)) if !r.has_relevance() => Err(Error::InvalidArgument(
            "order_by \"relevance\" needs a ranking model with a relevance head".into(),
        )),
        (Order::Relevance | Order::Rating, None) => Err(Error::InvalidArgument(format!(
            "order_by \"{}\" needs a ranking model",
            asked.as_str()
        ))),
        (o, _) => Ok(o),
    }
}

/// How much the candidates grow at each refill when business-rule caps leave fewer
/// than `k` items.
const CAP_REFILL_FACTOR: usize = 4;

/// The most candidates a request's refills may ask for: 64 times what it asked,
/// at least 10,000, so a cap on a long-tailed attribute finds its `k` items in a
/// few rounds without turning one request into a scan of a large catalogue.
fn cap_refill_bound(req: &Request<'_>) -> usize {
    req.num_candidates.saturating_mul(64).max(10_000)
}

/// The merged candidates of a request and where each came from.
struct Gathered<'a> {
    /// The primary's candidates (its order), then the other sources' and the ranking
    /// model's own, each scored by the primary.
    candidates: Vec<Candidate<'a>>,
    /// Per candidate: the source that proposed it (`None`: the ranking model).
    origin: Vec<Option<&'a dyn CandidateSource>>,
    /// How many candidates the primary source returned, before the request's
    /// exclusions and rules (fewer than asked: it has no more).
    retrieved: usize,
    /// The primary source's answer about the user.
    known_user: bool,
    path: UserPath,
}

/// The primary's candidates (restricted to the filter's items), then the other
/// sources' (up to their quotas) and the ranking model's own proposals, without
/// duplicates, excluded, inadmissible or retired items; those not from the primary
/// are scored by it.
fn gather_candidates<'a>(
    stages: &Stages<'a>,
    req: &Request<'_>,
    ruled: &Compiled<'_>,
) -> Result<Gathered<'a>> {
    let primary = stages.primary;
    let retrieved = match &ruled.allow {
        None => primary.retrieve(
            &req.user,
            req.num_candidates,
            req.exclude_seen,
            req.exclude_items,
        )?,
        Some(allow) => primary.retrieve_allowed(
            &req.user,
            req.num_candidates,
            req.exclude_seen,
            req.exclude_items,
            allow,
        )?,
    };
    let mut candidates: Vec<Candidate<'a>> = retrieved.candidates;
    let retrieved_len = candidates.len();
    // Sources filter by their own vocabularies; drop what they could not recognise.
    let excluded: FxHashSet<&str> = req.exclude_items.iter().copied().collect();
    // Retired items never come back, whichever source proposes them.
    let admits = |id: &str| {
        (ruled.allow.is_none() || ruled.admits(primary.item_row(id))) && !primary.is_retired(id)
    };
    candidates.retain(|c| !excluded.contains(c.item_id) && admits(c.item_id));
    let mut origin: Vec<Option<&'a dyn CandidateSource>> =
        vec![Some(stages.primary); candidates.len()];
    let own = match (stages.ranker, retrieved.path) {
        (Some(r), UserPath::Known | UserPath::History) => r.candidates(
            &req.user,
            req.k,
            req.num_candidates,
            req.exclude_seen,
            req.exclude_items,
        ),
        _ => Vec::new(),
    };
    if !stages.extra.is_empty() || !own.is_empty() {
        let mut have: FxHashSet<&str> = candidates.iter().map(|c| c.item_id).collect();
        let mut added: Vec<&'a str> = Vec::new();
        for &(source, quota) in stages.extra {
            let r = source.retrieve(&req.user, quota, req.exclude_seen, req.exclude_items)?;
            for c in r.candidates {
                if !excluded.contains(c.item_id) && admits(c.item_id) && have.insert(c.item_id) {
                    added.push(c.item_id);
                    origin.push(Some(source));
                }
            }
        }
        for c in own {
            if !excluded.contains(c.item_id) && admits(c.item_id) && have.insert(c.item_id) {
                added.push(c.item_id);
                origin.push(None);
            }
        }
        if !added.is_empty() {
            let mut scores = vec![0f32; added.len()];
            stages.primary.score_items(&req.user, &added, &mut scores);
            candidates.extend(
                added
                    .iter()
                    .zip(scores)
                    .map(|(&item_id, score)| Candidate { item_id, score }),
            );
        }
    }
    Ok(Gathered {
        candidates,
        origin,
        retrieved: retrieved_len,
        known_user: retrieved.known_user,
        path: retrieved.path,
    })
}

/// The answer's items for `candidates`, with the ranking model's scores when there is
/// one. Ordered by relevance, the predicted ratings are left for `rate_kept`.
fn rank_candidates<'a>(
    ranker: Option<&dyn Ranker>,
    req: &Request<'_>,
    candidates: &[Candidate<'a>],
    order: Order,
) -> Result<Vec<Item<'a>>> {
    let mut items: Vec<Item<'a>> = candidates
        .iter()
        .map(|c| Item {
            item_id: c.item_id,
            title: None,
            retrieval_score: c.score,
            ranking_score: None,
            predicted_rating: None,
        })
        .collect();
    if let Some(ranker) = ranker {
        let ids: Vec<&str> = candidates.iter().map(|c| c.item_id).collect();
        let scores: Vec<f32> = candidates.iter().map(|c| c.score).collect();
        // Ordered by relevance, only the returned items need a predicted rating:
        // they are rated after the cut (rating every candidate was a third of the
        // request's cost).
        let deferred = order == Order::Relevance;
        let ranked = if deferred {
            ranker.rank_relevance(&req.user, &ids, Some(&scores))?
        } else {
            ranker.rank(&req.user, &ids, Some(&scores))?
        };
        let rated = ranked.ratings.len() == ids.len();
        if !(rated || (deferred && ranked.ratings.is_empty()))
            || ranked
                .relevance
                .as_ref()
                .is_some_and(|r| r.len() != ids.len())
        {
            return Err(Error::Internal(format!(
                "the ranking model returned {} scores for {} items",
                ranked.ratings.len(),
                ids.len()
            )));
        }
        for (k, it) in items.iter_mut().enumerate() {
            it.predicted_rating = ranked.ratings.get(k).copied();
            it.ranking_score = ranked.relevance.as_ref().map(|r| r[k]);
        }
    }
    Ok(items)
}

/// The best `k` items by `order` (plus the freshness boost), best first, each with
/// its candidate position; under caps, the first items that fit them.
fn order_and_cut<'a>(
    items: Vec<Item<'a>>,
    order: Order,
    rules: &Rules<'_>,
    ruled: &Compiled<'_>,
    primary: &dyn CandidateSource,
    k: usize,
) -> Vec<(usize, Item<'a>)> {
    // The freshness boost, by candidate position (empty without one).
    let boosts: Vec<f32> = if rules.freshness.is_some() {
        items
            .iter()
            .map(|it| ruled.boost(primary.item_row(it.item_id)))
            .collect()
    } else {
        Vec::new()
    };
    let key = |pos: usize, it: &Item<'_>| {
        let base = match order {
            Order::Relevance => it.ranking_score.unwrap_or(f32::NAN),
            Order::Rating => it.predicted_rating.unwrap_or(f32::NAN),
            _ => it.retrieval_score,
        };
        base + boosts.get(pos).copied().unwrap_or(0.0)
    };
    let by = |a: &(usize, Item<'a>), b: &(usize, Item<'a>)| {
        desc(key(a.0, &a.1), key(b.0, &b.1))
            .then_with(|| desc(a.1.retrieval_score, b.1.retrieval_score))
            .then(a.0.cmp(&b.0))
    };
    let mut indexed: Vec<(usize, Item<'a>)> = items.into_iter().enumerate().collect();
    if indexed.len() > k && !ruled.has_caps() {
        indexed.select_nth_unstable_by(k - 1, by);
        indexed.truncate(k);
    }
    indexed.sort_unstable_by(by);
    if ruled.has_caps() {
        let rows: Vec<Option<u32>> = indexed
            .iter()
            .map(|(_, it)| primary.item_row(it.item_id))
            .collect();
        let keep = ruled.capped(&rows, k);
        let mut all = indexed.into_iter().map(Some).collect::<Vec<_>>();
        indexed = keep.into_iter().filter_map(|p| all[p].take()).collect();
    }
    indexed
}

/// Asks the ranking model for the predicted ratings the kept items lack (a list
/// ordered by relevance is rated after the cut).
fn rate_kept(
    ranker: &dyn Ranker,
    req: &Request<'_>,
    indexed: &mut [(usize, Item<'_>)],
) -> Result<()> {
    if indexed.iter().any(|(_, it)| it.predicted_rating.is_none()) {
        let ids: Vec<&str> = indexed.iter().map(|(_, it)| it.item_id).collect();
        let ratings = ranker.ratings(&req.user, &ids)?;
        if ratings.len() != ids.len() {
            return Err(Error::Internal(format!(
                "the ranking model returned {} ratings for {} items",
                ratings.len(),
                ids.len()
            )));
        }
        for ((_, it), r) in indexed.iter_mut().zip(ratings) {
            it.predicted_rating = Some(r);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
