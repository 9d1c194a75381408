//! The server's command-line tools as a self-hoster uses them: the real
//! binary against a real database file — users, fake printers, claims —
//! and a full claim with `serve` + `fake printer` + `emulate printer`
//! reaching "online", all as separate processes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, temp_dir};
use serde_json::Value;

fn sirius(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sirius"))
        .args(args)
        .env("SIRIUS_DB", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A tool that needs no input may exit before reading it (broken pipe).
    let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines_json(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Kills the child when dropped, so a failing test leaves no process.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn users_and_passwords() {
    let dir = temp_dir("cli-users");
    let db = dir.join("sirius.db");
    let out = sirius(
        &db,
        &["user", "add", "ada", "--password-stdin"],
        Some("correct horse\n"),
    );
    assert!(ok(&out).contains("created user ada"));
    // The same name again is refused with a clear message, nothing changes.
    let again = sirius(
        &db,
        &["user", "add", "ADA", "--password-stdin"],
        Some("x\n"),
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("ADA") || err.contains("ada"), "{err}");
    ok(&sirius(&db, &["fake", "user", "bob"], None));
    let users = lines_json(&ok(&sirius(&db, &["user", "list", "--json"], None)));
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["username"], "ada");
    assert_eq!(users[0]["has_password"], true);
    assert_eq!(users[1]["username"], "bob");
    assert_eq!(users[1]["has_password"], false);
    // The password was hashed with argon2, not stored.
    let raw = std::fs::read(&db).unwrap();
    assert!(!raw.windows(13).any(|w| w == b"correct horse"));
    let store = sirius::store::Store::open(&db).unwrap();
    assert!(
        store
            .verify_password("ada", "correct horse")
            .unwrap()
            .is_some()
    );
    assert!(store.verify_password("ada", "wrong").unwrap().is_none());
}

#[test]
fn fake_printer_and_claims() {
    let dir = temp_dir("cli-claims");
    let db = dir.join("sirius.db");
    let out = ok(&sirius(
        &db,
        &["fake", "printer", "--dir", dir.to_str().unwrap()],
        None,
    ));
    // The earlier server's layout: right-aligned labels.
    let field = |label: &str| -> String {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .trim()
            .to_string()
    };
    let address = field("address");
    let code = field("claim code");
    assert_eq!(address.len(), 16);
    assert!(out.contains("       DB id: "), "{out}");
    let file = std::fs::read_to_string(dir.join(format!("{address}.printer"))).unwrap();
    assert_eq!(file, out);
    // The code decodes to the printer's hardware xor and the secret.
    let decoded = lines_json(&ok(&sirius(
        &db,
        &["inspect", "claim-code", "--json", &code],
        None,
    )));
    assert_eq!(decoded[0]["secret"].as_str().unwrap(), field("secret"));
    assert_eq!(decoded[0]["hardware_xor"].to_string(), field("xor"));

    ok(&sirius(&db, &["fake", "user", "ada"], None));
    ok(&sirius(&db, &["fake", "user", "eve"], None));
    let claimed = ok(&sirius(
        &db,
        &["printer", "claim", "--owner", "ada", &code, "Kitchen"],
        None,
    ));
    assert!(claimed.contains("Kitchen"), "{claimed}");
    // Someone else with the same code: refused.
    let stolen = sirius(
        &db,
        &["printer", "claim", "--owner", "eve", &code, "Mine"],
        None,
    );
    assert!(!stolen.status.success());
    assert!(
        String::from_utf8_lossy(&stolen.stderr).contains("already been claimed"),
        "{}",
        String::from_utf8_lossy(&stolen.stderr)
    );
    // A mistyped code: refused, says so.
    let typo = sirius(
        &db,
        &[
            "printer",
            "claim",
            "--owner",
            "ada",
            "n5ry-p6x6-kth7-7hc5",
            "X",
        ],
        None,
    );
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("typo"));
    let printers = lines_json(&ok(&sirius(&db, &["printer", "list", "--json"], None)));
    assert_eq!(printers.len(), 1);
    assert_eq!(printers[0]["address"], address.as_str());
    assert_eq!(printers[0]["owner"], "ada");
    assert_eq!(printers[0]["name"], "Kitchen");

    // fake claim: in someone's name, creating the user.
    let other = sirius::emulator::PrinterIdentity::random();
    let out = ok(&sirius(
        &db,
        &[
            "fake",
            "claim",
            &other.address.to_string(),
            "carol",
            &other.claim_code().to_string(),
            "Desk",
        ],
        None,
    ));
    assert!(out.contains("carol"), "{out}");
    let printers = lines_json(&ok(&sirius(&db, &["printer", "list", "--json"], None)));
    assert!(
        printers
            .iter()
            .any(|p| p["owner"] == "carol" && p["name"] == "Desk")
    );
}

fn http_json(port: u16, path: &str) -> Option<Value> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    serde_json::from_str(buf.split_once("\r\n\r\n")?.1).ok()
}

#[test]
fn full_claim_with_fake_printer_and_emulator_reaches_online() {
    let dir = temp_dir("cli-e2e");
    let db = dir.join("sirius.db");
    let port = free_port();
    let started = Instant::now();
    let _server = Guard(
        Command::new(env!("CARGO_BIN_EXE_sirius"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("SIRIUS_DB", &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while http_json(port, "/healthz").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = ok(&sirius(
        &db,
        &["fake", "printer", "--dir", dir.to_str().unwrap(), "--json"],
        None,
    ));
    let printer = &lines_json(&out)[0];
    let address = printer["address"].as_str().unwrap().to_string();
    let code = printer["claim_code"].as_str().unwrap().to_string();
    ok(&sirius(&db, &["fake", "user", "ada"], None));
    ok(&sirius(
        &db,
        &["printer", "claim", "--owner", "ada", &code, "Hall"],
        None,
    ));
    let mut emulator = Guard(
        Command::new(env!("CARGO_BIN_EXE_sirius"))
            .args([
                "emulate",
                "printer",
                printer["file"].as_str().unwrap(),
                &format!("ws://127.0.0.1:{port}/api/v1/connection"),
                "--out",
                dir.to_str().unwrap(),
                "--heartbeat-interval",
                "0.2",
                "--key-interval",
                "0.5",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The emulator reports the key it got as accepted (it checks it
    // against the secret in the file).
    let stdout = emulator.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut accepted = false;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("key_accepted") || line.contains("KeyAccepted") {
            accepted = true;
            break;
        }
        assert!(!line.contains("key_rejected"), "{line}");
    }
    assert!(accepted, "the emulator never accepted a key");
    // And the server sees the printer online.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = http_json(port, "/healthz").unwrap();
        if health["printers_online"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "printer never online: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let printers = lines_json(&ok(&sirius(&db, &["printer", "list", "--json"], None)));
    assert_eq!(printers[0]["address"], address.as_str());
    assert_eq!(printers[0]["owner"], "ada");
}

#[test]
fn print_keys_from_the_command_line() {
    let dir = temp_dir("cli-keys");
    let db = dir.join("sirius.db");
    let printer = lines_json(&ok(&sirius(
        &db,
        &["fake", "printer", "--dir", dir.to_str().unwrap(), "--json"],
        None,
    )))
    .remove(0);
    let address = printer["address"].as_str().unwrap();
    // By address: the URL on a line of its own.
    let url = ok(&sirius(
        &db,
        &[
            "key",
            "create",
            address,
            "--public-url",
            "https://printer.example.org/",
        ],
        None,
    ));
    let url = url.trim();
    let secret = url
        .strip_prefix("https://printer.example.org/printkey/")
        .unwrap_or_else(|| panic!("{url}"));
    assert!(secret.len() >= 20);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    // By id, as JSON.
    let id = printer["db_id"].to_string();
    let made = lines_json(&ok(&sirius(&db, &["key", "create", &id, "--json"], None))).remove(0);
    assert_eq!(made["printer"], address);
    assert_ne!(made["secret"].as_str().unwrap(), secret);
    assert!(
        made["url"]
            .as_str()
            .unwrap()
            .ends_with(made["secret"].as_str().unwrap())
    );
    let listed = lines_json(&ok(&sirius(&db, &["key", "list", "--json"], None)));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["uses"], 0);
    // Only a hash is kept: the list shows the first characters, never the
    // secret.
    assert_eq!(listed[0]["prefix"], &secret[..4]);
    assert!(!listed.iter().any(|k| k.to_string().contains(secret)));
    // Revoke by URL; revoking again says there is no such key.
    ok(&sirius(&db, &["key", "revoke", url], None));
    let again = sirius(&db, &["key", "revoke", url], None);
    assert!(!again.status.success());
    let listed = lines_json(&ok(&sirius(&db, &["key", "list", "--json"], None)));
    assert_eq!(listed[0]["revoked"], true);
    assert_eq!(listed[1]["revoked"], false);
    let unknown = sirius(&db, &["key", "create", "999"], None);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no printer"));
}
