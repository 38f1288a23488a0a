//! The per-epoch history of a retrieval run and its curves (`curves.csv`,
//! `curves.png`), apart from the training loop that fills it.

use serde::Serialize;
use shortlist_eval::Metrics as EvalMetrics;

use crate::error::{Error, Result};

/// One epoch's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Test metrics (when evaluated this epoch).
    pub test: Option<EvalMetrics>,
    /// Training seconds of the epoch (evaluation excluded).
    pub seconds: f64,
    /// Seconds of the evaluation.
    pub eval_seconds: f64,
}

/// Per-epoch history of a retrieval run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetrievalHistory {
    /// The epochs.
    pub epochs: Vec<RetrievalEpoch>,
}

impl RetrievalHistory {
    /// Median training seconds per epoch.
    pub fn median_epoch_seconds(&self) -> f64 {
        let mut s: Vec<f64> = self.epochs.iter().map(|e| e.seconds).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(0.0)
    }

    /// The curves as CSV.
    pub fn to_csv(&self) -> String {
        let keys = [
            "recall@10",
            "recall@20",
            "ndcg@10",
            "ndcg@20",
            "hit_rate@10",
            "top_k_accuracy@100",
        ];
        let mut s = format!("epoch,train_loss,{},seconds,eval_seconds\n", keys.join(","));
        for e in &self.epochs {
            let m: Vec<String> = keys
                .iter()
                .map(|k| {
                    e.test
                        .as_ref()
                        .and_then(|t| t.get(k))
                        .map(|v| format!("{v:.6}"))
                        .unwrap_or_default()
                })
                .collect();
            s.push_str(&format!(
                "{},{:.6},{},{:.4},{:.4}\n",
                e.epoch,
                e.train_loss,
                m.join(","),
                e.seconds,
                e.eval_seconds
            ));
        }
        s
    }
}

impl RetrievalHistory {
    /// Writes `curves.csv` and (with the `plot` feature) `curves.png` into `dir` (no
    /// baseline; see
    /// [`RetrievalHistory::write_curves_with`]).
    pub fn write_curves(&self, dir: &std::path::Path) -> Result<()> {
        self.write_curves_with(dir, None)
    }

    /// Writes `curves.csv` and (with the `plot` feature) `curves.png` into `dir`: one
    /// panel each for test
    /// recall@20, NDCG@10 and top-100 accuracy (with `popularity`'s value as a dashed
    /// level), and one for the training loss.
    pub fn write_curves_with(
        &self,
        dir: &std::path::Path,
        popularity: Option<&EvalMetrics>,
    ) -> Result<()> {
        let csv = dir.join("curves.csv");
        shortlist_core::atomic::write_file(&csv, self.to_csv().as_bytes()).map_err(|e| {
            Error::Output {
                path: csv.clone(),
                message: e.to_string(),
            }
        })?;
        #[cfg(feature = "plot")]
        crate::curves::plot_panels(&dir.join("curves.png"), &self.panels(popularity))?;
        #[cfg(not(feature = "plot"))]
        let _ = popularity;
        Ok(())
    }

    /// The panels of `curves.png` (see [`RetrievalHistory::write_curves_with`]).
    pub fn panels(&self, popularity: Option<&EvalMetrics>) -> Vec<crate::curves::Panel> {
        use crate::curves::{Line, Panel, BASELINE_GREY, BLACK, BLUE, DARK_GREEN, RED};
        let last = self.epochs.len() as u32;
        let metric = |key: &str| -> Vec<(u32, f64)> {
            self.epochs
                .iter()
                .filter_map(|e| {
                    e.test
                        .as_ref()
                        .and_then(|t| t.get(key))
                        .map(|v| (e.epoch as u32, v))
                })
                .collect()
        };
        let mut panels: Vec<Panel> = [
            (
                "recall@20",
                "Retrieval: test recall@20 (seen items excluded)",
                "recall@20 (share of a user's test items)",
                BLUE,
            ),
            (
                "ndcg@10",
                "Retrieval: test NDCG@10 (seen items excluded)",
                "NDCG@10 (0 to 1)",
                DARK_GREEN,
            ),
            (
                "top_k_accuracy@100",
                "Retrieval: test top-100 accuracy (nothing excluded)",
                "top-100 accuracy (share of test ratings)",
                RED,
            ),
        ]
        .into_iter()
        .map(|(key, title, y_label, color)| {
            let mut lines = vec![Line::epochs("model (test)", color, metric(key))];
            if let Some(v) = popularity.and_then(|p| p.get(key)) {
                lines.push(Line::level(
                    format!("popularity baseline: {v:.4}"),
                    BASELINE_GREY,
                    v,
                    last,
                ));
            }
            Panel {
                title: title.into(),
                y_label: y_label.into(),
                lines,
            }
        })
        .collect();
        panels.push(Panel {
            title: "Retrieval: training loss".into(),
            y_label: "softmax cross-entropy (nats per example)".into(),
            lines: vec![Line::epochs(
                "train (mean over the epoch)",
                BLACK,
                self.epochs
                    .iter()
                    .map(|e| (e.epoch as u32, e.train_loss))
                    .collect(),
            )],
        });
        panels
    }
}
