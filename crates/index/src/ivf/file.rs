//! An [`IvfIndex`] on disk: safetensors with the items in their original order, the
//! centres, each item's list and the calibration table (see the module docs of
//! `mod.rs`); loading re-lays out and re-quantises without k-means.

use super::*;

impl IvfIndex {
    /// The items in their original order (`n × dim`) and the list of each (the head
    /// is list `lists`).
    pub(super) fn original_order(&self) -> (Vec<f32>, Vec<u32>) {
        let mut items = vec![0f32; self.n * self.dim];
        let mut assign = vec![0u32; self.n];
        for (l, r) in self.ranges.iter().enumerate() {
            for p in r.blocks.start * BLOCK..r.valid_end {
                let i = self.ids[p] as usize;
                assign[i] = l as u32;
                items[i * self.dim..(i + 1) * self.dim]
                    .copy_from_slice(&self.items[p * self.dim..(p + 1) * self.dim]);
            }
        }
        (items, assign)
    }

    /// Saves the index as safetensors at `path` (atomically: temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let (items, assign) = self.original_order();
        let (items_b, cent_b, assign_b) = (
            persist::f32_bytes(&items),
            persist::f32_bytes(&self.centroids),
            persist::u32_bytes(&assign),
        );
        let calib = self.calibration.to_bytes();
        let mut tensors: Vec<(&str, Dtype, Vec<usize>, &[u8])> = vec![
            ("items", Dtype::F32, vec![self.n, self.dim], &items_b),
            (
                "centroids",
                Dtype::F32,
                vec![self.lists(), self.dim],
                &cent_b,
            ),
            ("assign", Dtype::U32, vec![self.n], &assign_b),
        ];
        for ((name, dtype), (shape, bytes)) in Calibration::TENSORS.iter().zip(&calib) {
            tensors.push((name, *dtype, shape.clone(), bytes));
        }
        let (probes, target) = match &self.mode {
            SearchMode::Probes(p) => (*p, RecallTarget::default()),
            SearchMode::Target(t) => (0, t.clone()),
        };
        persist::write(
            path,
            &tensors,
            FORMAT,
            FORMAT_VERSION,
            &[
                ("probes", probes.to_string()),
                ("recall_target", target.to_string()),
                ("spread_weight", self.spread_weight.to_string()),
            ],
        )
    }

    /// Loads an index written by [`save`](Self::save) (or by the version-1 format,
    /// whose calibration is then measured with sampled items). A missing, truncated
    /// or corrupt file, or one that holds something else, is an error naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let file = persist::open(path, &bytes, FORMAT, &["1", FORMAT_VERSION])?;
        let meta = |key: &str| file.meta.get(key).map(String::as_str);
        let parse_err = |key: &str, what: &str| {
            persist::bad(
                path,
                format!("metadata `{key}` is {:?}, expected {what}", meta(key)),
            )
        };
        let probes: usize = meta("probes")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| parse_err("probes", "an integer"))?;
        let v1 = meta("version") == Some("1");
        let (spread_weight, target) = if v1 {
            (0.0, RecallTarget::default())
        } else {
            let w: f64 = meta("spread_weight")
                .and_then(|p| p.parse().ok())
                .filter(|w| (0.0..=1.0).contains(w))
                .ok_or_else(|| parse_err("spread_weight", "a number in [0, 1]"))?;
            let t: RecallTarget = meta("recall_target")
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| parse_err("recall_target", "a recall target like 0.95"))?;
            (w, t)
        };
        let (items_shape, items) = file.f32s("items", 2)?;
        let (cent_shape, centroids) = file.f32s("centroids", 2)?;
        let (assign_shape, assign) = file.u32s("assign", 1)?;
        let (n, dim, lists) = (items_shape[0], items_shape[1], cent_shape[0]);
        if cent_shape[1] != dim || assign_shape[0] != n || dim == 0 || lists == 0 {
            return Err(persist::bad(
                path,
                format!(
                    "inconsistent shapes: items {items_shape:?}, centroids {cent_shape:?}, assign {assign_shape:?}"
                ),
            ));
        }
        if let Some(i) = assign.iter().position(|&l| l as usize > lists) {
            return Err(persist::bad(
                path,
                format!(
                    "item {i} is assigned to list {}, but there are {lists} lists (+ the head, {lists})",
                    assign[i]
                ),
            ));
        }
        let mode = if probes > 0 {
            SearchMode::Probes(probes.min(lists))
        } else {
            SearchMode::Target(target)
        };
        let mut index = crate::index_base::check_finite(&items, dim)
            .and_then(|()| crate::index_base::check_finite(&centroids, dim))
            .and_then(|()| Self::from_parts(&items, dim, centroids, &assign, spread_weight, mode))
            .map_err(|e| persist::bad(path, e.to_string()))?;
        if v1 {
            let p = IvfParams::default();
            index.calibrate_from_items(&items, p.calibration_queries, p.seed)?;
        } else {
            index.calibration = Calibration::read(&file, path, n)?;
        }
        Ok(index)
    }
}
