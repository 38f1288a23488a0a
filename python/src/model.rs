//! `Model` (one fitted or loaded model directory) and `Pipeline` (retrieve → rank,
//! as `/v1/recommend` answers).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use serde_json::Value;
use shortlist_cli::cmd::data::LoadArgs;
use shortlist_cli::cmd::pipeline::Pipeline as CliPipeline;
use shortlist_cli::cmd::train::{DataArgs, TrainArgs};
use shortlist_cli::cmd::{self, Context};
use shortlist_data::loaders::tsv::SplitData;
use shortlist_model::RankingModel;
use shortlist_pipeline::{CandidateSource, ModelSource, Order, RankingStage, Request, User};

use rayon::prelude::*;

use crate::dataset::Dataset;

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
    kind: String,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    report: Option<String>,
    engine: Engine,
}

/// Runs `f` on a thread of its own and waits for it with the GIL released, checking
/// for Ctrl-C (and other signals) every 100 ms: a `KeyboardInterrupt` returns at
/// once while the abandoned computation finishes in the background.
fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
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
            Ok(r) => return r.map_err(py_err),
            Err(mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "the computation stopped without an answer (its thread panicked)",
                ))
            }
        }
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
        })
    }
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
    #[staticmethod]
    #[pyo3(signature = (kind, train, valid = None, *, config = None, config_text = None,
                        epochs = None, batch_size = None, seed = None, progress = true))]
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
        progress: bool,
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
        let report = run_interruptible(py, move || {
            let ctx = Context { quiet: !progress };
            use shortlist_cli::cmd::{train as t, train_implicit as ti};
            let v: Value = match kind.as_str() {
                "ranking" => serde_json::to_value(t::train_ranking(&args, &split, &ctx)?)?,
                "retrieval" => t::train_retrieval_cmd(&args, &split, &ctx)?,
                "ease" => ti::train_ease_cmd(&args, &split)?,
                _ => ti::train_ials_cmd(&args, &split, &ctx)?,
            };
            Ok(v)
        })?;
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
    /// lists them: `(user_ids, item_ids, scores, titles)` flattened (a user unknown
    /// to the model gets the most popular items; `""`: no title).
    #[pyo3(signature = (user_ids, k = 10, exclude_seen = true))]
    #[allow(clippy::type_complexity)]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        user_ids: Vec<String>,
        k: usize,
        exclude_seen: bool,
    ) -> PyResult<(
        Vec<String>,
        Vec<String>,
        Bound<'py, PyArray1<f32>>,
        Vec<String>,
    )> {
        let Engine::Source(s) = &self.engine else {
            return Err(bad(format!(
                "{}: `recommend` needs a candidate model (retrieval, ease or ials), this is a {} model; \
                 to recommend through both stages, use shortlist.Pipeline(retrieval, ranking)",
                self.dir.display(),
                self.kind
            )));
        };
        if k == 0 {
            return Err(bad("k: expected at least 1"));
        }
        let (users, items, scores, titles) = py
            .detach(|| -> anyhow::Result<_> {
                // One request per user, as the server answers them, on every core.
                let lists = user_ids
                    .par_iter()
                    .map(|u| s.retrieve(&User::id(u), k, exclude_seen, &[]))
                    .collect::<Result<Vec<_>, _>>()?;
                let (mut users, mut items, mut scores, mut titles) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (u, r) in user_ids.iter().zip(lists) {
                    for c in r.candidates {
                        users.push(u.clone());
                        items.push(c.item_id.to_owned());
                        scores.push(c.score);
                        titles.push(s.item_title(c.item_id).unwrap_or("").to_owned());
                    }
                }
                Ok((users, items, scores, titles))
            })
            .map_err(py_err)?;
        Ok((users, items, PyArray1::from_vec(py, scores), titles))
    }

    /// Scores of (user, item) pairs: predicted ratings (click probabilities for a
    /// click model) of a ranking model, as `shortlist predict`; the candidate
    /// score (NaN for an unknown item) of a retrieval, EASE or iALS model.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        user_ids: Vec<String>,
        item_ids: Vec<String>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        if user_ids.len() != item_ids.len() {
            return Err(bad(format!(
                "{} user ids but {} item ids: give one of each per pair",
                user_ids.len(),
                item_ids.len()
            )));
        }
        let out = py.detach(|| match &self.engine {
            Engine::Ranking(m) => {
                // Rows as `predict_raw` finds them, scored in batches (one GEMM per
                // layer and chunk) on every core.
                let (users, items): (Vec<u32>, Vec<u32>) = user_ids
                    .iter()
                    .zip(&item_ids)
                    .map(|(u, i)| m.rows_of(u, i))
                    .unzip();
                let mut out = vec![0.0f32; users.len()];
                out.par_chunks_mut(PREDICT_CHUNK).enumerate().for_each_init(
                    shortlist_model::Scratch::default,
                    |scratch, (c, o)| {
                        let at = c * PREDICT_CHUNK;
                        let end = at + o.len();
                        m.predict_batch_with(&users[at..end], &items[at..end], scratch, o);
                    },
                );
                out
            }
            Engine::Source(s) => user_ids
                .iter()
                .zip(&item_ids)
                .map(|(u, i)| {
                    let mut o = [f32::NAN];
                    s.score_items(&User::id(u), &[i.as_str()], &mut o);
                    o[0]
                })
                .collect(),
        });
        Ok(PyArray1::from_vec(py, out))
    }

    /// The two towers' vectors of a retrieval model: `(user_ids, user_vectors,
    /// item_ids, item_vectors)`, one row per id (float32, `n × dim`), the vectors
    /// the saved index searches (`score = user · item`).
    #[allow(clippy::type_complexity)]
    fn embeddings<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Vec<String>,
        Bound<'py, PyArray2<f32>>,
        Vec<String>,
        Bound<'py, PyArray2<f32>>,
    )> {
        if self.kind != "retrieval" {
            return Err(bad(format!(
                "embeddings: only a retrieval (two-tower) model has them, this is a {} model",
                self.kind
            )));
        }
        let (m, _) =
            shortlist_model::RetrievalModel::load(&self.dir).map_err(|e| py_err(e.into()))?;
        let dim = m.dim();
        let ids = |v: &shortlist_features::Vocabulary| -> Vec<String> {
            (0..v.len() as u32)
                .map(|r| v.value(r).unwrap_or("").to_owned())
                .collect()
        };
        let (uids, iids) = (ids(&m.spec.user_id), ids(&m.spec.item_id));
        let (q, c) = (m.all_queries(), m.all_candidates());
        let arr = |v: Vec<f32>, n: usize| -> PyResult<Bound<'py, PyArray2<f32>>> {
            let rows = v.len().checked_div(dim).unwrap_or(0);
            if rows != n {
                return Err(PyRuntimeError::new_err(format!(
                    "embeddings: {rows} vectors for {n} ids"
                )));
            }
            PyArray1::from_vec(py, v)
                .reshape([rows, dim])
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))
        };
        Ok((
            uids.clone(),
            arr(q, uids.len())?,
            iids.clone(),
            arr(c, iids.len())?,
        ))
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

/// Retrieve → rank → order, through `shortlist_pipeline::recommend`: the lists
/// `POST /v1/recommend` answers for the same models.
#[pyclass(module = "shortlist._shortlist")]
pub struct Pipeline {
    inner: CliPipeline,
}

#[pymethods]
impl Pipeline {
    /// A pipeline of a candidate model and (optionally) a ranking model.
    #[new]
    #[pyo3(signature = (retrieval, ranking = None))]
    fn new(py: Python<'_>, retrieval: &Model, ranking: Option<&Model>) -> PyResult<Self> {
        if retrieval.kind == "ranking" {
            return Err(bad("retrieval: a ranking model cannot produce candidates"));
        }
        if let Some(r) = ranking {
            if r.kind != "ranking" {
                return Err(bad(format!(
                    "ranking: not a ranking model (a {} model)",
                    r.kind
                )));
            }
        }
        let (rdir, rkind) = (retrieval.dir.clone(), retrieval.kind.clone());
        let kdir = ranking.map(|r| r.dir.clone());
        let inner = py
            .detach(|| -> anyhow::Result<CliPipeline> {
                let source = ModelSource::load(&rdir, &rkind)?;
                let ranker = match kdir {
                    Some(d) => Some(("ranking".to_owned(), d.clone(), RankingStage::load(&d)?)),
                    None => None,
                };
                Ok(CliPipeline {
                    primary: (rkind.clone(), rdir.clone(), source),
                    extra: Vec::new(),
                    ranker,
                })
            })
            .map_err(py_err)?;
        Ok(Pipeline { inner })
    }

    /// Loads the served models of a base directory (`BASE/retrieval/N/`,
    /// `BASE/ranking/N/`, the latest versions), as `shortlist recommend --pipeline`.
    #[staticmethod]
    fn load(py: Python<'_>, base: PathBuf) -> PyResult<Self> {
        let args = shortlist_cli::cmd::pipeline::PipelineArgs {
            base: &base,
            retrieval: "retrieval",
            ranking: "ranking",
            sources: &[],
        };
        let inner = py.detach(|| CliPipeline::load(&args)).map_err(py_err)?;
        Ok(Pipeline { inner })
    }

    /// Each user's list as `/v1/recommend` answers it: `(user_ids, item_ids,
    /// retrieval_scores, ranking_scores, predicted_ratings, order_by, titles)`
    /// flattened (NaN where a stage gave no score; `""`: no title).
    #[pyo3(signature = (user_ids, k = 10, num_candidates = 100, exclude_seen = true))]
    #[allow(clippy::type_complexity)]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        user_ids: Vec<String>,
        k: usize,
        num_candidates: usize,
        exclude_seen: bool,
    ) -> PyResult<(
        Vec<String>,
        Vec<String>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<f32>>,
        Vec<String>,
        Vec<String>,
    )> {
        if k == 0 {
            return Err(bad("k: expected at least 1"));
        }
        let cols = py
            .detach(|| -> anyhow::Result<_> {
                let stages = self.inner.stages(&[], true);
                let mut c = (
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                );
                // One request per user, as the server answers them, on every core.
                let lists = user_ids
                    .par_iter()
                    .map(|u| {
                        shortlist_pipeline::recommend(
                            &stages,
                            &Request {
                                user: User::id(u),
                                k,
                                num_candidates: num_candidates.max(k),
                                exclude_seen,
                                exclude_items: &[],
                                order: Order::Auto,
                            },
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for (u, r) in user_ids.iter().zip(lists) {
                    for i in r.items {
                        c.0.push(u.clone());
                        c.1.push(i.item_id.to_owned());
                        c.2.push(i.retrieval_score);
                        c.3.push(i.ranking_score.unwrap_or(f32::NAN));
                        c.4.push(i.predicted_rating.unwrap_or(f32::NAN));
                        c.5.push(r.order.as_str().to_owned());
                        c.6.push(i.title.unwrap_or("").to_owned());
                    }
                }
                Ok(c)
            })
            .map_err(py_err)?;
        Ok((
            cols.0,
            cols.1,
            PyArray1::from_vec(py, cols.2),
            PyArray1::from_vec(py, cols.3),
            PyArray1::from_vec(py, cols.4),
            cols.5,
            cols.6,
        ))
    }
}
