//! Training of **shortlist** models, the training stage of the pipeline
//! (`core` → `data` → `features` → models → **training** → evaluation → index → serving).
//!
//! * Embedding tables are trained with **sparse** updates: a step gathers the rows of its
//!   batch, backpropagates into them, deduplicates ids ([`optim::SparseGrad`]) and updates
//!   only those rows with row-wise Adagrad (one accumulator per row, FBGEMM/TorchRec
//!   style), element-wise Adagrad, or lazy Adam ([`optim::SparseState`]). A step's cost
//!   depends on the batch, never on the table's size.
//! * Dense layers have a hand-written backward pass over the same GEMM seam as inference
//!   (`shortlist_model::kernel`). candle-nn was considered: it adds minutes of build time
//!   and per-op overhead for an MLP of three layers; with the seam, swapping the kernel
//!   (or the whole backend) is one module and the `bench_ranking` example measures it.
//! * Model terms beyond the MLP: user/item biases, a dot term, an SVD++-style implicit
//!   term (`implicit`: the mean embedding of the items each user rated in the *fitted
//!   training rows*, added to the user side of the dot term and fed to the MLP), clipping
//!   to the training rating range, per-epoch learning-rate decay, and seed ensembles
//!   (`ensemble = K`: K models trained in parallel, averaged, saved as one artifact).
//!   An I-AutoRec ([`autorec`], `[autorec]` in the TOML) can be trained on the same rows
//!   and blended into the predictions (saved in the same artifact).
//!   `configs/ranking-default.toml` combines them with all side features.
//! * Objectives ([`TrainConfig::objective`]): `rating` (MSE), `click` (binary
//!   cross-entropy on the 0/1 labels of an impression log; AUC, group AUC and log-loss
//!   in [`click`]) and `multitask` (the rating MSE plus an in-batch softmax retrieval
//!   loss on the shared user·item embeddings, with `[multitask]` weights). The losses
//!   and their gradients are in [`losses`]; DCN-v2 cross layers (`cross_layers`) have
//!   their backward pass beside the MLP's. Every trainable layer and loss is checked
//!   against finite differences of the model crate's forward pass (`gradcheck.rs`).
//! * [`TrainConfig`] (TOML, validated), [`train_ranking`] / [`train_split`],
//!   [`evaluate`], and a per-epoch [`History`] with [`History::write_curves`].
//!
//! Runs are deterministic: the same seed and thread count give bit-identical weights
//! (the training step is sequential; evaluation reduces in a fixed order).
//!
//! ```
//! use shortlist_data::synth::{generate, SynthConfig};
//! use shortlist_train::{evaluate, train_ranking, TrainConfig};
//!
//! let (data, _) = generate(&SynthConfig { users: 50, items: 30, interactions: 2000, ..Default::default() })?;
//! let rows: Vec<usize> = (0..data.interactions.len()).collect();
//! let (train, test) = rows.split_at(1600);
//! let cfg = TrainConfig { hidden: vec![16], embedding_dim: 8, batch_size: 256, epochs: 2, ..Default::default() };
//! let (model, history) = train_ranking(&data, train, test, &cfg)?;
//! assert_eq!(history.epochs.len(), 2);
//! let m = evaluate(&model, &data, test);
//! assert!(m.rmse.is_finite());
//! let p = model.predict_raw("u1", "i2");
//! assert!(!p.user_oov && !p.item_oov);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod autorec;
mod backward;
pub mod click;
pub mod config;
pub mod curves;
pub mod ease;
pub mod error;
pub mod ials;
pub mod interactions;
pub mod losses;
pub mod multitask;
pub mod neighbours;
pub mod optim;
pub mod relevance;
pub mod retrieval;
mod step;
pub mod trainer;

#[cfg(test)]
mod gradcheck;

pub use autorec::{train_autorec, train_autorec_with, AutoRecTrainConfig};
pub use click::{evaluate_click, ClickBaselines};
pub use config::{EmbeddingOptimizer, MultitaskConfig, OptimizerKind, TrainConfig};
pub use error::{Error, Result};
pub use trainer::{
    evaluate, fingerprint, predictions, train_ranking, train_ranking_with, train_split,
    EpochRecord, History, Metrics,
};

/// Loads a saved ranking model (re-exported for callers that only train and load).
pub fn load_model(dir: &std::path::Path) -> Result<shortlist_model::RankingModel> {
    Ok(shortlist_model::RankingModel::load(dir)?)
}
