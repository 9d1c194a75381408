//! The bridge server end to end: a real server on port 0 with a real SQLite
//! file, real websocket clients over TCP.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use sirius::protocol::{ClaimCode, DeviceAddress};
use tokio_tungstenite::tungstenite::Message;

const BRIDGE: &str = "000d6f0001b3719d";
const BRIDGE2: &str = "000d6f0002ff7a91";
/// The real printer of the captures; its claim code is n5ry-p6x6-kth7-7hc4.
const DEVICE: &str = "000d6f000273ce0b";
const CODE: &str = "n5ry-p6x6-kth7-7hc4";
const KEY: &str = "3WIhM48TFaHGsQPZPpTF+Q==";

fn claim_real_printer(s: &sirius::server::RunningServer) {
    let store = s.hub.store();
    let user = store.create_user("ada", None, 1).unwrap();
    store
        .claim(user.id, &ClaimCode::parse(CODE).unwrap(), "Little Ada", 1)
        .unwrap();
}

fn device() -> DeviceAddress {
    DeviceAddress::parse(DEVICE).unwrap()
}

#[tokio::test]
async fn every_capture_replayed_is_understood() {
    let dir = temp_dir("captures");
    let s = server(&dir.join("sirius.db")).await;
    let mut ws = connect(&s).await;
    let mut names: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures"),
    )
    .unwrap()
    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    .collect();
    // power_on first, as every real connection starts.
    names.sort_by_key(|n| (!n.contains("power_on"), n.clone()));
    for name in &names {
        send_text(&mut ws, &fixture(name)).await;
    }
    // A heartbeat from the real printer, through the first bridge, last.
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 30)).await;
    assert!(
        eventually(3.0, || s.hub.stats.messages_total() as usize
            == names.len() + 1)
        .await
    );
    let stats = json_get(&s, "/_/stats").await;
    let kinds = &stats["messages_by_kind"];
    assert_eq!(kinds["power_on"], 2);
    assert_eq!(kinds["device_connect"], 2);
    assert_eq!(kinds["heartbeat"], 3);
    assert_eq!(kinds["did_power_on"], 1);
    assert_eq!(kinds["bridge_log"], 1);
    assert_eq!(kinds["device_command_response"], 2);
    assert_eq!(stats["malformed_messages"], 0);
    // Responses to commands nobody sent are counted as unknown and
    // otherwise ignored (only answers on the connection a command went out
    // on count), never fatal.
    assert_eq!(stats["unknown_responses"], 2);
    assert_eq!(
        stats["responses_by_return_code"].as_object().unwrap().len(),
        0
    );
    // The printer is known and online; the bridges are recorded (the
    // sweep writes new printers in a batch).
    assert!(eventually(2.0, || s.hub.store().list_printers().unwrap().len() == 1).await);
    s.hub.db.flush().await;
    let printers = s.hub.store().list_printers().unwrap();
    assert_eq!(printers.len(), 1);
    assert_eq!(printers[0].address, device());
    assert!(s.hub.is_online(device()));
    let bridges = s.hub.store().list_bridges().unwrap();
    let b: Vec<String> = bridges.iter().map(|b| b.address.to_string()).collect();
    assert!(b.contains(&BRIDGE.to_string()) && b.contains(&BRIDGE2.to_string()));
    let log = s
        .hub
        .store()
        .bridge_log(sirius::protocol::BridgeAddress::parse(BRIDGE2).unwrap(), 10)
        .unwrap();
    assert_eq!(log.len(), 4);
    let health = json_get(&s, "/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["printers_online"], 1);
    // Both bridges' messages came over this one connection: both addresses
    // lead to it while it lives, and neither once it is closed.
    assert_eq!(health["bridges_connected"], 2);
    drop(ws);
    assert!(eventually(2.0, || s.hub.bridges_connected() == 0).await);
    assert!(!s.hub.is_online(device()));
    s.shutdown().await;
}

#[tokio::test]
async fn a_claimed_printer_gets_its_link_key_at_most_every_10s() {
    let dir = temp_dir("key");
    let s = server(&dir.join("sirius.db")).await;
    claim_real_printer(&s);
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(
        &mut ws,
        &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
    )
    .await;
    let cmd = recv_json(&mut ws, 3.0).await.expect("a key command");
    assert_eq!(cmd["type"], "BridgeCommand");
    assert_eq!(cmd["bridge_address"], BRIDGE);
    assert_eq!(cmd["timestamp"], "0");
    assert_eq!(cmd["json_payload"]["name"], "add_device_encryption_key");
    assert_eq!(cmd["json_payload"]["params"]["device_address"], DEVICE);
    assert_eq!(cmd["json_payload"]["params"]["encryption_key"], KEY);
    let id = cmd["command_id"].as_u64().unwrap();
    assert!(id >= 1);
    // Asked again at once: not answered (rate limit, 300 ms in tests)...
    send(
        &mut ws,
        &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
    )
    .await;
    assert!(recv_json(&mut ws, 0.15).await.is_none());
    // ...but answered again later, with a new command id.
    tokio::time::sleep(Duration::from_millis(350)).await;
    send(
        &mut ws,
        &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
    )
    .await;
    let again = recv_json(&mut ws, 3.0).await.expect("key sent again");
    assert!(again["command_id"].as_u64().unwrap() > id);
    // The bridge answers; the answer is recorded.
    send(
        &mut ws,
        &json!({"type": "BridgeCommandResponse", "bridge_address": BRIDGE,
                "command_id": again["command_id"], "return_code": 0, "timestamp": 1.0}),
    )
    .await;
    let answered = again["command_id"].as_u64().unwrap() as u32;
    assert!(
        eventually(2.0, || {
            s.hub
                .store()
                .command(answered)
                .unwrap()
                .is_some_and(|c| c.return_code == Some(0))
        })
        .await
    );
    // An unclaimed printer asking gets nothing.
    send(
        &mut ws,
        &bridge_event(BRIDGE, "encryption_key_required", "0123456789abcdef"),
    )
    .await;
    assert!(recv_json(&mut ws, 0.3).await.is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_never_cost_a_connection() {
    let dir = temp_dir("malformed");
    let s = server(&dir.join("sirius.db")).await;
    claim_real_printer(&s);
    let mut ws = connect(&s).await;
    let mut other = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(&mut other, &power_on(BRIDGE2)).await;
    let garbage: Vec<String> = vec![
        "not json".into(),
        "".into(),
        "[1,2,3]".into(),
        "{}".into(),
        "{\"type\": 7}".into(),
        json!({"type": "DeviceEvent", "bridge_address": BRIDGE, "device_address": DEVICE, "binary_payload": "%%%not base64"}).to_string(),
        json!({"type": "DeviceEvent", "bridge_address": BRIDGE, "device_address": DEVICE, "binary_payload": "AQAAAAAABAAAABQA"}).to_string(),
        json!({"type": "DeviceEvent", "bridge_address": BRIDGE, "device_address": DEVICE, "binary_payload": ""}).to_string(),
        json!({"type": "DeviceEvent", "bridge_address": BRIDGE, "device_address": 12, "binary_payload": "AQAAAAAABAAAABQAAAA="}).to_string(),
        json!({"type": "BridgeEvent", "bridge_address": BRIDGE, "json_payload": "power_on"}).to_string(),
        json!({"type": "BridgeEvent", "bridge_address": "zz", "json_payload": {"name": "power_on"}}).to_string(),
        json!({"type": "BridgeEvent", "bridge_address": BRIDGE, "json_payload": {"name": "device_connect", "device_address": [1]}}).to_string(),
        json!({"type": "DeviceCommandResponse", "bridge_address": BRIDGE, "command_id": "x", "return_code": {}}).to_string(),
        json!({"type": "BridgeLog", "bridge_address": BRIDGE, "records": "lots"}).to_string(),
        json!({"type": "BridgeEvent", "bridge_address": BRIDGE, "timestamp": [], "json_payload": {"name": "power_on"}}).to_string(),
        json!({"type": "Mystery", "bridge_address": BRIDGE}).to_string(),
        "{\"type\": \"BridgeEvent\", \"bridge_address\": \"".to_string() + &"9".repeat(5000),
    ];
    for g in &garbage {
        send_text(&mut ws, g).await;
    }
    ws.send(Message::binary(vec![0xff, 0xfe, 0x00, 0x01]))
        .await
        .unwrap();
    // The same connection still works: a key request is answered.
    send(
        &mut ws,
        &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
    )
    .await;
    let cmd = recv_json(&mut ws, 3.0)
        .await
        .expect("still answered after garbage");
    assert_eq!(cmd["json_payload"]["params"]["encryption_key"], KEY);
    // The other bridge carries on too.
    send(&mut other, &heartbeat(BRIDGE2, "00000000000000ab", 5)).await;
    let other_device = DeviceAddress::parse("00000000000000ab").unwrap();
    assert!(eventually(2.0, || s.hub.is_online(other_device)).await);
    let stats = json_get(&s, "/_/stats").await;
    let bad =
        stats["malformed_messages"].as_u64().unwrap() + stats["unknown_messages"].as_u64().unwrap();
    assert_eq!(bad as usize, garbage.len() + 1, "{stats}");
    assert_eq!(stats["unknown_messages"], 1);
    assert_eq!(s.hub.bridges_connected(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn a_2_mib_frame_closes_only_its_own_connection_with_1009() {
    let dir = temp_dir("toobig");
    let s = server(&dir.join("sirius.db")).await;
    let mut big = connect(&s).await;
    let mut other = connect(&s).await;
    send(&mut big, &power_on(BRIDGE)).await;
    send(&mut other, &power_on(BRIDGE2)).await;
    let huge = format!(
        "{{\"type\": \"BridgeLog\", \"bridge_address\": \"{BRIDGE}\", \"records\": [\"{}\"]}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let _ = big.send(Message::text(huge)).await;
    assert_eq!(recv_close(&mut big, 5.0).await, Some(1009));
    send(&mut other, &heartbeat(BRIDGE2, "00000000000000cd", 1)).await;
    let d = DeviceAddress::parse("00000000000000cd").unwrap();
    assert!(eventually(2.0, || s.hub.is_online(d)).await);
    assert!(eventually(2.0, || s.hub.bridges_connected() == 1).await);
    assert_eq!(json_get(&s, "/_/stats").await["frames_too_big"], 1);
    s.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_from_the_same_bridge_takes_over() {
    let dir = temp_dir("takeover");
    let s = server(&dir.join("sirius.db")).await;
    claim_real_printer(&s);
    let mut first = connect(&s).await;
    send(&mut first, &power_on(BRIDGE)).await;
    send(&mut first, &heartbeat(BRIDGE, DEVICE, 1)).await;
    assert!(eventually(2.0, || s.hub.is_online(device())).await);
    let mut second = connect(&s).await;
    send(&mut second, &power_on(BRIDGE)).await;
    assert_eq!(recv_close(&mut first, 3.0).await, Some(1000));
    // The printer is reached through the new connection.
    send(
        &mut second,
        &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
    )
    .await;
    let cmd = recv_json(&mut second, 3.0)
        .await
        .expect("key on the new connection");
    assert_eq!(cmd["bridge_address"], BRIDGE);
    assert!(s.hub.is_online(device()));
    assert_eq!(s.hub.bridges_connected(), 1);
    assert_eq!(json_get(&s, "/_/stats").await["connections_replaced"], 1);
    s.shutdown().await;
}

#[tokio::test]
async fn presence_follows_heartbeats_disconnects_and_closed_bridges() {
    let dir = temp_dir("presence");
    let s = server(&dir.join("sirius.db")).await;
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(&mut ws, &bridge_event(BRIDGE, "device_connect", DEVICE)).await;
    assert!(eventually(2.0, || s.hub.is_online(device())).await);
    // Heartbeats never write to the store.
    tokio::time::sleep(Duration::from_millis(700)).await; // let the first flush happen
    let writes = s.hub.store().writes();
    for i in 0..200 {
        send(&mut ws, &heartbeat(BRIDGE, DEVICE, i)).await;
    }
    assert!(
        eventually(2.0, || s.hub.stats.messages[7]
            .load(std::sync::atomic::Ordering::Relaxed)
            == 200)
        .await
    );
    assert!(
        s.hub.store().writes() <= writes + 1,
        "200 heartbeats caused {} writes",
        s.hub.store().writes() - writes
    );
    // device_disconnect: offline at once.
    send(&mut ws, &bridge_event(BRIDGE, "device_disconnect", DEVICE)).await;
    assert!(eventually(1.0, || !s.hub.is_online(device())).await);
    // Heard again: online; then silent past the timeout (1.5 s here): offline.
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 300)).await;
    assert!(eventually(1.0, || s.hub.is_online(device())).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(s.hub.is_online(device()), "still within the timeout");
    assert!(eventually(2.0, || !s.hub.is_online(device())).await);
    // A bridge that goes away takes its printers offline at once.
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 301)).await;
    assert!(eventually(1.0, || s.hub.is_online(device())).await);
    drop(ws);
    assert!(eventually(1.0, || !s.hub.is_online(device())).await);
    assert_eq!(s.hub.bridges_connected(), 0);
    // Last heard made it to the store.
    s.hub.db.flush().await;
    let p = s.hub.store().printer_by_address(device()).unwrap().unwrap();
    assert!(p.last_heard.is_some());
    s.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_printers_claims_and_command_ids() {
    let dir = temp_dir("restart");
    let db = dir.join("sirius.db");
    let first_id;
    {
        let s = server(&db).await;
        claim_real_printer(&s);
        let mut ws = connect(&s).await;
        send(&mut ws, &power_on(BRIDGE)).await;
        send(
            &mut ws,
            &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
        )
        .await;
        first_id = recv_json(&mut ws, 3.0).await.unwrap()["command_id"]
            .as_u64()
            .unwrap();
        s.shutdown().await;
        // Shutting down sent a close frame ("going away").
        assert_eq!(recv_close(&mut ws, 2.0).await, Some(1001));
    }
    let s = server(&db).await;
    let printers = s.hub.store().list_printers().unwrap();
    assert_eq!(printers.len(), 1);
    assert_eq!(printers[0].owner.as_deref(), Some("ada"));
    assert_eq!(printers[0].name.as_deref(), Some("Little Ada"));
    assert!(printers[0].last_heard.is_some());
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(
        &mut ws,
        &bridge_event(BRIDGE, "encryption_key_required", DEVICE),
    )
    .await;
    let cmd = recv_json(&mut ws, 3.0).await.unwrap();
    assert_eq!(cmd["json_payload"]["params"]["encryption_key"], KEY);
    assert!(
        cmd["command_id"].as_u64().unwrap() > first_id,
        "ids are unique across restarts"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn upgrade_requests_are_validated() {
    let dir = temp_dir("upgrade");
    let s = server(&dir.join("sirius.db")).await;
    let (status, body) = get(&s, "/api/v1/connection").await;
    assert_eq!(status, 400);
    assert!(body.contains("Upgrade: websocket"), "{body}");
    let (status, body) = http_get(
        &s,
        "/api/v1/connection",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "LJUqJa44qfNRKHts7rnNsQ=="),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("13"), "{body}");
    let (status, body) = http_get(
        &s,
        "/api/v1/connection",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("Sec-WebSocket-Key"), "{body}");
    // No subprotocol offered: none named in the answer.
    let (ws, resp) = tokio_tungstenite::connect_async(ws_url(&s)).await.unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    drop(ws);
    let (status, _) = get(&s, "/nope").await;
    assert_eq!(status, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn status_page_shows_bridges_and_printers() {
    let dir = temp_dir("status");
    let s = server(&dir.join("sirius.db")).await;
    // The status page is the admin page now, behind a sign-in.
    let mut admin = common::browser::first_admin(&s, "root", "correct horse").await;
    let page = admin.get("/admin").await;
    assert_eq!(page.status, 200);
    let body = page.body;
    assert!(body.contains("No bridge has connected yet"), "{body}");
    claim_real_printer(&s);
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 9)).await;
    assert!(eventually(2.0, || s.hub.is_online(device())).await);
    assert!(eventually(2.0, || !s.hub.store().list_printers().unwrap().is_empty()).await);
    s.hub.db.flush().await;
    let page = admin.get("/admin").await;
    assert_eq!(page.status, 200);
    let body = page.body;
    // Signed out, none of it shows.
    let (status, public) = get(&s, "/").await;
    assert_eq!(status, 200);
    assert!(
        !public.contains(BRIDGE) && !public.contains(DEVICE),
        "{public}"
    );
    for want in [
        BRIDGE,
        DEVICE,
        "Little Ada",
        "ada",
        "v2.3.1-f3c7946",
        "127.0.0.1",
        "online",
    ] {
        assert!(body.contains(want), "status page lacks {want}: {body}");
    }
    let health: Value = json_get(&s, "/healthz").await;
    assert_eq!(health["bridges_connected"], 1);
    assert_eq!(health["printers_online"], 1);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    s.shutdown().await;
}

#[tokio::test]
async fn commands_learn_their_fate() {
    use sirius::bridge::{CommandFate, SendError};
    use sirius::protocol::ReturnCode;
    let dir = temp_dir("fate");
    let s = server(&dir.join("sirius.db")).await;
    let build = |bridge: &str, id: u32| {
        json!({"type": "DeviceCommand", "bridge_address": bridge, "device_address": DEVICE,
               "command_id": id, "timestamp": "0", "binary_payload": ""})
        .to_string()
    };
    // Offline at once when the printer has no live bridge.
    assert_eq!(
        s.hub.send_to_device(device(), "test", build).unwrap_err(),
        SendError::Offline(device())
    );
    let mut ws = connect(&s).await;
    send(&mut ws, &power_on(BRIDGE)).await;
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 1)).await;
    assert!(eventually(2.0, || s.hub.is_online(device())).await);
    // Answered: the bridge's return code comes back.
    let d = s.hub.send_to_device(device(), "test", build).unwrap();
    let cmd = recv_json(&mut ws, 2.0).await.unwrap();
    assert_eq!(cmd["command_id"], d.command_id);
    assert_eq!(cmd["bridge_address"], BRIDGE);
    send(
        &mut ws,
        &json!({"type": "DeviceCommandResponse", "bridge_address": BRIDGE, "device_address": DEVICE,
                "command_id": d.command_id, "return_code": 0x90, "timestamp": 1.0, "transfer_time": 3.4,
                "rssi_stats": [-19, -19, -19]}),
    )
    .await;
    assert_eq!(
        d.fate.await.unwrap(),
        CommandFate::Answered(ReturnCode::new(0x90))
    );
    s.hub.db.flush().await;
    let row = s
        .hub
        .store()
        .command(cmd["command_id"].as_u64().unwrap() as u32)
        .unwrap()
        .unwrap();
    assert_eq!(row.return_code, Some(0x90));
    // No answer on a live connection: timed out (2 s in tests).
    let d = s.hub.send_to_device(device(), "test", build).unwrap();
    let _ = recv_json(&mut ws, 2.0).await.unwrap();
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 2)).await;
    assert_eq!(d.fate.await.unwrap(), CommandFate::TimedOut);
    // The connection closing before the answer: can never be answered.
    send(&mut ws, &heartbeat(BRIDGE, DEVICE, 3)).await;
    assert!(eventually(2.0, || s.hub.is_online(device())).await);
    let d = s.hub.send_to_device(device(), "test", build).unwrap();
    let _ = recv_json(&mut ws, 2.0).await.unwrap();
    drop(ws);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), d.fate)
            .await
            .unwrap()
            .unwrap(),
        CommandFate::ConnectionClosed
    );
    assert!(!s.hub.is_online(device()));
    s.shutdown().await;
}
