//! What to do with repeated (user, item) pairs.

use serde::{Deserialize, Serialize};
use shortlist_core::Interactions;

/// Policy for repeated (user, item) pairs.
///
/// * `keep-all` (default): every interaction stays (a user may watch or buy twice).
/// * `keep-last`: only the latest one (by timestamp, then file order) stays.
/// * `average`: one interaction with the mean rating and the latest timestamp, placed
///   where the pair first occurred (what seed 001 does for repeated (user, title) pairs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Keep every interaction.
    #[default]
    KeepAll,
    /// Keep the latest interaction of each pair.
    KeepLast,
    /// Merge each pair into one with the mean rating.
    Average,
}

impl std::str::FromStr for DuplicatePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep-all" => Ok(Self::KeepAll),
            "keep-last" => Ok(Self::KeepLast),
            "average" => Ok(Self::Average),
            other => Err(format!(
                "expected keep-all, keep-last or average, found {other:?}"
            )),
        }
    }
}

/// Applies `policy`; returns how many interactions were removed.
pub fn apply(inter: &mut Interactions, policy: DuplicatePolicy) -> usize {
    if policy == DuplicatePolicy::KeepAll || inter.is_empty() {
        return 0;
    }
    let n = inter.len();
    let key = |r: usize| ((inter.users[r] as u64) << 32) | inter.items[r] as u64;
    let mut order: Vec<u32> = (0..n as u32).collect();
    // Stable: rows of one pair stay in file order.
    order.sort_by_key(|&r| key(r as usize));
    let mut keep: Vec<usize> = Vec::with_capacity(n);
    let mut ratings = inter.ratings.clone();
    let mut timestamps = inter.timestamps.clone();
    let mut start = 0;
    while start < n {
        let k = key(order[start] as usize);
        let mut end = start + 1;
        while end < n && key(order[end] as usize) == k {
            end += 1;
        }
        let group = &order[start..end];
        match policy {
            DuplicatePolicy::KeepAll => unreachable!("returned above"),
            DuplicatePolicy::KeepLast => {
                let last = group
                    .iter()
                    .copied()
                    .max_by_key(|&r| (inter.timestamp(r as usize).unwrap_or(0), r))
                    .unwrap_or(group[0]);
                keep.push(last as usize);
            }
            DuplicatePolicy::Average => {
                let first = group[0] as usize;
                let sum: f64 = group
                    .iter()
                    .map(|&r| inter.ratings[r as usize] as f64)
                    .sum();
                ratings[first] = (sum / group.len() as f64) as f32;
                if let (Some(t), Some(src)) = (&mut timestamps, &inter.timestamps) {
                    t[first] = group
                        .iter()
                        .map(|&r| src[r as usize])
                        .max()
                        .unwrap_or(src[first]);
                }
                keep.push(first);
            }
        }
        start = end;
    }
    keep.sort_unstable();
    let removed = n - keep.len();
    let merged = Interactions {
        users: inter.users.clone(),
        items: inter.items.clone(),
        ratings,
        timestamps,
    };
    *inter = merged.select(&keep);
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Interactions {
        Interactions {
            users: vec![0, 0, 1, 0],
            items: vec![5, 6, 5, 5],
            ratings: vec![1.0, 2.0, 3.0, 4.0],
            timestamps: Some(vec![30, 10, 20, 15]),
        }
    }

    #[test]
    fn keep_all_is_identity() {
        let mut x = sample();
        assert_eq!(apply(&mut x, DuplicatePolicy::KeepAll), 0);
        assert_eq!(x, sample());
    }

    #[test]
    fn keep_last_uses_timestamp() {
        let mut x = sample();
        assert_eq!(apply(&mut x, DuplicatePolicy::KeepLast), 1);
        // (0,5) at t=30 (row 0) is later than t=15 (row 3).
        assert_eq!(x.ratings, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn average_merges_at_first_position() {
        let mut x = sample();
        assert_eq!(apply(&mut x, DuplicatePolicy::Average), 1);
        assert_eq!(x.users, vec![0, 0, 1]);
        assert_eq!(x.ratings, vec![2.5, 2.0, 3.0]);
        assert_eq!(x.timestamps, Some(vec![30, 10, 20]));
    }
}
