//! The worker threads of the extension's calls: rayon's global pool, each worker kept
//! on its own CPU.
//!
//! A notebook calls `recommend` once, after seconds of idle. On the 2-core VMs this
//! project is measured on, Linux then wakes both sleeping workers onto the CPU of the
//! thread that woke them, and the batched search of 943 users ran on one core:
//! 1.7 ms instead of 0.85 after 20 ms of idle, the same as one worker
//! (`batch_recommend` with a gap, BENCHMARKS.md "The Python package"). With worker
//! `i` pinned to the `i`-th CPU the process may use, it took 1.07 ms. Only when the
//! pool has exactly one worker per CPU the process may use (not under a container's
//! CPU quota smaller than its CPU set, nor with a `RAYON_NUM_THREADS` other than that
//! count), only on Linux, and not when `SHORTLIST_PIN_THREADS=0`. The pinned workers
//! are named `sl-pool-N` (what `top -H` and `/proc/PID/task/*/comm` show).

/// Builds rayon's global pool with pinned workers (see the module docs). Does
/// nothing when the pool exists already or pinning does not apply.
pub fn init_pool() {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("SHORTLIST_PIN_THREADS").is_some_and(|v| v == "0") {
            return;
        }
        let cpus = allowed_cpus();
        // rayon's own choice: `RAYON_NUM_THREADS`, else the available parallelism,
        // which also counts a container's CPU quota.
        let workers = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(0);
        // Pinned only when the workers are exactly the process's CPUs, one each: fewer
        // workers (a quota, a smaller RAYON_NUM_THREADS) may run on any of them.
        if cpus.len() < 2 || workers != cpus.len() {
            return;
        }
        // An error means the pool was already built (by an earlier import in this
        // process): it stays as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("sl-pool-{i}"))
            .start_handler(move |i| pin_to(cpus[i % cpus.len()]))
            .build_global();
    }
}

/// The CPUs this process may run on, in increasing order.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; `sched_getaffinity` writes at
    // most `size_of::<cpu_set_t>()` bytes into it; `CPU_ISSET` reads it in bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Keeps the calling thread on `cpu` (best effort: a refusal leaves it unpinned).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn pin_to(cpu: usize) {
    // SAFETY: as in `allowed_cpus`; `cpu < CPU_SETSIZE` (it came from a set).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
