//! Training configuration, loadable from TOML (`configs/ranking-tfrs.toml`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use shortlist_features::FeatureConfig;
use shortlist_model::RankingConfig;

use crate::autorec::AutoRecTrainConfig;
use crate::error::{Error, Result};
use crate::relevance::RelevanceTrainConfig;

/// Optimizer of the dense (MLP) parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adagrad (Keras semantics: `acc += g²; w -= lr·g/(√acc + ε)`).
    Adagrad,
    /// Adam (bias-corrected; weight decay decoupled, AdamW-style).
    Adam,
}

/// Optimizer of the embedding tables (sparse: only the rows of a batch are touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbeddingOptimizer {
    /// Row-wise Adagrad: one accumulator per row, `acc += mean(g²)` (FBGEMM/TorchRec).
    RowwiseAdagrad,
    /// Element-wise Adagrad on the touched rows (what TF does for Keras embeddings).
    Adagrad,
    /// Lazy Adam: per-element moments, updated only on touched rows.
    Adam,
}

/// Everything a ranking training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Embedding width of ids and categorical side features.
    pub embedding_dim: usize,
    /// Hidden layer widths (ReLU); the output layer of width 1 is implied.
    pub hidden: Vec<usize>,
    /// Learned per-user and per-item biases added to the output.
    pub biases: bool,
    /// Dot product of the user and item id embeddings added to the output.
    pub dot: bool,
    /// SVD++-style implicit-feedback term (see `RankingConfig::implicit`): the bags are
    /// the items each user rated in the fitted training rows (never validation or test rows).
    pub implicit: bool,
    /// Clip predictions to the training ratings' range.
    pub clip_predictions: bool,
    /// Number of models trained with seeds `seed, seed+1, …` (in parallel) and averaged;
    /// the returned model holds the others as `members` (one artifact).
    pub ensemble: usize,
    /// Multiply the learning rates by this factor after every epoch (1: constant).
    pub lr_decay: f32,
    /// Initialise the output bias to the mean training rating (Keras: zero).
    pub init_bias_to_mean: bool,
    /// Optimizer of the MLP.
    pub optimizer: OptimizerKind,
    /// Learning rate of the MLP.
    pub learning_rate: f32,
    /// ε of Adagrad/Adam.
    pub epsilon: f32,
    /// Initial Adagrad accumulator (Keras: 0.1).
    pub initial_accumulator: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Optimizer of the embedding tables.
    pub embedding_optimizer: EmbeddingOptimizer,
    /// Learning rate of the embedding tables (default: `learning_rate`).
    pub embedding_learning_rate: Option<f32>,
    /// Weight decay of the MLP weights (L2 added to the gradient for Adagrad, decoupled for Adam).
    pub weight_decay: f32,
    /// L2 coefficient on the embedding rows touched by a step (added to their gradient).
    pub embedding_l2: f32,
    /// Examples per step.
    pub batch_size: usize,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Seed of initialisation, validation carving and shuffling.
    pub seed: u64,
    /// Shuffle the training examples before every epoch (false: once, then the same
    /// batches every epoch, as the TFRS tutorials' `shuffle().batch().cache()` does).
    pub reshuffle_each_epoch: bool,
    /// Stop after this many epochs without validation improvement (0: never).
    pub patience: usize,
    /// Fraction of the training rows held out for validation (0: none).
    pub validation_fraction: f32,
    /// Feature preprocessing (ids, side features).
    pub features: FeatureConfig,
    /// An I-AutoRec trained on the same rows and blended into the predictions
    /// (`[autorec]` table; absent: none).
    pub autorec: Option<AutoRecTrainConfig>,
    /// The relevance head that orders candidate lists (`[relevance]` table; absent:
    /// a rating-only model, whose lists keep the first stage's order).
    pub relevance: Option<RelevanceTrainConfig>,
}

impl Default for TrainConfig {
    /// The TFRS ranking-tutorial configuration: ids only, dim 32, 256-64-1, Adagrad 0.1,
    /// batch 8192, 3 epochs.
    fn default() -> Self {
        TrainConfig {
            embedding_dim: 32,
            hidden: vec![256, 64],
            biases: false,
            dot: false,
            implicit: false,
            clip_predictions: false,
            lr_decay: 1.0,
            ensemble: 1,
            init_bias_to_mean: false,
            optimizer: OptimizerKind::Adagrad,
            learning_rate: 0.1,
            epsilon: 1e-7,
            initial_accumulator: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            embedding_optimizer: EmbeddingOptimizer::RowwiseAdagrad,
            embedding_learning_rate: None,
            weight_decay: 0.0,
            embedding_l2: 0.0,
            batch_size: 8192,
            epochs: 3,
            seed: 42,
            reshuffle_each_epoch: true,
            patience: 0,
            validation_fraction: 0.0,
            features: FeatureConfig::default(),
            autorec: None,
            relevance: None,
        }
    }
}

impl TrainConfig {
    /// Parses TOML text (`path` only names the source in errors) and validates it.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = shortlist_core::input::read_text(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text, path)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Embedding learning rate in effect.
    pub fn embedding_lr(&self) -> f32 {
        self.embedding_learning_rate.unwrap_or(self.learning_rate)
    }

    /// The model architecture part.
    pub fn model_config(&self) -> RankingConfig {
        RankingConfig {
            embedding_dim: self.embedding_dim,
            hidden: self.hidden.clone(),
            biases: self.biases,
            dot: self.dot,
            implicit: self.implicit,
            clip: None,
            autorec: None,
        }
    }

    /// Checks every value; errors name the parameter.
    pub fn validate(&self) -> Result<()> {
        fn at_least_one(name: &str, v: usize) -> Result<()> {
            if v == 0 {
                return Err(Error::invalid(name, "expected at least 1"));
            }
            Ok(())
        }
        fn positive(name: &str, v: f32) -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("expected a finite number > 0, got {v}"),
                ));
            }
            Ok(())
        }
        fn non_negative(name: &str, v: f32) -> Result<()> {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("expected a finite number ≥ 0, got {v}"),
                ));
            }
            Ok(())
        }
        fn unit(name: &str, v: f32) -> Result<()> {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(Error::invalid(
                    name,
                    format!("expected a number in [0, 1), got {v}"),
                ));
            }
            Ok(())
        }
        at_least_one("embedding_dim", self.embedding_dim)?;
        for (k, &h) in self.hidden.iter().enumerate() {
            at_least_one(&format!("hidden[{k}]"), h)?;
        }
        at_least_one("batch_size", self.batch_size)?;
        at_least_one("ensemble", self.ensemble)?;
        at_least_one("epochs", self.epochs)?;
        positive("learning_rate", self.learning_rate)?;
        if let Some(lr) = self.embedding_learning_rate {
            positive("embedding_learning_rate", lr)?;
        }
        positive("epsilon", self.epsilon)?;
        non_negative("initial_accumulator", self.initial_accumulator)?;
        unit("beta1", self.beta1)?;
        unit("beta2", self.beta2)?;
        non_negative("weight_decay", self.weight_decay)?;
        positive("lr_decay", self.lr_decay)?;
        non_negative("embedding_l2", self.embedding_l2)?;
        if !(self.validation_fraction.is_finite() && (0.0..0.9).contains(&self.validation_fraction))
        {
            return Err(Error::invalid(
                "validation_fraction",
                format!(
                    "expected a number in [0, 0.9), got {}",
                    self.validation_fraction
                ),
            ));
        }
        if self.patience > 0 && self.validation_fraction == 0.0 {
            return Err(Error::invalid(
                "patience",
                "early stopping needs a validation split: set validation_fraction > 0",
            ));
        }
        if let Some(r) = &self.relevance {
            r.validate()?;
        }
        if let Some(a) = &self.autorec {
            a.validate()?;
        }
        self.features.ids.validate("features.ids.")?;
        self.features
            .categorical
            .validate("features.categorical.")?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        TrainConfig::from_toml(text, Path::new("x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_values_name_the_parameter() {
        assert_eq!(
            err("batch_size = 0"),
            "invalid batch_size: expected at least 1"
        );
        assert!(err("learning_rate = -1.0").starts_with("invalid learning_rate"));
        assert!(err("hidden = [8, 0]").starts_with("invalid hidden[1]"));
        assert!(err("validation_fraction = 1.5").starts_with("invalid validation_fraction"));
        assert!(err("patience = 2").starts_with("invalid patience"));
        assert!(err("beta2 = 1.0").starts_with("invalid beta2"));
        let e = err("bogus = 1");
        assert!(e.starts_with("x.toml:") && e.contains("bogus"), "{e}");
        assert!(err("optimizer = \"sgd\"").contains("optimizer"));
        assert_eq!(
            err("[autorec]\nweight = 2.0"),
            "invalid autorec.weight: expected a number in [0, 1], got 2"
        );
        assert_eq!(
            err("[autorec]\nhidden = 0"),
            "invalid autorec.hidden: expected at least 1"
        );
        let e = err("[autorec]\nsize = 3");
        assert!(e.contains("unknown field `size`"), "{e}");
    }

    #[test]
    fn toml_round_trip_and_defaults() {
        let cfg = TrainConfig::from_toml("", Path::new("x")).unwrap();
        assert_eq!(cfg, TrainConfig::default());
        let custom = TrainConfig {
            optimizer: OptimizerKind::Adam,
            embedding_optimizer: EmbeddingOptimizer::Adam,
            embedding_learning_rate: Some(0.01),
            biases: true,
            ..Default::default()
        };
        let back = TrainConfig::from_toml(&custom.to_toml(), Path::new("x")).unwrap();
        assert_eq!(back, custom);
    }
}
