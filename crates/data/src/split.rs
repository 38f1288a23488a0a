//! Train/test splits. Deterministic for a seed on every platform (our own RNG, see
//! [`shortlist_core::rng`]); rows keep file order inside each part.

use serde::Serialize;
use shortlist_core::{Interactions, Rng};

use crate::error::{Error, Result};

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum SplitMethod {
    /// A seeded uniform permutation; the first `ratio` of it trains.
    Random {
        /// Share of interactions in training, in (0, 1).
        ratio: f64,
        /// Seed of the permutation.
        seed: u64,
    },
    /// A global time cut: the earliest `ratio` of interactions train
    /// (ties in time broken by file order).
    Temporal {
        /// Share of interactions in training, in (0, 1).
        ratio: f64,
    },
    /// Per user, the last `n` interactions (by time, then file order) are tested;
    /// users with `n` or fewer interactions stay entirely in training.
    LeaveLastOut {
        /// Interactions held out per user.
        n: usize,
    },
}

/// Row indices of the two parts, each in ascending (file) order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

fn check_ratio(ratio: f64) -> Result<()> {
    if ratio > 0.0 && ratio < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "--ratio",
            format!("expected a number strictly between 0 and 1, found {ratio}"),
        ))
    }
}

/// Splits the rows of `inter`.
pub fn split(inter: &Interactions, method: SplitMethod) -> Result<Split> {
    let n = inter.len();
    let mut parts = match method {
        SplitMethod::Random { ratio, seed } => {
            check_ratio(ratio)?;
            let mut order: Vec<usize> = (0..n).collect();
            Rng::new(seed).shuffle(&mut order);
            let cut = (n as f64 * ratio).round() as usize;
            let test = order.split_off(cut);
            Split { train: order, test }
        }
        SplitMethod::Temporal { ratio } => {
            check_ratio(ratio)?;
            let ts = inter.timestamps.as_ref().ok_or_else(|| {
                Error::invalid(
                    "--method",
                    "temporal needs timestamps, and this dataset has none",
                )
            })?;
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&r| (ts[r], r));
            let cut = (n as f64 * ratio).round() as usize;
            let test = order.split_off(cut);
            Split { train: order, test }
        }
        SplitMethod::LeaveLastOut { n: hold } => {
            if hold == 0 {
                return Err(Error::invalid(
                    "--n",
                    "expected at least 1 interaction per user to hold out",
                ));
            }
            let n_users = inter
                .users
                .iter()
                .map(|&u| u as usize + 1)
                .max()
                .unwrap_or(0);
            // Counting sort of rows by user, file order inside each user.
            let mut start = vec![0usize; n_users + 1];
            for &u in &inter.users {
                start[u as usize + 1] += 1;
            }
            for u in 0..n_users {
                start[u + 1] += start[u];
            }
            let mut fill = start.clone();
            let mut by_user = vec![0usize; n];
            for (r, &u) in inter.users.iter().enumerate() {
                by_user[fill[u as usize]] = r;
                fill[u as usize] += 1;
            }
            let mut s = Split::default();
            for u in 0..n_users {
                let rows = &mut by_user[start[u]..start[u + 1]];
                if let Some(ts) = &inter.timestamps {
                    rows.sort_by_key(|&r| (ts[r], r));
                }
                if rows.len() > hold {
                    let cut = rows.len() - hold;
                    s.train.extend_from_slice(&rows[..cut]);
                    s.test.extend_from_slice(&rows[cut..]);
                } else {
                    s.train.extend_from_slice(rows);
                }
            }
            s
        }
    };
    parts.train.sort_unstable();
    parts.test.sort_unstable();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Interactions {
        Interactions {
            users: (0..n).map(|r| (r % 7) as u32).collect(),
            items: (0..n).map(|r| (r % 11) as u32).collect(),
            ratings: vec![1.0; n],
            timestamps: Some((0..n).map(|r| ((r * 7919) % 1000) as i64).collect()),
        }
    }

    fn check_partition(s: &Split, n: usize) {
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "disjoint and covering");
    }

    #[test]
    fn random_is_deterministic_disjoint_and_sized() {
        let d = data(1000);
        let a = split(
            &d,
            SplitMethod::Random {
                ratio: 0.8,
                seed: 42,
            },
        )
        .unwrap();
        let b = split(
            &d,
            SplitMethod::Random {
                ratio: 0.8,
                seed: 42,
            },
        )
        .unwrap();
        let c = split(
            &d,
            SplitMethod::Random {
                ratio: 0.8,
                seed: 43,
            },
        )
        .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((a.train.len(), a.test.len()), (800, 200));
        check_partition(&a, 1000);
    }

    #[test]
    fn temporal_cut_puts_earlier_rows_in_training() {
        let d = data(1000);
        let s = split(&d, SplitMethod::Temporal { ratio: 0.75 }).unwrap();
        check_partition(&s, 1000);
        let ts = d.timestamps.as_ref().unwrap();
        let last_train = s.train.iter().map(|&r| ts[r]).max().unwrap();
        let first_test = s.test.iter().map(|&r| ts[r]).min().unwrap();
        assert!(last_train <= first_test);
        assert_eq!(s.train.len(), 750);
    }

    #[test]
    fn leave_last_out_holds_each_users_latest() {
        let d = data(1000);
        let s = split(&d, SplitMethod::LeaveLastOut { n: 2 }).unwrap();
        check_partition(&s, 1000);
        assert_eq!(s.test.len(), 14);
        let ts = d.timestamps.as_ref().unwrap();
        for u in 0..7u32 {
            let max_train = s
                .train
                .iter()
                .filter(|&&r| d.users[r] == u)
                .map(|&r| ts[r])
                .max()
                .unwrap();
            for &r in s.test.iter().filter(|&&r| d.users[r] == u) {
                assert!(ts[r] >= max_train);
            }
        }
    }

    #[test]
    fn leave_last_out_keeps_small_users_in_training() {
        let d = Interactions {
            users: vec![0, 1, 1],
            items: vec![0, 0, 1],
            ratings: vec![1.0; 3],
            timestamps: None,
        };
        let s = split(&d, SplitMethod::LeaveLastOut { n: 1 }).unwrap();
        assert_eq!(s.train, vec![0, 1]);
        assert_eq!(s.test, vec![2]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let d = data(10);
        let e = split(
            &d,
            SplitMethod::Random {
                ratio: 1.5,
                seed: 1,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --ratio: expected a number strictly between 0 and 1, found 1.5"
        );
        let mut no_time = data(10);
        no_time.timestamps = None;
        let e = split(&no_time, SplitMethod::Temporal { ratio: 0.5 }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --method: temporal needs timestamps, and this dataset has none"
        );
    }
}
