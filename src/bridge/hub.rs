//! The hub: every live bridge connection, the presence of every printer,
//! and the commands in flight. Sessions feed it events; the layers above
//! send commands through it and learn their fate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use super::presence::{BridgeConn, Change, DeviceState, Outgoing, Presence};
use super::stats::Stats;
use crate::protocol::commands::add_device_encryption_key;
use crate::protocol::events::LogRecord;
use crate::protocol::{BridgeAddress, DeviceAddress, Event, ReturnCode};
use crate::store::Store;

/// Timings of the bridge layer. Defaults follow PROTOCOL §5 and §6; tests
/// shorten them.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// A printer not heard from for this long is offline.
    pub presence_timeout: Duration,
    /// How often silent printers are expired and last-heard times flushed.
    pub sweep_interval: Duration,
    /// How often a printer's last-heard time is written to the store.
    pub flush_interval: Duration,
    /// A command with no answer after this long has timed out.
    pub command_timeout: Duration,
    /// Link keys are sent at most this often per printer.
    pub key_resend_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            presence_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(5),
            flush_interval: Duration::from_secs(60),
            command_timeout: Duration::from_secs(60),
            key_resend_interval: Duration::from_secs(10),
        }
    }
}

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandFate {
    /// The bridge answered with this return code.
    Answered(ReturnCode),
    /// No answer within the command timeout, on a connection that stayed up.
    TimedOut,
    /// The connection it was sent on closed before an answer came: it can
    /// never be answered.
    ConnectionClosed,
}

/// Why a command could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("printer {0} is offline (no live bridge has heard from it in the last minute)")]
    Offline(DeviceAddress),
    #[error(
        "the bridge of printer {0} is not taking commands (its connection is backed up or closing)"
    )]
    BridgeBusy(DeviceAddress),
}

/// A command on its way: its id, and where its fate will arrive.
#[derive(Debug)]
pub struct Dispatched {
    pub command_id: u32,
    pub bridge: BridgeAddress,
    pub fate: oneshot::Receiver<CommandFate>,
}

struct Pending {
    conn_id: u64,
    tx: oneshot::Sender<CommandFate>,
}

struct CommandIds {
    next: u32,
    reserved_up_to: u32,
}

/// How many command ids are reserved in the store at a time, so that ids
/// stay unique across restarts without a write per id.
const ID_BLOCK: u32 = 1000;

pub struct Hub {
    pub store: Arc<Store>,
    pub config: HubConfig,
    pub stats: Stats,
    presence: Mutex<Presence>,
    ids: Mutex<CommandIds>,
    pending: Mutex<HashMap<u32, Pending>>,
    next_conn_id: AtomicU64,
    /// Live websocket sessions (hyper no longer sees upgraded connections).
    sessions: AtomicUsize,
    sessions_done: Notify,
    changes: broadcast::Sender<Change>,
    started: Instant,
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Hub {
    pub fn new(store: Arc<Store>, config: HubConfig) -> anyhow::Result<Arc<Hub>> {
        let high = store.command_id_high_water()?;
        let next = high.checked_add(1).unwrap_or(1).max(1);
        let (changes, _) = broadcast::channel(1024);
        Ok(Arc::new(Hub {
            store,
            config,
            stats: Stats::default(),
            presence: Mutex::new(Presence::default()),
            ids: Mutex::new(CommandIds {
                next,
                reserved_up_to: high,
            }),
            pending: Mutex::new(HashMap::new()),
            next_conn_id: AtomicU64::new(1),
            sessions: AtomicUsize::new(0),
            sessions_done: Notify::new(),
            changes,
            started: Instant::now(),
        }))
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn presence(&self) -> MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Printers coming online, going offline and printing, for the
    /// delivery queue.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn announce(&self, changes: Vec<Change>) {
        for c in changes {
            let _ = self.changes.send(c);
        }
    }

    // ----- sessions -------------------------------------------------------

    pub fn new_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Relaxed)
    }

    pub fn session_started(&self) {
        self.sessions.fetch_add(1, Relaxed);
    }

    pub fn session_ended(&self) {
        self.sessions.fetch_sub(1, Relaxed);
        self.sessions_done.notify_waiters();
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.load(Relaxed)
    }

    /// Waits until every websocket session has ended, or `limit` passes.
    pub async fn wait_sessions_ended(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.sessions_done.notified();
            if self.live_sessions() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.live_sessions() == 0;
            }
        }
    }

    /// Asks every bridge session to close with a close frame.
    pub fn close_all(&self, reason: &str) {
        let p = self.presence();
        for conn in p.bridges.values() {
            let _ = conn.tx.try_send(Outgoing::Close(1001, reason.to_string()));
        }
    }

    /// A connection announced (or first used) a bridge address. A newer
    /// connection from the same bridge replaces the older one.
    pub fn register(
        &self,
        bridge: BridgeAddress,
        conn_id: u64,
        tx: &mpsc::Sender<Outgoing>,
        remote_ip: &str,
    ) {
        let now = unix_now();
        let old = {
            let mut p = self.presence();
            if p.is_live(bridge, conn_id) {
                return;
            }
            p.bridges.insert(
                bridge,
                BridgeConn {
                    conn_id,
                    tx: tx.clone(),
                    remote_ip: remote_ip.to_string(),
                    connected_at: now,
                    info: None,
                },
            )
        };
        if let Some(old) = old {
            self.stats.connections_replaced.fetch_add(1, Relaxed);
            tracing::info!(%bridge, "bridge reconnected; closing its older connection");
            let _ = old.tx.try_send(Outgoing::Close(
                1000,
                "replaced by a newer connection from the same bridge".into(),
            ));
        } else {
            tracing::info!(%bridge, remote_ip, "bridge connected");
        }
        if let Err(e) = self.store.record_bridge_seen(bridge, Some(remote_ip), now) {
            tracing::error!(%bridge, "could not record the bridge in the database: {e}");
        }
    }

    /// A connection ended: its printers go offline at once, their commands
    /// in flight can never be answered, and last-heard times are written.
    pub fn connection_closed(&self, bridge: Option<BridgeAddress>, conn_id: u64) {
        let changes = self.presence().connection_closed(conn_id);
        if let Some(b) = bridge {
            tracing::info!(bridge = %b, printers_offline = changes.len(), "bridge disconnected");
        }
        let orphans: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<u32> = pending
                .iter()
                .filter(|(_, p)| p.conn_id == conn_id)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in orphans {
            let _ = p.tx.send(CommandFate::ConnectionClosed);
        }
        self.announce(changes);
        self.flush(false);
    }

    // ----- events ---------------------------------------------------------

    /// Handles one decoded event from connection `conn_id`.
    pub fn handle_event(
        self: &Arc<Self>,
        event: &Event,
        conn_id: u64,
        tx: &mpsc::Sender<Outgoing>,
        remote_ip: &str,
    ) {
        let kind = event.kind();
        self.stats.count_message(kind);
        let bridge = event.bridge();
        if let Some(b) = bridge {
            self.register(b, conn_id, tx, remote_ip);
        }
        match event {
            Event::Malformed { error, .. } => {
                tracing::warn!(
                    bridge = %display_opt(bridge),
                    "malformed message from bridge (ignored, connection kept): {error}"
                );
                return;
            }
            Event::Unknown { reason, .. } => {
                tracing::info!(bridge = %display_opt(bridge), "message not understood (ignored): {reason}");
                return;
            }
            _ => {}
        }
        let Some(bridge) = bridge else { return };
        // Any event naming a device marks it alive (and makes it known).
        if let Some(device) = event.device()
            && !matches!(event, Event::DeviceDisconnect { .. })
        {
            self.device_alive(device, bridge, conn_id);
        }
        match event {
            Event::PowerOn { info, .. } => {
                tracing::info!(
                    %bridge,
                    model = info.model.as_deref().unwrap_or("?"),
                    firmware = info.firmware_version.as_deref().unwrap_or("?"),
                    "bridge powered on"
                );
                if let Some(conn) = self.presence().bridges.get_mut(&bridge) {
                    conn.info = Some(info.clone());
                }
                if let Err(e) =
                    self.store
                        .record_power_on(bridge, info, Some(remote_ip), unix_now())
                {
                    tracing::error!(%bridge, "could not record the bridge's power_on: {e}");
                }
            }
            Event::DeviceDisconnect { device, .. } => {
                self.ensure_known(*device, bridge, conn_id);
                let went = {
                    let mut p = self.presence();
                    match p.devices.get_mut(device) {
                        Some(s) if s.online => {
                            s.online = false;
                            true
                        }
                        _ => false,
                    }
                };
                tracing::info!(%bridge, %device, "printer disconnected");
                if went {
                    self.announce(vec![Change::Offline(*device)]);
                }
                self.flush(false);
            }
            Event::EncryptionKeyRequired { device, .. } => {
                self.answer_key_request(*device, bridge, conn_id, tx);
            }
            Event::BridgeLog { records, .. } => self.bridge_log(bridge, records),
            Event::BridgeCommandResponse {
                command_id,
                return_code,
                ..
            }
            | Event::DeviceCommandResponse {
                command_id,
                return_code,
                ..
            } => self.command_answered(bridge, *command_id, *return_code),
            Event::DidPrint {
                device,
                print_id,
                print_type,
                ..
            } => {
                tracing::info!(%bridge, %device, print_id, print_type, "printer printed");
                self.announce(vec![Change::Printed {
                    device: *device,
                    print_id: *print_id,
                }]);
            }
            Event::DidPowerOn { device, info, .. } => {
                tracing::info!(%bridge, %device, firmware = %info.firmware_build_version, reset = info.reset_cause(), "printer powered on");
            }
            _ => {}
        }
    }

    /// The store learns of a device the first time this process sees it.
    fn ensure_known(&self, device: DeviceAddress, bridge: BridgeAddress, conn_id: u64) -> bool {
        if self.presence().devices.contains_key(&device) {
            return false;
        }
        let now = unix_now();
        let printer_id = match self.store.ensure_printer(device, now) {
            Ok(row) => row.id,
            Err(e) => {
                tracing::error!(%device, "could not record the printer in the database: {e}");
                return false;
            }
        };
        let mut p = self.presence();
        p.devices.entry(device).or_insert(DeviceState {
            printer_id,
            bridge,
            conn_id,
            last_heard: Instant::now(),
            last_heard_unix: now,
            online: false,
            flushed_unix: 0,
            key_sent: None,
        });
        true
    }

    fn device_alive(&self, device: DeviceAddress, bridge: BridgeAddress, conn_id: u64) {
        let now = Instant::now();
        let now_unix = unix_now();
        let came_online = {
            let mut p = self.presence();
            p.touch(device, bridge, conn_id, now, now_unix)
        };
        let came_online = match came_online {
            Some(c) => c,
            None => {
                if self.ensure_known(device, bridge, conn_id) {
                    tracing::info!(%device, %bridge, xor = %device.hardware_xor(), "new printer seen");
                }
                self.presence()
                    .touch(device, bridge, conn_id, now, now_unix)
                    .unwrap_or(false)
            }
        };
        if came_online {
            tracing::debug!(%device, %bridge, "printer online");
            self.announce(vec![Change::Online(device)]);
        }
    }

    fn answer_key_request(
        self: &Arc<Self>,
        device: DeviceAddress,
        bridge: BridgeAddress,
        conn_id: u64,
        tx: &mpsc::Sender<Outgoing>,
    ) {
        {
            let p = self.presence();
            if let Some(at) = p.devices.get(&device).and_then(|s| s.key_sent)
                && at.elapsed() < self.config.key_resend_interval
            {
                return;
            }
        }
        let key = match self.store.link_key_for(device) {
            Ok(Some(k)) => k,
            Ok(None) => {
                tracing::info!(%device, xor = %device.hardware_xor(), "an unclaimed printer asks for its key; claim it with the code it printed");
                return;
            }
            Err(e) => {
                tracing::error!(%device, "could not look up the printer's claim: {e}");
                return;
            }
        };
        let id = self.next_command_id();
        let text = add_device_encryption_key(&bridge.to_string(), &device.to_string(), id, &key);
        if tx.try_send(Outgoing::Text(text)).is_err() {
            tracing::warn!(%bridge, %device, "could not queue the link key: the bridge connection is backed up");
            return;
        }
        if let Some(s) = self.presence().devices.get_mut(&device) {
            s.key_sent = Some(Instant::now());
        }
        self.stats.commands_sent.fetch_add(1, Relaxed);
        self.stats.keys_sent.fetch_add(1, Relaxed);
        let _fate = self.track(id, conn_id);
        if let Err(e) = self.store.record_command(
            id,
            bridge,
            Some(device),
            "add_device_encryption_key",
            unix_now(),
        ) {
            tracing::error!("could not record command {id}: {e}");
        }
        tracing::info!(%bridge, %device, command_id = id, "sent the printer its link key");
    }

    fn bridge_log(&self, bridge: BridgeAddress, records: &[LogRecord]) {
        for r in records {
            let msg = r.message.as_deref().unwrap_or("");
            let logger = r.name.as_deref().unwrap_or("");
            match r.levelno.unwrap_or(20) {
                n if n >= 40 => tracing::error!(target: "bridge", %bridge, logger, "{msg}"),
                n if n >= 30 => tracing::warn!(target: "bridge", %bridge, logger, "{msg}"),
                n if n >= 20 => tracing::info!(target: "bridge", %bridge, logger, "{msg}"),
                _ => tracing::debug!(target: "bridge", %bridge, logger, "{msg}"),
            }
        }
        if let Err(e) = self.store.append_bridge_log(bridge, records, unix_now()) {
            tracing::error!(%bridge, "could not store the bridge's log: {e}");
        }
    }

    fn command_answered(&self, bridge: BridgeAddress, command_id: u32, code: ReturnCode) {
        self.stats.count_response(code.name(), code.value());
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&command_id);
        match pending {
            Some(p) => {
                let _ = p.tx.send(CommandFate::Answered(code));
            }
            None => {
                self.stats.unknown_responses.fetch_add(1, Relaxed);
                tracing::warn!(%bridge, command_id, return_code = %code, "answer to a command this server is not waiting for (ignored)");
            }
        }
        match self
            .store
            .record_command_answer(command_id, code.value(), unix_now())
        {
            Ok(_) => {}
            Err(e) => tracing::error!("could not record the answer to command {command_id}: {e}"),
        }
        if !code.is_success() {
            tracing::warn!(%bridge, command_id, "command failed: {}", code.description());
        }
    }

    // ----- commands -------------------------------------------------------

    /// The next command id: a u32, never 0, unique across restarts (ids are
    /// reserved in the store a block at a time).
    pub fn next_command_id(&self) -> u32 {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = ids.next;
        ids.next = match id.checked_add(1) {
            Some(n) => n,
            None => {
                // After 4 billion commands, start again at 1.
                ids.reserved_up_to = 0;
                1
            }
        };
        if id > ids.reserved_up_to {
            let up_to = id.saturating_add(ID_BLOCK);
            match self.store.reserve_command_ids(up_to) {
                Ok(()) => ids.reserved_up_to = up_to,
                Err(e) => tracing::error!("could not reserve command ids in the database: {e}"),
            }
        }
        id
    }

    /// Registers a command in flight and arms its timeout.
    fn track(self: &Arc<Self>, id: u32, conn_id: u64) -> oneshot::Receiver<CommandFate> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Pending { conn_id, tx });
        let hub = Arc::clone(self);
        let timeout = self.config.command_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let p = hub
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            if let Some(p) = p {
                hub.stats.commands_timed_out.fetch_add(1, Relaxed);
                let _ = p.tx.send(CommandFate::TimedOut);
            }
        });
        rx
    }

    /// Sends a command to a printer through the bridge it is on. `build`
    /// gets the bridge address and the command id and returns the JSON.
    /// Fails at once when the printer is offline.
    pub fn send_to_device(
        self: &Arc<Self>,
        device: DeviceAddress,
        kind: &str,
        build: impl FnOnce(&str, u32) -> String,
    ) -> Result<Dispatched, SendError> {
        let (bridge, conn_id, tx) = {
            let p = self.presence();
            let (bridge, conn) = p.route(device).ok_or(SendError::Offline(device))?;
            (bridge, conn.conn_id, conn.tx.clone())
        };
        let id = self.next_command_id();
        let text = build(&bridge.to_string(), id);
        let fate = self.track(id, conn_id);
        if tx.try_send(Outgoing::Text(text)).is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(SendError::BridgeBusy(device));
        }
        self.stats.commands_sent.fetch_add(1, Relaxed);
        if let Err(e) = self
            .store
            .record_command(id, bridge, Some(device), kind, unix_now())
        {
            tracing::error!("could not record command {id}: {e}");
        }
        Ok(Dispatched {
            command_id: id,
            bridge,
            fate,
        })
    }

    // ----- presence, for pages and the sweep -----------------------------

    pub fn is_online(&self, device: DeviceAddress) -> bool {
        self.presence().route(device).is_some()
    }

    pub fn bridges_connected(&self) -> usize {
        self.presence().bridges.len()
    }

    pub fn printers_online(&self) -> usize {
        self.presence().online_count()
    }

    /// Live bridges for the status page: address, remote IP, firmware,
    /// connected since (unix seconds).
    pub fn live_bridges(&self) -> Vec<(BridgeAddress, String, Option<String>, i64)> {
        let p = self.presence();
        let mut v: Vec<_> = p
            .bridges
            .iter()
            .map(|(a, c)| {
                (
                    *a,
                    c.remote_ip.clone(),
                    c.info.as_ref().and_then(|i| i.firmware_version.clone()),
                    c.connected_at,
                )
            })
            .collect();
        v.sort_by_key(|b| b.0);
        v
    }

    /// Last heard (unix seconds) as known in memory, fresher than the store.
    pub fn last_heard(&self, device: DeviceAddress) -> Option<i64> {
        self.presence()
            .devices
            .get(&device)
            .map(|s| s.last_heard_unix)
    }

    /// Expires silent printers and writes due last-heard times.
    pub fn sweep(&self) {
        let changes = self
            .presence()
            .expire(Instant::now(), self.config.presence_timeout);
        if !changes.is_empty() {
            tracing::debug!(count = changes.len(), "printers went silent");
        }
        self.announce(changes);
        self.flush(false);
    }

    /// Writes last-heard times that are due (or all of them) in one
    /// transaction.
    pub fn flush(&self, all: bool) {
        let batch = self
            .presence()
            .take_flush(unix_now(), self.config.flush_interval, all);
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.update_last_heard(&batch) {
            tracing::error!(count = batch.len(), "could not write last-heard times: {e}");
        }
    }
}

fn display_opt(b: Option<BridgeAddress>) -> String {
    b.map(|b| b.to_string())
        .unwrap_or_else(|| "(unknown)".into())
}
