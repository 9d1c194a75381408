//! Nothing the user sent is lost when the server is killed with SIGKILL:
//! between storing and sending, and between sending and the answer.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, temp_dir};
use serde_json::Value;
use sirius::emulator::{PrinterIdentity, PrinterOptions, run_printer};
use sirius::store::{MessageState, Store};
use tokio::sync::watch;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(db: &Path, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_sirius"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("SIRIUS_DB", db)
            .env("SIRIUS_TIME_ZONE", "UTC")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Server { child, port }
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn emulator(
    port: u16,
    identity: &PrinterIdentity,
    out: &Path,
    never_answer: bool,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let mut opts = PrinterOptions::new(format!("ws://127.0.0.1:{port}/api/v1/connection"), out);
    opts.key_interval = Duration::from_millis(200);
    opts.heartbeat_interval = Duration::from_millis(200);
    opts.backoff_min = Duration::from_millis(50);
    opts.backoff_max = Duration::from_millis(200);
    opts.never_answer = never_answer;
    let identity = PrinterIdentity {
        address: identity.address,
        secret: identity.secret,
        db_id: None,
    };
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let _ = run_printer(identity, opts, None, rx).await;
    });
    (stop, task)
}

async fn wait_state(db: &Path, id: i64, want: MessageState, secs: u64) -> bool {
    let store = Store::open(db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if store.message(id).unwrap().map(|m| m.state) == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn messages_survive_sigkill_before_sending_and_before_the_answer() {
    let dir = temp_dir("crash");
    let db = dir.join("sirius.db");
    let identity = PrinterIdentity::random();
    let secret = {
        let store = Store::open(&db).unwrap();
        let user = store.create_user("ada", None, 1).unwrap();
        store
            .claim(user.id, &identity.claim_code(), "Hall", 1)
            .unwrap();
        let p = store.ensure_printer(identity.address, 1).unwrap();
        let secret = sirius::web::print_key::new_secret();
        store
            .create_print_key(p.id, &secret, None, None, 1)
            .unwrap();
        secret
    };
    let port = free_port();

    // 1. Stored while the printer is offline, then SIGKILL before sending.
    let server = Server::start(&db, port);
    let (status, _, body) = http(
        server.addr(),
        "POST",
        &format!("/printkey/{secret}?from=Ada"),
        &[("Content-Type", "text/plain")],
        b"survives a crash",
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "queued");
    let first = v["message_id"].as_i64().unwrap();
    server.kill9();
    let server = Server::start(&db, port);
    let (stop, task) = emulator(port, &identity, &dir, false);
    assert!(
        wait_state(&db, first, MessageState::Delivered, 15).await,
        "queued message delivered after a SIGKILL and restart"
    );
    let _ = stop.send(true);
    let _ = task.await;

    // 2. Sent, then SIGKILL before the answer: sent again after restart.
    let (stop, task) = emulator(port, &identity, &dir, true);
    let store = Store::open(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = http(
            server.addr(),
            "GET",
            &format!("/printkey/{secret}"),
            &[],
            b"",
        )
        .await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        if v["status"] == "online" {
            break;
        }
        assert!(Instant::now() < deadline, "the printer never came online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = http(
        server.addr(),
        "POST",
        &format!("/printkey/{secret}"),
        &[("Content-Type", "text/plain")],
        b"in flight when the server died",
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "sent");
    let second = v["message_id"].as_i64().unwrap();
    assert_eq!(
        store.message(second).unwrap().unwrap().state,
        MessageState::Sent
    );
    server.kill9();
    let _ = stop.send(true);
    let _ = task.await;
    let _server = Server::start(&db, port);
    let (stop, task) = emulator(port, &identity, &dir, false);
    assert!(
        wait_state(&db, second, MessageState::Delivered, 15).await,
        "in-flight message sent again after a SIGKILL and restart"
    );
    assert_eq!(store.message(second).unwrap().unwrap().attempts, 2);
    let _ = stop.send(true);
    let _ = task.await;
}
