//! [`PopularityScorer`]: every user gets the same scores, the items' training
//! interaction counts. The floor any personalised model must clear.

use crate::error::{Error, Result};
use crate::scorer_base::Scorer;

/// Scores an item by its number of training interactions (repeats count).
#[derive(Debug, Clone, PartialEq)]
pub struct PopularityScorer {
    counts: Vec<f32>,
}

impl PopularityScorer {
    /// Counts `train_items` over a catalogue of `n_items` items.
    pub fn fit(n_items: usize, train_items: &[u32]) -> Result<Self> {
        let mut counts = vec![0f32; n_items];
        for (row, &i) in train_items.iter().enumerate() {
            let c = counts
                .get_mut(i as usize)
                .ok_or_else(|| Error::OutOfRange {
                    what: "train items".into(),
                    row,
                    index: i,
                    len: n_items,
                })?;
            *c += 1.0;
        }
        Ok(PopularityScorer { counts })
    }

    /// The count of each item.
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl Scorer for PopularityScorer {
    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score_users(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
        let n = self.counts.len();
        if out.len() != users.len() * n {
            return Err(Error::size(
                "score buffer (users × items)",
                users.len() * n,
                out.len(),
            ));
        }
        if n > 0 {
            for row in out.chunks_exact_mut(n) {
                row.copy_from_slice(&self.counts);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn counts_and_scores() {
        let p = PopularityScorer::fit(4, &[1, 3, 3, 3, 0]).unwrap();
        assert_eq!(p.counts(), &[1.0, 1.0, 0.0, 3.0]);
        let mut out = vec![0.0; 8];
        p.score_users(&[5, 0], &mut out).unwrap();
        assert_eq!(out, vec![1.0, 1.0, 0.0, 3.0, 1.0, 1.0, 0.0, 3.0]);
        let e = PopularityScorer::fit(4, &[1, 4]).unwrap_err().to_string();
        assert!(
            e.contains("train items row 1") && e.contains("index 4"),
            "{e}"
        );
    }
}
