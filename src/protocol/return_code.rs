//! Return codes of BridgeCommandResponse and DeviceCommandResponse
//! (PROTOCOL §6).

use std::fmt;

/// The answer a bridge gives to a command. Read leniently as any unsigned
/// number; codes outside the known list are named "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReturnCode(u32);

impl ReturnCode {
    pub const SUCCESS: ReturnCode = ReturnCode(0);

    pub fn new(value: u32) -> Self {
        ReturnCode(value)
    }

    pub fn value(self) -> u32 {
        self.0
    }

    pub fn is_success(self) -> bool {
        self.0 == 0
    }

    /// A stable snake_case name, e.g. `filesystem_invalid_id`.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "success",
            0x01 => "eui64_not_found",
            0x02 => "failed_network",
            0x20 => "invalid_sequence",
            0x30 => "busy",
            0x80 => "invalid_size",
            0x81 => "invalid_device_type",
            0x82 => "filesystem_error",
            0x90 => "filesystem_invalid_id",
            0x91 => "no_free_file_handles",
            0x92 => "filesystem_write_error",
            0xff => "bridge_error",
            _ => "unknown",
        }
    }

    /// What it means, for a person reading a delivery's history.
    pub fn description(self) -> &'static str {
        match self.0 {
            0x00 => "delivered",
            0x01 => "the bridge does not know this printer (eui64 not found)",
            0x02 => "the bridge could not reach the printer over Zigbee (failed network)",
            0x20 => "the printer got the transfer out of order (invalid sequence)",
            0x30 => "the printer was busy",
            0x80 => "the printer refused the payload's size (invalid size)",
            0x81 => "the payload is not for this kind of device (invalid device type)",
            0x82 => "the printer's file system failed (filesystem error)",
            0x90 => "the printer refused the file id (filesystem invalid id)",
            0x91 => "the printer has no free file handles",
            0x92 => "the printer could not write the file (filesystem write error)",
            0xff => "the bridge reported an internal error",
            _ => "unknown return code",
        }
    }
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x} {}", self.0, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(ReturnCode::new(144).name(), "filesystem_invalid_id");
        assert_eq!(ReturnCode::new(128).name(), "invalid_size");
        assert_eq!(ReturnCode::new(0x42).name(), "unknown");
        assert_eq!(
            ReturnCode::new(0x90).to_string(),
            "0x90 filesystem_invalid_id"
        );
    }
}
