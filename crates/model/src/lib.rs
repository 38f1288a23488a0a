//! Inference-only models of **shortlist**, the model stage of the pipeline
//! (`core` → `data` → `features` → **models** → training → evaluation → index → serving).
//!
//! Serving depends on this crate alone; the training code (sparse embedding updates,
//! backward passes, optimizers) lives in `shortlist-train`.
//!
//! * [`EmbeddingTable`]: `rows × dim` row-major tables, single-row and mean-pooled bag lookups.
//! * [`Dense`] / [`Mlp`]: batched forward passes over the [`kernel`] seam (one GEMM
//!   function, today `matrixmultiply::sgemm`).
//! * [`RankingModel`]: id (and optional side-feature) embeddings → optional DCN-v2
//!   cross layers ([`CrossNet`]) → MLP → rating (or click probability, see
//!   [`Objective`]), with optional user/item biases, a dot-product term, an SVD++-style
//!   implicit-feedback input, clipping and ensemble members; [`RankingModel::prepare_scoring`] precomputes
//!   the first MLP layer per user and per item row (done on load) so that scoring a pair
//!   is an add, a ReLU and the remaining layers; [`RankingModel::save`] /
//!   [`RankingModel::load`] read and write a directory of `manifest.json`,
//!   `weights.safetensors` and `features.json`.
//! * [`files`]: every file of a model directory listed with its size and SHA-256 in
//!   the manifest ([`files::seal`]), and read back only verified, regular and
//!   size-checked ([`files::ModelFiles`]).
//! * [`compact`]: 8-bit copies of a model directory (`shortlist export compact`), read
//!   back by every loader; [`bundle`]: model directories packed into one blob for the
//!   WebAssembly build.
//!
//! ```
//! use shortlist_data::synth::{generate, SynthConfig};
//! use shortlist_features::{FeatureConfig, FeatureSpec, EncodedTable};
//! use shortlist_model::{RankingConfig, RankingModel};
//!
//! let (data, _) = generate(&SynthConfig { users: 20, items: 10, interactions: 200, ..Default::default() })?;
//! let rows: Vec<usize> = (0..data.interactions.len()).collect();
//! let spec = FeatureSpec::fit(&data, &rows, &FeatureConfig::default())?;
//! let model = RankingModel::new(RankingConfig::default(), spec, &EncodedTable::default(), &EncodedTable::default())?;
//! let p = model.predict_raw("u1", "never-seen");
//! assert!(p.item_oov && !p.user_oov);
//! assert_eq!(p.rating, 0.0); // zero-initialised
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod artifact;
pub mod attributes;
pub mod autorec;
pub mod bundle;
pub mod compact;
pub mod cross;
pub mod dense;
pub mod embedding;
pub mod error;
pub mod files;
pub mod implicit;
pub mod input;
pub mod kernel;
pub mod linalg;
pub mod neighbours;
pub mod ranking;
pub mod relevance;
pub mod retrieval;
pub mod retrieval_artifact;
pub mod scoring;

/// Whether loading a model computes its per-user tables (known users' query vectors,
/// EASE scores, the ranking model's user rows of its scoring cache): natively yes, so
/// that a server answers known users at full speed from its first request; not in
/// WebAssembly, where loading is on the page's critical path and the browser's users
/// arrive with a history (each table row is computed on its first use there, the EASE
/// scores never).
pub const PRECOMPUTE_USER_TABLES: bool = !cfg!(target_arch = "wasm32");

pub use artifact::{Manifest, FORMAT_VERSION};
pub use autorec::{AutoRec, AutoRecConfig};
pub use cross::CrossNet;
pub use dense::{Activation, Dense, Mlp};
pub use embedding::EmbeddingTable;
pub use error::{Error, Result};
pub use implicit::{EaseConfig, EaseModel, IalsConfig, IalsModel, ItemWeights};
pub use neighbours::ItemNeighbours;
pub use ranking::{
    sigmoid, InputFeature, Lookup, ModelMeta, Objective, Prediction, RankingConfig, RankingModel,
    ScoringCache, Scratch, Side, IMPLICIT,
};
pub use relevance::{ListFeature, ListInputs, NewUserWeights, RelevanceHead, RelevanceWeights};
pub use retrieval::{Csr, RetrievalConfig, RetrievalModel};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_core::Rng;
    use shortlist_data::synth::{generate, SynthConfig};
    use shortlist_features::{FeatureConfig, FeatureSpec};

    fn random_model(side: bool) -> RankingModel {
        let (data, _) = generate(&SynthConfig::sized(30, 20, 400)).unwrap();
        let rows: Vec<usize> = (0..data.interactions.len()).collect();
        let cfg = FeatureConfig {
            item_features: if side { vec!["*".into()] } else { vec![] },
            user_features: if side { vec!["*".into()] } else { vec![] },
            ..Default::default()
        };
        let spec = FeatureSpec::fit(&data, &rows, &cfg).unwrap();
        let (u, i) = (spec.encode_users(&data), spec.encode_items(&data));
        let config = RankingConfig {
            embedding_dim: 4,
            hidden: vec![8, 4],
            biases: true,
            dot: true,
            // the side-feature model also carries the implicit term and clipping
            implicit: side,
            clip: side.then_some([-1.0, 1.5]),
            autorec: None,
            ..Default::default()
        };
        let mut m = RankingModel::new(config, spec, &u, &i).unwrap();
        let mut rng = Rng::new(7);
        if side {
            let ni = m.num_items() as u64;
            let bags: Vec<Vec<u32>> = (0..m.num_users())
                .map(|u| (0..u % 5).map(|_| rng.below(ni) as u32).collect())
                .collect();
            m.set_implicit(&bags).unwrap();
        }
        for f in &mut m.features {
            if let Some(t) = &mut f.table {
                t.data_mut()
                    .iter_mut()
                    .for_each(|v| *v = rng.normal() as f32);
            }
        }
        for t in [&mut m.user_bias, &mut m.item_bias].into_iter().flatten() {
            t.data_mut()
                .iter_mut()
                .for_each(|v| *v = rng.normal() as f32);
        }
        for l in &mut m.mlp.layers {
            l.weight
                .iter_mut()
                .for_each(|v| *v = rng.normal() as f32 * 0.5);
            l.bias
                .iter_mut()
                .for_each(|v| *v = rng.normal() as f32 * 0.1);
        }
        if side {
            // the side-feature model also carries an AutoRec blend
            let (nu, ni, h) = (m.num_users(), m.num_items(), 3);
            let mut r = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
            let a = AutoRec {
                config: AutoRecConfig {
                    hidden: h,
                    weight: 0.6,
                },
                item_code: r(ni * h),
                user_decoder: r(nu * h),
                user_bias: r(nu),
                user_known: (0..nu as u32).map(|u| u32::from(u % 3 != 0)).collect(),
                item_known: vec![1; ni],
            };
            m.config.autorec = Some(a.config);
            m.autorec = Some(a);
            m.check().unwrap();
        }
        m.meta.metrics.insert("test_rmse".into(), 0.9);
        m
    }

    #[test]
    fn autorec_blends_covered_pairs_and_mismatches_are_rejected() {
        let mut m = random_model(true);
        m.config.clip = None;
        let a = m.autorec.take().unwrap();
        m.config.autorec = None;
        let (users, items) = ([1u32, 3], [2u32, 2]); // user 3 has no training ratings
        let plain = m.predict_batch(&users, &items);
        m.config.autorec = Some(a.config);
        m.autorec = Some(a.clone());
        let blended = m.predict_batch(&users, &items);
        let want = 0.4 * plain[0] + 0.6 * a.predict(1, 2);
        assert!((blended[0] - want).abs() < 1e-5, "{} vs {want}", blended[0]);
        assert_eq!(blended[1], plain[1]);
        m.config.autorec = None;
        assert_eq!(
            m.check().unwrap_err().to_string(),
            "invalid autorec: the configuration and the AutoRec weights disagree"
        );
        m.config.autorec = Some(a.config);
        m.autorec.as_mut().unwrap().user_bias.pop();
        let n = m.num_users();
        assert_eq!(
            m.check().unwrap_err().to_string(),
            format!(
                "invalid autorec.user_bias: expected {n} values, got {}",
                n - 1
            )
        );
    }

    #[test]
    fn save_load_round_trip_is_bit_identical() {
        for side in [false, true] {
            let mut m = random_model(side);
            // loading prepares the scoring cache; so does the saved model here
            m.prepare_scoring();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("model");
            m.save(&path).unwrap();
            m.save(&path).unwrap(); // replacing works
            let back = RankingModel::load(&path).unwrap();
            assert_eq!(back, m);
            let users: Vec<u32> = (0..m.num_users() as u32).collect();
            let items: Vec<u32> = users.iter().map(|u| u % m.num_items() as u32).collect();
            let a = m.predict_batch(&users, &items);
            let b = back.predict_batch(&users, &items);
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(m.predict(3, 4).to_bits(), back.predict(3, 4).to_bits());
            assert!(a.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn precomputed_scoring_equals_the_plain_forward() {
        for side in [false, true] {
            let mut m = random_model(side);
            // clipping off so that the comparison sees the raw outputs
            m.config.clip = None;
            let users: Vec<u32> = (0..m.num_users() as u32).collect();
            let items: Vec<u32> = users
                .iter()
                .map(|u| (u * 7) % m.num_items() as u32)
                .collect();
            let plain = m.predict_batch(&users, &items);
            m.prepare_scoring();
            assert!(m.cache.is_some());
            let fast = m.predict_batch(&users, &items);
            for (a, b) in plain.iter().zip(&fast) {
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
            }
            assert!(
                (m.predict(users[5], items[5]) - plain[5]).abs() <= 1e-5 * plain[5].abs().max(1.0)
            );
        }
    }

    #[test]
    fn rows_computed_on_first_use_equal_the_precomputed_ones_bit_for_bit() {
        for side in [false, true] {
            let mut now = random_model(side);
            now.prepare_own_scoring_with(true);
            let mut lazy = now.clone();
            lazy.prepare_own_scoring_with(false);
            let users: Vec<u32> = (0..now.num_users() as u32).rev().collect();
            let items: Vec<u32> = users
                .iter()
                .map(|u| (u * 3) % now.num_items() as u32)
                .collect();
            let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(lazy.predict_batch(&users, &items)),
                bits(now.predict_batch(&users, &items))
            );
            let (cn, cl) = (now.cache.as_ref().unwrap(), lazy.cache.as_ref().unwrap());
            for i in 0..now.num_items() {
                assert_eq!(
                    bits(cl.item_part(&lazy, i).to_vec()),
                    bits(cn.item_part(&now, i).to_vec())
                );
            }
            for u in 0..now.num_users() {
                assert_eq!(
                    bits(cl.user_part(&lazy, u).to_vec()),
                    bits(cn.user_part(&now, u).to_vec())
                );
                assert_eq!(
                    bits(cl.user_vector(&lazy, u).to_vec()),
                    bits(cn.user_vector(&now, u).to_vec())
                );
            }
        }
    }

    #[test]
    fn ensembles_average_their_members_and_round_trip() {
        let mut a = random_model(true);
        a.config.clip = None;
        let mut b = a.clone();
        for l in &mut b.mlp.layers {
            l.bias.iter_mut().for_each(|v| *v += 1.0);
        }
        let users = [0u32, 1, 2, 3];
        let items = [3u32, 2, 1, 0];
        let (pa, pb) = (
            a.predict_batch(&users, &items),
            b.predict_batch(&users, &items),
        );
        let mut e = a.clone();
        e.members.push(b);
        let pe = e.predict_batch(&users, &items);
        for k in 0..4 {
            assert!((pe[k] - 0.5 * (pa[k] + pb[k])).abs() < 1e-5);
        }
        let dir = tempfile::tempdir().unwrap();
        e.save(&dir.path().join("e")).unwrap();
        let back = RankingModel::load(&dir.path().join("e")).unwrap();
        assert_eq!(back, e);
        assert!(back.cache.is_some() && back.members[0].cache.is_some());
        // Loading prepares every member once, with the same caches as preparing anew.
        let mut fresh = back.clone();
        fresh.prepare_scoring();
        for (x, y) in [(&back, &fresh), (&back.members[0], &fresh.members[0])] {
            let (cx, cy) = (x.cache.as_ref().unwrap(), y.cache.as_ref().unwrap());
            for i in 0..x.num_items() {
                assert_eq!(cx.item_part(x, i), cy.item_part(y, i));
            }
            for u in 0..x.num_users() {
                assert_eq!(cx.user_part(x, u), cy.user_part(y, u));
                assert_eq!(cx.user_vector(x, u), cy.user_vector(y, u));
            }
        }
        let pback = back.predict_batch(&users, &items);
        for (x, y) in pe.iter().zip(&pback) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0));
        }
        e.config.clip = Some([0.0, 0.1]);
        assert!(e
            .predict_batch(&users, &items)
            .iter()
            .all(|v| (0.0..=0.1).contains(v)));
    }

    #[test]
    fn a_directory_tree_parses_the_same_feature_spec_once() {
        let spec = random_model(false).spec;
        let d = tempfile::tempdir().unwrap();
        for sub in ["", "member-0"] {
            std::fs::create_dir_all(d.path().join(sub)).unwrap();
            std::fs::write(d.path().join(sub).join("manifest.json"), "{}").unwrap();
        }
        let root = files::ModelFiles::open(d.path()).unwrap();
        let member = root.sub("member-0").unwrap();
        let parses = std::cell::Cell::new(0);
        let parse = |_: &[u8]| {
            parses.set(parses.get() + 1);
            Ok(spec.clone())
        };
        let (a, b) = (b"{\"a\": 1}".to_vec(), b"{\"b\": 2}".to_vec());
        assert_eq!(root.parsed_spec(a.clone(), parse).unwrap(), spec);
        assert_eq!(member.parsed_spec(a.clone(), parse).unwrap(), spec);
        assert_eq!(parses.get(), 1);
        member.parsed_spec(b, parse).unwrap();
        root.parsed_spec(a, parse).unwrap();
        assert_eq!(parses.get(), 3);
        // Another tree parses its own.
        let other = files::ModelFiles::open(d.path()).unwrap();
        other.parsed_spec(b"{\"b\": 2}".to_vec(), parse).unwrap();
        assert_eq!(parses.get(), 4);
    }

    #[test]
    fn single_and_batched_predictions_agree() {
        let m = random_model(true);
        let b = m.predict_batch(&[1, 2, 3], &[4, 5, 6]);
        for (k, (u, i)) in [(1, 4), (2, 5), (3, 6)].into_iter().enumerate() {
            assert!((m.predict(u, i) - b[k]).abs() < 1e-4);
        }
    }

    #[test]
    fn corrupt_or_truncated_weights_name_the_file() {
        let m = random_model(false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model");
        m.save(&path).unwrap();
        let w = path.join(artifact::WEIGHTS);
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
        let err = RankingModel::load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!(
                "weights.safetensors: is {} bytes, manifest.json lists {} (truncated, still being copied, or replaced)",
                bytes.len() / 2,
                bytes.len()
            )),
            "{err}"
        );
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        std::fs::write(&w, &flipped).unwrap();
        let err = RankingModel::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("weights.safetensors: SHA-256 ")
                && err.ends_with("(corrupt or changed after saving)"),
            "{err}"
        );
        // A manifest of an older build (no file list): the weights checksum applies.
        let mpath = path.join(artifact::MANIFEST);
        let mut old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
        old.as_object_mut().unwrap().remove("files");
        std::fs::write(&mpath, serde_json::to_vec(&old).unwrap()).unwrap();
        let err = RankingModel::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("weights.safetensors") && err.contains("checksum"),
            "{err}"
        );
        // Padded to 3 GiB (sparse): refused from the header alone, never read whole.
        let f = std::fs::OpenOptions::new().write(true).open(&w).unwrap();
        f.set_len(3 << 30).unwrap();
        drop(f);
        let err = RankingModel::load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!(
                "weights.safetensors: is {} bytes, its safetensors header describes {} (padded, sparse or truncated)",
                3u64 << 30,
                bytes.len()
            )),
            "{err}"
        );
        std::fs::write(&w, &bytes).unwrap();
        RankingModel::load(&path).unwrap();
        // A manifest that lies about the dimensions (absurd ones): refused, nothing allocated.
        let mut lying = old.clone();
        lying["config"]["embedding_dim"] = serde_json::json!(1_000_000_000_000u64);
        lying["config"]["hidden"] = serde_json::json!([1_000_000_000u64]);
        std::fs::write(&mpath, serde_json::to_vec(&lying).unwrap()).unwrap();
        let err = RankingModel::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("invalid embedding_dim: the configuration says 1000000000000"),
            "{err}"
        );
        std::fs::write(path.join(artifact::MANIFEST), "{").unwrap();
        let err = RankingModel::load(&path).unwrap_err().to_string();
        assert!(err.contains("manifest.json"), "{err}");
    }
}
