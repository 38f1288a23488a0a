//! `release_free_memory` gives freed heap pages back to the kernel. In a test binary
//! of its own: it measures the process's resident size, which other tests'
//! allocations would move.

#![allow(unsafe_code)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_small_blocks_below_a_live_one_are_returned() {
    use std::hint::black_box;

    /// Resident pages of this process, in bytes (`/proc/self/statm`, second field).
    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the resident size from {statm:?}"));
        // SAFETY: sysconf only reads a system constant.
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
    }
    const MIB: usize = 1 << 20;
    // 32 MiB in 64 KiB blocks (below the mmap threshold: all on the heap), each
    // written so that its pages are resident and followed by a small block that
    // stays alive: the freed blocks cannot merge into the heap's top, so only a trim
    // that reaches into the heap's middle gives their pages back.
    let (blocks, pins): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (0..512)
        .map(|_| (black_box(vec![7u8; 64 << 10]), black_box(vec![1u8; 64])))
        .unzip();
    drop(blocks);
    let before = resident_bytes();
    assert!(
        shortlist_core::alloc::release_free_memory(),
        "nothing was released"
    );
    let after = resident_bytes();
    assert!(
        before.saturating_sub(after) >= 16 * MIB,
        "resident size {before} → {after} bytes: less than 16 MiB of the 32 MiB freed came back"
    );
    drop(pins);
}
