//! `Model`: one fitted or loaded model directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use serde_json::Value;
use shortlist_cli::cmd::data::LoadArgs;
use shortlist_cli::cmd::train::{DataArgs, TrainArgs};
use shortlist_cli::cmd::{self, Context};
use shortlist_core::progress::Progress;
use shortlist_data::loaders::tsv::SplitData;
use shortlist_model::retrieval::Csr;
use shortlist_model::RankingModel;
use shortlist_pipeline::{CandidateSource, ModelSource, User};

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::ids;

/// Pairs per batch of `predict` on a ranking model.
const PREDICT_CHUNK: usize = 4096;
use crate::{bad, py_err};

/// What answers `recommend` / `predict`.
enum Engine {
    /// A candidate model (retrieval, EASE, iALS), as the server loads it.
    Source(Box<ModelSource>),
    /// A ranking model.
    Ranking(Box<RankingModel>),
}

/// One model directory (`manifest.json`, weights, …: what `shortlist train --out`
/// writes), loaded for `recommend` and `predict`. A freshly fitted model lives in a
/// temporary directory until `save`.
#[pyclass(module = "shortlist._shortlist")]
pub struct Model {
    pub(crate) kind: String,
    pub(crate) dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    report: Option<String>,
    engine: Engine,
    /// What `embeddings` returns, built on its first call.
    embeddings: PyOnceLock<Py<PyTuple>>,
}

/// Runs `f` on a thread of its own and waits for it with the GIL released, checking
/// for Ctrl-C (and other signals) and calling `tick` (which draws the progress)
/// every 100 ms and at the end: a `KeyboardInterrupt` returns at once, after
/// `interrupted` has told the computation to stop (the training loops check
/// [`Progress::cancelled`] between batches, so the thread ends within one).
fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    mut tick: impl FnMut(Python<'_>) -> PyResult<()>,
    interrupted: impl Fn(),
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("shortlist-fit".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    let mut rx = rx;
    loop {
        // The receiver is not `Sync`: it moves into the GIL-free wait and back.
        let (back, got) = py.detach(move || {
            let got = rx.recv_timeout(Duration::from_millis(100));
            (rx, got)
        });
        rx = back;
        match got {
            Ok(r) => {
                tick(py)?;
                return r.map_err(py_err);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    interrupted();
                    return Err(e);
                }
                tick(py)?;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "the computation stopped without an answer (its thread panicked)",
                ))
            }
        }
    }
}

/// A fit's progress as the training reports it ([`Progress`]), read by the waiting
/// thread every 100 ms and handed to a Python callable that draws it (the package
/// passes a tqdm bar's): the training never calls into Python.
#[derive(Default)]
struct Tracker {
    state: Mutex<Track>,
    /// Set on Ctrl-C: the training stops at its next check.
    cancelled: AtomicBool,
}

/// What [`Tracker`] last heard.
#[derive(Default, Clone, PartialEq)]
struct Track {
    /// Counts the phases started (a new bar each).
    phase: u64,
    label: String,
    total: Option<u64>,
    done: u64,
}

impl Tracker {
    fn with(&self, f: impl FnOnce(&mut Track)) {
        if let Ok(mut t) = self.state.lock() {
            f(&mut t);
        }
    }

    fn snapshot(&self) -> Track {
        self.state.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Progress for Tracker {
    fn start(&self, label: &str, total: Option<u64>) {
        self.with(|t| {
            t.phase += 1;
            t.label = label.to_owned();
            t.total = total;
            t.done = 0;
        });
    }

    fn advance(&self, delta: u64) {
        self.with(|t| t.done += delta);
    }

    fn finish(&self) {
        self.with(|t| t.done = t.total.unwrap_or(t.done));
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

impl Model {
    fn open(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        report: Option<String>,
    ) -> anyhow::Result<Self> {
        let kind = cmd::model::model_kind(&dir)?;
        let engine = match kind.as_str() {
            "ranking" => Engine::Ranking(Box::new(RankingModel::load(&dir)?)),
            k => Engine::Source(Box::new(ModelSource::load(&dir, k)?)),
        };
        Ok(Model {
            kind,
            dir,
            _tmp: tmp,
            report,
            engine,
            embeddings: PyOnceLock::new(),
        })
    }
}

impl Model {
    /// The candidate source of a retrieval, EASE or iALS model; a ValueError naming
    /// `what` for a ranking model.
    fn source(&self, what: &str) -> PyResult<&ModelSource> {
        match &self.engine {
            Engine::Source(s) => Ok(s),
            Engine::Ranking(_) => Err(bad(format!(
                "{}: `{what}` needs a candidate model (retrieval, ease or ials), this is a {} model; \
                 to recommend through both stages, use shortlist.Pipeline(retrieval, ranking)",
                self.dir.display(),
                self.kind
            ))),
        }
    }
}

/// A ranking model's predictions of factorized pairs: vocabulary rows as
/// `predict_raw` finds them, scored in batches (one GEMM per layer and chunk) on
/// every core.
fn predict_ranking(m: &RankingModel, users: &ids::Codes, items: &ids::Codes) -> Vec<f32> {
    let urows: Vec<u32> = users
        .uniques
        .iter()
        .map(|u| m.spec.user_id.index(u))
        .collect();
    let irows: Vec<u32> = items
        .uniques
        .iter()
        .map(|i| m.spec.item_id.index(i))
        .collect();
    // Pairs grouped by item (each item's positions in input order): the model reads a
    // few KB of weights per item (embeddings, AutoRec's code), which then stay in cache
    // for the item's next pairs instead of being fetched again for each.
    let order = Csr::from_pairs(
        items.uniques.len(),
        items
            .codes
            .iter()
            .enumerate()
            .map(|(pos, &c)| (c, pos as u32)),
    )
    .ids;
    let u: Vec<u32> = order
        .iter()
        .map(|&k| urows[users.codes[k as usize] as usize])
        .collect();
    let i: Vec<u32> = order
        .iter()
        .map(|&k| irows[items.codes[k as usize] as usize])
        .collect();
    let mut grouped = vec![0.0f32; u.len()];
    grouped
        .par_chunks_mut(PREDICT_CHUNK)
        .enumerate()
        .for_each_init(shortlist_model::Scratch::default, |scratch, (c, o)| {
            let at = c * PREDICT_CHUNK;
            let end = at + o.len();
            m.predict_batch_with(&u[at..end], &i[at..end], scratch, o);
        });
    let mut out = vec![0.0f32; grouped.len()];
    for (&k, &g) in order.iter().zip(&grouped) {
        out[k as usize] = g;
    }
    out
}

/// A candidate model's scores of factorized pairs: one `score_items` call per
/// distinct user (its query built once), the users on every core.
fn predict_source(s: &ModelSource, users: &ids::Codes, items: &ids::Codes) -> Vec<f32> {
    let mut pairs_of: Vec<Vec<usize>> = vec![Vec::new(); users.uniques.len()];
    for (p, &c) in users.codes.iter().enumerate() {
        pairs_of[c as usize].push(p);
    }
    let item_strs = items.unique_strs();
    let scored: Vec<Vec<f32>> = pairs_of
        .par_iter()
        .zip(&users.uniques)
        .map(|(pairs, user)| {
            let ids: Vec<&str> = pairs
                .iter()
                .map(|&p| item_strs[items.codes[p] as usize])
                .collect();
            let mut o = vec![f32::NAN; ids.len()];
            if !ids.is_empty() {
                s.score_items(&User::id(user), &ids, &mut o);
            }
            o
        })
        .collect();
    let mut out = vec![f32::NAN; users.codes.len()];
    for (pairs, scores) in pairs_of.iter().zip(scored) {
        for (&p, v) in pairs.iter().zip(scores) {
            out[p] = v;
        }
    }
    out
}

/// Copies the tree under `from` into `to` (an empty directory).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[pymethods]
impl Model {
    /// Fits a model of `kind` (`retrieval`, `ranking`, `ease`, `ials`) on `train` as
    /// `shortlist train KIND --config CONFIG [--epochs/--batch-size/--seed]` does,
    /// reporting its metrics on `valid` (another part of the same dataset; `None`:
    /// no held-out metrics). Runs with the GIL released; Ctrl-C interrupts the wait.
    /// `progress`: called as `progress(phase, label, total, done)` (`phase` counts
    /// the training's phases, `total` may be `None`) whenever that changed, checked
    /// every 100 ms; `None`: no progress.
    #[staticmethod]
    #[pyo3(signature = (kind, train, valid = None, *, config = None, config_text = None,
                        epochs = None, batch_size = None, seed = None, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        py: Python<'_>,
        kind: &str,
        train: &Dataset,
        valid: Option<&Dataset>,
        config: Option<PathBuf>,
        config_text: Option<String>,
        epochs: Option<usize>,
        batch_size: Option<usize>,
        seed: Option<u64>,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Model> {
        if !["retrieval", "ranking", "ease", "ials"].contains(&kind) {
            return Err(bad(format!(
                "unknown model kind {kind:?}; expected retrieval, ranking, ease or ials"
            )));
        }
        for (name, v) in [("epochs", epochs), ("batch_size", batch_size)] {
            if v == Some(0) {
                return Err(bad(format!("{name}: expected a whole number ≥ 1, found 0")));
            }
        }
        let test = match valid {
            Some(v) if !v.same_base(train) => {
                return Err(bad(
                    "valid must be another part of train's dataset (the two results of dataset.split(), or of Dataset.load_split())",
                ))
            }
            Some(v) => v.row_indices(),
            None => Vec::new(),
        };
        let tmp = tempfile::Builder::new()
            .prefix("shortlist-model-")
            .tempdir()
            .map_err(|e| PyRuntimeError::new_err(format!("temporary directory: {e}")))?;
        let config = match config_text {
            Some(text) => {
                let p = tmp.path().join("config-input.toml");
                std::fs::write(&p, text)
                    .map_err(|e| PyRuntimeError::new_err(format!("{}: {e}", p.display())))?;
                Some(p)
            }
            None => config,
        };
        let out = tmp.path().join("model");
        let args = TrainArgs {
            data: DataArgs {
                data: None,
                train: None,
                test: None,
                split_seed: 42,
                load: LoadArgs {
                    skip_bad_rows: false,
                    duplicates: Default::default(),
                },
            },
            config,
            epochs,
            batch_size,
            seed,
            out: out.clone(),
            json: true,
        };
        let split = SplitData {
            dataset: train.base.as_ref().clone(),
            train: train.row_indices(),
            test,
            report: Default::default(),
        };
        let kind = kind.to_owned();
        let tracker = Arc::new(Tracker::default());
        let ctx = Context {
            quiet: true,
            // Always the tracker, drawn or not: it carries the Ctrl-C to the training.
            sink: Some(tracker.clone() as Arc<dyn Progress + Send>),
        };
        let mut shown = Track::default();
        let tick = |_: Python<'_>| -> PyResult<()> {
            let Some(draw) = &progress else {
                return Ok(());
            };
            let now = tracker.snapshot();
            if now != shown && now.phase > 0 {
                draw.call1((now.phase, now.label.as_str(), now.total, now.done))?;
                shown = now;
            }
            Ok(())
        };
        let report = run_interruptible(
            py,
            move || {
                use shortlist_cli::cmd::{train as t, train_implicit as ti};
                let v: Value = match kind.as_str() {
                    "ranking" => serde_json::to_value(t::train_ranking(&args, &split, &ctx)?)?,
                    "retrieval" => t::train_retrieval_cmd(&args, &split, &ctx)?,
                    "ease" => ti::train_ease_cmd(&args, &split)?,
                    _ => ti::train_ials_cmd(&args, &split, &ctx)?,
                };
                Ok(v)
            },
            tick,
            || tracker.cancelled.store(true, Ordering::Relaxed),
        )?;
        let mut report = report;
        if let Value::Object(m) = &mut report {
            // The temporary directory means nothing to the caller.
            m.remove("out");
        }
        Model::open(out, Some(tmp), Some(report.to_string())).map_err(py_err)
    }

    /// Loads a model directory written by `shortlist train`, `quickstart` or
    /// `Model.save` (`BASE/NAME/VERSION/`).
    #[staticmethod]
    fn load(py: Python<'_>, dir: PathBuf) -> PyResult<Model> {
        let missing = !dir.exists();
        py.detach(|| Model::open(dir, None, None)).map_err(|e| {
            if missing {
                // The CLI's message (exit code 2 there), as the exception Python uses.
                pyo3::exceptions::PyFileNotFoundError::new_err(shortlist_cli::cmd::message(&e))
            } else {
                py_err(e)
            }
        })
    }

    /// `retrieval`, `ranking`, `ease` or `ials`.
    #[getter]
    fn kind(&self) -> &str {
        &self.kind
    }

    /// Where the model's files are (a temporary directory before `save`).
    #[getter]
    fn path(&self) -> PathBuf {
        self.dir.clone()
    }

    /// The report of `fit` as JSON (what `shortlist train … --json` prints), or
    /// `None` for a loaded model.
    #[getter]
    fn report_json(&self) -> Option<&str> {
        self.report.as_deref()
    }

    /// The configuration the model was trained with (its `config.toml`).
    #[getter]
    fn config_toml(&self) -> PyResult<String> {
        let p = self.dir.join("config.toml");
        shortlist_core::input::read_text(&p).map_err(|e| py_err(e.into()))
    }

    /// Metrics on `test` as JSON: what `shortlist eval --model DIR --test F --json`
    /// prints for a split file holding `test`'s rows.
    fn evaluate_json(&self, py: Python<'_>, test: &Dataset) -> PyResult<String> {
        let data = test.materialize();
        let label = PathBuf::from(format!("<{}>", test.base.name));
        py.detach(|| cmd::model::eval_report(&self.dir, &self.kind, &data, &label))
            .map(|v| v.to_string())
            .map_err(py_err)
    }

    /// The top `k` items of each user, best first, as `shortlist recommend --model`
    /// lists them (a user unknown to the model gets the most popular items), one
    /// row per (user, item): `(user_ids, user_codes, item_rows, scores, ranks)`, where
    /// `user_ids` are the distinct users asked for, `user_codes` index them, and
    /// `item_rows` index `item_table()`. Every known user is searched in one batched
    /// pass over the items; no string is made per row.
    #[pyo3(signature = (user_ids, k = 10, exclude_seen = true))]
    #[allow(clippy::type_complexity)]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        user_ids: &Bound<'py, PyAny>,
        k: usize,
        exclude_seen: bool,
    ) -> PyResult<(
        Vec<Bound<'py, PyAny>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<i64>>,
    )> {
        let s = self.source("recommend")?;
        if k == 0 {
            return Err(bad("k: expected at least 1"));
        }
        let users = ids::factorize(user_ids, "user_ids")?;
        let (codes, rows, scores, ranks) = py
            .detach(|| -> anyhow::Result<_> {
                let lists = s.retrieve_rows_batch(&users.unique_strs(), k, exclude_seen)?;
                let n: usize = users
                    .codes
                    .iter()
                    .map(|&c| lists[c as usize].hits.len())
                    .sum();
                let (mut codes, mut rows, mut scores, mut ranks) = (
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                );
                for &c in &users.codes {
                    for (rank, &(row, score)) in lists[c as usize].hits.iter().enumerate() {
                        codes.push(c);
                        rows.push(row);
                        scores.push(score);
                        ranks.push(rank as i64 + 1);
                    }
                }
                Ok((codes, rows, scores, ranks))
            })
            .map_err(py_err)?;
        Ok((
            users.unique_objects(py),
            PyArray1::from_vec(py, codes),
            PyArray1::from_vec(py, rows),
            PyArray1::from_vec(py, scores),
            PyArray1::from_vec(py, ranks),
        ))
    }

    /// `(item_ids, titles)` by item row of a candidate model: what the `item_rows` of
    /// `recommend` index (`""`: an OOV row, or no title).
    fn item_table(&self) -> PyResult<(Vec<String>, Vec<String>)> {
        let s = self.source("item_table")?;
        Ok((0..s.num_item_rows() as u32)
            .map(|r| {
                (
                    s.item_id_of(r).to_owned(),
                    s.item_title_of(r).unwrap_or("").to_owned(),
                )
            })
            .unzip())
    }

    /// Scores of (user, item) pairs: predicted ratings (click probabilities for a
    /// click model) of a ranking model, as `shortlist predict`; the candidate
    /// score (NaN for an unknown item) of a retrieval, EASE or iALS model. Ids come
    /// as lists (of `str`, or of values whose `str()` is the id) or numpy integer
    /// arrays; the pairs are scored in batches on every core.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        user_ids: &Bound<'py, PyAny>,
        item_ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let users = ids::factorize(user_ids, "user_ids")?;
        let items = ids::factorize(item_ids, "item_ids")?;
        if users.codes.len() != items.codes.len() {
            return Err(bad(format!(
                "{} user ids but {} item ids: give one of each per pair",
                users.codes.len(),
                items.codes.len()
            )));
        }
        let engine = &self.engine;
        let out = py.detach(|| match engine {
            Engine::Ranking(m) => predict_ranking(m, &users, &items),
            Engine::Source(s) => predict_source(s, &users, &items),
        });
        Ok(PyArray1::from_vec(py, out))
    }

    /// The two towers' vectors of a retrieval model: `(user_ids, user_vectors,
    /// item_ids, item_vectors)`, one row per id (float32, `n × dim`), the vectors
    /// the saved index searches (`score = user · item`). Computed once per model,
    /// into buffers numpy owns (moved there, not copied), and then the same
    /// read-only arrays on every call.
    fn embeddings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        if self.kind != "retrieval" {
            return Err(bad(format!(
                "embeddings: only a retrieval (two-tower) model has them, this is a {} model",
                self.kind
            )));
        }
        let cached = self
            .embeddings
            .get_or_try_init(py, || -> PyResult<Py<PyTuple>> {
                let (m, _) = shortlist_model::RetrievalModel::load(&self.dir)
                    .map_err(|e| py_err(e.into()))?;
                let dim = m.dim();
                let ids = |v: &shortlist_features::Vocabulary| -> Vec<String> {
                    (0..v.len() as u32)
                        .map(|r| v.value(r).unwrap_or("").to_owned())
                        .collect()
                };
                let (uids, iids) = (ids(&m.spec.user_id), ids(&m.spec.item_id));
                let arr = |v: Vec<f32>, n: usize| -> PyResult<Bound<'py, PyArray2<f32>>> {
                    let rows = v.len().checked_div(dim).unwrap_or(0);
                    if rows != n {
                        return Err(PyRuntimeError::new_err(format!(
                            "embeddings: {rows} vectors for {n} ids"
                        )));
                    }
                    let a = PyArray1::from_vec(py, v)
                        .reshape([rows, dim])
                        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
                    // Shared by every caller: nobody may change the model's vectors.
                    let kw = PyDict::new(py);
                    kw.set_item("write", false)?;
                    a.call_method("setflags", (), Some(&kw))?;
                    Ok(a)
                };
                let (q, c) = (
                    arr(m.all_queries(), uids.len())?,
                    arr(m.all_candidates(), iids.len())?,
                );
                Ok(PyTuple::new(
                    py,
                    [
                        uids.into_pyobject(py)?.into_any(),
                        q.into_any(),
                        iids.into_pyobject(py)?.into_any(),
                        c.into_any(),
                    ],
                )?
                .unbind())
            })?;
        Ok(cached.bind(py).clone())
    }

    /// Writes the model directory to `dir` as one unit (what `shortlist serve`
    /// serves as `BASE/NAME/VERSION/`; every file as `shortlist train` wrote it).
    fn save(&self, dir: PathBuf) -> PyResult<()> {
        let staging = shortlist_core::atomic::AtomicDir::new(&dir)
            .map_err(|e| py_err(anyhow::Error::new(e).context(format!("{}", dir.display()))))?;
        copy_tree(&self.dir, staging.path()).map_err(|e| py_err(e.into()))?;
        staging.commit().map_err(|e| py_err(e.into()))?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("Model(kind={:?}, path={:?})", self.kind, self.dir)
    }
}
