//! Offline evaluation for **shortlist**, between training and the index in the pipeline
//! (`core` → `data` → `features` → models → training → **`eval`** → index → serving).
//!
//! * [`scorer_base`]: the [`Scorer`] seam (score every item for a batch of users), so
//!   embedding models, baselines and other systems' outputs are evaluated alike.
//! * [`embedding`]: [`EmbeddingScorer`], user · item inner products by blocked GEMM.
//! * [`popularity`]: [`PopularityScorer`], the training-count baseline.
//! * [`rating_baseline`]: [`BiasBaseline`], the global mean and user + item biases,
//!   the baselines of rating prediction (RMSE/MAE).
//! * [`evaluator`]: [`Evaluator`], the metrics below over a train/test split.
//! * [`split`]: [`SplitEvaluator`], an [`Evaluator`] over a split of a dataset's rows,
//!   reused for every epoch, model and baseline.
//! * [`metrics`]: [`Metrics`] (JSON via serde) and [`EvalConfig`] (cut-offs).
//! * [`classification`]: [`ClickMetrics`], AUC, group AUC and log-loss of click
//!   probabilities (exact, ties counting ½).
//!
//! # Definitions
//!
//! Other systems are compared on these numbers, so they are exact. Everywhere, items
//! are ranked by score descending and **ties are broken by the lower item index**; a
//! NaN score ranks as `-inf`. Ranks are 0-based.
//!
//! **Factorized top-K categorical accuracy** (`top_k_accuracy@K`, as in TensorFlow
//! Recommenders): for each test interaction `(u, i)`, 1 if `i` is among the top `K`
//! of *all* items by `u`'s scores, nothing masked (training items included), else 0.
//! Averaged over test interactions, repeats included. Default `K` = 1, 5, 10, 50, 100.
//!
//! **Full-ranking metrics**, for each user `u` with at least one test interaction:
//! all items except `u`'s training items are ranked; the relevant set `R` is `u`'s
//! distinct test items (a test item that is also a training item stays in `R` but,
//! being masked, can never be retrieved). With `hits@K` the relevant items at ranks
//! `< K`:
//! * `recall@K = |hits@K| / |R|`;
//! * `ndcg@K = DCG / IDCG`, `DCG = Σ_{r ∈ hits@K} 1 / log2(r + 2)` (binary gains),
//!   `IDCG = Σ_{r < min(K, |R|)} 1 / log2(r + 2)`;
//! * `hit_rate@K = 1` if `|hits@K| > 0`, else 0.
//!
//! Each is averaged over those users (`users_evaluated`). Default `K` = 10, 20.
//!
//! # Example
//!
//! ```
//! use shortlist_eval::{EmbeddingScorer, EvalConfig, Evaluator, Pairs, PopularityScorer};
//! // 2 users, 3 items, dim 2.
//! let users = [1.0, 0.0, 0.0, 1.0];
//! let items = [0.9, 0.1, 0.1, 0.9, 0.5, 0.5];
//! let scorer = EmbeddingScorer::new(&users, &items, 2)?;
//! let train = Pairs::new(&[0, 1], &[2, 2])?; // both users saw item 2
//! let test = Pairs::new(&[0, 1], &[0, 0])?; // and then item 0
//! let eval = Evaluator::new(2, 3, train, test)?;
//! let config = EvalConfig { ks: vec![1], accuracy_ks: vec![1], ..Default::default() };
//! let m = eval.evaluate(&scorer, &config)?;
//! // User 0 ranks item 0 first; user 1 ranks item 1 above it.
//! assert_eq!(m.get("recall@1"), Some(0.5));
//! assert_eq!(m.get("top_k_accuracy@1"), Some(0.5));
//! assert_eq!(m.users_evaluated, 2);
//! // Popularity ranks item 2 first, but it is masked; items 0 and 1 tie, 0 wins.
//! let pop = PopularityScorer::fit(3, &[2, 2])?;
//! assert_eq!(eval.evaluate(&pop, &config)?.get("recall@1"), Some(1.0));
//! # Ok::<(), shortlist_eval::Error>(())
//! ```

pub mod classification;
pub mod embedding;
pub mod error;
pub mod evaluator;
pub mod metrics;
pub mod popularity;
pub mod rating_baseline;
pub mod scorer_base;
pub mod split;

pub use classification::ClickMetrics;
pub use embedding::EmbeddingScorer;
pub use error::{Error, Result};
pub use evaluator::{Evaluator, Pairs};
pub use metrics::{EvalConfig, Metrics};
pub use popularity::PopularityScorer;
pub use rating_baseline::{BiasBaseline, RatingErrors};
pub use scorer_base::Scorer;
pub use split::SplitEvaluator;
