//! Candidate sources: the first stage. A [`CandidateSource`] returns a user's top
//! items and scores given items; [`ModelSource`] implements it for every model kind
//! that can rank a whole catalogue — the two-tower retrieval model and iALS (query
//! vector · item vectors, through the index saved with the model) and EASE (its
//! item–item weights, scored densely).
//!
//! Everything that does not depend on the request is computed at load time: every
//! known user's query vector (natively; see
//! [`shortlist_model::PRECOMPUTE_USER_TABLES`]), the index, the popularity fallback
//! order.

use std::path::Path;

use shortlist_features::FeatureSpec;
use shortlist_index::{AnyIndex, ExactIndex, ItemBitmap, IvfIndex, TopKIndex};
use shortlist_model::files::ModelFiles;
use std::sync::{Arc, OnceLock};

use shortlist_model::attributes::{ItemAttributes, RawValue};

use crate::live::{ItemChange, Live, Placer};
use shortlist_model::implicit::{EASE_KIND, IALS_KIND};
use shortlist_model::retrieval_artifact::{titles_from, RETRIEVAL_KIND};
use shortlist_model::{Csr, EaseModel, IalsModel, RetrievalModel};

use crate::error::{Error, Result};

mod batch;
mod retrieve;

pub use batch::RowList;

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
        /// Every known user's query (`users × dim`), computed at load or on first use.
        queries: OnceLock<Vec<f32>>,
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
                let queries = OnceLock::new();
                if crate::PRECOMPUTE_USER_TABLES {
                    let _ = queries.set(model.all_queries());
                }
                Scorer::TwoTower {
                    queries,
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

    /// The model's IVF index, when it has one (added items join its lists).
    pub(crate) fn ivf(&self) -> Option<&IvfIndex> {
        match &self.scorer {
            Scorer::TwoTower {
                index: AnyIndex::Ivf(ivf),
                ..
            }
            | Scorer::Ials {
                index: AnyIndex::Ivf(ivf),
                ..
            } => Some(ivf),
            _ => None,
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
            Scorer::TwoTower { model, .. } => {
                let d = model.dim();
                match (r.row, r.fresh) {
                    (Some(u), false) => self.known_query(u).map(Cow::Borrowed),
                    (row, _) => {
                        let mut q = vec![0f32; d];
                        model.query_with_history_into(row, &r.rows, &mut q);
                        Some(Cow::Owned(q))
                    }
                }
            }
            Scorer::Ials { model, gram, .. } => match (r.row, r.fresh) {
                (Some(u), false) => self.known_query(u).map(Cow::Borrowed),
                _ => model.fold_in(gram, &r.history).ok().map(Cow::Owned),
            },
            Scorer::Ease { .. } => None,
        }
    }

    /// The trained query of user row `u` (`None` for the dense EASE): the
    /// precomputed user tower output, or iALS's user factors.
    fn known_query(&self, u: u32) -> Option<&[f32]> {
        let u = u as usize;
        match &self.scorer {
            Scorer::TwoTower { model, queries, .. } => {
                let d = model.dim();
                queries
                    .get_or_init(|| model.all_queries())
                    .get(u * d..(u + 1) * d)
            }
            Scorer::Ials { model, .. } => Some(model.user_factors.row(u)),
            Scorer::Ease { .. } => None,
        }
    }

    /// The id of item row `row`: the model's vocabulary, or an item added while
    /// serving (`""` for an OOV row).
    pub fn item_id_of(&self, row: u32) -> &str {
        self.item_id(row)
    }

    /// The display title of item row `row` (`None`: none shipped).
    pub fn item_title_of(&self, row: u32) -> Option<&str> {
        match self.titles.get(row as usize) {
            Some(t) => Some(t.as_str()).filter(|t| !t.is_empty()),
            None => self.live.title(row),
        }
    }

    /// Number of item rows, those of items added while serving included: the item
    /// rows [`ModelSource::retrieve_rows_batch`] may return are below it.
    pub fn num_item_rows(&self) -> usize {
        self.num_items() + self.live.state().count as usize
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

    fn index_lists(&self) -> Option<usize> {
        self.ivf().map(|ivf| ivf.lists() + 1)
    }

    fn lists_of(&self, vectors: &[f32]) -> Option<Vec<u32>> {
        self.ivf()?.lists_of(vectors).ok()
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
        let mut next = scores.into_iter();
        for (o, &row) in out.iter_mut().zip(&rows) {
            *o = if row == u32::MAX {
                f32::NAN
            } else if row < base {
                next.next().unwrap_or(f32::NAN)
            } else {
                let i = (row - base) as usize;
                match (&query, st.placed.get(i)) {
                    (Some(q), Some(true)) => dot(q, st.vectors.row(i)),
                    _ => f32::NAN,
                }
            };
        }
    }

    fn item_title(&self, item_id: &str) -> Option<&str> {
        let row = Live::row(&self.live.state(), self, item_id)?;
        self.item_title_of(row)
    }
}
