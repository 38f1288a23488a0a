//! Stable, non-cryptographic hashing (FNV-1a 64): used to place out-of-vocabulary
//! values in hash buckets, so the bucket of a string never changes across runs,
//! platforms or versions (unlike `std`'s randomly seeded hasher).

/// FNV-1a 64-bit hash of `bytes`.
#[inline]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        // Reference values from the FNV specification's test suite.
        assert_eq!(super::fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(super::fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(super::fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
