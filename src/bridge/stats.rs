//! Counters for `/_/stats`: cheap atomics on the hot path.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{Map, Value, json};

/// The kinds of [`crate::protocol::Event`], in a fixed order for counting.
pub const EVENT_KINDS: [&str; 15] = [
    "power_on",
    "device_connect",
    "device_disconnect",
    "encryption_key_required",
    "bridge_log",
    "bridge_command_response",
    "device_command_response",
    "heartbeat",
    "did_print",
    "did_power_on",
    "product_announce",
    "berg_binary_event",
    "berg_packed_event",
    "unknown",
    "malformed",
];

#[derive(Debug, Default)]
pub struct Stats {
    pub connections_accepted: AtomicU64,
    pub upgrades_refused: AtomicU64,
    pub connections_replaced: AtomicU64,
    pub frames_too_big: AtomicU64,
    pub messages: [AtomicU64; EVENT_KINDS.len()],
    pub commands_sent: AtomicU64,
    pub commands_timed_out: AtomicU64,
    /// Commands whose connection closed before they were answered.
    pub commands_orphaned: AtomicU64,
    pub unknown_responses: AtomicU64,
    /// Answers and did_prints that came on another connection than the
    /// command (ignored).
    pub foreign_answers: AtomicU64,
    /// Events naming more bridge addresses than a connection may speak for.
    pub bridges_refused: AtomicU64,
    /// Unclaimed printers forgotten because their bridge had too many.
    pub unclaimed_forgotten: AtomicU64,
    /// Bridges closed for sending nothing, not even a pong.
    pub idle_closed: AtomicU64,
    /// HTTP connections refused because too many were open.
    pub connections_refused: AtomicU64,
    pub keys_sent: AtomicU64,
    pub responses: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn count_message(&self, kind: &str) {
        if let Some(i) = EVENT_KINDS.iter().position(|k| *k == kind) {
            self.messages[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts an answer by its return code; codes outside the known table
    /// share one "other" counter (a bridge can't grow this map).
    pub fn count_response(&self, code: crate::protocol::ReturnCode) {
        let key = match code.name() {
            "unknown" => "other".to_string(),
            name => format!("{}_{name}", code.value()),
        };
        let mut r = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry(key).or_default() += 1;
    }

    /// Answers by return code (`CODE_NAME`, or `other`).
    pub fn responses_snapshot(&self) -> Vec<(String, u64)> {
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub fn messages_total(&self) -> u64 {
        self.messages.iter().map(|m| m.load(Relaxed)).sum()
    }

    pub fn to_json(&self) -> Value {
        let mut by_kind = Map::new();
        for (kind, count) in EVENT_KINDS.iter().zip(&self.messages) {
            by_kind.insert((*kind).into(), count.load(Relaxed).into());
        }
        let responses = self
            .responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        json!({
            "connections_accepted": self.connections_accepted.load(Relaxed),
            "upgrades_refused": self.upgrades_refused.load(Relaxed),
            "connections_replaced": self.connections_replaced.load(Relaxed),
            "frames_too_big": self.frames_too_big.load(Relaxed),
            "messages_received": self.messages_total(),
            "messages_by_kind": by_kind,
            "malformed_messages": self.messages[14].load(Relaxed),
            "unknown_messages": self.messages[13].load(Relaxed),
            "commands_sent": self.commands_sent.load(Relaxed),
            "keys_sent": self.keys_sent.load(Relaxed),
            "commands_timed_out": self.commands_timed_out.load(Relaxed),
            "unknown_responses": self.unknown_responses.load(Relaxed),
            "foreign_answers": self.foreign_answers.load(Relaxed),
            "bridges_refused": self.bridges_refused.load(Relaxed),
            "unclaimed_forgotten": self.unclaimed_forgotten.load(Relaxed),
            "idle_closed": self.idle_closed.load(Relaxed),
            "connections_refused": self.connections_refused.load(Relaxed),
            "responses_by_return_code": responses,
        })
    }
}
