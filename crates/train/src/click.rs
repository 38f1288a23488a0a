//! The `click` objective's data side: 0/1 labels from the rating column (checked, or
//! made from ratings with `click_threshold`), the metrics of a click model on
//! interaction rows (AUC, group AUC, log-loss: `shortlist_eval::classification`), and
//! the two baselines reported beside it.

use serde::Serialize;
use shortlist_core::Dataset;
use shortlist_eval::ClickMetrics;
use shortlist_model::RankingModel;

use crate::error::{Error, Result};
use crate::trainer::predictions;

/// The 0/1 labels of interaction `rows`: `rating ≥ threshold` with a threshold, else
/// the rating itself, which must then be 0 or 1 (`what` names the rows in errors,
/// e.g. "training").
///
/// # Errors
/// The first interaction whose rating is not a label, by user and item id.
pub fn click_labels(
    dataset: &Dataset,
    rows: &[usize],
    threshold: Option<f32>,
    what: &str,
) -> Result<Vec<f32>> {
    let it = &dataset.interactions;
    rows.iter()
        .map(|&r| {
            let y = it.ratings[r];
            match threshold {
                Some(t) => Ok(f32::from(u8::from(y >= t))),
                None if y == 0.0 || y == 1.0 => Ok(y),
                None => Err(Error::Labels(format!(
                    "objective = \"click\" needs 0/1 labels in the rating column, but {what} interaction {r} (user {:?}, item {:?}) has {y}; set click_threshold to turn ratings into clicks (e.g. click_threshold = 4.0)",
                    dataset.users.raw(it.users[r]),
                    dataset.items.raw(it.items[r]),
                ))),
            }
        })
        .collect()
}

/// AUC, group AUC (by user) and log-loss of a click model on `rows` of `dataset`,
/// the labels made as the model was trained (`config.label_threshold`).
///
/// # Errors
/// A rating that is not a label, or no rows.
pub fn evaluate_click(
    model: &RankingModel,
    dataset: &Dataset,
    rows: &[usize],
) -> Result<ClickMetrics> {
    let labels = click_labels(dataset, rows, model.config.label_threshold, "test")?;
    let p = predictions(model, dataset, rows);
    metrics_of(dataset, rows, &labels, &p)
}

/// [`ClickMetrics`] of scores `p` for `rows` with `labels`, grouped by dataset user.
pub(crate) fn metrics_of(
    dataset: &Dataset,
    rows: &[usize],
    labels: &[f32],
    p: &[f32],
) -> Result<ClickMetrics> {
    let users: Vec<u32> = rows
        .iter()
        .map(|&r| dataset.interactions.users[r])
        .collect();
    ClickMetrics::of(&users, labels, p).map_err(|e| Error::NoData(e.to_string()))
}

/// Prior strength (in impressions at the global rate) of the item-rate baseline.
pub const ITEM_RATE_PRIOR: f64 = 5.0;

/// The baselines of a click model, fitted on the training rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClickBaselines {
    /// Every impression gets the training click rate (AUC ½ by construction).
    pub global_rate: ClickMetrics,
    /// Each item's training click rate, smoothed towards the global rate with
    /// [`ITEM_RATE_PRIOR`] impressions: `(clicks + 5·rate) / (impressions + 5)`.
    pub item_rate: ClickMetrics,
}

impl ClickBaselines {
    /// Fits on `train` rows and measures on `test` rows (labels as `threshold` makes them).
    ///
    /// # Errors
    /// A rating that is not a label, or no rows.
    pub fn measure(
        dataset: &Dataset,
        train: &[usize],
        test: &[usize],
        threshold: Option<f32>,
    ) -> Result<Self> {
        let it = &dataset.interactions;
        let y = click_labels(dataset, train, threshold, "training")?;
        let yt = click_labels(dataset, test, threshold, "test")?;
        let rate = y.iter().map(|&v| v as f64).sum::<f64>() / y.len().max(1) as f64;
        let mut clicks = vec![0f64; dataset.items.len()];
        let mut shown = vec![0f64; dataset.items.len()];
        for (&r, &v) in train.iter().zip(&y) {
            clicks[it.items[r] as usize] += v as f64;
            shown[it.items[r] as usize] += 1.0;
        }
        let global = vec![rate as f32; test.len()];
        let item: Vec<f32> = test
            .iter()
            .map(|&r| {
                let i = it.items[r] as usize;
                ((clicks[i] + ITEM_RATE_PRIOR * rate) / (shown[i] + ITEM_RATE_PRIOR)) as f32
            })
            .collect();
        Ok(ClickBaselines {
            global_rate: metrics_of(dataset, test, &yt, &global)?,
            item_rate: metrics_of(dataset, test, &yt, &item)?,
        })
    }
}
