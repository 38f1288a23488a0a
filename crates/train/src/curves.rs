//! Learning curves: `curves.csv` and `curves.png` (plotters' bitmap backend, text drawn
//! with ab_glyph from a font embedded in the binary: no system font libraries).

use std::fmt::Write as _;
use std::path::Path;

use shortlist_core::atomic::write_file;

use crate::error::{Error, Result};
use crate::trainer::History;

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

impl History {
    /// The per-epoch records as CSV.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "epoch,train_loss,train_rmse,valid_loss,valid_rmse,test_rmse,test_mae,seconds\n",
        );
        for e in &self.epochs {
            let _ = writeln!(
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
        }
        s
    }

    /// Writes `curves.csv` and `curves.png` into `dir`, each atomically.
    pub fn write_curves(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Output {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let csv = dir.join("curves.csv");
        write_file(&csv, self.to_csv().as_bytes()).map_err(|e| Error::Output {
            path: csv.clone(),
            message: e.to_string(),
        })?;
        plot_png(self, &dir.join("curves.png"))
    }
}

/// DejaVu Sans (Bitstream Vera license), embedded so plotting needs no system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Output {
            path: "assets/DejaVuSans.ttf".into(),
            message: "the embedded font could not be parsed".into(),
        })
    }
}

/// Draws RMSE per epoch (train, validation, test) into a PNG at `path`.
pub fn plot_png(history: &History, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let series: Vec<Line> = vec![
        (
            "train RMSE",
            BLUE,
            history
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, e.train_rmse))
                .collect(),
        ),
        (
            "validation RMSE",
            GREEN,
            history
                .epochs
                .iter()
                .filter_map(|e| e.valid_rmse.map(|v| (e.epoch as f64, v)))
                .collect(),
        ),
        (
            "test RMSE",
            RED,
            history
                .epochs
                .iter()
                .filter_map(|e| e.test_rmse.map(|v| (e.epoch as f64, v)))
                .collect(),
        ),
    ];
    let xmax = history.epochs.len().max(2) as f64;
    plot_lines(path, "Ranking: RMSE per epoch", "RMSE", xmax, series)
}

/// One plotted line: legend, colour, (epoch, value) points.
pub type Line<'a> = (&'a str, plotters::style::RGBColor, Vec<(f64, f64)>);

/// Draws `lines` against epochs into a PNG at `path` (written under a temporary name,
/// then renamed), with the embedded font.
pub fn plot_lines(
    path: &Path,
    caption: &str,
    y_desc: &str,
    xmax: f64,
    series: Vec<Line<'_>>,
) -> Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let err = |e: String| Error::Output {
        path: path.to_path_buf(),
        message: e,
    };
    let ys = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo * 0.98, hi * 1.02 + 1e-6)
    } else {
        (0.0, 1.0)
    };
    // Draw next to the target under a temporary name, then rename (atomic).
    let name = path
        .file_name()
        .map_or("curves.png".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.partial.png"));
    {
        let root = BitMapBackend::new(&tmp, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..xmax, lo..hi)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (name, color, pts) in series {
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}
