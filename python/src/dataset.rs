//! `Dataset`: a loaded interaction log, or a part of one (the rows of a split).

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use shortlist_cli::cmd::data::LoadArgs;
use shortlist_cli::cmd::train::DataArgs;
use shortlist_cli::cmd::Context;
use shortlist_core::dataset::{
    Column, ColumnValues, Dataset as Core, FeatureTable, Feedback, IdMap, Interactions,
};
use shortlist_data::split::{self, SplitMethod};
use shortlist_data::DuplicatePolicy;

use crate::{bad, py_err};

/// Interactions (user, item, rating, timestamp) with the users' and items' side
/// features: a whole dataset, or the rows of one part of it after `split`.
///
/// The parts of one split share their dataset (ids, features), as the CLI's
/// `train.tsv` and `test.tsv` do once loaded together; a model is fitted on one
/// part and evaluated on another.
#[pyclass(frozen, module = "shortlist._shortlist")]
#[derive(Clone)]
pub struct Dataset {
    /// Every interaction and the id maps and feature tables.
    pub base: Arc<Core>,
    /// The rows this part holds (`None`: all).
    pub rows: Option<Arc<Vec<usize>>>,
}

impl Dataset {
    fn whole(d: Core) -> Self {
        Dataset {
            base: Arc::new(d),
            rows: None,
        }
    }

    /// The interaction rows of this part.
    pub fn row_indices(&self) -> Vec<usize> {
        match &self.rows {
            Some(r) => r.as_ref().clone(),
            None => (0..self.base.interactions.len()).collect(),
        }
    }

    /// Whether `other` is a part of the same dataset (same ids and features).
    pub fn same_base(&self, other: &Dataset) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// This part as a dataset of its own rows (ids and features kept).
    pub fn materialize(&self) -> Core {
        match &self.rows {
            None => self.base.as_ref().clone(),
            Some(rows) => Core {
                interactions: self.base.interactions.select(rows),
                name: self.base.name.clone(),
                users: self.base.users.clone(),
                items: self.base.items.clone(),
                user_features: self.base.user_features.clone(),
                item_features: self.base.item_features.clone(),
                feedback: self.base.feedback,
                title_column: self.base.title_column.clone(),
            },
        }
    }
}

fn load_args(skip_bad_rows: bool, duplicates: &str) -> PyResult<LoadArgs> {
    let duplicates: DuplicatePolicy = duplicates.parse().map_err(|e| {
        bad(format!(
            "duplicates={duplicates:?}: {e} (expected keep-all, keep-last or average)"
        ))
    })?;
    Ok(LoadArgs {
        skip_bad_rows,
        duplicates,
    })
}

/// A feature column given from Python: name, kind and one value per id.
type FeatureColumn<'py> = (String, String, Bound<'py, PyAny>);

/// Builds a feature table in the order of `ids` (the dataset's users or items) from
/// columns whose rows follow `keys`.
fn feature_table(
    what: &str,
    ids: &IdMap,
    keys: Vec<String>,
    columns: Vec<FeatureColumn<'_>>,
) -> PyResult<FeatureTable> {
    let mut row_of = vec![usize::MAX; ids.len()];
    for (row, key) in keys.iter().enumerate() {
        if let Some(i) = ids.get(key) {
            row_of[i as usize] = row;
        }
    }
    let pick = |row: usize| (row != usize::MAX).then_some(row);
    let mut table = FeatureTable::default();
    for (name, kind, values) in columns {
        let col = |msg: String| bad(format!("{what} feature {name:?}: {msg}"));
        let values = match kind.as_str() {
            "numeric" => {
                let v: Vec<f64> = values.extract().map_err(|e| col(format!("{e}")))?;
                check_len(v.len(), keys.len()).map_err(col)?;
                ColumnValues::Numeric(
                    row_of
                        .iter()
                        .map(|&r| pick(r).map_or(f64::NAN, |r| v[r]))
                        .collect(),
                )
            }
            "categorical" | "text" => {
                let v: Vec<String> = values.extract().map_err(|e| col(format!("{e}")))?;
                check_len(v.len(), keys.len()).map_err(col)?;
                let v = row_of
                    .iter()
                    .map(|&r| pick(r).map_or_else(String::new, |r| v[r].clone()))
                    .collect();
                if kind == "text" {
                    ColumnValues::Text(v)
                } else {
                    ColumnValues::Categorical(v)
                }
            }
            "multi-categorical" => {
                let v: Vec<Vec<String>> = values.extract().map_err(|e| col(format!("{e}")))?;
                check_len(v.len(), keys.len()).map_err(col)?;
                ColumnValues::MultiCategorical(
                    row_of
                        .iter()
                        .map(|&r| pick(r).map_or_else(Vec::new, |r| v[r].clone()))
                        .collect(),
                )
            }
            other => {
                return Err(col(format!(
                "unknown type {other:?}; expected categorical, multi-categorical, numeric or text"
            )))
            }
        };
        table.columns.push(Column { name, values });
    }
    Ok(table)
}

fn check_len(got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{got} values for {want} ids"))
    }
}

#[pymethods]
impl Dataset {
    /// Loads a dataset exactly as `shortlist data info SPEC` does: a MovieLens name
    /// (`ml-100k`, …: fetched into the cache on first use), or the path of a schema
    /// TOML, a split file, a MovieLens or RecBole directory, an interaction file.
    #[staticmethod]
    #[pyo3(signature = (spec, *, skip_bad_rows = false, duplicates = "keep-all", progress = true))]
    fn open(
        py: Python<'_>,
        spec: &str,
        skip_bad_rows: bool,
        duplicates: &str,
        progress: bool,
    ) -> PyResult<Self> {
        let load = load_args(skip_bad_rows, duplicates)?;
        let ctx = Context::new(!progress);
        let opened = py
            .detach(|| shortlist_cli::cmd::data::open(spec, &load, &ctx))
            .map_err(py_err)?;
        Ok(Dataset::whole(opened.loaded.dataset))
    }

    /// Loads a pair of split files (`user_id item_id rating timestamp`) as
    /// `shortlist train --train TRAIN --test TEST [--data DATA]` does; returns the two
    /// parts of one dataset. `data` (a name or path) joins its titles and side
    /// features by raw id.
    #[staticmethod]
    #[pyo3(signature = (train, test, data = None, *, progress = true))]
    fn load_split(
        py: Python<'_>,
        train: PathBuf,
        test: PathBuf,
        data: Option<String>,
        progress: bool,
    ) -> PyResult<(Self, Self)> {
        let args = DataArgs {
            data,
            train: Some(train),
            test: Some(test),
            split_seed: 42,
            load: load_args(false, "keep-all")?,
        };
        let ctx = Context::new(!progress);
        let s = py
            .detach(|| shortlist_cli::cmd::train::load_data(&args, &ctx))
            .map_err(py_err)?;
        let base = Arc::new(s.dataset);
        Ok((
            Dataset {
                base: base.clone(),
                rows: Some(Arc::new(s.train)),
            },
            Dataset {
                base,
                rows: Some(Arc::new(s.test)),
            },
        ))
    }

    /// A dataset from columns: raw user and item ids (strings), ratings (float32;
    /// `None`: implicit feedback, every interaction counts 1), Unix-second timestamps
    /// (int64; optional), and side features as `(ids, [(name, type, values)])` with
    /// types `categorical`, `multi-categorical`, `numeric`, `text`.
    #[staticmethod]
    #[pyo3(signature = (users, items, ratings = None, timestamps = None, *, name = "pandas".to_owned(),
                        user_features = None, item_features = None, item_title = None))]
    #[allow(clippy::too_many_arguments)]
    fn from_columns(
        users: Vec<String>,
        items: Vec<String>,
        ratings: Option<PyReadonlyArray1<'_, f32>>,
        timestamps: Option<PyReadonlyArray1<'_, i64>>,
        name: String,
        user_features: Option<(Vec<String>, Vec<FeatureColumn<'_>>)>,
        item_features: Option<(Vec<String>, Vec<FeatureColumn<'_>>)>,
        item_title: Option<String>,
    ) -> PyResult<Self> {
        let n = users.len();
        if n == 0 {
            return Err(bad("no interactions: the user column is empty"));
        }
        if items.len() != n {
            return Err(bad(format!(
                "{n} users but {} items: the columns must have one value per interaction",
                items.len()
            )));
        }
        let mut d = Core {
            name,
            ..Core::default()
        };
        let mut inter = Interactions::default();
        for (row, (u, i)) in users.iter().zip(&items).enumerate() {
            if u.is_empty() || i.is_empty() {
                let col = if u.is_empty() { "user" } else { "item" };
                return Err(bad(format!("row {row}: empty {col} id")));
            }
            inter.users.push(d.users.intern(u));
            inter.items.push(d.items.intern(i));
        }
        match ratings {
            Some(r) => {
                let r = r.as_slice()?;
                if r.len() != n {
                    return Err(bad(format!("{n} interactions but {} ratings", r.len())));
                }
                if let Some(row) = r.iter().position(|x| !x.is_finite()) {
                    return Err(bad(format!(
                        "rating, row {row}: expected a finite number, found {}",
                        r[row]
                    )));
                }
                inter.ratings = r.to_vec();
                d.feedback = Feedback::Explicit;
            }
            None => {
                inter.ratings = vec![1.0; n];
                d.feedback = Feedback::Implicit;
            }
        }
        if let Some(t) = timestamps {
            let t = t.as_slice()?;
            if t.len() != n {
                return Err(bad(format!("{n} interactions but {} timestamps", t.len())));
            }
            inter.timestamps = Some(t.to_vec());
        }
        d.interactions = inter;
        if let Some((keys, cols)) = user_features {
            d.user_features = feature_table("user", &d.users, keys, cols)?;
        }
        if let Some((keys, cols)) = item_features {
            d.item_features = feature_table("item", &d.items, keys, cols)?;
        }
        if let Some(t) = item_title {
            if !d.item_features.columns.iter().any(|c| c.name == t) {
                return Err(bad(format!(
                    "item_title={t:?}: no item feature of that name"
                )));
            }
            d.title_column = Some(t);
        }
        Ok(Dataset::whole(d))
    }

    /// Splits this dataset's rows as `shortlist data split` does (same generator: the
    /// same rows for the same seed on every platform): `random` (a `ratio` of all
    /// interactions in training), `temporal` (the earliest `ratio`), or
    /// `leave-last-out` (each user's last `n`). Returns `(train, test)`.
    #[pyo3(signature = (method = "random", ratio = 0.8, seed = 42, n = 1))]
    fn split(&self, method: &str, ratio: f64, seed: u64, n: usize) -> PyResult<(Self, Self)> {
        let m = match method {
            "random" => SplitMethod::Random { ratio, seed },
            "temporal" => SplitMethod::Temporal { ratio },
            "leave-last-out" | "leave_last_out" => SplitMethod::LeaveLastOut { n },
            other => {
                return Err(bad(format!(
                    "method={other:?}: expected random, temporal or leave-last-out"
                )))
            }
        };
        let rows = self.row_indices();
        let parts = match &self.rows {
            None => split::split(&self.base.interactions, m),
            Some(r) => split::split(&self.base.interactions.select(r), m),
        }
        .map_err(|e| py_err(e.into()))?;
        let back = |p: Vec<usize>| -> Option<Arc<Vec<usize>>> {
            Some(Arc::new(p.into_iter().map(|k| rows[k]).collect()))
        };
        Ok((
            Dataset {
                base: self.base.clone(),
                rows: back(parts.train),
            },
            Dataset {
                base: self.base.clone(),
                rows: back(parts.test),
            },
        ))
    }

    /// The interactions as columns: `(user_ids, item_ids, ratings, timestamps)`, raw
    /// ids as lists of strings, ratings as float32, timestamps as int64 (or `None`).
    /// A list holds one `str` object per distinct id, repeated: a column of 80,000 rows
    /// then costs a few thousand strings, and code reading it back (`predict`,
    /// `recommend`) finds each id by its object.
    #[allow(clippy::type_complexity)]
    fn columns<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Bound<'py, PyList>,
        Bound<'py, PyList>,
        Bound<'py, PyArray1<f32>>,
        Option<Bound<'py, PyArray1<i64>>>,
    )> {
        let d = &self.base;
        let it = &d.interactions;
        let rows = self.row_indices();
        let column = |ids: &IdMap, of: &[u32]| {
            let mut strs: Vec<Option<Bound<'py, PyString>>> = vec![None; ids.raw_ids().len()];
            PyList::new(
                py,
                rows.iter().map(|&r| {
                    let id = of[r];
                    strs[id as usize]
                        .get_or_insert_with(|| PyString::new(py, ids.raw(id)))
                        .clone()
                }),
            )
        };
        let users = column(&d.users, &it.users)?;
        let items = column(&d.items, &it.items)?;
        let ratings = PyArray1::from_iter(py, rows.iter().map(|&r| it.ratings[r]));
        let ts = it
            .timestamps
            .as_ref()
            .map(|t| PyArray1::from_iter(py, rows.iter().map(|&r| t[r])));
        Ok((users, items, ratings, ts))
    }

    /// Side features of the users (`"user"`) or items (`"item"`): `(ids, {name: values})`
    /// with one value per id (numbers as floats, labels as strings, lists of labels).
    fn features<'py>(
        &self,
        py: Python<'py>,
        of: &str,
    ) -> PyResult<(Vec<String>, Bound<'py, pyo3::types::PyDict>)> {
        let (ids, table) = match of {
            "user" => (&self.base.users, &self.base.user_features),
            "item" => (&self.base.items, &self.base.item_features),
            other => return Err(bad(format!("of={other:?}: expected \"user\" or \"item\""))),
        };
        let out = pyo3::types::PyDict::new(py);
        for c in &table.columns {
            match &c.values {
                ColumnValues::Numeric(v) => out.set_item(&c.name, v.clone())?,
                ColumnValues::Categorical(v) | ColumnValues::Text(v) => {
                    out.set_item(&c.name, v.clone())?
                }
                ColumnValues::MultiCategorical(v) => out.set_item(&c.name, v.clone())?,
            }
        }
        Ok((ids.raw_ids().to_vec(), out))
    }

    /// Writes this part as a split file (`user_id item_id rating timestamp`, the file
    /// every `shortlist` command reads), atomically.
    fn to_tsv(&self, path: PathBuf) -> PyResult<()> {
        shortlist_data::loaders::tsv::write_rows(&path, &self.base, &self.row_indices())
            .map(|_| ())
            .map_err(|e| py_err(e.into()))
    }

    /// The dataset's name (`ml-100k`, a path, `pandas`).
    #[getter]
    fn name(&self) -> &str {
        &self.base.name
    }

    /// Users of the whole dataset (every part of a split shares them).
    #[getter]
    fn num_users(&self) -> usize {
        self.base.users.len()
    }

    /// Items of the whole dataset.
    #[getter]
    fn num_items(&self) -> usize {
        self.base.items.len()
    }

    /// Whether the ratings are explicit scores (else implicit: every row counts 1).
    #[getter]
    fn explicit(&self) -> bool {
        self.base.feedback == Feedback::Explicit
    }

    fn __len__(&self) -> usize {
        self.rows
            .as_ref()
            .map_or(self.base.interactions.len(), |r| r.len())
    }

    fn __repr__(&self) -> String {
        format!(
            "Dataset({:?}: {} interactions{}, {} users, {} items)",
            self.base.name,
            self.__len__(),
            if self.rows.is_some() { " (a part)" } else { "" },
            self.base.users.len(),
            self.base.items.len()
        )
    }
}
