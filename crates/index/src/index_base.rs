//! The top-K trait every index implements, its result type [`Hit`] and the per-query
//! [`Filter`].
//!
//! Ordering contract (shared by every implementation, and checked against the exact
//! index in tests): hits are sorted by score descending, ties broken by the lower item
//! index; a NaN score ranks as `-inf`; `k = 0` gives no hits; a `k` larger than the
//! number of admissible items gives all of them.

use crate::bitmap::ItemBitmap;
use crate::error::Result;

/// One search result: an item index and its score (inner product with the query).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Item index (row of the item matrix).
    pub item: u32,
    /// Inner product of the query and the item.
    pub score: f32,
}

impl Hit {
    /// True when `self` ranks strictly before `other`: higher score, or equal score and
    /// lower item index. NaN scores must have been mapped to `-inf` before.
    #[inline]
    pub fn ranks_before(&self, other: &Hit) -> bool {
        self.score > other.score || (self.score == other.score && self.item < other.item)
    }
}

/// Which items a query may return. Building one borrows the caller's list or bitmap
/// and allocates nothing; the index copies (and sorts) an unsorted list once per
/// query, proportional to the list, never to the catalogue.
///
/// Lists suit a few items (a user's seen items); an [`ItemBitmap`] suits large or
/// shared rules (prepared once, then one bit test per scanned item, and the number of
/// admissible items known up front, which the approximate indexes use to size their
/// search).
///
/// Out-of-range entries of an exclusion list are ignored (they exclude nothing); an
/// out-of-range entry of an allow-list, or a bitmap whose universe is not the index's
/// item count, is an error, because it is a caller bug.
#[derive(Debug, Clone, Copy, Default)]
pub enum Filter<'a> {
    /// Every item is admissible.
    #[default]
    None,
    /// Exclude these items; the slice must be sorted ascending (duplicates allowed),
    /// e.g. a user's training items from a CSR matrix. Checked: an unsorted slice is an
    /// error.
    ExcludeSorted(&'a [u32]),
    /// Exclude these items, in any order.
    Exclude(&'a [u32]),
    /// Only these items are admissible, in any order (duplicates are returned once).
    AllowOnly(&'a [u32]),
    /// Only the items whose bit is set are admissible; the bitmap's
    /// [`universe`](ItemBitmap::universe) must be the index's item count.
    AllowBitmap(&'a ItemBitmap),
}

/// A maximum-inner-product top-K index over item embeddings. Object-safe, so servers
/// can hold an `Arc<dyn TopKIndex>` and swap exact for approximate implementations.
pub trait TopKIndex: Send + Sync {
    /// Embedding dimension.
    fn dim(&self) -> usize;

    /// Number of items.
    fn len(&self) -> usize;

    /// True when the index holds no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` admissible items with the highest inner product with `query`
    /// (length [`dim`](Self::dim)), sorted as described in the [module docs](self).
    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>>;

    /// [`search`](Self::search) for `n` queries at once: `queries` is `n × dim`,
    /// row-major; `filter_of(q)` gives query `q`'s filter (it is called from worker
    /// threads). Returns one hit list per query, in query order.
    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>>;
}

/// Number of items in a row-major `n × dim` buffer of `len` floats. Errors when `dim`
/// is 0, when `len` is not a multiple of `dim`, or when `n` does not fit in `u32`.
pub(crate) fn item_count(len: usize, dim: usize) -> crate::Result<usize> {
    if dim == 0 {
        return Err(crate::Error::invalid("dim", "must be at least 1"));
    }
    if !len.is_multiple_of(dim) {
        return Err(crate::Error::Dimension {
            what: format!("items (length {len} is not n × dim)"),
            expected: dim,
            found: len % dim,
        });
    }
    let n = len / dim;
    if n > u32::MAX as usize {
        return Err(crate::Error::invalid(
            "items",
            format!("{n} items do not fit in u32 item indices"),
        ));
    }
    Ok(n)
}

/// A query's length must be the index dimension.
pub(crate) fn check_query(len: usize, dim: usize) -> crate::Result<()> {
    if len != dim {
        return Err(crate::Error::Dimension {
            what: "query".into(),
            expected: dim,
            found: len,
        });
    }
    Ok(())
}

/// A batch of queries must be whole rows of the index dimension.
pub(crate) fn check_queries(len: usize, dim: usize) -> crate::Result<()> {
    if !len.is_multiple_of(dim) {
        return Err(crate::Error::Dimension {
            what: format!("queries (length {len} is not n × dim; remainder)"),
            expected: dim,
            found: len % dim,
        });
    }
    Ok(())
}

/// [`TopKIndex::search_batch`] as one [`TopKIndex::search`] per query, the queries
/// in parallel (for indexes without a batched kernel).
pub(crate) fn search_each<'f, I: TopKIndex + ?Sized>(
    index: &I,
    queries: &[f32],
    k: usize,
    filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
) -> Result<Vec<Vec<Hit>>> {
    use rayon::prelude::*;
    let dim = index.dim();
    check_queries(queries.len(), dim)?;
    queries
        .par_chunks(dim)
        .enumerate()
        .map(|(q, v)| index.search(v, k, &filter_of(q)))
        .collect()
}

/// Every coordinate of `items` (`n × dim`) must be finite; the error names the first
/// bad one.
pub(crate) fn check_finite(items: &[f32], dim: usize) -> crate::Result<()> {
    match items.iter().position(|x| !x.is_finite()) {
        Some(p) => Err(crate::Error::invalid(
            "items",
            format!(
                "item {} has a non-finite value ({}) at dimension {}",
                p / dim,
                items[p],
                p % dim
            ),
        )),
        None => Ok(()),
    }
}
