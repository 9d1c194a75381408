//! The load generator: many emulated bridges, each with many heartbeating
//! printers, against a server for a bounded time. One task per bridge
//! connection (never one per printer), small websocket buffers, heartbeats
//! spread evenly over the interval across all printers so the load is
//! smooth, connections opened evenly over an optional ramp. It counts what
//! it sent and received and how long the server took to answer key
//! requests; in flood mode it sends heartbeats as fast as the sockets take
//! them, to measure the server's throughput.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::printer::close;
use super::wire::{self, Incoming, Socket};
use crate::protocol::device;
use crate::protocol::{BridgeAddress, DeviceAddress, HardwareXor};

/// At most this many bridges in one run (bridge addresses number them in
/// 24 bits; this keeps file descriptors and memory in reach).
pub const MAX_BRIDGES: usize = 100_000;
/// At most this many printers in one run (device addresses number them in
/// 24 bits).
pub const MAX_PRINTERS: usize = 1_000_000;
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What to generate.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server's bridge endpoint, e.g. `ws://127.0.0.1:5002/api/v1/connection`.
    pub url: String,
    /// How many bridge connections.
    pub bridges: usize,
    /// How many printers behind each bridge.
    pub printers_per_bridge: usize,
    /// How long the run lasts, from its start; every connection is closed
    /// by then.
    pub duration: Duration,
    /// Connections are opened evenly over this time (zero: all at once).
    pub ramp: Duration,
    /// Between two heartbeats of one printer.
    pub heartbeat_interval: Duration,
    /// Between two `encryption_key_required` of a printer still without key.
    pub key_interval: Duration,
    /// Heartbeats as fast as the sockets take them, ignoring the interval.
    pub flood: bool,
    /// Give every printer an address with this hardware xor, so one claim
    /// on the server covers them all and key requests get answered.
    pub claim_xor: Option<HardwareXor>,
}

impl LoadOptions {
    /// Heartbeats every 10 s, key requests every 30 s, no ramp, no flood.
    pub fn new(
        url: impl Into<String>,
        bridges: usize,
        printers_per_bridge: usize,
        duration: Duration,
    ) -> LoadOptions {
        LoadOptions {
            url: url.into(),
            bridges,
            printers_per_bridge,
            duration,
            ramp: Duration::ZERO,
            heartbeat_interval: Duration::from_secs(10),
            key_interval: Duration::from_secs(30),
            flood: false,
            claim_xor: None,
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.bridges == 0 || self.bridges > MAX_BRIDGES {
            anyhow::bail!(
                "--bridges must be between 1 and {MAX_BRIDGES}, not {}",
                self.bridges
            );
        }
        let printers = self.bridges.saturating_mul(self.printers_per_bridge);
        if printers > MAX_PRINTERS {
            anyhow::bail!(
                "{} bridges × {} printers is {printers} printers; at most {MAX_PRINTERS} per run",
                self.bridges,
                self.printers_per_bridge
            );
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            anyhow::bail!("--duration must be more than 0 s and at most 24 hours");
        }
        if self.ramp > self.duration {
            anyhow::bail!(
                "--ramp ({:.1} s) must not be longer than --duration ({:.1} s)",
                self.ramp.as_secs_f64(),
                self.duration.as_secs_f64()
            );
        }
        if self.heartbeat_interval.is_zero() && !self.flood {
            anyhow::bail!("--heartbeat-interval must be more than 0 s (or use --flood)");
        }
        if self.key_interval.is_zero() {
            anyhow::bail!("the key request interval must be more than 0 s");
        }
        Ok(())
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub url: String,
    pub bridges: usize,
    pub printers_per_bridge: usize,
    pub flood: bool,
    /// From the start of the run until every connection was closed.
    pub elapsed: Duration,
    /// Websockets opened.
    pub connections: u64,
    /// Websockets that could not be opened.
    pub connection_failures: u64,
    /// Websockets the server closed or broke before the end of the run.
    pub connections_lost: u64,
    /// The first failure or loss, to say what went wrong.
    pub first_problem: Option<String>,
    pub frames_sent: u64,
    pub heartbeats_sent: u64,
    /// `encryption_key_required` frames, repeats included.
    pub key_requests_sent: u64,
    /// Printers whose link key arrived.
    pub key_requests_answered: u64,
    /// From a printer's first key request to its key, over answered printers.
    pub key_latency_p50: Option<Duration>,
    pub key_latency_p99: Option<Duration>,
    pub frames_received: u64,
    /// Commands naming another bridge or a device the bridge does not have.
    pub misaddressed_commands: u64,
    /// DeviceCommands received (answered with success and did_print).
    pub device_commands: u64,
}

impl LoadReport {
    /// Heartbeats sent per second of the run.
    pub fn heartbeats_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.heartbeats_sent as f64 / secs
        } else {
            0.0
        }
    }

    /// Every number of the report; durations in seconds.
    pub fn to_json(&self) -> Value {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        json!({
            "url": self.url,
            "bridges": self.bridges,
            "printers_per_bridge": self.printers_per_bridge,
            "flood": self.flood,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "connections": self.connections,
            "connection_failures": self.connection_failures,
            "connections_lost": self.connections_lost,
            "first_problem": self.first_problem,
            "frames_sent": self.frames_sent,
            "heartbeats_sent": self.heartbeats_sent,
            "heartbeats_per_second": self.heartbeats_per_second(),
            "key_requests_sent": self.key_requests_sent,
            "key_requests_answered": self.key_requests_answered,
            "key_latency_p50_seconds": secs(self.key_latency_p50),
            "key_latency_p99_seconds": secs(self.key_latency_p99),
            "frames_received": self.frames_received,
            "misaddressed_commands": self.misaddressed_commands,
            "device_commands": self.device_commands,
        })
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        writeln!(
            f,
            "load on {}: {} bridges × {} printers, {:.1} s{}",
            self.url,
            self.bridges,
            self.printers_per_bridge,
            self.elapsed.as_secs_f64(),
            if self.flood { ", flood" } else { "" }
        )?;
        writeln!(
            f,
            "  connections      {} made, {} failed, {} lost",
            self.connections, self.connection_failures, self.connections_lost
        )?;
        writeln!(
            f,
            "  frames           {} sent, {} received",
            self.frames_sent, self.frames_received
        )?;
        writeln!(
            f,
            "  heartbeats       {} sent, {:.1}/s",
            self.heartbeats_sent,
            self.heartbeats_per_second()
        )?;
        writeln!(
            f,
            "  key requests     {} sent, {} printers answered, latency p50 {} p99 {}",
            self.key_requests_sent,
            self.key_requests_answered,
            ms(self.key_latency_p50),
            ms(self.key_latency_p99)
        )?;
        if self.device_commands > 0 || self.misaddressed_commands > 0 {
            writeln!(
                f,
                "  commands         {} device commands, {} misaddressed",
                self.device_commands, self.misaddressed_commands
            )?;
        }
        if let Some(problem) = &self.first_problem {
            writeln!(f, "  first problem    {problem}")?;
        }
        Ok(())
    }
}

/// Runs the load and reports. Fails only on bad options; connection trouble
/// is counted in the report.
pub async fn run_load(opts: LoadOptions) -> anyhow::Result<LoadReport> {
    opts.check()?;
    let request = wire::bridge_request(&opts.url)?;
    let mut salt = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut salt)
        .expect("the operating system's random generator failed");
    let start = Instant::now();
    let plan = Arc::new(Plan {
        request,
        start,
        deadline: start + opts.duration,
        salt,
        opts,
    });

    let mut tasks = JoinSet::new();
    for index in 0..plan.opts.bridges {
        tasks.spawn(run_bridge(index, plan.clone()));
    }
    let mut tallies = Vec::with_capacity(plan.opts.bridges);
    let hard_stop = plan.deadline + CONNECT_TIMEOUT + CLOSE_GRACE;
    loop {
        match tokio::time::timeout_at(hard_stop, tasks.join_next()).await {
            Ok(Some(Ok(tally))) => tallies.push(tally),
            Ok(Some(Err(e))) => tallies.push(Tally {
                problem: Some(format!("a bridge task failed: {e}")),
                lost: true,
                ..Tally::default()
            }),
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                break;
            }
        }
    }
    Ok(plan.report(tallies, start.elapsed()))
}

struct Plan {
    request: wire::Request,
    start: Instant,
    deadline: Instant,
    /// Random per run, so addresses of two runs differ.
    salt: [u8; 8],
    opts: LoadOptions,
}

impl Plan {
    fn bridge_address(&self, index: usize) -> BridgeAddress {
        let i = index as u32;
        BridgeAddress::from_bytes([
            0x00,
            0x0d,
            0x6f,
            self.salt[0],
            self.salt[1],
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ])
    }

    fn device_address(&self, global: usize) -> DeviceAddress {
        device_address(self.salt, global as u32, self.opts.claim_xor)
    }

    fn report(&self, tallies: Vec<Tally>, elapsed: Duration) -> LoadReport {
        let mut r = LoadReport {
            url: self.opts.url.clone(),
            bridges: self.opts.bridges,
            printers_per_bridge: self.opts.printers_per_bridge,
            flood: self.opts.flood,
            elapsed,
            connections: 0,
            connection_failures: 0,
            connections_lost: 0,
            first_problem: None,
            frames_sent: 0,
            heartbeats_sent: 0,
            key_requests_sent: 0,
            key_requests_answered: 0,
            key_latency_p50: None,
            key_latency_p99: None,
            frames_received: 0,
            misaddressed_commands: 0,
            device_commands: 0,
        };
        let mut latencies = Vec::new();
        for t in tallies {
            r.connections += u64::from(t.connected);
            r.connection_failures += u64::from(!t.connected && t.problem.is_some());
            r.connections_lost += u64::from(t.lost);
            if r.first_problem.is_none() {
                r.first_problem = t.problem;
            }
            r.frames_sent += t.frames_sent;
            r.heartbeats_sent += t.heartbeats_sent;
            r.key_requests_sent += t.key_requests_sent;
            r.frames_received += t.frames_received;
            r.misaddressed_commands += t.misaddressed;
            r.device_commands += t.device_commands;
            latencies.extend(t.key_latencies);
        }
        r.key_requests_answered = latencies.len() as u64;
        latencies.sort_unstable();
        r.key_latency_p50 = percentile(&latencies, 0.50);
        r.key_latency_p99 = percentile(&latencies, 0.99);
        r
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The address of printer number `global` of a run. The number sits in
/// three bytes, so addresses of one run never collide; the rest comes from
/// the run's salt, or, with `xor`, is solved so the address has that
/// hardware xor.
pub fn device_address(salt: [u8; 8], global: u32, xor: Option<HardwareXor>) -> DeviceAddress {
    // b is little-endian: b[0] is the last byte written.
    let mut b = [0u8; 8];
    b[3] = global as u8;
    b[4] = (global >> 8) as u8;
    b[7] = (global >> 16) as u8;
    b[5] = salt[2];
    b[6] = salt[3];
    match xor {
        Some(x) => {
            let [x0, x1, x2, _] = x.value().to_le_bytes();
            b[0] = x0 ^ b[5];
            b[1] = x1 ^ b[3] ^ b[6];
            b[2] = x2 ^ b[4] ^ b[7];
        }
        None => b[..3].copy_from_slice(&salt[4..7]),
    }
    b.reverse();
    DeviceAddress::from_bytes(b)
}

/// What one bridge saw.
#[derive(Debug, Default)]
struct Tally {
    connected: bool,
    lost: bool,
    problem: Option<String>,
    frames_sent: u64,
    heartbeats_sent: u64,
    key_requests_sent: u64,
    key_latencies: Vec<Duration>,
    frames_received: u64,
    misaddressed: u64,
    device_commands: u64,
}

/// One bridge and its printers, on one connection.
struct Bridge {
    address: BridgeAddress,
    devices: Vec<DeviceAddress>,
    index_of: HashMap<DeviceAddress, usize>,
    /// The bridge's number in the run.
    index: usize,
    /// Whether each printer still waits for its key.
    waiting: Vec<bool>,
    /// When each printer first asked for its key.
    first_request: Vec<Instant>,
    unanswered: usize,
    connected_at: Instant,
    /// Each printer's last heartbeat text and the uptime it says.
    beats: Vec<Option<(u32, Utf8Bytes)>>,
    tally: Tally,
}

impl Bridge {
    async fn feed(
        &mut self,
        socket: &mut Socket,
        text: impl Into<Utf8Bytes>,
    ) -> Result<(), String> {
        // Counted once queued: a feed cut short by the deadline sent nothing.
        socket
            .feed(Message::Text(text.into()))
            .await
            .map_err(|e| format!("sending failed: {e}"))?;
        self.tally.frames_sent += 1;
        Ok(())
    }

    async fn flush(socket: &mut Socket) -> Result<(), String> {
        socket
            .flush()
            .await
            .map_err(|e| format!("sending failed: {e}"))
    }

    async fn request_keys(&mut self, socket: &mut Socket) -> Result<(), String> {
        for j in 0..self.devices.len() {
            if self.waiting[j] {
                let text = wire::device_bridge_event(
                    self.address,
                    self.devices[j],
                    "encryption_key_required",
                );
                self.feed(socket, text).await?;
                self.tally.key_requests_sent += 1;
            }
        }
        Self::flush(socket).await
    }

    /// Seconds since the bridge connected, as its heartbeats say.
    fn uptime(&self) -> u32 {
        u32::try_from(self.connected_at.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Printer `j`'s heartbeat. Its text is made once per second of
    /// uptime and then shared (its `timestamp` may be up to a second old):
    /// a flood measures the server, not how fast this tool writes JSON.
    async fn heartbeat(
        &mut self,
        socket: &mut Socket,
        j: usize,
        uptime: u32,
    ) -> Result<(), String> {
        let text = match &self.beats[j] {
            Some((made_at, text)) if *made_at == uptime => text.clone(),
            _ => {
                let text = Utf8Bytes::from(wire::device_event(
                    self.address,
                    self.devices[j],
                    &device::heartbeat(uptime),
                ));
                self.beats[j] = Some((uptime, text.clone()));
                text
            }
        };
        self.feed(socket, text).await?;
        self.tally.heartbeats_sent += 1;
        Ok(())
    }

    async fn handle(&mut self, socket: &mut Socket, text: &str) -> Result<(), String> {
        self.tally.frames_received += 1;
        let incoming = Incoming::read(text);
        if let Some(named) = incoming.bridge()
            && !wire::names_bridge(named, self.address)
        {
            self.tally.misaddressed += 1;
            return Ok(());
        }
        let device_index = |this: &Self, d: &str| {
            DeviceAddress::parse(d)
                .ok()
                .and_then(|d| this.index_of.get(&d).copied())
        };
        match incoming {
            Incoming::AddKey {
                command_id, device, ..
            } => {
                let Some(j) = device_index(self, &device) else {
                    self.tally.misaddressed += 1;
                    return Ok(());
                };
                if self.waiting[j] {
                    self.waiting[j] = false;
                    self.tally
                        .key_latencies
                        .push(self.first_request[j].elapsed());
                    self.unanswered -= 1;
                }
                if let Some(id) = command_id {
                    let text = wire::bridge_command_response(self.address, id, 0);
                    self.feed(socket, text).await?;
                    Self::flush(socket).await?;
                }
            }
            Incoming::DeviceCommand {
                command_id, device, ..
            } => {
                let Some(j) = device_index(self, &device) else {
                    self.tally.misaddressed += 1;
                    return Ok(());
                };
                self.tally.device_commands += 1;
                if let Some(id) = command_id {
                    let d = self.devices[j];
                    let text =
                        wire::device_command_response(self.address, d, id, 0, Duration::ZERO);
                    self.feed(socket, text).await?;
                    let text = wire::device_event(self.address, d, &device::did_print(0x01, id));
                    self.feed(socket, text).await?;
                    Self::flush(socket).await?;
                }
            }
            Incoming::OtherBridgeCommand { command_id, .. } => {
                if let Some(id) = command_id {
                    let text = wire::bridge_command_response(self.address, id, 0xff);
                    self.feed(socket, text).await?;
                    Self::flush(socket).await?;
                }
            }
            Incoming::Unknown(_) => {}
        }
        Ok(())
    }
}

/// Small buffers: thousands of connections each hold one.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(16 << 20))
}

async fn run_bridge(index: usize, plan: Arc<Plan>) -> Tally {
    let opts = &plan.opts;
    let n = opts.bridges;
    let m = opts.printers_per_bridge;
    let opens_at = plan.start + opts.ramp.mul_f64(index as f64 / n as f64);
    tokio::time::sleep_until(opens_at).await;
    let mut tally = Tally::default();
    let now = Instant::now();
    if now >= plan.deadline {
        return tally;
    }
    let timeout = CONNECT_TIMEOUT.min(plan.deadline - now);
    let mut socket = match wire::connect(plan.request.clone(), Some(socket_config()), timeout).await
    {
        Ok(s) => s,
        Err(e) => {
            tally.problem = Some(format!("{e:#}"));
            return tally;
        }
    };
    tally.connected = true;

    let devices: Vec<DeviceAddress> = (0..m).map(|j| plan.device_address(index * m + j)).collect();
    let now = Instant::now();
    let mut bridge = Bridge {
        address: plan.bridge_address(index),
        index_of: devices.iter().enumerate().map(|(j, d)| (*d, j)).collect(),
        devices,
        index,
        waiting: vec![true; m],
        first_request: vec![now; m],
        unanswered: m,
        connected_at: now,
        beats: vec![None; m],
        tally,
    };
    let outcome = bridge_session(&mut bridge, &mut socket, &plan).await;
    let mut tally = bridge.tally;
    match outcome {
        Ok(()) => close(&mut socket, CLOSE_GRACE).await,
        Err(reason) => {
            tally.lost = true;
            tally.problem = Some(format!("bridge {}: {reason}", bridge.address));
        }
    }
    tally
}

async fn bridge_session(
    bridge: &mut Bridge,
    socket: &mut Socket,
    plan: &Plan,
) -> Result<(), String> {
    let opts = &plan.opts;
    let (n, m) = (opts.bridges, opts.printers_per_bridge);

    let local = wire::local_addr(socket);
    bridge
        .feed(socket, wire::power_on(bridge.address, local))
        .await?;
    for j in 0..m {
        let text =
            wire::device_bridge_event(bridge.address, bridge.devices[j], "encryption_key_required");
        bridge.feed(socket, text).await?;
        bridge.tally.key_requests_sent += 1;
        let text = wire::device_bridge_event(bridge.address, bridge.devices[j], "device_connect");
        bridge.feed(socket, text).await?;
    }
    Bridge::flush(socket).await?;
    let now = Instant::now();
    bridge.first_request.fill(now);

    let mut keys = tokio::time::interval_at(now + opts.key_interval, opts.key_interval);
    keys.set_missed_tick_behavior(MissedTickBehavior::Delay);

    // Printer g = j·n + index of the run heartbeats at g/(n·m) of the
    // interval: this bridge ticks every interval/m, shifted by index/(n·m).
    let period = if m > 0 {
        opts.heartbeat_interval.div_f64(m as f64)
    } else {
        opts.heartbeat_interval
    }
    .max(Duration::from_micros(1));
    let phase = plan.start
        + opts
            .heartbeat_interval
            .mul_f64(bridge.index as f64 / (n * m.max(1)) as f64);
    let first = if phase >= now {
        phase
    } else {
        let behind = (now - phase).as_secs_f64() / period.as_secs_f64();
        phase + period.mul_f64(behind.ceil())
    };
    let mut beats = tokio::time::interval_at(first, period);
    beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_printer = 0usize;

    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(plan.deadline) => return Ok(()),
            frame = socket.next() => match frame {
                None => return Err("the server closed the connection".into()),
                Some(Err(e)) => return Err(format!("the connection failed: {e}")),
                Some(Ok(Message::Text(text))) => bridge.handle(socket, text.as_str()).await?,
                Some(Ok(Message::Close(_))) => {
                    return Err("the server closed the connection".into())
                }
                Some(Ok(_)) => {}
            },
            _ = keys.tick(), if bridge.unanswered > 0 => bridge.request_keys(socket).await?,
            _ = beats.tick(), if m > 0 && !opts.flood => {
                let uptime = bridge.uptime();
                bridge.heartbeat(socket, next_printer, uptime).await?;
                Bridge::flush(socket).await?;
                next_printer = (next_printer + 1) % m;
            }
            () = std::future::ready(()), if m > 0 && opts.flood => {
                let uptime = bridge.uptime();
                let round = async {
                    for j in 0..m {
                        bridge.heartbeat(socket, j, uptime).await?;
                    }
                    Bridge::flush(socket).await
                };
                match tokio::time::timeout_at(plan.deadline, round).await {
                    Ok(result) => result?,
                    Err(_) => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_addresses_have_the_claim_xor_and_differ() {
        let xor = HardwareXor::new(0x73c164).unwrap();
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut seen = std::collections::HashSet::new();
        for g in (0..70_000).step_by(7).chain([0xff_ffff]) {
            let a = device_address(salt, g, Some(xor));
            assert_eq!(a.hardware_xor(), xor, "{a}");
            assert!(seen.insert(a), "{a} repeated");
        }
        let a = device_address(salt, 5, None);
        assert_ne!(a, device_address(salt, 6, None));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v[..1], 0.99), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn options_are_bounded() {
        let ok = LoadOptions::new("ws://127.0.0.1:1/", 2, 3, Duration::from_secs(1));
        assert!(ok.check().is_ok());
        let mut o = ok.clone();
        o.duration = Duration::ZERO;
        assert!(o.check().is_err());
        let mut o = ok.clone();
        o.ramp = Duration::from_secs(2);
        assert!(o.check().is_err());
        let mut o = ok.clone();
        o.bridges = 0;
        assert!(o.check().is_err());
        let mut o = ok;
        o.printers_per_bridge = MAX_PRINTERS;
        assert!(o.check().unwrap_err().to_string().contains("at most"));
    }
}
