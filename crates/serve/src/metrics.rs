//! Prometheus metrics, hand-written: fixed arrays of atomics, so recording a request
//! costs a few relaxed atomic adds and no lock or allocation.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::registry::Snapshot;

/// The endpoint families metrics are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/models/{name}[/versions/{v}]`
    Status,
    /// `GET /v1/models/{name}[/versions/{v}]/metadata`
    Metadata,
    /// `POST /v1/models/{name}[/versions/{v}]:predict`
    Predict,
    /// `POST /v1/recommend`
    Recommend,
    /// `POST /v1/rank`
    Rank,
    /// `POST /v1/events`
    Events,
    /// `POST /v1/items`, `DELETE /v1/items/{id}`
    Items,
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /monitoring/prometheus/metrics`
    Metrics,
    /// Anything else (unknown routes, wrong methods).
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 11] = [
        Endpoint::Status,
        Endpoint::Metadata,
        Endpoint::Predict,
        Endpoint::Recommend,
        Endpoint::Rank,
        Endpoint::Events,
        Endpoint::Items,
        Endpoint::Healthz,
        Endpoint::Readyz,
        Endpoint::Metrics,
        Endpoint::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Status => "model_status",
            Endpoint::Metadata => "model_metadata",
            Endpoint::Predict => "predict",
            Endpoint::Recommend => "recommend",
            Endpoint::Rank => "rank",
            Endpoint::Events => "events",
            Endpoint::Items => "items",
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::Metrics => "metrics",
            Endpoint::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
struct EndpointStats {
    by_class: [AtomicU64; 5],
    /// Non-cumulative bucket counts; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// Why the server closed a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The request head was not complete within [`ServeConfig::header_timeout`](crate::ServeConfig::header_timeout).
    HeaderTimeout,
    /// Idle longer than [`ServeConfig::idle_timeout`](crate::ServeConfig::idle_timeout).
    IdleTimeout,
    /// Closed to make room for a new connection at the connection cap.
    Evicted,
    /// Refused at the cap because every open connection was busy.
    Refused,
}

impl CloseReason {
    const ALL: [CloseReason; 4] = [
        CloseReason::HeaderTimeout,
        CloseReason::IdleTimeout,
        CloseReason::Evicted,
        CloseReason::Refused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
        }
    }
}

/// Kinds of HTTP protocol errors: requests the HTTP layer rejected before any
/// handler saw them (it answers 400, 414 or 431 itself when it can), or
/// connections that broke mid-message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A malformed request line or header (400).
    Parse,
    /// A URI or header section over the limits (414 / 431).
    TooLarge,
    /// The connection closed in the middle of a message.
    Incomplete,
    /// Another I/O or protocol failure.
    Other,
}

impl ProtocolError {
    const ALL: [ProtocolError; 4] = [
        ProtocolError::Parse,
        ProtocolError::TooLarge,
        ProtocolError::Incomplete,
        ProtocolError::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolError::Parse => "parse",
            ProtocolError::TooLarge => "too_large",
            ProtocolError::Incomplete => "incomplete",
            ProtocolError::Other => "other",
        }
    }
}

/// Connection and load-shedding gauges and counters, updated by the accept loop
/// and the computation pool.
#[derive(Default)]
pub struct ServerCounters {
    open_connections: AtomicU64,
    accepted: AtomicU64,
    closed: [AtomicU64; 4],
    protocol: [AtomicU64; 4],
    in_flight: AtomicU64,
    shed: AtomicU64,
}

impl ServerCounters {
    /// A connection was accepted (and is now open).
    pub fn connection_opened(&self) {
        self.accepted.fetch_add(1, Relaxed);
        self.open_connections.fetch_add(1, Relaxed);
    }
    /// An accepted connection closed, for whatever reason.
    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Relaxed);
    }
    /// The server closed a connection on its own.
    pub fn closed_by_server(&self, reason: CloseReason) {
        self.closed[reason as usize].fetch_add(1, Relaxed);
    }
    /// The HTTP layer rejected a request or a connection broke mid-message.
    pub fn protocol_error(&self, kind: ProtocolError) {
        self.protocol[kind as usize].fetch_add(1, Relaxed);
    }
    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Relaxed)
    }
    /// Server-side closes of one reason since start.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize].load(Relaxed)
    }
    /// Computations admitted and not finished: `delta` +1 or -1.
    pub(crate) fn add_in_flight(&self, delta: i64) {
        if delta >= 0 {
            self.in_flight.fetch_add(delta as u64, Relaxed);
        } else {
            self.in_flight.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }
    /// Computations admitted and not finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }
    /// A request was refused with 503 because of the in-flight limit.
    pub(crate) fn shed_one(&self) {
        self.shed.fetch_add(1, Relaxed);
    }
    /// Requests refused with 503 by load shedding since start.
    pub fn shed(&self) -> u64 {
        self.shed.load(Relaxed)
    }
}

/// Request counters and latency histograms per endpoint, and the server's
/// connection and load counters.
#[derive(Default)]
pub struct Metrics {
    stats: [EndpointStats; Endpoint::ALL.len()],
    /// Connections, protocol errors, computations in flight, shed requests.
    pub server: ServerCounters,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, endpoint: Endpoint, status: u16, elapsed: Duration) {
        let s = &self.stats[endpoint.index()];
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        s.by_class[class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        let b = BUCKETS
            .iter()
            .position(|&ub| secs <= ub)
            .unwrap_or(BUCKETS.len());
        s.buckets[b].fetch_add(1, Relaxed);
        s.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    /// The Prometheus text exposition (format 0.0.4) of all metrics, including the
    /// per-model gauges read from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(8192);
        let w = &mut out;
        let _ = writeln!(
            w,
            "# HELP shortlist_requests_total HTTP requests answered, by endpoint and status class."
        );
        let _ = writeln!(w, "# TYPE shortlist_requests_total counter");
        for e in Endpoint::ALL {
            let s = &self.stats[e.index()];
            for (i, class) in CLASSES.iter().enumerate() {
                let n = s.by_class[i].load(Relaxed);
                if n > 0 || matches!(i, 1 | 3 | 4) {
                    let _ = writeln!(
                        w,
                        "shortlist_requests_total{{endpoint=\"{}\",code=\"{class}\"}} {n}",
                        e.as_str()
                    );
                }
            }
        }
        let _ = writeln!(w, "# HELP shortlist_request_errors_total HTTP requests answered with a 4xx or 5xx status, by endpoint and status class.");
        let _ = writeln!(w, "# TYPE shortlist_request_errors_total counter");
        for e in Endpoint::ALL {
            let s = &self.stats[e.index()];
            for i in [3, 4] {
                let _ = writeln!(
                    w,
                    "shortlist_request_errors_total{{endpoint=\"{}\",code=\"{}\"}} {}",
                    e.as_str(),
                    CLASSES[i],
                    s.by_class[i].load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            w,
            "# HELP shortlist_request_duration_seconds Time from request to response, by endpoint."
        );
        let _ = writeln!(w, "# TYPE shortlist_request_duration_seconds histogram");
        for e in Endpoint::ALL {
            let s = &self.stats[e.index()];
            let mut cum = 0u64;
            for (i, ub) in BUCKETS.iter().enumerate() {
                cum += s.buckets[i].load(Relaxed);
                let _ = writeln!(w, "shortlist_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"{ub}\"}} {cum}", e.as_str());
            }
            cum += s.buckets[BUCKETS.len()].load(Relaxed);
            let _ = writeln!(
                w,
                "shortlist_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"+Inf\"}} {cum}",
                e.as_str()
            );
            let sum = s.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                w,
                "shortlist_request_duration_seconds_sum{{endpoint=\"{}\"}} {sum}",
                e.as_str()
            );
            let _ = writeln!(
                w,
                "shortlist_request_duration_seconds_count{{endpoint=\"{}\"}} {cum}",
                e.as_str()
            );
        }

        self.render_server(w);

        let mut models: Vec<_> = snapshot.models.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        let _ = writeln!(
            w,
            "# HELP shortlist_model_version Version of each model being served (0: none loaded)."
        );
        let _ = writeln!(w, "# TYPE shortlist_model_version gauge");
        for (name, m) in &models {
            let v = m.live.as_ref().map_or(0, |l| l.version);
            let _ = writeln!(
                w,
                "shortlist_model_version{{model=\"{}\"}} {v}",
                escape(name)
            );
        }
        let _ = writeln!(
            w,
            "# HELP shortlist_model_load_failures_total Failed model version loads since start."
        );
        let _ = writeln!(w, "# TYPE shortlist_model_load_failures_total counter");
        for (name, m) in &models {
            let _ = writeln!(
                w,
                "shortlist_model_load_failures_total{{model=\"{}\"}} {}",
                escape(name),
                m.load_failures
            );
        }
        out
    }
}

impl Metrics {
    fn render_server(&self, w: &mut String) {
        let c = &self.server;
        let gauge = |w: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(w, "# HELP {name} {help}");
            let _ = writeln!(w, "# TYPE {name} gauge");
            let _ = writeln!(w, "{name} {v}");
        };
        let counter = |w: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(w, "# HELP {name} {help}");
            let _ = writeln!(w, "# TYPE {name} counter");
            let _ = writeln!(w, "{name} {v}");
        };
        gauge(
            w,
            "shortlist_open_connections",
            "HTTP connections open now.",
            c.open_connections(),
        );
        counter(
            w,
            "shortlist_connections_accepted_total",
            "HTTP connections accepted since start.",
            c.accepted.load(Relaxed),
        );
        let _ = writeln!(w, "# HELP shortlist_connections_closed_by_server_total Connections the server closed on its own, by reason.");
        let _ = writeln!(
            w,
            "# TYPE shortlist_connections_closed_by_server_total counter"
        );
        for r in CloseReason::ALL {
            let _ = writeln!(
                w,
                "shortlist_connections_closed_by_server_total{{reason=\"{}\"}} {}",
                r.as_str(),
                c.closed(r)
            );
        }
        let _ = writeln!(w, "# HELP shortlist_protocol_errors_total Requests rejected by the HTTP layer (400/414/431) or broken mid-message, by kind.");
        let _ = writeln!(w, "# TYPE shortlist_protocol_errors_total counter");
        for k in ProtocolError::ALL {
            let _ = writeln!(
                w,
                "shortlist_protocol_errors_total{{kind=\"{}\"}} {}",
                k.as_str(),
                c.protocol[k as usize].load(Relaxed)
            );
        }
        gauge(
            w,
            "shortlist_in_flight_requests",
            "Model computations admitted and not finished (queued or running).",
            c.in_flight(),
        );
        counter(
            w,
            "shortlist_shed_requests_total",
            "Requests answered 503 at once because the server was at its in-flight limit.",
            c.shed(),
        );
    }
}

/// Escapes a label value (`\`, `"` and newlines).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.record(Endpoint::Predict, 200, Duration::from_micros(50));
        m.record(Endpoint::Predict, 200, Duration::from_millis(3));
        m.record(Endpoint::Predict, 404, Duration::from_secs(20));
        let text = m.render(&Snapshot::default());
        assert!(text.contains("shortlist_requests_total{endpoint=\"predict\",code=\"2xx\"} 2\n"));
        assert!(
            text.contains("shortlist_request_errors_total{endpoint=\"predict\",code=\"4xx\"} 1\n")
        );
        assert!(text.contains(
            "shortlist_request_duration_seconds_bucket{endpoint=\"predict\",le=\"0.0001\"} 1\n"
        ));
        assert!(text.contains(
            "shortlist_request_duration_seconds_bucket{endpoint=\"predict\",le=\"0.005\"} 2\n"
        ));
        assert!(text.contains(
            "shortlist_request_duration_seconds_bucket{endpoint=\"predict\",le=\"10\"} 2\n"
        ));
        assert!(text.contains(
            "shortlist_request_duration_seconds_bucket{endpoint=\"predict\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains("shortlist_request_duration_seconds_count{endpoint=\"predict\"} 3\n"));
    }
}
