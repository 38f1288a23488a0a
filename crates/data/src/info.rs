//! Dataset summary (`shortlist data info`).

use rustc_hash::FxHashSet;
use serde::Serialize;
use shortlist_core::dataset::{ColumnKind, ColumnValues, Dataset, FeatureTable, Feedback};

/// Summary figures of a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// Users with at least one interaction.
    pub users: usize,
    /// Items with at least one interaction.
    pub items: usize,
    /// Interactions.
    pub interactions: usize,
    /// Users known to the dataset (with or without interactions).
    pub catalogue_users: usize,
    /// Items known to the dataset (metadata rows included).
    pub catalogue_items: usize,
    /// interactions / (users × items).
    pub density: f64,
    /// Explicit ratings or implicit feedback.
    pub feedback: Feedback,
    /// Mean rating (explicit feedback only).
    pub rating_mean: Option<f64>,
    /// Count per distinct rating value (up to 20 values), else per range.
    pub rating_histogram: Vec<HistogramBin>,
    /// First and last interaction time.
    pub time_range: Option<TimeRange>,
    /// User feature columns.
    pub user_features: Vec<ColumnInfo>,
    /// Item feature columns.
    pub item_features: Vec<ColumnInfo>,
}

/// One histogram bin.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistogramBin {
    /// The rating value (or the bin's lower edge).
    pub rating: f64,
    /// Upper edge for range bins; absent for exact values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// Interactions in the bin.
    pub count: usize,
}

/// Time span of the interactions.
#[derive(Debug, Clone, Serialize)]
pub struct TimeRange {
    /// Earliest Unix timestamp.
    pub first: i64,
    /// Latest Unix timestamp.
    pub last: i64,
    /// Earliest date (UTC, YYYY-MM-DD).
    pub first_date: String,
    /// Latest date (UTC, YYYY-MM-DD).
    pub last_date: String,
}

/// One feature column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Column type.
    pub kind: ColumnKind,
    /// Rows without a value.
    pub missing: usize,
    /// Distinct values (categorical: values; multi-categorical: labels; text: tokens are not counted).
    pub distinct: Option<usize>,
}

/// Civil date of a Unix timestamp (proleptic Gregorian, UTC).
pub fn iso_date(ts: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = ts.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn columns(t: &FeatureTable) -> Vec<ColumnInfo> {
    t.columns
        .iter()
        .map(|c| {
            let (missing, distinct) = match &c.values {
                ColumnValues::Categorical(v) => (
                    v.iter().filter(|s| s.is_empty()).count(),
                    Some(
                        v.iter()
                            .filter(|s| !s.is_empty())
                            .collect::<FxHashSet<_>>()
                            .len(),
                    ),
                ),
                ColumnValues::MultiCategorical(v) => (
                    v.iter().filter(|s| s.is_empty()).count(),
                    Some(v.iter().flatten().collect::<FxHashSet<_>>().len()),
                ),
                ColumnValues::Numeric(v) => (v.iter().filter(|x| x.is_nan()).count(), None),
                ColumnValues::Text(v) => (v.iter().filter(|s| s.is_empty()).count(), None),
            };
            ColumnInfo {
                name: c.name.clone(),
                kind: c.values.kind(),
                missing,
                distinct,
            }
        })
        .collect()
}

fn histogram(ratings: &[f32]) -> Vec<HistogramBin> {
    let mut values: Vec<f32> = ratings.to_vec();
    values.sort_unstable_by(f32::total_cmp);
    values.dedup();
    if values.len() <= 20 {
        let mut counts = vec![0usize; values.len()];
        for r in ratings {
            if let Ok(k) = values.binary_search_by(|v| v.total_cmp(r)) {
                counts[k] += 1;
            }
        }
        return values
            .iter()
            .zip(counts)
            .map(|(&v, count)| HistogramBin {
                rating: v as f64,
                upper: None,
                count,
            })
            .collect();
    }
    let (lo, hi) = (values[0] as f64, values[values.len() - 1] as f64);
    let width = (hi - lo) / 10.0;
    let mut counts = [0usize; 10];
    for &r in ratings {
        let k = (((r as f64 - lo) / width) as usize).min(9);
        counts[k] += 1;
    }
    (0..10)
        .map(|k| HistogramBin {
            rating: lo + k as f64 * width,
            upper: Some(lo + (k + 1) as f64 * width),
            count: counts[k],
        })
        .collect()
}

/// Computes the summary of `d`.
pub fn info(d: &Dataset) -> DatasetInfo {
    let inter = &d.interactions;
    let mut seen_users = vec![false; d.users.len()];
    let mut seen_items = vec![false; d.items.len()];
    for (&u, &i) in inter.users.iter().zip(&inter.items) {
        seen_users[u as usize] = true;
        seen_items[i as usize] = true;
    }
    let users = seen_users.iter().filter(|&&x| x).count();
    let items = seen_items.iter().filter(|&&x| x).count();
    let n = inter.len();
    let explicit = d.feedback == Feedback::Explicit;
    let time_range = inter.timestamps.as_ref().and_then(|t| {
        let (first, last) = (*t.iter().min()?, *t.iter().max()?);
        Some(TimeRange {
            first,
            last,
            first_date: iso_date(first),
            last_date: iso_date(last),
        })
    });
    DatasetInfo {
        name: d.name.clone(),
        users,
        items,
        interactions: n,
        catalogue_users: d.users.len(),
        catalogue_items: d.items.len(),
        density: if users * items > 0 {
            n as f64 / (users as f64 * items as f64)
        } else {
            0.0
        },
        feedback: d.feedback,
        rating_mean: (explicit && n > 0)
            .then(|| inter.ratings.iter().map(|&r| r as f64).sum::<f64>() / n as f64),
        rating_histogram: if explicit {
            histogram(&inter.ratings)
        } else {
            Vec::new()
        },
        time_range,
        user_features: columns(&d.user_features),
        item_features: columns(&d.item_features),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(874_724_710), "1997-09-20");
        assert_eq!(iso_date(951_782_400), "2000-02-29");
        assert_eq!(iso_date(-86_400), "1969-12-31");
    }

    #[test]
    fn histogram_of_whole_ratings() {
        let h = histogram(&[1.0, 3.0, 3.0, 5.0]);
        assert_eq!(
            h.iter().map(|b| (b.rating, b.count)).collect::<Vec<_>>(),
            vec![(1.0, 1), (3.0, 2), (5.0, 1)]
        );
    }
}
