//! Load shedding: model computations run on a bounded thread pool, off the async
//! I/O workers, behind an admission check.
//!
//! A handler hands its whole computation (JSON parsing included) to
//! [`ComputePool::run`]. Admission is decided at once, before any work:
//!
//! * at most [`ServeConfig::max_in_flight`] computations are admitted (queued +
//!   running);
//! * a computation is also refused when the estimated wait before it starts —
//!   the computations ahead of it, times the recent mean computation time (an
//!   exponentially weighted average), divided by the pool's threads — exceeds
//!   [`ServeConfig::max_queue_wait`].
//!
//! A refused request is answered `503` with `Retry-After: 1` in microseconds
//! ([`ApiError::Overloaded`]), so under overload accepted requests keep their
//! latency and the rest fail fast instead of queueing without bound in the listen
//! backlog or in memory. The second rule makes the limit follow the cost of the
//! requests: a 10,000-item `/v1/rank` admits a short queue, a 100-candidate
//! `/v1/recommend` a long one.
//!
//! A request whose deadline passed while it was queued is dropped before it
//! starts (its receiver is gone), so a timed-out backlog costs nothing. A panic in
//! a computation is caught and answered 500.
//!
//! The pool's threads keep the I/O workers' scheduling priority: lowering it was
//! measured to backfire — clients that retry a 503 at once then starve the
//! computations, whose measured time grows, which refuses more (RELIABILITY.md).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ServeConfig;

/// The computation pool and its admission state. Shared by all requests.
pub struct ComputePool {
    pool: rayon::ThreadPool,
    threads: usize,
    max_in_flight: usize,
    max_queue_wait: Duration,
    in_flight: AtomicUsize,
    /// Exponentially weighted mean computation time, in nanoseconds (0: none yet).
    mean_nanos: AtomicU64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputePool")
            .field("threads", &self.threads)
            .field("max_in_flight", &self.max_in_flight)
            .field("in_flight", &self.in_flight.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// Releases an admission slot when dropped (also when the job never runs).
struct Slot {
    pool: Arc<ComputePool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.in_flight.fetch_sub(1, Relaxed);
        self.pool.metrics.server.add_in_flight(-1);
    }
}

impl ComputePool {
    /// A pool sized by `config` (`compute_threads` 0: one thread per core).
    pub fn new(config: &ServeConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let threads = match config.compute_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("shortlist-compute-{i}"))
            .build()
            .map_err(|e| format!("cannot start the computation pool: {e}"))?;
        Ok(ComputePool {
            pool,
            threads,
            max_in_flight: config.max_in_flight.max(1),
            max_queue_wait: config.max_queue_wait,
            in_flight: AtomicUsize::new(0),
            mean_nanos: AtomicU64::new(0),
            metrics,
        })
    }

    /// Threads of the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Computations admitted and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// The wait a computation admitted now would have before starting, estimated
    /// from the `ahead` computations admitted before it.
    fn estimated_wait(&self, ahead: usize) -> Duration {
        let queued = ahead.saturating_sub(self.threads.saturating_sub(1)) as u64;
        let mean = self.mean_nanos.load(Relaxed);
        Duration::from_nanos(queued.saturating_mul(mean) / self.threads as u64)
    }

    fn record_time(&self, elapsed: Duration) {
        let x = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // mean += (x - mean) / 8; races between threads only lose a sample.
        let m = self.mean_nanos.load(Relaxed);
        let next = if m == 0 {
            x
        } else {
            (m as i128 + (x as i128 - m as i128) / 8).max(1) as u64
        };
        self.mean_nanos.store(next, Relaxed);
    }

    /// Admits or refuses a computation; refused: [`ApiError::Overloaded`] at once.
    /// The admission holds a slot until it is run (or dropped).
    pub fn admit(self: &Arc<Self>) -> Result<Admission, ApiError> {
        self.admit_slot().map(|slot| Admission { slot })
    }

    fn admit_slot(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let ahead = self.in_flight.fetch_add(1, Relaxed);
        // The slot exists from here on, so an early return releases it.
        let slot = Slot {
            pool: Arc::clone(self),
        };
        self.metrics.server.add_in_flight(1);
        let over_limit = ahead >= self.max_in_flight;
        if over_limit || self.estimated_wait(ahead) > self.max_queue_wait {
            self.metrics.server.shed_one();
            let why = if over_limit {
                format!("{} requests in flight", self.max_in_flight)
            } else {
                format!(
                    "estimated queue wait above {} ms",
                    self.max_queue_wait.as_millis()
                )
            };
            return Err(ApiError::Overloaded(format!(
                "Server overloaded ({why}); retry later"
            )));
        }
        Ok(slot)
    }

    /// Runs `job` on the pool if admitted, and waits for its result without
    /// blocking an async worker. Dropping the returned future (e.g. on the request
    /// timeout) before the job starts cancels it.
    pub async fn run<T, F>(self: &Arc<Self>, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    {
        self.admit()?.run(job).await
    }
}

/// An admitted computation, holding its in-flight slot (see [`ComputePool::admit`]).
pub struct Admission {
    slot: Slot,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Admission {
    /// Runs `job` on the pool and waits for its result without blocking an async
    /// worker. Dropping the returned future before the job starts cancels it.
    pub async fn run<T, F>(self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    {
        let slot = self.slot;
        let pool = Arc::clone(&slot.pool);
        let runner = Arc::clone(&pool);
        let (tx, rx) = tokio::sync::oneshot::channel();
        runner.pool.spawn(move || {
            if tx.is_closed() {
                return; // the request gave up while queued (the slot drops here)
            }
            let start = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                .unwrap_or_else(|_| Err(ApiError::Internal("a computation panicked".into())));
            pool.record_time(start.elapsed());
            // Released before the answer is sent, so a caller sees its slot free.
            drop(slot);
            let _ = tx.send(result);
        });
        rx.await
            .map_err(|_| ApiError::Internal("the computation pool dropped a job".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize, max_in_flight: usize, wait_ms: u64) -> Arc<ComputePool> {
        let config = ServeConfig {
            compute_threads: threads,
            max_in_flight,
            max_queue_wait: Duration::from_millis(wait_ms),
            ..ServeConfig::default()
        };
        Arc::new(ComputePool::new(&config, Arc::new(Metrics::default())).unwrap())
    }

    /// A job on `p` that holds its thread until the returned sender sends (or drops).
    fn blocking_job(
        p: &Arc<ComputePool>,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), ApiError>>,
    ) {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let p = Arc::clone(p);
        let job = tokio::spawn(async move {
            p.run(move || {
                let _ = go_rx.recv();
                Ok(())
            })
            .await
        });
        (go_tx, job)
    }

    /// Returns once `p` has at least `n` jobs in flight.
    async fn until_in_flight(p: &ComputePool, n: usize) {
        while p.in_flight() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[test]
    fn estimated_wait_counts_the_queue_ahead() {
        let p = pool(2, 100, 50);
        assert_eq!(p.estimated_wait(5), Duration::ZERO, "no mean time yet");
        p.record_time(Duration::from_millis(10));
        // 0 or 1 ahead: a thread is free.
        assert_eq!(p.estimated_wait(0), Duration::ZERO);
        assert_eq!(p.estimated_wait(1), Duration::ZERO);
        // 5 ahead on 2 threads: 4 queued beyond the first free thread, 10 ms each, 2 threads.
        assert_eq!(p.estimated_wait(5), Duration::from_millis(20));
        // The mean moves by 1/8 of each new sample.
        p.record_time(Duration::from_millis(18));
        assert_eq!(p.mean_nanos.load(Relaxed), 11_000_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_the_limit_is_refused_at_once_and_slots_are_released() {
        let p = pool(1, 2, 10_000);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
        // Two long jobs fill the limit (one running, one queued).
        let mut jobs = Vec::new();
        for _ in 0..2 {
            let p = Arc::clone(&p);
            let rx = Arc::clone(&go_rx);
            jobs.push(tokio::spawn(async move {
                p.run(move || {
                    let _ = rx.lock().unwrap().recv();
                    Ok(1)
                })
                .await
            }));
        }
        until_in_flight(&p, 2).await;
        let t = Instant::now();
        let refused = p.run(|| Ok(2)).await;
        assert!(t.elapsed() < Duration::from_millis(50));
        assert!(
            matches!(&refused, Err(ApiError::Overloaded(m)) if m.contains("2 requests in flight")),
            "{refused:?}"
        );
        assert_eq!(p.metrics.server.shed(), 1);
        assert_eq!(p.in_flight(), 2, "a refused request holds no slot");
        go_tx.send(()).unwrap();
        go_tx.send(()).unwrap();
        for j in jobs {
            assert_eq!(j.await.unwrap(), Ok(1));
        }
        assert_eq!(p.in_flight(), 0);
        assert_eq!(p.metrics.server.in_flight(), 0);
        assert_eq!(p.run(|| Ok(3)).await, Ok(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_queue_is_refused_by_estimated_wait() {
        let p = pool(1, 100, 30);
        p.record_time(Duration::from_millis(20));
        let (go_tx, busy) = blocking_job(&p);
        until_in_flight(&p, 1).await;
        // One running, mean 20 ms: the next waits ~20 ms (admitted), the one after ~40 ms (refused).
        let second = {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.run(|| Ok(())).await })
        };
        until_in_flight(&p, 2).await;
        let third = p.run(|| Ok(())).await;
        assert!(
            matches!(&third, Err(ApiError::Overloaded(m)) if m.contains("estimated queue wait above 30 ms")),
            "{third:?}"
        );
        go_tx.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(()));
        assert_eq!(second.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error() {
        let p = pool(1, 4, 50);
        let r: Result<(), ApiError> = p.run(|| panic!("boom")).await;
        assert_eq!(r, Err(ApiError::Internal("a computation panicked".into())));
        assert_eq!(p.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_request_skips_its_job() {
        let p = pool(1, 4, 10_000);
        let (go_tx, blocker) = blocking_job(&p);
        let ran = Arc::new(AtomicUsize::new(0));
        until_in_flight(&p, 1).await;
        let r2 = Arc::clone(&ran);
        let queued = p.run(move || {
            r2.fetch_add(1, Relaxed);
            Ok(())
        });
        // Give up while it is queued.
        assert!(tokio::time::timeout(Duration::from_millis(20), queued)
            .await
            .is_err());
        go_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        while p.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(ran.load(Relaxed), 0);
    }
}
