//! Helpers for the hand-written candidate sources and rankers of tests and examples
//! (this crate's unit tests, the server's tests and its load-test example): the
//! answers every such fake builds the same way.
//!
//! Compiled for this crate's own tests and behind the `testing` feature, which other
//! crates enable in their `[dev-dependencies]` only, so no normal build carries it.

use crate::ranking::Ranked;
use crate::source::{Candidate, Retrieved, UserPath};

/// A [`Retrieved`] answer for a fake source: a known user takes the
/// [`UserPath::Known`] path, an unknown one the [`UserPath::Popular`] fallback.
pub fn retrieved(candidates: Vec<Candidate<'_>>, known_user: bool) -> Retrieved<'_> {
    Retrieved {
        candidates,
        known_user,
        path: if known_user {
            UserPath::Known
        } else {
            UserPath::Popular
        },
    }
}

/// A [`Ranked`] answer for a fake ranker whose ratings are `scores`, and whose
/// relevance scores (with `relevance`) are the same numbers.
pub fn ranked(
    scores: Vec<f32>,
    relevance: bool,
    known_user: bool,
    unknown_items: Vec<usize>,
) -> Ranked {
    Ranked {
        relevance: relevance.then(|| scores.clone()),
        ratings: scores,
        known_user,
        unknown_items,
    }
}
