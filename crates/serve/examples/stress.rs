//! Hostile and heavy clients for the reliability targets (RELIABILITY.md); a
//! program that prints figures, driven by `scripts/reliability/*.sh`.
//!
//! ```text
//! cargo run --release -p shortlist-serve --example stress -- slowloris ADDR CONNS SECONDS [probe]
//! cargo run --release -p shortlist-serve --example stress -- overload ADDR CONNS SECONDS BODY_FILE PATH
//! cargo run --release -p shortlist-serve --example stress -- closed ADDR CONNS SECONDS BODY_FILE PATH
//! cargo run --release -p shortlist-serve --example stress -- soak ADDR CONNS SECONDS RATE BODY_FILE PATH
//! ```
//!
//! * `slowloris`: CONNS connections send a request head one byte per second,
//!   reconnecting when the server closes them; with `probe`, a fresh connection
//!   asks `GET /healthz` every 100 ms. Prints the probe latencies, the time the
//!   server took to close a slow connection, and client-side errors.
//! * `overload`: 4 connections for 5 s (baseline), CONNS connections for SECONDS,
//!   then 4 connections for 5 s (recovery), all back to back with BODY_FILE posted
//!   to PATH. Prints, per phase, latencies of accepted (200) and refused (503)
//!   answers, connection errors, throughput, and the recovery in 250 ms windows.
//! * `closed`: CONNS connections back to back for SECONDS: throughput and latency.
//! * `soak`: RATE requests per second in total, spread over CONNS connections,
//!   for SECONDS (open loop: latency counted from the scheduled send time).
//!   Prints a line every 10 s and the totals; any answer but 200 is a failure. A
//!   BODY_FILE named `*.jsonl` holds one body per line, sent in turn (e.g. the
//!   `bodies.jsonl` of `big_catalogue`: many users rather than one).
//!
//! With `STRESS_EXPECT=1`, requests with a body are sent as curl sends large
//! ones: the head with `Expect: 100-continue`, the body only after `100 Continue`;
//! a connection the server closes after an answer is reopened.
//!
//! Client sockets bind to 127.0.0.2–127.0.0.9 in turn when ADDR is on loopback,
//! so tens of thousands of connections do not run out of ephemeral ports.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

static NEXT_SRC: AtomicUsize = AtomicUsize::new(0);
static ERRORS_SHOWN: AtomicUsize = AtomicUsize::new(0);

/// Prints the first few client-side errors, so a count has a cause.
fn show_error(what: &str, e: &std::io::Error) {
    if ERRORS_SHOWN.fetch_add(1, Relaxed) < 5 {
        eprintln!("client error ({what}): {e} ({:?})", e.kind());
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if addr.ip().is_loopback() {
        let k = NEXT_SRC.fetch_add(1, Relaxed) % 8;
        sock.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + k as u8)),
            0,
        ))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Reads one response; returns its status and whether the server closes the
/// connection after it (`Connection: close`).
async fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(bad("closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut len = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(bad("closed in headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| bad("content-length"))?;
            }
            if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok((status, close))
}

/// Sends one request and reads its answer. With `STRESS_EXPECT=1` the head carries
/// `Expect: 100-continue` and the body is sent only after `100 Continue` (as curl
/// does for large bodies), so a refusal costs no upload.
async fn exchange(c: &mut BufReader<TcpStream>, req: &[u8]) -> std::io::Result<(u16, bool)> {
    let split = req.windows(4).position(|w| w == b"\r\n\r\n");
    match split.filter(|_| expect_continue()) {
        Some(end) => {
            let mut head = req[..end + 2].to_vec();
            head.extend_from_slice(b"Expect: 100-continue\r\n\r\n");
            c.get_mut().write_all(&head).await?;
            let (status, close) = read_response(c).await?;
            if status != 100 {
                return Ok((status, close));
            }
            c.get_mut().write_all(&req[end + 4..]).await?;
        }
        None => c.get_mut().write_all(req).await?,
    }
    read_response(c).await
}

fn expect_continue() -> bool {
    static EXPECT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EXPECT.get_or_init(|| std::env::var("STRESS_EXPECT").is_ok_and(|v| v == "1"))
}

fn request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

/// Answers of one phase: latencies (µs) by outcome, and errors.
#[derive(Default)]
struct Tally {
    ok: Vec<u32>,
    refused: Vec<u32>,
    other: Vec<u32>,
    conn_errors: u64,
    /// (seconds since the phase start, latency µs, status) of each answer.
    timeline: Vec<(f32, u32, u16)>,
}

impl Tally {
    fn record(&mut self, t: f32, us: u32, status: u16) {
        match status {
            200 => self.ok.push(us),
            503 => self.refused.push(us),
            _ => self.other.push(us),
        }
        self.timeline.push((t, us, status));
    }

    fn merge(&mut self, o: Tally) {
        self.ok.extend(o.ok);
        self.refused.extend(o.refused);
        self.other.extend(o.other);
        self.conn_errors += o.conn_errors;
        self.timeline.extend(o.timeline);
    }

    fn print(&mut self, name: &str, secs: f64) {
        let n = self.ok.len() + self.refused.len() + self.other.len();
        println!(
            "{name}: {n} answers in {secs:.1}s ({:.0}/s), 200: {} (p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0}/s), 503: {} (p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms), other: {}, connection errors: {}",
            n as f64 / secs,
            self.ok.len(),
            pct(&mut self.ok, 0.5),
            pct(&mut self.ok, 0.99),
            pct(&mut self.ok, 1.0),
            self.ok.len() as f64 / secs,
            self.refused.len(),
            pct(&mut self.refused, 0.5),
            pct(&mut self.refused, 0.99),
            pct(&mut self.refused, 1.0),
            self.other.len(),
            self.conn_errors
        );
    }
}

/// `conns` connections posting `req` back to back until `until`.
async fn closed_loop(addr: SocketAddr, conns: usize, secs: f64, req: Arc<Vec<u8>>) -> Tally {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let req = Arc::clone(&req);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut conn: Option<BufReader<TcpStream>> = None;
            while Instant::now() < until {
                if conn.is_none() {
                    match connect(addr).await {
                        Ok(s) => conn = Some(BufReader::new(s)),
                        Err(e) => {
                            show_error("connect", &e);
                            t.conn_errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let sent = Instant::now();
                match exchange(c, &req).await {
                    Ok((status, close)) => {
                        t.record(
                            (sent - start).as_secs_f32(),
                            sent.elapsed().as_micros() as u32,
                            status,
                        );
                        if close {
                            conn = None;
                        }
                    }
                    Err(e) => {
                        show_error("request", &e);
                        t.conn_errors += 1;
                        conn = None;
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        all.merge(task.await.unwrap());
    }
    all
}

async fn overload(addr: SocketAddr, conns: usize, secs: f64, req: Arc<Vec<u8>>) {
    let mut base = closed_loop(addr, 4, 5.0, Arc::clone(&req)).await;
    let base_p99 = pct(&mut base.ok, 0.99);
    base.print("baseline (4 connections)", 5.0);
    let mut over = closed_loop(addr, conns, secs, Arc::clone(&req)).await;
    over.print(&format!("overload ({conns} connections)"), secs);
    let mut rec = closed_loop(addr, 4, 5.0, req).await;
    rec.print("recovery (4 connections)", 5.0);
    println!("recovery in 250 ms windows (window start s: answers, p99 ms of 200s):");
    let mut normal_from = None;
    for w in 0..20 {
        let (a, b) = (w as f32 * 0.25, (w + 1) as f32 * 0.25);
        let mut lat: Vec<u32> = rec
            .timeline
            .iter()
            .filter(|(t, _, s)| *t >= a && *t < b && *s == 200)
            .map(|x| x.1)
            .collect();
        let n = lat.len();
        let p99 = pct(&mut lat, 0.99);
        if normal_from.is_none() && n > 0 && p99 <= base_p99 * 1.5 + 0.5 {
            normal_from = Some(a);
        }
        if w < 8 {
            println!("  {a:.2}: {n}, {p99:.2}");
        }
    }
    println!(
        "baseline p99 {base_p99:.2} ms; recovery windows at p99 ≤ 1.5 × baseline from {} s",
        normal_from.map_or("never".into(), |t| format!("{t:.2}"))
    );
}

async fn slowloris(addr: SocketAddr, conns: usize, secs: f64, probe: bool) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let open = Arc::new(AtomicUsize::new(0));
    let closed_by_server = Arc::new(AtomicU64::new(0));
    let connect_errors = Arc::new(AtomicU64::new(0));
    let lifetimes = Arc::new(Mutex::new(Vec::<u32>::new()));
    let mut tasks = Vec::new();
    for k in 0..conns {
        let (open, closed, errs, lifetimes) = (
            Arc::clone(&open),
            Arc::clone(&closed_by_server),
            Arc::clone(&connect_errors),
            Arc::clone(&lifetimes),
        );
        tasks.push(tokio::spawn(async move {
            // Spread the first connections over a second.
            tokio::time::sleep(Duration::from_micros((k as u64 * 1_000_000) / conns as u64)).await;
            let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            while Instant::now() < until {
                let mut s = match connect(addr).await {
                    Ok(s) => s,
                    Err(_) => {
                        errs.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                open.fetch_add(1, Relaxed);
                let born = Instant::now();
                let mut sent = 0;
                let mut buf = [0u8; 256];
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let server_closed = loop {
                    tokio::select! {
                        r = s.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { break true },
                        _ = tick.tick() => {
                            if Instant::now() >= until { break false; }
                            let b = head[sent % head.len()];
                            if s.write_all(&[b]).await.is_err() { break true; }
                            sent += 1;
                        }
                    }
                };
                open.fetch_sub(1, Relaxed);
                if server_closed {
                    closed.fetch_add(1, Relaxed);
                    lifetimes
                        .lock()
                        .unwrap()
                        .push(born.elapsed().as_millis() as u32);
                }
            }
        }));
    }
    let mut probes = Vec::new();
    let mut probe_failures = 0u64;
    let mut max_open = 0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while Instant::now() < until {
        max_open = max_open.max(open.load(Relaxed));
        if probe {
            let t = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(5), async {
                let s = connect(addr).await?;
                let mut c = BufReader::new(s);
                c.get_mut()
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await?;
                read_response(&mut c).await
            })
            .await;
            match r {
                Ok(Ok((200, _))) => probes.push(t.elapsed().as_micros() as u32),
                _ => probe_failures += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut life = lifetimes.lock().unwrap().clone();
    println!(
        "slowloris: {conns} connections for {secs:.0}s, most open at once {max_open}, closed by the server {} times (after p50 {:.2} s, min {:.2} s, max {:.2} s), connect errors {}",
        closed_by_server.load(Relaxed),
        pct(&mut life, 0.5),
        pct(&mut life, 0.0),
        pct(&mut life, 1.0),
        connect_errors.load(Relaxed)
    );
    if probe {
        let n = probes.len();
        println!(
            "healthz probes: {n} ok, {probe_failures} failed, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(&mut probes, 0.5),
            pct(&mut probes, 0.99),
            pct(&mut probes, 1.0)
        );
    }
}

async fn soak(addr: SocketAddr, conns: usize, secs: f64, rate: f64, reqs: Arc<Vec<Vec<u8>>>) {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u32>::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..conns {
        let (reqs, sent, ok, failed, lat) = (
            Arc::clone(&reqs),
            Arc::clone(&sent),
            Arc::clone(&ok),
            Arc::clone(&failed),
            Arc::clone(&lat),
        );
        tasks.push(tokio::spawn(async move {
            let mut next = start + interval.mul_f64(k as f64 / conns as f64);
            let mut conn: Option<BufReader<TcpStream>> = None;
            while next < until {
                tokio::time::sleep_until(next.into()).await;
                if conn.is_none() {
                    match connect(addr).await {
                        Ok(s) => conn = Some(BufReader::new(s)),
                        Err(e) => {
                            eprintln!("connect: {e}");
                            failed.fetch_add(1, Relaxed);
                            next += interval;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let req = &reqs[sent.fetch_add(1, Relaxed) as usize % reqs.len()];
                match exchange(c, req).await.map(|(status, _)| status) {
                    Ok(200) => {
                        ok.fetch_add(1, Relaxed);
                        lat.lock().unwrap().push(next.elapsed().as_micros() as u32);
                    }
                    Ok(s) => {
                        eprintln!("status {s}");
                        failed.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        eprintln!("request: {e}");
                        failed.fetch_add(1, Relaxed);
                        conn = None;
                    }
                }
                next += interval;
            }
        }));
    }
    let mut last = (0u64, Instant::now());
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let n = ok.load(Relaxed);
        let mut l = std::mem::take(&mut *lat.lock().unwrap());
        println!(
            "t={:>4.0}s ok {n} failed {} rate {:.0}/s p50 {:.2} ms p99 {:.2} ms",
            start.elapsed().as_secs_f64(),
            failed.load(Relaxed),
            (n - last.0) as f64 / last.1.elapsed().as_secs_f64(),
            pct(&mut l, 0.5),
            pct(&mut l, 0.99)
        );
        last = (n, Instant::now());
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "soak: {} ok, {} failed in {secs:.0}s at a target of {rate:.0}/s",
        ok.load(Relaxed),
        failed.load(Relaxed)
    );
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: stress slowloris|overload|closed|soak ADDR CONNS SECONDS … (see the file's docs)";
    if a.len() < 4 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let addr: SocketAddr = a[1].parse().unwrap_or_else(|e| {
        eprintln!("ADDR {}: {e}", a[1]);
        std::process::exit(2)
    });
    let conns: usize = a[2].parse().unwrap_or_else(|e| {
        eprintln!("CONNS {}: {e}", a[2]);
        std::process::exit(2)
    });
    let secs: f64 = a[3].parse().unwrap_or_else(|e| {
        eprintln!("SECONDS {}: {e}", a[3]);
        std::process::exit(2)
    });
    let body = |i: usize| -> Arc<Vec<u8>> {
        let (Some(file), Some(path)) = (a.get(i), a.get(i + 1)) else {
            eprintln!("{usage}");
            std::process::exit(2)
        };
        let bytes = std::fs::read(file).unwrap_or_else(|e| {
            eprintln!("BODY_FILE {file}: {e}");
            std::process::exit(2)
        });
        Arc::new(request(path, &bytes))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match a[0].as_str() {
        "slowloris" => rt.block_on(slowloris(
            addr,
            conns,
            secs,
            a.get(4).is_some_and(|p| p == "probe"),
        )),
        "overload" => rt.block_on(overload(addr, conns, secs, body(4))),
        "closed" => rt.block_on(async {
            let mut t = closed_loop(addr, conns, secs, body(4)).await;
            t.print(&format!("closed loop ({conns} connections)"), secs);
        }),
        "soak" => {
            let rate: f64 = a.get(4).and_then(|r| r.parse().ok()).unwrap_or_else(|| {
                eprintln!("{usage}");
                std::process::exit(2)
            });
            let (Some(file), Some(path)) = (a.get(5), a.get(6)) else {
                eprintln!("{usage}");
                std::process::exit(2)
            };
            let bodies = if file.ends_with(".jsonl") {
                let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
                    eprintln!("BODY_FILE {file}: {e}");
                    std::process::exit(2)
                });
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| request(path, l.as_bytes()))
                    .collect()
            } else {
                vec![body(5).to_vec()]
            };
            if bodies.is_empty() {
                eprintln!("BODY_FILE {file}: no bodies");
                std::process::exit(2);
            }
            rt.block_on(soak(addr, conns, secs, rate, Arc::new(bodies)));
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
