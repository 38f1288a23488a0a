//! [`HugePageAlloc`]: the system allocator, asking Linux for transparent huge pages
//! for large blocks.
//!
//! A served request reads scattered rows of several large matrices (EASE's
//! `items × items` weights, embedding tables, item factors): on 4 KiB pages nearly
//! every row costs a TLB miss and a page walk. Most Linux distributions run
//! transparent huge pages in `madvise` mode, where a mapping gets 2 MiB pages only
//! when the program asks for them; this allocator asks (`madvise(MADV_HUGEPAGE)`)
//! for every block of at least [`HUGE_MIN_BYTES`] right after allocating it, before
//! it is first touched, so the kernel backs it with huge pages as it faults in.
//! Measured on ML-100k (`bench_recommend`, CPU time per two-stage recommend call,
//! median of 4 alternating runs): 83.7 µs on 4 KiB pages, 70.9 µs with huge pages
//! (the same effect as glibc's `glibc.malloc.hugetlb=1` tunable, which needs an
//! environment variable at start-up).
//!
//! Small blocks are untouched (a huge page wasted on a small vector costs memory),
//! and the advice is only advice: where THP is off or the call fails, nothing
//! changes. Elsewhere than Linux this is exactly the system allocator.
//!
//! Binaries opt in with
//! `#[global_allocator] static ALLOC: shortlist_core::alloc::HugePageAlloc = HugePageAlloc;`.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes (one huge page) are advised to use huge
/// pages. Only the whole 2 MiB pages inside a block are advised, so no memory
/// outside it is ever backed.
pub const HUGE_MIN_BYTES: usize = 2 << 20;

/// The 2 MiB-aligned range `[start, end)` inside the block `[ptr, ptr + size)`, if
/// the block is large enough to hold one.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn huge_range(ptr: usize, size: usize) -> Option<(usize, usize)> {
    if ptr == 0 || size < HUGE_MIN_BYTES {
        return None;
    }
    let start = ptr.checked_next_multiple_of(HUGE_MIN_BYTES)?;
    let end = ptr.checked_add(size)? & !(HUGE_MIN_BYTES - 1);
    (end > start).then_some((start, end))
}

/// The system allocator plus `madvise(MADV_HUGEPAGE)` on large blocks (see the
/// module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAlloc;

/// Advises huge pages for the whole 2 MiB-aligned pages inside `[ptr, ptr + size)`.
#[cfg(target_os = "linux")]
fn advise(ptr: *mut u8, size: usize) {
    if let Some((start, end)) = huge_range(ptr as usize, size) {
        // SAFETY: `[start, end)` lies inside a block the allocator just handed out
        // and nobody else can hold yet; MADV_HUGEPAGE changes no contents, only how
        // the kernel backs the range. A failure is ignored: it is advice.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_ptr: *mut u8, _size: usize) {}

// SAFETY: every method delegates to `System` with the caller's arguments unchanged
// and returns its result; `advise` only adds kernel advice on the returned block.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

/// Block size from which glibc's `malloc` maps a block of its own instead of carving
/// it from a heap: glibc's initial value, kept fixed by [`fix_mmap_threshold`].
pub const MMAP_THRESHOLD_BYTES: usize = 128 << 10;

/// Whether the user chose glibc's mmap threshold at start-up, through
/// `MALLOC_MMAP_THRESHOLD_` or the `glibc.malloc.mmap_threshold` tunable of
/// `GLIBC_TUNABLES`: then [`fix_mmap_threshold`] leaves it alone.
pub fn mmap_threshold_set_by_user() -> bool {
    std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.mmap_threshold"))
}

/// Keeps glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`] for the life of the
/// process, unless the user set it ([`mmap_threshold_set_by_user`]: then theirs
/// stands). Returns whether it was set.
///
/// Why a long-running server needs it: by default glibc raises the threshold to
/// the size of every mapped block freed (up to 32 MiB), so after a hot reload frees
/// the old version's arrays, the next version's arrays of up to that size come from
/// the heap, between small blocks that outlive them, and are never given back.
/// Measured with `scripts/reliability/soak.sh 240 30` (a reload every 30 s): the
/// resident size stepped 52 → 82 → 106 → 118 → 150 MB with the moving threshold and
/// stayed within 54–64 MB with it fixed (`MALLOC_MMAP_THRESHOLD_=131072`, the same
/// setting from outside), at the same in-process request cost (`bench_recommend`,
/// 37–38 µs on ML-100k and 25.5 µs on the 1M-item model either way). Over the full
/// 10-minute soak (20 reloads) the plateau fell from 115 MB to 68 MB (RELIABILITY.md).
pub fn fix_mmap_threshold() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if mmap_threshold_set_by_user() {
            return false;
        }
        let bytes = libc::c_int::try_from(MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only changes a tuning parameter of the allocator; it is
        // safe to call at any time from any thread (glibc takes its own lock).
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives the allocator's free memory back to the system (glibc's `malloc_trim(0)`:
/// the free pages inside every heap, not only at its top, are returned with
/// `madvise`). Called by the server after a replaced model version is freed; costs
/// a walk over the heaps' free lists (milliseconds), so never on a request path.
/// Returns whether memory was released; always `false` off linux-gnu.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only returns free pages to the kernel; it takes the
        // allocator's own locks and is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_huge_pages_inside_the_block_are_advised() {
        const M2: usize = 2 << 20;
        assert_eq!(huge_range(0, 10 * M2), None, "null");
        assert_eq!(huge_range(M2, M2 - 1), None, "below the threshold");
        assert_eq!(huge_range(M2, M2), Some((M2, 2 * M2)), "exactly one page");
        assert_eq!(huge_range(M2 + 16, M2), None, "misaligned: no whole page");
        assert_eq!(huge_range(M2 + 16, 3 * M2), Some((2 * M2, 4 * M2)));
        assert_eq!(huge_range(usize::MAX - 5, 3 * M2), None, "overflow");
    }

    /// Blocks of every size class round-trip through the allocator with their
    /// contents (growing across the threshold keeps the data), and the advised
    /// range of a large block lies inside it.
    #[test]
    fn blocks_keep_their_contents_across_the_threshold() {
        let a = HugePageAlloc;
        for size in [1usize, 4096, HUGE_MIN_BYTES - 1, HUGE_MIN_BYTES, 9 << 20] {
            let layout = Layout::from_size_align(size, 64).unwrap_or_else(|e| panic!("{e}"));
            // SAFETY: non-zero size, valid layout; freed with the same layout.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                std::ptr::write_bytes(p, 7, size);
                let grown = a.realloc(p, layout, size * 2);
                assert!(!grown.is_null());
                assert!(std::slice::from_raw_parts(grown, size)
                    .iter()
                    .all(|&b| b == 7));
                a.dealloc(
                    grown,
                    Layout::from_size_align(size * 2, 64).unwrap_or(layout),
                );
            }
        }
    }
}
