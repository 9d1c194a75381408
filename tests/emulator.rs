//! The emulator and the load generator against small scripted servers:
//! real websockets on 127.0.0.1, the server side played step by step by the
//! test, every wait bounded.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use sirius::emulator::{
    EmulatorEvent, LoadOptions, PrinterIdentity, PrinterOptions, run_load, run_printer,
};
use sirius::protocol::commands::{add_device_encryption_key, device_command_text, print_command};
use sirius::protocol::{
    BridgeAddress, ClaimCode, ClaimSecret, CommandKind, DeviceAddress, Event, HardwareXor,
    decode_text,
};
use sirius::raster::{Page, decode_image, raw_page_from_image};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_secs(5);

/// What the client asked for in its handshake.
#[derive(Debug, Default, Clone)]
struct Handshake {
    path: String,
    protocol: Option<String>,
}

/// Accepts one websocket, echoing the bridge subprotocol when offered.
async fn accept(listener: &TcpListener) -> (Ws, Handshake) {
    let (tcp, _) = timeout(WAIT, listener.accept())
        .await
        .expect("no connection within 5 s")
        .unwrap();
    accept_stream(tcp).await
}

// The callback's error type is tungstenite's own.
#[allow(clippy::result_large_err)]
async fn accept_stream(tcp: TcpStream) -> (Ws, Handshake) {
    let seen = Arc::new(Mutex::new(Handshake::default()));
    let record = seen.clone();
    let callback = move |req: &Request, mut resp: Response| {
        let protocol = req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if protocol.as_deref() == Some("bergcloud-bridge-v1") {
            resp.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("bergcloud-bridge-v1"),
            );
        }
        *record.lock().unwrap() = Handshake {
            path: req.uri().path().to_string(),
            protocol,
        };
        Ok(resp)
    };
    let ws = timeout(WAIT, tokio_tungstenite::accept_hdr_async(tcp, callback))
        .await
        .expect("handshake took more than 5 s")
        .unwrap();
    let handshake = seen.lock().unwrap().clone();
    (ws, handshake)
}

/// The next text frame, as JSON text.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        let frame = timeout(WAIT, ws.next())
            .await
            .expect("no frame within 5 s")
            .expect("the emulator closed the connection")
            .unwrap();
        match frame {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Close(_) => panic!("the emulator closed the connection"),
            _ => {}
        }
    }
}

/// The next frame that is not a heartbeat, decoded as the server would.
async fn next_event(ws: &mut Ws) -> (Event, Value) {
    loop {
        let text = next_text(ws).await;
        let event = decode_text(&text);
        if !matches!(event, Event::Heartbeat { .. }) {
            return (event, serde_json::from_str(&text).unwrap());
        }
    }
}

/// Waits for an emulator event matching `want`, skipping others.
async fn wait_event(
    rx: &mut mpsc::UnboundedReceiver<EmulatorEvent>,
    want: impl Fn(&EmulatorEvent) -> bool,
) -> EmulatorEvent {
    timeout(WAIT, async {
        loop {
            let e = rx.recv().await.expect("the emulator stopped reporting");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("the expected emulator event did not come within 5 s")
}

async fn send(ws: &mut Ws, text: String) {
    ws.send(Message::text(text)).await.unwrap();
}

fn identity() -> PrinterIdentity {
    PrinterIdentity::parse(
        "     address: 602d48d344b746f5\n      secret: 66a596840f\n  claim code: e3xp-e9dp-hh7h-8cxx\n",
    )
    .unwrap()
}

fn bridge() -> BridgeAddress {
    BridgeAddress::parse("000d6f0002ff7a91").unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sirius-emulator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Running {
    listener: TcpListener,
    events: mpsc::UnboundedReceiver<EmulatorEvent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    out: PathBuf,
}

async fn start(name: &str, tweak: impl FnOnce(&mut PrinterOptions)) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/api/v1/connection", listener.local_addr().unwrap());
    let out = temp_dir(name);
    let mut opts = PrinterOptions::new(url, &out);
    opts.bridge_address = Some(bridge());
    opts.key_interval = Duration::from_millis(60);
    opts.heartbeat_interval = Duration::from_millis(20);
    opts.backoff_min = Duration::from_millis(20);
    opts.backoff_max = Duration::from_millis(100);
    tweak(&mut opts);
    let (tx, events) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_printer(identity(), opts, Some(tx), stop_rx));
    Running {
        listener,
        events,
        stop,
        task,
        out,
    }
}

/// Connects, checks power_on and the key request, gives the right key.
async fn keyed(run: &mut Running) -> Ws {
    let (mut ws, _) = accept(&run.listener).await;
    let (power_on, _) = next_event(&mut ws).await;
    assert_eq!(power_on.kind(), "power_on");
    let (ask, _) = next_event(&mut ws).await;
    assert_eq!(ask.kind(), "encryption_key_required");
    let me = identity();
    let key = add_device_encryption_key(
        &bridge().to_string(),
        &me.address.to_string(),
        1,
        &me.secret.link_key(),
    );
    send(&mut ws, key).await;
    loop {
        let (e, _) = next_event(&mut ws).await;
        if e.kind() == "device_connect" {
            break;
        }
    }
    wait_event(&mut run.events, |e| *e == EmulatorEvent::KeyAccepted).await;
    ws
}

async fn stop(run: Running) {
    run.stop.send(true).unwrap();
    timeout(WAIT, run.task)
        .await
        .expect("the emulator did not stop within 5 s")
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&run.out);
}

#[tokio::test]
async fn printer_asks_for_its_key_prints_and_reconnects() {
    let mut run = start("full", |_| {}).await;
    let me = identity();
    let (b, d) = (bridge().to_string(), me.address.to_string());

    // power_on, shaped like the capture, over the bridge subprotocol.
    let (mut ws, handshake) = accept(&run.listener).await;
    assert_eq!(handshake.path, "/api/v1/connection");
    assert_eq!(handshake.protocol.as_deref(), Some("bergcloud-bridge-v1"));
    let (event, raw) = next_event(&mut ws).await;
    let Event::PowerOn { bridge: seen, info } = event else {
        panic!("first message is not power_on: {raw}")
    };
    assert_eq!(seen, bridge());
    assert_eq!(info.model.as_deref(), Some("B"));
    assert!(info.firmware_version.is_some() && info.mac_address.is_some());
    assert_eq!(info.local_ip_address.as_deref(), Some("127.0.0.1"));
    assert!(info.uptime.unwrap().contains(' '));
    assert!(raw["timestamp"].is_f64());
    assert!(raw["json_payload"]["uboot_environment"].is_string());
    assert!(raw["json_payload"]["network_info"].is_object());
    wait_event(&mut run.events, |e| *e == EmulatorEvent::Connected).await;

    // The key request comes at once.
    let (event, _) = next_event(&mut ws).await;
    assert_eq!(
        event,
        Event::EncryptionKeyRequired {
            bridge: bridge(),
            device: me.address
        }
    );
    wait_event(&mut run.events, |e| *e == EmulatorEvent::KeyRequested).await;

    // A wrong key is refused, and the printer keeps asking.
    let wrong = ClaimSecret::parse_hex("0123456789").unwrap().link_key();
    send(&mut ws, add_device_encryption_key(&b, &d, 11, &wrong)).await;
    let (event, _) = next_event(&mut ws).await;
    let Event::BridgeCommandResponse {
        command_id,
        return_code,
        ..
    } = event
    else {
        panic!("expected a BridgeCommandResponse, got {event:?}")
    };
    assert_eq!(command_id, 11);
    assert_eq!(return_code.value(), 0xff);
    let rejected = wait_event(&mut run.events, |e| {
        matches!(e, EmulatorEvent::KeyRejected { .. })
    })
    .await;
    assert!(
        rejected.to_string().contains("does not match the secret"),
        "{rejected}"
    );
    let (event, _) = next_event(&mut ws).await;
    assert_eq!(event.kind(), "encryption_key_required");

    // The right key: accepted, device_connect, then heartbeats.
    send(
        &mut ws,
        add_device_encryption_key(&b, &d, 12, &me.secret.link_key()),
    )
    .await;
    let mut kinds = Vec::new();
    let mut answer = None;
    while !kinds.contains(&"device_connect") {
        let (event, _) = next_event(&mut ws).await;
        kinds.push(event.kind());
        if let Event::BridgeCommandResponse {
            command_id,
            return_code,
            ..
        } = event
        {
            answer = Some((command_id, return_code.value()));
        }
    }
    assert_eq!(answer, Some((12, 0)), "{kinds:?}");
    wait_event(&mut run.events, |e| *e == EmulatorEvent::KeyAccepted).await;

    let mut uptimes = Vec::new();
    timeout(Duration::from_secs(4), async {
        while uptimes.len() < 2 || uptimes.first() == uptimes.last() {
            match decode_text(&next_text(&mut ws).await) {
                Event::Heartbeat { device, uptime, .. } => {
                    assert_eq!(device, me.address);
                    uptimes.push(uptime);
                }
                Event::EncryptionKeyRequired { .. } => {} // sent before the key arrived
                other => panic!("expected heartbeats, got {other:?}"),
            }
        }
    })
    .await
    .expect("heartbeat uptime did not rise within 4 s");
    assert!(uptimes.windows(2).all(|w| w[0] <= w[1]), "{uptimes:?}");

    // A print: answered with success, then did_print, and the PNG is the page.
    let page = Page::from_fn(384, 40, |x, y| (x / 8 + y / 4) % 3 == 0).unwrap();
    let command = print_command(
        &b,
        &d,
        7,
        CommandKind::SetDeliveryAndPrint,
        std::slice::from_ref(&page),
    )
    .unwrap();
    send(&mut ws, command).await;
    let (event, raw) = next_event(&mut ws).await;
    let Event::DeviceCommandResponse {
        command_id,
        return_code,
        device,
        transfer_time,
        ..
    } = event
    else {
        panic!("expected a DeviceCommandResponse, got {raw}")
    };
    assert_eq!((command_id, return_code.value()), (7, 0));
    assert_eq!(device, Some(me.address));
    assert!(transfer_time.is_some());
    assert_eq!(raw["rssi_stats"].as_array().unwrap().len(), 3);
    let (event, _) = next_event(&mut ws).await;
    assert_eq!(
        event,
        Event::DidPrint {
            bridge: bridge(),
            device: me.address,
            print_type: 1,
            print_id: 7
        }
    );
    let printed = wait_event(&mut run.events, |e| {
        matches!(e, EmulatorEvent::Printed { .. })
    })
    .await;
    let png = run.out.join("7-1.png");
    assert_eq!(
        printed,
        EmulatorEvent::Printed {
            command_id: 7,
            command: "set_delivery_and_print".into(),
            pages: vec![png.clone()],
        }
    );
    let image = decode_image(&std::fs::read(&png).unwrap()).unwrap();
    assert_eq!(raw_page_from_image(&image).unwrap(), page);

    // A payload that does not decode: invalid_size, and no did_print.
    send(&mut ws, device_command_text(&b, &d, 8, b"\x01\x00\x01")).await;
    let (event, _) = next_event(&mut ws).await;
    let Event::DeviceCommandResponse {
        command_id,
        return_code,
        ..
    } = event
    else {
        panic!("expected a DeviceCommandResponse, got {event:?}")
    };
    assert_eq!((command_id, return_code.value()), (8, 0x80));

    // The server goes away: the printer comes back with power_on and
    // device_connect, and no new key request.
    drop(ws);
    wait_event(&mut run.events, |e| {
        matches!(e, EmulatorEvent::Disconnected { .. })
    })
    .await;
    let (mut ws, _) = accept(&run.listener).await;
    let (first, _) = next_event(&mut ws).await;
    let (second, _) = next_event(&mut ws).await;
    assert_eq!(first.kind(), "power_on");
    assert_eq!(
        second,
        Event::DeviceConnect {
            bridge: bridge(),
            device: me.address
        }
    );
    match decode_text(&next_text(&mut ws).await) {
        Event::Heartbeat { .. } => {}
        other => panic!("expected a heartbeat after reconnecting, got {other:?}"),
    }

    // Stopping closes the connection with a close frame.
    run.stop.send(true).unwrap();
    let closed = timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(closed, "no close frame before the connection ended");
    stop(run).await;
}

#[tokio::test]
async fn answer_code_and_never_answer_are_obeyed() {
    let page = Page::from_fn(384, 8, |x, _| x % 2 == 0).unwrap();
    let me = identity();
    let (b, d) = (bridge().to_string(), me.address.to_string());
    let print = |id| {
        print_command(
            &b,
            &d,
            id,
            CommandKind::SetDeliveryAndPrint,
            std::slice::from_ref(&page),
        )
        .unwrap()
    };

    let mut run = start("busy", |o| o.answer_code = Some(0x30)).await;
    let mut ws = keyed(&mut run).await;
    send(&mut ws, print(21)).await;
    let (event, _) = next_event(&mut ws).await;
    let Event::DeviceCommandResponse {
        command_id,
        return_code,
        ..
    } = event
    else {
        panic!("expected a DeviceCommandResponse, got {event:?}")
    };
    assert_eq!((command_id, return_code.value()), (21, 0x30));
    // No did_print after a failure: only heartbeats for a while.
    let quiet = timeout(Duration::from_millis(300), next_event(&mut ws)).await;
    assert!(quiet.is_err(), "unexpected {:?}", quiet.unwrap().1);
    stop(run).await;

    let mut run = start("silent", |o| o.never_answer = true).await;
    let mut ws = keyed(&mut run).await;
    send(&mut ws, print(22)).await;
    wait_event(&mut run.events, |e| {
        matches!(e, EmulatorEvent::Printed { command_id: 22, .. })
    })
    .await;
    let quiet = timeout(Duration::from_millis(300), next_event(&mut ws)).await;
    assert!(quiet.is_err(), "unexpected {:?}", quiet.unwrap().1);
    stop(run).await;
}

#[tokio::test]
async fn a_command_for_another_bridge_drops_the_connection() {
    let mut run = start("other-bridge", |_| {}).await;
    let mut ws = keyed(&mut run).await;
    let me = identity();
    let page = Page::from_fn(384, 8, |_, _| true).unwrap();
    let command = print_command(
        "000d6f0000000001",
        &me.address.to_string(),
        5,
        CommandKind::SetDeliveryAndPrint,
        &[page],
    )
    .unwrap();
    send(&mut ws, command).await;
    let ended = timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let e = decode_text(t.as_str());
                    assert!(
                        matches!(e, Event::Heartbeat { .. }),
                        "the emulator answered a command for another bridge: {e:?}"
                    );
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was not dropped");
    let reason = wait_event(&mut run.events, |e| {
        matches!(e, EmulatorEvent::Disconnected { .. })
    })
    .await;
    assert!(reason.to_string().contains("000d6f0000000001"), "{reason}");
    // And it comes back.
    let (mut ws, _) = accept(&run.listener).await;
    assert_eq!(next_event(&mut ws).await.0.kind(), "power_on");
    stop(run).await;
}

#[tokio::test]
async fn printer_retries_while_the_server_is_down() {
    // Take a free port and leave it closed for a while.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut opts = PrinterOptions::new(format!("ws://{addr}/api/v1/connection"), temp_dir("down"));
    opts.backoff_min = Duration::from_millis(10);
    opts.backoff_max = Duration::from_millis(40);
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_printer(identity(), opts.clone(), Some(tx), stop_rx));
    for _ in 0..3 {
        let e = wait_event(&mut events, |e| {
            matches!(e, EmulatorEvent::Disconnected { .. })
        })
        .await;
        assert!(e.to_string().contains("could not connect"), "{e}");
    }
    let listener = TcpListener::bind(addr).await.unwrap();
    let (mut ws, _) = accept(&listener).await;
    assert_eq!(next_event(&mut ws).await.0.kind(), "power_on");
    stop_tx.send(true).unwrap();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&opts.out_dir);
}

/// What the scripted load server saw, over all connections.
#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    by_kind: HashMap<&'static str, u64>,
    bridges: HashSet<BridgeAddress>,
    devices: HashSet<DeviceAddress>,
    keys_sent: u64,
    clean_closes: u64,
}

/// A server that counts everything and answers key requests of printers
/// with `xor`, once per printer.
async fn load_server(xor: HardwareXor) -> (String, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/api/v1/connection", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    let server = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        let key = ClaimSecret::parse_hex("66a596840f").unwrap().link_key();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, _) = accepted.unwrap();
                    let seen = shared.clone();
                    connections.spawn(async move {
                        let (mut ws, handshake) = accept_stream(tcp).await;
                        assert_eq!(handshake.protocol.as_deref(), Some("bergcloud-bridge-v1"));
                        let mut answered = HashSet::new();
                        let mut id = 0;
                        while let Some(Ok(frame)) = ws.next().await {
                            let text = match frame {
                                Message::Text(t) => t,
                                Message::Close(_) => {
                                    seen.lock().unwrap().clean_closes += 1;
                                    continue;
                                }
                                _ => continue,
                            };
                            let event = decode_text(text.as_str());
                            let reply = {
                                let mut s = seen.lock().unwrap();
                                s.frames += 1;
                                *s.by_kind.entry(event.kind()).or_default() += 1;
                                if let Some(b) = event.bridge() {
                                    s.bridges.insert(b);
                                }
                                if let Some(d) = event.device() {
                                    s.devices.insert(d);
                                }
                                match event {
                                    Event::EncryptionKeyRequired { bridge, device }
                                        if device.hardware_xor() == xor && answered.insert(device) =>
                                    {
                                        s.keys_sent += 1;
                                        id += 1;
                                        Some(add_device_encryption_key(
                                            &bridge.to_string(),
                                            &device.to_string(),
                                            id,
                                            &key,
                                        ))
                                    }
                                    _ => None,
                                }
                            };
                            if let Some(reply) = reply {
                                ws.send(Message::text(reply)).await.unwrap();
                            }
                        }
                    });
                }
                Some(_) = connections.join_next() => {}
            }
        }
    });
    (url, seen, server)
}

#[tokio::test]
async fn load_counts_add_up() {
    let code = ClaimCode::parse("e3xp-e9dp-hh7h-8cxx").unwrap();
    let xor = code.hardware_xor();
    let (url, seen, server) = load_server(xor).await;
    let mut opts = LoadOptions::new(url, 3, 2, Duration::from_secs(1));
    opts.heartbeat_interval = Duration::from_millis(50);
    opts.claim_xor = Some(xor);
    let report = timeout(Duration::from_secs(10), run_load(opts))
        .await
        .expect("the load run overran its duration")
        .unwrap();
    // Let the server read the last frames and the close frames.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.abort();
    let seen = seen.lock().unwrap();
    let kind = |k| seen.by_kind.get(k).copied().unwrap_or(0);

    assert_eq!(report.connections, 3, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert_eq!(report.connections_lost, 0, "{report}");
    assert!(report.elapsed >= Duration::from_secs(1) && report.elapsed < Duration::from_secs(4));
    assert_eq!(seen.bridges.len(), 3);
    assert_eq!(seen.devices.len(), 6);
    assert!(seen.devices.iter().all(|d| d.hardware_xor() == xor));
    assert_eq!(kind("power_on"), 3);
    assert_eq!(kind("device_connect"), 6);
    assert_eq!(report.frames_sent, seen.frames, "{report}");
    assert_eq!(report.heartbeats_sent, kind("heartbeat"), "{report}");
    assert_eq!(report.key_requests_sent, kind("encryption_key_required"));
    assert_eq!(
        report.key_requests_sent, 6,
        "keys are answered before a repeat"
    );
    assert_eq!(report.key_requests_answered, 6, "{report}");
    assert_eq!(kind("bridge_command_response"), 6);
    assert_eq!(report.frames_received, seen.keys_sent);
    assert!(report.key_latency_p50.is_some() && report.key_latency_p99.is_some());
    assert!(report.key_latency_p50 <= report.key_latency_p99);
    assert_eq!(
        report.frames_sent,
        3 + 6 + 6 + 6 + report.heartbeats_sent,
        "power_on, key requests, device_connect, key answers, heartbeats"
    );
    // 6 printers, one heartbeat every 50 ms each, for about a second.
    assert!(
        (60..=140).contains(&report.heartbeats_sent),
        "{} heartbeats",
        report.heartbeats_sent
    );
    assert_eq!(seen.clean_closes, 3);

    let json = report.to_json();
    assert_eq!(json["connections"], 3);
    assert_eq!(json["key_requests_answered"], 6);
    let table = report.to_string();
    assert!(table.contains("3 made, 0 failed"), "{table}");
}

#[tokio::test]
async fn load_reports_refused_connections() {
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let opts = LoadOptions::new(
        format!("ws://{addr}/api/v1/connection"),
        2,
        3,
        Duration::from_millis(300),
    );
    let report = timeout(Duration::from_secs(10), run_load(opts))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.connections, 0);
    assert_eq!(report.connection_failures, 2);
    assert_eq!(report.frames_sent, 0);
    assert!(report.first_problem.unwrap().contains("could not connect"));
}

#[tokio::test]
async fn load_flood_sends_as_fast_as_it_can() {
    let xor = HardwareXor::new(1).unwrap();
    let (url, seen, server) = load_server(xor).await;
    let mut opts = LoadOptions::new(url, 2, 3, Duration::from_millis(500));
    opts.flood = true;
    opts.ramp = Duration::from_millis(100);
    let report = timeout(Duration::from_secs(10), run_load(opts))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.abort();
    let seen = seen.lock().unwrap();
    assert_eq!(report.connections, 2, "{report}");
    assert!(report.heartbeats_sent > 200, "{report}");
    assert!(report.heartbeats_per_second() > 400.0, "{report}");
    assert_eq!(
        report.heartbeats_sent, seen.by_kind["heartbeat"],
        "{report}"
    );
    assert_eq!(
        report.key_requests_answered, 0,
        "no claim covers these printers"
    );
}
