//! mDNS on a real (virtual) network: two network namespaces joined by a
//! veth pair, `sirius serve` running in one (as a separate process, through
//! `ip netns exec`), an mDNS browser in the other, seeing "Sirius on
//! HOSTNAME" at the server's port and address — and seeing it go when the
//! server stops. A second server with `--no-mdns` next to it is never seen.
//!
//! Needs root (network namespaces) and iproute2 (installed when missing).
//! It fails, saying what is missing, rather than skip.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::temp_dir;
use mdns_sd::{ServiceDaemon, ServiceEvent};

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ensure_ip() {
    if Command::new("ip").arg("-V").output().is_ok() {
        return;
    }
    eprintln!("installing iproute2 (for `ip netns`)");
    let _ = Command::new("apt-get").arg("update").status();
    let ok = Command::new("apt-get")
        .args(["install", "-y", "iproute2"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs iproute2 (`ip`) and could not install it: apt-get install iproute2"
    );
}

/// Two namespaces joined by a veth pair; removed when dropped.
struct Lan {
    server_ns: String,
    browser_ns: String,
}

const SERVER_IP: &str = "10.231.7.1";
const BROWSER_IP: &str = "10.231.7.2";

impl Lan {
    fn new() -> Lan {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test makes network namespaces and must run as root"
        );
        ensure_ip();
        let id = std::process::id();
        let lan = Lan {
            server_ns: format!("sirius-srv-{id}"),
            browser_ns: format!("sirius-brw-{id}"),
        };
        let (a, b) = (lan.server_ns.as_str(), lan.browser_ns.as_str());
        run("ip", &["netns", "add", a]);
        run("ip", &["netns", "add", b]);
        run(
            "ip",
            &[
                "-n", a, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", b,
            ],
        );
        for (ns, ip) in [(a, SERVER_IP), (b, BROWSER_IP)] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "lan0"],
            );
            run(
                "ip",
                &["-n", ns, "link", "set", "lan0", "up", "multicast", "on"],
            );
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.browser_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A `sirius serve` inside a namespace; stopped (SIGTERM) when dropped.
struct Server(Child);

impl Server {
    fn start(ns: &str, db: &Path, port: u16, extra: &[&str], log: &Path) -> Server {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_sirius"), "serve"])
            .args(["--listen", &format!("0.0.0.0:{port}")])
            .args(extra)
            .env("SIRIUS_DB", db)
            .env("SIRIUS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Server(child)
    }

    fn stop(&mut self) {
        // `ip netns exec` execs the program: this pid is sirius.
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// What the browser saw: resolved services by full name (port, IPv4
/// addresses), and removals.
#[derive(Debug, Default, Clone)]
struct Seen {
    resolved: HashMap<String, (u16, Vec<Ipv4Addr>, Option<String>)>,
    removed: Vec<String>,
}

/// Browses `_http._tcp.local.` from inside `ns` (a thread moved into the
/// namespace; the daemon's own thread, started from it, is there too).
fn browse_in(
    ns: &str,
) -> (
    std::sync::mpsc::Receiver<ServiceEvent>,
    std::sync::mpsc::Sender<()>,
) {
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread with a namespace file we opened.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let daemon = ServiceDaemon::new().expect("an mDNS daemon in the browser namespace");
        let events = daemon.browse("_http._tcp.local.").unwrap();
        loop {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            match events.recv_timeout(Duration::from_millis(100)) {
                Ok(e) => {
                    if events_tx.send(e).is_err() {
                        break;
                    }
                }
                Err(mdns_sd::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        let _ = daemon.shutdown();
    });
    (events_rx, stop_tx)
}

fn collect(
    events: &std::sync::mpsc::Receiver<ServiceEvent>,
    seen: &mut Seen,
    until: Instant,
    mut done: impl FnMut(&Seen) -> bool,
) -> bool {
    while Instant::now() < until {
        if done(seen) {
            return true;
        }
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(ServiceEvent::ServiceResolved(s)) => {
                let v4 = s.get_addresses_v4().into_iter().collect();
                seen.resolved.insert(
                    s.fullname.clone(),
                    (
                        s.port,
                        v4,
                        s.get_property_val_str("path").map(str::to_string),
                    ),
                );
            }
            Ok(ServiceEvent::ServiceRemoved(_, name)) => seen.removed.push(name),
            Ok(_) | Err(_) => {}
        }
    }
    done(seen)
}

fn hostname_label() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim().split('.').next().unwrap().to_string()
}

#[test]
fn a_browser_on_the_lan_finds_the_server_and_sees_it_go() {
    let lan = Lan::new();
    let dir = temp_dir("mdns");
    let name = format!("Sirius on {}._http._tcp.local.", hostname_label());
    let (events, stop_browsing) = browse_in(&lan.browser_ns);

    let quiet_log = dir.join("quiet.log");
    let _quiet = Server::start(
        &lan.server_ns,
        &dir.join("quiet.db"),
        5102,
        &["--no-mdns"],
        &quiet_log,
    );
    let log = dir.join("server.log");
    let mut server = Server::start(&lan.server_ns, &dir.join("sirius.db"), 5002, &[], &log);

    let mut seen = Seen::default();
    let found = collect(
        &events,
        &mut seen,
        Instant::now() + Duration::from_secs(20),
        |s| {
            s.resolved
                .get(&name)
                .is_some_and(|(_, v4, _)| !v4.is_empty())
        },
    );
    assert!(
        found,
        "the browser never saw {name:?}; it saw {seen:?}\nserver log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (port, v4, path) = &seen.resolved[&name];
    assert_eq!(*port, 5002);
    assert_eq!(v4, &[SERVER_IP.parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(path.as_deref(), Some("/"));
    // The --no-mdns server, started first, is never announced: give it a
    // few more seconds, then only the one instance exists.
    collect(
        &events,
        &mut seen,
        Instant::now() + Duration::from_secs(3),
        |_| false,
    );
    assert_eq!(
        seen.resolved.len(),
        1,
        "only one server announced itself: {seen:?}"
    );
    assert!(seen.resolved.values().all(|(port, _, _)| *port != 5102));
    let server_log = std::fs::read_to_string(&log).unwrap();
    assert!(server_log.contains("announcing"), "{server_log}");

    // Stopping says goodbye: the browser drops it.
    server.stop();
    let gone = collect(
        &events,
        &mut seen,
        Instant::now() + Duration::from_secs(10),
        |s| s.removed.contains(&name),
    );
    assert!(gone, "the browser never saw it go: {seen:?}");
    let _ = stop_browsing.send(());
}
