//! Every public test vector (`tests/fixtures/vectors.json`) and every real
//! capture (`tests/fixtures/captures/`) against the protocol core.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sirius::protocol::commands::{add_device_encryption_key, print_command};
use sirius::protocol::device::{DeviceEventBody, decode_device_event};
use sirius::protocol::payload::{decode_payload, encode_run_lengths, rle_block};
use sirius::protocol::{ClaimCode, ClaimSecret, CommandKind, DeviceAddress, Event, HardwareXor};
use sirius::raster::Page;

fn fixture(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

fn vectors() -> Value {
    fixture("vectors.json")
}

#[test]
fn claim_code_vectors() {
    let v = vectors();
    let cases = v["claim_codes"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["code"].as_str().unwrap();
        let code = ClaimCode::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(code.to_string(), text);
        assert_eq!(
            code.link_key().to_base64(),
            case["link_key_b64"].as_str().unwrap(),
            "{text}"
        );
        if let Some(xor) = case.get("hardware_xor").and_then(Value::as_u64) {
            assert_eq!(u64::from(code.hardware_xor().value()), xor, "{text}");
        }
        if let Some(secret) = case.get("secret").and_then(Value::as_str) {
            assert_eq!(code.secret().to_string(), secret, "{text}");
            // Encoding the parts gives the code back.
            let again = ClaimCode::new(
                HardwareXor::new(code.hardware_xor().value()).unwrap(),
                ClaimSecret::parse_hex(secret).unwrap(),
            );
            assert_eq!(again.to_string(), text);
        }
        if let Some(addr) = case.get("device_address").and_then(Value::as_str) {
            let a = DeviceAddress::parse(addr).unwrap();
            assert_eq!(a.hardware_xor(), code.hardware_xor(), "{addr}");
        }
    }
}

#[test]
fn hardware_xor_vectors() {
    let v = vectors();
    for case in v["hardware_xor"].as_array().unwrap() {
        let a = DeviceAddress::parse(case["device_address"].as_str().unwrap()).unwrap();
        assert_eq!(
            u64::from(a.hardware_xor().value()),
            case["hardware_xor"].as_u64().unwrap()
        );
    }
}

/// Rows of '1' (white) and '0' (black) as a page.
fn page_from_rows(rows: &[&str]) -> Page {
    let width = rows[0].len() as u32;
    Page::from_fn(width, rows.len() as u32, |x, y| {
        rows[y as usize].as_bytes()[x as usize] == b'0'
    })
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rle_vectors() {
    let v = vectors();
    for case in v["rle"].as_array().unwrap() {
        if let Some(rows) = case.get("rows") {
            let rows: Vec<&str> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let page = page_from_rows(&rows);
            assert_eq!(
                page.pixel_count() as u64,
                case["pixel_count"].as_u64().unwrap()
            );
            assert_eq!(
                hex(&rle_block(&page)),
                case["rle_block_hex"].as_str().unwrap()
            );
        } else {
            let runs: Vec<usize> = case["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(
                hex(&encode_run_lengths(&runs)),
                case["run_bytes_hex"].as_str().unwrap(),
                "{runs:?}"
            );
        }
    }
}

#[test]
fn device_command_vectors() {
    let v = vectors();
    let table = v["device_commands"].as_object().unwrap();
    let page = page_from_rows(&["10", "01"]);
    let mut seen = 0;
    for (key, expected) in table {
        if key == "about" {
            continue;
        }
        let name = key.split(' ').next().unwrap();
        let kind = CommandKind::from_name(name).unwrap_or_else(|| panic!("{name}"));
        let pages = vec![page.clone(); kind.image_count()];
        let json = print_command(
            "some-bridge-address",
            "some-device-address",
            1,
            kind,
            &pages,
        )
        .unwrap();
        let got: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(got["type"], "DeviceCommand");
        assert_eq!(got["bridge_address"], "some-bridge-address");
        assert_eq!(got["device_address"], "some-device-address");
        assert_eq!(got["command_id"], 1);
        assert_eq!(got["timestamp"], "0");
        assert_eq!(got["binary_payload"], *expected, "{key}");
        // And back: the decoder finds the command, file id and pages.
        let bytes = STANDARD.decode(expected.as_str().unwrap()).unwrap();
        let decoded = decode_payload(&bytes, 2).unwrap();
        assert_eq!(decoded.command, kind);
        assert_eq!(decoded.file_id, 1);
        assert_eq!(decoded.pages, pages);
        seen += 1;
    }
    assert_eq!(seen, 7, "all seven print commands");
}

#[test]
fn bridge_command_vectors() {
    let v = vectors();
    for case in v["bridge_commands"].as_array().unwrap() {
        let want = &case["json"];
        let params = &want["json_payload"]["params"];
        // The vector is the key for claim code 6xwh-441j-8115-zyrh.
        let key = ClaimCode::parse("6xwh-441j-8115-zyrh").unwrap().link_key();
        assert_eq!(params["encryption_key"], key.to_base64());
        let got = add_device_encryption_key(
            want["bridge_address"].as_str().unwrap(),
            params["device_address"].as_str().unwrap(),
            want["command_id"].as_u64().unwrap() as u32,
            &key,
        );
        assert_eq!(serde_json::from_str::<Value>(&got).unwrap(), *want);
    }
}

#[test]
fn device_event_vectors() {
    let v = vectors();
    for case in v["device_events"].as_array().unwrap() {
        let binary = STANDARD
            .decode(case["binary_payload"].as_str().unwrap())
            .unwrap();
        let want = &case["decoded"];
        let event = decode_device_event(&binary).unwrap();
        match (want["event"].as_str().unwrap(), event.body) {
            ("heartbeat", DeviceEventBody::Heartbeat { uptime }) => {
                assert_eq!(u64::from(uptime), want["uptime"].as_u64().unwrap());
            }
            ("did_power_on", DeviceEventBody::DidPowerOn(p)) => {
                assert_eq!(
                    u64::from(p.device_type),
                    want["device_type"].as_u64().unwrap()
                );
                assert_eq!(p.firmware_build_version, want["firmware_build_version"]);
                assert_eq!(p.loader_build_version, want["loader_build_version"]);
                assert_eq!(
                    u64::from(p.protocol_version),
                    want["protocol_version"].as_u64().unwrap()
                );
                assert_eq!(
                    u64::from(p.reset_description),
                    want["reset_description"].as_u64().unwrap()
                );
                assert_eq!(p.reset_cause(), want["reset_cause"]);
            }
            (name, body) => panic!("{name}: decoded as {body:?}"),
        }
    }
}

/// Every capture decodes to the kind its file name says, with no field lost.
#[test]
fn captures_decode_to_their_kinds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let raw = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&raw).unwrap();
        let event = sirius::protocol::decode_text(&raw);
        let expected_kind = match name.as_str() {
            n if n.starts_with("BridgeEvent-power_on") => "power_on",
            n if n.starts_with("BridgeEvent-device_connect") => "device_connect",
            "BridgeEvent-device_disconnect" => "device_disconnect",
            "BridgeEvent-encryption_key_required" => "encryption_key_required",
            "BridgeLog" => "bridge_log",
            n if n.starts_with("DeviceCommandResponse") => "device_command_response",
            "DeviceEvent-did_power_on" => "did_power_on",
            n if n.starts_with("DeviceEvent-heartbeat") => "heartbeat",
            other => panic!("a capture nobody expected: {other}"),
        };
        assert_eq!(event.kind(), expected_kind, "{name}: {event:?}");
        assert_eq!(
            event.bridge().unwrap().to_string(),
            json["bridge_address"].as_str().unwrap()
        );
        let out = event.to_json();
        match &event {
            Event::PowerOn { info, .. } => {
                let p = &json["json_payload"];
                assert_eq!(info.model.as_deref(), p["model"].as_str());
                assert_eq!(
                    info.firmware_version.as_deref(),
                    p["firmware_version"].as_str()
                );
                assert_eq!(info.ncp_version.as_deref(), p["ncp_version"].as_str());
                assert_eq!(
                    info.local_ip_address.as_deref(),
                    p["local_ip_address"].as_str()
                );
                assert_eq!(info.mac_address.as_deref(), p["mac_address"].as_str());
                assert_eq!(info.uptime.as_deref(), p["uptime"].as_str());
            }
            Event::BridgeLog { records, .. } => {
                assert_eq!(records.len(), 4);
                assert_eq!(
                    records[0].message.as_deref(),
                    Some("Socket connection refused")
                );
                assert_eq!(records[0].levelname.as_deref(), Some("ERROR"));
            }
            Event::DeviceCommandResponse { return_code, .. } => {
                let want = name.split_once('-').unwrap().1;
                assert_eq!(return_code.name(), want);
                assert_eq!(out["return_name"], want);
            }
            Event::EncryptionKeyRequired { .. } => {
                assert_eq!(out["hardware_xor"], 7586148);
            }
            Event::Heartbeat { uptime, .. } => {
                assert!(*uptime == 20 || *uptime == 110, "{uptime}");
            }
            _ => {}
        }
        if let Some(d) = json
            .get("device_address")
            .or_else(|| json["json_payload"].get("device_address"))
        {
            assert_eq!(event.device().unwrap().to_string(), d.as_str().unwrap());
        }
        count += 1;
    }
    assert_eq!(count, 12);
}
