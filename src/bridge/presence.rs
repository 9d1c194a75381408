//! Who is online, in memory (PROTOCOL §5).
//!
//! A printer is online while the bridge it last spoke through is connected
//! and it was heard from in the last 60 seconds. Heartbeats only touch this
//! map; the store learns "last heard" from a periodic flush, never from a
//! heartbeat.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::protocol::{BridgeAddress, DeviceAddress, events::PowerOnInfo};

/// What a session's writer sends on the websocket.
#[derive(Debug)]
///
/// Boxed strings keep it at 24 bytes: each connection's queue allocates
/// room for 32 of them at once.
pub enum Outgoing {
    /// One JSON command.
    Text(Box<str>),
    /// A websocket ping (the server checks the bridge is still there).
    Ping,
    /// Close the connection with this code and reason, after what is queued.
    Close(u16, Box<str>),
}

/// A live bridge connection.
#[derive(Debug)]
pub struct BridgeConn {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Outgoing>,
    pub remote_ip: String,
    /// Unix seconds.
    pub connected_at: i64,
    pub info: Option<PowerOnInfo>,
}

/// What we know of a printer in this process.
#[derive(Debug, Clone)]
pub struct DeviceState {
    /// Whether its hardware xor had a claim when it was first heard.
    pub claimed: bool,
    /// For an unclaimed printer: the bridge whose places it takes.
    pub unclaimed_on: Option<BridgeAddress>,
    pub bridge: BridgeAddress,
    pub conn_id: u64,
    pub last_heard: Instant,
    /// Unix seconds of `last_heard`.
    pub last_heard_unix: i64,
    pub online: bool,
    /// The `last_heard_unix` last written to the store.
    pub flushed_unix: i64,
    /// When its link key was last sent (at most once per 10 s).
    pub key_sent: Option<Instant>,
}

/// Bridges by address and printers by address.
#[derive(Debug, Default)]
pub struct Presence {
    pub bridges: HashMap<BridgeAddress, BridgeConn>,
    pub devices: HashMap<DeviceAddress, DeviceState>,
    /// The unclaimed printers remembered, by the bridge they were first
    /// heard through (at most the limit each).
    unclaimed: HashMap<BridgeAddress, Vec<DeviceAddress>>,
}

/// What the layers above hear about printers: coming online, going
/// offline, and reporting that they printed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Online(DeviceAddress),
    Offline(DeviceAddress),
    /// did_print: the printer printed the delivery with this command id.
    Printed {
        device: DeviceAddress,
        print_id: u32,
    },
}

impl Presence {
    /// Whether this connection is the live one for its bridge.
    pub fn is_live(&self, bridge: BridgeAddress, conn_id: u64) -> bool {
        self.bridges
            .get(&bridge)
            .is_some_and(|b| b.conn_id == conn_id)
    }

    /// Remembers a device heard for the first time (not yet heard from: call
    /// [`Presence::touch`] next). An unclaimed one takes a place among its
    /// bridge's `max_unclaimed`; when they are all taken, the one heard
    /// from longest ago is forgotten and returned.
    pub fn insert(
        &mut self,
        device: DeviceAddress,
        bridge: BridgeAddress,
        conn_id: u64,
        claimed: bool,
        max_unclaimed: usize,
    ) -> Option<DeviceAddress> {
        if self.devices.contains_key(&device) {
            return None;
        }
        let mut forgotten = None;
        if !claimed {
            let list = self.unclaimed.entry(bridge).or_default();
            if list.len() >= max_unclaimed.max(1) {
                let devices = &self.devices;
                let oldest = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, d)| devices.get(d).map(|s| s.last_heard))
                    .map(|(i, _)| i);
                if let Some(i) = oldest {
                    let old = list.swap_remove(i);
                    self.devices.remove(&old);
                    forgotten = Some(old);
                }
            }
            list.push(device);
        }
        let now = Instant::now();
        self.devices.insert(
            device,
            DeviceState {
                claimed,
                unclaimed_on: (!claimed).then_some(bridge),
                bridge,
                conn_id,
                last_heard: now,
                last_heard_unix: 0,
                online: false,
                flushed_unix: 0,
                key_sent: None,
            },
        );
        forgotten
    }

    /// Lets go of printers that are offline, written to the store, and
    /// silent for longer than `after`: memory holds what is live.
    pub fn forget_idle(&mut self, now: Instant, after: Duration) {
        let mut gone = Vec::new();
        self.devices.retain(|addr, s| {
            let keep = s.online
                || s.last_heard_unix > s.flushed_unix
                || now.duration_since(s.last_heard) < after;
            if !keep && let Some(bridge) = s.unclaimed_on {
                gone.push((*addr, bridge));
            }
            keep
        });
        for (addr, bridge) in gone {
            self.forget_unclaimed(addr, bridge);
        }
    }

    fn forget_unclaimed(&mut self, device: DeviceAddress, bridge: BridgeAddress) {
        if let Some(list) = self.unclaimed.get_mut(&bridge) {
            list.retain(|d| *d != device);
            if list.is_empty() {
                self.unclaimed.remove(&bridge);
            }
        }
    }

    /// Unclaimed printers remembered, over all bridges.
    pub fn unclaimed_count(&self) -> usize {
        self.unclaimed.values().map(Vec::len).sum()
    }

    /// Marks a known device as heard from now, through `bridge` on
    /// connection `conn_id`. Returns true if it just came online.
    pub fn touch(
        &mut self,
        device: DeviceAddress,
        bridge: BridgeAddress,
        conn_id: u64,
        now: Instant,
        now_unix: i64,
    ) -> Option<bool> {
        let live = self.is_live(bridge, conn_id);
        let state = self.devices.get_mut(&device)?;
        let was_online = state.online;
        state.bridge = bridge;
        state.conn_id = conn_id;
        state.last_heard = now;
        state.last_heard_unix = now_unix;
        state.online = live;
        Some(live && !was_online)
    }

    /// The bridge connection a device is reachable through right now.
    pub fn route(&self, device: DeviceAddress) -> Option<(BridgeAddress, &BridgeConn)> {
        let state = self.devices.get(&device)?;
        if !state.online {
            return None;
        }
        let conn = self.bridges.get(&state.bridge)?;
        (conn.conn_id == state.conn_id).then_some((state.bridge, conn))
    }

    /// Devices silent for longer than `timeout` go offline.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Change> {
        let mut changes = Vec::new();
        for (addr, state) in &mut self.devices {
            if state.online && now.duration_since(state.last_heard) > timeout {
                state.online = false;
                changes.push(Change::Offline(*addr));
            }
        }
        changes
    }

    /// A bridge connection ended: every address it announced is gone (a
    /// connection may have carried more than one), and its devices go
    /// offline at once.
    pub fn connection_closed(&mut self, conn_id: u64) -> Vec<Change> {
        self.bridges.retain(|_, c| c.conn_id != conn_id);
        let mut changes = Vec::new();
        for (addr, state) in &mut self.devices {
            if state.conn_id == conn_id && state.online {
                state.online = false;
                changes.push(Change::Offline(*addr));
            }
        }
        changes
    }

    pub fn online_count(&self) -> usize {
        self.devices.values().filter(|d| d.online).count()
    }

    /// Printers whose last-heard time moved since the last flush, and either
    /// went offline or were last flushed `every` ago. Marks them flushed.
    pub fn take_flush(
        &mut self,
        now_unix: i64,
        every: Duration,
        all: bool,
    ) -> Vec<(DeviceAddress, i64, Option<BridgeAddress>)> {
        let every = every.as_secs() as i64;
        let mut batch = Vec::new();
        for (addr, state) in &mut self.devices {
            if state.last_heard_unix > state.flushed_unix
                && (all || !state.online || now_unix - state.flushed_unix >= every)
            {
                state.flushed_unix = state.last_heard_unix;
                batch.push((*addr, state.last_heard_unix, Some(state.bridge)));
            }
        }
        batch
    }
}
