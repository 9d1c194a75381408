//! Zigbee addresses (PROTOCOL §2) and the hardware xor derived from a device
//! address (PROTOCOL §7).
//!
//! Bridges and printers are named by their EUI64, written as 16 hex digits,
//! big-endian. Real bridges send lowercase; uppercase is accepted and
//! normalised. Anything else is refused.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a text is not a Zigbee address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an address is 16 hex digits (like 000d6f000273ce0b), this has {0} characters")]
    Length(usize),
    #[error(
        "an address is 16 hex digits (like 000d6f000273ce0b); {0:?} at position {1} is not a hex digit"
    )]
    NotHex(char, usize),
}

/// An EUI64 as 8 bytes in the order they are written (big-endian).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Eui64([u8; 8]);

/// One word for the hasher, not a length and a slice: addresses key the
/// maps every heartbeat looks up.
impl std::hash::Hash for Eui64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_ne_bytes(self.0));
    }
}

impl Eui64 {
    fn parse(text: &str) -> Result<Self, AddressError> {
        // Every heartbeat names two addresses: 16 ASCII hex digits are
        // read byte by byte; anything else is read again below for its
        // error.
        if let Ok(digits) = <&[u8; 16]>::try_from(text.as_bytes()) {
            let mut bytes = [0u8; 8];
            let mut ok = true;
            for (i, pair) in digits.chunks_exact(2).enumerate() {
                match (hex_digit(pair[0]), hex_digit(pair[1])) {
                    (Some(hi), Some(lo)) => bytes[i] = hi << 4 | lo,
                    _ => ok = false,
                }
            }
            if ok {
                return Ok(Eui64(bytes));
            }
        }
        let count = text.chars().count();
        if count != 16 {
            return Err(AddressError::Length(count));
        }
        let mut bytes = [0u8; 8];
        for (i, c) in text.chars().enumerate() {
            let digit = c.to_digit(16).ok_or(AddressError::NotHex(c, i + 1))? as u8;
            bytes[i / 2] = (bytes[i / 2] << 4) | digit;
        }
        Ok(Eui64(bytes))
    }

    fn fmt_hex(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Eui64);

        impl $name {
            /// Parses 16 hex digits (either case).
            pub fn parse(text: &str) -> Result<Self, AddressError> {
                Eui64::parse(text).map($name)
            }

            /// The 8 bytes as written (big-endian).
            pub fn bytes(&self) -> [u8; 8] {
                self.0 .0
            }

            /// Builds an address from its 8 bytes (big-endian).
            pub fn from_bytes(bytes: [u8; 8]) -> Self {
                $name(Eui64(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_hex(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                self.0.fmt_hex(f)?;
                write!(f, ")")
            }
        }

        impl FromStr for $name {
            type Err = AddressError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

address_type!(
    /// The address of a printer (or any Zigbee device behind a bridge). A
    /// printer gets a new one every time it is reset.
    DeviceAddress
);
address_type!(
    /// The address a bridge announces in every message it sends. Every
    /// command to it must carry it back exactly.
    BridgeAddress
);

impl DeviceAddress {
    /// The 24-bit hardware xor of this address: stable across resets of the
    /// printer, and the link between an address and a claim code.
    pub fn hardware_xor(&self) -> HardwareXor {
        let mut b = self.bytes();
        b.reverse(); // b0..b7 in little-endian order
        let x0 = b[0] ^ b[5];
        let x1 = b[1] ^ b[3] ^ b[6];
        let x2 = b[2] ^ b[4] ^ b[7];
        HardwareXor((u32::from(x2) << 16) | (u32::from(x1) << 8) | u32::from(x0))
    }
}

/// A 24-bit value that identifies a printer's hardware across resets
/// (PROTOCOL §7); carried in the low 24 bits of a claim code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct HardwareXor(u32);

impl HardwareXor {
    pub const MAX: u32 = 0x00ff_ffff;

    /// `None` when the value does not fit in 24 bits.
    pub fn new(value: u32) -> Option<Self> {
        (value <= Self::MAX).then_some(HardwareXor(value))
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for HardwareXor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises_to_lowercase() {
        let a = DeviceAddress::parse("000D6F000273CE0B").unwrap();
        assert_eq!(a.to_string(), "000d6f000273ce0b");
        assert_eq!(a, DeviceAddress::parse("000d6f000273ce0b").unwrap());
    }

    #[test]
    fn refuses_wrong_lengths_and_non_hex() {
        assert_eq!(
            DeviceAddress::parse("000d6f000273ce0"),
            Err(AddressError::Length(15))
        );
        assert_eq!(
            DeviceAddress::parse("0x0d6f000273ce0b"),
            Err(AddressError::NotHex('x', 2))
        );
        assert_eq!(
            DeviceAddress::parse("000d6f00 273ce0b"),
            Err(AddressError::NotHex(' ', 9))
        );
        assert_eq!(DeviceAddress::parse(""), Err(AddressError::Length(0)));
        assert!(DeviceAddress::parse("000d6f000273ce0bé").is_err());
    }

    #[test]
    fn hardware_xor_matches_the_protocol_example() {
        let a = DeviceAddress::parse("000d6f000273ce0b").unwrap();
        assert_eq!(a.hardware_xor().value(), 7586148);
        assert_eq!(a.hardware_xor().value(), 0x73c164);
    }
}
