//! Item attributes: the raw side-feature values of a model's items, by item row,
//! kept so that a request can filter on them (`"category": ["shoes"]`, `"price":
//! {"lt": 50}`), cap a list's items per value or boost recent launches.
//!
//! A model only keeps its features encoded (vocabulary indices, z-scores), which
//! loses rare values and exact numbers; `attributes.json` keeps them as they were in
//! the item features file the model was trained with. It is optional (a model saved
//! without it serves no filters) and sealed like every other model file.
//!
//! Format (`format_version` 1): `{"format_version": 1, "item_ids": [one per item
//! row, "" for the vocabulary's OOV rows], "columns": [{"name", "type": "categorical"
//! | "multi-categorical" | "numeric", "values": [one per item row: a string, a list of
//! strings, a number, or null when missing]}]}`. Text features are not kept (they
//! cannot be compared).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use shortlist_core::atomic::write_file;
use shortlist_core::dataset::{ColumnValues, FeatureTable, IdMap};
use shortlist_features::Vocabulary;

use crate::error::{Error, Result};
use crate::files::ModelFiles;

/// File name of the item attribute table inside a model directory.
pub const ATTRIBUTES: &str = "attributes.json";
/// Version of the file layout.
pub const ATTRIBUTES_VERSION: u32 = 1;

/// Marks a missing categorical value.
const NONE: u32 = u32::MAX;

/// One attribute's values by item row.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// One label per item (`values[row]` indexes `dictionary`; missing: none).
    Categorical {
        /// The distinct labels.
        dictionary: Labels,
        /// Label per row.
        values: Vec<u32>,
    },
    /// Several labels per item (tags).
    MultiCategorical {
        /// The distinct labels.
        dictionary: Labels,
        /// Labels per row (empty when missing).
        values: Vec<Box<[u32]>>,
    },
    /// A number per item (NaN when missing).
    Numeric(Vec<f64>),
}

/// Distinct labels of a categorical attribute and their ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Labels {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Labels {
    /// The id of `label`, if some item has it.
    pub fn get(&self, label: &str) -> Option<u32> {
        self.ids.get(label).copied()
    }

    /// The label of `id`.
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    /// The id of `label`, added when new.
    pub fn intern(&mut self, label: &str) -> u32 {
        if let Some(&i) = self.ids.get(label) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(label.to_owned());
        self.ids.insert(label.to_owned(), i);
        i
    }
}

impl Values {
    /// `categorical`, `multi-categorical` or `numeric`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Values::Categorical { .. } => "categorical",
            Values::MultiCategorical { .. } => "multi-categorical",
            Values::Numeric(_) => "numeric",
        }
    }

    /// The number of `row`, if numeric and present.
    pub fn number(&self, row: u32) -> Option<f64> {
        match self {
            Values::Numeric(v) => v.get(row as usize).copied().filter(|x| !x.is_nan()),
            _ => None,
        }
    }

    /// The label id of `row`, if categorical (one label) and present.
    pub fn label(&self, row: u32) -> Option<u32> {
        match self {
            Values::Categorical { values, .. } => {
                values.get(row as usize).copied().filter(|&l| l != NONE)
            }
            _ => None,
        }
    }

    /// Whether `row` has one of the label ids `wanted` (sorted).
    pub fn has_any(&self, row: u32, wanted: &[u32]) -> bool {
        match self {
            Values::Categorical { values, .. } => values
                .get(row as usize)
                .is_some_and(|l| wanted.binary_search(l).is_ok()),
            Values::MultiCategorical { values, .. } => values
                .get(row as usize)
                .is_some_and(|ls| ls.iter().any(|l| wanted.binary_search(l).is_ok())),
            Values::Numeric(_) => false,
        }
    }

    /// The dictionary of a categorical attribute.
    pub fn labels(&self) -> Option<&Labels> {
        match self {
            Values::Categorical { dictionary, .. }
            | Values::MultiCategorical { dictionary, .. } => Some(dictionary),
            Values::Numeric(_) => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Categorical { values, .. } => values.len(),
            Values::MultiCategorical { values, .. } => values.len(),
            Values::Numeric(v) => v.len(),
        }
    }

    fn push_missing(&mut self) {
        match self {
            Values::Categorical { values, .. } => values.push(NONE),
            Values::MultiCategorical { values, .. } => values.push(Box::new([])),
            Values::Numeric(v) => v.push(f64::NAN),
        }
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Column name (the item features file's).
    pub name: String,
    /// Values by item row.
    pub values: Values,
}

/// A raw value given for one item (an added item's features, a file's cell).
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A label.
    Label(String),
    /// Several labels.
    Labels(Vec<String>),
    /// A number.
    Number(f64),
}

/// The attributes of every item row of a model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemAttributes {
    rows: usize,
    columns: Vec<Attribute>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format_version: u32,
    item_ids: Vec<String>,
    columns: Vec<FileColumn>,
}

/// One column as written, tagged by `"type"`; read through [`ColumnFields`] rather
/// than serde's internally tagged enum, which buffers every value before reading it
/// again.
#[derive(Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    deny_unknown_fields,
    try_from = "ColumnFields"
)]
enum FileColumn {
    Categorical {
        name: String,
        values: Vec<Option<String>>,
    },
    MultiCategorical {
        name: String,
        values: Vec<Vec<String>>,
    },
    Numeric {
        name: String,
        values: Vec<Option<f64>>,
    },
}

/// The kinds of [`FileColumn`], as its `"type"` names them.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ColumnKind {
    Categorical,
    MultiCategorical,
    Numeric,
}

/// A [`FileColumn`] object's fields, read in one pass.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFields {
    #[serde(rename = "type")]
    kind: ColumnKind,
    name: String,
    values: Vec<Cell>,
}

/// One value of a column as written: null, a string, a number or a list of strings.
enum Cell {
    Null,
    Text(String),
    Number(f64),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> serde::de::Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, a string, a number or a list of strings")
            }
            fn visit_unit<E>(self) -> std::result::Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Cell, E> {
                Ok(Cell::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Cell, E> {
                Ok(Cell::Text(v))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Cell, E> {
                Ok(Cell::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Cell, E> {
                Ok(Cell::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Cell, E> {
                Ok(Cell::Number(v as f64))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Cell, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(Cell::List(v))
            }
        }
        d.deserialize_any(CellVisitor)
    }
}

impl TryFrom<ColumnFields> for FileColumn {
    type Error = String;

    fn try_from(c: ColumnFields) -> std::result::Result<Self, String> {
        let name = c.name;
        let bad = |k: usize, what: &str| format!("column {name:?}: value {k} is not {what}");
        let values = c.values.into_iter().enumerate();
        Ok(match c.kind {
            ColumnKind::Categorical => FileColumn::Categorical {
                values: values
                    .map(|(k, v)| match v {
                        Cell::Null => Ok(None),
                        Cell::Text(s) => Ok(Some(s)),
                        _ => Err(bad(k, "a string or null")),
                    })
                    .collect::<std::result::Result<_, _>>()?,
                name,
            },
            ColumnKind::MultiCategorical => FileColumn::MultiCategorical {
                values: values
                    .map(|(k, v)| match v {
                        Cell::List(l) => Ok(l),
                        _ => Err(bad(k, "a list of strings")),
                    })
                    .collect::<std::result::Result<_, _>>()?,
                name,
            },
            ColumnKind::Numeric => FileColumn::Numeric {
                values: values
                    .map(|(k, v)| match v {
                        Cell::Null => Ok(None),
                        Cell::Number(x) => Ok(Some(x)),
                        _ => Err(bad(k, "a number or null")),
                    })
                    .collect::<std::result::Result<_, _>>()?,
                name,
            },
        })
    }
}

impl ItemAttributes {
    /// The non-text columns of `table` (rows of `items`) by the rows of the item
    /// vocabulary `vocab`; OOV rows and items without a feature row are missing.
    pub fn from_table(vocab: &Vocabulary, items: &IdMap, table: &FeatureTable) -> Self {
        let rows = vocab.len();
        let source: Vec<Option<usize>> = (0..rows as u32)
            .map(|r| {
                vocab
                    .value(r)
                    .and_then(|raw| items.get(raw))
                    .map(|i| i as usize)
            })
            .collect();
        let mut columns = Vec::new();
        for col in &table.columns {
            let values = match &col.values {
                ColumnValues::Categorical(v) => {
                    let mut dictionary = Labels::default();
                    let values = source
                        .iter()
                        .map(|s| match s.and_then(|i| v.get(i)) {
                            Some(x) if !x.is_empty() => dictionary.intern(x),
                            _ => NONE,
                        })
                        .collect();
                    Values::Categorical { dictionary, values }
                }
                ColumnValues::MultiCategorical(v) => {
                    let mut dictionary = Labels::default();
                    let values = source
                        .iter()
                        .map(|s| labels_of(&mut dictionary, s.and_then(|i| v.get(i))))
                        .collect();
                    Values::MultiCategorical { dictionary, values }
                }
                ColumnValues::Numeric(v) => Values::Numeric(
                    source
                        .iter()
                        .map(|s| s.and_then(|i| v.get(i)).copied().unwrap_or(f64::NAN))
                        .collect(),
                ),
                ColumnValues::Text(_) => continue,
            };
            columns.push(Attribute {
                name: col.name.clone(),
                values,
            });
        }
        ItemAttributes { rows, columns }
    }

    /// Number of item rows covered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The attributes, in file order.
    pub fn columns(&self) -> &[Attribute] {
        &self.columns
    }

    /// The attribute named `name`.
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The attributes' names, comma-separated (for messages).
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        names.join(", ")
    }

    /// Adds a row with every attribute missing; returns its index.
    pub fn push_row(&mut self) -> u32 {
        for c in &mut self.columns {
            c.values.push_missing();
        }
        self.rows += 1;
        (self.rows - 1) as u32
    }

    /// Checks that `value` fits attribute `name` (see [`set`](Self::set)).
    pub fn check_value(&self, name: &str, value: &RawValue) -> Result<()> {
        let Some(col) = self.get(name) else {
            return Err(Error::invalid(name, "not an item attribute"));
        };
        let wrong = |t: &str| Err(Error::invalid(name, format!("expected {t}")));
        match (&col.values, value) {
            (Values::Categorical { .. }, RawValue::Label(_))
            | (Values::MultiCategorical { .. }, RawValue::Label(_) | RawValue::Labels(_)) => Ok(()),
            (Values::Numeric(_), RawValue::Number(x)) if x.is_finite() => Ok(()),
            (Values::Categorical { .. }, _) => wrong("a string (categorical)"),
            (Values::MultiCategorical { .. }, _) => wrong("a list of strings (multi-categorical)"),
            (Values::Numeric(_), _) => wrong("a finite number (numeric)"),
        }
    }

    /// Sets attribute `name` of `row` (`None`: missing). The value's kind must match
    /// the attribute's type (a number for a numeric one, a label or a list of labels
    /// for a categorical one); the error says what was expected.
    pub fn set(&mut self, row: u32, name: &str, value: Option<&RawValue>) -> Result<()> {
        let r = row as usize;
        if r >= self.rows {
            return Err(Error::invalid(
                name,
                format!("row {row} beyond the {} items", self.rows),
            ));
        }
        let Some(col) = self.columns.iter_mut().find(|c| c.name == name) else {
            return Err(Error::invalid(name, "not an item attribute"));
        };
        let wrong = |t: &str| Error::invalid(name, format!("expected {t}"));
        match (&mut col.values, value) {
            (Values::Categorical { values, .. }, None) => values[r] = NONE,
            (Values::Categorical { dictionary, values }, Some(RawValue::Label(l))) => {
                values[r] = dictionary.intern(l)
            }
            (Values::Categorical { .. }, Some(_)) => return Err(wrong("a string (categorical)")),
            (Values::MultiCategorical { values, .. }, None) => values[r] = Box::new([]),
            (Values::MultiCategorical { dictionary, values }, Some(RawValue::Labels(ls))) => {
                values[r] = labels_of(dictionary, Some(ls))
            }
            (Values::MultiCategorical { dictionary, values }, Some(RawValue::Label(l))) => {
                values[r] = labels_of(dictionary, Some(&vec![l.clone()]))
            }
            (Values::MultiCategorical { .. }, Some(_)) => {
                return Err(wrong("a list of strings (multi-categorical)"))
            }
            (Values::Numeric(v), None) => v[r] = f64::NAN,
            (Values::Numeric(v), Some(RawValue::Number(x))) if x.is_finite() => v[r] = *x,
            (Values::Numeric(_), Some(_)) => return Err(wrong("a finite number (numeric)")),
        }
        Ok(())
    }

    /// Writes `attributes.json` into `dir` (a staging directory, sealed afterwards)
    /// with the item ids of `vocab`.
    pub fn save(&self, dir: &Path, vocab: &Vocabulary) -> Result<()> {
        let file = File {
            format_version: ATTRIBUTES_VERSION,
            item_ids: (0..self.rows as u32)
                .map(|r| vocab.value(r).unwrap_or("").to_owned())
                .collect(),
            columns: self.columns.iter().map(to_file).collect(),
        };
        let json =
            serde_json::to_vec(&file).map_err(|e| Error::invalid(ATTRIBUTES, e.to_string()))?;
        write_file(&dir.join(ATTRIBUTES), &json).map_err(|e| Error::io(dir.join(ATTRIBUTES), e))
    }

    /// Reads `attributes.json` of the model directory `dir` (verified against its
    /// manifest), checked against the item vocabulary `vocab`; `None` when the model
    /// has none.
    pub fn read(dir: &Path, vocab: &Vocabulary) -> Result<Option<Self>> {
        Self::read_from(&ModelFiles::open(dir)?, vocab)
    }

    /// [`read`](Self::read) from a model's files, on disk or in memory (a bundle).
    pub fn read_from(files: &ModelFiles, vocab: &Vocabulary) -> Result<Option<Self>> {
        let path = files.path(ATTRIBUTES);
        let Some(bytes) = files.read_optional(ATTRIBUTES)? else {
            return Ok(None);
        };
        let file: File = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(&path, format!("invalid attribute table: {e}")))?;
        if file.format_version != ATTRIBUTES_VERSION {
            return Err(Error::corrupt(
                &path,
                format!(
                    "format_version {} is not supported (this build reads {ATTRIBUTES_VERSION})",
                    file.format_version
                ),
            ));
        }
        let rows = vocab.len();
        if file.item_ids.len() != rows {
            return Err(Error::corrupt(
                &path,
                format!(
                    "{} item rows, the model's vocabulary has {rows}",
                    file.item_ids.len()
                ),
            ));
        }
        for (r, id) in file.item_ids.iter().enumerate() {
            if vocab.value(r as u32).unwrap_or("") != id {
                return Err(Error::corrupt(
                    &path,
                    format!("item row {r} is {id:?}, the model's vocabulary differs"),
                ));
            }
        }
        let mut columns = Vec::with_capacity(file.columns.len());
        for c in file.columns {
            let (name, values) = from_file(c);
            if values.len() != rows {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "column {name:?} has {} values for {rows} rows",
                        values.len()
                    ),
                ));
            }
            columns.push(Attribute { name, values });
        }
        Ok(Some(ItemAttributes { rows, columns }))
    }
}

fn labels_of(dictionary: &mut Labels, labels: Option<&Vec<String>>) -> Box<[u32]> {
    let mut ids: Vec<u32> = labels
        .into_iter()
        .flatten()
        .filter(|l| !l.is_empty())
        .map(|l| dictionary.intern(l))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_boxed_slice()
}

fn to_file(a: &Attribute) -> FileColumn {
    let name = a.name.clone();
    match &a.values {
        Values::Categorical { dictionary, values } => FileColumn::Categorical {
            name,
            values: values
                .iter()
                .map(|&l| (l != NONE).then(|| dictionary.name(l).to_owned()))
                .collect(),
        },
        Values::MultiCategorical { dictionary, values } => FileColumn::MultiCategorical {
            name,
            values: values
                .iter()
                .map(|ls| ls.iter().map(|&l| dictionary.name(l).to_owned()).collect())
                .collect(),
        },
        Values::Numeric(v) => FileColumn::Numeric {
            name,
            values: v.iter().map(|x| Some(*x).filter(|x| !x.is_nan())).collect(),
        },
    }
}

fn from_file(c: FileColumn) -> (String, Values) {
    match c {
        FileColumn::Categorical { name, values } => {
            let mut dictionary = Labels::default();
            let values = values
                .iter()
                .map(|v| match v {
                    Some(x) if !x.is_empty() => dictionary.intern(x),
                    _ => NONE,
                })
                .collect();
            (name, Values::Categorical { dictionary, values })
        }
        FileColumn::MultiCategorical { name, values } => {
            let mut dictionary = Labels::default();
            let values = values
                .iter()
                .map(|v| labels_of(&mut dictionary, Some(v)))
                .collect();
            (name, Values::MultiCategorical { dictionary, values })
        }
        FileColumn::Numeric { name, values } => (
            name,
            Values::Numeric(
                values
                    .into_iter()
                    .map(|x| x.filter(|x| x.is_finite()).unwrap_or(f64::NAN))
                    .collect(),
            ),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_core::dataset::Column;

    fn table() -> (Vocabulary, IdMap, FeatureTable) {
        // The vocabulary orders b before a and has one OOV row; c has no row.
        let vocab = Vocabulary::from_values(vec!["b".into(), "a".into()], 1);
        let items = IdMap::from_raw(vec!["a".into(), "b".into(), "c".into()]);
        let t = FeatureTable {
            columns: vec![
                Column {
                    name: "category".into(),
                    values: ColumnValues::Categorical(vec![
                        "shoes".into(),
                        "".into(),
                        "hats".into(),
                    ]),
                },
                Column {
                    name: "tags".into(),
                    values: ColumnValues::MultiCategorical(vec![
                        vec!["red".into(), "sale".into()],
                        vec!["red".into()],
                        vec![],
                    ]),
                },
                Column {
                    name: "price".into(),
                    values: ColumnValues::Numeric(vec![49.99, f64::NAN, 10.0]),
                },
                Column {
                    name: "title".into(),
                    values: ColumnValues::Text(vec!["A".into(), "B".into(), "C".into()]),
                },
            ],
        };
        (vocab, items, t)
    }

    #[test]
    fn rows_follow_the_vocabulary_and_round_trip_through_the_file() {
        let (vocab, items, t) = table();
        let a = ItemAttributes::from_table(&vocab, &items, &t);
        assert_eq!((a.rows(), a.names()), (3, "category, tags, price".into()));
        let cat = &a.get("category").unwrap().values;
        // Row 0 is OOV, row 1 is "b" (no category), row 2 is "a" (shoes).
        assert_eq!((cat.label(0), cat.label(1)), (None, None));
        let shoes = cat.labels().unwrap().get("shoes").unwrap();
        assert_eq!(cat.label(2), Some(shoes));
        assert!(cat.labels().unwrap().get("hats").is_none(), "c has no row");
        let price = &a.get("price").unwrap().values;
        assert_eq!((price.number(1), price.number(2)), (None, Some(49.99)));
        let tags = &a.get("tags").unwrap().values;
        let red = tags.labels().unwrap().get("red").unwrap();
        let sale = tags.labels().unwrap().get("sale").unwrap();
        assert!(tags.has_any(1, &[red]) && tags.has_any(2, &[sale]) && !tags.has_any(1, &[sale]));
        let dir = tempfile::tempdir().unwrap();
        a.save(dir.path(), &vocab).unwrap();
        std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
        let back = ItemAttributes::read(dir.path(), &vocab).unwrap().unwrap();
        let (cat2, price2) = (
            &back.get("category").unwrap().values,
            &back.get("price").unwrap().values,
        );
        assert_eq!(cat2.labels().unwrap().name(cat2.label(2).unwrap()), "shoes");
        assert_eq!(price2.number(2), Some(49.99));
        assert_eq!(back.rows(), 3);
        let tags2 = &back.get("tags").unwrap().values;
        let sale2 = tags2.labels().unwrap().get("sale").unwrap();
        assert!(tags2.has_any(2, &[sale2]) && !tags2.has_any(1, &[sale2]));
        // A value of the wrong kind, or a column of an unknown type, names the column.
        let path = dir.path().join(ATTRIBUTES);
        let good: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let column = |json: &serde_json::Value, name: &str| {
            json["columns"]
                .as_array()
                .unwrap()
                .iter()
                .position(|c| c["name"] == name)
                .unwrap()
        };
        for (name, field, value, want) in [
            (
                "price",
                "values",
                serde_json::json!([null, null, "cheap"]),
                "column \"price\": value 2 is not a number or null",
            ),
            (
                "tags",
                "values",
                serde_json::json!([[], "red", []]),
                "column \"tags\": value 1 is not a list of strings",
            ),
            (
                "category",
                "values",
                serde_json::json!([null, 3, null]),
                "column \"category\": value 1 is not a string or null",
            ),
            (
                "price",
                "type",
                serde_json::json!("colour"),
                "unknown variant `colour`",
            ),
        ] {
            let mut json = good.clone();
            let k = column(&json, name);
            json["columns"][k][field] = value;
            std::fs::write(&path, json.to_string()).unwrap();
            let e = ItemAttributes::read(dir.path(), &vocab)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("invalid attribute table: {want}")),
                "{e}"
            );
        }
        std::fs::write(&path, good.to_string()).unwrap();
        // Another vocabulary: refused, naming the row.
        let other = Vocabulary::from_values(vec!["a".into(), "b".into()], 1);
        let e = ItemAttributes::read(dir.path(), &other)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("item row 1 is \"b\", the model's vocabulary differs"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join(ATTRIBUTES)).unwrap();
        assert!(ItemAttributes::read(dir.path(), &vocab).unwrap().is_none());
    }

    #[test]
    fn rows_can_be_added_and_set_with_type_checks() {
        let (vocab, items, t) = table();
        let mut a = ItemAttributes::from_table(&vocab, &items, &t);
        let r = a.push_row();
        assert_eq!((r, a.rows()), (3, 4));
        a.set(r, "category", Some(&RawValue::Label("boots".into())))
            .unwrap();
        a.set(r, "price", Some(&RawValue::Number(5.0))).unwrap();
        a.set(r, "tags", Some(&RawValue::Label("new".into())))
            .unwrap();
        let cat = &a.get("category").unwrap().values;
        assert_eq!(cat.labels().unwrap().name(cat.label(r).unwrap()), "boots");
        assert_eq!(a.get("price").unwrap().values.number(r), Some(5.0));
        let e = a
            .set(r, "price", Some(&RawValue::Label("cheap".into())))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid price: expected a finite number (numeric)");
        let e = a.set(r, "colour", None).unwrap_err().to_string();
        assert_eq!(e, "invalid colour: not an item attribute");
        a.set(r, "price", None).unwrap();
        assert_eq!(a.get("price").unwrap().values.number(r), None);
    }
}
