//! Messages from the bridge (PROTOCOL §3 and §4), decoded into one [`Event`].
//!
//! Decoding is total: every input, however broken, becomes an `Event`.
//! Unknown message types and names become [`Event::Unknown`], broken input
//! [`Event::Malformed`], each with a reason a person can read. Field types
//! are read leniently where real bridges and third-party bridges are known to
//! differ (numbers or strings, objects or strings or nothing).

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::address::{BridgeAddress, DeviceAddress};
use super::device::{DeviceEventBody, DeviceEventError, DidPowerOn, decode_device_event};
use super::return_code::ReturnCode;

/// What a bridge reported in `power_on`. Every field is optional: third-party
/// bridges send `{}` or leave them out.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PowerOnInfo {
    pub model: Option<String>,
    pub firmware_version: Option<String>,
    pub ncp_version: Option<String>,
    pub local_ip_address: Option<String>,
    pub mac_address: Option<String>,
    /// `"89.52 68.99"` from real bridges, an integer from others.
    pub uptime: Option<String>,
}

/// One record of a bridge's own log (Python logging style).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LogRecord {
    pub name: Option<String>,
    pub created: Option<f64>,
    pub levelname: Option<String>,
    pub levelno: Option<i64>,
    pub message: Option<String>,
}

/// Everything a bridge can send, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PowerOn {
        bridge: BridgeAddress,
        info: PowerOnInfo,
    },
    DeviceConnect {
        bridge: BridgeAddress,
        device: DeviceAddress,
    },
    DeviceDisconnect {
        bridge: BridgeAddress,
        device: DeviceAddress,
    },
    EncryptionKeyRequired {
        bridge: BridgeAddress,
        device: DeviceAddress,
    },
    BridgeLog {
        bridge: BridgeAddress,
        records: Vec<LogRecord>,
    },
    BridgeCommandResponse {
        bridge: BridgeAddress,
        command_id: u32,
        return_code: ReturnCode,
    },
    DeviceCommandResponse {
        bridge: BridgeAddress,
        device: Option<DeviceAddress>,
        command_id: u32,
        return_code: ReturnCode,
        transfer_time: Option<f64>,
    },
    Heartbeat {
        bridge: BridgeAddress,
        device: DeviceAddress,
        uptime: u32,
    },
    DidPrint {
        bridge: BridgeAddress,
        device: DeviceAddress,
        print_type: u8,
        print_id: u32,
    },
    DidPowerOn {
        bridge: BridgeAddress,
        device: DeviceAddress,
        info: DidPowerOn,
    },
    ProductAnnounce {
        bridge: BridgeAddress,
        device: DeviceAddress,
        product_id: String,
        product_version: u32,
    },
    BergBinaryEvent {
        bridge: BridgeAddress,
        device: DeviceAddress,
        event_id: u8,
        data: Vec<u8>,
    },
    BergPackedEvent {
        bridge: BridgeAddress,
        device: DeviceAddress,
        event_id: u8,
        data: Vec<u8>,
    },
    /// Well-formed, but a type or name this server does not know.
    Unknown {
        bridge: Option<BridgeAddress>,
        device: Option<DeviceAddress>,
        reason: String,
    },
    /// Broken input: not JSON, missing or mistyped fields, bad base64,
    /// truncated binaries.
    Malformed {
        bridge: Option<BridgeAddress>,
        device: Option<DeviceAddress>,
        error: String,
    },
}

impl Event {
    /// The kind of event, as used in logs, counters and tool output.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::PowerOn { .. } => "power_on",
            Event::DeviceConnect { .. } => "device_connect",
            Event::DeviceDisconnect { .. } => "device_disconnect",
            Event::EncryptionKeyRequired { .. } => "encryption_key_required",
            Event::BridgeLog { .. } => "bridge_log",
            Event::BridgeCommandResponse { .. } => "bridge_command_response",
            Event::DeviceCommandResponse { .. } => "device_command_response",
            Event::Heartbeat { .. } => "heartbeat",
            Event::DidPrint { .. } => "did_print",
            Event::DidPowerOn { .. } => "did_power_on",
            Event::ProductAnnounce { .. } => "product_announce",
            Event::BergBinaryEvent { .. } => "berg_binary_event",
            Event::BergPackedEvent { .. } => "berg_packed_event",
            Event::Unknown { .. } => "unknown",
            Event::Malformed { .. } => "malformed",
        }
    }

    /// The bridge that sent it, when known.
    pub fn bridge(&self) -> Option<BridgeAddress> {
        match self {
            Event::PowerOn { bridge, .. }
            | Event::DeviceConnect { bridge, .. }
            | Event::DeviceDisconnect { bridge, .. }
            | Event::EncryptionKeyRequired { bridge, .. }
            | Event::BridgeLog { bridge, .. }
            | Event::BridgeCommandResponse { bridge, .. }
            | Event::DeviceCommandResponse { bridge, .. }
            | Event::Heartbeat { bridge, .. }
            | Event::DidPrint { bridge, .. }
            | Event::DidPowerOn { bridge, .. }
            | Event::ProductAnnounce { bridge, .. }
            | Event::BergBinaryEvent { bridge, .. }
            | Event::BergPackedEvent { bridge, .. } => Some(*bridge),
            Event::Unknown { bridge, .. } | Event::Malformed { bridge, .. } => *bridge,
        }
    }

    /// The device the event names, when it names one.
    pub fn device(&self) -> Option<DeviceAddress> {
        match self {
            Event::DeviceConnect { device, .. }
            | Event::DeviceDisconnect { device, .. }
            | Event::EncryptionKeyRequired { device, .. }
            | Event::Heartbeat { device, .. }
            | Event::DidPrint { device, .. }
            | Event::DidPowerOn { device, .. }
            | Event::ProductAnnounce { device, .. }
            | Event::BergBinaryEvent { device, .. }
            | Event::BergPackedEvent { device, .. } => Some(*device),
            Event::DeviceCommandResponse { device, .. }
            | Event::Unknown { device, .. }
            | Event::Malformed { device, .. } => *device,
            Event::PowerOn { .. }
            | Event::BridgeLog { .. }
            | Event::BridgeCommandResponse { .. } => None,
        }
    }

    /// A flat JSON object: `kind`, `bridge_address` and `device_address`
    /// where known, then the fields of the kind. This is what
    /// `sirius inspect message` prints.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), self.kind().into());
        if let Some(b) = self.bridge() {
            m.insert("bridge_address".into(), b.to_string().into());
        }
        if let Some(d) = self.device() {
            m.insert("device_address".into(), d.to_string().into());
        }
        let mut put = |k: &str, v: Value| {
            m.insert(k.into(), v);
        };
        match self {
            Event::PowerOn { info, .. } => {
                put("model", info.model.clone().into());
                put("firmware_version", info.firmware_version.clone().into());
                put("ncp_version", info.ncp_version.clone().into());
                put("local_ip_address", info.local_ip_address.clone().into());
                put("mac_address", info.mac_address.clone().into());
            }
            Event::DeviceConnect { .. } | Event::DeviceDisconnect { .. } => {}
            Event::EncryptionKeyRequired { device, .. } => {
                put("hardware_xor", device.hardware_xor().value().into());
            }
            Event::BridgeLog { records, .. } => put("records", records.len().into()),
            Event::BridgeCommandResponse {
                command_id,
                return_code,
                ..
            }
            | Event::DeviceCommandResponse {
                command_id,
                return_code,
                ..
            } => {
                put("command_id", (*command_id).into());
                put("return_code", return_code.value().into());
                put("return_name", return_code.name().into());
            }
            Event::Heartbeat { uptime, .. } => put("uptime", (*uptime).into()),
            Event::DidPrint {
                print_type,
                print_id,
                ..
            } => {
                put("print_type", (*print_type).into());
                put("print_id", (*print_id).into());
            }
            Event::DidPowerOn { info, .. } => {
                put("device_type", info.device_type.into());
                put(
                    "firmware_build_version",
                    info.firmware_build_version.clone().into(),
                );
                put(
                    "loader_build_version",
                    info.loader_build_version.clone().into(),
                );
                put("protocol_version", info.protocol_version.into());
                put("reset_description", info.reset_description.into());
                put("reset_cause", info.reset_cause().into());
            }
            Event::ProductAnnounce {
                product_id,
                product_version,
                ..
            } => {
                put("product_id", product_id.clone().into());
                put("product_version", (*product_version).into());
            }
            Event::BergBinaryEvent { event_id, data, .. }
            | Event::BergPackedEvent { event_id, data, .. } => {
                put("event_id", (*event_id).into());
                put("data_hex", hex(data).into());
            }
            Event::Unknown { reason, .. } => put("reason", reason.clone().into()),
            Event::Malformed { error, .. } => put("error", error.clone().into()),
        }
        Value::Object(m)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Decodes one websocket text frame.
///
/// A well-formed `DeviceEvent` (heartbeats: nearly all of a bridge's
/// traffic) is read straight into borrowed fields, without building a JSON
/// tree; anything else, or anything the quick reading does not accept as
/// it is, is read again the general way, which gives every error its
/// words. Both ways give the same `Event` (tested).
pub fn decode_text(text: &str) -> Event {
    if let Some(event) = quick::device_event(text) {
        return event;
    }
    decode_text_general(text)
}

/// [`decode_text`] without the quick path for `DeviceEvent`s.
fn decode_text_general(text: &str) -> Event {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => decode_value(&v),
        Err(e) => Event::Malformed {
            bridge: None,
            device: None,
            error: format!("not JSON: {e}"),
        },
    }
}

/// Decodes one websocket binary frame (bridges send text; a binary frame
/// holding UTF-8 JSON is read the same way).
pub fn decode_bytes(bytes: &[u8]) -> Event {
    match std::str::from_utf8(bytes) {
        Ok(text) => decode_text(text),
        Err(_) => Event::Malformed {
            bridge: None,
            device: None,
            error: "frame is not UTF-8 text".into(),
        },
    }
}

/// A reason something is malformed, before addresses are attached.
struct Broken(String);

fn broken<T>(msg: impl Into<String>) -> Result<T, Broken> {
    Err(Broken(msg.into()))
}

/// Decodes a parsed JSON message.
pub fn decode_value(v: &Value) -> Event {
    let Some(obj) = v.as_object() else {
        return Event::Malformed {
            bridge: None,
            device: None,
            error: format!("expected a JSON object, got {}", type_name(v)),
        };
    };
    // Addresses are read first so that even a broken message can be
    // attributed to its bridge and device in logs.
    let bridge = obj
        .get("bridge_address")
        .and_then(Value::as_str)
        .and_then(|s| BridgeAddress::parse(s).ok());
    let device = obj
        .get("device_address")
        .or_else(|| {
            obj.get("json_payload")
                .and_then(|p| p.get("device_address"))
        })
        .and_then(Value::as_str)
        .and_then(|s| DeviceAddress::parse(s).ok());
    match decode_object(obj) {
        Ok(event) => event,
        Err(Decoded::Unknown(reason)) => Event::Unknown {
            bridge,
            device,
            reason,
        },
        Err(Decoded::Malformed(Broken(error))) => Event::Malformed {
            bridge,
            device,
            error,
        },
    }
}

enum Decoded {
    Unknown(String),
    Malformed(Broken),
}

impl From<Broken> for Decoded {
    fn from(b: Broken) -> Self {
        Decoded::Malformed(b)
    }
}

fn decode_object(obj: &Map<String, Value>) -> Result<Event, Decoded> {
    let kind = match obj.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(Broken(format!(
                "field type: expected a string, got {}",
                type_name(other)
            ))
            .into());
        }
        None => return Err(Broken("missing field type".into()).into()),
    };
    // Checked for every known type: string or number is fine, absent too.
    if let Some(ts) = obj.get("timestamp")
        && !(ts.is_number() || ts.is_string())
    {
        return Err(Broken(format!(
            "field timestamp: expected a number or a string, got {}",
            type_name(ts)
        ))
        .into());
    }
    match kind {
        "BridgeEvent" => decode_bridge_event(obj),
        "BridgeLog" => {
            let bridge = bridge_address(obj)?;
            let records = match obj.get("records") {
                Some(Value::Array(items)) => items.iter().map(log_record).collect(),
                Some(other) => {
                    return Err(Broken(format!(
                        "field records: expected a list, got {}",
                        type_name(other)
                    ))
                    .into());
                }
                None => return Err(Broken("missing field records".into()).into()),
            };
            Ok(Event::BridgeLog { bridge, records })
        }
        "BridgeCommandResponse" => Ok(Event::BridgeCommandResponse {
            bridge: bridge_address(obj)?,
            command_id: u32_field(obj, "command_id")?,
            return_code: ReturnCode::new(u32_field(obj, "return_code")?),
        }),
        "DeviceCommandResponse" => {
            let device = match obj.get("device_address") {
                None | Some(Value::Null) => None,
                Some(_) => Some(address_field::<DeviceAddress>(obj, "device_address")?),
            };
            Ok(Event::DeviceCommandResponse {
                bridge: bridge_address(obj)?,
                device,
                command_id: u32_field(obj, "command_id")?,
                return_code: ReturnCode::new(u32_field(obj, "return_code")?),
                transfer_time: obj.get("transfer_time").and_then(number_lenient),
            })
        }
        "DeviceEvent" => decode_device_event_message(obj),
        other => Err(Decoded::Unknown(format!(
            "unknown message type {:?}",
            truncate(other)
        ))),
    }
}

fn decode_bridge_event(obj: &Map<String, Value>) -> Result<Event, Decoded> {
    let bridge = bridge_address(obj)?;
    let payload = match obj.get("json_payload") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(Broken(format!(
                "field json_payload: expected an object, got {}",
                type_name(other)
            ))
            .into());
        }
        None => return Err(Broken("missing field json_payload".into()).into()),
    };
    let name = match payload.get("name") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(Broken(format!(
                "field json_payload.name: expected a string, got {}",
                type_name(other)
            ))
            .into());
        }
        None => return Err(Broken("missing field json_payload.name".into()).into()),
    };
    let device = || address_field::<DeviceAddress>(payload, "device_address");
    match name {
        "power_on" => {
            let text = |k: &str| payload.get(k).and_then(text_lenient);
            Ok(Event::PowerOn {
                bridge,
                info: PowerOnInfo {
                    model: text("model"),
                    firmware_version: text("firmware_version"),
                    ncp_version: text("ncp_version"),
                    local_ip_address: text("local_ip_address"),
                    mac_address: text("mac_address"),
                    uptime: text("uptime"),
                },
            })
        }
        "device_connect" => Ok(Event::DeviceConnect {
            bridge,
            device: device()?,
        }),
        "device_disconnect" => Ok(Event::DeviceDisconnect {
            bridge,
            device: device()?,
        }),
        "encryption_key_required" => Ok(Event::EncryptionKeyRequired {
            bridge,
            device: device()?,
        }),
        other => Err(Decoded::Unknown(format!(
            "unknown BridgeEvent name {:?}",
            truncate(other)
        ))),
    }
}

fn decode_device_event_message(obj: &Map<String, Value>) -> Result<Event, Decoded> {
    let bridge = bridge_address(obj)?;
    let device = address_field::<DeviceAddress>(obj, "device_address")?;
    let b64 = match obj.get("binary_payload") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(Broken(format!(
                "field binary_payload: expected a base64 string, got {}",
                type_name(other)
            ))
            .into());
        }
        None => return Err(Broken("missing field binary_payload".into()).into()),
    };
    device_event_payload(bridge, device, b64)
}

/// The event inside a `DeviceEvent`'s `binary_payload`.
fn device_event_payload(
    bridge: BridgeAddress,
    device: DeviceAddress,
    b64: &str,
) -> Result<Event, Decoded> {
    let binary = decode_base64(b64)
        .map_err(|e| Broken(format!("field binary_payload is not valid base64: {e}")))?;
    let event = match decode_device_event(&binary) {
        Ok(e) => e,
        Err(DeviceEventError::UnknownCode(code)) => {
            return Err(Decoded::Unknown(format!(
                "unknown device event code 0x{code:04x}"
            )));
        }
        Err(e) => return Err(Broken(e.to_string()).into()),
    };
    Ok(match event.body {
        DeviceEventBody::Heartbeat { uptime } => Event::Heartbeat {
            bridge,
            device,
            uptime,
        },
        DeviceEventBody::DidPrint {
            print_type,
            print_id,
        } => Event::DidPrint {
            bridge,
            device,
            print_type,
            print_id,
        },
        DeviceEventBody::DidPowerOn(info) => Event::DidPowerOn {
            bridge,
            device,
            info,
        },
        DeviceEventBody::ProductAnnounce {
            product_id,
            product_version,
        } => Event::ProductAnnounce {
            bridge,
            device,
            product_id,
            product_version,
        },
        DeviceEventBody::BergBinary { event_id, data } => Event::BergBinaryEvent {
            bridge,
            device,
            event_id,
            data,
        },
        DeviceEventBody::BergPacked { event_id, data } => Event::BergPackedEvent {
            bridge,
            device,
            event_id,
            data,
        },
    })
}

/// The quick reading of a `DeviceEvent` (see [`decode_text`]).
mod quick {
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    use super::{BridgeAddress, DeviceAddress, Event, device_event_payload};

    /// The fields a `DeviceEvent` is read from; others (`rssi_stats`) are
    /// skipped without being kept. Borrowed strings: a value with an
    /// escape in it fails here and is read the general way.
    #[derive(Deserialize)]
    struct DeviceEventFields<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        bridge_address: &'a str,
        device_address: &'a str,
        binary_payload: &'a str,
        #[serde(default)]
        #[allow(dead_code)]
        timestamp: Timestamp,
    }

    /// A timestamp the general reading accepts: a number or a string, or
    /// none. Anything else (`null` too) fails the quick reading.
    #[derive(Default)]
    struct Timestamp;

    impl<'de> Deserialize<'de> for Timestamp {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct NumberOrString;
            impl Visitor<'_> for NumberOrString {
                type Value = Timestamp;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a number or a string")
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Timestamp, E> {
                    Ok(Timestamp)
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<Timestamp, E> {
                    Ok(Timestamp)
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Timestamp, E> {
                    Ok(Timestamp)
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Timestamp, E> {
                    Ok(Timestamp)
                }
            }
            d.deserialize_any(NumberOrString)
        }
    }

    /// The event, if `text` is a `DeviceEvent` object whose fields are all
    /// well formed; `None` sends it the general way.
    pub(super) fn device_event(text: &str) -> Option<Event> {
        // A JSON list would fill the fields in order: only objects here.
        if !text.trim_start().starts_with('{') {
            return None;
        }
        let fields: DeviceEventFields = serde_json::from_str(text).ok()?;
        if fields.kind != "DeviceEvent" {
            return None;
        }
        let bridge = BridgeAddress::parse(fields.bridge_address).ok()?;
        let device = DeviceAddress::parse(fields.device_address).ok()?;
        device_event_payload(bridge, device, fields.binary_payload).ok()
    }
}

/// Standard base64, padded or not; white space (line breaks from some
/// encoders) is ignored.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        LENIENT.decode(compact)
    } else {
        LENIENT.decode(text)
    }
}

fn bridge_address(obj: &Map<String, Value>) -> Result<BridgeAddress, Broken> {
    address_field(obj, "bridge_address")
}

trait ParseAddress: Sized {
    fn parse_address(s: &str) -> Result<Self, super::address::AddressError>;
}
impl ParseAddress for BridgeAddress {
    fn parse_address(s: &str) -> Result<Self, super::address::AddressError> {
        BridgeAddress::parse(s)
    }
}
impl ParseAddress for DeviceAddress {
    fn parse_address(s: &str) -> Result<Self, super::address::AddressError> {
        DeviceAddress::parse(s)
    }
}

fn address_field<A: ParseAddress>(obj: &Map<String, Value>, key: &str) -> Result<A, Broken> {
    match obj.get(key) {
        Some(Value::String(s)) => {
            A::parse_address(s).or_else(|e| broken(format!("field {key} {:?}: {e}", truncate(s))))
        }
        Some(other) => broken(format!(
            "field {key}: expected a string, got {}",
            type_name(other)
        )),
        None => broken(format!("missing field {key}")),
    }
}

/// An unsigned 32-bit integer, given as a number (an integral float is fine)
/// or as a string of digits.
fn u32_field(obj: &Map<String, Value>, key: &str) -> Result<u32, Broken> {
    let v = match obj.get(key) {
        Some(v) => v,
        None => return broken(format!("missing field {key}")),
    };
    let parsed = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) if n <= u64::from(u32::MAX) => Ok(n as u32),
        _ => broken(format!(
            "field {key}: expected an unsigned 32-bit integer, got {}",
            describe(v)
        )),
    }
}

fn number_lenient(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Strings as they are, numbers and booleans as text; objects, lists and
/// null as nothing.
fn text_lenient(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn log_record(v: &Value) -> LogRecord {
    let Some(o) = v.as_object() else {
        return LogRecord {
            message: text_lenient(v),
            ..LogRecord::default()
        };
    };
    LogRecord {
        name: o.get("name").and_then(text_lenient),
        created: o.get("created").and_then(number_lenient),
        levelname: o.get("levelname").and_then(text_lenient),
        levelno: o.get("levelno").and_then(number_lenient).map(|f| f as i64),
        message: o.get("message").and_then(text_lenient),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", truncate(s)),
        other => type_name(other).to_string(),
    }
}

/// Keeps quoted input in error messages short.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(v: Value) -> &'static str {
        decode_value(&v).kind()
    }

    /// The quick reading of `DeviceEvent`s gives what the general reading
    /// gives, for real captures and for everything it must hand on.
    #[test]
    fn quick_device_events_read_as_the_general_way_does() {
        let heartbeat = r#"{"binary_payload": "AQAAAAAABAAAABQAAAA=",
            "bridge_address": "000d6f0002ff7a91", "device_address": "000d6f000273ce0b",
            "rssi_stats": [-31, -32, -30], "timestamp": 1346504091.521628, "type": "DeviceEvent"}"#;
        let quick_ones = [
            heartbeat.to_string(),
            include_str!("../../tests/fixtures/captures/DeviceEvent-heartbeat.json").to_string(),
            include_str!("../../tests/fixtures/captures/DeviceEvent-heartbeat-2.json").to_string(),
            include_str!("../../tests/fixtures/captures/DeviceEvent-did_power_on.json").to_string(),
            heartbeat.replace("1346504091.521628", "12"),
            heartbeat.replace("1346504091.521628", "-12"),
            heartbeat.replace("1346504091.521628", r#""2012-09-01""#),
            heartbeat.replace(r#""timestamp": 1346504091.521628,"#, ""),
            heartbeat.replace("000d6f000273ce0b", "000D6F000273CE0B"),
            heartbeat.replace("[-31, -32, -30]", r#"{"a": [1, {"b": null}]}"#),
            heartbeat.replace("AQAAAAAABAAAABQAAAA=", "AQAAAAAABAAAABQAAAA"),
            heartbeat.replace("AQAAAAAABAAAABQAAAA=", "AQAA AAAABAAAABQAAAA="),
            // Keys spelled with an escape are still the same keys.
            heartbeat.replace(r#""type""#, r#""typ\u0065""#),
        ];
        for text in &quick_ones {
            let quick = quick::device_event(text);
            assert!(quick.is_some(), "not read quickly: {text}");
            assert_eq!(quick.unwrap(), decode_text_general(text), "{text}");
            assert!(matches!(
                decode_text(text),
                Event::Heartbeat { .. } | Event::DidPowerOn { .. }
            ));
        }
        let list =
            r#"["DeviceEvent", "000d6f0002ff7a91", "000d6f000273ce0b", "AQAAAAAABAAAABQAAAA="]"#;
        let general_ones = [
            heartbeat.replace("1346504091.521628", "null"),
            heartbeat.replace("1346504091.521628", "true"),
            heartbeat.replace("1346504091.521628", "[1]"),
            heartbeat.replace(r#""DeviceEvent""#, r#""BridgeEvent""#),
            heartbeat.replace(r#""DeviceEvent""#, r#""Device\u0045vent""#),
            heartbeat.replace("000d6f000273ce0b", "000d6f000273ce0"),
            heartbeat.replace("000d6f000273ce0b", "000d6f000273ce0g"),
            heartbeat.replace("000d6f0002ff7a91", "000d6f0002ff7a9\\u0031"),
            heartbeat.replace(r#""000d6f0002ff7a91""#, "12"),
            heartbeat.replace("AQAAAAAABAAAABQAAAA=", "!!!"),
            heartbeat.replace("AQAAAAAABAAAABQAAAA=", "AQAAAAAABA=="),
            heartbeat.replace("AQAAAAAABAAAABQAAAA=", "//8AAAAABAAAABQAAAA="),
            heartbeat.replace(r#""rssi_stats""#, r#""type": "DeviceEvent", "x""#),
            heartbeat.replace(r#""binary_payload": "AQAAAAAABAAAABQAAAA=","#, ""),
            heartbeat.replace('}', "} x"),
            list.to_string(),
            "not json".to_string(),
        ];
        for text in &general_ones {
            assert!(quick::device_event(text).is_none(), "read quickly: {text}");
            assert_eq!(decode_text(text), decode_text_general(text), "{text}");
        }
        // A list is a list, not a DeviceEvent with its fields in order.
        assert_eq!(decode_text(list).kind(), "malformed");
    }

    #[test]
    fn lenient_where_real_bridges_differ() {
        // Integer timestamp, {} for power_on details, integer uptime.
        let e = decode_value(
            &json!({"type": "BridgeEvent", "bridge_address": "000D6F0001B3719D",
            "timestamp": 12, "json_payload": {"name": "power_on", "uboot_environment": {},
            "network_info": {}, "uptime": 42, "model": "A"}}),
        );
        let Event::PowerOn { bridge, info } = e else {
            panic!("{e:?}")
        };
        assert_eq!(bridge.to_string(), "000d6f0001b3719d");
        assert_eq!(info.uptime.as_deref(), Some("42"));
        assert_eq!(info.model.as_deref(), Some("A"));
        assert_eq!(info.firmware_version, None);
        // Command ids as strings.
        let e = decode_value(&json!({"type": "BridgeCommandResponse",
            "bridge_address": "000d6f0001b3719d", "command_id": "7", "return_code": 0}));
        assert!(matches!(
            e,
            Event::BridgeCommandResponse { command_id: 7, .. }
        ));
    }

    #[test]
    fn unknown_and_malformed_have_reasons() {
        assert_eq!(kind(json!({"type": "Nope"})), "unknown");
        assert_eq!(
            kind(
                json!({"type": "BridgeEvent", "bridge_address": "000d6f0001b3719d",
                "json_payload": {"name": "reboot"}})
            ),
            "unknown"
        );
        assert_eq!(kind(json!([1, 2])), "malformed");
        assert_eq!(kind(json!({"no": "type"})), "malformed");
        assert_eq!(
            kind(
                json!({"type": "DeviceEvent", "bridge_address": "000d6f0001b3719d",
                "device_address": "000d6f000273ce0b", "binary_payload": "!!!"})
            ),
            "malformed"
        );
        assert_eq!(
            kind(
                json!({"type": "DeviceCommandResponse", "bridge_address": "000d6f0001b3719d",
                "command_id": -1, "return_code": 0})
            ),
            "malformed"
        );
        let e = decode_text("{not json");
        let Event::Malformed { error, .. } = e else {
            panic!()
        };
        assert!(error.starts_with("not JSON"), "{error}");
    }

    #[test]
    fn broken_messages_keep_their_addresses() {
        let e = decode_value(
            &json!({"type": "DeviceEvent", "bridge_address": "000d6f0001b3719d",
            "device_address": "000d6f000273ce0b", "binary_payload": "AQAA"}),
        );
        assert_eq!(e.kind(), "malformed");
        assert_eq!(e.bridge().unwrap().to_string(), "000d6f0001b3719d");
        assert_eq!(e.device().unwrap().to_string(), "000d6f000273ce0b");
    }
}
