//! The printer identity file (`<address>.printer`): who an emulated printer
//! is. It holds the device address and the 40-bit secret the printer would
//! print inside its claim code, plus (for people and for checking) the
//! hardware xor, the claim code itself and, when the server knows the
//! printer, its database id. `sirius fake printer` writes these files and
//! `sirius emulate printer` reads them.

use std::fmt::{self, Write as _};

use rand::TryRngCore as _;
use rand::rngs::OsRng;

use crate::protocol::{
    AddressError, ClaimCode, ClaimCodeError, ClaimSecret, DeviceAddress, HardwareXor,
};

/// The width labels are right-aligned to, so the colons line up.
const LABEL_WIDTH: usize = 12;

/// An emulated printer: its address, its secret and, if the server has
/// it, its database id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterIdentity {
    pub address: DeviceAddress,
    pub secret: ClaimSecret,
    pub db_id: Option<i64>,
}

/// Why a printer identity file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("line {line}: expected `label: value`, got {text:?}")]
    NotLabelled { line: usize, text: String },
    #[error("line {line}: {label} is given twice")]
    Duplicate { line: usize, label: &'static str },
    #[error("the file has no `{0}:` line; a printer file needs at least `address:` and `secret:`")]
    Missing(&'static str),
    #[error("line {line}: the address is not valid: {source}")]
    Address { line: usize, source: AddressError },
    #[error("line {line}: the secret must be 1 to 10 hex digits (40 bits), got {text:?}")]
    Secret { line: usize, text: String },
    #[error("line {line}: the DB id must be a whole number, got {text:?}")]
    DbId { line: usize, text: String },
    #[error("line {line}: the xor must be a number below 16777216 (24 bits), got {text:?}")]
    Xor { line: usize, text: String },
    #[error("line {line}: the claim code is not valid: {source}")]
    ClaimCode { line: usize, source: ClaimCodeError },
    #[error(
        "line {line}: the xor says {written}, but address {address} has hardware xor {actual}; fix the address or the xor line"
    )]
    XorMismatch {
        line: usize,
        written: u32,
        address: DeviceAddress,
        actual: HardwareXor,
    },
    #[error(
        "line {line}: the claim code {written} does not belong to this address and secret (they make {expected}); fix the file or delete the claim code line"
    )]
    ClaimCodeMismatch {
        line: usize,
        written: String,
        expected: String,
    },
}

impl PrinterIdentity {
    /// The hardware xor of the address: what ties it to a claim code.
    pub fn hardware_xor(&self) -> HardwareXor {
        self.address.hardware_xor()
    }

    /// The claim code this printer would print after a reset.
    pub fn claim_code(&self) -> ClaimCode {
        ClaimCode::new(self.hardware_xor(), self.secret)
    }

    /// The usual file name for this identity, `<address>.printer`.
    pub fn file_name(&self) -> String {
        format!("{}.printer", self.address)
    }

    /// A new printer: an address in the Ember range (`000d6f…`, as real
    /// printers have) and a secret, both from the operating system's random
    /// generator.
    ///
    /// # Panics
    /// When the operating system cannot provide random bytes, which leaves
    /// nothing safe to do.
    pub fn random() -> PrinterIdentity {
        let mut bytes = [0u8; 13];
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random generator failed");
        let mut address = [0x00, 0x0d, 0x6f, 0, 0, 0, 0, 0];
        address[3..].copy_from_slice(&bytes[..5]);
        let mut secret = [0u8; 8];
        secret[..5].copy_from_slice(&bytes[5..10]);
        PrinterIdentity {
            address: DeviceAddress::from_bytes(address),
            secret: ClaimSecret::new(u64::from_le_bytes(secret)).expect("40 bits"),
            db_id: None,
        }
    }

    /// The file's text: one `label: value` line each for the address, the
    /// DB id (when known), the secret, the xor and the claim code, labels
    /// right-aligned so the colons line up.
    pub fn format(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: &dyn fmt::Display| {
            let _ = writeln!(out, "{label:>LABEL_WIDTH$}: {value}");
        };
        line("address", &self.address);
        if let Some(id) = self.db_id {
            line("DB id", &id);
        }
        line("secret", &self.secret);
        line("xor", &self.hardware_xor());
        line("claim code", &self.claim_code());
        out
    }

    /// Reads a file written by [`PrinterIdentity::format`]. Spacing, case
    /// of labels, blank lines and `#` comments don't matter; `address` and
    /// `secret` are required; `xor` and `claim code`, when present, must
    /// agree with them. Unknown labels are ignored.
    pub fn parse(text: &str) -> Result<PrinterIdentity, IdentityError> {
        let mut address: Option<(usize, DeviceAddress)> = None;
        let mut secret: Option<ClaimSecret> = None;
        let mut db_id: Option<i64> = None;
        let mut xor: Option<(usize, u32)> = None;
        let mut code: Option<(usize, ClaimCode, String)> = None;

        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((label, value)) = trimmed.split_once(':') else {
                return Err(IdentityError::NotLabelled {
                    line,
                    text: trimmed.to_string(),
                });
            };
            let label = label.split_whitespace().collect::<Vec<_>>().join(" ");
            let value = value.trim();
            let duplicate = |label| Err(IdentityError::Duplicate { line, label });
            match label.to_ascii_lowercase().as_str() {
                "address" => {
                    if address.is_some() {
                        return duplicate("address");
                    }
                    let a = DeviceAddress::parse(value)
                        .map_err(|source| IdentityError::Address { line, source })?;
                    address = Some((line, a));
                }
                "secret" => {
                    if secret.is_some() {
                        return duplicate("secret");
                    }
                    secret = Some(ClaimSecret::parse_hex(value).ok_or_else(|| {
                        IdentityError::Secret {
                            line,
                            text: value.to_string(),
                        }
                    })?);
                }
                "db id" => {
                    if db_id.is_some() {
                        return duplicate("DB id");
                    }
                    db_id = Some(value.parse().map_err(|_| IdentityError::DbId {
                        line,
                        text: value.to_string(),
                    })?);
                }
                "xor" => {
                    if xor.is_some() {
                        return duplicate("xor");
                    }
                    let v = value
                        .parse::<u32>()
                        .ok()
                        .filter(|&v| v <= HardwareXor::MAX)
                        .ok_or_else(|| IdentityError::Xor {
                            line,
                            text: value.to_string(),
                        })?;
                    xor = Some((line, v));
                }
                "claim code" => {
                    if code.is_some() {
                        return duplicate("claim code");
                    }
                    let c = ClaimCode::parse(value)
                        .map_err(|source| IdentityError::ClaimCode { line, source })?;
                    code = Some((line, c, value.to_string()));
                }
                _ => {}
            }
        }

        let (_, address) = address.ok_or(IdentityError::Missing("address"))?;
        let secret = secret.ok_or(IdentityError::Missing("secret"))?;
        let identity = PrinterIdentity {
            address,
            secret,
            db_id,
        };
        if let Some((line, written)) = xor
            && written != identity.hardware_xor().value()
        {
            return Err(IdentityError::XorMismatch {
                line,
                written,
                address,
                actual: identity.hardware_xor(),
            });
        }
        if let Some((line, parsed, written)) = code
            && parsed != identity.claim_code()
        {
            return Err(IdentityError::ClaimCodeMismatch {
                line,
                written,
                expected: identity.claim_code().to_string(),
            });
        }
        Ok(identity)
    }
}

impl std::str::FromStr for PrinterIdentity {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "     address: 602d48d344b746f5
       DB id: 8
      secret: 66a596840f
         xor: 274365
  claim code: e3xp-e9dp-hh7h-8cxx
";

    fn example() -> PrinterIdentity {
        PrinterIdentity {
            address: DeviceAddress::parse("602d48d344b746f5").unwrap(),
            secret: ClaimSecret::parse_hex("66a596840f").unwrap(),
            db_id: Some(8),
        }
    }

    #[test]
    fn formats_exactly_like_the_example() {
        assert_eq!(example().format(), EXAMPLE);
        assert_eq!(example().claim_code().to_string(), "e3xp-e9dp-hh7h-8cxx");
        assert_eq!(example().hardware_xor().value(), 274365);
    }

    #[test]
    fn leaves_out_an_unknown_db_id() {
        let mut id = example();
        id.db_id = None;
        let text = id.format();
        assert!(!text.contains("DB id"), "{text}");
        assert_eq!(text.lines().count(), 4);
        assert_eq!(PrinterIdentity::parse(&text), Ok(id));
    }

    #[test]
    fn parses_what_it_formats_and_is_lenient_about_spacing() {
        assert_eq!(PrinterIdentity::parse(EXAMPLE), Ok(example()));
        let loose = "# my test printer\n\naddress:602D48D344B746F5\r\n  db   ID :  8\nSecret:   0x66a596840f\nnickname: kitchen\n";
        assert_eq!(PrinterIdentity::parse(loose), Ok(example()));
    }

    #[test]
    fn requires_address_and_secret() {
        assert_eq!(
            PrinterIdentity::parse("secret: 66a596840f"),
            Err(IdentityError::Missing("address"))
        );
        assert_eq!(
            PrinterIdentity::parse("address: 602d48d344b746f5"),
            Err(IdentityError::Missing("secret"))
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let bad_secret = "address: 602d48d344b746f5\nsecret: 66a596840f00\n";
        let e = PrinterIdentity::parse(bad_secret).unwrap_err();
        assert!(matches!(e, IdentityError::Secret { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("40 bits"), "{e}");

        let e = PrinterIdentity::parse("address: 602d48d344b746f\nsecret: 1").unwrap_err();
        assert!(matches!(e, IdentityError::Address { line: 1, .. }), "{e}");

        let e = PrinterIdentity::parse("address 602d48d344b746f5").unwrap_err();
        assert!(
            matches!(e, IdentityError::NotLabelled { line: 1, .. }),
            "{e}"
        );

        let twice = "address: 602d48d344b746f5\naddress: 602d48d344b746f5\nsecret: 1";
        let e = PrinterIdentity::parse(twice).unwrap_err();
        assert_eq!(
            e,
            IdentityError::Duplicate {
                line: 2,
                label: "address"
            }
        );
    }

    #[test]
    fn checks_that_xor_and_claim_code_agree() {
        let wrong_xor = EXAMPLE.replace("274365", "274366");
        let e = PrinterIdentity::parse(&wrong_xor).unwrap_err();
        assert!(
            matches!(e, IdentityError::XorMismatch { line: 4, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("274365"), "{e}");

        // A valid claim code, but for another secret.
        let other = ClaimCode::new(
            example().hardware_xor(),
            ClaimSecret::parse_hex("66a5968410").unwrap(),
        );
        let wrong_code = EXAMPLE.replace("e3xp-e9dp-hh7h-8cxx", &other.to_string());
        let e = PrinterIdentity::parse(&wrong_code).unwrap_err();
        assert!(
            matches!(e, IdentityError::ClaimCodeMismatch { line: 5, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("e3xp-e9dp-hh7h-8cxx"), "{e}");

        let typo = EXAMPLE.replace("e3xp-e9dp-hh7h-8cxx", "e3xp-e9dp-hh7h-8cxy");
        let e = PrinterIdentity::parse(&typo).unwrap_err();
        assert!(matches!(e, IdentityError::ClaimCode { line: 5, .. }), "{e}");
    }

    #[test]
    fn random_identities_differ_and_round_trip() {
        let a = PrinterIdentity::random();
        let b = PrinterIdentity::random();
        assert_ne!(a.address, b.address);
        assert_ne!(a.secret, b.secret);
        assert!(a.address.to_string().starts_with("000d6f"));
        assert_eq!(PrinterIdentity::parse(&a.format()), Ok(a));
        assert_eq!(a.file_name(), format!("{}.printer", a.address));
    }
}
