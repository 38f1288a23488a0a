//! Training configuration, loadable from TOML (`configs/ranking-tfrs.toml`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use shortlist_features::FeatureConfig;
use shortlist_model::{ListFeature, Objective, RankingConfig};

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

/// `[multitask]`: the loss weights of `objective = "multitask"` (TensorFlow
/// Recommenders' multitask model: `rating_weight · MSE + retrieval_weight · in-batch
/// softmax` on the shared user and item embeddings; as there, the MSE is the batch
/// mean and the softmax cross-entropy the batch sum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultitaskConfig {
    /// Weight of the rating loss (mean squared error).
    pub rating_weight: f32,
    /// Weight of the retrieval loss (in-batch softmax cross-entropy summed over the batch).
    pub retrieval_weight: f32,
    /// Subtract `log q(item)` (the item's share of the training rows) from its
    /// in-batch logits, so that the shared score estimates `log p(item | user)` and
    /// keeps popularity (without it, popular items are pushed down, as in the plain
    /// TFRS retrieval task).
    pub logq_correction: bool,
}

impl Default for MultitaskConfig {
    fn default() -> Self {
        MultitaskConfig {
            rating_weight: 1.0,
            retrieval_weight: 1.0,
            logq_correction: true,
        }
    }
}

/// Largest `cross_layers` accepted (each is a full `width × width` matrix).
pub const MAX_CROSS_LAYERS: usize = 8;

/// Everything a ranking training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// What the model learns: `rating` (MSE on the rating column), `click` (binary
    /// cross-entropy on 0/1 labels of an impression log; the output is a probability)
    /// or `multitask` (rating MSE + in-batch softmax retrieval loss on the shared
    /// embeddings, weighted by `[multitask]`).
    pub objective: Objective,
    /// `click`: a rating ≥ this value is a click and below it a non-click (e.g. 4 on
    /// MovieLens); absent: the rating column must hold 0/1 labels.
    pub click_threshold: Option<f32>,
    /// DCN-v2 cross layers (full-rank, `x_{l+1} = x₀ ⊙ (x_l W_l + b_l) + x_l`) between
    /// the inputs and the MLP; 0: none. Models with cross layers score without the
    /// precomputed first-layer cache.
    pub cross_layers: usize,
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
    /// Loss weights of the `multitask` objective (`[multitask]`; absent: both 1).
    pub multitask: Option<MultitaskConfig>,
}

impl Default for TrainConfig {
    /// The TFRS ranking-tutorial configuration: ids only, dim 32, 256-64-1, Adagrad 0.1,
    /// batch 8192, 3 epochs.
    fn default() -> Self {
        TrainConfig {
            objective: Objective::Rating,
            click_threshold: None,
            cross_layers: 0,
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
            multitask: None,
        }
    }
}

/// The configuration-file methods of a training configuration type: `from_toml`,
/// `load` and `to_toml` (`pretty`: arrays one item per line, see [`write_toml`]).
/// What is read is checked by the type's own `validate`.
macro_rules! config_file {
    ($t:ty, pretty = $pretty:expr) => {
        impl $t {
            /// Parses TOML text (`path` only names the source in errors) and validates
            /// it.
            pub fn from_toml(text: &str, path: &std::path::Path) -> $crate::error::Result<Self> {
                let cfg: Self = $crate::config::parse_toml(text, path)?;
                cfg.validate()?;
                Ok(cfg)
            }

            /// Reads and validates a TOML file.
            pub fn load(path: &std::path::Path) -> $crate::error::Result<Self> {
                let text = shortlist_core::input::read_text(path).map_err(|e| {
                    $crate::error::Error::Config {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    }
                })?;
                Self::from_toml(&text, path)
            }

            /// The configuration as TOML (saved next to the model as `config.toml`).
            ///
            /// # Errors
            /// When a value cannot be written as TOML (see [`crate::config::write_toml`]).
            pub fn to_toml(&self) -> $crate::error::Result<String> {
                $crate::config::write_toml(self, $pretty)
            }
        }
    };
}
pub(crate) use config_file;

config_file!(TrainConfig, pretty = false);

impl TrainConfig {
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
            objective: self.objective,
            label_threshold: self.click_threshold,
            cross_layers: self.cross_layers,
        }
    }

    /// The `[multitask]` settings in effect (defaults when the table is absent);
    /// `None` for the other objectives.
    pub fn multitask_settings(&self) -> Option<MultitaskConfig> {
        (self.objective == Objective::Multitask).then(|| self.multitask.clone().unwrap_or_default())
    }

    /// The loss weights in effect: `(rating, retrieval)`.
    pub fn loss_weights(&self) -> (f32, f32) {
        self.multitask_settings()
            .map_or((1.0, 0.0), |m| (m.rating_weight, m.retrieval_weight))
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
        self.validate_objective()?;
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

impl TrainConfig {
    /// The rules of `objective`, `click_threshold`, `[multitask]` and `cross_layers`.
    fn validate_objective(&self) -> Result<()> {
        let name = self.objective.name();
        if self.objective == Objective::Click {
            if self.clip_predictions {
                return Err(Error::invalid(
                    "clip_predictions",
                    "objective = \"click\" predicts probabilities in (0, 1): clipping to the label range does not apply",
                ));
            }
            if self.autorec.is_some() {
                return Err(Error::invalid(
                    "autorec",
                    "the AutoRec blend predicts ratings: it does not apply to objective = \"click\"",
                ));
            }
        }
        match self.click_threshold {
            Some(_) if self.objective != Objective::Click => {
                return Err(Error::invalid(
                    "click_threshold",
                    format!("only used by objective = \"click\" (this configuration has {name:?})"),
                ))
            }
            Some(t) if !t.is_finite() => {
                return Err(Error::invalid(
                    "click_threshold",
                    format!("expected a finite number, got {t}"),
                ))
            }
            _ => {}
        }
        if let Some(m) = &self.multitask {
            if self.objective != Objective::Multitask {
                return Err(Error::invalid(
                    "multitask",
                    format!("the [multitask] table needs objective = \"multitask\" (this configuration has {name:?})"),
                ));
            }
            for (k, v) in [
                ("multitask.rating_weight", m.rating_weight),
                ("multitask.retrieval_weight", m.retrieval_weight),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::invalid(
                        k,
                        format!("expected a finite number ≥ 0, got {v}"),
                    ));
                }
            }
            if m.rating_weight == 0.0 && m.retrieval_weight == 0.0 {
                return Err(Error::invalid(
                    "multitask",
                    "rating_weight and retrieval_weight are both 0: nothing to learn",
                ));
            }
        }
        if self.cross_layers > MAX_CROSS_LAYERS {
            return Err(Error::invalid(
                "cross_layers",
                format!(
                    "expected at most {MAX_CROSS_LAYERS}, got {}",
                    self.cross_layers
                ),
            ));
        }
        if let Some(r) = &self.relevance {
            if r.features.contains(&ListFeature::Multitask)
                && self.objective != Objective::Multitask
            {
                return Err(Error::invalid(
                    "relevance.features",
                    format!("multitask is the shared embeddings' retrieval score, trained only by objective = \"multitask\" (this configuration has {name:?})"),
                ));
            }
        }
        Ok(())
    }
}

/// Parses a TOML configuration; a syntax or type error names `path` (validation is
/// each configuration's own `validate`).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A configuration as TOML (`pretty`: arrays one item per line), for `config.toml`
/// beside a model. A value TOML cannot hold is an error, never an empty file.
///
/// # Errors
/// [`Error::InvalidParameter`] `configuration`, with the serialiser's message.
pub fn write_toml<T: serde::Serialize>(value: &T, pretty: bool) -> Result<String> {
    let text = if pretty {
        toml::to_string_pretty(value)
    } else {
        toml::to_string(value)
    };
    text.map_err(|e| Error::invalid("configuration", format!("cannot be written as TOML: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A value TOML cannot hold at the top level is an error naming the configuration
    /// (it used to become an empty `config.toml`).
    #[test]
    fn unwritable_values_are_errors() {
        let e = write_toml(&5u32, false).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid configuration: cannot be written as TOML: "),
            "{e}"
        );
        assert_eq!(
            write_toml(
                &[("a", 1)]
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
                false
            )
            .unwrap(),
            "a = 1\n"
        );
    }

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
    fn shipped_ranking_configurations_parse_with_their_options() {
        let load = |name: &str, text: &str| TrainConfig::from_toml(text, Path::new(name)).unwrap();
        let click = load(
            "ranking-click.toml",
            include_str!("../../../configs/ranking-click.toml"),
        );
        assert_eq!(
            (click.objective, click.click_threshold, &click.autorec),
            (Objective::Click, Some(4.0), &None)
        );
        let multitask = load(
            "ranking-multitask.toml",
            include_str!("../../../configs/ranking-multitask.toml"),
        );
        assert_eq!(multitask.objective, Objective::Multitask);
        assert_eq!(
            multitask.multitask_settings(),
            Some(MultitaskConfig::default())
        );
        assert!(multitask
            .relevance
            .as_ref()
            .is_some_and(|r| r.features.contains(&ListFeature::Multitask)));
        let dcn = load(
            "ranking-dcn.toml",
            include_str!("../../../configs/ranking-dcn.toml"),
        );
        assert_eq!(dcn.cross_layers, 2);
        // Each differs from the default configuration only where it says so.
        let default = load(
            "ranking-default.toml",
            include_str!("../../../configs/ranking-default.toml"),
        );
        assert_eq!(
            TrainConfig {
                cross_layers: 0,
                ..dcn
            },
            default
        );
        assert_eq!(
            TrainConfig {
                objective: Objective::Rating,
                multitask: None,
                relevance: default.relevance.clone(),
                ..multitask
            },
            default
        );
    }

    #[test]
    fn objectives_refuse_what_does_not_apply_by_name() {
        assert_eq!(
            err("objective = \"click\"\nclip_predictions = true"),
            "invalid clip_predictions: objective = \"click\" predicts probabilities in (0, 1): clipping to the label range does not apply"
        );
        assert_eq!(
            err("objective = \"click\"\n[autorec]\nhidden = 4"),
            "invalid autorec: the AutoRec blend predicts ratings: it does not apply to objective = \"click\""
        );
        assert_eq!(
            err("click_threshold = 4.0"),
            "invalid click_threshold: only used by objective = \"click\" (this configuration has \"rating\")"
        );
        assert_eq!(
            err("objective = \"click\"\nclick_threshold = nan"),
            "invalid click_threshold: expected a finite number, got NaN"
        );
        assert_eq!(
            err("[multitask]\nretrieval_weight = 1.0"),
            "invalid multitask: the [multitask] table needs objective = \"multitask\" (this configuration has \"rating\")"
        );
        assert_eq!(
            err("objective = \"multitask\"\n[multitask]\nrating_weight = 0.0\nretrieval_weight = 0.0"),
            "invalid multitask: rating_weight and retrieval_weight are both 0: nothing to learn"
        );
        assert_eq!(
            err("objective = \"multitask\"\n[multitask]\nretrieval_weight = -1.0"),
            "invalid multitask.retrieval_weight: expected a finite number ≥ 0, got -1"
        );
        assert_eq!(
            err("cross_layers = 9"),
            "invalid cross_layers: expected at most 8, got 9"
        );
        assert_eq!(
            err("[relevance]\nfeatures = [\"retrieval\", \"multitask\"]"),
            "invalid relevance.features: multitask is the shared embeddings' retrieval score, trained only by objective = \"multitask\" (this configuration has \"rating\")"
        );
        let e = err("objective = \"ctr\"");
        assert!(e.contains("objective") && e.contains("click"), "{e}");
        let e = err("objective = \"multitask\"\n[multitask]\nweight = 1.0");
        assert!(e.contains("unknown field `weight`"), "{e}");
        let ok = |t: &str| TrainConfig::from_toml(t, Path::new("x")).unwrap();
        let m = ok("objective = \"multitask\"");
        assert_eq!(m.loss_weights(), (1.0, 1.0));
        let m = ok(
            "objective = \"multitask\"\n[multitask]\nrating_weight = 0.5\nretrieval_weight = 2.0",
        );
        assert_eq!(m.loss_weights(), (0.5, 2.0));
        assert_eq!(ok("").loss_weights(), (1.0, 0.0));
        let c = ok("objective = \"click\"\nclick_threshold = 4.0\ncross_layers = 2");
        let mc = c.model_config();
        assert_eq!(
            (mc.objective, mc.label_threshold, mc.cross_layers),
            (Objective::Click, Some(4.0), 2)
        );
        assert_eq!(
            TrainConfig::from_toml(&c.to_toml().unwrap(), Path::new("x")).unwrap(),
            c
        );
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
        let back = TrainConfig::from_toml(&custom.to_toml().unwrap(), Path::new("x")).unwrap();
        assert_eq!(back, custom);
    }
}
