//! [`ItemBitmap`]: a set of admissible items as one bit per item, prepared once and
//! shared by every query that uses it ([`Filter::AllowBitmap`](crate::Filter)).
//!
//! A sorted exclusion list is the cheap filter for a few items (a user's seen items);
//! a bitmap is the one for a large or shared rule ("only items in stock", "only this
//! category", 90 % of the catalogue excluded): testing an item is one load and a shift
//! whatever the set's size, and the number of admissible items is known without a
//! pass over the list, which the approximate indexes use to size their search.

use std::fmt;

use crate::error::{Error, Result};

/// The admissible items of a catalogue of [`universe`](Self::universe) items, one bit
/// per item (set = admissible), with the count kept up to date.
#[derive(Clone, PartialEq, Eq)]
pub struct ItemBitmap {
    words: Vec<u64>,
    universe: usize,
    count: usize,
}

impl fmt::Debug for ItemBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ItemBitmap({} of {} items admissible)",
            self.count, self.universe
        )
    }
}

impl ItemBitmap {
    /// Every one of `universe` items admissible.
    pub fn all(universe: usize) -> Self {
        let mut words = vec![u64::MAX; universe.div_ceil(64)];
        if !universe.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (universe % 64)) - 1;
            }
        }
        ItemBitmap {
            words,
            universe,
            count: universe,
        }
    }

    /// None of `universe` items admissible.
    pub fn none(universe: usize) -> Self {
        ItemBitmap {
            words: vec![0; universe.div_ceil(64)],
            universe,
            count: 0,
        }
    }

    /// Exactly `items` admissible (any order, duplicates allowed). An item `≥ universe`
    /// is an error naming it.
    pub fn allowing(universe: usize, items: &[u32]) -> Result<Self> {
        let mut b = Self::none(universe);
        for &i in items {
            b.check(i)?;
            b.insert(i);
        }
        Ok(b)
    }

    /// Every item except `items` admissible (any order, duplicates allowed; entries
    /// `≥ universe` exclude nothing, as in [`Filter::Exclude`](crate::Filter)).
    pub fn excluding(universe: usize, items: &[u32]) -> Self {
        let mut b = Self::all(universe);
        for &i in items {
            if (i as usize) < universe {
                b.remove(i);
            }
        }
        b
    }

    fn check(&self, item: u32) -> Result<()> {
        if item as usize >= self.universe {
            return Err(Error::invalid(
                "filter",
                format!(
                    "bitmap item {item} is out of range (the bitmap covers {} items)",
                    self.universe
                ),
            ));
        }
        Ok(())
    }

    /// Makes `item` admissible; true when it was not. Panics when `item ≥ universe`.
    pub fn insert(&mut self, item: u32) -> bool {
        assert!(
            (item as usize) < self.universe,
            "item {item} beyond the bitmap"
        );
        let (w, bit) = (item as usize / 64, 1u64 << (item % 64));
        let was = self.words[w] & bit != 0;
        self.words[w] |= bit;
        self.count += usize::from(!was);
        !was
    }

    /// Makes `item` inadmissible; true when it was admissible. Panics when
    /// `item ≥ universe`.
    pub fn remove(&mut self, item: u32) -> bool {
        assert!(
            (item as usize) < self.universe,
            "item {item} beyond the bitmap"
        );
        let (w, bit) = (item as usize / 64, 1u64 << (item % 64));
        let was = self.words[w] & bit != 0;
        self.words[w] &= !bit;
        self.count -= usize::from(was);
        was
    }

    /// Whether `item` is admissible (false beyond the universe).
    #[inline(always)]
    pub fn contains(&self, item: u32) -> bool {
        self.words
            .get(item as usize / 64)
            .is_some_and(|w| w >> (item % 64) & 1 == 1)
    }

    /// Number of items the bitmap covers (must equal the index's item count).
    pub fn universe(&self) -> usize {
        self.universe
    }

    /// Number of admissible items.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The admissible items, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    (w * 64) as u32 + b
                })
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn counts_membership_and_iteration_agree_with_a_reference_set() {
        for universe in [0usize, 1, 63, 64, 65, 200] {
            let all = ItemBitmap::all(universe);
            assert_eq!(all.count(), universe);
            assert_eq!(all.iter().count(), universe);
            assert!(!all.contains(universe as u32));
            let mut b = ItemBitmap::none(universe);
            assert_eq!((b.count(), b.iter().next()), (0, None));
            let mut want = std::collections::BTreeSet::new();
            for i in (0..universe as u32).filter(|i| i % 3 == 1 || i % 7 == 0) {
                assert!(b.insert(i));
                want.insert(i);
            }
            if universe > 2 {
                assert!(!b.insert(1), "a second insert reports no change");
                assert!(!b.remove(2), "2 was never admissible");
            }
            assert_eq!(b.count(), want.len());
            assert_eq!(
                b.iter().collect::<Vec<_>>(),
                want.iter().copied().collect::<Vec<_>>()
            );
            let excl: Vec<u32> = (0..universe as u32).filter(|i| !want.contains(i)).collect();
            assert_eq!(ItemBitmap::excluding(universe, &excl), b);
            let allow: Vec<u32> = want
                .iter()
                .rev()
                .copied()
                .chain(want.iter().copied())
                .collect();
            assert_eq!(ItemBitmap::allowing(universe, &allow).unwrap(), b);
        }
    }

    #[test]
    fn out_of_range_items_are_errors_for_allow_lists_and_ignored_for_exclusions() {
        let e = ItemBitmap::allowing(10, &[3, 10]).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid filter: bitmap item 10 is out of range (the bitmap covers 10 items)"
        );
        assert_eq!(ItemBitmap::excluding(10, &[3, 10, 99]).count(), 9);
        assert_eq!(
            format!("{:?}", ItemBitmap::excluding(10, &[3])),
            "ItemBitmap(9 of 10 items admissible)"
        );
    }
}
