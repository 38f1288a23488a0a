//! Text tables of metrics for the human reports (`quickstart`, `eval`, `train`):
//! sections, each with a title, its own value columns and rows of numbers. The first
//! column (titles and metric names) has one width across sections, so adding a
//! section or a row is one call and the table stays aligned.
//!
//! ```text
//! retrieval (test, higher is better)   model  popularity
//!   recall@10                         0.0912      0.0610
//! ```

/// One block of a [`Table`]: a heading row (title + column names) and metric rows.
#[derive(Debug, Clone, Default)]
pub struct Section {
    title: String,
    columns: Vec<String>,
    rows: Vec<(String, Vec<Option<f64>>)>,
}

impl Section {
    /// Adds a row: a metric name and one value per column (`None`: blank cell).
    /// Values beyond the columns are ignored; missing ones are blank.
    pub fn row(&mut self, name: &str, values: &[Option<f64>]) -> &mut Self {
        self.rows.push((name.to_owned(), values.to_vec()));
        self
    }
}

/// Sections of metrics rendered as aligned text.
#[derive(Debug, Clone)]
pub struct Table {
    sections: Vec<Section>,
    decimals: usize,
}

impl Table {
    /// An empty table printing values with `decimals` decimals.
    pub fn new(decimals: usize) -> Self {
        Table {
            sections: Vec::new(),
            decimals,
        }
    }

    /// Starts a section with a title and value column names; add rows to the result.
    pub fn section(&mut self, title: &str, columns: &[&str]) -> &mut Section {
        self.sections.push(Section {
            title: title.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        });
        let last = self.sections.len() - 1;
        &mut self.sections[last]
    }

    /// The table as lines of text (sections separated by a blank line, NaN shown as `-`).
    pub fn render(&self) -> String {
        let cell = |v: &Option<f64>| match v {
            Some(x) if x.is_finite() => format!("{:.*}", self.decimals, x),
            Some(_) => "-".to_owned(),
            None => String::new(),
        };
        let first = self
            .sections
            .iter()
            .flat_map(|s| {
                std::iter::once(s.title.chars().count())
                    .chain(s.rows.iter().map(|r| r.0.chars().count() + 2))
            })
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (n, s) in self.sections.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            let widths: Vec<usize> = s
                .columns
                .iter()
                .enumerate()
                .map(|(c, name)| {
                    s.rows
                        .iter()
                        .map(|r| r.1.get(c).map_or(0, |v| cell(v).len()))
                        .chain([name.chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut line = format!("{:<first$}", s.title);
            for (name, w) in s.columns.iter().zip(&widths) {
                line.push_str(&format!("  {name:>w$}"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            for (name, values) in &s.rows {
                let mut line = format!("  {name:<w$}", w = first - 2);
                for (c, w) in widths.iter().enumerate() {
                    let text = values.get(c).map(cell).unwrap_or_default();
                    line.push_str(&format!("  {text:>w$}"));
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_align_on_one_first_column() {
        let mut t = Table::new(3);
        t.section("retrieval", &["model", "popularity"])
            .row("recall@10", &[Some(0.1234), Some(0.05)])
            .row("top_k_accuracy@100", &[Some(f64::NAN), None]);
        t.section("ranking (lower is better)", &["model", "mean"])
            .row("RMSE", &[Some(0.9), Some(1.125)]);
        assert_eq!(
            t.render(),
            "\
retrieval                  model  popularity
  recall@10                0.123       0.050
  top_k_accuracy@100           -

ranking (lower is better)  model   mean
  RMSE                     0.900  1.125
"
        );
    }
}
