//! Items added, updated or retired while serving, without retraining: the live
//! layer of a [`ModelSource`](crate::ModelSource).
//!
//! * An added item gets a row after the model's vocabulary. A two-tower model gives
//!   it a candidate vector from its side features alone (the item tower without the
//!   id embedding: what a cold item's vector is, see
//!   `RetrievalModel::candidate_from_features`); iALS and EASE cannot place an item
//!   without interactions, so there it is known (attributes, titles, retirement) but
//!   never retrieved.
//! * Over an IVF index, an added item joins the list the index would put it in
//!   ([`IvfIndex::list_of`](shortlist_index::IvfIndex::list_of)): each list keeps its
//!   added rows beside the trained ones, and a query scans the added rows of the lists
//!   its search opens ([`IvfIndex::search_opened`](shortlist_index::IvfIndex::search_opened)),
//!   so an added item is found as a trained one is and a query's cost grows with the
//!   lists it opens, not with every item added. Over an exact index the added vectors
//!   form a small exact index of their own. Either way the saved index is neither
//!   rebuilt nor changed (the IVF index keeps its calibration), and the two hit lists
//!   are merged by score.
//! * The added vectors are stored in chunks that later changes do not copy, and an
//!   IVF list's added rows are copied only when a change touches that list, so a batch
//!   of changes costs about its own size over an IVF index (the exact side index is
//!   rebuilt whole).
//! * Updating an item retires its current row and adds a new one.
//! * A retired item is left out of every search, of the popularity fallback and of
//!   the pipeline's merged candidates.
//!
//! Changes are applied in order from a sequence the server keeps (and logs);
//! [`Live::applied`] says how many a source has seen, so a model version loaded later
//! catches up by applying the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rustc_hash::{FxHashMap, FxHashSet};
use shortlist_index::ExactIndex;
use shortlist_model::attributes::{ItemAttributes, RawValue};

/// One catalogue change.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemChange {
    /// Adds the item, or replaces it (a new row; the old one is retired).
    Put {
        /// Raw item id.
        item_id: String,
        /// Display title.
        title: Option<String>,
        /// Raw side features: column name → value.
        features: Vec<(String, RawValue)>,
    },
    /// Retires the item: never returned again.
    Retire {
        /// Raw item id.
        item_id: String,
    },
}

impl ItemChange {
    /// The item's raw id.
    pub fn item_id(&self) -> &str {
        match self {
            ItemChange::Put { item_id, .. } | ItemChange::Retire { item_id } => item_id,
        }
    }
}

/// Append-only `(id, title)` slots that can be borrowed for the owner's lifetime
/// (candidates borrow their ids): chunk `c` holds `64 << c` slots and is allocated
/// once, so a slot never moves.
#[derive(Default)]
struct Arena {
    chunks: [OnceLock<Chunk>; 32],
}

/// One `(id, title)` slot of the [`Arena`].
type Slot = OnceLock<(Box<str>, Box<str>)>;
/// A chunk of slots, allocated whole.
type Chunk = Box<[Slot]>;

impl Arena {
    fn locate(i: usize) -> (usize, usize) {
        let c = (usize::BITS - 1 - (i / 64 + 1).leading_zeros()) as usize;
        (c, i - 64 * ((1 << c) - 1))
    }

    fn get(&self, i: usize) -> Option<&(Box<str>, Box<str>)> {
        let (c, off) = Self::locate(i);
        self.chunks.get(c)?.get()?.get(off)?.get()
    }

    /// Sets slot `i` (once; the single writer's next row).
    fn set(&self, i: usize, id: &str, title: &str) {
        let (c, off) = Self::locate(i);
        if let Some(chunk) = self.chunks.get(c) {
            let chunk = chunk.get_or_init(|| (0..64usize << c).map(|_| OnceLock::new()).collect());
            let _ = chunk[off].set((id.into(), title.into()));
        }
    }
}

/// Rows per chunk of [`Rows`].
const ROWS_PER_CHUNK: usize = 1024;

/// The added items' vectors, `dim` wide, in chunks of [`ROWS_PER_CHUNK`] rows: a
/// state cloned for the next batch shares every chunk, and only the last one, when a
/// reader still holds it, is copied as it grows.
#[derive(Clone, Default)]
pub(crate) struct Rows {
    dim: usize,
    chunks: Vec<Arc<Vec<f32>>>,
}

impl Rows {
    fn new(dim: usize) -> Self {
        Rows {
            dim,
            chunks: Vec::new(),
        }
    }

    /// Appends one row (`dim` values).
    fn push(&mut self, v: &[f32]) {
        let full = ROWS_PER_CHUNK * self.dim;
        match self.chunks.last_mut() {
            Some(last) if last.len() < full => Arc::make_mut(last).extend_from_slice(v),
            _ => {
                let mut c = Vec::with_capacity(full);
                c.extend_from_slice(v);
                self.chunks.push(Arc::new(c));
            }
        }
    }

    /// Row `i` (empty beyond the last).
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        let off = (i % ROWS_PER_CHUNK) * self.dim;
        self.chunks
            .get(i / ROWS_PER_CHUNK)
            .and_then(|c| c.get(off..off + self.dim))
            .unwrap_or(&[])
    }

    /// Every row, one after the other.
    fn to_vec(&self) -> Vec<f32> {
        self.chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }
}

/// The added rows of one IVF list, by decreasing norm, their vectors side by side (a
/// query reads a list's rows in one sweep, as the index reads its own, instead of
/// rows scattered over every added vector).
#[derive(Clone, Default)]
pub(crate) struct LiveList {
    /// Offsets from the model's `base`.
    pub rows: Vec<u32>,
    /// `‖v‖` of each row.
    pub norms: Vec<f32>,
    /// `rows.len() × dim` vectors.
    pub vectors: Vec<f32>,
}

impl LiveList {
    fn insert(&mut self, off: u32, v: &[f32]) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let at = self.norms.partition_point(|&n| n >= norm);
        self.rows.insert(at, off);
        self.norms.insert(at, norm);
        let d = v.len();
        self.vectors.splice(at * d..at * d, v.iter().copied());
    }

    fn remove(&mut self, off: u32) {
        if let Some(at) = self.rows.iter().position(|&r| r == off) {
            let d = self.vectors.len() / self.rows.len();
            self.rows.remove(at);
            self.norms.remove(at);
            self.vectors.drain(at * d..(at + 1) * d);
        }
    }
}

/// The current live row of every added or updated item id: the ids of recent batches
/// in a small map cloned with each state, the older ones in a shared map that absorbs
/// the recent one once it holds a quarter as many, so that a batch costs about its own
/// size (amortised) rather than a copy of every id.
#[derive(Clone, Default)]
pub(crate) struct LiveIds {
    older: Arc<FxHashMap<String, u32>>,
    recent: FxHashMap<String, u32>,
}

impl LiveIds {
    /// The live row of `item_id`.
    pub(crate) fn get(&self, item_id: &str) -> Option<&u32> {
        self.recent.get(item_id).or_else(|| self.older.get(item_id))
    }

    fn insert(&mut self, item_id: String, row: u32) {
        self.recent.insert(item_id, row);
    }

    /// Moves the recent ids into the shared map when they are many enough.
    fn settle(&mut self) {
        if self.recent.len() >= 1024.max(self.older.len() / 4) {
            let older = Arc::make_mut(&mut self.older);
            older.extend(self.recent.drain());
        }
    }
}

/// The live rows at one moment (replaced whole on every change batch).
#[derive(Clone, Default)]
pub(crate) struct State {
    /// Changes applied.
    pub seq: u64,
    /// Live rows (after the model's `base` rows).
    pub count: u32,
    /// Current row of every added or updated item.
    pub by_id: LiveIds,
    /// `count` candidate vectors (zeros where `placed` is false).
    pub vectors: Rows,
    /// Whether a live row has a vector (two-tower models only).
    pub placed: Vec<bool>,
    /// The exact index over `vectors` (`None` while empty, or when `lists` holds them).
    pub index: Option<Arc<ExactIndex>>,
    /// Over an IVF index: per list of the index (the head last), the live rows placed in
    /// it and not retired, by decreasing norm (a scan stops where `‖q‖ ‖v‖` cannot
    /// reach the scores it must beat); `None` otherwise.
    pub lists: Option<Vec<Arc<LiveList>>>,
    /// Over an IVF index: the list of every live row (`u32::MAX`: none).
    pub list_of_row: Vec<u32>,
    /// Retired rows (model rows and live rows), sorted.
    pub retired: Vec<u32>,
    /// Attributes of every row (model rows, then live rows), when the model has any.
    pub attributes: Option<Arc<ItemAttributes>>,
}

/// The live layer of one model; see the [module](self) documentation.
pub struct Live {
    base: u32,
    dim: usize,
    arena: Arena,
    state: RwLock<Arc<State>>,
    writer: Mutex<()>,
    /// Whether any item was retired (a lock-free answer for the common case).
    any_retired: AtomicBool,
}

/// How a model places an added item (a vector from its features, when it can) and
/// checks its features.
pub(crate) trait Placer {
    /// Writes the vector of an item with `features` into `out`; `Ok(false)` when the
    /// model cannot place items from features.
    fn place(&self, features: &[(String, RawValue)], out: &mut [f32]) -> crate::Result<bool>;
    /// The model's row of a raw id (its vocabulary).
    fn model_row(&self, item_id: &str) -> Option<u32>;
    /// The model's item feature names (what `place` takes).
    fn feature_names(&self) -> Vec<String>;
    /// The number of lists of the model's IVF index, the head included; `None` when
    /// its index is not IVF.
    fn index_lists(&self) -> Option<usize>;
    /// The IVF list each row of `vectors` joins (see `IvfIndex::lists_of`); `None`
    /// without one.
    fn lists_of(&self, vectors: &[f32]) -> Option<Vec<u32>>;
}

impl Live {
    /// An empty layer over a model of `base` rows, `dim`-wide vectors and attribute
    /// table `attributes`.
    pub(crate) fn new(base: usize, dim: usize, attributes: Option<ItemAttributes>) -> Self {
        Live {
            base: base as u32,
            dim,
            arena: Arena::default(),
            state: RwLock::new(Arc::new(State {
                attributes: attributes.map(Arc::new),
                vectors: Rows::new(dim),
                ..State::default()
            })),
            writer: Mutex::new(()),
            any_retired: AtomicBool::new(false),
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many changes of the server's sequence this model has applied.
    pub fn applied(&self) -> u64 {
        self.state().seq
    }

    /// The raw id of live row `row` (≥ base).
    pub(crate) fn id(&self, row: u32) -> Option<&str> {
        let i = row.checked_sub(self.base)? as usize;
        self.arena.get(i).map(|(id, _)| &**id)
    }

    /// The title of live row `row`.
    pub(crate) fn title(&self, row: u32) -> Option<&str> {
        let i = row.checked_sub(self.base)? as usize;
        self.arena
            .get(i)
            .map(|(_, t)| &**t)
            .filter(|t| !t.is_empty())
    }

    /// The current row of `item_id` in `st` (a live row, else the model's).
    pub(crate) fn row(st: &State, placer: &dyn Placer, item_id: &str) -> Option<u32> {
        st.by_id
            .get(item_id)
            .copied()
            .or_else(|| placer.model_row(item_id))
    }

    /// Whether `item_id` is retired.
    pub(crate) fn is_retired(&self, placer: &dyn Placer, item_id: &str) -> bool {
        if !self.any_retired.load(Ordering::Acquire) {
            return false;
        }
        let st = self.state();
        Self::row(&st, placer, item_id).is_some_and(|r| st.retired.binary_search(&r).is_ok())
    }

    /// Checks that `change` would apply: its features are the model's item features or
    /// attributes, each with a value of the right type. Errors name the feature.
    pub(crate) fn check(&self, placer: &dyn Placer, change: &ItemChange) -> crate::Result<()> {
        let ItemChange::Put { features, .. } = change else {
            return Ok(());
        };
        let st = self.state();
        let mut out = vec![0f32; self.dim];
        let attrs = match st.attributes.as_deref() {
            Some(a) => Attrs::Check(a),
            None => Attrs::None,
        };
        apply_features(placer, attrs, features, &mut out).map(drop)
    }

    /// Applies the changes of the server's sequence numbered `first..` that this
    /// model has not seen (`changes[i]` is number `first + i`). A change this model
    /// cannot take (a feature of a type it does not know) is applied without its
    /// features; the returned messages say which (the server checked every change
    /// against its default model first, and logs them).
    pub(crate) fn apply(
        &self,
        placer: &dyn Placer,
        first: u64,
        changes: &[ItemChange],
    ) -> Vec<String> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.state();
        let Some(skip) = cur.seq.checked_sub(first) else {
            return vec![format!(
                "item changes from number {first} offered to a model that applied {}: skipped",
                cur.seq
            )];
        };
        let todo = changes.get(skip as usize..).unwrap_or(&[]);
        let mut warnings = Vec::new();
        if todo.is_empty() {
            return warnings;
        }
        let mut st = State::clone(&cur);
        let mut attrs = st.attributes.take().map(Arc::unwrap_or_clone);
        let mut retired: FxHashSet<u32> = st.retired.iter().copied().collect();
        let mut vec = vec![0f32; self.dim];
        // Placed rows of this batch and their vectors, for their IVF lists.
        let (mut pending, mut pending_vectors) = (Vec::new(), Vec::new());
        if st.lists.is_none() {
            st.lists = placer
                .index_lists()
                .map(|n| (0..n).map(|_| Arc::new(LiveList::default())).collect());
        }
        for c in todo {
            if let Some(old) = Self::row(&st, placer, c.item_id()) {
                retired.insert(old);
                // A retired live row leaves its list.
                let off = old.checked_sub(self.base).map(|o| o as usize);
                let l = off.and_then(|o| st.list_of_row.get(o)).copied();
                if let (Some(lists), Some(l), Some(off)) = (st.lists.as_mut(), l, off) {
                    if let Some(list) = lists.get_mut(l as usize) {
                        Arc::make_mut(list).remove(off as u32);
                    }
                }
            }
            if let ItemChange::Put {
                item_id,
                title,
                features,
            } = c
            {
                let row = self.base + st.count;
                self.arena
                    .set(st.count as usize, item_id, title.as_deref().unwrap_or(""));
                if let Some(a) = attrs.as_mut() {
                    a.push_row();
                }
                let target = match attrs.as_mut() {
                    Some(a) => Attrs::Set(a),
                    None => Attrs::None,
                };
                let placed = match apply_features(placer, target, features, &mut vec) {
                    Ok(p) => p,
                    Err(e) => {
                        warnings.push(format!("item {item_id:?}: {e}; added without its features"));
                        false
                    }
                };
                if !placed {
                    vec.fill(0.0);
                }
                st.vectors.push(&vec);
                st.placed.push(placed);
                // Its list is found with the batch's others, below.
                st.list_of_row.push(u32::MAX);
                if placed && st.lists.is_some() {
                    pending.push(st.count);
                    pending_vectors.extend_from_slice(&vec);
                }
                st.by_id.insert(item_id.clone(), row);
                st.count += 1;
            }
        }
        let found = match (&st.lists, pending.is_empty()) {
            (Some(_), false) => {
                let found = placer.lists_of(&pending_vectors);
                if found.is_none() {
                    warnings.push(format!(
                        "{} added items could not be placed in the index's lists: they are known but not retrieved",
                        pending.len()
                    ));
                }
                found
            }
            _ => None,
        };
        if let (Some(lists), Some(found)) = (st.lists.as_mut(), found) {
            for (&off, &l) in pending.iter().zip(&found) {
                // Replaced or retired later in the same batch: never listed.
                if retired.contains(&(self.base + off)) {
                    continue;
                }
                if let Some(list) = lists.get_mut(l as usize) {
                    Arc::make_mut(list).insert(off, st.vectors.row(off as usize));
                    st.list_of_row[off as usize] = l;
                }
            }
        }
        st.by_id.settle();
        st.seq = first + changes.len() as u64;
        let mut r: Vec<u32> = retired.into_iter().collect();
        r.sort_unstable();
        st.retired = r;
        st.attributes = attrs.map(Arc::new);
        st.index = if st.count == 0 || st.lists.is_some() {
            None
        } else {
            ExactIndex::new(st.vectors.to_vec(), self.dim)
                .ok()
                .map(Arc::new)
        };
        let any = !st.retired.is_empty();
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(st);
        self.any_retired.store(any, Ordering::Release);
        warnings
    }
}

/// What [`apply_features`] does with attribute columns.
enum Attrs<'x> {
    /// The model keeps no attributes.
    None,
    /// Check the values' types only.
    Check(&'x ItemAttributes),
    /// Set the last row.
    Set(&'x mut ItemAttributes),
}

/// Checks `features` (each a model feature or an attribute, with a value of its
/// type; errors name it), sets the attribute columns per `attrs` and places the item
/// (`out`, from the model features).
fn apply_features(
    placer: &dyn Placer,
    mut attrs: Attrs<'_>,
    features: &[(String, RawValue)],
    out: &mut [f32],
) -> crate::Result<bool> {
    let bad =
        |name: &str, m: String| crate::Error::InvalidArgument(format!("features.{name}: {m}"));
    let msg = |e: shortlist_model::Error| match e {
        shortlist_model::Error::InvalidParameter { message, .. } => message,
        other => other.to_string(),
    };
    let names = placer.feature_names();
    let mut model_features: Vec<(String, RawValue)> = Vec::new();
    for (name, v) in features {
        let table: Option<&ItemAttributes> = match &attrs {
            Attrs::None => None,
            Attrs::Check(a) => Some(a),
            Attrs::Set(a) => Some(a),
        };
        let is_attr = table.is_some_and(|a| a.get(name).is_some());
        let is_feature = names.iter().any(|n| n == name);
        if !is_attr && !is_feature {
            let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
            for c in table.map(|a| a.columns()).unwrap_or(&[]) {
                if !all.contains(&c.name.as_str()) {
                    all.push(&c.name);
                }
            }
            return Err(bad(
                name,
                format!(
                    "unknown feature; expected one of: {}",
                    if all.is_empty() {
                        "(none)".to_owned()
                    } else {
                        all.join(", ")
                    }
                ),
            ));
        }
        match &mut attrs {
            Attrs::Set(a) if is_attr => {
                let row = (a.rows() - 1) as u32;
                a.set(row, name, Some(v)).map_err(|e| bad(name, msg(e)))?;
            }
            Attrs::Check(a) if is_attr => a.check_value(name, v).map_err(|e| bad(name, msg(e)))?,
            _ => {}
        }
        if is_feature {
            model_features.push((name.clone(), v.clone()));
        }
    }
    placer.place(&model_features, out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arena_slots_are_distinct_stable_and_cover_the_chunk_boundaries() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000usize {
            let (c, off) = Arena::locate(i);
            assert!(off < 64 << c, "{i}: offset {off} beyond chunk {c}");
            assert!(seen.insert((c, off)), "{i} shares a slot");
        }
        assert_eq!(Arena::locate(63), (0, 63));
        assert_eq!(Arena::locate(64), (1, 0));
        assert_eq!(Arena::locate(191), (1, 127));
        assert_eq!(Arena::locate(192), (2, 0));
        let a = Arena::default();
        let first = {
            a.set(0, "a", "A");
            a.get(0).unwrap() as *const _
        };
        for i in 1..5000 {
            a.set(i, &format!("id{i}"), "");
        }
        // Slots never move once set.
        assert!(std::ptr::eq(first, a.get(0).unwrap()));
        assert_eq!(&*a.get(4999).unwrap().0, "id4999");
        assert!(a.get(5000).is_none());
    }
}
