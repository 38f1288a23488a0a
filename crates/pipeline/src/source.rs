//! Candidate sources: the first stage. A [`CandidateSource`] returns a user's top
//! items and scores given items; [`ModelSource`] implements it for every model kind
//! that can rank a whole catalogue — the two-tower retrieval model and iALS (query
//! vector · item vectors, through the index saved with the model) and EASE (its
//! item–item weights, scored densely).
//!
//! Everything that does not depend on the request is computed at load time: every
//! known user's query vector, the index, the popularity fallback order.

use std::path::Path;

use shortlist_features::FeatureSpec;
use shortlist_index::{AnyIndex, ExactIndex, Filter, ItemBitmap, TopKIndex};
use shortlist_model::files::ModelFiles;
use std::sync::Arc;

use shortlist_model::attributes::{ItemAttributes, RawValue};

use crate::live::{ItemChange, Live, Placer};
use shortlist_model::implicit::{EASE_KIND, IALS_KIND};
use shortlist_model::retrieval_artifact::{titles_from, RETRIEVAL_KIND};
use shortlist_model::{Csr, EaseModel, IalsModel, RetrievalModel};

use crate::error::{Error, Result};

/// One retrieved candidate. The id borrows from the model, so retrieval allocates no
/// string per candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    /// The raw item id (as in the training data).
    pub item_id: &'a str,
    /// The source's score (higher is better), e.g. a dot product.
    pub score: f32,
}

/// An item the caller says the user interacted with (beyond what training saw).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryItem<'a> {
    /// Raw item id.
    pub item_id: &'a str,
    /// How strongly (1 for a plain interaction; a purchase may count more). It weighs
    /// the item in an iALS fold-in; the two-tower query pools history items equally.
    pub strength: f32,
}

/// Who a request is for: a user id, known to the models or not, and items the caller
/// says the user interacted with. A known user's history extends their training
/// items; an unknown user with a history gets a query built from it (fold-in, no
/// retraining); an unknown user without one gets the popularity fallback.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct User<'a> {
    /// Raw user id (may be new).
    pub id: &'a str,
    /// Extra interactions, oldest first.
    pub history: &'a [HistoryItem<'a>],
}

impl<'a> User<'a> {
    /// A user known by id alone.
    pub fn id(id: &'a str) -> Self {
        User { id, history: &[] }
    }
}

/// How a source built a user's query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserPath {
    /// From the trained user (plus any history given).
    Known,
    /// An unknown user, from the history given in the request.
    History,
    /// Neither: the most popular items.
    #[default]
    Popular,
}

impl UserPath {
    /// `known`, `history` or `popular`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserPath::Known => "known",
            UserPath::History => "history",
            UserPath::Popular => "popular",
        }
    }
}

/// The answer of [`CandidateSource::retrieve`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retrieved<'a> {
    /// Candidates, best first.
    pub candidates: Vec<Candidate<'a>>,
    /// `false` when the user id is unknown to the model.
    pub known_user: bool,
    /// How the query was built ([`UserPath::Popular`]: the candidates are the most
    /// popular items, scored by their share of training interactions).
    pub path: UserPath,
}

/// First stage: top candidates for a user, and scores of given items.
pub trait CandidateSource: Send + Sync {
    /// The model kind (`retrieval`, `ease`, `ials`), for answers and logs.
    fn kind(&self) -> &'static str;

    /// Up to `k` candidates for `user`, best first, leaving out the items the user
    /// interacted with (in training and in `user.history`) when `exclude_seen` is set
    /// and every id in `exclude_items`. A user with neither a known id nor a usable
    /// history gets the popularity fallback ([`UserPath::Popular`], not an error).
    fn retrieve<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> Result<Retrieved<'a>>;

    /// The source's score of each of `item_ids` for `user` into `out` (same length);
    /// NaN for an item the model does not know, or a user it cannot score.
    fn score_items(&self, user: &User<'_>, item_ids: &[&str], out: &mut [f32]);

    /// The display title of an item, if the model ships item metadata.
    fn item_title(&self, item_id: &str) -> Option<&str>;

    /// The raw item attributes by item row (filters, caps, freshness), if the model
    /// keeps them.
    fn attributes(&self) -> Option<Arc<ItemAttributes>> {
        None
    }

    /// The row of `item_id` in [`attributes`](Self::attributes) (`None`: unknown).
    fn item_row(&self, _item_id: &str) -> Option<u32> {
        None
    }

    /// Whether `item_id` was retired while serving ([`ItemChange::Retire`]): it is
    /// never returned, whichever source proposes it.
    fn is_retired(&self, _item_id: &str) -> bool {
        false
    }

    /// How many changes of the server's item sequence the source has applied
    /// (`u64::MAX`: it takes none).
    fn items_applied(&self) -> u64 {
        u64::MAX
    }

    /// Applies the item changes numbered `first..` (`changes[i]` is `first + i`) that
    /// the source has not applied yet; returns messages about changes it could only
    /// partly apply.
    fn apply_items(&self, _first: u64, _changes: &[ItemChange]) -> Vec<String> {
        Vec::new()
    }

    /// Checks that `change` would apply (its features exist, with values of their
    /// types); errors name the feature.
    fn check_item(&self, _change: &ItemChange) -> Result<()> {
        Ok(())
    }

    /// [`retrieve`](Self::retrieve) restricted to the item rows set in `allow` (a
    /// bitmap over [`attributes`](Self::attributes)' rows): the `k` best admissible
    /// items, fewer when fewer are admissible.
    fn retrieve_allowed<'a>(
        &'a self,
        _user: &User<'_>,
        _k: usize,
        _exclude_seen: bool,
        _exclude_items: &[&str],
        _allow: &ItemBitmap,
    ) -> Result<Retrieved<'a>> {
        Err(Error::InvalidArgument(format!(
            "a {} model cannot filter its candidates",
            self.kind()
        )))
    }
}

/// How a [`ModelSource`] scores.
enum Scorer {
    /// `query(user) · candidate(item)` through an index (two towers).
    TwoTower {
        model: RetrievalModel,
        queries: Vec<f32>,
        index: AnyIndex,
    },
    /// `x_user · y_item` through an index (iALS); `gram` = `YᵀY` for fold-ins.
    Ials {
        model: IalsModel,
        index: AnyIndex,
        gram: Vec<f32>,
    },
    /// `Σ_{i ∈ seen(user)} B[i][item]`, dense.
    Ease { model: EaseModel },
}

/// A candidate source backed by a saved model of any candidate kind.
pub struct ModelSource {
    scorer: Scorer,
    titles: Vec<String>,
    /// Items added or retired while serving, and the attributes of all items.
    live: Live,
    /// Item rows by training popularity, most popular first (OOV rows left out).
    popular: Vec<u32>,
    popularity_total: f32,
}

impl ModelSource {
    /// Loads a model directory of kind `retrieval`, `ease` or `ials` (with its saved
    /// index, if any; else an exact index is built).
    pub fn load(dir: &Path, kind: &str) -> Result<Self> {
        let files = ModelFiles::open(dir).map_err(|e| Error::Load(e.to_string()))?;
        Self::load_from(&files, kind)
    }

    /// [`ModelSource::load`] from opened model files. Files held in memory (a
    /// bundle) get an exact index built from the model; a saved index is read
    /// from disk only.
    pub fn load_from(files: &ModelFiles, kind: &str) -> Result<Self> {
        let err = |e: &dyn std::fmt::Display| Error::Load(e.to_string());
        let dir = files.dir();
        let scorer = match kind {
            RETRIEVAL_KIND => {
                let (model, _) = RetrievalModel::load_from(files).map_err(|e| err(&e))?;
                let index = load_index(
                    files,
                    || model.all_candidates(),
                    model.dim(),
                    model.num_items(),
                )?;
                Scorer::TwoTower {
                    queries: model.all_queries(),
                    model,
                    index,
                }
            }
            IALS_KIND => {
                let model = IalsModel::load_from(files).map_err(|e| err(&e))?;
                let index = load_index(
                    files,
                    || model.item_factors.data().to_vec(),
                    model.dim(),
                    model.num_items(),
                )?;
                Scorer::Ials {
                    gram: model.gram(),
                    model,
                    index,
                }
            }
            EASE_KIND => Scorer::Ease {
                model: EaseModel::load_from(files).map_err(|e| err(&e))?,
            },
            other => {
                return Err(Error::Load(format!(
                    "{}: a {other} model is not a candidate source",
                    dir.display()
                )))
            }
        };
        Self::new(scorer, files)
    }

    fn new(scorer: Scorer, files: &ModelFiles) -> Result<Self> {
        let mut s = ModelSource {
            scorer,
            titles: Vec::new(),
            live: Live::new(0, 0, None),
            popular: Vec::new(),
            popularity_total: 1.0,
        };
        s.titles = titles_from(files, s.num_items()).map_err(|e| Error::Load(e.to_string()))?;
        let attributes = ItemAttributes::read_from(files, &s.spec().item_id)
            .map_err(|e| Error::Load(e.to_string()))?;
        let dim = match &s.scorer {
            Scorer::TwoTower { model, .. } => model.dim(),
            Scorer::Ials { model, .. } => model.dim(),
            Scorer::Ease { .. } => 1,
        };
        s.live = Live::new(s.num_items(), dim, attributes);
        let (oov, pop) = (s.spec().item_id.num_oov(), s.popularity());
        let mut popular: Vec<u32> = (oov..pop.len() as u32).collect();
        popular.sort_by_key(|&i| (std::cmp::Reverse(pop[i as usize]), i));
        s.popularity_total = pop.iter().map(|&c| c as f32).sum::<f32>().max(1.0);
        s.popular = popular;
        Ok(s)
    }

    /// The model's vocabularies.
    pub fn spec(&self) -> &FeatureSpec {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => &model.spec,
            Scorer::Ials { model, .. } => &model.spec,
            Scorer::Ease { model } => &model.spec,
        }
    }

    fn popularity(&self) -> &[u32] {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => &model.popularity,
            Scorer::Ials { model, .. } => &model.popularity,
            Scorer::Ease { model } => &model.popularity,
        }
    }

    /// Each user row's training item rows.
    pub fn seen(&self) -> &Csr {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => &model.seen,
            Scorer::Ials { model, .. } => &model.seen,
            Scorer::Ease { model } => &model.seen,
        }
    }

    /// Number of item rows (vocabulary, OOV slots included).
    pub fn num_items(&self) -> usize {
        self.popularity().len()
    }

    fn item_id(&self, row: u32) -> &str {
        match self.spec().item_id.value(row) {
            Some(id) => id,
            None => self.live.id(row).unwrap_or(""),
        }
    }

    /// Resolves `user` against this model's vocabularies.
    fn resolve(&self, user: &User<'_>) -> Resolved {
        let spec = self.spec();
        let row = spec.user_id.get(user.id);
        let mut extra: Vec<(u32, f32)> = user
            .history
            .iter()
            .filter_map(|h| Some((spec.item_id.get(h.item_id)?, h.strength)))
            .collect();
        extra.retain(|(i, s)| !spec.item_id.is_oov(*i) && s.is_finite());
        let mut history: Vec<(u32, f32)> = row
            .map(|r| {
                self.seen()
                    .row(r as usize)
                    .iter()
                    .map(|&i| (i, 1.0))
                    .collect()
            })
            .unwrap_or_default();
        history.extend_from_slice(&extra);
        let path = match (row, history.is_empty()) {
            (Some(_), _) => UserPath::Known,
            (None, false) => UserPath::History,
            (None, true) => UserPath::Popular,
        };
        let mut rows: Vec<u32> = history.iter().map(|h| h.0).collect();
        rows.sort_unstable();
        rows.dedup();
        Resolved {
            row,
            path,
            fresh: !extra.is_empty(),
            history,
            rows,
        }
    }

    /// The query of a resolved user (`None` for the dense EASE and for popularity).
    fn query<'s>(&'s self, r: &Resolved) -> Option<std::borrow::Cow<'s, [f32]>> {
        use std::borrow::Cow;
        if r.path == UserPath::Popular {
            return None;
        }
        match &self.scorer {
            Scorer::TwoTower { model, queries, .. } => {
                let d = model.dim();
                match (r.row, r.fresh) {
                    (Some(u), false) => Some(Cow::Borrowed(
                        &queries[u as usize * d..(u as usize + 1) * d],
                    )),
                    (row, _) => {
                        let mut q = vec![0f32; d];
                        model.query_with_history_into(row, &r.rows, &mut q);
                        Some(Cow::Owned(q))
                    }
                }
            }
            Scorer::Ials { model, gram, .. } => match (r.row, r.fresh) {
                (Some(u), false) => Some(Cow::Borrowed(model.user_factors.row(u as usize))),
                _ => model.fold_in(gram, &r.history).ok().map(Cow::Owned),
            },
            Scorer::Ease { .. } => None,
        }
    }

    /// Scores of item rows `items` for a resolved (non-popular) user.
    fn score_rows(&self, r: &Resolved, items: &[u32], out: &mut [f32]) {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => {
                let Some(q) = self.query(r) else {
                    out.iter_mut().for_each(|o| *o = f32::NAN);
                    return;
                };
                let mut c = vec![0f32; model.dim()];
                for (o, &i) in out.iter_mut().zip(items) {
                    model.candidate_into(i, &mut c);
                    *o = dot(&q, &c);
                }
            }
            Scorer::Ials { model, .. } => {
                let Some(x) = self.query(r) else {
                    out.iter_mut().for_each(|o| *o = f32::NAN);
                    return;
                };
                for (o, &i) in out.iter_mut().zip(items) {
                    *o = dot(&x, model.item_factors.row(i as usize));
                }
            }
            Scorer::Ease { model } => model.score_items(&r.rows, items, out),
        }
    }
}

/// A request's user in one model's vocabularies.
struct Resolved {
    /// The user's row when the id is known.
    row: Option<u32>,
    path: UserPath,
    /// The request brought interactions beyond training.
    fresh: bool,
    /// Training items (known user) then the request's, with strengths.
    history: Vec<(u32, f32)>,
    /// The distinct item rows of `history`, sorted.
    rows: Vec<u32>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The index saved with a model (checked against it), else an exact one over
/// `items()` (built only then).
fn load_index(
    files: &ModelFiles,
    items: impl FnOnce() -> Vec<f32>,
    dim: usize,
    n: usize,
) -> Result<AnyIndex> {
    let dir = files.dir();
    let saved = if files.on_disk() {
        AnyIndex::load_dir(dir).map_err(|e| Error::Load(e.to_string()))?
    } else {
        None
    };
    match saved {
        Some(index) => {
            if index.dim() != dim || index.len() != n {
                return Err(Error::Load(format!(
                    "{}: the saved index ({} items × {}) does not match the model ({n} items × {dim})",
                    dir.display(),
                    index.len(),
                    index.dim(),
                )));
            }
            Ok(index)
        }
        None => Ok(AnyIndex::Exact(
            ExactIndex::new(items(), dim).map_err(|e| Error::Load(e.to_string()))?,
        )),
    }
}

impl ModelSource {
    /// [`CandidateSource::retrieve`], restricted to `allow` when given.
    fn retrieve_where<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
        allow: Option<&ItemBitmap>,
    ) -> Result<Retrieved<'a>> {
        let spec = self.spec();
        let st = self.live.state();
        let base = self.num_items() as u32;
        let excluded_rows: Vec<u32> = exclude_items
            .iter()
            .filter_map(|id| Live::row(&st, self, id))
            .collect();
        let r = self.resolve(user);
        if r.path == UserPath::Popular {
            // Nothing to personalise with: the most popular items, flagged.
            let mut skip: Vec<u32> = excluded_rows;
            skip.extend_from_slice(&st.retired);
            skip.sort_unstable();
            let pop = self.popularity();
            let candidates = self
                .popular
                .iter()
                .filter(|i| skip.binary_search(i).is_err())
                .filter(|&&i| allow.is_none_or(|a| a.contains(i)))
                .take(k)
                .map(|&i| Candidate {
                    item_id: self.item_id(i),
                    score: pop[i as usize] as f32 / self.popularity_total,
                })
                .collect();
            return Ok(Retrieved {
                candidates,
                known_user: false,
                path: UserPath::Popular,
            });
        }
        let mut exclude: Vec<u32> = (0..spec.item_id.num_oov()).collect();
        if exclude_seen {
            exclude.extend_from_slice(&r.rows);
            // Added items among the user's history.
            exclude.extend(user.history.iter().filter_map(|h| st.by_id.get(h.item_id)));
        }
        exclude.extend_from_slice(&excluded_rows);
        exclude.extend_from_slice(&st.retired);
        let hits: Vec<(u32, f32)> = match &self.scorer {
            Scorer::TwoTower { index, .. } | Scorer::Ials { index, .. } => match self.query(&r) {
                Some(q) => {
                    let mut hits = match allow {
                        None => search(index, &q, k, &Filter::Exclude(&exclude))?,
                        Some(a) => {
                            let mut own = ItemBitmap::none(base as usize);
                            for row in a.iter().take_while(|&row| row < base) {
                                own.insert(row);
                            }
                            for &e in exclude.iter().filter(|&&e| e < base) {
                                own.remove(e);
                            }
                            search(index, &q, k, &Filter::AllowBitmap(&own))?
                        }
                    };
                    let live = search_live(&st, base, &q, k, &exclude, allow)?;
                    if !live.is_empty() {
                        // The model's hits and the added items' hits, merged by score.
                        hits.extend(live);
                        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        hits.truncate(k);
                    }
                    hits
                }
                None => Vec::new(),
            },
            Scorer::Ease { model } => {
                let mut scores = vec![0f32; model.num_items()];
                model.scores_into(&r.rows, &mut scores);
                for &e in &exclude {
                    if let Some(s) = scores.get_mut(e as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
                if let Some(a) = allow {
                    for (i, s) in scores.iter_mut().enumerate() {
                        if !a.contains(i as u32) {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                }
                top_k(&scores, k)
            }
        };
        Ok(Retrieved {
            candidates: hits
                .into_iter()
                .map(|(item, score)| Candidate {
                    item_id: self.item_id(item),
                    score,
                })
                .collect(),
            known_user: r.row.is_some(),
            path: r.path,
        })
    }
}

/// The best `k` added items for query `q` (rows from `base`), leaving out rows in
/// `exclude` and, with `allow`, rows it does not hold; items without a vector are
/// never returned.
fn search_live(
    st: &crate::live::State,
    base: u32,
    q: &[f32],
    k: usize,
    exclude: &[u32],
    allow: Option<&ItemBitmap>,
) -> Result<Vec<(u32, f32)>> {
    let Some(index) = &st.index else {
        return Ok(Vec::new());
    };
    let mut ok = match allow {
        None => ItemBitmap::all(st.count as usize),
        Some(a) => {
            let mut b = ItemBitmap::none(st.count as usize);
            for i in 0..st.count {
                if a.contains(base + i) {
                    b.insert(i);
                }
            }
            b
        }
    };
    for (i, placed) in st.placed.iter().enumerate() {
        if !placed {
            ok.remove(i as u32);
        }
    }
    for &e in exclude
        .iter()
        .filter(|&&e| e >= base && e < base + st.count)
    {
        ok.remove(e - base);
    }
    Ok(search(index.as_ref(), q, k, &Filter::AllowBitmap(&ok))?
        .into_iter()
        .map(|(i, s)| (base + i, s))
        .collect())
}

impl Placer for ModelSource {
    fn place(&self, features: &[(String, RawValue)], out: &mut [f32]) -> Result<bool> {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => {
                model
                    .candidate_from_features(features, out)
                    .map_err(|e| match e {
                        shortlist_model::Error::InvalidParameter { parameter, message } => {
                            Error::InvalidArgument(format!("features.{parameter}: {message}"))
                        }
                        other => Error::InvalidArgument(other.to_string()),
                    })?;
                Ok(true)
            }
            Scorer::Ials { .. } | Scorer::Ease { .. } => Ok(false),
        }
    }

    fn model_row(&self, item_id: &str) -> Option<u32> {
        self.spec().item_id.get(item_id)
    }

    fn feature_names(&self) -> Vec<String> {
        self.spec()
            .item_features
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }
}

impl CandidateSource for ModelSource {
    fn kind(&self) -> &'static str {
        match &self.scorer {
            Scorer::TwoTower { .. } => RETRIEVAL_KIND,
            Scorer::Ials { .. } => IALS_KIND,
            Scorer::Ease { .. } => EASE_KIND,
        }
    }

    fn retrieve<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> Result<Retrieved<'a>> {
        self.retrieve_where(user, k, exclude_seen, exclude_items, None)
    }

    fn attributes(&self) -> Option<Arc<ItemAttributes>> {
        self.live.state().attributes.clone()
    }

    fn item_row(&self, item_id: &str) -> Option<u32> {
        Live::row(&self.live.state(), self, item_id)
    }

    fn is_retired(&self, item_id: &str) -> bool {
        self.live.is_retired(self, item_id)
    }

    fn items_applied(&self) -> u64 {
        self.live.applied()
    }

    fn apply_items(&self, first: u64, changes: &[ItemChange]) -> Vec<String> {
        self.live.apply(self, first, changes)
    }

    fn check_item(&self, change: &ItemChange) -> Result<()> {
        self.live.check(self, change)
    }

    fn retrieve_allowed<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
        allow: &ItemBitmap,
    ) -> Result<Retrieved<'a>> {
        self.retrieve_where(user, k, exclude_seen, exclude_items, Some(allow))
    }

    fn score_items(&self, user: &User<'_>, item_ids: &[&str], out: &mut [f32]) {
        let r = self.resolve(user);
        if r.path == UserPath::Popular {
            out.iter_mut().for_each(|o| *o = f32::NAN);
            return;
        }
        let st = self.live.state();
        let base = self.num_items() as u32;
        let rows: Vec<u32> = item_ids
            .iter()
            .map(|id| Live::row(&st, self, id).unwrap_or(u32::MAX))
            .collect();
        let known: Vec<u32> = rows.iter().copied().filter(|&r| r < base).collect();
        let mut scores = vec![0f32; known.len()];
        self.score_rows(&r, &known, &mut scores);
        let query = match (
            &self.scorer,
            rows.iter().any(|&r| r != u32::MAX && r >= base),
        ) {
            (Scorer::TwoTower { .. }, true) => self.query(&r),
            _ => None,
        };
        let d = st.vectors.len().checked_div(st.count as usize).unwrap_or(0);
        let mut next = scores.into_iter();
        for (o, &row) in out.iter_mut().zip(&rows) {
            *o = if row == u32::MAX {
                f32::NAN
            } else if row < base {
                next.next().unwrap_or(f32::NAN)
            } else {
                let i = (row - base) as usize;
                match (&query, st.placed.get(i)) {
                    (Some(q), Some(true)) => dot(q, &st.vectors[i * d..(i + 1) * d]),
                    _ => f32::NAN,
                }
            };
        }
    }

    fn item_title(&self, item_id: &str) -> Option<&str> {
        let row = Live::row(&self.live.state(), self, item_id)?;
        match self.titles.get(row as usize) {
            Some(t) => Some(t.as_str()).filter(|t| !t.is_empty()),
            None => self.live.title(row),
        }
    }
}

fn search(
    index: &dyn TopKIndex,
    q: &[f32],
    k: usize,
    filter: &Filter<'_>,
) -> Result<Vec<(u32, f32)>> {
    Ok(index
        .search(q, k, filter)
        .map_err(|e| Error::Internal(e.to_string()))?
        .into_iter()
        .map(|h| (h.item, h.score))
        .collect())
}

/// The `k` best finite scores, best first (ties: lower row first).
fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .map(|(i, &s)| (i as u32, s))
        .collect();
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > k && k > 0 {
        all.select_nth_unstable_by(k - 1, better);
    }
    all.truncate(k);
    all.sort_unstable_by(better);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_row_and_skips_excluded() {
        let s = [0.5, f32::NEG_INFINITY, 0.9, 0.5, 0.1];
        assert_eq!(top_k(&s, 3), vec![(2, 0.9), (0, 0.5), (3, 0.5)]);
        assert_eq!(top_k(&s, 10).len(), 4);
        assert!(top_k(&s, 0).is_empty());
    }
}
