//! `GET /metrics`: the server's numbers in Prometheus text format
//! (prometheus-client).
//!
//! What is counted where it happens lives here as process-wide metrics
//! ([`global`]): render times, store write times, HTTP requests by route
//! class and status. What the server already knows (bridges connected,
//! printers online, heartbeats, commands, messages by state, queue depth) is
//! read when the page is asked for: the bridge layer's counters, and one
//! read of the database.
//!
//! The page is for the machine's own monitoring: it answers only requests
//! from a loopback address that came straight in (no `X-Forwarded-For`: a
//! reverse proxy on the same machine forwards strangers), unless
//! `--metrics-public`.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bridge::Hub;

/// An HTTP request's route class and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// bridge, printkey, api, page, static, health, metrics.
    pub class: String,
    pub status: u16,
}

/// A delivery's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// Messages by state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// Metrics counted where things happen.
pub struct Metrics {
    /// Seconds from the start of a render to its page.
    pub render_seconds: Histogram,
    /// Seconds one database write took on the writer thread.
    pub store_write_seconds: Histogram,
    pub http_requests: Family<HttpLabels, Counter>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        // 5 ms … ~20 s.
        render_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
        // 0.1 ms … ~6.5 s.
        store_write_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 17)),
        http_requests: Family::default(),
    })
}

/// Counts one HTTP request.
pub fn count_request(class: &str, status: u16) {
    global()
        .http_requests
        .get_or_create(&HttpLabels {
            class: class.to_string(),
            status,
        })
        .inc();
}

/// The route class of a path, for [`count_request`]: a handful of values,
/// never the path itself (a client can't grow the label set).
pub fn route_class(path: &str) -> &'static str {
    match path {
        "/api/v1/connection" => "bridge",
        "/healthz" => "health",
        "/metrics" | "/_/stats" => "metrics",
        p if p.starts_with("/printkey/") => "printkey",
        p if p.starts_with("/ext_api/") => "api",
        p if p.starts_with("/static/") || p.starts_with("/assets/") => "static",
        _ => "page",
    }
}

/// What the database says, read once per scrape.
#[derive(Debug, Default, Clone)]
pub struct StoreSnapshot {
    /// Messages by state.
    pub messages: Vec<(String, i64)>,
    /// Printers with at least one message waiting.
    pub printers_with_queue: i64,
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// The page: everything in Prometheus text format.
pub fn render(hub: &Hub, store: &StoreSnapshot, writes_waiting: u64) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &hub.stats;
    let mut r = Registry::with_prefix("sirius");
    r.register(
        "bridges_connected",
        "Bridges connected now",
        gauge(hub.bridges_connected() as i64),
    );
    r.register(
        "printers_online",
        "Printers online now (heard in the last minute through a live bridge)",
        gauge(hub.printers_online() as i64),
    );
    r.register(
        "heartbeats",
        "Printer heartbeats received",
        counter(stats.messages[7].load(Relaxed)),
    );
    r.register(
        "bridge_messages",
        "Messages received from bridges, all kinds",
        counter(stats.messages_total()),
    );
    r.register(
        "commands_sent",
        "Commands sent to bridges",
        counter(stats.commands_sent.load(Relaxed)),
    );
    let outcomes = Family::<OutcomeLabels, Counter>::default();
    let answers = stats.responses_snapshot();
    let ok: u64 = answers
        .iter()
        .filter(|(k, _)| k.as_str() == "0_success")
        .map(|(_, v)| *v)
        .sum();
    let failed: u64 = answers
        .iter()
        .filter(|(k, _)| k.as_str() != "0_success")
        .map(|(_, v)| *v)
        .sum();
    for (outcome, n) in [
        ("answered_ok", ok),
        ("answered_error", failed),
        ("timed_out", stats.commands_timed_out.load(Relaxed)),
        ("connection_closed", stats.commands_orphaned.load(Relaxed)),
        (
            "foreign_answer_ignored",
            stats.foreign_answers.load(Relaxed),
        ),
    ] {
        outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc_by(n);
    }
    r.register(
        "command_outcomes",
        "What became of commands sent to bridges",
        outcomes,
    );
    let states = Family::<StateLabels, Gauge>::default();
    for (state, n) in &store.messages {
        states
            .get_or_create(&StateLabels {
                state: state.clone(),
            })
            .set(*n);
    }
    r.register("messages", "Messages kept, by delivery state", states);
    let queued = store
        .messages
        .iter()
        .filter(|(s, _)| s == "queued")
        .map(|(_, n)| *n)
        .sum::<i64>();
    r.register(
        "queue_depth",
        "Messages waiting for their printer, all printers",
        gauge(queued),
    );
    r.register(
        "printers_with_queue",
        "Printers with at least one message waiting",
        gauge(store.printers_with_queue),
    );
    r.register(
        "store_writes_waiting",
        "Database writes queued for the writer thread",
        gauge(writes_waiting as i64),
    );
    let m = global();
    r.register(
        "render_seconds",
        "Time to render a message to its page",
        m.render_seconds.clone(),
    );
    r.register(
        "store_write_seconds",
        "Time one database write took",
        m.store_write_seconds.clone(),
    );
    r.register(
        "http_requests",
        "HTTP requests by route class and status",
        m.http_requests.clone(),
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
        tracing::error!("the metrics page could not be written: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_classes_are_few() {
        assert_eq!(route_class("/api/v1/connection"), "bridge");
        assert_eq!(route_class("/printkey/abc"), "printkey");
        assert_eq!(route_class("/ext_api/v1/printer/1/print_html"), "api");
        assert_eq!(route_class("/printer/3/print"), "page");
        assert_eq!(route_class("/anything/a/client/invents"), "page");
    }
}
