//! `sirius serve` as systemd runs it with `Type=notify`: the real binary,
//! a real `NOTIFY_SOCKET` (a Unix datagram socket this test binds, as
//! systemd does) and, when asked, `WATCHDOG_USEC`. A real bridge connects
//! over a websocket and the status line follows it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, heartbeat, power_on, send, temp_dir};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const BRIDGE: &str = "000d6f0001b3719d";
const DEVICE: &str = "000d6f000273ce0b";

/// Kills the child when dropped, so a failing test leaves no process.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What systemd would see: every datagram the server sends, with when.
struct NotifySocket(UnixDatagram);

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let sock = UnixDatagram::bind(dir.join("notify.sock")).unwrap();
        NotifySocket(sock)
    }

    /// The next notification within `secs`, or None.
    fn next(&self, secs: f64) -> Option<String> {
        self.0
            .set_read_timeout(Some(Duration::from_secs_f64(secs)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = self.0.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Notifications until one satisfies `want`, within `secs`.
    fn until(&self, secs: f64, want: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left.as_secs_f64().max(0.001)) {
                Some(msg) => {
                    let done = want(&msg);
                    seen.push(msg);
                    if done {
                        return seen;
                    }
                }
                None => break,
            }
        }
        panic!("no wanted notification within {secs} s; got {seen:?}");
    }
}

fn serve(dir: &Path, port: u16, watchdog_usec: Option<u64>) -> Guard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sirius"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("SIRIUS_DB", dir.join("sirius.db"))
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec.to_string());
    }
    Guard(cmd.spawn().unwrap())
}

fn healthz(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
}

#[test]
fn ready_once_listening_then_status_and_keepalives_then_stopping() {
    let dir = temp_dir("service-notify");
    let notify = NotifySocket::bind(&dir);
    let port = free_port();
    // A 600 ms watchdog: keep-alives (and status lines) every 300 ms.
    let mut server = serve(&dir, port, Some(600_000));

    let first = notify.next(15.0).expect("the server never said READY=1");
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(
        first.contains("STATUS=0 bridges connected, 0 printers online"),
        "{first:?}"
    );
    // READY means ready: the listener answers and the store is open.
    let health = healthz(port).expect("READY=1 came before the listener was up");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\"") || health.contains("\"status\": \"ok\""));

    // Keep-alives at half the watchdog interval.
    let started = Instant::now();
    let mut keepalives = 0;
    while started.elapsed() < Duration::from_millis(1600) {
        if let Some(msg) = notify.next(0.5)
            && msg.lines().any(|l| l == "WATCHDOG=1")
        {
            keepalives += 1;
        }
    }
    assert!(
        (3..=8).contains(&keepalives),
        "{keepalives} keep-alives in 1.6 s with WATCHDOG_USEC=600000"
    );

    // A bridge and its printer show up in the status line.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ws = rt.block_on(async {
        let mut req = format!("ws://127.0.0.1:{port}/api/v1/connection")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("bergcloud-bridge-v1"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        send(&mut ws, &power_on(BRIDGE)).await;
        send(&mut ws, &heartbeat(BRIDGE, DEVICE, 30)).await;
        ws
    });
    notify.until(5.0, |m| {
        m.contains("STATUS=1 bridge connected, 1 printer online")
    });

    // SIGTERM: STOPPING=1, then a clean exit.
    sigterm(&server.0);
    notify.until(5.0, |m| m.lines().any(|l| l == "STOPPING=1"));
    let status = server.0.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_keepalives_unless_systemd_asks_for_them() {
    let dir = temp_dir("service-nowatchdog");
    let notify = NotifySocket::bind(&dir);
    let port = free_port();
    let server = serve(&dir, port, None);
    let first = notify.next(15.0).expect("the server never said READY=1");
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // Without WatchdogSec, the next word is the status refresh after 10 s.
    let mut later = Vec::new();
    while let Some(msg) = notify.next(1.5) {
        later.push(msg);
    }
    assert!(
        later.iter().all(|m| !m.contains("WATCHDOG=1")),
        "keep-alives nobody asked for: {later:?}"
    );
    sigterm(&server.0);
    notify.until(5.0, |m| m.contains("STOPPING=1"));
    let _ = std::fs::remove_dir_all(&dir);
}
