//! The served pipeline from the command line: `shortlist eval --pipeline BASE` scores
//! exactly the lists `/v1/recommend` returns (through `shortlist_pipeline::recommend`,
//! the function the server calls) beside each stage alone and popularity, and
//! `shortlist recommend --pipeline BASE` prints them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{json, Value};
use shortlist_core::dataset::{Dataset, IdMap};
use shortlist_core::Interactions;
use shortlist_data::loaders::tsv::load_tsv;
use shortlist_data::LoadOptions;
use shortlist_eval::{Metrics, SplitEvaluator};
use shortlist_features::FeatureSpec;
use shortlist_model::Csr;
use shortlist_pipeline::{
    recommend, CandidateSource, HistoryItem, ModelSource, Order, Ranker, RankingStage,
    Recommendation, Request, Stage, Stages, User,
};

use super::{print_json, BadInput, Context};
use crate::table::Table;

/// The served models of a base directory (`BASE/<name>/<latest version>/`).
pub struct Pipeline {
    /// The primary candidate source and where it was loaded from.
    pub primary: (String, PathBuf, ModelSource),
    /// More sources with their quotas.
    pub extra: Vec<(String, PathBuf, ModelSource, usize)>,
    /// The ranking model, when `BASE/<ranking>/` exists.
    pub ranker: Option<(String, PathBuf, RankingStage)>,
}

/// Which models of a base directory to use.
pub struct PipelineArgs<'a> {
    /// The base directory.
    pub base: &'a Path,
    /// Name of the primary source (default `retrieval`).
    pub retrieval: &'a str,
    /// Name of the ranking model (default `ranking`; `""`: none).
    pub ranking: &'a str,
    /// `NAME=QUOTA` extra candidate sources.
    pub sources: &'a [String],
}

fn load_latest(base: &Path, name: &str) -> Result<Option<(PathBuf, Stage)>> {
    let dir = base.join(name);
    if !dir.is_dir() {
        return Ok(None);
    }
    let Some((_, version)) = shortlist_pipeline::latest_version(&dir)? else {
        return Err(BadInput(format!(
            "{}: no integer version directory (expected {}/1/, as `shortlist train … --out {}/1` writes)",
            dir.display(),
            dir.display(),
            dir.display()
        ))
        .into());
    };
    let stage = shortlist_pipeline::load_dir(&version)?;
    Ok(Some((version, stage)))
}

impl Pipeline {
    /// Loads the latest version of each named model under `a.base`.
    pub fn load(a: &PipelineArgs<'_>) -> Result<Self> {
        let source = |name: &str| -> Result<(String, PathBuf, ModelSource)> {
            match load_latest(a.base, name)? {
                Some((dir, Stage::Source(s))) => Ok((name.to_owned(), dir, s)),
                Some((dir, Stage::Ranking(_))) => Err(BadInput(format!(
                    "{}: a ranking model cannot produce candidates",
                    dir.display()
                ))
                .into()),
                None => Err(BadInput(format!(
                    "{}: no model {name:?} (expected {}/{name}/<version>/)",
                    a.base.display(),
                    a.base.display()
                ))
                .into()),
            }
        };
        let primary = source(a.retrieval)?;
        let mut extra = Vec::new();
        for spec in a.sources {
            let (name, quota) = spec.split_once('=').ok_or_else(|| {
                BadInput(format!(
                    "--source {spec:?}: expected NAME=QUOTA, e.g. ease=50"
                ))
            })?;
            let quota: usize = quota.parse().map_err(|_| {
                BadInput(format!(
                    "--source {spec:?}: the quota must be a non-negative integer"
                ))
            })?;
            let (n, d, s) = source(name)?;
            extra.push((n, d, s, quota));
        }
        let ranker = if a.ranking.is_empty() {
            None
        } else {
            match load_latest(a.base, a.ranking)? {
                Some((dir, Stage::Ranking(r))) => Some((a.ranking.to_owned(), dir, r)),
                Some((dir, Stage::Source(_))) => {
                    return Err(BadInput(format!("{}: not a ranking model", dir.display())).into())
                }
                None => None,
            }
        };
        Ok(Pipeline {
            primary,
            extra,
            ranker,
        })
    }

    /// The stages, borrowed.
    pub fn stages<'a>(
        &'a self,
        extra: &'a [(&'a dyn CandidateSource, usize)],
        with_ranker: bool,
    ) -> Stages<'a> {
        Stages {
            primary: &self.primary.2,
            extra,
            ranker: if with_ranker {
                self.ranker.as_ref().map(|r| &r.2 as &dyn Ranker)
            } else {
                None
            },
        }
    }

    fn extra_refs(&self) -> Vec<(&dyn CandidateSource, usize)> {
        self.extra
            .iter()
            .map(|(_, _, s, q)| (s as &dyn CandidateSource, *q))
            .collect()
    }
}

/// Options of `shortlist eval --pipeline`.
pub struct EvalArgs<'a> {
    /// The models.
    pub models: PipelineArgs<'a>,
    /// The test split file.
    pub test: &'a Path,
    /// Candidate counts to evaluate the pipeline at.
    pub num_candidates: &'a [usize],
    /// The training split file, for `cold`.
    pub train: Option<&'a Path>,
    /// History lengths at which test users are served as unknown users described
    /// only by their first N training interactions (by timestamp).
    pub cold: &'a [usize],
    /// One JSON object.
    pub json: bool,
}

/// The served lists' metrics beside each stage alone and popularity.
pub struct Served {
    /// Users with test interactions (the denominator).
    pub users: usize,
    /// `(list description, metrics)`, in report order.
    pub rows: Vec<(String, Metrics)>,
}

/// The metrics shown per list, in order.
pub const SERVED_KEYS: &[&str] = &["ndcg@10", "recall@10", "recall@20", "hit_rate@10"];

/// Scores the lists `p` serves (exactly [`recommend()`]'s, `k` = the largest cut-off,
/// seen items excluded) on `test`'s interactions, at each of `num_candidates`, beside
/// each source alone; with `detail`, also popularity, the list ordered by predicted
/// rating and the ranking model over the whole catalogue.
pub fn served_metrics(
    p: &Pipeline,
    test: &Dataset,
    num_candidates: &[usize],
    detail: bool,
) -> Result<Served> {
    let (dataset, train, test_rows) =
        with_training_items(p.primary.2.spec(), p.primary.2.seen(), test);
    let split = SplitEvaluator::new(&dataset, &train, &test_rows)?;
    let (evaluator, config) = (split.evaluator(), split.config());
    let k = config.ks.iter().copied().max().unwrap_or(20);
    let mut rows = Vec::new();
    if detail {
        rows.push(("popularity".to_owned(), split.popularity()?));
    }
    let lists = |stages: &Stages<'_>, n: usize, order: Order| -> Result<Metrics> {
        let m = evaluator.evaluate_lists(
            |u| {
                let user = dataset.users.raw(u);
                let answer = recommend(
                    stages,
                    &Request {
                        user: User::id(user),
                        k,
                        num_candidates: n.max(k),
                        exclude_seen: true,
                        exclude_items: &[],
                        order,
                    },
                );
                item_rows(&dataset, answer)
            },
            config,
        )?;
        Ok(m)
    };
    let none: Vec<(&dyn CandidateSource, usize)> = Vec::new();
    rows.push((
        format!("{} alone ({})", p.primary.0, p.primary.2.kind()),
        lists(&p.stages(&none, false), k, Order::Retrieval)?,
    ));
    for (name, _, s, _) in &p.extra {
        let st = Stages {
            primary: s,
            extra: &none,
            ranker: None,
        };
        rows.push((
            format!("{name} alone ({})", s.kind()),
            lists(&st, k, Order::Retrieval)?,
        ));
    }
    let extra = p.extra_refs();
    let ranked = p.ranker.is_some();
    let what = match &p.ranker {
        Some((_, _, r)) if r.has_relevance() => "ranked by relevance",
        Some(_) => "rating-only ranking model: retrieval order",
        None => "no ranking model",
    };
    for &n in num_candidates {
        rows.push((
            format!("served: {n} candidates, {what}"),
            lists(&p.stages(&extra, ranked), n, Order::Auto)?,
        ));
    }
    if let (Some((_, _, r)), true) = (&p.ranker, detail) {
        rows.push((
            "served, ordered by predicted rating (100 candidates)".into(),
            lists(&p.stages(&extra, true), 100, Order::Rating)?,
        ));
        if r.has_relevance() {
            rows.push((
                "ranking alone (whole catalogue)".into(),
                lists(
                    &p.stages(&none, true),
                    p.primary.2.num_items(),
                    Order::Relevance,
                )?,
            ));
        }
    }
    Ok(Served {
        users: evaluator.users().len(),
        rows,
    })
}

/// The dataset rows of a served list's items (none when the request failed: the user
/// then counts with an empty list).
fn item_rows(
    dataset: &Dataset,
    answer: shortlist_pipeline::Result<Recommendation<'_>>,
) -> Vec<u32> {
    answer
        .map(|r| {
            r.items
                .iter()
                .filter_map(|i| dataset.items.get(i.item_id))
                .collect()
        })
        .unwrap_or_default()
}

/// The served lists of test users presented as unknown users (`cold:<id>`) whose
/// history is their first `n` training interactions by timestamp (file order on ties),
/// for each `n` of `lengths`; the metrics mask the users' whole training set, as for
/// the known users.
pub fn cold_metrics(
    p: &Pipeline,
    train: &Dataset,
    test: &Dataset,
    lengths: &[usize],
) -> Result<Vec<(String, Metrics)>> {
    let (dataset, tr, te) = with_training_items(p.primary.2.spec(), p.primary.2.seen(), test);
    let split = SplitEvaluator::new(&dataset, &tr, &te)?;
    let (evaluator, config) = (split.evaluator(), split.config());
    // Each user's training items in time order, by raw ids.
    let t = &train.interactions;
    let mut order: Vec<usize> = (0..t.len()).collect();
    if let Some(ts) = &t.timestamps {
        order.sort_by_key(|&r| (ts[r], r));
    }
    let mut by_user: rustc_hash::FxHashMap<&str, Vec<&str>> = Default::default();
    for r in order {
        by_user
            .entry(train.users.raw(t.users[r]))
            .or_default()
            .push(train.items.raw(t.items[r]));
    }
    let k = config.ks.iter().copied().max().unwrap_or(20);
    let none: Vec<(&dyn CandidateSource, usize)> = Vec::new();
    let stages = p.stages(&none, true);
    lengths
        .iter()
        .map(|&n| {
            let m = evaluator.evaluate_lists(
                |u| {
                    let raw = dataset.users.raw(u);
                    let history: Vec<HistoryItem<'_>> = by_user
                        .get(raw)
                        .map(|items| {
                            items
                                .iter()
                                .take(n)
                                .map(|&item_id| HistoryItem {
                                    item_id,
                                    strength: 1.0,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let id = format!("cold:{raw}");
                    let answer = recommend(
                        &stages,
                        &Request {
                            user: User {
                                id: &id,
                                history: &history,
                            },
                            k,
                            num_candidates: 100,
                            exclude_seen: true,
                            exclude_items: &[],
                            order: Order::Auto,
                        },
                    );
                    item_rows(&dataset, answer)
                },
                config,
            )?;
            Ok((
                format!("unknown users, first {n} training items as history"),
                m,
            ))
        })
        .collect()
}

/// Adds the served lists' section to a text table.
pub fn add_served_section(t: &mut Table, s: &Served) {
    let section = t.section(
        &format!(
            "served lists (/v1/recommend, test: {} users; higher is better)",
            super::thousands(s.users)
        ),
        SERVED_KEYS,
    );
    for (name, m) in &s.rows {
        let values: Vec<Option<f64>> = SERVED_KEYS.iter().map(|k| m.get(k)).collect();
        section.row(name, &values);
    }
}

/// `shortlist eval --pipeline BASE --test F`.
pub fn eval(a: &EvalArgs<'_>, ctx: &Context) -> Result<()> {
    let p = Pipeline::load(&a.models)?;
    let test = load_tsv(a.test, &LoadOptions::default(), &ctx.progress())?;
    super::data::warn_report(&test.report);
    let mut served = served_metrics(&p, &test.dataset, a.num_candidates, true)?;
    if !a.cold.is_empty() {
        let Some(train) = a.train else {
            return Err(BadInput(
                "--cold-history needs --train (the users' training interactions, in time order)"
                    .into(),
            )
            .into());
        };
        let train = load_tsv(train, &LoadOptions::default(), &ctx.progress())?;
        served
            .rows
            .extend(cold_metrics(&p, &train.dataset, &test.dataset, a.cold)?);
    }
    if a.json {
        let v: Vec<Value> = served
            .rows
            .iter()
            .map(|(name, m)| json!({"list": name, "metrics": m}))
            .collect();
        return print_json(&json!({
            "base": a.models.base,
            "test": a.test,
            "users_evaluated": served.users,
            "rows": v,
        }));
    }
    let mut t = Table::new(4);
    add_served_section(&mut t, &served);
    crate::outln!("{}", t.render().trim_end());
    crate::outln!(
        "(k = 20 per list, the user's training items excluded; every list is what shortlist_pipeline::recommend returns)"
    );
    Ok(())
}

/// A dataset holding a model's training items (`seen`, the items masked at evaluation)
/// followed by the test file's interactions. Every catalogue item is an index, so all
/// of them can be ranked and every served item can be scored.
pub fn with_training_items(
    spec: &FeatureSpec,
    seen: &Csr,
    test: &Dataset,
) -> (Dataset, Vec<usize>, Vec<usize>) {
    let (uv, iv) = (&spec.user_id, &spec.item_id);
    let mut users = IdMap::default();
    let mut items = IdMap::default();
    for row in iv.num_oov()..iv.len() as u32 {
        items.intern(iv.value(row).unwrap_or_default());
    }
    let mut inter = Interactions::default();
    for row in uv.num_oov()..uv.len() as u32 {
        let u = users.intern(uv.value(row).unwrap_or_default());
        for &i in seen.row(row as usize) {
            inter.users.push(u);
            inter
                .items
                .push(items.intern(iv.value(i).unwrap_or_default()));
            inter.ratings.push(1.0);
        }
    }
    let n_train = inter.len();
    let t = &test.interactions;
    for r in 0..t.len() {
        inter.users.push(users.intern(test.users.raw(t.users[r])));
        inter.items.push(items.intern(test.items.raw(t.items[r])));
        inter.ratings.push(t.ratings[r]);
    }
    let n = inter.len();
    let dataset = Dataset {
        users,
        items,
        interactions: inter,
        ..Dataset::default()
    };
    (dataset, (0..n_train).collect(), (n_train..n).collect())
}

/// Options of `shortlist recommend --pipeline`.
pub struct RecommendArgs<'a> {
    /// The models.
    pub models: PipelineArgs<'a>,
    /// One user, or every user of the primary source (`None`).
    pub user: Option<&'a str>,
    /// Items per list.
    pub k: usize,
    /// Candidates from the primary source.
    pub num_candidates: usize,
    /// Leave out the user's training items.
    pub exclude_seen: bool,
    /// One JSON object (for every user with `user` `None`; else JSON Lines).
    pub json: bool,
    /// One JSON line per user (only with every user).
    pub jsonl: bool,
    /// Write the lists here instead of stdout (only with every user).
    pub output: Option<PathBuf>,
}

/// The checks `shortlist recommend` makes of its list flags (with a model or a
/// pipeline): `-k` at least 1, `--jsonl` and `--output` only with every user.
pub(super) fn check_list_flags(k: usize, one_user: bool, jsonl: bool, output: bool) -> Result<()> {
    if k == 0 {
        return Err(BadInput("-k: expected at least 1".into()).into());
    }
    if one_user && (jsonl || output) {
        return Err(BadInput(
            "--jsonl and --output go with --all-users (one line per user); for one user use --json"
                .into(),
        )
        .into());
    }
    Ok(())
}

/// `shortlist recommend --pipeline BASE`.
pub fn recommend_cmd(a: &RecommendArgs<'_>) -> Result<()> {
    check_list_flags(a.k, a.user.is_some(), a.jsonl, a.output.is_some())?;
    let p = Pipeline::load(&a.models)?;
    let extra = p.extra_refs();
    let stages = p.stages(&extra, true);
    let run = |user: &str| {
        recommend(
            &stages,
            &Request {
                user: User::id(user),
                k: a.k,
                num_candidates: a.num_candidates.max(a.k),
                exclude_seen: a.exclude_seen,
                exclude_items: &[],
                order: Order::Auto,
            },
        )
    };
    match a.user {
        Some(user) => {
            let r = run(user)?;
            let items: Vec<Value> = r
                .items
                .iter()
                .map(|i| {
                    json!({"item_id": i.item_id, "title": i.title, "retrieval_score": i.retrieval_score,
                           "ranking_score": i.ranking_score, "predicted_rating": i.predicted_rating})
                })
                .collect();
            if a.json {
                return print_json(&json!({
                    "user_id": user, "known_user": r.known_user, "order_by": r.order.as_str(), "items": items,
                }));
            }
            if !r.known_user {
                crate::outln!(
                    "user {user:?} is unknown to the models: showing the most popular items"
                );
            }
            crate::outln!("ordered by {}:", r.order.as_str());
            for (n, i) in r.items.iter().enumerate() {
                let rating = i
                    .predicted_rating
                    .map(|v| format!("{v:.2}★"))
                    .unwrap_or_default();
                crate::outln!(
                    "{:>3}. {:>6}  {}  [item {}]",
                    n + 1,
                    rating,
                    i.title.unwrap_or("-"),
                    i.item_id
                );
            }
            Ok(())
        }
        None => {
            let uv = &p.primary.2.spec().user_id;
            let mut lines = Vec::new();
            for row in uv.num_oov()..uv.len() as u32 {
                let user = uv.value(row).unwrap_or_default();
                let r = run(user)?;
                lines.push(json!({
                    "user_id": user,
                    "items": r.items.iter().map(|i| i.item_id).collect::<Vec<_>>(),
                    "scores": r.items.iter().map(|i| i.ranking_score.unwrap_or(i.retrieval_score)).collect::<Vec<_>>(),
                }));
            }
            super::model::write_all_users(&lines, a.json, a.k, a.exclude_seen, a.output.as_deref())
        }
    }
}
