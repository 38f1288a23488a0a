//! glibc's moving mmap threshold, and `fix_mmap_threshold` stopping it. In a test
//! binary of its own: the threshold is process-wide, and no other test may allocate
//! large blocks between the steps.

#![allow(unsafe_code)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_large_block_no_longer_moves_medium_blocks_onto_the_heap() {
    use std::hint::black_box;

    /// Blocks glibc currently holds as mappings of their own.
    fn mapped_blocks() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        unsafe { libc::mallinfo2().hblks }
    }
    /// Whether a block of `bytes`, while alive, is a mapping of its own.
    fn is_mapped(bytes: usize) -> bool {
        let before = mapped_blocks();
        let block = black_box(vec![1u8; bytes]);
        let mapped = mapped_blocks() > before;
        drop(block);
        mapped
    }
    if shortlist_core::alloc::mmap_threshold_set_by_user() {
        return; // the user's setting stands, and glibc's threshold no longer moves
    }
    const MIB: usize = 1 << 20;
    // glibc's default: a freed 8 MiB mapping raises the threshold past 1 MiB, so the
    // next 1 MiB block comes from the heap — how a reloaded model's arrays fragment it.
    assert!(is_mapped(MIB), "1 MiB is mapped at the initial threshold");
    drop(black_box(vec![1u8; 8 * MIB]));
    assert!(
        !is_mapped(MIB),
        "the threshold moved after an 8 MiB block was freed"
    );

    // That 1 MiB now lies free on the heap, and a free heap block is reused before
    // a mapping is made, so the rest asks for larger blocks than any free there.
    assert!(shortlist_core::alloc::fix_mmap_threshold());
    assert!(
        is_mapped(4 * MIB),
        "4 MiB, below the moved threshold, is mapped"
    );
    drop(black_box(vec![1u8; 16 * MIB]));
    assert!(
        is_mapped(4 * MIB),
        "and still after a 16 MiB block is freed"
    );
    assert!(!is_mapped(64 << 10), "small blocks stay on the heap");
}
