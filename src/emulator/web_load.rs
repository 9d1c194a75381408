//! A load generator for the web app, as people use it: signed-in browsers
//! viewing pages, the compose page's live preview, and many people signing
//! in at once. Each worker is one browser: its own cookies, one kept-alive
//! HTTP/1.1 connection (hyper's client connection, so it measures the
//! server, not a client library). Latency is from sending a request to the
//! last byte of its answer, over loopback: an upper bound of the time the
//! server spent.
//!
//! * `pages`: each worker signs in once, then views `/` and the printer
//!   pages linked from it in turn.
//! * `preview`: each worker signs in once, then posts a typical message to
//!   the first printer's `/printer/ID/preview` again and again.
//! * `logins`: each worker signs in again and again with a fresh cookie
//!   jar (the password hash is argon2: this is the expensive path).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::posts::{Target, parse_url, quantile};

/// What the load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebLoadMode {
    /// Signed-in page views: `/` and printer pages.
    Pages,
    /// The compose page's preview of a typical message.
    Preview,
    /// Signing in, again and again.
    Logins,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct WebLoadOptions {
    /// The server, e.g. http://127.0.0.1:5002.
    pub url: String,
    pub username: String,
    pub password: String,
    pub mode: WebLoadMode,
    /// Browsers at once.
    pub concurrency: usize,
    /// How long to keep going.
    pub duration: Duration,
    /// Give up on one request after this long.
    pub timeout: Duration,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct WebLoadReport {
    pub mode: String,
    /// Measured requests (sign-ins before a `pages` or `preview` load are
    /// not counted).
    pub requests: usize,
    pub by_status: BTreeMap<u16, usize>,
    pub transport_errors: usize,
    pub first_problem: Option<String>,
    pub latency_p50: Option<Duration>,
    pub latency_p90: Option<Duration>,
    pub latency_p99: Option<Duration>,
    pub latency_max: Option<Duration>,
    /// Bytes of the answers' bodies, on average.
    pub mean_body_bytes: usize,
    pub elapsed: Duration,
}

impl WebLoadReport {
    /// Measured requests per second.
    pub fn per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.requests as f64 / s
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        json!({
            "mode": self.mode,
            "requests": self.requests,
            "per_second": self.per_second(),
            "by_status": self.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": self.transport_errors,
            "first_problem": self.first_problem,
            "latency_p50_ms": ms(self.latency_p50),
            "latency_p90_ms": ms(self.latency_p90),
            "latency_p99_ms": ms(self.latency_p99),
            "latency_max_ms": ms(self.latency_max),
            "mean_body_bytes": self.mean_body_bytes,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }
}

impl fmt::Display for WebLoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        writeln!(
            f,
            "{}: {} requests in {:.1} s ({:.0}/s), mean answer {} bytes",
            self.mode,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.mean_body_bytes
        )?;
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(f, "answers: {}", statuses.join(", "))?;
        writeln!(
            f,
            "latency: p50 {}, p90 {}, p99 {}, max {}",
            ms(self.latency_p50),
            ms(self.latency_p90),
            ms(self.latency_p99),
            ms(self.latency_max)
        )?;
        if self.transport_errors > 0 {
            writeln!(
                f,
                "{} requests failed; the first: {}",
                self.transport_errors,
                self.first_problem.as_deref().unwrap_or("?")
            )?;
        }
        Ok(())
    }
}

/// One browser: cookies, the last form token, a kept-alive connection.
struct Client {
    host: String,
    port: u16,
    cookies: BTreeMap<String, String>,
    csrf: Option<String>,
    conn: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

/// An answer: its status and body.
struct Answer {
    status: u16,
    body: Bytes,
}

impl Client {
    fn new(host: &str, port: u16, timeout: Duration) -> Client {
        Client {
            host: host.to_string(),
            port,
            cookies: BTreeMap::new(),
            csrf: None,
            conn: None,
            timeout,
        }
    }

    async fn connection(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .with_context(|| format!("could not connect to {}:{}", self.host, self.port))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.conn = Some(sender);
        }
        Ok(self.conn.as_mut().expect("just made"))
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.host, self.port));
        if !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", cookie.join("; "));
        }
        if let Some(ct) = content_type {
            req = req
                .header("content-type", ct)
                .header("origin", format!("http://{}:{}", self.host, self.port))
                .header("sec-fetch-site", "same-origin");
        }
        let req = req.body(Full::new(body))?;
        let timeout = self.timeout;
        let conn = self.connection().await?;
        conn.ready().await?;
        let resp = tokio::time::timeout(timeout, async {
            let resp = conn.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok((parts, body))
        })
        .await
        .context("no answer in time");
        let (parts, body) = match resp {
            Ok(Ok(r)) => r,
            Ok(Err(e)) | Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        for sc in parts.headers.get_all("set-cookie") {
            let Ok(sc) = sc.to_str() else { continue };
            let first = sc.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() || sc.to_ascii_lowercase().contains("max-age=0") {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies.insert(k.trim().into(), v.trim().into());
                }
            }
        }
        if let Some(token) = form_token(&body) {
            self.csrf = Some(token);
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            body,
        })
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.send("GET", path, None, Bytes::new()).await
    }

    /// Signs in with a fresh cookie jar; the answer of the `POST /login`.
    async fn sign_in(&mut self, username: &str, password: &str) -> anyhow::Result<Answer> {
        self.cookies.clear();
        self.csrf = None;
        let page = self.get("/login").await?;
        if page.status != 200 {
            bail!("GET /login answered {}", page.status);
        }
        let token = self.csrf.clone().unwrap_or_default();
        let body = serde_urlencoded::to_string([
            ("username", username),
            ("password", password),
            ("csrf", &token),
        ])?;
        self.send(
            "POST",
            "/login",
            Some("application/x-www-form-urlencoded"),
            Bytes::from(body),
        )
        .await
    }
}

/// The value of the first `name="csrf"` input on a page.
fn form_token(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let token: String = text[at..].chars().take_while(|c| *c != '"').collect();
    (!token.is_empty()).then_some(token)
}

/// Printer ids linked from a page (`/printer/ID"`), in order, once each.
fn printer_ids(body: &[u8]) -> Vec<i64> {
    let text = String::from_utf8_lossy(body);
    let mut ids = Vec::new();
    for part in text.split("/printer/").skip(1) {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        let ends = part[digits.len()..].starts_with('"');
        if let (true, Ok(id)) = (ends, digits.parse::<i64>())
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// A typical message: a few lines of text.
const TYPICAL_MESSAGE: &str = "Good morning! Remember the bins go out tonight, and there's soup in the fridge for lunch. Back at six. ❤️";

fn preview_body(csrf: &str) -> (String, Bytes) {
    let boundary = "siriusWebLoadBoundary0x7d3a";
    let mut body = String::new();
    for (k, v) in [
        ("csrf", csrf),
        ("message", TYPICAL_MESSAGE),
        ("face", "default"),
        ("font", "sans"),
        ("picture", "photo"),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

type Samples = Vec<(Result<(u16, usize), String>, Duration)>;

/// One worker: sets up its browser, then measures until the deadline.
async fn worker(opts: Arc<WebLoadOptions>, host: String, port: u16, deadline: Instant) -> Samples {
    let mut out = Vec::new();
    let mut client = Client::new(&host, port, opts.timeout);
    let setup = async {
        if opts.mode == WebLoadMode::Logins {
            return anyhow::Ok(Vec::new());
        }
        let done = client.sign_in(&opts.username, &opts.password).await?;
        if done.status != 303 {
            bail!(
                "signing in as {} answered {} (is the password right?)",
                opts.username,
                done.status
            );
        }
        let home = client.get("/").await?;
        let ids = printer_ids(&home.body);
        if ids.is_empty() {
            bail!("{} has no printers to look at", opts.username);
        }
        if opts.mode == WebLoadMode::Preview {
            client.get(&format!("/printer/{}/print", ids[0])).await?;
        }
        Ok(ids)
    };
    let ids = match setup.await {
        Ok(ids) => ids,
        Err(e) => {
            out.push((Err(format!("{e:#}")), Duration::ZERO));
            return out;
        }
    };
    let mut i = 0usize;
    while Instant::now() < deadline {
        let t = Instant::now();
        let result = match opts.mode {
            WebLoadMode::Pages => {
                let path = if i.is_multiple_of(2) {
                    "/".to_string()
                } else {
                    format!("/printer/{}", ids[(i / 2) % ids.len()])
                };
                client.get(&path).await
            }
            WebLoadMode::Preview => {
                let (ct, body) = preview_body(client.csrf.as_deref().unwrap_or(""));
                client
                    .send(
                        "POST",
                        &format!("/printer/{}/preview", ids[0]),
                        Some(&ct),
                        body,
                    )
                    .await
            }
            WebLoadMode::Logins => client.sign_in(&opts.username, &opts.password).await,
        };
        out.push((
            result
                .map(|a| (a.status, a.body.len()))
                .map_err(|e| format!("{e:#}")),
            t.elapsed(),
        ));
        i += 1;
    }
    out
}

/// Runs the load and reports.
pub async fn run_web_load(opts: WebLoadOptions) -> anyhow::Result<WebLoadReport> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let Target { host, port, .. } = parse_url(&opts.url)?;
    let opts = Arc::new(opts);
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency {
        workers.spawn(worker(Arc::clone(&opts), host.clone(), port, deadline));
    }
    let mut report = WebLoadReport {
        mode: format!("{:?}", opts.mode).to_lowercase(),
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut bytes = 0usize;
    while let Some(done) = workers.join_next().await {
        for (result, took) in done.context("a browser task failed")? {
            match result {
                Ok((status, len)) => {
                    report.requests += 1;
                    *report.by_status.entry(status).or_default() += 1;
                    latencies.push(took);
                    bytes += len;
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
    report.latency_p90 = quantile(&latencies, 0.9);
    report.latency_p99 = quantile(&latencies, 0.99);
    report.latency_max = latencies.last().copied();
    report.mean_body_bytes = bytes.checked_div(report.requests).unwrap_or(0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_links_and_form_tokens_are_found() {
        let page = br#"<a href="/printer/12">A</a> <a href="/printer/12/print">p</a>
            <a href="/printer/7">B</a><form><input type="hidden" name="csrf" value="tok123"></form>"#;
        assert_eq!(printer_ids(page), vec![12, 7]);
        assert_eq!(form_token(page).as_deref(), Some("tok123"));
        assert_eq!(form_token(b"<p>no form</p>"), None);
    }
}
