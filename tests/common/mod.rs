//! Shared helpers for tests that cross a socket: a real server on port 0
//! with a real SQLite file, and real websocket clients over TCP.
#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sirius::bridge::HubConfig;
use sirius::protocol::device;
use sirius::server::{RunningServer, ServeConfig, start};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sirius-test-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Timings short enough for tests.
pub fn fast_hub() -> HubConfig {
    HubConfig {
        presence_timeout: Duration::from_millis(1500),
        sweep_interval: Duration::from_millis(100),
        flush_interval: Duration::from_millis(500),
        command_timeout: Duration::from_secs(2),
        key_resend_interval: Duration::from_millis(300),
        ..HubConfig::default()
    }
}

pub async fn server(db: &Path) -> RunningServer {
    server_with(db, fast_hub()).await
}

pub async fn server_with(db: &Path, hub: HubConfig) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), db.to_path_buf());
    config.hub = hub;
    config.printing.time_zone = jiff::tz::TimeZone::UTC;
    config.printing.expiry_interval = Duration::from_millis(200);
    start(config).await.expect("server starts")
}

pub fn ws_url(s: &RunningServer) -> String {
    format!("ws://{}/api/v1/connection", s.addr)
}

/// Connects as a bridge does, offering the subprotocol.
pub async fn connect(s: &RunningServer) -> Ws {
    let mut req = ws_url(s).into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("bergcloud-bridge-v1"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("bergcloud-bridge-v1")
    );
    ws
}

pub async fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(Utf8Bytes::from(text.to_string())))
        .await
        .expect("send");
}

/// The next text message as JSON, within `secs`.
pub async fn recv_json(ws: &mut Ws, secs: f64) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(&t).expect("server sends JSON"));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Waits for the close frame, returning its code.
pub async fn recv_close(ws: &mut Ws, secs: f64) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()? {
            Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => return Some(code.into()),
            Some(Ok(Message::Close(None))) => return Some(1005),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

pub fn power_on(bridge: &str) -> Value {
    json!({"type": "BridgeEvent", "bridge_address": bridge, "timestamp": 1426256447.7,
        "json_payload": {"name": "power_on", "model": "A", "firmware_version": "v2.3.1-f3c7946",
        "ncp_version": "0x46C5", "local_ip_address": "192.168.1.98", "mac_address": "40:d8:55:01:c1:b3",
        "uptime": "45.71 23.94", "uboot_environment": "", "network_info": {}}})
}

pub fn bridge_event(bridge: &str, name: &str, device: &str) -> Value {
    json!({"type": "BridgeEvent", "bridge_address": bridge, "timestamp": 1426256449.8,
        "json_payload": {"name": name, "device_address": device}})
}

pub fn heartbeat(bridge: &str, device: &str, uptime: u32) -> Value {
    json!({"type": "DeviceEvent", "bridge_address": bridge, "device_address": device,
        "timestamp": 1426256547.5, "rssi_stats": [-20, -20, -19],
        "binary_payload": base64::engine::general_purpose::STANDARD.encode(device::heartbeat(uptime))})
}

pub async fn get(s: &RunningServer, path: &str) -> (u16, String) {
    http_get(s, path, &[]).await
}

/// A plain HTTP/1.1 GET over a fresh TCP connection.
pub async fn http_get(s: &RunningServer, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        s.addr
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// An HTTP/1.1 request over a fresh TCP connection: (status, headers
/// lowercased, body).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) before reading a large body.
    let _ = stream.write_all(body).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP answer");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, buf[split + 4..].to_vec())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub async fn json_get(s: &RunningServer, path: &str) -> Value {
    let (status, body) = get(s, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    // Bodies are small and not chunked here.
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Polls `check` every 20 ms for up to `secs`.
pub async fn eventually(secs: f64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/captures")
            .join(name),
    )
    .unwrap()
}

/// Makes sure every file in `needed` exists, installing the Debian
/// `packages` with apt when one is missing (the tests run as root on
/// Debian, as CI does). Fails saying what is missing and how to get it
/// when it cannot: a test that needs a package never passes by skipping.
pub fn ensure_debian_packages(needed: &[&str], packages: &[&str]) {
    // One installation at a time: tests run in parallel, apt does not.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|e| e.into_inner());
    let missing = || -> Vec<&str> {
        needed
            .iter()
            .copied()
            .filter(|f| !Path::new(f).exists())
            .collect()
    };
    if missing().is_empty() {
        return;
    }
    let list = packages.join(" ");
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "this test needs {:?}, which are missing, and it is not root so it cannot install them: run `apt-get install {list}`",
        missing()
    );
    eprintln!(
        "installing {list} for {:?} (apt-get update && apt-get install -y {list})",
        missing()
    );
    let apt = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(packages);
    let ok = apt(&["update"]) && apt(&install);
    assert!(
        ok && missing().is_empty(),
        "could not install {list} (apt-get install -y {list} failed or did not provide {:?}); install them by hand",
        missing()
    );
}

/// A port nobody listens on right now (for servers started as processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
