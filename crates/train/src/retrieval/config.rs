//! The retrieval training configuration (TOML) and its validation, apart from the
//! training loop that reads it.

use serde::{Deserialize, Serialize};
use shortlist_features::FeatureConfig;

use crate::config::EmbeddingOptimizer;
use crate::error::{Error, Result};
use crate::optim::OptimParams;

/// Loss of the retrieval model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetrievalLoss {
    /// Softmax over every item.
    FullSoftmax,
    /// Softmax over the batch's candidates (+ sampled negatives).
    InBatch,
}

/// How per-example losses combine into the batch loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Mean over the batch.
    Mean,
    /// Sum over the batch (TFRS's `Retrieval` task default): gradients grow with the
    /// batch size, which matters for Adagrad's initial accumulator.
    Sum,
}

/// How extra negatives are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NegativeSampling {
    /// Uniformly over the item vocabulary.
    Uniform,
    /// Proportionally to training popularity.
    Popularity,
}

/// Everything a retrieval training run needs (TOML, `configs/retrieval-*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalTrainConfig {
    /// Width of the embeddings and towers.
    pub embedding_dim: usize,
    /// Pool the user's training items into the query.
    pub history: bool,
    /// Logits are `q·c / temperature`.
    pub temperature: f32,
    /// Loss.
    pub loss: RetrievalLoss,
    /// Mean or sum of the per-example losses.
    pub loss_reduction: Reduction,
    /// logQ correction of in-batch / sampled logits.
    pub logq_correction: bool,
    /// Mask candidates equal to the positive item (other than the positive itself).
    pub remove_accidental_hits: bool,
    /// Extra sampled negatives per batch (in-batch loss).
    pub sampled_negatives: usize,
    /// Distribution of the extra negatives.
    pub negative_sampling: NegativeSampling,
    /// Optimizer of the embedding tables.
    pub optimizer: EmbeddingOptimizer,
    /// Learning rate.
    pub learning_rate: f32,
    /// ε of Adagrad / Adam.
    pub epsilon: f32,
    /// Initial Adagrad accumulator (Keras: 0.1).
    pub initial_accumulator: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// L2 on the embedding rows a step touches.
    pub l2: f32,
    /// Half-width of the uniform initialisation (Keras: 0.05).
    pub init_scale: f32,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs.
    pub epochs: usize,
    /// Seed of initialisation, shuffling and negative sampling.
    pub seed: u64,
    /// Shuffle before every epoch (false: once, then the same batches every epoch, as the
    /// TFRS tutorials' `shuffle().batch().cache()` does).
    pub reshuffle_each_epoch: bool,
    /// Evaluate on the test rows after every epoch (curves); else only at the end.
    pub eval_every_epoch: bool,
    /// Feature preprocessing (ids and side features of both towers).
    pub features: FeatureConfig,
    /// Item cold start: catalogue items with side-feature values but no training
    /// interactions (products launched after training) get vocabulary rows after the
    /// trained ones, with a zero id embedding, so their candidate vector comes from
    /// their features alone and they can be retrieved. They are never negatives in
    /// training (they did not exist then). Needs item features (`[features]`).
    pub cold_items: bool,
    /// Probability that an item's id embedding is left out of its candidate vector for
    /// one batch (drawn per distinct candidate of the batch), so that the item tower
    /// learns to place items by their side features alone, which is all a cold item
    /// has. Ignored without item features.
    pub item_id_dropout: f32,
    /// Top-K index saved with the model (`kind = "auto" | "exact" | "hnsw"`, HNSW parameters).
    pub index: shortlist_index::IndexConfig,
}

impl Default for RetrievalTrainConfig {
    fn default() -> Self {
        RetrievalTrainConfig {
            embedding_dim: 64,
            history: true,
            temperature: 2.0,
            loss: RetrievalLoss::InBatch,
            loss_reduction: Reduction::Mean,
            logq_correction: true,
            remove_accidental_hits: true,
            sampled_negatives: 0,
            negative_sampling: NegativeSampling::Uniform,
            optimizer: EmbeddingOptimizer::Adam,
            learning_rate: 0.003,
            epsilon: 1e-7,
            initial_accumulator: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            l2: 0.0,
            init_scale: 0.05,
            batch_size: 1024,
            epochs: 11,
            seed: 42,
            reshuffle_each_epoch: true,
            eval_every_epoch: true,
            features: FeatureConfig::default(),
            cold_items: true,
            item_id_dropout: 0.0,
            index: shortlist_index::IndexConfig::default(),
        }
    }
}

crate::config::config_file!(RetrievalTrainConfig, pretty = true);

impl RetrievalTrainConfig {
    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    name,
                    format!("expected a positive number, found {v}"),
                ))
            }
        };
        if self.embedding_dim == 0 {
            return Err(Error::invalid("embedding_dim", "expected at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "expected at least 1"));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", "expected at least 1"));
        }
        positive("temperature", self.temperature)?;
        positive("learning_rate", self.learning_rate)?;
        positive("epsilon", self.epsilon)?;
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::invalid(
                "l2",
                format!("expected a number ≥ 0, found {}", self.l2),
            ));
        }
        if !(self.init_scale >= 0.0 && self.init_scale.is_finite()) {
            return Err(Error::invalid(
                "init_scale",
                format!("expected a number ≥ 0, found {}", self.init_scale),
            ));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(
                    name,
                    format!("expected a number in [0, 1), found {b}"),
                ));
            }
        }
        if !(0.0..1.0).contains(&self.item_id_dropout) {
            return Err(Error::invalid(
                "item_id_dropout",
                format!(
                    "expected a probability in [0, 1), found {}",
                    self.item_id_dropout
                ),
            ));
        }
        if self.loss == RetrievalLoss::FullSoftmax && self.sampled_negatives > 0 {
            return Err(Error::invalid(
                "sampled_negatives",
                "only applies to loss = \"in-batch\"",
            ));
        }
        Ok(())
    }

    pub(super) fn optim(&self) -> OptimParams {
        OptimParams {
            lr: self.learning_rate,
            eps: self.epsilon,
            init_acc: self.initial_accumulator,
            beta1: self.beta1,
            beta2: self.beta2,
            decay: self.l2,
        }
    }
}
