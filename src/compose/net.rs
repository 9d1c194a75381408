//! Everything a render may load, and nothing more: the net provider Blitz
//! is given for one document.
//!
//! `data:` URIs are always served (without one, Blitz loads no `<img>` at
//! all, not even inline pictures). Remote `http(s)` resources are fetched
//! only when they are pictures the document shows (`<img src>`, or a
//! `url()` in a `background`, `list-style` or `content` declaration), never
//! stylesheets, fonts or frames; at most [`MAX_IMAGES`] per message, each
//! within 5 s and 5 MiB. Under [`FetchPolicy::Public`] the *resolved*
//! addresses are checked (so DNS tricks and redirects cannot reach the
//! server's own network): loopback, private, link-local, CGNAT,
//! unspecified, multicast and documentation ranges are refused. A refused or
//! failed picture simply does not load; the reason is logged.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use blitz_traits::net::{Bytes, NetHandler, NetProvider, Request};

/// Which remote pictures a render may fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchPolicy {
    /// Public internet addresses only (the default).
    #[default]
    Public,
    /// Any address, private networks and loopback included.
    All,
    /// No remote fetches at all; `data:` URIs still work.
    None,
}

impl std::str::FromStr for FetchPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(FetchPolicy::Public),
            "all" => Ok(FetchPolicy::All),
            "none" => Ok(FetchPolicy::None),
            _ => Err(format!("{s:?}: expected public, all or none")),
        }
    }
}

/// Most remote pictures fetched for one message.
pub const MAX_IMAGES: usize = 20;
/// Longest a remote picture may take, and its largest size.
pub const IMAGE_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

/// Whether an address is one a public fetch may reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64 (embeds v4)
                || (seg[0] == 0 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0 && seg[4] == 0)) // v4-compatible and friends
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// A ureq resolver that drops addresses the policy refuses, and fails when
/// none is left. ureq connects only to what the resolver returns, and asks
/// it again for every redirect.
#[derive(Debug)]
struct CheckedResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        let mut kept = self.inner.empty();
        let mut refused = Vec::new();
        for addr in all.iter() {
            if is_public(addr.ip()) {
                kept.push(*addr);
            } else {
                refused.push(addr.ip().to_string());
            }
        }
        if kept.is_empty() {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} resolves to a private or local address ({}); refused by --fetch-images=public",
                    uri.host().unwrap_or("?"),
                    refused.join(", ")
                ),
            )));
        }
        Ok(kept)
    }
}

/// Builds the HTTP client for a policy (`None` fetches nothing).
pub(crate) fn http_agent(policy: FetchPolicy) -> Option<ureq::Agent> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(IMAGE_TIMEOUT))
        .max_redirects(5)
        .proxy(None)
        .http_status_as_error(true)
        .user_agent("sirius (Little Printer server)")
        .build();
    match policy {
        FetchPolicy::None => None,
        FetchPolicy::All => Some(ureq::Agent::new_with_config(config)),
        FetchPolicy::Public => Some(ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CheckedResolver {
                inner: Default::default(),
            },
        )),
    }
}

/// Fetches one remote picture with the limits.
pub(crate) fn fetch_image(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_IMAGE_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Decodes a `data:` URI (base64 or percent-encoded).
pub fn decode_data_uri(uri: &str) -> Option<Vec<u8>> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let bytes = percent_decode(data);
    if meta.to_ascii_lowercase().ends_with(";base64") {
        let clean: Vec<u8> = bytes
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let trimmed = clean.strip_suffix(b"==").unwrap_or(&clean);
        let trimmed = trimmed.strip_suffix(b"=").unwrap_or(trimmed);
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .ok()
    } else {
        Some(bytes)
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

struct Pending {
    requests: Vec<(Request, Box<dyn NetHandler>)>,
    /// Remote URLs the document shows as pictures; `None` until scanned.
    allowed: Option<HashSet<String>>,
    in_flight: usize,
    started: usize,
    closed: bool,
}

/// The net provider of one document.
pub(crate) struct DocumentNet {
    agent: Option<ureq::Agent>,
    state: Mutex<Pending>,
    idle: Condvar,
}

impl DocumentNet {
    pub(crate) fn new(agent: Option<ureq::Agent>) -> Arc<DocumentNet> {
        Arc::new(DocumentNet {
            agent,
            state: Mutex::new(Pending {
                requests: Vec::new(),
                allowed: None,
                in_flight: 0,
                started: 0,
                closed: false,
            }),
            idle: Condvar::new(),
        })
    }

    /// Says which remote URLs are pictures of the document, and starts the
    /// fetches that were waiting for that.
    pub(crate) fn allow(self: &Arc<Self>, urls: HashSet<String>) {
        let waiting = {
            let mut st = self.state.lock().unwrap();
            st.allowed = Some(urls);
            std::mem::take(&mut st.requests)
        };
        for (request, handler) in waiting {
            self.start(request, handler);
        }
    }

    /// Waits until no fetch is running, or until `deadline`. Returns
    /// whether everything finished.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut st = self.state.lock().unwrap();
        while st.in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.idle.wait_timeout(st, deadline - now).unwrap().0;
        }
        true
    }

    /// Stops serving: late answers are dropped.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap().closed = true;
    }

    fn start(self: &Arc<Self>, request: Request, handler: Box<dyn NetHandler>) {
        let url = request.url.to_string();
        let Some(agent) = self.agent.clone() else {
            tracing::info!(url, "picture not fetched: fetching remote images is off");
            return;
        };
        {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                return;
            }
            let shown = st.allowed.as_ref().is_some_and(|a| a.contains(&url));
            if !shown {
                tracing::info!(
                    url,
                    "not fetched: only pictures are loaded, never stylesheets, fonts or frames"
                );
                return;
            }
            if st.started >= MAX_IMAGES {
                tracing::info!(url, "picture not fetched: at most {MAX_IMAGES} per message");
                return;
            }
            st.started += 1;
            st.in_flight += 1;
        }
        let this = Arc::clone(self);
        std::thread::spawn(move || {
            let result = fetch_image(&agent, &url);
            // Hand the bytes over before counting the fetch as finished, so
            // the render loop finds them when it wakes.
            let closed = this.state.lock().unwrap().closed;
            match result {
                Ok(bytes) if !closed => handler.bytes(url, Bytes::from(bytes)),
                Ok(_) => tracing::info!(url, "picture arrived after the render went on"),
                Err(e) => tracing::info!(url, error = e, "picture not loaded"),
            }
            this.state.lock().unwrap().in_flight -= 1;
            this.idle.notify_all();
        });
    }
}

impl NetProvider for DocumentNet {
    fn fetch(&self, _doc_id: usize, request: Request, handler: Box<dyn NetHandler>) {
        match request.url.scheme() {
            "data" => match decode_data_uri(request.url.as_str()) {
                Some(bytes) => handler.bytes(request.url.to_string(), Bytes::from(bytes)),
                None => tracing::info!("a data: URI could not be decoded"),
            },
            "http" | "https" => {
                let mut st = self.state.lock().unwrap();
                if st.allowed.is_none() {
                    st.requests.push((request, handler));
                } else {
                    drop(st);
                    // `start` needs the Arc; the document holds us as one.
                    self.start_from_ref(request, handler);
                }
            }
            other => tracing::info!(scheme = other, "not fetched: only data:, http: and https:"),
        }
    }
}

impl DocumentNet {
    fn start_from_ref(&self, request: Request, handler: Box<dyn NetHandler>) {
        // Requests after the scan (layout found a background picture late)
        // are queued and started by the render loop through `allow_more`.
        self.state.lock().unwrap().requests.push((request, handler));
    }

    /// Starts requests that arrived after [`allow`](Self::allow).
    pub(crate) fn start_queued(self: &Arc<Self>) -> bool {
        let waiting = std::mem::take(&mut self.state.lock().unwrap().requests);
        let any = !waiting.is_empty();
        for (request, handler) in waiting {
            self.start(request, handler);
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn data_uris() {
        assert_eq!(decode_data_uri("data:,a%20b").unwrap(), b"a b");
        assert_eq!(
            decode_data_uri("data:image/png;base64,aGVs bG8=").unwrap(),
            b"hello"
        );
        assert!(decode_data_uri("data:image/png;base64").is_none());
    }
}
