//! What a `/v1/recommend` or `/v1/rank` exchange has in common wherever it is
//! answered, shared by the server (`shortlist-serve`) and the WebAssembly engine
//! (`shortlist-wasm`) so that both refuse the same bodies with the same words and
//! answer in the same shape: the checks of `k` and `num_candidates` against their
//! limits, of a list field's length and of a history entry's strength, and the
//! answers' bodies ([`RecommendAnswer`], [`RankAnswer`]).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ranking::{Ranked, RankedItem};
use crate::recommend::{Item, Recommendation};

/// The limits a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `k`.
    pub max_k: usize,
    /// Largest `num_candidates`, and the longest `history`, `exclude_items` or
    /// `item_ids`.
    pub max_items: usize,
    /// `num_candidates` when the request has none (raised to `k`, at most
    /// `max_items`).
    pub default_num_candidates: usize,
}

impl Limits {
    /// `k` (10 when absent) and `num_candidates`, checked: `1 ≤ k ≤ max_k` and
    /// `k ≤ num_candidates ≤ max_items`.
    pub fn counts(&self, k: Option<u64>, num_candidates: Option<u64>) -> Result<(usize, usize)> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        let k = k.unwrap_or(10);
        if k == 0 || k > self.max_k as u64 {
            return bad(format!("k must be between 1 and {}, got {k}", self.max_k));
        }
        let k = k as usize;
        let num_candidates = match num_candidates {
            None => self.default_num_candidates.max(k).min(self.max_items),
            Some(n) if n > self.max_items as u64 => {
                return bad(format!(
                    "num_candidates must be at most {}, got {n}",
                    self.max_items
                ))
            }
            Some(n) if n < k as u64 => {
                return bad(format!("num_candidates ({n}) must be at least k ({k})"))
            }
            Some(n) => n as usize,
        };
        Ok((k, num_candidates))
    }

    /// An error naming `field` when a list of `len` `what` (e.g. `"ids"`) is longer
    /// than `max_items`.
    pub fn list(&self, field: &str, what: &str, len: usize) -> Result<()> {
        if len > self.max_items {
            return Err(Error::InvalidArgument(format!(
                "{field}: {len} {what} exceed the limit of {}",
                self.max_items
            )));
        }
        Ok(())
    }
}

/// The strength of history entry `n`, checked: a positive number up to 1e6.
pub fn history_strength(n: usize, strength: f64) -> Result<f32> {
    if strength.is_finite() && strength > 0.0 && strength <= 1e6 {
        Ok(strength as f32)
    } else {
        Err(Error::InvalidArgument(format!(
            "history[{n}].strength must be a positive number up to 1e6, got {strength}"
        )))
    }
}

/// The body of a `/v1/recommend` answer.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendAnswer<'a> {
    /// The request's user id.
    pub user_id: &'a str,
    /// See [`Recommendation::known_user`].
    pub known_user: bool,
    /// See [`Recommendation::path`].
    pub user_path: &'static str,
    /// What ordered the list.
    pub order_by: &'static str,
    /// Model name → version of every model that answered, as a JSON object (the
    /// server's; left out where there is one model of each kind, as in a browser).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "versions_map"
    )]
    pub model_versions: Option<&'a [(&'a str, u64)]>,
    /// The list, best first.
    pub items: &'a [Item<'a>],
}

impl<'a> RecommendAnswer<'a> {
    /// The answer to `user_id` holding `rec`.
    pub fn new(
        user_id: &'a str,
        rec: &'a Recommendation<'a>,
        model_versions: Option<&'a [(&'a str, u64)]>,
    ) -> Self {
        RecommendAnswer {
            user_id,
            known_user: rec.known_user,
            user_path: rec.path.as_str(),
            order_by: rec.order.as_str(),
            model_versions,
            items: &rec.items,
        }
    }
}

fn versions_map<S: Serializer>(
    versions: &Option<&[(&str, u64)]>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let versions = versions.unwrap_or_default();
    let mut m = s.serialize_map(Some(versions.len()))?;
    for (k, v) in versions {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// The body of a `/v1/rank` answer.
#[derive(Debug, Clone, Serialize)]
pub struct RankAnswer<'a> {
    /// The request's user id.
    pub user_id: &'a str,
    /// See [`Ranked::known_user`].
    pub known_user: bool,
    /// The ranking model's version (the server's; left out in a browser).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u64>,
    /// See [`Ranked::order_by`].
    pub order_by: &'static str,
    /// The items, best first ([`Ranked::answer`]).
    pub items: Vec<RankedItem<'a>>,
}

impl<'a> RankAnswer<'a> {
    /// The answer to `user_id` for `ranked`, the scores of `ids`.
    pub fn new(
        user_id: &'a str,
        ranked: &Ranked,
        ids: &[&'a str],
        model_version: Option<u64>,
    ) -> Result<Self> {
        Ok(RankAnswer {
            user_id,
            known_user: ranked.known_user,
            model_version,
            order_by: ranked.order_by(),
            items: ranked.answer(ids)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_k: 50,
        max_items: 200,
        default_num_candidates: 100,
    };

    fn message<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn counts_default_and_clamp() {
        assert_eq!(LIMITS.counts(None, None), Ok((10, 100)));
        assert_eq!(LIMITS.counts(Some(50), None), Ok((50, 100)));
        assert_eq!(LIMITS.counts(Some(7), Some(7)), Ok((7, 7)));
        let small = Limits {
            default_num_candidates: 1000,
            ..LIMITS
        };
        assert_eq!(small.counts(Some(3), None), Ok((3, 200)));
    }

    #[test]
    fn counts_name_the_field_and_the_limit() {
        assert_eq!(
            message(LIMITS.counts(Some(0), None)),
            "k must be between 1 and 50, got 0"
        );
        assert_eq!(
            message(LIMITS.counts(Some(51), None)),
            "k must be between 1 and 50, got 51"
        );
        assert_eq!(
            message(LIMITS.counts(Some(5), Some(201))),
            "num_candidates must be at most 200, got 201"
        );
        assert_eq!(
            message(LIMITS.counts(Some(5), Some(4))),
            "num_candidates (4) must be at least k (5)"
        );
    }

    #[test]
    fn lists_and_strengths() {
        assert_eq!(LIMITS.list("item_ids", "ids", 200), Ok(()));
        assert_eq!(
            message(LIMITS.list("item_ids", "ids", 201)),
            "item_ids: 201 ids exceed the limit of 200"
        );
        assert_eq!(history_strength(0, 2.5), Ok(2.5));
        assert_eq!(history_strength(1, 1e6), Ok(1e6));
        for bad in [0.0, -1.0, 1e6 + 1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                message(history_strength(3, bad)),
                format!("history[3].strength must be a positive number up to 1e6, got {bad}")
            );
        }
    }
}
