//! Hostile clients and a busy disk (issue: hold up under hostile clients):
//! a real server on port 0 with a real SQLite file, real websocket clients
//! and raw TCP sockets. Tests that measure answer times take a lock so they
//! never run beside the ones that load the machine.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sirius::bridge::HubConfig;
use sirius::emulator::load::{LoadOptions, device_address, run_load};
use sirius::protocol::{BridgeAddress, ClaimCode, DeviceAddress};
use sirius::server::{RunningServer, ServeConfig, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const BRIDGE: &str = "000d6f0001b3719d";
const BRIDGE2: &str = "000d6f0002ff7a91";
/// The real printer of the captures; its claim code is n5ry-p6x6-kth7-7hc4.
const DEVICE: &str = "000d6f000273ce0b";
const CODE: &str = "n5ry-p6x6-kth7-7hc4";
const KEY: &str = "3WIhM48TFaHGsQPZPpTF+Q==";

/// Timing tests run alone.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server_with_config(
    dir: &std::path::Path,
    f: impl FnOnce(&mut ServeConfig),
) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("sirius.db"));
    config.hub = fast_hub();
    config.printing.time_zone = jiff::tz::TimeZone::UTC;
    config.printing.expiry_interval = Duration::from_millis(200);
    f(&mut config);
    start(config).await.expect("server starts")
}

fn claim(s: &RunningServer, user: &str, code: &str) -> i64 {
    let store = s.hub.store();
    let u = match store.user_by_name(user).unwrap() {
        Some(u) => u,
        None => store.create_user(user, None, 1).unwrap(),
    };
    store
        .claim(u.id, &ClaimCode::parse(code).unwrap(), "Kitchen", 2)
        .unwrap();
    u.id
}

async fn timed_get(s: &RunningServer, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let (status, _) = get(s, path).await;
    (status, t.elapsed())
}

fn key_request(bridge: &str, device: &str) -> Value {
    bridge_event(bridge, "encryption_key_required", device)
}

/// Waits for the link-key command for `device`.
async fn recv_key(ws: &mut Ws, device: &str, secs: f64) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = recv_json(ws, left.as_secs_f64()).await?;
        if v["json_payload"]["name"] == "add_device_encryption_key"
            && v["json_payload"]["params"]["device_address"] == device
        {
            return Some(v);
        }
    }
}

/// Holds the database's write lock from another process (python3's
/// sqlite3: `BEGIN IMMEDIATE`) for `secs`, like a backup or a command-line
/// tool on a slow SD card would. Returns once the lock is held.
fn hold_write_lock(db: &std::path::Path, secs: f64) -> std::process::Child {
    let script = format!(
        "import sqlite3, sys, time\n\
         c = sqlite3.connect({db:?}, isolation_level=None, timeout=10)\n\
         c.execute('BEGIN IMMEDIATE')\n\
         c.execute(\"INSERT INTO meta (key, value) VALUES ('lock-test', 'x') ON CONFLICT (key) DO UPDATE SET value = 'y'\")\n\
         print('locked', flush=True)\n\
         time.sleep({secs})\n\
         c.execute('COMMIT')\n\
         print('released', flush=True)\n",
        db = db.display().to_string()
    );
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect(
            "python3 (with its sqlite3 module) is needed to hold the lock from another process",
        );
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 7];
    std::io::Read::read_exact(&mut out, &mut buf)
        .expect("the lock holder says when it holds the lock");
    assert_eq!(&buf, b"locked\n");
    child.stdout = Some(out);
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_holds_up_neither_bridges_nor_pages() {
    let _alone = ALONE.lock().await;
    let dir = temp_dir("hard-lock");
    let s = server_with_config(&dir, |_| {}).await;
    let code = ClaimCode::parse("e3xp-e9dp-hh7h-8cxx").unwrap();
    claim(&s, "ada", &code.to_string());
    // 200 printers (20 bridges × 10), all with the claim's hardware xor,
    // heartbeating every second for the whole test.
    let mut opts = LoadOptions::new(ws_url(&s), 20, 10, Duration::from_secs(14));
    opts.heartbeat_interval = Duration::from_secs(1);
    opts.key_interval = Duration::from_millis(500);
    opts.claim_xor = Some(code.hardware_xor());
    let load = tokio::spawn(run_load(opts));
    // Their rows exist (written by the sweep) before the disk stalls.
    assert!(
        eventually(8.0, || s.hub.store().list_printers().unwrap().len() >= 200).await,
        "the 200 printers were written"
    );
    let printer = s.hub.store().list_printers().unwrap()[0].clone();
    let secret = sirius::web::print_key::new_secret();
    s.hub
        .store()
        .create_print_key(printer.id, &secret, None, None, 3)
        .unwrap();

    let db = dir.join("sirius.db");
    let mut holder = hold_write_lock(&db, 4.0);
    let locked_at = Instant::now();
    // Prints arrive while the disk is stalled: they wait for it, no one else.
    let mut prints = Vec::new();
    for i in 0..3 {
        let addr = s.addr;
        let path = format!("/printkey/{secret}?from=Stall");
        prints.push(tokio::spawn(async move {
            http(
                addr,
                "POST",
                &path,
                &[("Content-Type", "text/plain")],
                format!("printed during a stall, #{i}").as_bytes(),
            )
            .await
        }));
    }
    // Meanwhile /healthz answers at once, and a printer never heard before
    // gets its link key.
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    let mut slowest = Duration::ZERO;
    let mut keys = 0;
    let mut n = 0u32;
    while locked_at.elapsed() < Duration::from_millis(3500) {
        let (status, took) = timed_get(&s, "/healthz").await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
        if n.is_multiple_of(5) {
            let device = device_address([7; 8], 9000 + n, Some(code.hardware_xor())).to_string();
            let asked = Instant::now();
            send(&mut ws, &key_request(BRIDGE, &device)).await;
            let answer = recv_key(&mut ws, &device, 1.0).await;
            assert!(
                answer.is_some(),
                "a key request during the stall was answered"
            );
            assert!(
                asked.elapsed() < Duration::from_millis(500),
                "key answer took {:?}",
                asked.elapsed()
            );
            keys += 1;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slowest < Duration::from_millis(100),
        "/healthz took {slowest:?} while the database was locked"
    );
    assert!(keys >= 5);
    assert!(
        tokio::task::spawn_blocking(move || holder.wait().unwrap().success())
            .await
            .unwrap()
    );
    // Once the lock goes, the prints complete and reach the printer.
    for p in prints {
        let (status, _, body) = p.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let id = v["message_id"].as_i64().unwrap();
        assert!(
            eventually(10.0, || {
                s.hub.store().message(id).unwrap().unwrap().state
                    == sirius::store::MessageState::Delivered
            })
            .await,
            "message {id} was delivered after the stall"
        );
    }
    let report = load.await.unwrap().unwrap();
    assert_eq!(report.connections_lost, 0, "{:?}", report.first_problem);
    assert!(report.key_requests_answered >= 200);
    assert!(report.device_commands >= 3);
    s.shutdown().await;
}

#[tokio::test]
async fn answers_count_only_on_the_connection_the_command_went_out_on() {
    let dir = temp_dir("hard-foreign");
    let s = server(&dir.join("sirius.db")).await;
    claim(&s, "ada", CODE);
    let mut a = connect(&s).await;
    send(&mut a, &power_on(BRIDGE)).await;
    send(&mut a, &heartbeat(BRIDGE, DEVICE, 1)).await;
    assert!(
        eventually(2.0, || s
            .hub
            .is_online(DeviceAddress::parse(DEVICE).unwrap()))
        .await
    );
    let mut b = connect(&s).await;
    send(&mut b, &power_on(BRIDGE2)).await;

    let build = |bridge: &str, id: u32| {
        json!({"type": "DeviceCommand", "bridge_address": bridge, "device_address": DEVICE,
               "command_id": id, "binary_payload": ""})
        .to_string()
    };
    let mut d = s
        .hub
        .send_to_device(DeviceAddress::parse(DEVICE).unwrap(), "test", build)
        .unwrap();
    let id = d.command_id;
    // B answers A's command, and says the printer printed it: ignored.
    send(
        &mut b,
        &json!({"type": "DeviceCommandResponse", "bridge_address": BRIDGE2, "command_id": id,
                "return_code": 0, "timestamp": 1.0}),
    )
    .await;
    send(
        &mut b,
        &json!({"type": "DeviceEvent", "bridge_address": BRIDGE2, "device_address": DEVICE,
                "timestamp": 1.0, "binary_payload": base64_did_print(id)}),
    )
    .await;
    // Neither counted: both came on B, the command went out on A.
    assert!(
        eventually(2.0, || s
            .hub
            .stats
            .foreign_answers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2)
        .await,
        "both foreign messages were counted as foreign"
    );
    assert!(
        d.fate.try_recv().is_err(),
        "the foreign answer did not settle the command"
    );
    assert!(
        s.hub
            .store()
            .command(id)
            .unwrap()
            .unwrap()
            .answered_at
            .is_none(),
        "nothing was written for the foreign answer"
    );
    // A's own answer counts.
    send(
        &mut a,
        &json!({"type": "DeviceCommandResponse", "bridge_address": BRIDGE, "command_id": id,
                "return_code": 0, "timestamp": 1.0}),
    )
    .await;
    let fate = tokio::time::timeout(Duration::from_secs(2), d.fate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        fate,
        sirius::bridge::CommandFate::Answered(sirius::protocol::ReturnCode::SUCCESS)
    );
    s.shutdown().await;
}

/// A did_print event for `print_id` (PROTOCOL §4) in base64.
fn base64_did_print(print_id: u32) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(sirius::protocol::device::did_print(1, print_id))
}

/// A raw websocket upgrade with these extra headers; the status line's code.
async fn upgrade_status(s: &RunningServer, extra: &[(&str, &str)]) -> u16 {
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut req = format!(
        "GET /api/v1/connection HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        s.addr
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn web_pages_may_not_open_the_bridge_connection() {
    let dir = temp_dir("hard-origin");
    let s = server(&dir.join("sirius.db")).await;
    let own = format!("http://{}", s.addr);
    let real_bridge = format!("ws://{}/api/v1/connection", s.addr);
    assert_eq!(
        upgrade_status(&s, &[("Origin", "http://evil.example")]).await,
        403
    );
    assert_eq!(
        upgrade_status(&s, &[("Origin", "https://evil.example")]).await,
        403
    );
    assert_eq!(upgrade_status(&s, &[("Origin", "null")]).await, 403);
    // A real BERG bridge sends a ws: Origin; some bridges send none.
    assert_eq!(upgrade_status(&s, &[("Origin", &real_bridge)]).await, 101);
    assert_eq!(upgrade_status(&s, &[]).await, 101);
    // Libraries that name this server itself.
    assert_eq!(upgrade_status(&s, &[("Origin", &own)]).await, 101);
    s.shutdown().await;
}

/// A websocket that completes the handshake and then neither reads nor
/// writes: a bridge whose network died without a FIN.
async fn silent_bridge(s: &RunningServer) -> TcpStream {
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/connection HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        s.addr
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    stream
}

/// Reads (and drops) whatever comes until the server closes the socket;
/// returns when it did.
async fn until_closed(mut stream: TcpStream, limit: Duration) -> Option<Instant> {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_silent_bridge_is_closed_and_its_printers_go_offline() {
    let dir = temp_dir("hard-silent-fast");
    let s = server_with_config(&dir, |c| {
        c.hub.ping_interval = Duration::from_millis(300);
        c.hub.idle_timeout = Duration::from_secs(1);
        c.hub.presence_timeout = Duration::from_secs(60);
    })
    .await;
    // A silent bridge with a printer: its printer goes offline once it is
    // closed, not a minute later.
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 1)).await;
    let device = DeviceAddress::parse(DEVICE).unwrap();
    assert!(eventually(2.0, || s.hub.is_online(device)).await);
    // This client stops reading: no pongs.
    let opened = Instant::now();
    assert!(
        eventually(3.0, || !s.hub.is_online(device)).await,
        "the printer of a silent bridge went offline"
    );
    let took = opened.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert_eq!(
        s.hub
            .stats
            .idle_closed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(ws);
    s.shutdown().await;
}

#[tokio::test]
async fn with_the_defaults_a_silent_bridge_is_closed_within_90_to_120_s_and_a_ponging_one_stays() {
    let dir = temp_dir("hard-silent-real");
    // The real timings: pings every 30 s, closed after 90 s of nothing.
    let s = server_with_config(&dir, |c| c.hub = HubConfig::default()).await;
    let opened = Instant::now();
    let silent = silent_bridge(&s).await;
    // A bridge that answers pings (tungstenite answers them while reading)
    // and sends nothing else.
    let mut ponging = connect(&s).await;
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(m)) = ponging.next().await {
            if matches!(m, Message::Ping(_)) {
                pings += 1;
            }
            if matches!(m, Message::Close(_)) {
                return (pings, false);
            }
        }
        (pings, true)
    });
    let closed = until_closed(silent, Duration::from_secs(125)).await;
    let closed = closed.expect("the silent bridge was closed within 125 s");
    let after = closed.duration_since(opened);
    assert!(
        after >= Duration::from_secs(90) && after <= Duration::from_secs(120),
        "closed after {after:?}"
    );
    // The ponging one is still there after the silent one went.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !reader.is_finished(),
        "the ponging bridge is still connected"
    );
    assert_eq!(s.hub.live_sessions(), 1);
    reader.abort();
    s.shutdown().await;
}

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_hold_up_no_one() {
    let _alone = ALONE.lock().await;
    let dir = temp_dir("hard-slowloris");
    let s = server_with_config(&dir, |c| c.http.header_timeout = Duration::from_secs(3)).await;
    claim(&s, "ada", CODE);
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    // 1,000 connections that send half a request and then nothing.
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(c);
    }
    let opened = Instant::now();
    // /healthz and a bridge's key request still answer at once.
    for _ in 0..10 {
        let (status, took) = timed_get(&s, "/healthz").await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(100), "/healthz took {took:?}");
        let asked = Instant::now();
        send(&mut ws, &key_request(BRIDGE, DEVICE)).await;
        let key = recv_key(&mut ws, DEVICE, 1.0).await.expect("key answered");
        assert_eq!(key["json_payload"]["params"]["encryption_key"], KEY);
        assert!(
            asked.elapsed() < Duration::from_millis(100),
            "key took {:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(400)).await; // the key resend interval
    }
    // The slow ones are closed after the header timeout (3 s here).
    let mut closed = 0;
    for c in slow {
        if let Some(at) = until_closed(c, Duration::from_secs(6)).await {
            assert!(at.duration_since(opened) < Duration::from_secs(8));
            closed += 1;
        }
    }
    assert_eq!(closed, 1000);
    s.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let dir = temp_dir("hard-keepalive");
    let s = server_with_config(&dir, |c| c.http.header_timeout = Duration::from_secs(1)).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then idle: closed after the header timeout.
    let t = Instant::now();
    let end = until_closed(c, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(end.duration_since(t) >= Duration::from_millis(900));
    s.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_refused_and_bridges_keep_working() {
    let dir = temp_dir("hard-cap");
    let s = server_with_config(&dir, |c| {
        c.http.max_connections = 20;
        c.http.header_timeout = Duration::from_secs(30);
    })
    .await;
    claim(&s, "ada", CODE);
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    let mut idle = Vec::new();
    for _ in 0..19 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The 21st is answered 503 and closed at once.
    let t = Instant::now();
    let (status, _, body) = http(s.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("too many connections"));
    assert!(t.elapsed() < Duration::from_secs(1));
    // The bridge connected before still works.
    send(&mut ws, &key_request(BRIDGE, DEVICE)).await;
    assert!(recv_key(&mut ws, DEVICE, 2.0).await.is_some());
    assert!(
        s.hub
            .stats
            .connections_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    drop(idle);
    // Places come back when connections close.
    let mut back = false;
    for _ in 0..30 {
        if http(s.addr, "GET", "/healthz", &[], b"").await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "a place came back once the idle connections closed");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_printers_are_forgotten_and_memory_stays_flat() {
    let _alone = ALONE.lock().await;
    let dir = temp_dir("hard-invented");
    let s = server_with_config(&dir, |c| c.hub.sweep_interval = Duration::from_millis(200)).await;
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    let bridge = BridgeAddress::parse(BRIDGE).unwrap();
    let invent = |n: u32| device_address([3; 8], n, None).to_string();
    async fn send_many(ws: &mut Ws, from: u32, to: u32) {
        for n in from..to {
            let device = device_address([3; 8], n, None).to_string();
            ws.feed(Message::text(heartbeat(BRIDGE, &device, n).to_string()))
                .await
                .unwrap();
        }
        ws.flush().await.unwrap();
    }
    let received =
        |s: &RunningServer| s.hub.stats.messages[7].load(std::sync::atomic::Ordering::Relaxed);
    send_many(&mut ws, 0, 20_000).await;
    assert!(eventually(60.0, || received(&s) >= 20_000).await);
    let rss_before = rss_kib();
    send_many(&mut ws, 20_000, 100_000).await;
    assert!(eventually(120.0, || received(&s) >= 100_000).await);
    tokio::time::sleep(Duration::from_millis(800)).await; // a sweep or two
    let rss_after = rss_kib();
    assert!(
        s.hub.printers_in_memory() <= 64,
        "{} in memory",
        s.hub.printers_in_memory()
    );
    s.hub.flush(true);
    s.hub.db.flush().await;
    let rows = s.hub.store().list_printers().unwrap();
    let unclaimed = rows.iter().filter(|p| p.claim_id.is_none()).count();
    assert!(unclaimed <= 64, "{unclaimed} unclaimed printers kept");
    assert!(rows.iter().all(|p| p.last_bridge == Some(bridge)));
    // The newest are the ones kept.
    assert!(rows.iter().any(|p| p.address.to_string() == invent(99_999)));
    assert!(
        rss_after < rss_before + 8 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB over 80,000 invented printers"
    );
    // The bridge was never disconnected for it.
    send(&mut ws, &heartbeat(BRIDGE, &invent(100_001), 1)).await;
    assert!(eventually(2.0, || received(&s) >= 100_001).await);
    s.shutdown().await;
}

#[tokio::test]
async fn a_connection_speaks_for_a_few_bridges_at_most() {
    let dir = temp_dir("hard-bridges");
    let s = server(&dir.join("sirius.db")).await;
    let mut ws = connect(&s).await;
    for i in 0..10u32 {
        let bridge = format!("000d6f00{:08x}", 0x1000 + i);
        send(&mut ws, &power_on(&bridge)).await;
    }
    assert!(
        eventually(2.0, || s
            .hub
            .stats
            .bridges_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            == 6)
        .await
    );
    assert_eq!(s.hub.bridges_connected(), 4);
    s.hub.db.flush().await;
    assert_eq!(s.hub.store().list_bridges().unwrap().len(), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn unknown_return_codes_share_one_counter() {
    let dir = temp_dir("hard-codes");
    let s = server(&dir.join("sirius.db")).await;
    claim(&s, "ada", CODE);
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 1)).await;
    let device = DeviceAddress::parse(DEVICE).unwrap();
    assert!(eventually(2.0, || s.hub.is_online(device)).await);
    let build = |bridge: &str, id: u32| {
        json!({"type": "DeviceCommand", "bridge_address": bridge, "device_address": DEVICE,
               "command_id": id, "binary_payload": ""})
        .to_string()
    };
    for code in [0x1234u32, 0x4321, 0x30] {
        let d = s.hub.send_to_device(device, "test", build).unwrap();
        send(
            &mut ws,
            &json!({"type": "DeviceCommandResponse", "bridge_address": BRIDGE,
                    "command_id": d.command_id, "return_code": code, "timestamp": 1.0}),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), d.fate).await;
    }
    let stats = json_get(&s, "/_/stats").await;
    let by_code = stats["responses_by_return_code"].as_object().unwrap();
    assert_eq!(by_code["other"], 2, "{by_code:?}");
    assert_eq!(by_code["48_busy"], 1, "{by_code:?}");
    assert_eq!(by_code.len(), 2);
    s.shutdown().await;
}

async fn post_text(s: &RunningServer, secret: &str, text: &str) -> (u16, Value) {
    let (status, _, body) = http(
        s.addr,
        "POST",
        &format!("/printkey/{secret}"),
        &[("Content-Type", "text/plain")],
        text.as_bytes(),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_new_owner_revokes_the_old_owners_print_keys() {
    let dir = temp_dir("hard-owner");
    let s = server(&dir.join("sirius.db")).await;
    claim(&s, "ada", CODE);
    let store = s.hub.store();
    let p = store
        .ensure_printer(DeviceAddress::parse(DEVICE).unwrap(), 1)
        .unwrap();
    let secret = sirius::web::print_key::new_secret();
    store
        .create_print_key(p.id, &secret, None, None, 3)
        .unwrap();
    assert_eq!(post_text(&s, &secret, "from Ada's script").await.0, 200);
    // The printer is reset and claimed with its new code by Bob.
    let xor = DeviceAddress::parse(DEVICE).unwrap().hardware_xor();
    let new_code = ClaimCode::new(
        xor,
        sirius::protocol::ClaimSecret::new(0x1234567890).unwrap(),
    );
    claim(&s, "bob", &new_code.to_string());
    let (status, v) = post_text(&s, &secret, "still Ada's script").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(get(&s, &format!("/printkey/{secret}")).await.0, 404);
    // The same owner claiming again (a reset) keeps their keys.
    let bob = store.user_by_name("bob").unwrap().unwrap();
    let bobs = sirius::web::print_key::new_secret();
    store
        .create_print_key(p.id, &bobs, Some("phone"), Some(bob.id), 4)
        .unwrap();
    let again = ClaimCode::new(
        xor,
        sirius::protocol::ClaimSecret::new(0x0987654321).unwrap(),
    );
    claim(&s, "bob", &again.to_string());
    assert_eq!(post_text(&s, &bobs, "Bob's phone").await.0, 200);
    s.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_answers_429_and_keeps_what_was_queued() {
    let dir = temp_dir("hard-queue");
    let s = server_with_config(&dir, |c| c.printing.queue_limit = 3).await;
    claim(&s, "ada", CODE);
    let p = s
        .hub
        .store()
        .ensure_printer(DeviceAddress::parse(DEVICE).unwrap(), 1)
        .unwrap();
    let secret = sirius::web::print_key::new_secret();
    s.hub
        .store()
        .create_print_key(p.id, &secret, None, None, 3)
        .unwrap();
    // The printer is offline: everything queues.
    for i in 0..3 {
        let (status, v) = post_text(&s, &secret, &format!("note {i}")).await;
        assert_eq!((status, v["status"].as_str()), (200, Some("queued")));
    }
    let (status, v) = post_text(&s, &secret, "one too many").await;
    assert_eq!(status, 429);
    assert!(
        v["message"].as_str().unwrap().contains("queue is full"),
        "{v}"
    );
    let queued: Vec<_> = s.hub.store().recent_messages(p.id, 10).unwrap();
    assert_eq!(queued.len(), 3);
    assert!(
        queued
            .iter()
            .all(|m| m.state == sirius::store::MessageState::Queued)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_that_overruns_gives_its_slot_to_others() {
    let _alone = ALONE.lock().await;
    let dir = temp_dir("hard-overrun");
    let s = server_with_config(&dir, |c| {
        c.render.concurrency = 1;
        c.render.time_limit = Duration::from_millis(150);
    })
    .await;
    claim(&s, "ada", CODE);
    let p = s
        .hub
        .store()
        .ensure_printer(DeviceAddress::parse(DEVICE).unwrap(), 1)
        .unwrap();
    let secret = sirius::web::print_key::new_secret();
    s.hub
        .store()
        .create_print_key(p.id, &secret, None, None, 3)
        .unwrap();
    // A document that takes far longer than 150 ms to lay out.
    let heavy: String = (0..4000)
        .map(|i| {
            format!(
                "<p style='font-size:{}px'>paragraph {i} with some words to wrap around</p>",
                10 + i % 30
            )
        })
        .collect();
    let (status, _, body) = http(
        s.addr,
        "POST",
        &format!("/printkey/{secret}"),
        &[("Content-Type", "text/html")],
        heavy.as_bytes(),
    )
    .await;
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("longer than"));
    assert_eq!(
        s.printing.renderer().abandoned_renders(),
        1,
        "the heavy render still runs"
    );
    assert_eq!(
        s.printing.renderer().available_slots(),
        1,
        "its slot is free"
    );
    // The slot is free: a small message renders while the heavy one runs.
    let (status, v) = post_text(&s, &secret, "short").await;
    assert_eq!(status, 200, "{v}");
    assert!(
        eventually(60.0, || s.printing.renderer().abandoned_renders() == 0).await,
        "the abandoned render finished by itself"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off() {
    let dir = temp_dir("hard-trickle");
    let s = server_with_config(&dir, |c| c.http.body_deadline = Duration::from_secs(1)).await;
    claim(&s, "ada", CODE);
    let p = s
        .hub
        .store()
        .ensure_printer(DeviceAddress::parse(DEVICE).unwrap(), 1)
        .unwrap();
    let secret = sirius::web::print_key::new_secret();
    s.hub
        .store()
        .create_print_key(p.id, &secret, None, None, 3)
        .unwrap();
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(
        format!(
            "POST /printkey/{secret} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nonly a little"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(s.hub.store().recent_messages(p.id, 5).unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn the_same_content_twice_within_30_s_prints_once() {
    let dir = temp_dir("hard-dedupe");
    let s = server(&dir.join("sirius.db")).await;
    claim(&s, "ada", CODE);
    let p = s
        .hub
        .store()
        .ensure_printer(DeviceAddress::parse(DEVICE).unwrap(), 1)
        .unwrap();
    let secret = sirius::web::print_key::new_secret();
    s.hub
        .store()
        .create_print_key(p.id, &secret, None, None, 3)
        .unwrap();
    // Shared once, sent three times at once by a phone app.
    let mut sends = Vec::new();
    for _ in 0..3 {
        let addr = s.addr;
        let path = format!("/printkey/{secret}?from=Phone");
        sends.push(tokio::spawn(async move {
            http(
                addr,
                "POST",
                &path,
                &[("Content-Type", "text/plain")],
                b"Milk, eggs",
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for send in sends {
        let (status, _, body) = send.await.unwrap();
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        ids.push(v["message_id"].as_i64().unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // Other content, or another sender, is another message.
    let (_, other) = post_text(&s, &secret, "Milk, eggs, bread").await;
    assert_ne!(other["message_id"].as_i64().unwrap(), ids[0]);
    assert_eq!(s.hub.store().recent_messages(p.id, 10).unwrap().len(), 2);
    s.shutdown().await;
}
