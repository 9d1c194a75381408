//! Bridges: every bridge that connected, and the tail of its own log.
//!
//! Owns the `bridges` table (what a bridge said in its last `power_on`,
//! where it connected from, when it was first and last seen) and the
//! `bridge_log` table (its `BridgeLog` records, the newest
//! [`BRIDGE_LOG_KEEP`] per bridge).

use rusqlite::Row;

use super::{Store, StoreError};
use crate::protocol::BridgeAddress;
use crate::protocol::events::{LogRecord, PowerOnInfo};

/// How many log rows are kept per bridge; older ones are deleted.
pub const BRIDGE_LOG_KEEP: usize = 500;

/// A bridge, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRow {
    /// Its address.
    pub address: BridgeAddress,
    /// From the last `power_on`; `None` when the bridge didn't say (or never
    /// sent one).
    pub model: Option<String>,
    /// From the last `power_on`.
    pub firmware_version: Option<String>,
    /// From the last `power_on`.
    pub ncp_version: Option<String>,
    /// From the last `power_on`: its address on its own network.
    pub local_ip_address: Option<String>,
    /// From the last `power_on`.
    pub mac_address: Option<String>,
    /// From the last `power_on`, as the bridge wrote it.
    pub uptime: Option<String>,
    /// Where its websocket came from, last time it was known.
    pub remote_ip: Option<String>,
    /// Unix seconds.
    pub first_seen: i64,
    /// Unix seconds of the last `power_on`; `None` if it never sent one.
    pub last_power_on: Option<i64>,
    /// Unix seconds.
    pub last_seen: i64,
}

/// One stored record of a bridge's log.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeLogRow {
    /// The row id; higher is newer.
    pub id: i64,
    /// The bridge that sent it.
    pub bridge: BridgeAddress,
    /// The bridge's own timestamp (float unix seconds).
    pub created: Option<f64>,
    /// `levelname`, e.g. `INFO`.
    pub level: Option<String>,
    /// `levelno`, e.g. 20.
    pub levelno: Option<i64>,
    /// The logger's `name`.
    pub logger: Option<String>,
    /// The message.
    pub message: Option<String>,
    /// Unix seconds, when the server received it.
    pub received_at: i64,
}

fn bridge_from_row(row: &Row<'_>) -> rusqlite::Result<BridgeRow> {
    Ok(BridgeRow {
        address: row.get(0)?,
        model: row.get(1)?,
        firmware_version: row.get(2)?,
        ncp_version: row.get(3)?,
        local_ip_address: row.get(4)?,
        mac_address: row.get(5)?,
        uptime: row.get(6)?,
        remote_ip: row.get(7)?,
        first_seen: row.get(8)?,
        last_power_on: row.get(9)?,
        last_seen: row.get(10)?,
    })
}

impl Store {
    /// Records a `power_on`: creates the bridge or replaces what it said
    /// before (a field it no longer sends becomes `None`), and sets
    /// `last_power_on` and `last_seen` to `now`. `remote_ip` `None` keeps
    /// the one known.
    pub fn record_power_on(
        &self,
        bridge: BridgeAddress,
        info: &PowerOnInfo,
        remote_ip: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO bridges (address, model, firmware_version, ncp_version,
                 local_ip_address, mac_address, uptime, remote_ip,
                 first_seen, last_power_on, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9)
             ON CONFLICT (address) DO UPDATE SET
                 model = excluded.model,
                 firmware_version = excluded.firmware_version,
                 ncp_version = excluded.ncp_version,
                 local_ip_address = excluded.local_ip_address,
                 mac_address = excluded.mac_address,
                 uptime = excluded.uptime,
                 remote_ip = coalesce(excluded.remote_ip, bridges.remote_ip),
                 last_power_on = excluded.last_power_on,
                 last_seen = excluded.last_seen",
        )?
        .execute(rusqlite::params![
            bridge,
            info.model,
            info.firmware_version,
            info.ncp_version,
            info.local_ip_address,
            info.mac_address,
            info.uptime,
            remote_ip,
            now,
        ])?;
        self.wrote();
        Ok(())
    }

    /// Records that a bridge was seen at `now` (creating its row if it never
    /// sent `power_on`). `remote_ip` `None` keeps the one known. One write:
    /// call it when a connection opens or closes, not for every message.
    pub fn record_bridge_seen(
        &self,
        bridge: BridgeAddress,
        remote_ip: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO bridges (address, remote_ip, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (address) DO UPDATE SET
                 remote_ip = coalesce(excluded.remote_ip, bridges.remote_ip),
                 last_seen = excluded.last_seen",
        )?
        .execute(rusqlite::params![bridge, remote_ip, now])?;
        self.wrote();
        Ok(())
    }

    /// Every bridge, by address.
    pub fn list_bridges(&self) -> Result<Vec<BridgeRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT address, model, firmware_version, ncp_version, local_ip_address,
                    mac_address, uptime, remote_ip, first_seen, last_power_on, last_seen
             FROM bridges ORDER BY address",
        )?;
        let rows = stmt
            .query_map([], bridge_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Appends a bridge's log records, in order, and deletes all but the
    /// newest [`BRIDGE_LOG_KEEP`] rows of that bridge: one transaction, one
    /// write. Nothing is written for an empty list.
    pub fn append_bridge_log(
        &self,
        bridge: BridgeAddress,
        records: &[LogRecord],
        now: i64,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // Records that would be trimmed at once are not inserted at all.
        let records = &records[records.len().saturating_sub(BRIDGE_LOG_KEEP)..];
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO bridge_log
                     (bridge_address, created, level, levelno, logger, message, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in records {
                insert.execute(rusqlite::params![
                    bridge,
                    r.created,
                    r.levelname,
                    r.levelno,
                    r.name,
                    r.message,
                    now,
                ])?;
            }
            tx.prepare_cached(
                "DELETE FROM bridge_log WHERE bridge_address = ?1 AND id <
                     (SELECT id FROM bridge_log WHERE bridge_address = ?1
                      ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(rusqlite::params![bridge, BRIDGE_LOG_KEEP as i64 - 1])?;
        }
        tx.commit()?;
        self.wrote();
        Ok(())
    }

    /// The newest `limit` log rows of a bridge, newest first.
    pub fn bridge_log(
        &self,
        bridge: BridgeAddress,
        limit: usize,
    ) -> Result<Vec<BridgeLogRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id, bridge_address, created, level, levelno, logger, message, received_at
             FROM bridge_log WHERE bridge_address = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(rusqlite::params![bridge, limit], |row| {
                Ok(BridgeLogRow {
                    id: row.get(0)?,
                    bridge: row.get(1)?,
                    created: row.get(2)?,
                    level: row.get(3)?,
                    levelno: row.get(4)?,
                    logger: row.get(5)?,
                    message: row.get(6)?,
                    received_at: row.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(n: u8) -> BridgeAddress {
        BridgeAddress::from_bytes([0, 0x0d, 0x6f, 0, 1, 0xb3, 0x71, n])
    }

    fn info(model: &str) -> PowerOnInfo {
        PowerOnInfo {
            model: Some(model.into()),
            firmware_version: Some("2.3.1-f3c7946".into()),
            ncp_version: Some("0x46C5".into()),
            local_ip_address: Some("192.168.1.20".into()),
            mac_address: Some("00:11:22:33:44:55".into()),
            uptime: Some("89.52 68.99".into()),
        }
    }

    fn record(message: String) -> LogRecord {
        LogRecord {
            name: Some("bridge".into()),
            created: Some(1.5),
            levelname: Some("INFO".into()),
            levelno: Some(20),
            message: Some(message),
        }
    }

    #[test]
    fn power_on_creates_then_updates() {
        let store = Store::open_in_memory().unwrap();
        store
            .record_power_on(bridge(1), &info("A"), Some("10.0.0.1"), 100)
            .unwrap();
        let rows = store.list_bridges().unwrap();
        assert_eq!(rows.len(), 1);
        let b = &rows[0];
        assert_eq!(b.address, bridge(1));
        assert_eq!(b.model.as_deref(), Some("A"));
        assert_eq!(b.uptime.as_deref(), Some("89.52 68.99"));
        assert_eq!(b.remote_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            (b.first_seen, b.last_power_on, b.last_seen),
            (100, Some(100), 100)
        );

        let third_party = PowerOnInfo {
            model: Some("B".into()),
            ..PowerOnInfo::default()
        };
        store
            .record_power_on(bridge(1), &third_party, None, 200)
            .unwrap();
        let b = &store.list_bridges().unwrap()[0];
        assert_eq!(b.model.as_deref(), Some("B"));
        assert_eq!(b.firmware_version, None);
        assert_eq!(b.remote_ip.as_deref(), Some("10.0.0.1"), "kept");
        assert_eq!(
            (b.first_seen, b.last_power_on, b.last_seen),
            (100, Some(200), 200)
        );
        assert_eq!(store.writes(), 2);
    }

    #[test]
    fn seen_creates_a_bridge_that_never_powered_on_and_keeps_power_on_data() {
        let store = Store::open_in_memory().unwrap();
        store.record_bridge_seen(bridge(2), None, 50).unwrap();
        let b = &store.list_bridges().unwrap()[0];
        assert_eq!((b.first_seen, b.last_power_on, b.last_seen), (50, None, 50));
        assert_eq!(b.model, None);

        store
            .record_power_on(bridge(2), &info("A"), None, 60)
            .unwrap();
        store
            .record_bridge_seen(bridge(2), Some("10.0.0.9"), 70)
            .unwrap();
        let b = &store.list_bridges().unwrap()[0];
        assert_eq!(
            (b.first_seen, b.last_power_on, b.last_seen),
            (50, Some(60), 70)
        );
        assert_eq!(b.model.as_deref(), Some("A"));
        assert_eq!(b.remote_ip.as_deref(), Some("10.0.0.9"));
    }

    #[test]
    fn log_is_newest_first_and_per_bridge() {
        let store = Store::open_in_memory().unwrap();
        let records: Vec<_> = (0..3).map(|i| record(format!("m{i}"))).collect();
        store.append_bridge_log(bridge(1), &records, 10).unwrap();
        store
            .append_bridge_log(bridge(2), &[LogRecord::default()], 11)
            .unwrap();
        store.append_bridge_log(bridge(1), &[], 12).unwrap();
        assert_eq!(store.writes(), 2, "one per batch, none for an empty one");

        let log = store.bridge_log(bridge(1), 2).unwrap();
        let messages: Vec<_> = log.iter().map(|r| r.message.clone().unwrap()).collect();
        assert_eq!(messages, ["m2", "m1"]);
        assert_eq!(log[0].level.as_deref(), Some("INFO"));
        assert_eq!(log[0].levelno, Some(20));
        assert_eq!(log[0].logger.as_deref(), Some("bridge"));
        assert_eq!(log[0].created, Some(1.5));
        assert_eq!(log[0].received_at, 10);
        assert_eq!(log[0].bridge, bridge(1));

        let other = store.bridge_log(bridge(2), 10).unwrap();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].message, None);
    }

    #[test]
    fn log_keeps_the_newest_500_per_bridge() {
        let store = Store::open_in_memory().unwrap();
        let mut n = 0;
        // Batches of 120 so the limit is crossed in the middle of one.
        for _ in 0..5 {
            let batch: Vec<_> = (0..120)
                .map(|_| {
                    n += 1;
                    record(format!("m{n}"))
                })
                .collect();
            store.append_bridge_log(bridge(1), &batch, 0).unwrap();
        }
        store
            .append_bridge_log(bridge(2), &[record("other".into())], 0)
            .unwrap();
        let log = store.bridge_log(bridge(1), 10_000).unwrap();
        assert_eq!(log.len(), 500);
        assert_eq!(log[0].message.as_deref(), Some("m600"));
        assert_eq!(log[499].message.as_deref(), Some("m101"));
        assert_eq!(store.bridge_log(bridge(2), 10).unwrap().len(), 1);

        // One batch bigger than the limit keeps its own newest 500.
        let big: Vec<_> = (0..700).map(|i| record(format!("b{i}"))).collect();
        store.append_bridge_log(bridge(1), &big, 0).unwrap();
        let log = store.bridge_log(bridge(1), 10_000).unwrap();
        assert_eq!(log.len(), 500);
        assert_eq!(log[0].message.as_deref(), Some("b699"));
        assert_eq!(log[499].message.as_deref(), Some("b200"));
    }
}
