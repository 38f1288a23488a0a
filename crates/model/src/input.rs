//! The inputs of the ranking and retrieval models: how an entity row (user or item)
//! maps to embedding rows or a value ([`Lookup`]), and the tables behind them.

use serde::{Deserialize, Serialize};
use shortlist_features::{EncodedColumn, EncodedTable};

use crate::embedding::EmbeddingTable;

/// Whose feature an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// Indexed by the user vocabulary row.
    User,
    /// Indexed by the item vocabulary row.
    Item,
}

/// How an input feature maps an entity row to embedding rows (or a value).
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The entity row itself (the id embedding).
    Id,
    /// One embedding row per entity row.
    Index(Vec<u32>),
    /// A bag of embedding rows per entity row (mean-pooled), CSR-style.
    Bag {
        /// Entity row r holds `ids[offsets[r]..offsets[r + 1]]`.
        offsets: Vec<u32>,
        /// Concatenated embedding rows.
        ids: Vec<u32>,
    },
    /// One normalised number per entity row, fed as is.
    Dense(Vec<f32>),
}

/// One model input: a looked-up embedding or a dense value.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFeature {
    /// Feature name (`user_id`, `item_id`, or the side feature's column).
    pub name: String,
    /// Whose feature it is.
    pub side: Side,
    /// Entity row → embedding rows.
    pub lookup: Lookup,
    /// The embedding table (`None` for [`Lookup::Dense`]).
    pub table: Option<EmbeddingTable>,
}

impl InputFeature {
    /// Width of the feature in the MLP input.
    pub fn width(&self) -> usize {
        self.table.as_ref().map_or(1, |t| t.dim())
    }

    /// Embedding rows of entity row `row` (`one` is scratch for single-row lookups).
    pub fn ids<'a>(&'a self, row: u32, one: &'a mut u32) -> &'a [u32] {
        match &self.lookup {
            Lookup::Id => {
                *one = row;
                std::slice::from_ref(one)
            }
            Lookup::Index(v) => {
                *one = v[row as usize];
                std::slice::from_ref(one)
            }
            Lookup::Bag { offsets, ids } => {
                &ids[offsets[row as usize] as usize..offsets[row as usize + 1] as usize]
            }
            Lookup::Dense(_) => &[],
        }
    }

    /// Writes the feature of entity row `row` into `out` (`width()` values).
    pub fn fill(&self, row: u32, out: &mut [f32]) {
        match (&self.lookup, &self.table) {
            (Lookup::Dense(v), _) => out[0] = v[row as usize],
            (Lookup::Id, Some(t)) => t.lookup_into(row as usize, out),
            (Lookup::Index(v), Some(t)) => t.lookup_into(v[row as usize] as usize, out),
            (Lookup::Bag { .. }, Some(t)) => {
                let mut one = 0;
                t.bag_mean_into(self.ids(row, &mut one), out)
            }
            (_, None) => out[..self.width()].fill(0.0),
        }
    }

    /// Number of entity rows this feature covers.
    pub fn entity_rows(&self) -> Option<usize> {
        match &self.lookup {
            Lookup::Id => self.table.as_ref().map(|t| t.rows()),
            Lookup::Index(v) => Some(v.len()),
            Lookup::Bag { offsets, .. } => Some(offsets.len().saturating_sub(1)),
            Lookup::Dense(v) => Some(v.len()),
        }
    }
}

/// Input features for the encoded side-feature columns of one entity. A numeric
/// column is fed as is (`dense_vector == false`, ranking: one MLP input) or scales a
/// learned `dim`-vector (`dense_vector == true`, retrieval towers that sum embeddings).
pub(crate) fn side_features(
    enc: &EncodedTable,
    side: Side,
    dim: usize,
    dense_vector: bool,
) -> Vec<InputFeature> {
    enc.columns
        .iter()
        .map(|c| match c {
            EncodedColumn::Index {
                name,
                cardinality,
                values,
            } => InputFeature {
                name: name.clone(),
                side,
                lookup: Lookup::Index(values.clone()),
                table: Some(EmbeddingTable::zeros(*cardinality, dim)),
            },
            EncodedColumn::Bag {
                name,
                cardinality,
                offsets,
                ids,
            } => InputFeature {
                name: name.clone(),
                side,
                lookup: Lookup::Bag {
                    offsets: offsets.clone(),
                    ids: ids.clone(),
                },
                table: Some(EmbeddingTable::zeros(*cardinality, dim)),
            },
            EncodedColumn::Dense { name, values } => InputFeature {
                name: name.clone(),
                side,
                lookup: Lookup::Dense(values.clone()),
                table: dense_vector.then(|| EmbeddingTable::zeros(1, dim)),
            },
        })
        .collect()
}
