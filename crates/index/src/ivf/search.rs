//! Searching an [`IvfIndex`]: choosing the lists a query opens (by budget or by a
//! fixed number of probes), scanning them with the int8 prefilter or in `f32`, and the
//! filters' exact paths. Kept apart from the build, calibration and file code of
//! `mod.rs`; the helpers are `pub(super)`, visible to the whole `ivf` module as they
//! were when they lived in `mod.rs`.

use super::*;

impl IvfIndex {
    /// [`TopKIndex::search`] opening `probes` lists.
    pub fn search_probes(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        probes: usize,
    ) -> Result<Vec<Hit>> {
        self.search_mode(query, k, filter, &SearchMode::Probes(probes))
    }

    /// [`TopKIndex::search`] sized by `mode`.
    pub fn search_mode(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        mode: &SearchMode,
    ) -> Result<Vec<Hit>> {
        self.search_lists(query, k, filter, mode, None)
    }

    /// [`TopKIndex::search`], also saying which lists it opened: their numbers in
    /// opening order (the head is [`IvfIndex::lists`]), or `None` when it scored the
    /// admissible items one by one instead (in effect every list) or returned at once.
    /// Items kept beside the index in their [`IvfIndex::list_of`] are found as the
    /// index's own are by scanning those lists.
    pub fn search_opened(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
    ) -> Result<(Vec<Hit>, Option<Vec<u32>>)> {
        let mut ids = Vec::new();
        let hits = self.search_lists(query, k, filter, &self.mode, Some(&mut ids))?;
        Ok((hits, Some(ids).filter(|i| !i.is_empty())))
    }

    /// [`IvfIndex::search_mode`], writing the lists opened into `ids` when given (left
    /// empty when none were).
    fn search_lists(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        mode: &SearchMode,
        mut ids: Option<&mut Vec<u32>>,
    ) -> Result<Vec<Hit>> {
        crate::index_base::check_query(query.len(), self.dim)?;
        let adm = Admissible::prepare(filter, self.n)?;
        if k == 0 || self.n == 0 {
            return Ok(Vec::new());
        }
        let admissible = adm.admissible_count(self.n);
        if admissible == 0 {
            return Ok(Vec::new());
        }
        let budget = self.budget(mode, k, admissible);
        let exact_is_cheaper = match budget {
            Budget::Items(b) => admissible as f64 * EXACT_COST <= b.min(self.n as f64),
            // A fixed number of lists: allow-lists are scored exactly, as always.
            Budget::Lists(_) => adm.allow_list().is_some(),
        };
        if exact_is_cheaper {
            return Ok(self.search_allowed(query, k, &self.admissible_items(&adm)));
        }
        // The filter over stored positions: short exclusion lists mapped and sorted,
        // everything else tested against a bitmap of items.
        let owned;
        let bitmap = match (adm.bitmap(), adm.allow_list()) {
            (Some(b), _) => Some(b),
            (None, Some(allowed)) => {
                owned = ItemBitmap::allowing(self.n, allowed)?;
                Some(&owned)
            }
            (None, None) if adm.excluded().len() > self.n / LONG_EXCLUSION => {
                owned = ItemBitmap::excluding(self.n, adm.excluded());
                Some(&owned)
            }
            (None, None) => None,
        };
        let scan_adm = match bitmap {
            Some(b) => Admissible::prepare(&Filter::AllowBitmap(b), self.n)?,
            None => {
                let mut p: Vec<u32> = adm
                    .excluded()
                    .iter()
                    .filter(|&&i| (i as usize) < self.n)
                    .map(|&i| self.pos[i as usize])
                    .collect();
                p.sort_unstable();
                Admissible::excluding_sorted(Cow::Owned(p))
            }
        };
        let mut budget = budget;
        loop {
            if let Some(ids) = ids.as_deref_mut() {
                ids.clear();
            }
            let ranges = self.open_lists(query, &budget, ids.as_deref_mut())?;
            let all = ranges.len() >= self.lists() + usize::from(self.head_len() > 0);
            let hits = self.scan(query, k, &scan_adm, &ranges);
            // Never short: when the opened lists held fewer admissible items than asked
            // for (a strict filter, small lists), open twice as much, up to every list.
            if hits.len() >= k.min(admissible) || all {
                return Ok(hits);
            }
            budget = match budget {
                Budget::Lists(p) => Budget::Lists((p * 2).min(self.lists())),
                Budget::Items(b) => Budget::Items((b * 2.0).min(self.n as f64)),
            };
        }
    }

    /// How much a search in `mode` for `k` results opens when `admissible` of the
    /// items pass its filter.
    fn budget(&self, mode: &SearchMode, k: usize, admissible: usize) -> Budget {
        match mode {
            SearchMode::Probes(p) => Budget::Lists((*p).clamp(1, self.lists())),
            SearchMode::Target(t) => {
                // At least as many items as hold `k` admissible ones on average.
                let depth = calibration::depth(k, admissible, self.n);
                let needed = k as f64 * self.n as f64 / admissible.max(1) as f64;
                Budget::Items(self.calibration.budget(depth, t.for_k(k)).max(needed))
            }
        }
    }

    /// The lists a search for `k` results of `query` opens first when `admissible` of
    /// the items pass its filter: list numbers in opening order, the head
    /// ([`IvfIndex::lists`]) first when the index has one. Items kept beside the index
    /// (added while serving, each in its [`IvfIndex::list_of`]) are found as the
    /// index's own are by scanning theirs.
    pub fn opened_lists(&self, query: &[f32], k: usize, admissible: usize) -> Result<Vec<u32>> {
        crate::index_base::check_query(query.len(), self.dim)?;
        let mut ids = Vec::new();
        if k == 0 || self.n == 0 {
            return Ok(ids);
        }
        let budget = self.budget(&self.mode, k, admissible.clamp(1, self.n));
        self.open_lists(query, &budget, Some(&mut ids))?;
        Ok(ids)
    }

    /// The list an item of vector `v` joins: the head ([`IvfIndex::lists`]) when its
    /// norm reaches the head's smallest, else its nearest centre (L2), as the build
    /// assigns items.
    pub fn list_of(&self, v: &[f32]) -> Result<u32> {
        crate::index_base::check_query(v.len(), self.dim)?;
        Ok(self.lists_of(v)?.first().copied().unwrap_or(0))
    }

    /// [`IvfIndex::list_of`] of every row of `vectors` (`m × dim`), in one batched
    /// search of the centres.
    pub fn lists_of(&self, vectors: &[f32]) -> Result<Vec<u32>> {
        if self.dim == 0 || !vectors.len().is_multiple_of(self.dim) {
            return Err(Error::invalid(
                "vectors",
                format!(
                    "{} values are not whole rows of the index's dimension {}",
                    vectors.len(),
                    self.dim
                ),
            ));
        }
        let centres = match self.centres.get() {
            Some(c) => c,
            None => {
                let c = layout::centre_index(self.dim, &self.centroids)?;
                self.centres.get_or_init(|| c)
            }
        };
        let mut out = layout::nearest_with(centres, vectors, self.dim)?;
        let lists = self.lists();
        let head = &self.ranges[lists];
        if head.valid_end > head.blocks.start * BLOCK {
            let p = head.valid_end - 1;
            let smallest = norm(&self.items[p * self.dim..(p + 1) * self.dim]);
            for (l, v) in out.iter_mut().zip(vectors.chunks_exact(self.dim)) {
                if norm(v) >= smallest {
                    *l = lists as u32;
                }
            }
        }
        Ok(out)
    }

    /// One exact top-`k` over `ranges` (`adm` filters stored positions, or items for a
    /// bitmap): the int8 kernel, or `f32` for a query it cannot take.
    pub(super) fn scan(
        &self,
        query: &[f32],
        k: usize,
        adm: &Admissible<'_>,
        ranges: &[Range],
    ) -> Vec<Hit> {
        if let Some(t) = &self.int8 {
            let found =
                quant::search_ranges(t, &self.items, &self.ids, query, adm.clone(), k, ranges);
            if let Some(hits) = found {
                return hits;
            }
        }
        self.scan_f32(query, k, adm, ranges)
    }

    /// The lists a query opens, head first, each with its bound for this query.
    pub(super) fn open(&self, query: &[f32], budget: &Budget) -> Result<Vec<Range>> {
        self.open_lists(query, budget, None)
    }

    /// [`IvfIndex::open`], also writing the list numbers into `ids` when given (the
    /// head is list [`IvfIndex::lists`]).
    fn open_lists(
        &self,
        query: &[f32],
        budget: &Budget,
        mut ids: Option<&mut Vec<u32>>,
    ) -> Result<Vec<Range>> {
        let lists = self.lists();
        let qn = norm(query);
        let nu = qn as f32;
        let mut aug = Vec::with_capacity(self.dim + 1);
        aug.extend_from_slice(query);
        aug.push(nu);
        let head = &self.ranges[lists];
        let mut out: Vec<Range> = Vec::new();
        if !head.blocks.is_empty() {
            out.push(head.clone());
            if let Some(ids) = ids.as_deref_mut() {
                ids.push(lists as u32);
            }
        }
        let (m, want) = match *budget {
            Budget::Lists(p) => (p.min(lists), f64::INFINITY),
            Budget::Items(b) => {
                let mean = (self.n.saturating_sub(self.head_len()) as f64 / lists as f64).max(1.0);
                let m = ((b - self.head_len() as f64).max(0.0) / mean * 2.0).ceil() as usize;
                let m = m.saturating_add(8);
                (m.min(lists), b)
            }
        };
        let finite = query.iter().all(|x| x.is_finite());
        let mut opened = self.head_len() as f64;
        // Opens lists in key order until the budget is met; true when it is. A key
        // holds the list's score (`q·c + β ν r`, as the coarse index computes it).
        let mut walk = |keys: &[u64], out: &mut Vec<Range>| {
            for &x in keys {
                if opened >= want {
                    return true;
                }
                let hit = quant::unkey(x);
                let l = hit.item as usize;
                let mut r = self.ranges[l].clone();
                if finite {
                    r.bound = self.list_bound(l, hit.score, qn, nu);
                }
                opened += range_len(&r) as f64;
                out.push(r);
                if let Some(ids) = ids.as_deref_mut() {
                    ids.push(l as u32);
                }
            }
            opened >= want
        };
        // The best `m` lists by key (`q·c + β ν r` of `[q, ‖q‖]`): the coarse index's
        // own exact top `m` (its single-query kernel: the int8 prefilter where it pays,
        // a quarter of the centres' bytes read, and no selection over every list's
        // score here); the same scores, bit for bit, as scoring every list.
        let first: Vec<u64> = self
            .coarse
            .search(&aug, m, &Filter::None)?
            .iter()
            .map(|h| quant::key(sanitize(h.score), h.item))
            .collect();
        if walk(&first, &mut out) || matches!(budget, Budget::Lists(_)) || m >= lists {
            return Ok(out);
        }
        // The estimate fell short: every list's key, the rest in order.
        let mut rows = Vec::new();
        Kernel::best().score_all(self.coarse.packed(), &aug, &mut rows);
        let key_of = |l: usize| quant::key(sanitize(rows[l / BLOCK].0[l % BLOCK]), l as u32);
        let last = first.last().copied();
        let mut rest: Vec<u64> = (0..lists)
            .map(key_of)
            .filter(|&x| last.is_none_or(|l| x > l))
            .collect();
        rest.sort_unstable();
        walk(&rest, &mut out);
        Ok(out)
    }

    /// A proven upper bound on the `f32` score of every item of list `l` for a query of
    /// norm `qn` whose list score (`q·c + β ν r`, `ν = f32(qn)`, an fma chain) is `s`:
    /// `q·v ≤ q·c + ‖q‖ r`, plus the rounding of `s` and of the item's own score.
    pub(super) fn list_bound(&self, l: usize, s: f32, qn: f64, nu: f32) -> f64 {
        let d = self.dim as f64;
        let s = f64::from(s);
        let rho = f64::from(self.spread_weight as f32 * self.radius[l]);
        let q_aug = (qn * qn + f64::from(nu) * f64::from(nu)).sqrt();
        let coarse_err = (d + 5.0) * 2.0 * U * q_aug * f64::from(self.coarse_norm[l]);
        let item_err = (d + 4.0) * 2.0 * U * qn * f64::from(self.ranges[l].max_norm);
        let b = s + coarse_err - f64::from(nu) * rho + qn * f64::from(self.radius[l]) + item_err;
        b + b.abs() * 1e-6 + f64::from(f32::MIN_POSITIVE)
    }

    /// The admissible items of a prepared filter, ascending.
    pub(super) fn admissible_items(&self, adm: &Admissible<'_>) -> Vec<u32> {
        if let Some(allowed) = adm.allow_list() {
            return allowed.to_vec();
        }
        if let Some(b) = adm.bitmap() {
            return b.iter().collect();
        }
        (0..self.n as u32).filter(|&i| adm.admits(i)).collect()
    }

    /// The probed lists in `f32`, eight items at a time (no VNNI, or a query the int8
    /// path cannot quantise). `adm` filters stored positions (a bitmap: their items).
    pub(super) fn scan_f32(
        &self,
        query: &[f32],
        k: usize,
        adm: &Admissible<'_>,
        ranges: &[Range],
    ) -> Vec<Hit> {
        let mut top = TopK::new(k, k.saturating_mul(4));
        let mut which = Vec::with_capacity(4096);
        let mut scores = Vec::with_capacity(4096);
        let admits = |p: usize| match adm.bitmap() {
            Some(b) => b.contains(self.ids[p]),
            None => adm.admits(p as u32),
        };
        for r in ranges {
            which.clear();
            which.extend(
                (r.blocks.start * BLOCK..r.valid_end)
                    .filter(|&p| admits(p))
                    .map(|p| p as u32),
            );
            quant::exact_scores(&self.items, self.dim, query, &which, &mut scores);
            for (&p, &s) in which.iter().zip(&scores) {
                top.push(Hit {
                    item: self.ids[p as usize],
                    score: sanitize(s),
                });
            }
        }
        top.into_sorted()
    }

    /// Scores only the allowed items (sorted, deduplicated, in range).
    pub(super) fn search_allowed(&self, query: &[f32], k: usize, allowed: &[u32]) -> Vec<Hit> {
        let mut top = TopK::new(k, allowed.len());
        let mut which = Vec::with_capacity(allowed.len().min(4096));
        let mut scores = Vec::with_capacity(allowed.len().min(4096));
        for chunk in allowed.chunks(4096) {
            which.clear();
            which.extend(chunk.iter().map(|&i| self.pos[i as usize]));
            quant::exact_scores(&self.items, self.dim, query, &which, &mut scores);
            for (&item, &s) in chunk.iter().zip(&scores) {
                top.push(Hit {
                    item,
                    score: sanitize(s),
                });
            }
        }
        top.into_sorted()
    }
}

/// How much a query opens.
#[derive(Debug, Clone, Copy)]
pub(super) enum Budget {
    /// This many lists (the head not counted).
    Lists(usize),
    /// Lists until this many items (the head included) are opened.
    Items(f64),
}

/// Items in a range (padding excluded).
pub(super) fn range_len(r: &Range) -> usize {
    r.valid_end - r.blocks.start * BLOCK
}

impl TopKIndex for IvfIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.n
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.search_mode(query, k, filter, &self.mode)
    }

    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        crate::index_base::search_each(self, queries, k, filter_of)
    }
}
