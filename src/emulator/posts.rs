//! A print-key load generator: many concurrent `POST`s to one print key,
//! as a busy phone app or script would send them, with the answers counted
//! and timed. Plain HTTP/1.1 over TCP (hyper's client connection), so it
//! measures the server, not a client library.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct PostLoadOptions {
    /// The print key's URL, e.g. http://127.0.0.1:5002/printkey/SECRET.
    pub url: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests in all.
    pub count: usize,
    /// Bodies, sent in turn: (content type, bytes).
    pub bodies: Vec<(String, Vec<u8>)>,
    /// Give up on one request after this long.
    pub timeout: Duration,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct PostLoadReport {
    pub sent: usize,
    pub by_status: BTreeMap<u16, usize>,
    pub transport_errors: usize,
    pub first_problem: Option<String>,
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
    pub latency_max: Option<Duration>,
    pub elapsed: Duration,
}

impl PostLoadReport {
    pub fn to_json(&self) -> Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        json!({
            "sent": self.sent,
            "by_status": self.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": self.transport_errors,
            "first_problem": self.first_problem,
            "latency_p50_ms": ms(self.latency_p50),
            "latency_p99_ms": ms(self.latency_p99),
            "latency_max_ms": ms(self.latency_max),
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }
}

impl fmt::Display for PostLoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        writeln!(
            f,
            "{} requests in {:.1} s",
            self.sent,
            self.elapsed.as_secs_f64()
        )?;
        for (status, n) in &self.by_status {
            writeln!(f, "  {status}: {n}")?;
        }
        writeln!(f, "  transport errors: {}", self.transport_errors)?;
        writeln!(
            f,
            "  latency p50 {} p99 {} max {}",
            ms(self.latency_p50),
            ms(self.latency_p99),
            ms(self.latency_max)
        )?;
        if let Some(p) = &self.first_problem {
            writeln!(f, "  first problem: {p}")?;
        }
        Ok(())
    }
}

/// Where requests go: an `http://HOST[:PORT]/PATH` URL, split.
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

pub(crate) fn parse_url(url: &str) -> anyhow::Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .context("the URL must start with http:// (https is not supported here)")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().context("bad port in the URL")?),
        None => (authority.to_string(), 80),
    };
    Ok(Target {
        host,
        port,
        path: format!("/{path}"),
    })
}

/// One POST. Each request names its own sender (`from=load-N`), so the
/// server's de-duplication of the same content within 30 s does not fold
/// a load of repeated bodies into one print.
async fn one(
    target: &Target,
    index: usize,
    ctype: &str,
    body: Bytes,
    timeout: Duration,
) -> anyhow::Result<u16> {
    let sep = if target.path.contains('?') { '&' } else { '?' };
    let path = format!("{}{sep}from=load-{index}", target.path);
    let work = async {
        let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::post(&path)
            .header("host", format!("{}:{}", target.host, target.port))
            .header("content-type", ctype)
            .body(Full::new(body))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        anyhow::Ok(status)
    };
    tokio::time::timeout(timeout, work)
        .await
        .context("no answer in time")?
}

/// Sends `count` POSTs, `concurrency` at a time, and reports.
pub async fn run_post_load(opts: PostLoadOptions) -> anyhow::Result<PostLoadReport> {
    if opts.bodies.is_empty() || opts.concurrency == 0 || opts.count == 0 {
        bail!("nothing to send: give at least one body, a concurrency and a count above 0");
    }
    let target = Arc::new(parse_url(&opts.url)?);
    let bodies: Arc<Vec<(String, Bytes)>> = Arc::new(
        opts.bodies
            .iter()
            .map(|(t, b)| (t.clone(), Bytes::from(b.clone())))
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency.min(opts.count) {
        let (target, bodies, next) = (Arc::clone(&target), Arc::clone(&bodies), Arc::clone(&next));
        let (count, timeout) = (opts.count, opts.timeout);
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let (ctype, body) = &bodies[i % bodies.len()];
                let t = Instant::now();
                let r = one(&target, i, ctype, body.clone(), timeout).await;
                results.push((r.map_err(|e| format!("{e:#}")), t.elapsed()));
            }
            results
        });
    }
    let mut report = PostLoadReport::default();
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        for (result, took) in done.context("a request task failed")? {
            report.sent += 1;
            match result {
                Ok(status) => {
                    *report.by_status.entry(status).or_default() += 1;
                    latencies.push(took);
                }
                Err(e) => {
                    report.transport_errors += 1;
                    report.first_problem.get_or_insert(e);
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    latencies.sort();
    report.latency_p50 = quantile(&latencies, 0.5);
    report.latency_p99 = quantile(&latencies, 0.99);
    report.latency_max = latencies.last().copied();
    Ok(report)
}

/// The `q` quantile (0 to 1) of sorted latencies; `None` when there are none.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize])
}
