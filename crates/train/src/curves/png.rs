//! Drawing [`Panel`]s into `curves.png` with plotters (the `plot` feature): the
//! embedded font, the figure's layout, the legends. Kept apart from `curves.rs` so
//! that the curves themselves (panels, CSV) need no plotting library.

use std::path::Path;

use plotters::style::RGBColor;

use super::{Panel, Rgb};
use crate::error::{Error, Result};

impl From<Rgb> for RGBColor {
    fn from(c: Rgb) -> Self {
        RGBColor(c.0, c.1, c.2)
    }
}

/// DejaVu Sans (Bitstream Vera license), embedded so plotting needs no system fonts.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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

/// Width of a figure in pixels and the share of it given to the legends.
const WIDTH: u32 = 1100;
const LEGEND_WIDTH: u32 = 380;
const PANEL_HEIGHT: u32 = 330;

/// The y range of a panel: the values' span with 6 % headroom on each side.
fn y_range(panel: &Panel) -> (f64, f64) {
    let ys = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else {
        lo.abs().max(1e-3) * 0.05
    };
    (lo - pad, hi + pad)
}

/// Draws `panels` one under the other into a PNG at `path` (written under a
/// temporary name, then renamed), with the embedded font.
pub fn plot_panels(path: &Path, panels: &[Panel]) -> Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let err = |e: String| Error::Output {
        path: path.to_path_buf(),
        message: e,
    };
    // Draw next to the target under a temporary name, then rename (atomic).
    let name = path
        .file_name()
        .map_or("curves.png".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.partial.png"));
    {
        let height = PANEL_HEIGHT * panels.len().max(1) as u32;
        let root = BitMapBackend::new(&tmp, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (area, panel) in areas.iter().zip(panels) {
            let (plot, legend) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
            let last = panel
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.0))
                .max()
                .unwrap_or(1)
                .max(2);
            let (lo, hi) = y_range(panel);
            let mut chart = ChartBuilder::on(&plot)
                .caption(&panel.title, ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(1u32..last, lo..hi)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(&panel.y_label)
                .x_labels((last as usize).min(12))
                .x_label_formatter(&|x| x.to_string())
                .y_label_formatter(&|y| format!("{y:.3}"))
                .light_line_style(RGBColor(242, 242, 242))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for line in &panel.lines {
                let pts: Vec<(u32, f64)> = line
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite())
                    .collect();
                let style = RGBColor::from(line.color).stroke_width(2);
                if line.dashed {
                    chart
                        .draw_series(DashedLineSeries::new(pts, 9, 6, style))
                        .map_err(|e| err(e.to_string()))?;
                    continue;
                }
                if pts.len() <= 30 {
                    chart
                        .draw_series(
                            pts.iter()
                                .map(|&p| Circle::new(p, 3, RGBColor::from(line.color).filled())),
                        )
                        .map_err(|e| err(e.to_string()))?;
                }
                chart
                    .draw_series(LineSeries::new(pts, style))
                    .map_err(|e| err(e.to_string()))?;
            }
            // The legend, to the right of the plotting area (a label may span lines).
            let mut y = 48;
            for line in &panel.lines {
                let style = RGBColor::from(line.color).stroke_width(2);
                let segments: Vec<(i32, i32)> = if line.dashed {
                    vec![(4, 13), (19, 28)]
                } else {
                    vec![(4, 28)]
                };
                for (a, b) in segments {
                    legend
                        .draw(&PathElement::new(vec![(a, y), (b, y)], style))
                        .map_err(|e| err(e.to_string()))?;
                }
                for text in line.label.lines() {
                    legend
                        .draw(&Text::new(text.to_owned(), (36, y - 8), ("sans-serif", 14)))
                        .map_err(|e| err(e.to_string()))?;
                    y += 18;
                }
                y += 6;
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::curves::{Line, BASELINE_GREY};

    #[test]
    fn y_range_pads_the_span_and_handles_flat_and_empty_panels() {
        let p = |pts: Vec<(u32, f64)>| Panel {
            title: String::new(),
            y_label: String::new(),
            lines: vec![Line::epochs("a", BASELINE_GREY, pts)],
        };
        let (lo, hi) = y_range(&p(vec![(1, 1.0), (2, 2.0), (3, f64::NAN)]));
        assert!((lo - 0.94).abs() < 1e-12 && (hi - 2.06).abs() < 1e-12);
        let (lo, hi) = y_range(&p(vec![(1, 2.0)]));
        assert!((lo - 1.9).abs() < 1e-12 && (hi - 2.1).abs() < 1e-12);
        assert_eq!(y_range(&p(vec![])), (0.0, 1.0));
    }
}
