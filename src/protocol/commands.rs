//! Commands to the bridge (PROTOCOL §6), as the JSON text sent in a
//! websocket frame.
//!
//! Every command carries the bridge address exactly as the bridge announced
//! it, a command id (u32, never 0) and `"timestamp": "0"`, which real bridges
//! accept. Addresses are taken as text here: the server passes the typed
//! addresses it learned, and the `render` tool may be given anything.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::claim::LinkKey;
use super::events::decode_base64;
use super::payload::{CommandKind, DecodedPayload, PayloadError, decode_payload, encode_payload};
use crate::raster::Page;

/// The `add_device_encryption_key` BridgeCommand that gives a printer its
/// link key.
pub fn add_device_encryption_key(
    bridge_address: &str,
    device_address: &str,
    command_id: u32,
    key: &LinkKey,
) -> String {
    json!({
        "type": "BridgeCommand",
        "bridge_address": bridge_address,
        "command_id": command_id,
        "timestamp": "0",
        "json_payload": {
            "name": "add_device_encryption_key",
            "params": {
                "device_address": device_address,
                "encryption_key": key.to_base64(),
            }
        }
    })
    .to_string()
}

/// A DeviceCommand wrapping an already encoded printer payload.
pub fn device_command_json(
    bridge_address: &str,
    device_address: &str,
    command_id: u32,
    payload: &[u8],
) -> Value {
    json!({
        "type": "DeviceCommand",
        "bridge_address": bridge_address,
        "device_address": device_address,
        "command_id": command_id,
        "timestamp": "0",
        "binary_payload": BASE64.encode(payload),
    })
}

/// A print command for `pages`, as DeviceCommand JSON text. The file id in
/// the payload is the command id, so did_print and the command response
/// name the same number.
pub fn print_command(
    bridge_address: &str,
    device_address: &str,
    command_id: u32,
    command: CommandKind,
    pages: &[Page],
) -> Result<String, PayloadError> {
    let payload = encode_payload(command, command_id, pages)?;
    Ok(device_command_text(
        bridge_address,
        device_address,
        command_id,
        &payload,
    ))
}

/// The same JSON as [`device_command_json`], written straight into a
/// string: a 10,000-row page is megabytes of base64, and going through a
/// `serde_json::Value` would copy and re-scan all of it.
pub fn device_command_text(
    bridge_address: &str,
    device_address: &str,
    command_id: u32,
    payload: &[u8],
) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialise");
    let mut out = String::with_capacity(160 + payload.len().div_ceil(3) * 4);
    out.push_str(r#"{"type":"DeviceCommand","bridge_address":"#);
    out.push_str(&quote(bridge_address));
    out.push_str(r#","device_address":"#);
    out.push_str(&quote(device_address));
    out.push_str(&format!(
        r#","command_id":{command_id},"timestamp":"0","binary_payload":""#
    ));
    BASE64.encode_string(payload, &mut out);
    out.push_str("\"}");
    out
}

/// What was wrong with a DeviceCommand handed to [`decode_device_command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceCommandError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("expected a DeviceCommand, got type {0:?}")]
    Type(String),
    #[error("missing or non-string field binary_payload")]
    NoPayload,
    #[error("binary_payload is not valid base64: {0}")]
    Base64(String),
    #[error("{0}")]
    Payload(#[from] PayloadError),
}

/// A DeviceCommand read back (as the emulator and `inspect payload` do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedDeviceCommand {
    pub bridge_address: Option<String>,
    pub device_address: Option<String>,
    pub command_id: Option<u32>,
    pub payload: DecodedPayload,
}

/// Reads a DeviceCommand JSON object (or, if `text` is not JSON, a bare
/// base64 payload) and decodes its payload, laying pages out `width` wide.
pub fn decode_device_command(
    text: &str,
    width: u32,
) -> Result<ReceivedDeviceCommand, DeviceCommandError> {
    let text = text.trim();
    if !text.starts_with('{') {
        let bytes = decode_base64(text).map_err(|e| DeviceCommandError::Base64(e.to_string()))?;
        return Ok(ReceivedDeviceCommand {
            bridge_address: None,
            device_address: None,
            command_id: None,
            payload: decode_payload(&bytes, width)?,
        });
    }
    let v: Value =
        serde_json::from_str(text).map_err(|e| DeviceCommandError::Json(e.to_string()))?;
    decode_device_command_value(&v, width)
}

/// As [`decode_device_command`], from parsed JSON.
pub fn decode_device_command_value(
    v: &Value,
    width: u32,
) -> Result<ReceivedDeviceCommand, DeviceCommandError> {
    match v.get("type").and_then(Value::as_str) {
        Some("DeviceCommand") => {}
        other => {
            return Err(DeviceCommandError::Type(
                other.unwrap_or("(none)").to_string(),
            ));
        }
    }
    let b64 = v
        .get("binary_payload")
        .and_then(Value::as_str)
        .ok_or(DeviceCommandError::NoPayload)?;
    let bytes = decode_base64(b64).map_err(|e| DeviceCommandError::Base64(e.to_string()))?;
    Ok(ReceivedDeviceCommand {
        bridge_address: v
            .get("bridge_address")
            .and_then(Value::as_str)
            .map(String::from),
        device_address: v
            .get("device_address")
            .and_then(Value::as_str)
            .map(String::from),
        command_id: v
            .get("command_id")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        payload: decode_payload(&bytes, width)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::claim::ClaimCode;

    #[test]
    fn encryption_key_command_shape() {
        let key = ClaimCode::parse("6xwh-441j-8115-zyrh").unwrap().link_key();
        let text = add_device_encryption_key("some-bridge-address", "some-device-address", 1, &key);
        assert_eq!(
            text,
            r#"{"type":"BridgeCommand","bridge_address":"some-bridge-address","command_id":1,"timestamp":"0","json_payload":{"name":"add_device_encryption_key","params":{"device_address":"some-device-address","encryption_key":"F7D9bmztHV32+WJScGZR0g=="}}}"#
        );
    }

    #[test]
    fn print_command_round_trips() {
        let page = Page::from_fn(384, 3, |x, y| (x + y) % 3 == 0).unwrap();
        let text = print_command(
            "000d6f0001b3719d",
            "000d6f000273ce0b",
            9,
            CommandKind::SetDelivery,
            std::slice::from_ref(&page),
        )
        .unwrap();
        let back = decode_device_command(&text, 384).unwrap();
        let payload =
            encode_payload(CommandKind::SetDelivery, 9, std::slice::from_ref(&page)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            device_command_json("000d6f0001b3719d", "000d6f000273ce0b", 9, &payload)
        );
        assert_eq!(back.command_id, Some(9));
        assert_eq!(back.payload.file_id, 9);
        assert_eq!(back.payload.command, CommandKind::SetDelivery);
        assert_eq!(back.payload.pages, vec![page]);
    }
}
