//! The hub: every live bridge connection, the presence of every printer,
//! and the commands in flight. Sessions feed it events; the layers above
//! send commands through it and learn their fate.
//!
//! What the hub believes, and what it keeps (a bridge is whoever connects):
//!
//! * A connection speaks for at most [`HubConfig::max_bridges_per_connection`]
//!   bridge addresses; events naming more are ignored.
//! * An answer to a command (`DeviceCommandResponse`,
//!   `BridgeCommandResponse`) and a printer's `did_print` count only on the
//!   connection the command went out on; others are logged as foreign and
//!   ignored, and nothing is written for them.
//! * Printers nobody has claimed are remembered at most
//!   [`HubConfig::max_unclaimed_per_bridge`] per bridge (the one heard from
//!   longest ago is forgotten first), in memory and in the database; claimed
//!   printers are never forgotten.
//! * Heartbeats stay in memory. The database hears about printers in
//!   batches from the sweep, and everything else through the store's writer
//!   thread ([`Db`]); the hub never waits for a write, and its reads never
//!   wait for the writer, so a stalled disk cannot stop bridges.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use super::presence::{BridgeConn, Change, Outgoing, Presence};
use super::stats::Stats;
use crate::protocol::commands::add_device_encryption_key;
use crate::protocol::events::LogRecord;
use crate::protocol::{BridgeAddress, DeviceAddress, Event, ReturnCode};
use crate::store::{Db, Store, StoreError};

/// Timings and limits of the bridge layer. Defaults follow PROTOCOL §5 and
/// §6; tests shorten them.
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
    /// The server pings every bridge this often.
    pub ping_interval: Duration,
    /// A bridge that sent nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// Unclaimed printers remembered per bridge.
    pub max_unclaimed_per_bridge: usize,
    /// Bridge addresses one connection may speak for.
    pub max_bridges_per_connection: usize,
    /// Unclaimed printers, and bridges with their logs, not heard from for
    /// this long are deleted.
    pub forget_after: Duration,
    /// How often the forgetting runs.
    pub cleanup_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            presence_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(5),
            flush_interval: Duration::from_secs(60),
            command_timeout: Duration::from_secs(60),
            key_resend_interval: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_unclaimed_per_bridge: 64,
            max_bridges_per_connection: 4,
            forget_after: Duration::from_secs(30 * 24 * 3600),
            cleanup_interval: Duration::from_secs(600),
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
    #[error(
        "no command id could be reserved: the database has not answered for a long time; the message stays queued"
    )]
    NoCommandId,
}

/// A command on its way: its id, and where its fate will arrive.
#[derive(Debug)]
pub struct Dispatched {
    pub command_id: u32,
    pub bridge: BridgeAddress,
    pub fate: oneshot::Receiver<CommandFate>,
}

/// Where a command to a printer goes: the connection it is reachable
/// through, and the command id reserved for it.
#[derive(Debug)]
pub struct Route {
    pub device: DeviceAddress,
    pub bridge: BridgeAddress,
    pub command_id: u32,
    conn_id: u64,
    tx: mpsc::Sender<Outgoing>,
}

/// One live websocket connection, as its session sees it.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub tx: mpsc::Sender<Outgoing>,
    pub remote_ip: String,
    /// The bridge addresses it spoke for, first one first.
    pub bridges: Vec<BridgeAddress>,
    /// Warnings logged for it (bad input is logged, but not endlessly).
    warnings: u64,
}

impl Connection {
    pub fn new(id: u64, tx: mpsc::Sender<Outgoing>, remote_ip: String) -> Connection {
        Connection {
            id,
            tx,
            remote_ip,
            bridges: Vec::new(),
            warnings: 0,
        }
    }

    /// Whether to log one more warning about this connection: the first 20,
    /// then one in a thousand.
    fn should_warn(&mut self) -> bool {
        self.warnings += 1;
        self.warnings <= 20 || self.warnings.is_multiple_of(1000)
    }
}

struct Pending {
    conn_id: u64,
    tx: oneshot::Sender<CommandFate>,
}

/// When commands in flight time out, oldest first. The timeout is the same
/// for every command, so deadlines arrive in order and one task sleeping
/// until the oldest serves them all (a task per command held 10,000 timers
/// and tasks while 10,000 printers got their keys).
#[derive(Default)]
struct Deadlines {
    queue: Mutex<VecDeque<(tokio::time::Instant, u32)>>,
    /// A deadline was added to an empty queue.
    added: Notify,
    /// The task that fires them has been started.
    running: std::sync::atomic::AtomicBool,
}

/// Fires command timeouts as their deadlines pass. Holds the hub weakly,
/// so a dropped hub is not kept alive by it.
async fn fire_deadlines(deadlines: Arc<Deadlines>, hub: std::sync::Weak<Hub>) {
    loop {
        let next = lock(&deadlines.queue).front().map(|d| d.0);
        let Some(deadline) = next else {
            deadlines.added.notified().await;
            continue;
        };
        tokio::time::sleep_until(deadline).await;
        let Some(hub) = hub.upgrade() else { return };
        let now = tokio::time::Instant::now();
        let mut due = Vec::new();
        {
            let mut q = lock(&deadlines.queue);
            while q.front().is_some_and(|d| d.0 <= now) {
                due.extend(q.pop_front().map(|d| d.1));
            }
        }
        for id in due {
            let p = lock(&hub.pending).remove(&id);
            if let Some(p) = p {
                hub.stats.commands_timed_out.fetch_add(1, Relaxed);
                let _ = p.tx.send(CommandFate::TimedOut);
            }
        }
    }
}

/// A print command sent recently: its did_print must come from the same
/// connection and printer.
struct Sent {
    conn_id: u64,
    device: DeviceAddress,
    at: Instant,
}

/// How long a print command's did_print is waited for.
const DID_PRINT_WINDOW: Duration = Duration::from_secs(600);

/// Command ids are handed out from a range already written to the store
/// (so they stay unique across restarts, `kill -9` included). The range is
/// extended in the background by the writer thread, [`ID_BLOCK`] at a time,
/// when fewer than [`ID_LOW`] are left; no lock is held across the write.
struct CommandIds {
    next: u32,
    durable_up_to: u32,
    extending: bool,
}

const ID_BLOCK: u32 = 10_000;
const ID_LOW: u32 = 5_000;

pub struct Hub {
    pub db: Db,
    pub config: HubConfig,
    pub stats: Stats,
    presence: Mutex<Presence>,
    ids: Arc<Mutex<CommandIds>>,
    pending: Mutex<HashMap<u32, Pending>>,
    deadlines: Arc<Deadlines>,
    sent: Mutex<HashMap<u32, Sent>>,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A hub over `db`. Reserves the first block of command ids, so call it
    /// off the runtime (it writes to the store).
    pub fn new(db: Db, config: HubConfig) -> Result<Arc<Hub>, StoreError> {
        let store = db.store();
        let high = store.command_id_high_water()?;
        let next = high.checked_add(1).unwrap_or(1).max(1);
        let durable_up_to = next.saturating_add(ID_BLOCK);
        store.reserve_command_ids(durable_up_to)?;
        let (changes, _) = broadcast::channel(4096);
        Ok(Arc::new(Hub {
            db,
            config,
            stats: Stats::default(),
            presence: Mutex::new(Presence::default()),
            ids: Arc::new(Mutex::new(CommandIds {
                next,
                durable_up_to,
                extending: false,
            })),
            pending: Mutex::new(HashMap::new()),
            deadlines: Arc::default(),
            sent: Mutex::new(HashMap::new()),
            next_conn_id: AtomicU64::new(1),
            sessions: AtomicUsize::new(0),
            sessions_done: Notify::new(),
            changes,
            started: Instant::now(),
        }))
    }

    /// The synchronous store, for tests and blocking code.
    pub fn store(&self) -> &Arc<Store> {
        self.db.store()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn presence(&self) -> MutexGuard<'_, Presence> {
        lock(&self.presence)
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
            let _ = conn.tx.try_send(Outgoing::Close(1001, reason.into()));
        }
    }

    /// A connection speaks for `bridge`. A newer connection from the same
    /// bridge replaces the older one. Returns false (and changes nothing)
    /// when the connection already speaks for as many bridges as it may.
    fn register(&self, bridge: BridgeAddress, conn: &mut Connection) -> bool {
        if !conn.bridges.contains(&bridge) {
            if conn.bridges.len() >= self.config.max_bridges_per_connection {
                self.stats.bridges_refused.fetch_add(1, Relaxed);
                if conn.should_warn() {
                    tracing::warn!(
                        %bridge,
                        remote_ip = %conn.remote_ip,
                        first = %conn.bridges[0],
                        "a connection spoke for more than {} bridge addresses; messages naming another one are ignored",
                        self.config.max_bridges_per_connection
                    );
                }
                return false;
            }
            conn.bridges.push(bridge);
        }
        let old = {
            let mut p = self.presence();
            if p.is_live(bridge, conn.id) {
                return true;
            }
            let now = unix_now();
            p.bridges.insert(
                bridge,
                BridgeConn {
                    conn_id: conn.id,
                    tx: conn.tx.clone(),
                    remote_ip: conn.remote_ip.clone(),
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
            tracing::info!(%bridge, remote_ip = %conn.remote_ip, "bridge connected");
        }
        let ip = conn.remote_ip.clone();
        let now = unix_now();
        self.db
            .write_detached(format!("record bridge {bridge}"), move |s| {
                s.record_bridge_seen(bridge, Some(&ip), now)
            });
        true
    }

    /// A connection ended: its printers go offline at once, their commands
    /// in flight can never be answered, and last-heard times are written.
    /// Synchronous and quick, so a session can call it from a drop guard.
    pub fn connection_closed(&self, conn_id: u64, bridges: &[BridgeAddress]) {
        let changes = self.presence().connection_closed(conn_id);
        if let Some(b) = bridges.first() {
            tracing::info!(bridge = %b, printers_offline = changes.len(), "bridge disconnected");
        }
        let orphans: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            let ids: Vec<u32> = pending
                .iter()
                .filter(|(_, p)| p.conn_id == conn_id)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in orphans {
            self.stats.commands_orphaned.fetch_add(1, Relaxed);
            let _ = p.tx.send(CommandFate::ConnectionClosed);
        }
        self.announce(changes);
        self.flush(false);
    }

    // ----- events ---------------------------------------------------------

    /// Handles one decoded event from `conn`. Waits only for reads (a
    /// printer heard for the first time, a link key), never for a write.
    pub async fn handle_event(self: &Arc<Self>, event: &Event, conn: &mut Connection) {
        let kind = event.kind();
        self.stats.count_message(kind);
        let bridge = event.bridge();
        if let Some(b) = bridge
            && !self.register(b, conn)
        {
            return;
        }
        match event {
            Event::Malformed { error, .. } => {
                if conn.should_warn() {
                    tracing::warn!(
                        bridge = %display_opt(bridge),
                        remote_ip = %conn.remote_ip,
                        "malformed message from bridge (ignored, connection kept): {error}"
                    );
                }
                return;
            }
            Event::Unknown { reason, .. } => {
                if conn.should_warn() {
                    tracing::info!(bridge = %display_opt(bridge), "message not understood (ignored): {reason}");
                }
                return;
            }
            _ => {}
        }
        let Some(bridge) = bridge else { return };
        // Any event naming a device marks it alive (and makes it known).
        if let Some(device) = event.device()
            && !matches!(event, Event::DeviceDisconnect { .. })
            && !self.device_alive(device, bridge, conn.id).await
        {
            // A printer that could not be looked up: nothing more to do.
            return;
        }
        match event {
            Event::PowerOn { info, .. } => {
                tracing::info!(
                    %bridge,
                    model = info.model.as_deref().unwrap_or("?"),
                    firmware = info.firmware_version.as_deref().unwrap_or("?"),
                    "bridge powered on"
                );
                if let Some(c) = self.presence().bridges.get_mut(&bridge) {
                    c.info = Some(info.clone());
                }
                let info = info.clone();
                let ip = conn.remote_ip.clone();
                self.db.write_detached(
                    format!("record the power_on of bridge {bridge}"),
                    move |s| s.record_power_on(bridge, &info, Some(&ip), unix_now()),
                );
            }
            Event::DeviceDisconnect { device, .. } => {
                let went = {
                    let mut p = self.presence();
                    match p.devices.get_mut(device) {
                        Some(s) if s.online && s.conn_id == conn.id => {
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
                self.answer_key_request(*device, bridge, conn).await;
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
            } => self.command_answered(bridge, *command_id, *return_code, conn),
            Event::DidPrint {
                device,
                print_id,
                print_type,
                ..
            } => {
                let ours = {
                    let sent = lock(&self.sent);
                    sent.get(print_id)
                        .is_some_and(|s| s.conn_id == conn.id && s.device == *device)
                };
                if !ours {
                    self.stats.foreign_answers.fetch_add(1, Relaxed);
                    if conn.should_warn() {
                        tracing::warn!(%bridge, %device, print_id, remote_ip = %conn.remote_ip, "did_print for a command this connection was not sent (ignored)");
                    }
                    return;
                }
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

    /// Marks a printer alive. The first time this process hears of it, the
    /// store is asked (a read) whether it is known or claimed; an unclaimed
    /// one takes one of its bridge's places for unclaimed printers, pushing
    /// out the one heard from longest ago. Returns false if it could not be
    /// looked up.
    async fn device_alive(
        &self,
        device: DeviceAddress,
        bridge: BridgeAddress,
        conn_id: u64,
    ) -> bool {
        let now = Instant::now();
        let now_unix = unix_now();
        let touched = self
            .presence()
            .touch(device, bridge, conn_id, now, now_unix);
        let came_online = match touched {
            Some(c) => c,
            None => {
                let claimed = self.db.read(move |s| s.is_claimed(device)).await;
                let claimed = match claimed {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(%device, "could not look up the printer: {e}");
                        return false;
                    }
                };
                let (forgotten, came_online) = {
                    let mut p = self.presence();
                    let forgotten = p.insert(
                        device,
                        bridge,
                        conn_id,
                        claimed,
                        self.config.max_unclaimed_per_bridge,
                    );
                    (forgotten, p.touch(device, bridge, conn_id, now, now_unix))
                };
                if let Some(old) = forgotten {
                    self.stats.unclaimed_forgotten.fetch_add(1, Relaxed);
                    tracing::debug!(%bridge, forgotten = %old, "too many unclaimed printers on one bridge; forgot the one heard from longest ago");
                }
                tracing::info!(%device, %bridge, xor = %device.hardware_xor(), claimed, "printer heard for the first time since the server started");
                came_online.unwrap_or(false)
            }
        };
        if came_online {
            tracing::debug!(%device, %bridge, "printer online");
            self.announce(vec![Change::Online(device)]);
        }
        true
    }

    async fn answer_key_request(
        self: &Arc<Self>,
        device: DeviceAddress,
        bridge: BridgeAddress,
        conn: &Connection,
    ) {
        {
            let p = self.presence();
            if let Some(at) = p.devices.get(&device).and_then(|s| s.key_sent)
                && at.elapsed() < self.config.key_resend_interval
            {
                return;
            }
        }
        let key = match self.db.read(move |s| s.link_key_for(device)).await {
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
        let Some(id) = self.next_command_id() else {
            tracing::warn!(%device, "no command id is free yet (the database is slow); the key goes with the printer's next request");
            return;
        };
        let text = add_device_encryption_key(&bridge.to_string(), &device.to_string(), id, &key);
        if conn.tx.try_send(Outgoing::Text(text.into())).is_err() {
            tracing::warn!(%bridge, %device, "could not queue the link key: the bridge connection is backed up");
            return;
        }
        if let Some(s) = self.presence().devices.get_mut(&device) {
            s.key_sent = Some(Instant::now());
        }
        self.stats.commands_sent.fetch_add(1, Relaxed);
        self.stats.keys_sent.fetch_add(1, Relaxed);
        let _fate = self.track(id, conn.id);
        self.db
            .write_detached(format!("record command {id}"), move |s| {
                s.record_command(
                    id,
                    bridge,
                    Some(device),
                    "add_device_encryption_key",
                    unix_now(),
                )
            });
        tracing::info!(%bridge, %device, command_id = id, "sent the printer its link key");
    }

    fn bridge_log(&self, bridge: BridgeAddress, records: &[LogRecord]) {
        for r in records.iter().take(MAX_LOG_RECORDS) {
            let msg = r.message.as_deref().unwrap_or("");
            let msg = &msg[..floor_char_boundary(msg, MAX_LOG_CHARS)];
            let logger = r.name.as_deref().unwrap_or("");
            match r.levelno.unwrap_or(20) {
                n if n >= 40 => tracing::error!(target: "bridge", %bridge, logger, "{msg}"),
                n if n >= 30 => tracing::warn!(target: "bridge", %bridge, logger, "{msg}"),
                n if n >= 20 => tracing::info!(target: "bridge", %bridge, logger, "{msg}"),
                _ => tracing::debug!(target: "bridge", %bridge, logger, "{msg}"),
            }
        }
        let records: Vec<LogRecord> = records
            .iter()
            .take(MAX_LOG_RECORDS)
            .map(|r| {
                let mut r = r.clone();
                if let Some(m) = &mut r.message {
                    m.truncate(floor_char_boundary(m, MAX_LOG_CHARS));
                }
                r
            })
            .collect();
        self.db
            .write_detached(format!("store the log of bridge {bridge}"), move |s| {
                s.append_bridge_log(bridge, &records, unix_now())
            });
    }

    fn command_answered(
        &self,
        bridge: BridgeAddress,
        command_id: u32,
        code: ReturnCode,
        conn: &mut Connection,
    ) {
        let pending = {
            let mut pending = lock(&self.pending);
            match pending.get(&command_id) {
                Some(p) if p.conn_id == conn.id => pending.remove(&command_id),
                Some(_) => {
                    drop(pending);
                    self.stats.foreign_answers.fetch_add(1, Relaxed);
                    if conn.should_warn() {
                        tracing::warn!(%bridge, command_id, remote_ip = %conn.remote_ip, "answer to a command sent on another connection (foreign, ignored)");
                    }
                    return;
                }
                None => None,
            }
        };
        let Some(p) = pending else {
            self.stats.unknown_responses.fetch_add(1, Relaxed);
            if conn.should_warn() {
                tracing::warn!(%bridge, command_id, return_code = %code, "answer to a command this server is not waiting for (ignored)");
            }
            return;
        };
        self.stats.count_response(code);
        let _ = p.tx.send(CommandFate::Answered(code));
        self.db.write_detached(
            format!("record the answer to command {command_id}"),
            move |s| {
                s.record_command_answer(command_id, code.value(), unix_now())
                    .map(|_| ())
            },
        );
        if !code.is_success() {
            tracing::warn!(%bridge, command_id, "command failed: {}", code.description());
        }
    }

    // ----- commands -------------------------------------------------------

    /// The next command id: a u32, never 0, unique across restarts. `None`
    /// only when the writer has not managed to reserve more ids for a long
    /// time (thousands of commands).
    pub fn next_command_id(&self) -> Option<u32> {
        let mut ids = lock(&self.ids);
        if ids.next > ids.durable_up_to || ids.next == 0 {
            self.extend_ids(&mut ids);
            return None;
        }
        let id = ids.next;
        ids.next = match id.checked_add(1) {
            Some(n) => n,
            None => {
                // After 4 billion commands, start again at 1.
                ids.durable_up_to = 0;
                1
            }
        };
        if ids.durable_up_to.saturating_sub(id) < ID_LOW {
            self.extend_ids(&mut ids);
        }
        Some(id)
    }

    /// Asks the writer to reserve the next block of ids (once at a time).
    fn extend_ids(&self, ids: &mut CommandIds) {
        if ids.extending {
            return;
        }
        ids.extending = true;
        let up_to = ids.durable_up_to.max(ids.next).saturating_add(ID_BLOCK);
        let shared = Arc::clone(&self.ids);
        self.db
            .write_detached("reserve command ids", move |s: &Store| {
                let result = s.reserve_command_ids(up_to);
                let mut ids = lock(&shared);
                ids.extending = false;
                if result.is_ok() && up_to > ids.durable_up_to {
                    ids.durable_up_to = up_to;
                }
                result
            });
    }

    /// Registers a command in flight and arms its timeout.
    fn track(self: &Arc<Self>, id: u32, conn_id: u64) -> oneshot::Receiver<CommandFate> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, Pending { conn_id, tx });
        let deadline = tokio::time::Instant::now() + self.config.command_timeout;
        {
            let mut q = lock(&self.deadlines.queue);
            if q.is_empty() {
                self.deadlines.added.notify_one();
            }
            q.push_back((deadline, id));
        }
        if !self.deadlines.running.swap(true, Relaxed) {
            tokio::spawn(fire_deadlines(
                Arc::clone(&self.deadlines),
                Arc::downgrade(self),
            ));
        }
        rx
    }

    /// Picks the connection a printer is reachable through right now and
    /// reserves a command id for it. Fails at once when the printer is
    /// offline. Build the command (off the runtime if it is big), then
    /// [`Hub::dispatch`] it.
    pub fn route_command(&self, device: DeviceAddress) -> Result<Route, SendError> {
        let (bridge, conn_id, tx) = {
            let p = self.presence();
            let (bridge, conn) = p.route(device).ok_or(SendError::Offline(device))?;
            (bridge, conn.conn_id, conn.tx.clone())
        };
        let command_id = self.next_command_id().ok_or(SendError::NoCommandId)?;
        Ok(Route {
            device,
            bridge,
            command_id,
            conn_id,
            tx,
        })
    }

    /// Sends a command built for `route` (its JSON names the route's bridge
    /// and command id) and tracks its fate.
    pub fn dispatch(
        self: &Arc<Self>,
        route: Route,
        kind: &str,
        text: String,
    ) -> Result<Dispatched, SendError> {
        let Route {
            device,
            bridge,
            command_id: id,
            conn_id,
            tx,
        } = route;
        let fate = self.track(id, conn_id);
        if tx.try_send(Outgoing::Text(text.into())).is_err() {
            lock(&self.pending).remove(&id);
            return Err(SendError::BridgeBusy(device));
        }
        lock(&self.sent).insert(
            id,
            Sent {
                conn_id,
                device,
                at: Instant::now(),
            },
        );
        self.stats.commands_sent.fetch_add(1, Relaxed);
        let kind = kind.to_string();
        self.db
            .write_detached(format!("record command {id}"), move |s| {
                s.record_command(id, bridge, Some(device), &kind, unix_now())
            });
        Ok(Dispatched {
            command_id: id,
            bridge,
            fate,
        })
    }

    /// [`Hub::route_command`] and [`Hub::dispatch`] in one, for small
    /// commands: `build` gets the bridge address and the command id and
    /// returns the JSON.
    pub fn send_to_device(
        self: &Arc<Self>,
        device: DeviceAddress,
        kind: &str,
        build: impl FnOnce(&str, u32) -> String,
    ) -> Result<Dispatched, SendError> {
        let route = self.route_command(device)?;
        let text = build(&route.bridge.to_string(), route.command_id);
        self.dispatch(route, kind, text)
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

    /// Printers remembered in memory (online, or recently heard).
    pub fn printers_in_memory(&self) -> usize {
        self.presence().devices.len()
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

    /// Expires silent printers, writes due last-heard times, and lets go of
    /// what is no longer needed in memory.
    pub fn sweep(&self) {
        let now = Instant::now();
        let changes = self.presence().expire(now, self.config.presence_timeout);
        if !changes.is_empty() {
            tracing::debug!(count = changes.len(), "printers went silent");
        }
        self.announce(changes);
        self.flush(false);
        self.presence()
            .forget_idle(now, self.config.presence_timeout * 2);
        lock(&self.sent).retain(|_, s| now.duration_since(s.at) < DID_PRINT_WINDOW);
    }

    /// Writes last-heard times that are due (or all of them), creating the
    /// rows of printers heard for the first time, in one transaction on the
    /// writer thread; unclaimed printers beyond the limit per bridge are
    /// deleted there too.
    pub fn flush(&self, all: bool) {
        let batch = self
            .presence()
            .take_flush(unix_now(), self.config.flush_interval, all);
        if batch.is_empty() {
            return;
        }
        let keep = self.config.max_unclaimed_per_bridge;
        let count = batch.len();
        self.db.write_detached(
            format!("write the last-heard times of {count} printers"),
            move |s| s.remember_printers(&batch, keep),
        );
    }

    /// Deletes what bridges made the server keep and nobody needs any more:
    /// unclaimed printers and bridges (with their logs) not heard from for
    /// [`HubConfig::forget_after`].
    pub fn forget_old(&self) {
        let cutoff = unix_now() - self.config.forget_after.as_secs() as i64;
        self.db
            .write_detached("forget old bridges and unclaimed printers", move |s| {
                let (printers, bridges) = s.forget_before(cutoff)?;
                if printers + bridges > 0 {
                    tracing::info!(
                        printers,
                        bridges,
                        "forgot unclaimed printers and bridges not heard from for 30 days"
                    );
                }
                Ok::<(), StoreError>(())
            });
    }
}

/// Records of one BridgeLog message that are kept.
const MAX_LOG_RECORDS: usize = 50;
/// Bytes of one log message that are kept.
const MAX_LOG_CHARS: usize = 1024;

/// The largest index ≤ `max` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn display_opt(b: Option<BridgeAddress>) -> String {
    b.map(|b| b.to_string())
        .unwrap_or_else(|| "(unknown)".into())
}
