//! Device events: the binary payload of a `DeviceEvent` (PROTOCOL §4).
//!
//! A 10-byte little-endian header (event code, command id, body length N)
//! followed by exactly N bytes of body. The body starts at offset 10.

/// What a printer reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEventBody {
    /// Sent about every 10 s.
    Heartbeat {
        uptime: u32,
    },
    /// The printer printed (or found nothing to print).
    DidPrint {
        print_type: u8,
        print_id: u32,
    },
    DidPowerOn(DidPowerOn),
    ProductAnnounce {
        /// 32 lowercase hex digits.
        product_id: String,
        product_version: u32,
    },
    /// 0xE0xx: an opaque BERG Cloud binary event; `data` is the whole binary.
    BergBinary {
        event_id: u8,
        data: Vec<u8>,
    },
    /// 0xE1xx: an opaque BERG Cloud packed event; `data` is the whole binary.
    BergPacked {
        event_id: u8,
        data: Vec<u8>,
    },
}

impl DeviceEventBody {
    /// The name used for this kind of event in logs and tool output.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceEventBody::Heartbeat { .. } => "heartbeat",
            DeviceEventBody::DidPrint { .. } => "did_print",
            DeviceEventBody::DidPowerOn(_) => "did_power_on",
            DeviceEventBody::ProductAnnounce { .. } => "product_announce",
            DeviceEventBody::BergBinary { .. } => "berg_binary_event",
            DeviceEventBody::BergPacked { .. } => "berg_packed_event",
        }
    }
}

/// The printer started up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidPowerOn {
    pub device_type: u32,
    pub firmware_build_version: String,
    pub loader_build_version: String,
    pub protocol_version: u32,
    /// High byte: the cause; low byte: extra detail.
    pub reset_description: u16,
}

impl DidPowerOn {
    /// The reset cause in words, from the high byte of the description.
    pub fn reset_cause(&self) -> &'static str {
        reset_cause(self.reset_description)
    }
}

/// Names of the reset causes, by the high byte of the reset description.
/// Causes outside the known list read "Unknown".
pub fn reset_cause(description: u16) -> &'static str {
    match description >> 8 {
        0x00 => "Undeterminable cause",
        0x01 => "FIB bootloader",
        0x02 => "Ember bootloader",
        0x03 => "External reset",
        0x04 => "Power on",
        0x05 => "Watchdog",
        0x06 => "Software triggered",
        0x07 => "Software crash",
        0x08 => "Flash failure",
        0x09 => "Fatal error",
        0x0a => "Access fault",
        _ => "Unknown",
    }
}

/// A decoded device event: its header plus the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    pub code: u16,
    /// 0 for spontaneous events.
    pub command_id: u32,
    pub body: DeviceEventBody,
}

/// Why a device event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceEventError {
    #[error("device event is {0} bytes, shorter than its 10-byte header")]
    Truncated(usize),
    #[error("device event header says {declared} body bytes, but {actual} follow")]
    LengthMismatch { declared: u32, actual: usize },
    #[error("{name} event body must be {expected} bytes, this one is {actual}")]
    BodySize {
        name: &'static str,
        expected: &'static str,
        actual: usize,
    },
    /// An event code nobody documented; not an error in the bridge, just
    /// something this server does not understand.
    #[error("unknown device event code 0x{0:04x}")]
    UnknownCode(u16),
}

const HEADER: usize = 10;

/// Decodes the binary payload of a DeviceEvent. Never panics; allocates at
/// most a copy of the input.
pub fn decode_device_event(binary: &[u8]) -> Result<DeviceEvent, DeviceEventError> {
    if binary.len() < HEADER {
        return Err(DeviceEventError::Truncated(binary.len()));
    }
    let code = u16::from_le_bytes([binary[0], binary[1]]);
    let command_id = le32(&binary[2..6]);
    let declared = le32(&binary[6..10]);
    let body = &binary[HEADER..];
    if declared as usize != body.len() || u64::from(declared) != body.len() as u64 {
        return Err(DeviceEventError::LengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    let size = |name, expected, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(DeviceEventError::BodySize {
                name,
                expected,
                actual: body.len(),
            })
        }
    };
    let body = match code {
        0x0001 => {
            size("heartbeat", "4", body.len() == 4)?;
            DeviceEventBody::Heartbeat { uptime: le32(body) }
        }
        0x0002 => {
            size("did_print", "5", body.len() == 5)?;
            DeviceEventBody::DidPrint {
                print_type: body[0],
                print_id: le32(&body[1..5]),
            }
        }
        0x0003 => {
            let text = match body.len() {
                74 => 32,
                58 => 24,
                actual => {
                    return Err(DeviceEventError::BodySize {
                        name: "did_power_on",
                        expected: "58 or 74",
                        actual,
                    });
                }
            };
            let firmware = &body[4..4 + text];
            let loader = &body[4 + text..4 + 2 * text];
            let rest = &body[4 + 2 * text..];
            DeviceEventBody::DidPowerOn(DidPowerOn {
                device_type: le32(&body[..4]),
                firmware_build_version: nul_padded(firmware),
                loader_build_version: nul_padded(loader),
                protocol_version: le32(&rest[..4]),
                reset_description: u16::from_le_bytes([rest[4], rest[5]]),
            })
        }
        0xA000 => {
            size("product_announce", "20", body.len() == 20)?;
            // The product id words are big-endian, and so (as the earlier
            // server read it) is the version.
            let words: Vec<u32> = body
                .chunks_exact(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .collect();
            DeviceEventBody::ProductAnnounce {
                product_id: format!(
                    "{:08x}{:08x}{:08x}{:08x}",
                    words[0], words[1], words[2], words[3]
                ),
                product_version: words[4],
            }
        }
        c if c & 0xff00 == 0xe000 => DeviceEventBody::BergBinary {
            event_id: (c & 0xff) as u8,
            data: binary.to_vec(),
        },
        c if c & 0xff00 == 0xe100 => DeviceEventBody::BergPacked {
            event_id: (c & 0xff) as u8,
            data: binary.to_vec(),
        },
        c => return Err(DeviceEventError::UnknownCode(c)),
    };
    Ok(DeviceEvent {
        code,
        command_id,
        body,
    })
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// ASCII text padded with NULs: everything up to the first NUL.
fn nul_padded(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Encodes a device event (header + body) — the reverse of
/// [`decode_device_event`], used by the emulator.
pub fn encode_device_event(code: u16, command_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&command_id.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The binary of a heartbeat event.
pub fn heartbeat(uptime: u32) -> Vec<u8> {
    encode_device_event(0x0001, 0, &uptime.to_le_bytes())
}

/// The binary of a did_print event for a delivery with `print_id`.
pub fn did_print(print_type: u8, print_id: u32) -> Vec<u8> {
    let mut body = vec![print_type];
    body.extend_from_slice(&print_id.to_le_bytes());
    encode_device_event(0x0002, 0, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn heartbeat_reads_uptime_at_offset_10() {
        let b = STANDARD.decode("AQAAAAAABAAAABQAAAA=").unwrap();
        let e = decode_device_event(&b).unwrap();
        assert_eq!(e.body, DeviceEventBody::Heartbeat { uptime: 20 });
        assert_eq!(heartbeat(20), b);
    }

    #[test]
    fn did_power_on_real_capture() {
        let b = STANDARD.decode("AwAAAAAASgAAAAAAAAB2MC41LTEyLWcyNmU4MmYwAAAAAAAAAAAAAAAAAAAAAHYwLjUtMC1nMTQ4NTljYgAAAAAAAAAAAAAAAAAAAAAABAAAAAEE").unwrap();
        let DeviceEventBody::DidPowerOn(p) = decode_device_event(&b).unwrap().body else {
            panic!("not did_power_on")
        };
        assert_eq!(p.device_type, 0);
        assert_eq!(p.firmware_build_version, "v0.5-12-g26e82f0");
        assert_eq!(p.loader_build_version, "v0.5-0-g14859cb");
        assert_eq!(p.protocol_version, 4);
        assert_eq!(p.reset_description, 0x0401);
        assert_eq!(p.reset_cause(), "Power on");
    }

    #[test]
    fn short_did_power_on() {
        let mut body = vec![1, 0, 0, 0];
        body.extend_from_slice(&[b'a'; 24]);
        let mut loader = b"v1".to_vec();
        loader.resize(24, 0);
        body.extend_from_slice(&loader);
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&0x0500u16.to_le_bytes());
        let e = decode_device_event(&encode_device_event(3, 0, &body)).unwrap();
        let DeviceEventBody::DidPowerOn(p) = e.body else {
            panic!()
        };
        assert_eq!(p.firmware_build_version, "a".repeat(24));
        assert_eq!(p.loader_build_version, "v1");
        assert_eq!(p.reset_cause(), "Watchdog");
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            decode_device_event(&[1, 0, 0]),
            Err(DeviceEventError::Truncated(3))
        );
        let mut hb = heartbeat(5);
        hb.push(0);
        assert!(matches!(
            decode_device_event(&hb),
            Err(DeviceEventError::LengthMismatch {
                declared: 4,
                actual: 5
            })
        ));
        assert!(matches!(
            decode_device_event(&encode_device_event(1, 0, &[1, 2, 3])),
            Err(DeviceEventError::BodySize { .. })
        ));
        assert!(matches!(
            decode_device_event(&encode_device_event(3, 0, &[0; 60])),
            Err(DeviceEventError::BodySize { .. })
        ));
        assert_eq!(
            decode_device_event(&encode_device_event(0x0042, 0, &[])),
            Err(DeviceEventError::UnknownCode(0x42))
        );
    }

    #[test]
    fn product_announce_and_berg_events() {
        let mut body = Vec::new();
        for w in [0x01234567u32, 0x89abcdef, 0, 0xffffffff, 7] {
            body.extend_from_slice(&w.to_be_bytes());
        }
        let e = decode_device_event(&encode_device_event(0xA000, 0, &body)).unwrap();
        assert_eq!(
            e.body,
            DeviceEventBody::ProductAnnounce {
                product_id: "0123456789abcdef00000000ffffffff".into(),
                product_version: 7
            }
        );
        let bin = encode_device_event(0xE005, 9, &[1, 2]);
        assert_eq!(
            decode_device_event(&bin).unwrap().body,
            DeviceEventBody::BergBinary {
                event_id: 5,
                data: bin.clone()
            }
        );
        let packed = encode_device_event(0xe1ff, 0, &[]);
        assert_eq!(
            decode_device_event(&packed).unwrap().body,
            DeviceEventBody::BergPacked {
                event_id: 0xff,
                data: packed.clone()
            }
        );
    }

    #[test]
    fn did_print_round_trip() {
        let e = decode_device_event(&did_print(0x01, 77)).unwrap();
        assert_eq!(
            e.body,
            DeviceEventBody::DidPrint {
                print_type: 1,
                print_id: 77
            }
        );
    }
}
