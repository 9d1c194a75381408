//! The Little Printer protocol, pure: bytes and values in, bytes and values
//! out, no I/O (PROTOCOL.md).
//!
//! * [`address`]: bridge and device addresses, the hardware xor.
//! * [`claim`]: claim codes and link keys.
//! * [`events`]: every message a bridge sends, decoded into [`Event`].
//! * [`device`]: the binary device events inside a `DeviceEvent`.
//! * [`commands`]: the JSON of commands sent to a bridge.
//! * [`payload`]: the printer payload and its run-length code.

pub mod address;
pub mod claim;
pub mod commands;
pub mod device;
pub mod events;
pub mod payload;
pub mod return_code;

pub use address::{AddressError, BridgeAddress, DeviceAddress, HardwareXor};
pub use claim::{ClaimCode, ClaimCodeError, ClaimSecret, LinkKey};
pub use events::{Event, decode_text, decode_value};
pub use payload::{CommandKind, DecodedPayload, PayloadError};
pub use return_code::ReturnCode;
