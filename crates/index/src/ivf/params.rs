//! The knobs of an [`IvfIndex`]: its build parameters ([`IvfParams`], a
//! configuration's `[index.ivf]`, validated) and how much a query scans
//! ([`SearchMode`]).

use super::*;

/// Build parameters of an [`IvfIndex`] (a configuration's `[index.ivf]`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvfParams {
    /// Number of lists (k-means centres); 0 picks `4 · √n`. More lists: each scans
    /// fewer items, the list order costs more per query.
    pub lists: usize,
    /// Lists opened per query when non-zero ([`SearchMode::Probes`]); 0 (the default)
    /// sizes each query from the recall target instead ([`SearchMode::Target`]).
    pub probes: usize,
    /// k-means iterations. Default 10.
    pub iterations: usize,
    /// k-means trains on at most this many items per list (a seeded sample). Default 64.
    pub sample_per_list: usize,
    /// At most this fraction of the items, those of largest norm, is kept in a head
    /// list that every query scans first. With popularity-driven norms (trained
    /// towers) the top scores come mostly from these items, wherever their k-means
    /// list lies; the head also proves a high k-th score early, so lists whose bound
    /// cannot reach it are skipped exactly. Default 0.02; 0 turns it off. With
    /// `tune_head` the build tries 1/8, 1/4, 1/2 and all of it.
    pub head_fraction: f64,
    /// Tries head sizes of 1/8, 1/4, 1/2 and 1 × `head_fraction` and keeps the one
    /// whose calibration opens the fewest items per query (summed over k = 10
    /// and 100 at the default recall target). Default true; false keeps
    /// `head_fraction` as it is.
    pub tune_head: bool,
    /// Only items whose norm is at least this many times the median norm go to the
    /// head: without outliers of norm (norms within a factor of two, say) a head only
    /// adds work to every query. Default 2.
    pub head_norm_ratio: f64,
    /// `β` of the list order `q·c + β‖q‖r` (see the [module docs](super)), in `[0, 1]`.
    /// Default 0.25.
    pub spread_weight: f64,
    /// Queries of each of two kinds (see [`IvfIndex::build`]) the build calibrates
    /// with when the caller gives none. Default 128.
    pub calibration_queries: usize,
    /// Seed of the sample, the initial centres and the calibration queries.
    pub seed: u64,
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams {
            lists: 0,
            probes: 0,
            iterations: 10,
            sample_per_list: 64,
            head_fraction: 0.02,
            tune_head: true,
            head_norm_ratio: 2.0,
            spread_weight: 0.25,
            calibration_queries: 128,
            seed: 42,
        }
    }
}

impl IvfParams {
    /// The number of lists for `n` items (resolving `lists = 0`), at least 1 and at
    /// most `n`.
    pub fn lists_for(&self, n: usize) -> usize {
        let lists = if self.lists == 0 {
            (4.0 * (n as f64).sqrt()).round() as usize
        } else {
            self.lists
        };
        lists.clamp(1, n.max(1))
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.iterations == 0 {
            return Err(Error::invalid("iterations", "must be at least 1, got 0"));
        }
        for (name, v) in [
            ("head_fraction", self.head_fraction),
            ("spread_weight", self.spread_weight),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(
                    name,
                    format!("must be within [0, 1], got {v}"),
                ));
            }
        }
        if !(self.head_norm_ratio >= 0.0 && self.head_norm_ratio.is_finite()) {
            return Err(Error::invalid(
                "head_norm_ratio",
                format!("must be a finite number ≥ 0, got {}", self.head_norm_ratio),
            ));
        }
        if self.sample_per_list == 0 {
            return Err(Error::invalid(
                "sample_per_list",
                "must be at least 1, got 0",
            ));
        }
        if self.calibration_queries == 0 {
            return Err(Error::invalid(
                "calibration_queries",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// How much of the index a query scans.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchMode {
    /// Open as many items as the calibration says reach this mean recall at the
    /// query's depth (the default, [`RecallTarget::default`]).
    Target(RecallTarget),
    /// Open this many lists (by the list order), whatever `k` and the filter.
    Probes(usize),
}
