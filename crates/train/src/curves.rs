//! Learning curves: `curves.csv`, and `curves.png` with the `plot` feature (plotters'
//! bitmap backend, text drawn with ab_glyph from a font embedded in the binary: no
//! system font libraries; `curves/png.rs`). The feature is off by default so that a
//! library user does not compile plotters and a 760 KB font; the `shortlist` CLI turns
//! it on. Without it the curves are still computed ([`Panel`]s) and written as CSV.
//!
//! A figure is a column of [`Panel`]s, one per quantity (its unit on the y axis),
//! against integer epochs, each with its legend to the right of the plotting area
//! (never over the data). Solid lines are per-epoch values; dashed lines are levels:
//! the value a run reports at its end and baselines, so a curve of one part of a
//! model (e.g. one ensemble member) is never mistaken for the reported figure.

use std::fmt::Write as _;
use std::path::Path;

use shortlist_core::atomic::write_file;

use crate::error::{Error, Result};
use crate::trainer::History;

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

#[cfg(feature = "plot")]
mod png;

#[cfg(feature = "plot")]
pub use png::plot_panels;

/// A line colour, red, green, blue (plotters' `RGBColor` when plotting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// Black (a reported model's level).
pub const BLACK: Rgb = Rgb(0, 0, 0);
/// Blue.
pub const BLUE: Rgb = Rgb(0, 0, 255);
/// Red.
pub const RED: Rgb = Rgb(255, 0, 0);
/// Grey of baseline levels.
pub const BASELINE_GREY: Rgb = Rgb(120, 120, 120);
/// Grey of a second baseline.
pub const LIGHT_GREY: Rgb = Rgb(175, 175, 175);
/// A green that reads on white (plotters' `GREEN` is `#00ff00`).
pub const DARK_GREEN: Rgb = Rgb(0, 150, 60);

/// One line of a [`Panel`].
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub color: Rgb,
    /// Dashed (a level: a final or baseline value) or solid (per-epoch values).
    pub dashed: bool,
    /// `(epoch, value)` points; non-finite values are left out.
    pub points: Vec<(u32, f64)>,
}

impl Line {
    /// Per-epoch values, drawn solid (with markers when there are few points).
    pub fn epochs(label: impl Into<String>, color: Rgb, points: Vec<(u32, f64)>) -> Self {
        Line {
            label: label.into(),
            color,
            dashed: false,
            points,
        }
    }

    /// A horizontal dashed line at `value` across epochs `1..=last_epoch`.
    pub fn level(label: impl Into<String>, color: Rgb, value: f64, last_epoch: u32) -> Self {
        Line {
            label: label.into(),
            color,
            dashed: true,
            points: vec![(1, value), (last_epoch.max(2), value)],
        }
    }
}

/// One quantity against epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the plot.
    pub title: String,
    /// The y axis: the quantity and its unit, e.g. `RMSE (rating points)`.
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
}

impl History {
    /// The per-epoch records as CSV (click models add `test_log_loss,test_auc`,
    /// multitask models `train_retrieval_loss`).
    pub fn to_csv(&self) -> String {
        let click = self.epochs.iter().any(|e| e.test_log_loss.is_some());
        let multitask = self.epochs.iter().any(|e| e.train_retrieval_loss.is_some());
        let mut s = String::from(
            "epoch,train_loss,train_rmse,valid_loss,valid_rmse,test_rmse,test_mae,seconds",
        );
        if click {
            s.push_str(",test_log_loss,test_auc");
        }
        if multitask {
            s.push_str(",train_retrieval_loss");
        }
        s.push('\n');
        for e in &self.epochs {
            let _ = write!(
                s,
                "{},{:.6},{:.6},{},{},{},{},{:.4}",
                e.epoch,
                e.train_loss,
                e.train_rmse,
                opt(e.valid_loss),
                opt(e.valid_rmse),
                opt(e.test_rmse),
                opt(e.test_mae),
                e.seconds
            );
            if click {
                let _ = write!(s, ",{},{}", opt(e.test_log_loss), opt(e.test_auc));
            }
            if multitask {
                let _ = write!(s, ",{}", opt(e.train_retrieval_loss));
            }
            s.push('\n');
        }
        s
    }

    /// Writes `curves.csv` and (with the `plot` feature) `curves.png` into `dir`, each
    /// atomically (no baselines; see [`History::write_curves_with`]).
    pub fn write_curves(&self, dir: &Path) -> Result<()> {
        self.write_curves_with(dir, &[])
    }

    /// Writes `curves.csv` and (with the `plot` feature) `curves.png` into `dir`, each
    /// atomically. `baselines` are `(label, test RMSE)` levels drawn dashed in the RMSE
    /// panel.
    pub fn write_curves_with(&self, dir: &Path, baselines: &[(String, f64)]) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Output {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let csv = dir.join("curves.csv");
        write_file(&csv, self.to_csv().as_bytes()).map_err(|e| Error::Output {
            path: csv.clone(),
            message: e.to_string(),
        })?;
        #[cfg(feature = "plot")]
        plot_panels(&dir.join("curves.png"), &self.panels(baselines))?;
        #[cfg(not(feature = "plot"))]
        let _ = baselines;
        Ok(())
    }

    /// What the ensemble members and AutoRec make of the reported model, in words:
    /// `3-member ensemble + AutoRec blend`; `None` for a single plain model.
    pub fn composition(&self) -> Option<String> {
        let members = self.members.max(1);
        match (members > 1, !self.autorec_rmse.is_empty()) {
            (false, false) => None,
            (true, false) => Some(format!("{members}-member ensemble")),
            (false, true) => Some("model + AutoRec blend".into()),
            (true, true) => Some(format!("{members}-member ensemble + AutoRec blend")),
        }
    }

    /// The panels of `curves.png`: RMSE per epoch (of the first ensemble member when
    /// there are several, with the reported model's test RMSE as a level), then the
    /// AutoRec's training RMSE per epoch when it has one.
    pub fn panels(&self, baselines: &[(String, f64)]) -> Vec<Panel> {
        let last = self.epochs.len() as u32;
        let series = |f: &dyn Fn(&crate::trainer::EpochRecord) -> Option<f64>| -> Vec<(u32, f64)> {
            self.epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as u32, v)))
                .collect()
        };
        let composition = self.composition();
        let whose = if composition.is_some() {
            "member 1, "
        } else {
            ""
        };
        let mut lines = vec![
            Line::epochs(
                format!("train ({whose}before each step)"),
                BLUE,
                series(&|e| Some(e.train_rmse)),
            ),
            Line::epochs(
                format!("validation ({whose}carved from train)"),
                DARK_GREEN,
                series(&|e| e.valid_rmse),
            ),
            Line::epochs(
                format!("test ({whose}per epoch)"),
                RED,
                series(&|e| e.test_rmse),
            ),
        ];
        lines.retain(|l| !l.points.is_empty());
        if let (Some(what), Some(m)) = (&composition, self.final_test) {
            lines.push(Line::level(
                format!("test, reported model: {:.4}\n({what})", m.rmse),
                BLACK,
                m.rmse,
                last,
            ));
        }
        for (k, (label, v)) in baselines.iter().enumerate() {
            let grey = if k % 2 == 0 {
                BASELINE_GREY
            } else {
                LIGHT_GREY
            };
            lines.push(Line::level(
                format!("test, {label}: {v:.4}"),
                grey,
                *v,
                last,
            ));
        }
        let title = match &composition {
            Some(_) => "Ranking: RMSE per epoch of ensemble member 1 (dashed: reported model)",
            None => "Ranking: RMSE per epoch",
        }
        .to_owned();
        let mut panels = vec![Panel {
            title,
            y_label: "RMSE (rating points)".into(),
            lines,
        }];
        if !self.autorec_rmse.is_empty() {
            let points = self
                .autorec_rmse
                .iter()
                .enumerate()
                .map(|(k, &v)| (k as u32 + 1, v))
                .collect();
            panels.push(Panel {
                title: "AutoRec (blended into the reported model): RMSE per full-batch epoch"
                    .into(),
                y_label: "RMSE (rating points)".into(),
                lines: vec![Line::epochs("train (observed ratings)", BLUE, points)],
            });
        }
        panels
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trainer::{EpochRecord, Metrics};

    fn record(epoch: usize, test: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 1.0,
            train_rmse: 1.0 - 0.01 * epoch as f64,
            valid_loss: None,
            valid_rmse: None,
            test_rmse: Some(test),
            test_mae: Some(0.7),
            seconds: 0.1,
            train_retrieval_loss: None,
            test_log_loss: None,
            test_auc: None,
        }
    }

    #[test]
    fn ranking_panels_label_the_member_curve_and_show_the_reported_level() {
        let mut h = History {
            epochs: vec![record(1, 0.95), record(2, 0.93)],
            members: 3,
            autorec_rmse: vec![1.0, 0.9, 0.85],
            final_test: Some(Metrics {
                rmse: 0.88,
                mae: 0.69,
                count: 10,
            }),
            ..History::default()
        };
        let panels = h.panels(&[("user + item biases".into(), 0.94)]);
        assert_eq!(panels.len(), 2);
        assert_eq!(
            panels[0].title,
            "Ranking: RMSE per epoch of ensemble member 1 (dashed: reported model)"
        );
        let labels: Vec<&str> = panels[0].lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "train (member 1, before each step)",
                "test (member 1, per epoch)",
                "test, reported model: 0.8800\n(3-member ensemble + AutoRec blend)",
                "test, user + item biases: 0.9400",
            ]
        );
        let reported = &panels[0].lines[2];
        assert!(reported.dashed);
        assert_eq!(reported.points, vec![(1, 0.88), (2, 0.88)]);
        assert_eq!(
            panels[1].lines[0].points,
            vec![(1, 1.0), (2, 0.9), (3, 0.85)]
        );
        // A single plain model: no member wording, no reported level, one panel.
        h.members = 1;
        h.autorec_rmse.clear();
        let panels = h.panels(&[]);
        assert_eq!(panels.len(), 1);
        assert_eq!(panels[0].title, "Ranking: RMSE per epoch");
        assert_eq!(panels[0].lines.len(), 2);
        assert_eq!(panels[0].lines[1].label, "test (per epoch)");
    }
}
