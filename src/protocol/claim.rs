//! Claim codes and link keys (PROTOCOL §7).
//!
//! A printer prints a claim code after a reset, like `n5ry-p6x6-kth7-7hc4`:
//! 16 base-32 digits carrying an 80-bit number made of the printer's 24-bit
//! hardware xor, a 40-bit secret and a 16-bit CRC. The secret, hashed with
//! AES-MMO, is the Zigbee link key the server hands the bridge when the
//! printer asks for it.

use std::fmt;
use std::str::FromStr;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

pub use super::address::HardwareXor;

/// The digits of a claim code, value 0 to 31. No a, i, l or u.
const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnopqrstvwxyz";

/// Why a text is not a valid claim code. The messages are written for the
/// person who typed the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimCodeError {
    #[error(
        "a claim code has 16 letters and digits (dashes and spaces don't count); this one has {seen}"
    )]
    Length { seen: usize },
    #[error(
        "{character:?} at position {position} can't be part of a claim code (they use the digits 0-9 and the letters b-z except l, i and u)"
    )]
    InvalidCharacter { character: char, position: usize },
    #[error(
        "the claim code's check digits don't match: probably a typo, compare it with the printed code"
    )]
    Checksum,
}

/// The 40-bit secret inside a claim code. Written as 10 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimSecret(u64);

impl ClaimSecret {
    pub const MAX: u64 = (1 << 40) - 1;

    /// `None` when the value does not fit in 40 bits.
    pub fn new(value: u64) -> Option<Self> {
        (value <= Self::MAX).then_some(ClaimSecret(value))
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// Parses 1 to 10 hex digits (an optional `0x` in front is allowed).
    pub fn parse_hex(text: &str) -> Option<Self> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        u64::from_str_radix(digits, 16).ok().and_then(Self::new)
    }

    /// The Zigbee link key derived from this secret.
    pub fn link_key(self) -> LinkKey {
        link_key(self)
    }
}

impl fmt::Display for ClaimSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010x}", self.0)
    }
}

impl fmt::Debug for ClaimSecret {
    // Secrets stay out of debug output and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimSecret(…)")
    }
}

/// A parsed, checked claim code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimCode {
    hardware_xor: HardwareXor,
    secret: ClaimSecret,
}

impl ClaimCode {
    /// Builds the code for a printer's hardware xor and a secret.
    pub fn new(hardware_xor: HardwareXor, secret: ClaimSecret) -> Self {
        ClaimCode {
            hardware_xor,
            secret,
        }
    }

    /// Parses a code as a person types it: case does not matter, dashes and
    /// white space anywhere are ignored, `i` and `l` read as `1`, `u` as `v`.
    pub fn parse(input: &str) -> Result<Self, ClaimCodeError> {
        let mut value: u128 = 0;
        let mut digits = 0usize;
        for (index, c) in input.chars().enumerate() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let digit = digit_value(c).ok_or(ClaimCodeError::InvalidCharacter {
                character: c,
                position: index + 1,
            })?;
            digits += 1;
            if digits <= 16 {
                value = (value << 5) | u128::from(digit);
            }
        }
        if digits != 16 {
            return Err(ClaimCodeError::Length { seen: digits });
        }
        let low = value as u64; // V mod 2^64
        let crc = (value >> 64) as u16;
        if crc16_ccitt_false(&low.to_le_bytes()) != crc {
            return Err(ClaimCodeError::Checksum);
        }
        Ok(ClaimCode {
            hardware_xor: HardwareXor::new((low & 0xff_ffff) as u32).expect("24 bits"),
            secret: ClaimSecret::new(low >> 24).expect("40 bits"),
        })
    }

    pub fn hardware_xor(&self) -> HardwareXor {
        self.hardware_xor
    }

    pub fn secret(&self) -> ClaimSecret {
        self.secret
    }

    pub fn link_key(&self) -> LinkKey {
        self.secret.link_key()
    }
}

fn digit_value(c: char) -> Option<u8> {
    let c = match c.to_ascii_lowercase() {
        'i' | 'l' => '1',
        'u' => 'v',
        other => other,
    };
    if !c.is_ascii() {
        return None;
    }
    ALPHABET.iter().position(|&a| a == c as u8).map(|p| p as u8)
}

impl fmt::Display for ClaimCode {
    /// Lowercase, with a dash after every 4 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let low = (self.secret.value() << 24) | u64::from(self.hardware_xor.value());
        let crc = crc16_ccitt_false(&low.to_le_bytes());
        let value = (u128::from(crc) << 64) | u128::from(low);
        let mut out = String::with_capacity(19);
        for i in 0..16 {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            let digit = (value >> (5 * (15 - i))) & 31;
            out.push(ALPHABET[digit as usize] as char);
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for ClaimCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimCode(xor {}, …)", self.hardware_xor)
    }
}

impl FromStr for ClaimCode {
    type Err = ClaimCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no
/// final xor.
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A 128-bit Zigbee link key. Shown (and sent to bridges) as base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LinkKey([u8; 16]);

impl LinkKey {
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(…)")
    }
}

/// The salt block hashed before the secret.
const LINK_KEY_SALT: [u8; 16] = [
    0x38, 0x96, 0x10, 0xd9, 0xb6, 0xb1, 0x0d, 0x16, 0x9e, 0xe9, 0xbf, 0x87, 0x95, 0x32, 0x62, 0x5b,
];

/// The Zigbee AES-MMO hash of the salt followed by the secret's 5
/// little-endian bytes, MD-strengthened (0x80, zeros, bit length 168 as a
/// big-endian u16 in the last two bytes).
fn link_key(secret: ClaimSecret) -> LinkKey {
    let mut second = [0u8; 16];
    second[..5].copy_from_slice(&secret.value().to_le_bytes()[..5]);
    second[5] = 0x80;
    second[14..].copy_from_slice(&168u16.to_be_bytes());

    let mut h = [0u8; 16];
    for block in [LINK_KEY_SALT, second] {
        let cipher = Aes128::new(GenericArray::from_slice(&h));
        let mut out = GenericArray::clone_from_slice(&block);
        cipher.encrypt_block(&mut out);
        for (hi, (o, m)) in h.iter_mut().zip(out.iter().zip(block.iter())) {
            *hi = o ^ m;
        }
    }
    LinkKey(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_real_printer_code() {
        let code = ClaimCode::parse("n5ry-p6x6-kth7-7hc4").unwrap();
        assert_eq!(code.hardware_xor().value(), 7586148);
        assert_eq!(code.secret().to_string(), "eb1ba696a0");
        assert_eq!(code.link_key().to_base64(), "3WIhM48TFaHGsQPZPpTF+Q==");
        assert_eq!(code.to_string(), "n5ry-p6x6-kth7-7hc4");
    }

    #[test]
    fn input_rules_case_dashes_spaces_and_lookalikes() {
        let want = ClaimCode::parse("n5ry-p6x6-kth7-7hc4").unwrap();
        for input in [
            "N5RY-P6X6-KTH7-7HC4",
            "n5ryp6x6kth77hc4",
            " n5 ry-p6x6 -kth7-7hc4\t",
            "n-5-r-y-p-6-x-6-k-t-h-7-7-h-c-4",
        ] {
            assert_eq!(ClaimCode::parse(input), Ok(want), "{input}");
        }
        // i and l read as 1, u as v.
        let one = ClaimCode::parse("vky0-0000-000h-0001").unwrap();
        assert_eq!(ClaimCode::parse("vky0-0000-000h-000i"), Ok(one));
        assert_eq!(ClaimCode::parse("vky0-0000-000h-000L"), Ok(one));
        assert_eq!(ClaimCode::parse("uky0-0000-000h-0001"), Ok(one));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            ClaimCode::parse("n5ry-p6x6-kth7-7hc"),
            Err(ClaimCodeError::Length { seen: 15 })
        );
        assert_eq!(
            ClaimCode::parse("n5ry-p6x6-kth7-7hc44"),
            Err(ClaimCodeError::Length { seen: 17 })
        );
        assert_eq!(
            ClaimCode::parse("n5ra-p6x6-kth7-7hc4"),
            Err(ClaimCodeError::InvalidCharacter {
                character: 'a',
                position: 4
            })
        );
        assert_eq!(
            ClaimCode::parse("n5ry-p6x6-kth7-7hc5"),
            Err(ClaimCodeError::Checksum)
        );
        let message = ClaimCode::parse("n5ry-p6x6-kth7-7hc5")
            .unwrap_err()
            .to_string();
        assert!(message.contains("probably a typo"), "{message}");
    }

    #[test]
    fn encodes_what_it_decodes() {
        let xor = HardwareXor::new(74565).unwrap();
        let secret = ClaimSecret::parse_hex("6789abcdef").unwrap();
        let code = ClaimCode::new(xor, secret);
        assert_eq!(code.to_string(), "c1zp-g2ec-sqqh-28t5");
    }

    #[test]
    fn link_key_vector() {
        let code = ClaimCode::parse("6xwh-441j-8115-zyrh").unwrap();
        assert_eq!(code.link_key().to_base64(), "F7D9bmztHV32+WJScGZR0g==");
    }

    #[test]
    fn crc_check_value() {
        // The standard check value of CRC-16/CCITT-FALSE.
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29b1);
    }
}
