//! The bridge's side of the wire, shared by the printer emulator and the
//! load generator: the JSON of every message a bridge sends (shaped like the
//! real captures), reading the commands a server sends, and opening the
//! websocket the way a real bridge does (offering `bergcloud-bridge-v1`).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
pub use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::{BridgeAddress, DeviceAddress};

/// The websocket subprotocol real bridges offer.
pub const SUBPROTOCOL: &str = "bergcloud-bridge-v1";

/// The radio signal strengths an emulated printer reports.
pub const RSSI_STATS: [i32; 3] = [-30, -30, -30];

/// A websocket to the server, as the emulator holds it.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Seconds since the Unix epoch, as a float, like real bridges send.
pub fn timestamp() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The process's own start, which the bridge's `uptime` counts from.
fn process_start() -> std::time::Instant {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// A bridge address in the Ember range (`000d6f…`), from the operating
/// system's random generator.
pub fn random_bridge_address() -> BridgeAddress {
    let mut bytes = [0x00, 0x0d, 0x6f, 0, 0, 0, 0, 0];
    OsRng
        .try_fill_bytes(&mut bytes[3..])
        .expect("the operating system's random generator failed");
    BridgeAddress::from_bytes(bytes)
}

/// The bridge address this process uses when none is given: chosen once,
/// so reconnections keep it, as a real bridge does.
pub fn process_bridge_address() -> BridgeAddress {
    static ADDRESS: OnceLock<BridgeAddress> = OnceLock::new();
    *ADDRESS.get_or_init(random_bridge_address)
}

/// The websocket handshake request for `url`, offering the bridge
/// subprotocol. Fails on a URL that is not `ws://HOST[:PORT]/PATH`.
pub fn bridge_request(url: &str) -> anyhow::Result<Request> {
    if url.starts_with("wss://") {
        anyhow::bail!(
            "{url}: the emulator speaks plain ws:// only (real bridges do too); use ws://HOST:PORT/api/v1/connection"
        );
    }
    let mut request = url.into_client_request().with_context(|| {
        format!("{url:?} is not a websocket URL; expected ws://HOST:PORT/api/v1/connection")
    })?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(request)
}

/// Opens the websocket, giving up after `timeout`.
pub async fn connect(
    request: Request,
    config: Option<WebSocketConfig>,
    timeout: Duration,
) -> anyhow::Result<Socket> {
    let uri = request.uri().to_string();
    let attempt = tokio_tungstenite::connect_async_with_config(request, config, true);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(e)) => Err(anyhow::anyhow!("could not connect to {uri}: {e}")),
        Err(_) => Err(anyhow::anyhow!(
            "could not connect to {uri}: no answer within {:.1} s",
            timeout.as_secs_f64()
        )),
    }
}

/// The local address of a plain TCP websocket, for `local_ip_address`.
pub fn local_addr(socket: &Socket) -> Option<SocketAddr> {
    match socket.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().ok(),
        _ => None,
    }
}

/// A `power_on` BridgeEvent with every field a real bridge sends (model B,
/// firmware v2.3.1), its `uptime` counted from the start of this process.
pub fn power_on(bridge: BridgeAddress, local_ip: Option<SocketAddr>) -> String {
    let b = bridge.bytes();
    let mac = format!("40:d8:55:{:02x}:{:02x}:{:02x}", b[5], b[6], b[7]);
    let up = process_start().elapsed().as_secs_f64();
    let uboot = format!(
        "baudrate=115200\nbootdelay=1\nethact=macb0\nethaddr={}\nstderr=serial\nstdin=serial\nstdout=serial\n",
        mac.to_uppercase()
    );
    json!({
        "bridge_address": bridge.to_string(),
        "json_payload": {
            "firmware_version": "v2.3.1-f3c7946",
            "local_ip_address": local_ip
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "192.168.2.117".into()),
            "mac_address": mac,
            "model": "B",
            "name": "power_on",
            "ncp_version": "0x46C5",
            "network_info": {
                "channel": 25,
                "extended_pan_id": format!("0x42455247{:02x}{:02x}{:02x}{:02x}", b[4], b[5], b[6], b[7]),
                "network_status": "EMBER_JOINED_NETWORK",
                "node_eui64": format!("0x{bridge}"),
                "node_id": "0x0000",
                "node_type": "EMBER_COORDINATOR",
                "pan_id": format!("0x{:02X}{:02X}", b[6], b[7]),
                "power": 8,
                "radio_power_mode": "EMBER_TX_POWER_MODE_BOOST",
                "security_level": 5,
                "security_profile": "Custom"
            },
            "uboot_environment": BASE64.encode(uboot),
            "uptime": format!("{:.2} {:.2}", up, up * 0.53),
        },
        "timestamp": timestamp(),
        "type": "BridgeEvent",
    })
    .to_string()
}

/// A BridgeEvent naming a device: `encryption_key_required`,
/// `device_connect` or `device_disconnect`.
pub fn device_bridge_event(bridge: BridgeAddress, device: DeviceAddress, name: &str) -> String {
    json!({
        "bridge_address": bridge.to_string(),
        "json_payload": {"device_address": device.to_string(), "name": name},
        "timestamp": timestamp(),
        "type": "BridgeEvent",
    })
    .to_string()
}

/// A DeviceEvent carrying a device event binary (see
/// [`crate::protocol::device`]).
pub fn device_event(bridge: BridgeAddress, device: DeviceAddress, binary: &[u8]) -> String {
    json!({
        "binary_payload": BASE64.encode(binary),
        "bridge_address": bridge.to_string(),
        "device_address": device.to_string(),
        "rssi_stats": RSSI_STATS,
        "timestamp": timestamp(),
        "type": "DeviceEvent",
    })
    .to_string()
}

/// The answer to a BridgeCommand.
pub fn bridge_command_response(bridge: BridgeAddress, command_id: u32, return_code: u32) -> String {
    json!({
        "bridge_address": bridge.to_string(),
        "command_id": command_id,
        "return_code": return_code,
        "timestamp": timestamp(),
        "type": "BridgeCommandResponse",
    })
    .to_string()
}

/// The answer to a DeviceCommand.
pub fn device_command_response(
    bridge: BridgeAddress,
    device: DeviceAddress,
    command_id: u32,
    return_code: u32,
    transfer_time: Duration,
) -> String {
    let transfer = (transfer_time.as_secs_f64() * 100.0).round() / 100.0;
    json!({
        "bridge_address": bridge.to_string(),
        "command_id": command_id,
        "device_address": device.to_string(),
        "return_code": return_code,
        "rssi_stats": RSSI_STATS,
        "timestamp": timestamp(),
        "transfer_time": transfer,
        "type": "DeviceCommandResponse",
    })
    .to_string()
}

/// A command from the server, read as far as a bridge needs to route it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `add_device_encryption_key`.
    AddKey {
        bridge: String,
        command_id: Option<u32>,
        device: String,
        key: String,
    },
    /// Any other BridgeCommand (`leave`, `form`, `reboot`, …).
    OtherBridgeCommand {
        bridge: String,
        command_id: Option<u32>,
        name: String,
    },
    /// A DeviceCommand; the whole text is kept for the payload decoder.
    DeviceCommand {
        bridge: String,
        command_id: Option<u32>,
        device: String,
    },
    /// Not something a bridge understands.
    Unknown(String),
}

impl Incoming {
    /// Reads one text frame from the server. Never fails: what a bridge
    /// does not understand comes back as [`Incoming::Unknown`] with a reason.
    pub fn read(text: &str) -> Incoming {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Incoming::Unknown(format!("not JSON: {e}")),
        };
        let string = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let bridge = string(&v, "bridge_address");
        let command_id = v
            .get("command_id")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        match v.get("type").and_then(Value::as_str) {
            Some("BridgeCommand") => {
                let payload = v.get("json_payload").cloned().unwrap_or(Value::Null);
                let name = string(&payload, "name");
                if name == "add_device_encryption_key" {
                    let params = payload.get("params").cloned().unwrap_or(Value::Null);
                    Incoming::AddKey {
                        bridge,
                        command_id,
                        device: string(&params, "device_address"),
                        key: string(&params, "encryption_key"),
                    }
                } else {
                    Incoming::OtherBridgeCommand {
                        bridge,
                        command_id,
                        name,
                    }
                }
            }
            Some("DeviceCommand") => Incoming::DeviceCommand {
                bridge,
                command_id,
                device: string(&v, "device_address"),
            },
            Some(other) => Incoming::Unknown(format!("a message of type {other:?}")),
            None => Incoming::Unknown("a message without a type".into()),
        }
    }

    /// The bridge address the command names.
    pub fn bridge(&self) -> Option<&str> {
        match self {
            Incoming::AddKey { bridge, .. }
            | Incoming::OtherBridgeCommand { bridge, .. }
            | Incoming::DeviceCommand { bridge, .. } => Some(bridge),
            Incoming::Unknown(_) => None,
        }
    }
}

/// Whether `text` names `bridge` (case does not matter, as in addresses).
pub fn names_bridge(text: &str, bridge: BridgeAddress) -> bool {
    BridgeAddress::parse(text).is_ok_and(|b| b == bridge)
}

/// Whether `text` names `device`.
pub fn names_device(text: &str, device: DeviceAddress) -> bool {
    DeviceAddress::parse(text).is_ok_and(|d| d == device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, decode_text};

    fn addresses() -> (BridgeAddress, DeviceAddress) {
        (
            BridgeAddress::parse("000d6f0002ff7a91").unwrap(),
            DeviceAddress::parse("000d6f000273ce0b").unwrap(),
        )
    }

    #[test]
    fn power_on_has_the_fields_of_the_real_capture() {
        let (bridge, _) = addresses();
        let text = power_on(bridge, None);
        let ours: Value = serde_json::from_str(&text).unwrap();
        let capture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/captures/BridgeEvent-power_on.json"
        ))
        .unwrap();
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys(&ours), keys(&capture));
        assert_eq!(keys(&ours["json_payload"]), keys(&capture["json_payload"]));
        assert_eq!(
            keys(&ours["json_payload"]["network_info"]),
            keys(&capture["json_payload"]["network_info"])
        );
        assert!(ours["timestamp"].is_f64());
        let Event::PowerOn { bridge: b, info } = decode_text(&text) else {
            panic!("not a power_on: {text}")
        };
        assert_eq!(b, bridge);
        let uptime = info.uptime.unwrap();
        assert_eq!(uptime.split(' ').count(), 2, "{uptime}");
    }

    #[test]
    fn events_decode_as_the_server_reads_them() {
        let (bridge, device) = addresses();
        assert_eq!(
            decode_text(&device_bridge_event(
                bridge,
                device,
                "encryption_key_required"
            )),
            Event::EncryptionKeyRequired { bridge, device }
        );
        assert_eq!(
            decode_text(&device_event(
                bridge,
                device,
                &crate::protocol::device::heartbeat(42)
            )),
            Event::Heartbeat {
                bridge,
                device,
                uptime: 42
            }
        );
        let Event::DeviceCommandResponse {
            command_id,
            return_code,
            device: d,
            ..
        } = decode_text(&device_command_response(
            bridge,
            device,
            7,
            0x80,
            Duration::from_millis(1234),
        ))
        else {
            panic!()
        };
        assert_eq!(
            (command_id, return_code.value(), d),
            (7, 0x80, Some(device))
        );
    }

    #[test]
    fn reads_server_commands() {
        let (bridge, device) = addresses();
        let key = crate::protocol::ClaimCode::parse("6xwh-441j-8115-zyrh")
            .unwrap()
            .link_key();
        let text = crate::protocol::commands::add_device_encryption_key(
            &bridge.to_string(),
            &device.to_string(),
            3,
            &key,
        );
        assert_eq!(
            Incoming::read(&text),
            Incoming::AddKey {
                bridge: bridge.to_string(),
                command_id: Some(3),
                device: device.to_string(),
                key: "F7D9bmztHV32+WJScGZR0g==".into()
            }
        );
        assert!(matches!(Incoming::read("nope"), Incoming::Unknown(_)));
        assert!(names_bridge("000D6F0002FF7A91", bridge));
        assert!(!names_bridge("", bridge));
    }

    #[test]
    fn requests_offer_the_subprotocol() {
        let r = bridge_request("ws://127.0.0.1:5002/api/v1/connection").unwrap();
        assert_eq!(r.headers()["Sec-WebSocket-Protocol"], SUBPROTOCOL);
        assert!(bridge_request("http//nope").is_err());
        let e = bridge_request("wss://example.org/")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ws://"), "{e}");
    }
}
