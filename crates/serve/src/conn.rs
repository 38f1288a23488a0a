//! Connection hygiene: the accept loop, per-connection timeouts and the cap on open
//! connections. Requests go to the axum [`Router`] through hyper's HTTP/1.1 server
//! (`hyper::server::conn::http1`), driven here instead of by `axum::serve`, which
//! has no timeouts and no connection limit.
//!
//! Each connection is in one of three phases, tracked from the bytes read and the
//! requests served:
//!
//! * **head** — from accepting it, or from the first byte of a later request,
//!   until its request head is complete: closed after
//!   [`ServeConfig::header_timeout`] (a client sending its headers a byte at a time
//!   cannot hold a connection);
//! * **busy** — a request is being answered: bounded by
//!   [`ServeConfig::request_timeout`] in the handlers (body reading included);
//! * **idle** — keep-alive between requests (also while a response is written to
//!   a client that does not read it): closed after [`ServeConfig::idle_timeout`].
//!
//! At most [`ServeConfig::max_connections`] are open (by default derived from the
//! file-descriptor limit, leaving a reserve for model files and the poller, so
//! "Too many open files" never reaches them). Near the cap, the oldest connections
//! in the head or idle phase are closed to make room (a batch of 1/64 of the cap
//! per scan, so the scan stays cheap under a flood), so a legitimate client — e.g.
//! a health probe — still gets in while thousands of slow connections are open;
//! if every connection is busy, the new one is closed at once.
//!
//! Connections are accepted on a thread of their own, so accepting never waits
//! behind thousands of busy connection tasks.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::metrics::{CloseReason, Metrics, ProtocolError};
use crate::ServeConfig;

/// File descriptors kept free for model files, the poller and logging: an eighth
/// of the limit, at least 128.
fn fd_reserve(limit: u64) -> u64 {
    (limit / 8).max(128)
}

/// Raises the soft file-descriptor limit to the hard one (as Go's runtime does) and
/// returns the connection cap it allows: the limit minus a reserve of an eighth of
/// it (at least 128), at least 16.
pub fn default_max_connections() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    let mut soft = lim.current.unwrap_or(1 << 20);
    if let Some(hard) = lim.maximum {
        if hard > soft {
            let raised = rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => soft = hard,
                Err(e) => tracing::debug!(error = %e, "cannot raise the open-files limit"),
            }
        }
    }
    let cap = soft.saturating_sub(fd_reserve(soft)).max(16);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Largest request head (request line + headers); larger ones get 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The longest the accept loop waits for evicted connections to close before it
/// accepts (and refuses) the next client anyway.
const ROOM_WAIT: Duration = Duration::from_secs(1);

const HEAD: u64 = 0;
const IDLE: u64 = 1;
const BUSY: u64 = 2;
const PHASE_SHIFT: u32 = 62;
const SINCE_MASK: u64 = (1 << PHASE_SHIFT) - 1;

/// The shared view of one connection: its phase and since when (nanoseconds
/// after [`Connections::epoch`]), packed in one atomic.
struct Slot {
    state: AtomicU64,
    /// Bytes of a next request arrived while one was being answered (pipelining).
    bytes_while_busy: AtomicBool,
    evicted: AtomicBool,
    evict: Notify,
}

impl Slot {
    fn set(&self, phase: u64, since: u64) {
        self.state
            .store((phase << PHASE_SHIFT) | (since & SINCE_MASK), Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        let s = self.state.load(Relaxed);
        (s >> PHASE_SHIFT, s & SINCE_MASK)
    }
}

/// How long a connection with this phase may stay in it.
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// The open connections, their cap and the server's clock.
pub(crate) struct Connections {
    epoch: Instant,
    slots: Mutex<FxHashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    open: AtomicUsize,
    /// Evicted connections that have not closed yet.
    evicting: AtomicUsize,
    max: usize,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
    all_closed: Notify,
    /// Signalled at every close: the acceptor waits on it while evicted connections
    /// still hold the descriptors a new one needs.
    closed: Notify,
}

impl Connections {
    pub(crate) fn new(config: &ServeConfig, metrics: Arc<Metrics>) -> Self {
        let max = config
            .max_connections
            .unwrap_or_else(default_max_connections)
            .max(1);
        Connections {
            epoch: Instant::now(),
            slots: Mutex::new(FxHashMap::default()),
            next_id: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            evicting: AtomicUsize::new(0),
            max,
            timeouts: Timeouts {
                header: config.header_timeout,
                idle: config.idle_timeout,
            },
            metrics,
            all_closed: Notify::new(),
            closed: Notify::new(),
        }
    }

    /// The connection cap in force.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(SINCE_MASK) & SINCE_MASK
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, FxHashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Evictions made at once at the cap, and how far past the cap the evicted
    /// connections still closing may take the descriptors in use.
    fn batch(&self) -> usize {
        (self.max / 64).max(1)
    }

    /// Waits, at most `limit`, until evicted connections have closed enough for a
    /// new one to be admitted without passing the descriptor reserve. The accept
    /// loop calls it before accepting, so that under a flood of new connections a
    /// client waits in the listen backlog for an eviction to finish rather than
    /// being accepted and dropped at once: a health probe arriving among 20,000
    /// reconnecting slow clients was refused one time in five.
    async fn room(&self, limit: Duration) {
        let full = || self.open.load(Relaxed) >= self.max + self.batch();
        let deadline = tokio::time::Instant::now() + limit;
        while full() {
            let closed = self.closed.notified();
            if !full() {
                break;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                break; // accept anyway: `admit` refuses it, and the backlog moves
            }
        }
    }

    /// Whether a new connection may open, evicting old idle or slow ones at the cap.
    fn admit(&self) -> bool {
        let live = |c: &Self| {
            c.open
                .load(Relaxed)
                .saturating_sub(c.evicting.load(Relaxed))
        };
        let batch = self.batch();
        // Evicted connections hold their descriptor until their task runs: never
        // let them add up past one batch (the descriptor reserve covers that).
        if self.open.load(Relaxed) >= self.max + batch {
            return false;
        }
        // Start evicting a little before the cap, so evictions finish before it.
        if live(self) < self.max - (4 * batch).min(self.max / 8) {
            return true;
        }
        let mut candidates: Vec<(u64, Arc<Slot>)> = self
            .slots()
            .values()
            .filter(|s| !s.evicted.load(Relaxed))
            .filter_map(|s| {
                let (phase, since) = s.get();
                (phase != BUSY).then(|| (since, Arc::clone(s)))
            })
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let n = batch.min(candidates.len());
        if n < candidates.len() {
            candidates.select_nth_unstable_by_key(n - 1, |c| c.0);
        }
        for (_, s) in candidates.iter().take(n) {
            if !s.evicted.swap(true, Relaxed) {
                self.evicting.fetch_add(1, Relaxed);
                s.evict.notify_one();
            }
        }
        true
    }

    /// Accepts connections until `shutdown` turns true, on a thread of its own
    /// (with its own small runtime), so accepting never queues behind thousands of
    /// connection tasks: a new client (a health probe) is accepted at once however
    /// busy the workers are. Connections are served on the runtime of `workers`.
    pub(crate) fn spawn_acceptor(
        self: Arc<Self>,
        listener: TcpListener,
        router: Router,
        shutdown: watch::Receiver<bool>,
        workers: tokio::runtime::Handle,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let listener = listener.into_std()?;
        std::thread::Builder::new()
            .name("shortlist-accept".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the accept loop");
                        return;
                    }
                };
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => self.accept_loop(l, router, shutdown, workers).await,
                        Err(e) => tracing::error!(error = %e, "cannot listen"),
                    }
                });
            })
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        router: Router,
        mut shutdown: watch::Receiver<bool>,
        workers: tokio::runtime::Handle,
    ) {
        let mut last_fd_warning: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                biased;
                () = stopped(&mut shutdown) => break,
                r = async {
                    self.room(ROOM_WAIT).await;
                    listener.accept().await
                } => r,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if is_resource_exhaustion(&e) {
                        if last_fd_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            tracing::warn!(error = %e, max_connections = self.max,
                                "cannot accept a connection: out of file descriptors or memory; lower --max-connections");
                            last_fd_warning = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    } else {
                        tracing::debug!(error = %e, "accept failed");
                    }
                    continue;
                }
            };
            if !self.admit() {
                self.metrics.server.closed_by_server(CloseReason::Refused);
                drop(stream);
                continue;
            }
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            // Re-registered with the workers' reactor.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot hand a connection over");
                    continue;
                }
            };
            self.open.fetch_add(1, Relaxed);
            self.metrics.server.connection_opened();
            let conns = Arc::clone(&self);
            let (router, shutdown) = (router.clone(), shutdown.clone());
            workers.spawn(async move {
                match TcpStream::from_std(stream) {
                    Ok(stream) => conns.serve_one(stream, router, shutdown).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot register a connection");
                        conns.open.fetch_sub(1, Relaxed);
                        conns.metrics.server.connection_closed();
                    }
                }
            });
        }
    }

    /// Waits (at most `grace`) for open connections to finish after shutdown.
    pub(crate) async fn drain(&self, grace: Duration) {
        let waited = tokio::time::timeout(grace, async {
            loop {
                let notified = self.all_closed.notified();
                if self.open.load(Relaxed) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!(
                open = self.open.load(Relaxed),
                "connections still open after the shutdown grace period; closing them"
            );
        }
    }

    async fn serve_one(
        self: Arc<Self>,
        stream: TcpStream,
        router: Router,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let slot = Arc::new(Slot {
            state: AtomicU64::new(0),
            bytes_while_busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        slot.set(HEAD, self.now());
        self.slots().insert(id, Arc::clone(&slot));
        let _guard = Closing {
            conns: Arc::clone(&self),
            id,
            slot: Arc::clone(&slot),
        };

        let io = TokioIo::new(Tracked {
            inner: stream,
            slot: Arc::clone(&slot),
            conns: Arc::clone(&self),
        });
        let service = ConnService {
            router,
            slot: Arc::clone(&slot),
            conns: Arc::clone(&self),
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_header_size(MAX_HEAD_BYTES);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            reason = self.watchdog(&slot) => {
                self.metrics.server.closed_by_server(reason);
                return;
            }
            () = stopped(&mut shutdown) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            self.metrics.server.protocol_error(classify(&e));
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }

    /// Completes when the connection overstays its phase or is evicted.
    async fn watchdog(&self, slot: &Slot) -> CloseReason {
        loop {
            let (phase, since) = slot.get();
            let limit = match phase {
                HEAD => self.timeouts.header,
                // Busy: bounded by the request timeout; look again after a while.
                _ => self.timeouts.idle,
            };
            let start = if phase == BUSY { self.now() } else { since };
            let deadline = self.epoch + Duration::from_nanos(start) + limit;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if phase != BUSY && slot.get() == (phase, since) {
                        return if phase == HEAD {
                            CloseReason::HeaderTimeout
                        } else {
                            CloseReason::IdleTimeout
                        };
                    }
                }
                _ = slot.evict.notified() => return CloseReason::Evicted,
            }
        }
    }
}

/// Unregisters a connection when its task ends.
struct Closing {
    conns: Arc<Connections>,
    id: u64,
    slot: Arc<Slot>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.conns.slots().remove(&self.id);
        // Marks it evicted too, so a concurrent eviction scan does not count it.
        if self.slot.evicted.swap(true, Relaxed) {
            self.conns.evicting.fetch_sub(1, Relaxed);
        }
        self.conns.metrics.server.connection_closed();
        if self.conns.open.fetch_sub(1, Relaxed) == 1 {
            self.conns.all_closed.notify_waiters();
        }
        self.conns.closed.notify_one();
    }
}

/// Completes once the shutdown flag is set (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
            || code == rustix::io::Errno::NOBUFS.raw_os_error()
            || code == rustix::io::Errno::NOMEM.raw_os_error()
    )
}

fn classify(e: &hyper::Error) -> ProtocolError {
    if e.is_parse_too_large() {
        ProtocolError::TooLarge
    } else if e.is_parse() {
        ProtocolError::Parse
    } else if e.is_incomplete_message() {
        ProtocolError::Incomplete
    } else {
        ProtocolError::Other
    }
}

/// The socket, noting when bytes of a new request arrive.
struct Tracked {
    inner: TcpStream,
    slot: Arc<Slot>,
    conns: Arc<Connections>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            match self.slot.get().0 {
                IDLE => self.slot.set(HEAD, self.conns.now()),
                BUSY => self.slot.bytes_while_busy.store(true, Relaxed),
                _ => {}
            }
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The router as a hyper service, marking the connection busy while it answers.
struct ConnService {
    router: Router,
    slot: Arc<Slot>,
    conns: Arc<Connections>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.slot.set(BUSY, self.conns.now());
        let mut router = self.router.clone();
        let fut = tower::Service::call(&mut router, req.map(Body::new));
        let (slot, conns) = (Arc::clone(&self.slot), Arc::clone(&self.conns));
        Box::pin(async move {
            let resp = fut.await;
            let phase = if slot.bytes_while_busy.swap(false, Relaxed) {
                HEAD
            } else {
                IDLE
            };
            slot.set(phase, conns.now());
            resp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_cap() {
        assert_eq!(fd_reserve(1024), 128);
        assert_eq!(fd_reserve(20_000), 2_500);
        assert!(default_max_connections() >= 16);
    }

    #[test]
    fn slot_packs_phase_and_time() {
        let s = Slot {
            state: AtomicU64::new(0),
            bytes_while_busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        };
        s.set(IDLE, 123_456_789);
        assert_eq!(s.get(), (IDLE, 123_456_789));
        s.set(BUSY, SINCE_MASK);
        assert_eq!(s.get(), (BUSY, SINCE_MASK));
    }

    /// While evicted connections hold the descriptors past the cap, the accept loop
    /// waits for one to close (not for its whole limit), and gives up after the
    /// limit when none does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_acceptor_waits_for_room_until_a_connection_closes() {
        let config = ServeConfig {
            max_connections: Some(64),
            ..ServeConfig::default()
        };
        let conns = Arc::new(Connections::new(&config, Arc::new(Metrics::default())));
        assert_eq!((conns.max(), conns.batch()), (64, 1));

        let t = Instant::now();
        conns.room(Duration::from_secs(5)).await;
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "no wait below the cap"
        );

        conns.open.store(65, Relaxed); // the cap plus one batch still closing
        let t = Instant::now();
        conns.room(Duration::from_millis(150)).await;
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "no room: waited {waited:?}, the limit is 150 ms"
        );

        let closer = {
            let conns = Arc::clone(&conns);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                conns.open.fetch_sub(1, Relaxed);
                conns.closed.notify_one();
            })
        };
        let t = Instant::now();
        conns.room(Duration::from_secs(5)).await;
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(90) && waited < Duration::from_secs(2),
            "room after a close: waited {waited:?}"
        );
        closer.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
