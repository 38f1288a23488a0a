//! The in-memory dataset every loader produces.
//!
//! Interactions are columnar (user index, item index, rating, timestamp); users and
//! items are dense indices `0..n` assigned in first-seen order, with [`IdMap`]s back
//! to the raw ids of the source files. Side features live in [`FeatureTable`]s with
//! one row per user or item index.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Raw id ↔ dense index map (raw ids are strings of any shape).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    raw: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl IdMap {
    /// Index of `raw`, inserting it at the end if new.
    pub fn intern(&mut self, raw: &str) -> u32 {
        if let Some(&i) = self.index.get(raw) {
            return i;
        }
        let i = self.raw.len() as u32;
        self.raw.push(raw.to_owned());
        self.index.insert(raw.to_owned(), i);
        i
    }

    /// Index of `raw`, if present.
    pub fn get(&self, raw: &str) -> Option<u32> {
        self.index.get(raw).copied()
    }

    /// Raw id of index `i`. Panics if `i` is out of range (indices come from this map).
    pub fn raw(&self, i: u32) -> &str {
        &self.raw[i as usize]
    }

    /// All raw ids in index order.
    pub fn raw_ids(&self) -> &[String] {
        &self.raw
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Builds a map from raw ids in index order. Duplicates keep their first index.
    pub fn from_raw(raw: Vec<String>) -> Self {
        let mut m = IdMap::default();
        for r in raw {
            m.intern(&r);
        }
        m
    }
}

/// Columnar interactions. All columns have the same length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interactions {
    /// User index per interaction.
    pub users: Vec<u32>,
    /// Item index per interaction.
    pub items: Vec<u32>,
    /// Rating per interaction (1.0 for implicit feedback).
    pub ratings: Vec<f32>,
    /// Unix timestamp (seconds) per interaction, when the source has them.
    pub timestamps: Option<Vec<i64>>,
}

impl Interactions {
    /// Number of interactions.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The rows at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Interactions {
        Interactions {
            users: rows.iter().map(|&r| self.users[r]).collect(),
            items: rows.iter().map(|&r| self.items[r]).collect(),
            ratings: rows.iter().map(|&r| self.ratings[r]).collect(),
            timestamps: self
                .timestamps
                .as_ref()
                .map(|t| rows.iter().map(|&r| t[r]).collect()),
        }
    }

    /// Timestamp of row `r`, if the source has timestamps.
    pub fn timestamp(&self, r: usize) -> Option<i64> {
        self.timestamps.as_ref().map(|t| t[r])
    }
}

/// Type of a side-feature column, as declared in a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum ColumnKind {
    /// One categorical value per row (e.g. occupation).
    Categorical,
    /// Several categorical values per row (e.g. genres).
    MultiCategorical,
    /// A number per row (e.g. age, price).
    Numeric,
    /// Free text, tokenised later (e.g. a title).
    Text,
}

/// Values of a side-feature column, one entry per user or item index.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// One value per row; empty string when missing.
    Categorical(Vec<String>),
    /// Several values per row; empty when missing.
    MultiCategorical(Vec<Vec<String>>),
    /// Number per row; NaN when missing.
    Numeric(Vec<f64>),
    /// Text per row; empty when missing.
    Text(Vec<String>),
}

impl ColumnValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Categorical(v) | ColumnValues::Text(v) => v.len(),
            ColumnValues::MultiCategorical(v) => v.len(),
            ColumnValues::Numeric(v) => v.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column's kind.
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnValues::Categorical(_) => ColumnKind::Categorical,
            ColumnValues::MultiCategorical(_) => ColumnKind::MultiCategorical,
            ColumnValues::Numeric(_) => ColumnKind::Numeric,
            ColumnValues::Text(_) => ColumnKind::Text,
        }
    }

    /// An empty column of `kind`.
    pub fn empty(kind: &ColumnKind) -> Self {
        match kind {
            ColumnKind::Categorical => ColumnValues::Categorical(Vec::new()),
            ColumnKind::MultiCategorical => ColumnValues::MultiCategorical(Vec::new()),
            ColumnKind::Numeric => ColumnValues::Numeric(Vec::new()),
            ColumnKind::Text => ColumnValues::Text(Vec::new()),
        }
    }

    /// Pads the column with missing values up to `len` rows.
    pub fn pad_to(&mut self, len: usize) {
        match self {
            ColumnValues::Categorical(v) | ColumnValues::Text(v) => v.resize(len, String::new()),
            ColumnValues::MultiCategorical(v) => v.resize(len, Vec::new()),
            ColumnValues::Numeric(v) => v.resize(len, f64::NAN),
        }
    }
}

/// A named side-feature column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name (e.g. `genres`).
    pub name: String,
    /// One value per user or item index.
    pub values: ColumnValues,
}

/// Side features of users or items: columns with one row per index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureTable {
    /// The columns, in declaration order.
    pub columns: Vec<Column>,
}

impl FeatureTable {
    /// Column named `name`.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Pads every column with missing values up to `len` rows (for ids that appear
    /// in interactions but not in the feature file).
    pub fn pad_to(&mut self, len: usize) {
        for c in &mut self.columns {
            c.values.pad_to(len);
        }
    }
}

/// Whether ratings are explicit scores or implicit (every interaction is a positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feedback {
    /// Ratings are explicit scores.
    Explicit,
    /// No rating column: each interaction counts 1.0.
    Implicit,
}

/// A loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Human-readable name (`ml-100k`, a path, …).
    pub name: String,
    /// User raw ids.
    pub users: IdMap,
    /// Item raw ids.
    pub items: IdMap,
    /// The interactions.
    pub interactions: Interactions,
    /// User side features (one row per user index).
    pub user_features: FeatureTable,
    /// Item side features (one row per item index).
    pub item_features: FeatureTable,
    /// Explicit or implicit feedback.
    pub feedback: Feedback,
    /// Name of the item column holding display titles, if any.
    pub title_column: Option<String>,
}

impl Default for Dataset {
    fn default() -> Self {
        Dataset {
            name: String::new(),
            users: IdMap::default(),
            items: IdMap::default(),
            interactions: Interactions::default(),
            user_features: FeatureTable::default(),
            item_features: FeatureTable::default(),
            feedback: Feedback::Explicit,
            title_column: None,
        }
    }
}

impl Dataset {
    /// Display title of item `i` (its title column, else its raw id).
    pub fn item_title(&self, i: u32) -> &str {
        if let Some(name) = &self.title_column {
            if let Some(Column {
                values: ColumnValues::Text(v) | ColumnValues::Categorical(v),
                ..
            }) = self.item_features.get(name)
            {
                if let Some(t) = v.get(i as usize) {
                    if !t.is_empty() {
                        return t;
                    }
                }
            }
        }
        self.items.raw(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idmap_round_trip() {
        let m = IdMap::from_raw(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a"), Some(1));
        assert_eq!(m.get("zz"), None);
        assert_eq!(m.raw(0), "b");
    }

    #[test]
    fn select_keeps_order_and_timestamps() {
        let x = Interactions {
            users: vec![0, 1, 2],
            items: vec![5, 6, 7],
            ratings: vec![1.0, 2.0, 3.0],
            timestamps: Some(vec![10, 20, 30]),
        };
        let s = x.select(&[2, 0]);
        assert_eq!(s.users, vec![2, 0]);
        assert_eq!(s.timestamps, Some(vec![30, 10]));
    }

    #[test]
    fn padding_fills_missing_values() {
        let mut t = FeatureTable {
            columns: vec![Column {
                name: "age".into(),
                values: ColumnValues::Numeric(vec![1.0]),
            }],
        };
        t.pad_to(3);
        match &t.columns[0].values {
            ColumnValues::Numeric(v) => assert!(v[0] == 1.0 && v[2].is_nan()),
            other => panic!("{other:?}"),
        }
    }
}
