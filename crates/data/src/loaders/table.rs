//! Building side-feature tables row by row, aligned to an [`IdMap`].

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use shortlist_core::dataset::{Column, ColumnKind, ColumnValues, FeatureTable, IdMap};

use crate::error::RowError;

/// One parsed feature value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Cat(String),
    Multi(Vec<String>),
    Num(f64),
    Text(String),
}

/// Collects feature rows keyed by raw id; ids new to the map are appended to it
/// (an item with metadata but no interactions is still part of the catalogue).
pub(crate) struct TableBuilder {
    table: FeatureTable,
    first_line: FxHashMap<u32, usize>,
}

impl TableBuilder {
    pub(crate) fn new(columns: &[(&str, ColumnKind)]) -> Self {
        TableBuilder {
            table: FeatureTable {
                columns: columns
                    .iter()
                    .map(|(name, kind)| Column {
                        name: (*name).to_owned(),
                        values: ColumnValues::empty(kind),
                    })
                    .collect(),
            },
            first_line: FxHashMap::default(),
        }
    }

    /// Sets the row of `raw_id`. A second row for the same id is an error naming both lines.
    pub(crate) fn set(
        &mut self,
        ids: &mut IdMap,
        raw_id: &str,
        values: Vec<Value>,
        err: impl Fn(String) -> RowError,
        line: usize,
    ) -> Result<(), RowError> {
        let idx = ids.intern(raw_id);
        match self.first_line.entry(idx) {
            Entry::Occupied(e) => {
                return Err(err(format!(
                    "duplicate id {raw_id:?}, first defined on line {}",
                    e.get()
                )));
            }
            Entry::Vacant(v) => {
                v.insert(line);
            }
        }
        let row = idx as usize;
        for (col, value) in self.table.columns.iter_mut().zip(values) {
            if col.values.len() <= row {
                col.values.pad_to(row + 1);
            }
            match (&mut col.values, value) {
                (ColumnValues::Categorical(v), Value::Cat(x)) => v[row] = x,
                (ColumnValues::MultiCategorical(v), Value::Multi(x)) => v[row] = x,
                (ColumnValues::Numeric(v), Value::Num(x)) => v[row] = x,
                (ColumnValues::Text(v), Value::Text(x)) => v[row] = x,
                // Callers build values from the same column list; a mismatch is a bug here.
                (c, v) => unreachable!("column {} got value {v:?}", c.kind_name()),
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self, len: usize) -> FeatureTable {
        self.table.pad_to(len);
        self.table
    }
}

trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for ColumnValues {
    fn kind_name(&self) -> &'static str {
        match self.kind() {
            ColumnKind::Categorical => "categorical",
            ColumnKind::MultiCategorical => "multi-categorical",
            ColumnKind::Numeric => "numeric",
            ColumnKind::Text => "text",
        }
    }
}

/// Splits a multi-valued field on `sep`, trimming and dropping empty parts.
pub(crate) fn split_multi(s: &str, sep: &str) -> Vec<String> {
    s.split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}
