//! Training the ranking model's relevance head (`shortlist_model::relevance`): the
//! score that orders a user's candidate list, learned on candidate lists.
//!
//! The head's features must be computed by models that did **not** see the
//! interactions it learns to find, otherwise the retrieval score of a training item is
//! memorised and says nothing about an unseen one. So, with seed `seed`:
//!
//! 1. the training interactions are split into a fitting part A and a held-out part B:
//!    `holdout` of each user's interactions at random (at least one left in A), or with
//!    `holdout_by = "time"` the last `holdout` of all of them by timestamp (what a
//!    temporal test split looks like: products launched in B are cold items in A);
//! 2. a two-tower retrieval model (`[relevance.retrieval]`, the default retrieval
//!    configuration unless set), EASE and iALS are fitted on A alone (λ scaled by
//!    |A| / |train|);
//! 3. every user with B items gets a list: the A retrieval model's top `candidates`
//!    unseen items (the hard negatives the served first stage produces) plus
//!    `random_negatives` random unseen items; an item of B in the list is a positive.
//!    Items without any training interaction are left out of the lists (they did not
//!    exist yet, as far as the training rows tell); items with interactions in B only
//!    are the lists' cold items (the A retrieval model places them by their features);
//! 4. the weights minimise the listwise softmax loss
//!    `−(1/|P|) Σ_{j∈P} log softmax(s)_j`, `s_j = z_j · w` (or `z_j · w_cold + b_cold`
//!    for a cold item) over the list's standardised features `z`, averaged over lists,
//!    plus `l2 ‖θ‖²/2` (full-batch Adam);
//!
//!    4b. the same for **new users** (a request's history only): each such user also
//!    gets a list as if new, for every length `n` of `new_user_histories`, whose
//!    history is their first `n` fitting items by time (candidates from the history's
//!    pooled query and an iALS fold-in, every fitting item excluded, the held-out items
//!    positive), and these lists get their own weights, with the `cosine` feature,
//!    which known users' lists never compute (its known-user weight stays 0);
//! 5. EASE, iALS and the item neighbours are fitted again on all training rows, in
//!    the ranking model's vocabularies, and carried by the head; at serving the
//!    retrieval score comes from the served first stage.
//!
//! This retrieval model is internal to training the head (nobody has to train or
//! point to one); it is not saved. With the `multitask` feature, the ranking model's
//! shared-embedding score is computed the same way: by a ranking model trained on A
//! alone (given by the caller), while serving uses the final model's.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shortlist_core::progress::{CancelOnly, Progress};
use shortlist_core::{Dataset, Rng};
use shortlist_features::FeatureSpec;
use shortlist_model::{
    EaseModel, IalsModel, ItemNeighbours, ListFeature, ModelMeta, NewUserWeights, RankingModel,
    RelevanceHead, RelevanceWeights, RetrievalModel,
};

use crate::ease::{fit_ease, EaseTrainConfig};
use crate::error::{Error, Result};
use crate::ials::{fit_ials, IalsTrainConfig};
use crate::interactions::UserItems;
use crate::neighbours::fit_neighbours;
use crate::retrieval::{train_retrieval_with, RetrievalTrainConfig};
use lists::{build_lists, build_new_user_lists};

/// Which training interactions the head holds out to learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldoutBy {
    /// A random `holdout` share of each user's interactions (like a random test split).
    #[default]
    Random,
    /// The last `holdout` share of all interactions by timestamp (like a temporal test
    /// split: items launched in that period are cold to the models fitted before it).
    Time,
}

/// `[relevance]` configuration of a ranking model (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelevanceTrainConfig {
    /// The head's inputs.
    pub features: Vec<ListFeature>,
    /// Fraction of the training interactions held out as list positives.
    pub holdout: f32,
    /// How the held-out interactions are chosen (`"random"` per user, or `"time"`).
    pub holdout_by: HoldoutBy,
    /// Learn separate weights for cold items (no training interaction); false: they
    /// are scored with the same weights as the others.
    pub cold_weights: bool,
    /// Retrieved candidates per training list (the served default is 100).
    pub candidates: usize,
    /// The head's own candidates: its iALS model adds `own_share × candidates` items to
    /// each list (in training and serving alike). 0: none; needs the `ials` feature.
    pub own_share: f32,
    /// Random unseen items added to each training list.
    pub random_negatives: usize,
    /// Full-batch Adam steps on the weights.
    pub epochs: usize,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// Seed of the hold-out split and the random negatives.
    pub seed: u64,
    /// The first stage that produces the training lists.
    pub retrieval: RetrievalTrainConfig,
    /// The EASE feature's model.
    pub ease: EaseTrainConfig,
    /// The iALS feature's model.
    pub ials: IalsTrainConfig,
    /// Neighbours kept per item for the `cosine` feature.
    pub neighbours: usize,
    /// History lengths of the new users' training lists: for each `n` here, every user
    /// with held-out rows and more fitting rows than `n` also gets a list as a new user
    /// whose history is their first `n` fitting items by time, and those lists get
    /// their own weights ([`shortlist_model::NewUserWeights`]), which score users known
    /// only by a request's history of about that length
    /// ([`shortlist_model::RelevanceWeights::for_new_user`]). Empty: new users are
    /// scored with the known users' weights.
    pub new_user_histories: Vec<usize>,
}

impl Default for RelevanceTrainConfig {
    fn default() -> Self {
        RelevanceTrainConfig {
            features: vec![
                ListFeature::Retrieval,
                ListFeature::Ease,
                ListFeature::Ials,
                ListFeature::LogPopularity,
                ListFeature::Cosine,
            ],
            holdout: 0.2,
            holdout_by: HoldoutBy::Random,
            cold_weights: true,
            candidates: 100,
            own_share: 0.5,
            random_negatives: 0,
            epochs: 300,
            learning_rate: 0.05,
            l2: 0.0,
            seed: 42,
            retrieval: RetrievalTrainConfig::default(),
            ease: EaseTrainConfig::default(),
            ials: IalsTrainConfig::default(),
            neighbours: 100,
            new_user_histories: vec![3, 5, 10, 20, 50],
        }
    }
}

impl RelevanceTrainConfig {
    /// Checks ranges (and the nested configurations).
    pub fn validate(&self) -> Result<()> {
        if self.features.is_empty() {
            return Err(Error::invalid(
                "relevance.features",
                "expected at least one of retrieval, ease, ials, log_popularity, multitask, cosine",
            ));
        }
        if let Some(f) = self
            .features
            .iter()
            .enumerate()
            .find(|(k, f)| self.features[..*k].contains(f))
        {
            return Err(Error::invalid(
                "relevance.features",
                format!("{} is listed twice", f.1.name()),
            ));
        }
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return Err(Error::invalid(
                "relevance.holdout",
                format!("expected a fraction in (0, 1), got {}", self.holdout),
            ));
        }
        if self.features.contains(&ListFeature::Cosine) && self.neighbours == 0 {
            return Err(Error::invalid(
                "relevance.neighbours",
                "the cosine feature needs at least 1 neighbour per item",
            ));
        }
        if self.new_user_histories.contains(&0) {
            return Err(Error::invalid(
                "relevance.new_user_histories",
                "expected history lengths of at least 1",
            ));
        }
        if self.candidates == 0 {
            return Err(Error::invalid(
                "relevance.candidates",
                "expected at least 1",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid(
                "relevance.learning_rate",
                format!("expected a positive number, got {}", self.learning_rate),
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(Error::invalid(
                "relevance.l2",
                format!("expected a non-negative number, got {}", self.l2),
            ));
        }
        self.retrieval.validate()?;
        self.ease.validate()?;
        self.ials.validate()
    }
}

/// The training lists: standardised features (`F × n` per list), labels and which
/// items are cold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lists {
    /// Number of features.
    pub features: usize,
    /// Per list: `F × n` standardised features, feature-major.
    pub z: Vec<Vec<f32>>,
    /// Per list: 1 for a held-out item, 0 otherwise.
    pub labels: Vec<Vec<f32>>,
    /// Per list: whether each item is cold (no interaction in the fitting part). Empty:
    /// none is.
    pub cold: Vec<Vec<bool>>,
}

impl Lists {
    /// Whether item `j` of list `l` is cold.
    fn is_cold(&self, l: usize, j: usize) -> bool {
        self.cold
            .get(l)
            .and_then(|c| c.get(j))
            .copied()
            .unwrap_or(false)
    }
}

/// Score of item `j` of a list (`F × n` features `z`) under parameters `theta`:
/// `F` weights, or `F` weights, `F` cold-item weights and the cold bias.
fn item_score(theta: &[f32], nf: usize, z: &[f32], n: usize, j: usize, cold: bool) -> f64 {
    let (w, bias) = if cold && theta.len() == 2 * nf + 1 {
        (&theta[nf..2 * nf], theta[2 * nf] as f64)
    } else {
        (&theta[..nf], 0.0)
    };
    bias + (0..nf)
        .map(|f| w[f] as f64 * z[f * n + j] as f64)
        .sum::<f64>()
}

/// What training the head reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RelevanceReport {
    /// Lists trained on.
    pub lists: usize,
    /// Share of held-out interactions inside the training lists.
    pub candidate_recall: f64,
    /// Mean listwise loss at the start and the end.
    pub loss: (f64, f64),
    /// NDCG@10 of the held-out items on the training lists: retrieval order vs head.
    pub ndcg10: (f64, f64),
    /// Held-out interactions on cold items found in the lists.
    pub cold_positives: usize,
}

/// Trains the relevance head for a ranking model with vocabularies `spec`, reporting
/// each phase (first-stage epochs, iALS iterations, weight steps) to `progress`.
/// Without a ranking model to compute it, the `multitask` feature is refused (see
/// [`train_relevance_with`]).
pub fn train_relevance(
    dataset: &Dataset,
    train: &[usize],
    spec: &FeatureSpec,
    cfg: &RelevanceTrainConfig,
    progress: &dyn Progress,
) -> Result<(RelevanceHead, RelevanceReport)> {
    let none = |_: &[usize]| -> Result<RankingModel> {
        Err(Error::invalid(
            "relevance.features",
            "the multitask feature is computed by a ranking model trained with objective = \"multitask\"",
        ))
    };
    train_relevance_with(dataset, train, spec, cfg, progress, &none)
}

/// [`train_relevance`] with `shared_model(rows)`, which trains the ranking model on
/// interaction `rows` whose shared-embedding scores are the `multitask` feature (called
/// once, on the fitting part, when the feature is used).
///
/// The steps (numbered as in the module documentation): `split_holdout` (1),
/// `FittedStage::fit` (2), `build_lists` (3), `fit_weights` (4) with
/// `report_of`, `new_user_weights` (4b), then `final_head` (5).
pub fn train_relevance_with(
    dataset: &Dataset,
    train: &[usize],
    spec: &FeatureSpec,
    cfg: &RelevanceTrainConfig,
    progress: &dyn Progress,
    shared_model: &dyn Fn(&[usize]) -> Result<RankingModel>,
) -> Result<(RelevanceHead, RelevanceReport)> {
    cfg.validate()?;
    let (fit, held) = split_holdout(dataset, train, cfg)?;
    let stage = FittedStage::fit(dataset, train, &fit, cfg, progress, shared_model)?;
    let (lists, candidate_recall) = build_lists(
        dataset,
        train,
        &held,
        &stage.retrieval,
        &stage.head,
        stage.shared.as_ref(),
        cfg,
    )?;
    if lists.z.is_empty() {
        return Err(Error::NoData(
            "no training list holds a held-out interaction (too few interactions per user?)".into(),
        ));
    }
    progress.start(
        &format!("relevance head: weights on {} lists", lists.z.len()),
        Some(cfg.epochs as u64),
    );
    let w = fit_weights(&lists, cfg, progress);
    progress.finish();
    let report = report_of(&lists, &w, cfg, candidate_recall);
    let new_users = new_user_weights(dataset, train, &fit, &held, &stage, cfg, progress)?;
    let head = final_head(dataset, train, spec, cfg, &w, &report, new_users, progress)?;
    Ok((head, report))
}

/// Step 4b: the weights of new users' lists, one set per history length of
/// [`RelevanceTrainConfig::new_user_histories`] that has lists, with their training
/// facts.
fn new_user_weights(
    dataset: &Dataset,
    train: &[usize],
    fit: &[usize],
    held: &[usize],
    stage: &FittedStage,
    cfg: &RelevanceTrainConfig,
    progress: &dyn Progress,
) -> Result<Vec<NewUserWeights>> {
    let mut sets = Vec::new();
    for (n, lists, candidate_recall) in build_new_user_lists(dataset, train, fit, held, stage, cfg)?
    {
        if lists.z.is_empty() {
            continue;
        }
        progress.start(
            &format!(
                "relevance head: weights of new users with {n} items, on {} lists",
                lists.z.len()
            ),
            Some(cfg.epochs as u64),
        );
        let w = fit_weights(&lists, cfg, progress);
        progress.finish();
        let (weights, cold_weights, cold_bias) = split_weights(&w, cfg.features.len());
        sets.push(NewUserWeights {
            history: u32::try_from(n).unwrap_or(u32::MAX),
            weights,
            cold_weights,
            cold_bias,
            metrics: report_of(&lists, &w, cfg, candidate_recall).metrics(),
        });
    }
    Ok(sets)
}

/// Fitted parameters (see [`loss_and_grad`]) as `(weights, cold weights, cold bias)`
/// for `nf` features: no cold weights when none were learned.
fn split_weights(w: &[f32], nf: usize) -> (Vec<f32>, Vec<f32>, f32) {
    if w.len() == 2 * nf + 1 {
        (w[..nf].to_vec(), w[nf..2 * nf].to_vec(), w[2 * nf])
    } else {
        (w[..nf].to_vec(), Vec::new(), 0.0)
    }
}

/// Step 1: the fitting rows and the held-out rows (an error when none is held out).
fn split_holdout(
    dataset: &Dataset,
    train: &[usize],
    cfg: &RelevanceTrainConfig,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let (fit, held) = match cfg.holdout_by {
        HoldoutBy::Random => holdout(dataset, train, cfg.holdout, cfg.seed),
        HoldoutBy::Time => holdout_by_time(dataset, train, cfg.holdout)?,
    };
    if held.is_empty() {
        return Err(Error::NoData(
            "no user has two training interactions to hold one out for the relevance head".into(),
        ));
    }
    Ok((fit, held))
}

/// Step 2: the models fitted on the fitting rows alone, which compute the lists'
/// features.
struct FittedStage {
    /// The first stage whose top candidates make the lists.
    retrieval: RetrievalModel,
    /// A head (zero weights) carrying EASE and iALS fitted on the fitting rows.
    head: RelevanceHead,
    /// The ranking model of the `multitask` feature, when used.
    shared: Option<RankingModel>,
}

impl FittedStage {
    fn fit(
        dataset: &Dataset,
        train: &[usize],
        fit: &[usize],
        cfg: &RelevanceTrainConfig,
        progress: &dyn Progress,
        shared_model: &dyn Fn(&[usize]) -> Result<RankingModel>,
    ) -> Result<Self> {
        let frac = fit.len() as f64 / train.len() as f64;
        progress.start(
            &format!(
                "relevance head: first stage on {} of {} training rows",
                fit.len(),
                train.len()
            ),
            Some(cfg.retrieval.epochs as u64),
        );
        let (retrieval, _) = train_retrieval_with(
            dataset,
            fit,
            &[],
            &cfg.retrieval,
            &CancelOnly(progress),
            |_| progress.advance(1),
        )?;
        progress.finish();
        let ui_fit = UserItems::with_spec(dataset, fit, retrieval.spec.clone());
        let ease_cfg = EaseTrainConfig {
            lambda: cfg.ease.lambda * frac,
            ..cfg.ease.clone()
        };
        let ials_cfg = IalsTrainConfig {
            regularization: cfg.ials.regularization * frac as f32,
            ..cfg.ials.clone()
        };
        let fitted = fit_sources(
            ui_fit,
            &ease_cfg,
            &ials_cfg,
            cfg,
            "the fitting rows",
            progress,
        )?;
        let head = RelevanceHead {
            weights: RelevanceWeights {
                features: cfg.features.clone(),
                weights: vec![0.0; cfg.features.len()],
                metrics: Default::default(),
                own_share: cfg.own_share,
                cold_weights: Vec::new(),
                cold_bias: 0.0,
                new_users: Vec::new(),
            },
            ease: fitted.ease,
            ials: fitted.ials,
            popularity: retrieval.popularity.clone(),
            neighbours: fitted.neighbours,
        };
        let shared = if cfg.features.contains(&ListFeature::Multitask) {
            progress.start(
                &format!(
                    "relevance head: multitask ranking model on {} rows",
                    fit.len()
                ),
                None,
            );
            let m = shared_model(fit)?;
            progress.finish();
            Some(m)
        } else {
            None
        };
        Ok(FittedStage {
            retrieval,
            head,
            shared,
        })
    }
}

impl RelevanceReport {
    /// The figures stored with the weights in the manifest.
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        [
            ("lists", self.lists as f64),
            ("cold_positives", self.cold_positives as f64),
            ("candidate_recall", self.candidate_recall),
            ("holdout_ndcg@10_retrieval", self.ndcg10.0),
            ("holdout_ndcg@10_head", self.ndcg10.1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// What the fitted weights `w` achieve on the training lists, against the retrieval
/// order.
fn report_of(
    lists: &Lists,
    w: &[f32],
    cfg: &RelevanceTrainConfig,
    candidate_recall: f64,
) -> RelevanceReport {
    let retrieval_first = start_weights(cfg);
    RelevanceReport {
        lists: lists.z.len(),
        candidate_recall,
        loss: (
            loss_and_grad(lists, &vec![0.0; w.len()], 0.0).0,
            loss_and_grad(lists, w, 0.0).0,
        ),
        ndcg10: (ndcg10(lists, &retrieval_first), ndcg10(lists, w)),
        cold_positives: (0..lists.z.len())
            .map(|l| {
                (0..lists.labels[l].len())
                    .filter(|&j| lists.labels[l][j] > 0.0 && lists.is_cold(l, j))
                    .count()
            })
            .sum(),
    }
}

/// Step 5: the head served with the ranking model: the weights `w` (and the new
/// users' `new_users`), EASE, iALS and the neighbours fitted again on all training rows
/// in the ranking model's vocabularies `spec`, and the report's figures as metrics.
#[allow(clippy::too_many_arguments)]
fn final_head(
    dataset: &Dataset,
    train: &[usize],
    spec: &FeatureSpec,
    cfg: &RelevanceTrainConfig,
    w: &[f32],
    report: &RelevanceReport,
    new_users: Vec<NewUserWeights>,
    progress: &dyn Progress,
) -> Result<RelevanceHead> {
    let ui = UserItems::with_spec(dataset, train, spec.clone());
    let popularity = ui.popularity.clone();
    let sources = fit_sources(ui, &cfg.ease, &cfg.ials, cfg, "all training rows", progress)?;
    let (weights, cold_weights, cold_bias) = split_weights(w, cfg.features.len());
    let head = RelevanceHead {
        weights: RelevanceWeights {
            features: cfg.features.clone(),
            weights,
            metrics: report.metrics(),
            own_share: cfg.own_share,
            cold_weights,
            cold_bias,
            new_users,
        },
        ease: sources.ease,
        ials: sources.ials,
        popularity,
        neighbours: sources.neighbours,
    };
    head.check(spec.user_id.len(), spec.item_id.len())?;
    Ok(head)
}

/// The models behind the head's features, each present when its feature is used.
struct Sources {
    ease: Option<EaseModel>,
    ials: Option<IalsModel>,
    neighbours: Option<ItemNeighbours>,
}

/// Fits the EASE, iALS and neighbour models the head's features use, on `ui`.
fn fit_sources(
    ui: UserItems,
    ease: &EaseTrainConfig,
    ials: &IalsTrainConfig,
    cfg: &RelevanceTrainConfig,
    rows: &str,
    progress: &dyn Progress,
) -> Result<Sources> {
    let meta = ModelMeta::default();
    let neighbours = if cfg.features.contains(&ListFeature::Cosine) {
        progress.start(&format!("relevance head: item neighbours on {rows}"), None);
        let m = fit_neighbours(&ui, cfg.neighbours);
        progress.finish();
        Some(m)
    } else {
        None
    };
    let e = if cfg.features.contains(&ListFeature::Ease) {
        progress.start(&format!("relevance head: EASE on {rows}"), None);
        let m = fit_ease(ui.clone(), ease, meta.clone())?;
        progress.finish();
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        Some(m)
    } else {
        None
    };
    let i = if cfg.features.contains(&ListFeature::Ials) {
        progress.start(
            &format!("relevance head: iALS on {rows}"),
            Some(ials.iterations as u64),
        );
        let m = fit_ials(ui, ials, meta, |_| progress.advance(1))?;
        progress.finish();
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        Some(m)
    } else {
        None
    };
    Ok(Sources {
        ease: e,
        ials: i,
        neighbours,
    })
}

/// Splits each user's rows: `fraction` of them (rounded, at least one kept) held out.
fn holdout(
    dataset: &Dataset,
    train: &[usize],
    fraction: f32,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let users = &dataset.interactions.users;
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); dataset.users.len()];
    for &r in train {
        by_user[users[r] as usize].push(r);
    }
    let mut rng = Rng::with_stream(seed, 11);
    let (mut fit, mut held) = (Vec::new(), Vec::new());
    for mut rows in by_user {
        rng.shuffle(&mut rows);
        let n = ((rows.len() as f64) * fraction as f64).round() as usize;
        let n = n.min(rows.len().saturating_sub(1));
        held.extend_from_slice(&rows[..n]);
        fit.extend_from_slice(&rows[n..]);
    }
    fit.sort_unstable();
    held.sort_unstable();
    (fit, held)
}

/// The last `fraction` of `train` by timestamp held out (ties by row order).
fn holdout_by_time(
    dataset: &Dataset,
    train: &[usize],
    fraction: f32,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let ts = dataset.interactions.timestamps.as_ref().ok_or_else(|| {
        Error::invalid(
            "relevance.holdout_by",
            "\"time\" needs timestamps, and the training rows have none",
        )
    })?;
    let mut rows = train.to_vec();
    rows.sort_by_key(|&r| (ts[r], r));
    let cut = rows.len() - ((rows.len() as f64) * fraction as f64).round() as usize;
    let mut held = rows.split_off(cut);
    rows.sort_unstable();
    held.sort_unstable();
    Ok((rows, held))
}

/// How many own candidates the head adds to a list of `n` first-stage candidates.
pub fn own_count(share: f32, n: usize) -> usize {
    (share as f64 * n as f64).round() as usize
}

/// Mean listwise loss over `lists` with parameters `w` (plus `l2 ‖w‖²/2`) and its
/// gradient. `w` holds `F` weights, or `F` weights, `F` cold-item weights and the
/// cold bias (see [`Lists::cold`]).
pub fn loss_and_grad(lists: &Lists, w: &[f32], l2: f32) -> (f64, Vec<f64>) {
    let nf = lists.features;
    let np = w.len();
    let parts: Vec<(f64, Vec<f64>)> = lists
        .z
        .par_iter()
        .zip(&lists.labels)
        .enumerate()
        .map(|(l, (z, y))| {
            let n = y.len();
            let cold = |j: usize| np > nf && lists.is_cold(l, j);
            let s: Vec<f64> = (0..n)
                .map(|j| item_score(w, nf, z, n, j, cold(j)))
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = s.iter().map(|v| (v - max).exp()).sum();
            let lse = max + sum.ln();
            let npos: f64 = y.iter().map(|&v| v as f64).sum();
            let loss = lse - (0..n).map(|j| y[j] as f64 * s[j]).sum::<f64>() / npos;
            // ∂loss/∂s_j = p_j − y_j / |P|, onto the parameters that scored item j.
            let mut g = vec![0f64; np];
            for j in 0..n {
                let gs = (s[j] - lse).exp() - y[j] as f64 / npos;
                let off = if cold(j) {
                    g[2 * nf] += gs;
                    nf
                } else {
                    0
                };
                for f in 0..nf {
                    g[off + f] += gs * z[f * n + j] as f64;
                }
            }
            (loss, g)
        })
        .collect();
    let m = parts.len().max(1) as f64;
    let mut loss = 0.0;
    let mut grad = vec![0f64; np];
    for (l, g) in &parts {
        loss += l / m;
        grad.iter_mut().zip(g).for_each(|(a, b)| *a += b / m);
    }
    for (f, &v) in w.iter().enumerate() {
        loss += 0.5 * l2 as f64 * (v as f64).powi(2);
        grad[f] += l2 as f64 * v as f64;
    }
    (loss, grad)
}

/// Starting parameters: "retrieval order" (weight 1 on the retrieval feature), for
/// cold items too (with bias 0) when the configuration learns their weights.
fn start_weights(cfg: &RelevanceTrainConfig) -> Vec<f32> {
    let w: Vec<f32> = cfg
        .features
        .iter()
        .map(|&f| f32::from(f == ListFeature::Retrieval))
        .collect();
    if cfg.cold_weights {
        let mut all = w.clone();
        all.extend_from_slice(&w);
        all.push(0.0);
        all
    } else {
        w
    }
}

/// Full-batch Adam from [`start_weights`], one `progress` step per epoch.
fn fit_weights(lists: &Lists, cfg: &RelevanceTrainConfig, progress: &dyn Progress) -> Vec<f32> {
    let mut w = start_weights(cfg);
    let np = w.len();
    let (mut m, mut v) = (vec![0f64; np], vec![0f64; np]);
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    for t in 1..=cfg.epochs {
        let (_, g) = loss_and_grad(lists, &w, cfg.l2);
        for f in 0..np {
            m[f] = b1 * m[f] + (1.0 - b1) * g[f];
            v[f] = b2 * v[f] + (1.0 - b2) * g[f] * g[f];
            let mh = m[f] / (1.0 - b1.powi(t as i32));
            let vh = v[f] / (1.0 - b2.powi(t as i32));
            w[f] -= (cfg.learning_rate as f64 * mh / (vh.sqrt() + eps)) as f32;
        }
        progress.advance(1);
    }
    w
}

/// Mean NDCG@10 of the positives of each list when it is ordered by `Z w`.
fn ndcg10(lists: &Lists, w: &[f32]) -> f64 {
    let nf = lists.features;
    let total: f64 = lists
        .z
        .iter()
        .zip(&lists.labels)
        .enumerate()
        .map(|(l, (z, y))| {
            let n = y.len();
            let s: Vec<f64> = (0..n)
                .map(|j| item_score(w, nf, z, n, j, lists.is_cold(l, j)))
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
            let disc = |r: usize| 1.0 / ((r + 2) as f64).log2();
            let dcg: f64 = order
                .iter()
                .take(10)
                .enumerate()
                .filter(|(_, &j)| y[j] > 0.0)
                .map(|(r, _)| disc(r))
                .sum();
            let npos = y.iter().filter(|&&v| v > 0.0).count().min(10);
            dcg / (0..npos).map(disc).sum::<f64>()
        })
        .sum();
    total / lists.z.len().max(1) as f64
}

mod lists;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
