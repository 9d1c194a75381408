//! Commands: what was sent to bridges, their answers, and the command id
//! high-water mark.
//!
//! Owns the `commands` table and the `command_id_high_water` key of `meta`.
//! Command ids are u32s, never 0, unique across restarts (PROTOCOL §6): the
//! server starts numbering after [`Store::command_id_high_water`] and may
//! reserve ids ahead ([`Store::reserve_command_ids`]) so it need not write
//! for every id it hands out.

use rusqlite::OptionalExtension;

use super::{Store, StoreError};
use crate::protocol::{BridgeAddress, DeviceAddress};

/// The `meta` key of the command id high-water mark.
const HIGH_WATER_KEY: &str = "command_id_high_water";

/// A command sent to a bridge, and its answer if one came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// The command id (also the print id a printer reports in did_print).
    pub id: u32,
    /// The target printer; `None` for a BridgeCommand.
    pub device: Option<DeviceAddress>,
    /// The bridge it was sent through.
    pub bridge: BridgeAddress,
    /// What was sent, e.g. `add_device_encryption_key`.
    pub kind: String,
    /// Unix seconds.
    pub sent_at: i64,
    /// Unix seconds; `None` until answered.
    pub answered_at: Option<i64>,
    /// The bridge's return code; `None` until answered.
    pub return_code: Option<u32>,
}

impl Store {
    /// The largest command id known to be used or reserved: the larger of
    /// the reserved high-water mark and the largest recorded command id; 0
    /// when there is neither. Start numbering after it.
    pub fn command_id_high_water(&self) -> Result<u32, StoreError> {
        let conn = self.reader();
        let (reserved, recorded): (Option<String>, Option<i64>) = conn
            .prepare_cached(
                "SELECT (SELECT value FROM meta WHERE key = ?1), (SELECT max(id) FROM commands)",
            )?
            .query_row([HIGH_WATER_KEY], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let reserved = match reserved {
            None => 0,
            Some(text) => text.parse::<u32>().map_err(|_| {
                StoreError::Corrupt(format!("{HIGH_WATER_KEY} is {text:?}, not a u32"))
            })?,
        };
        let recorded = match recorded {
            None => 0,
            Some(n) => u32::try_from(n)
                .map_err(|_| StoreError::Corrupt(format!("command id {n} is not a u32")))?,
        };
        Ok(reserved.max(recorded))
    }

    /// Stores `up_to` as the command id high-water mark: ids up to it count
    /// as used after a restart, whether or not they were recorded.
    pub fn reserve_command_ids(&self, up_to: u32) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(rusqlite::params![HIGH_WATER_KEY, up_to.to_string()])?;
        self.wrote();
        Ok(())
    }

    /// Records a command as sent. A row with the same id (ids wrap after 4
    /// billion) is replaced, its answer forgotten.
    pub fn record_command(
        &self,
        id: u32,
        bridge: BridgeAddress,
        device: Option<DeviceAddress>,
        kind: &str,
        sent_at: i64,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT OR REPLACE INTO commands
                 (id, device_address, bridge_address, kind, sent_at, answered_at, return_code)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)",
        )?
        .execute(rusqlite::params![id, device, bridge, kind, sent_at])?;
        self.wrote();
        Ok(())
    }

    /// Records the answer to command `id`. `false` when no such command was
    /// recorded (the answer is then dropped).
    pub fn record_command_answer(
        &self,
        id: u32,
        return_code: u32,
        answered_at: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let changed = conn
            .prepare_cached("UPDATE commands SET return_code = ?2, answered_at = ?3 WHERE id = ?1")?
            .execute(rusqlite::params![id, return_code, answered_at])?;
        if changed > 0 {
            self.wrote();
        }
        Ok(changed > 0)
    }

    /// The command with this id.
    pub fn command(&self, id: u32) -> Result<Option<CommandRow>, StoreError> {
        let conn = self.reader();
        let row = conn
            .prepare_cached(
                "SELECT id, device_address, bridge_address, kind, sent_at, answered_at, return_code
                 FROM commands WHERE id = ?1",
            )?
            .query_row([id], |row| {
                Ok(CommandRow {
                    id: row.get(0)?,
                    device: row.get(1)?,
                    bridge: row.get(2)?,
                    kind: row.get(3)?,
                    sent_at: row.get(4)?,
                    answered_at: row.get(5)?,
                    return_code: row.get(6)?,
                })
            })
            .optional()?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> BridgeAddress {
        BridgeAddress::parse("000d6f0001b3719d").unwrap()
    }

    fn device() -> DeviceAddress {
        DeviceAddress::parse("000d6f000273ce0b").unwrap()
    }

    #[test]
    fn high_water_is_the_larger_of_reserved_and_recorded() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.command_id_high_water().unwrap(), 0);
        store.reserve_command_ids(100).unwrap();
        assert_eq!(store.command_id_high_water().unwrap(), 100);
        store.record_command(150, bridge(), None, "x", 0).unwrap();
        assert_eq!(store.command_id_high_water().unwrap(), 150);
        store.reserve_command_ids(1000).unwrap();
        assert_eq!(store.command_id_high_water().unwrap(), 1000);
        store.reserve_command_ids(u32::MAX).unwrap();
        assert_eq!(store.command_id_high_water().unwrap(), u32::MAX);
    }

    #[test]
    fn commands_and_answers() {
        let store = Store::open_in_memory().unwrap();
        store
            .record_command(7, bridge(), Some(device()), "set_delivery_and_print", 10)
            .unwrap();
        let sent = store.command(7).unwrap().unwrap();
        assert_eq!(
            sent,
            CommandRow {
                id: 7,
                device: Some(device()),
                bridge: bridge(),
                kind: "set_delivery_and_print".into(),
                sent_at: 10,
                answered_at: None,
                return_code: None,
            }
        );
        assert!(store.record_command_answer(7, 0x80, 12).unwrap());
        let answered = store.command(7).unwrap().unwrap();
        assert_eq!(
            (answered.answered_at, answered.return_code),
            (Some(12), Some(0x80))
        );
        let writes = store.writes();
        assert!(!store.record_command_answer(8, 0, 12).unwrap());
        assert_eq!(store.writes(), writes, "no such command: nothing written");
        assert_eq!(store.command(8).unwrap(), None);

        // A wrapped id replaces the old row.
        store
            .record_command(7, bridge(), None, "add_device_encryption_key", 20)
            .unwrap();
        let replaced = store.command(7).unwrap().unwrap();
        assert_eq!(replaced.device, None);
        assert_eq!(replaced.kind, "add_device_encryption_key");
        assert_eq!((replaced.answered_at, replaced.return_code), (None, None));

        // The largest u32 round-trips.
        store
            .record_command(u32::MAX, bridge(), None, "x", 0)
            .unwrap();
        assert!(store.record_command_answer(u32::MAX, u32::MAX, 1).unwrap());
        let max = store.command(u32::MAX).unwrap().unwrap();
        assert_eq!((max.id, max.return_code), (u32::MAX, Some(u32::MAX)));
    }
}
