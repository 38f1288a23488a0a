//! `shortlist eval`, `predict` and `recommend`: use a saved model directory.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use shortlist_core::dataset::Dataset;
use shortlist_data::loaders::tsv::load_tsv;
use shortlist_data::LoadOptions;
use shortlist_eval::SplitEvaluator;
use shortlist_model::{Objective, RankingModel, RetrievalModel};
use shortlist_pipeline::{CandidateSource, ModelSource, User};
use shortlist_train::interactions::RowScorer;
use shortlist_train::retrieval::DatasetScorer;

use super::pipeline::{check_list_flags, with_training_items};
use super::{print_json, BadInput, Context};
use crate::table::Table;

/// The `kind` in a model directory's manifest.
pub fn model_kind(dir: &Path) -> Result<String> {
    if !dir.is_dir() {
        return Err(BadInput(format!(
            "--model {}: no such directory (expected a model version folder written by `shortlist train` or `quickstart`, e.g. models/movielens/retrieval/1)",
            dir.display()
        ))
        .into());
    }
    if let Some(hint) = shortlist_serve::layout::model_dir_hint(dir) {
        return Err(BadInput(format!("--model {hint}")).into());
    }
    let path = dir.join("manifest.json");
    let text = shortlist_core::input::read_text(&path).map_err(|e| {
        BadInput(format!(
            "{e} (expected a model directory written by `shortlist train`)"
        ))
    })?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| BadInput(format!("{}: invalid manifest: {e}", path.display())))?;
    v.get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BadInput(format!("{}: the manifest has no \"kind\"", path.display())).into())
}

/// `shortlist eval`: metrics of a saved model on a test file.
pub fn eval(model_dir: &Path, test: &Path, json_out: bool, ctx: &Context) -> Result<()> {
    let kind = model_kind(model_dir)?;
    let test_data = load_tsv(test, &LoadOptions::default(), &ctx.progress())?;
    super::data::warn_report(&test_data.report);
    let report = eval_report(model_dir, &kind, &test_data.dataset, test)?;
    if json_out {
        return print_json(&report);
    }
    print_eval(model_dir, &kind, test, &report)
}

/// The metrics of the saved model in `model_dir` (of `kind`, see [`model_kind`]) on
/// every interaction of `test_data`, as `eval --model --json` prints them; `test`
/// names the test data in errors.
pub fn eval_report(
    model_dir: &Path,
    kind: &str,
    test_data: &Dataset,
    test: &Path,
) -> Result<Value> {
    let report = match kind {
        "ranking" => {
            let model = RankingModel::load(model_dir)?;
            let rows: Vec<usize> = (0..test_data.interactions.len()).collect();
            let objective = model.config.objective;
            if objective == Objective::Click {
                // AUC, group AUC and log-loss of the click probabilities; the labels
                // are made as in training (0/1 ratings, or rating ≥ click_threshold).
                let c = shortlist_train::evaluate_click(&model, test_data, &rows)
                    .map_err(|e| BadInput(format!("{}: {e}", test.display())))?;
                let mut v = serde_json::to_value(c)?;
                if let Value::Object(map) = &mut v {
                    map.insert("model".into(), json!("ranking"));
                    map.insert("objective".into(), json!(objective.name()));
                }
                v
            } else {
                let m = shortlist_train::evaluate(&model, test_data, &rows);
                json!({ "model": "ranking", "objective": objective.name(), "rmse": m.rmse, "mae": m.mae, "count": m.count })
            }
        }
        "retrieval" => {
            let (model, _) = RetrievalModel::load(model_dir)?;
            let (dataset, train, test_rows) =
                with_training_items(&model.spec, &model.seen, test_data);
            let ev = SplitEvaluator::new(&dataset, &train, &test_rows)?;
            source_report(
                "retrieval",
                &ev,
                &ev.scorer(&DatasetScorer::new(&model, &dataset))?,
            )?
        }
        "ease" => {
            let model = shortlist_model::EaseModel::load(model_dir)?;
            let (dataset, train, test_rows) =
                with_training_items(&model.spec, &model.seen, test_data);
            let ev = SplitEvaluator::new(&dataset, &train, &test_rows)?;
            let score = super::train_implicit::ease_scorer(&model);
            let m = ev.scorer(&RowScorer::new(&model.spec, &dataset, &score))?;
            source_report("ease", &ev, &m)?
        }
        "ials" => {
            let model = shortlist_model::IalsModel::load(model_dir)?;
            let (dataset, train, test_rows) =
                with_training_items(&model.spec, &model.seen, test_data);
            let ev = SplitEvaluator::new(&dataset, &train, &test_rows)?;
            let score = super::train_implicit::ials_scorer(&model);
            let m = ev.scorer(&RowScorer::new(&model.spec, &dataset, &score))?;
            source_report("ials", &ev, &m)?
        }
        other => {
            return Err(BadInput(format!(
                "{}: unknown model kind {other:?}",
                model_dir.display()
            ))
            .into())
        }
    };
    Ok(report)
}

/// Prints an [`eval_report`] as `eval --model` does without `--json`.
fn print_eval(model_dir: &Path, kind: &str, test: &Path, report: &Value) -> Result<()> {
    let mut t = Table::new(4);
    if kind == "ranking" && report.get("auc").is_some() {
        let count = report["count"].as_u64().unwrap_or(0) as usize;
        let clicks = report["positives"].as_u64().unwrap_or(0) as usize;
        t.section(
            &format!(
                "click (test: {} impressions, {} clicks; AUC higher, log-loss lower is better)",
                super::thousands(count),
                super::thousands(clicks)
            ),
            &["model"],
        )
        .row("AUC", &[report["auc"].as_f64()])
        .row("group AUC", &[report["group_auc"].as_f64()])
        .row("log-loss", &[report["log_loss"].as_f64()]);
    } else if kind == "ranking" {
        let count = report["count"].as_u64().unwrap_or(0) as usize;
        t.section(
            &format!(
                "ranking (test: {} ratings; lower is better)",
                super::thousands(count)
            ),
            &["model"],
        )
        .row("RMSE", &[report["rmse"].as_f64()])
        .row("MAE", &[report["mae"].as_f64()]);
    } else {
        super::train::add_retrieval_section(&mut t, report, super::train::RETRIEVAL_ROWS);
    }
    crate::outln!("{} on {}", model_dir.display(), test.display());
    crate::outln!("{}", t.render().trim_end());
    Ok(())
}

/// The JSON report of a candidate source: its metrics, its kind and popularity's.
fn source_report(kind: &str, ev: &SplitEvaluator, m: &shortlist_eval::Metrics) -> Result<Value> {
    let mut v = serde_json::to_value(m)?;
    if let Value::Object(map) = &mut v {
        map.insert("model".into(), json!(kind));
        map.insert("popularity".into(), serde_json::to_value(ev.popularity()?)?);
    }
    Ok(v)
}

/// Display titles of a model directory's items, by raw id.
fn titles(dir: &Path, vocab: &shortlist_features::Vocabulary) -> Result<Vec<(String, String)>> {
    let t = shortlist_model::retrieval_artifact::read_titles(dir, vocab.len())?;
    Ok((0..vocab.len() as u32)
        .filter_map(|r| {
            Some((
                vocab.value(r)?.to_owned(),
                t.get(r as usize).cloned().unwrap_or_default(),
            ))
        })
        .collect())
}

/// `shortlist predict`: predicted ratings of items for one user, best first.
pub fn predict(
    model_dir: &Path,
    user: &str,
    items: &[String],
    by_title: &[String],
    json_out: bool,
) -> Result<()> {
    let kind = model_kind(model_dir)?;
    if kind != "ranking" {
        return Err(BadInput(format!(
            "{}: `predict` needs a ranking model, this is a {kind} model",
            model_dir.display()
        ))
        .into());
    }
    let model = RankingModel::load(model_dir)?;
    let catalogue = titles(model_dir, &model.spec.item_id)?;
    let title_of = |id: &str| {
        catalogue
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    let mut wanted: Vec<String> = items.to_vec();
    for t in by_title {
        let id = catalogue
            .iter()
            .find(|(_, title)| title == t)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                BadInput(format!(
                    "--title {t:?}: no item with this title in the model's catalogue"
                ))
            })?;
        wanted.push(id);
    }
    if wanted.is_empty() {
        return Err(BadInput("give at least one --item ID or --title TITLE".into()).into());
    }
    let mut rows: Vec<(String, String, f32, bool)> = wanted
        .iter()
        .map(|id| {
            let p = model.predict_raw(user, id);
            (id.clone(), title_of(id), p.rating, !p.item_oov)
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let known_user = model.spec.user_id.get(user).is_some();
    if json_out {
        return print_json(&json!({
            "user_id": user,
            "known_user": known_user,
            "predictions": rows.iter().map(|(id, t, r, k)| json!({"item_id": id, "title": t, "rating": r, "known_item": k})).collect::<Vec<_>>(),
        }));
    }
    if !known_user {
        crate::outln!(
            "user {user:?} is unknown to the model: its out-of-vocabulary embedding is used"
        );
    }
    for (id, t, r, known) in rows {
        let flag = if known {
            ""
        } else {
            "  (unknown item: out-of-vocabulary embedding)"
        };
        crate::outln!(
            "{r:6.3}  {}  [item {id}]{flag}",
            if t.is_empty() { "-" } else { &t }
        );
    }
    Ok(())
}

/// Options of `shortlist recommend`.
pub struct RecommendArgs<'a> {
    /// The retrieval model directory.
    pub model: &'a Path,
    /// One user, or every user (`None`).
    pub user: Option<&'a str>,
    /// How many items.
    pub k: usize,
    /// Leave out the user's training items.
    pub exclude_seen: bool,
    /// One JSON object (for every user with `user` `None`; else JSON Lines).
    pub json: bool,
    /// One JSON line per user (`--jsonl`, only with every user).
    pub jsonl: bool,
    /// Write to this file instead of stdout.
    pub output: Option<PathBuf>,
}

/// `shortlist recommend`.
pub fn recommend(a: &RecommendArgs<'_>) -> Result<()> {
    let kind = model_kind(a.model)?;
    if !["retrieval", "ease", "ials"].contains(&kind.as_str()) {
        return Err(BadInput(format!(
            "{}: `recommend` needs a candidate model (retrieval, ease or ials), this is a {kind} model; \
             to recommend through both stages, pass the base folder with --pipeline",
            a.model.display()
        ))
        .into());
    }
    check_list_flags(a.k, a.user.is_some(), a.jsonl, a.output.is_some())?;
    let s = ModelSource::load(a.model, &kind)?;
    match a.user {
        Some(user) => {
            let r = s.retrieve(&User::id(user), a.k, a.exclude_seen, &[])?;
            if a.json {
                return print_json(&json!({
                    "user_id": user,
                    "known_user": r.known_user,
                    "items": r.candidates.iter().map(|c| json!({"item_id": c.item_id, "score": c.score, "title": s.item_title(c.item_id)})).collect::<Vec<_>>(),
                }));
            }
            if !r.known_user {
                crate::outln!(
                    "user {user:?} is unknown to the model: showing the most popular items"
                );
            }
            for (rank, c) in r.candidates.iter().enumerate() {
                crate::outln!(
                    "{:>3}. {:8.4}  {}  [item {}]",
                    rank + 1,
                    c.score,
                    s.item_title(c.item_id).unwrap_or("-"),
                    c.item_id
                );
            }
            Ok(())
        }
        None => {
            let uv = &s.spec().user_id;
            let mut lines = Vec::new();
            for row in uv.num_oov()..uv.len() as u32 {
                let user = uv.value(row).unwrap_or_default();
                let r = s.retrieve(&User::id(user), a.k, a.exclude_seen, &[])?;
                lines.push(json!({
                    "user_id": user,
                    "items": r.candidates.iter().map(|c| c.item_id).collect::<Vec<_>>(),
                    "scores": r.candidates.iter().map(|c| c.score).collect::<Vec<_>>(),
                }));
            }
            write_all_users(&lines, a.json, a.k, a.exclude_seen, a.output.as_deref())
        }
    }
}

/// Writes every user's list: with `json` one object holding them all, else (JSON
/// Lines, the default) one line per user; to `output` (atomically) or stdout.
pub fn write_all_users(
    lines: &[Value],
    json: bool,
    k: usize,
    exclude_seen: bool,
    output: Option<&Path>,
) -> Result<()> {
    let out = if json {
        let mut text = serde_json::to_string_pretty(&json!({
            "k": k,
            "exclude_seen": exclude_seen,
            "users": lines,
        }))?;
        text.push('\n');
        text
    } else {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        text
    };
    match output {
        Some(p) => shortlist_core::atomic::write_file(p, out.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout().lock().write_all(out.as_bytes())?;
        }
    }
    Ok(())
}
