//! Printers: every device address that called home, and who owns it.
//!
//! Owns the `printers` table. A printer is known once it calls home
//! ([`Store::ensure_printer`]); it is owned through the claim it is linked
//! to (see [`super::claims`] for the rules), which also gives its link key.
//! When it was last heard is kept in memory by the bridge layer and written
//! here in batches ([`Store::update_last_heard`]), never per heartbeat.

use rusqlite::{OptionalExtension, Row};

use super::{Store, StoreError};
use crate::protocol::{BridgeAddress, ClaimCode, DeviceAddress, HardwareXor, LinkKey};

/// A printer, with its owner if it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterRow {
    /// The row id.
    pub id: i64,
    /// Its device address (a new one after every reset).
    pub address: DeviceAddress,
    /// The hardware xor of the address: the same across resets.
    pub hardware_xor: HardwareXor,
    /// The claim it is linked to; `None` while unclaimed.
    pub claim_id: Option<i64>,
    /// The id of the user who owns it.
    pub owner_id: Option<i64>,
    /// The username of the user who owns it.
    pub owner: Option<String>,
    /// The name the owner gave it when claiming.
    pub name: Option<String>,
    /// Unix seconds.
    pub first_seen: i64,
    /// Unix seconds, as last written by [`Store::update_last_heard`].
    pub last_heard: Option<i64>,
    /// The bridge it was last heard through.
    pub last_bridge: Option<BridgeAddress>,
}

/// The query [`printer_from_row`] reads; add a WHERE or ORDER BY.
pub(super) const PRINTER_SELECT: &str = "SELECT p.id, p.address, p.hardware_xor, p.claim_id,
        c.user_id, u.username, c.name, p.first_seen, p.last_heard, p.last_bridge
    FROM printers p
    LEFT JOIN claims c ON c.id = p.claim_id
    LEFT JOIN users u ON u.id = c.user_id";

pub(super) fn printer_from_row(row: &Row<'_>) -> rusqlite::Result<PrinterRow> {
    Ok(PrinterRow {
        id: row.get(0)?,
        address: row.get(1)?,
        hardware_xor: row.get(2)?,
        claim_id: row.get(3)?,
        owner_id: row.get(4)?,
        owner: row.get(5)?,
        name: row.get(6)?,
        first_seen: row.get(7)?,
        last_heard: row.get(8)?,
        last_bridge: row.get(9)?,
    })
}

/// The printer at `address`, read through `conn`.
fn find(
    conn: &rusqlite::Connection,
    address: DeviceAddress,
) -> rusqlite::Result<Option<PrinterRow>> {
    conn.prepare_cached(&format!("{PRINTER_SELECT} WHERE p.address = ?1"))?
        .query_row([address], printer_from_row)
        .optional()
}

impl Store {
    /// The printer at `device`, created on first sight: with its hardware
    /// xor, `first_seen = now`, and linked to the newest claim with the same
    /// xor if there is one. An existing row is returned unchanged, without
    /// writing (one indexed lookup).
    pub fn ensure_printer(
        &self,
        device: DeviceAddress,
        now: i64,
    ) -> Result<PrinterRow, StoreError> {
        let mut conn = self.lock();
        if let Some(row) = find(&conn, device)? {
            return Ok(row);
        }
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO printers (address, hardware_xor, claim_id, first_seen)
             VALUES (?1, ?2, (SELECT max(id) FROM claims WHERE hardware_xor = ?2), ?3)
             ON CONFLICT (address) DO NOTHING",
        )?
        .execute(rusqlite::params![device, device.hardware_xor(), now])?;
        let row = find(&tx, device)?;
        tx.commit()?;
        self.wrote();
        row.ok_or_else(|| StoreError::Corrupt(format!("printer {device} vanished after insert")))
    }

    /// The printer at this address, if it ever called home.
    pub fn printer_by_address(
        &self,
        device: DeviceAddress,
    ) -> Result<Option<PrinterRow>, StoreError> {
        Ok(find(&self.reader(), device)?)
    }

    /// The printer with this row id.
    pub fn printer_by_id(&self, id: i64) -> Result<Option<PrinterRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!("{PRINTER_SELECT} WHERE p.id = ?1"))?;
        Ok(stmt.query_row([id], printer_from_row).optional()?)
    }

    /// Every printer, in the order they were first seen.
    pub fn list_printers(&self) -> Result<Vec<PrinterRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!("{PRINTER_SELECT} ORDER BY p.id"))?;
        let rows = stmt
            .query_map([], printer_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Writes when printers were last heard, and through which bridge
    /// (`None` keeps the one known): one transaction for the whole batch,
    /// counted as one write; nothing for an empty batch. A time older than
    /// the stored one does not move it back. Addresses without a row
    /// (never passed to [`Store::ensure_printer`]) are skipped.
    pub fn update_last_heard(
        &self,
        items: &[(DeviceAddress, i64, Option<BridgeAddress>)],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE printers SET
                     last_heard = max(coalesce(last_heard, ?2), ?2),
                     last_bridge = coalesce(?3, last_bridge)
                 WHERE address = ?1",
            )?;
            for (device, heard, bridge) in items {
                update.execute(rusqlite::params![device, heard, bridge])?;
            }
        }
        tx.commit()?;
        self.wrote();
        Ok(())
    }

    /// Writes printers heard from, in one transaction counted as one write:
    /// a row is made for a printer heard for the first time (linked to the
    /// newest claim for its hardware xor), and every row gets its last-heard
    /// time (never moved back) and bridge. Then, for each bridge in the
    /// batch, unclaimed printers beyond the newest `keep` (by last heard)
    /// are deleted — unless messages or print keys refer to them. Claimed
    /// printers are never deleted.
    pub fn remember_printers(
        &self,
        items: &[(DeviceAddress, i64, Option<BridgeAddress>)],
        keep: usize,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO printers (address, hardware_xor, claim_id, first_seen, last_heard, last_bridge)
                 VALUES (?1, ?2, (SELECT max(id) FROM claims WHERE hardware_xor = ?2), ?3, ?3, ?4)
                 ON CONFLICT (address) DO UPDATE SET
                     last_heard = max(coalesce(last_heard, excluded.last_heard), excluded.last_heard),
                     last_bridge = coalesce(excluded.last_bridge, last_bridge)",
            )?;
            for (device, heard, bridge) in items {
                upsert.execute(rusqlite::params![
                    device,
                    device.hardware_xor(),
                    heard,
                    bridge
                ])?;
            }
            let mut bridges: Vec<BridgeAddress> = items.iter().filter_map(|i| i.2).collect();
            bridges.sort();
            bridges.dedup();
            let mut prune = tx.prepare_cached(
                "DELETE FROM printers WHERE id IN (
                     SELECT id FROM printers
                     WHERE claim_id IS NULL AND last_bridge = ?1
                     ORDER BY coalesce(last_heard, first_seen) DESC, id DESC
                     LIMIT -1 OFFSET ?2)
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.printer_id = printers.id)
                 AND NOT EXISTS (SELECT 1 FROM print_keys k WHERE k.printer_id = printers.id)",
            )?;
            for bridge in bridges {
                prune.execute(rusqlite::params![bridge, keep as i64])?;
            }
        }
        tx.commit()?;
        self.wrote();
        Ok(())
    }

    /// Whether a claim owns this printer: the claim its row is linked to,
    /// or, for an address without a row, a claim with its hardware xor.
    pub fn is_claimed(&self, device: DeviceAddress) -> Result<bool, StoreError> {
        let conn = self.reader();
        let linked: Option<Option<i64>> = conn
            .prepare_cached("SELECT claim_id FROM printers WHERE address = ?1")?
            .query_row([device], |row| row.get(0))
            .optional()?;
        Ok(match linked {
            Some(claim) => claim.is_some(),
            None => conn
                .prepare_cached("SELECT 1 FROM claims WHERE hardware_xor = ?1 LIMIT 1")?
                .query_row([device.hardware_xor()], |_| Ok(()))
                .optional()?
                .is_some(),
        })
    }

    /// Deletes unclaimed printers not heard from since `cutoff` (unix
    /// seconds) — unless messages or print keys refer to them — and bridges
    /// not seen since then, with their logs. Returns how many printers and
    /// bridges were deleted. Claimed printers are never deleted.
    pub fn forget_before(&self, cutoff: i64) -> Result<(usize, usize), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let printers = tx
            .prepare_cached(
                "DELETE FROM printers
                 WHERE claim_id IS NULL AND coalesce(last_heard, first_seen) < ?1
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.printer_id = printers.id)
                   AND NOT EXISTS (SELECT 1 FROM print_keys k WHERE k.printer_id = printers.id)",
            )?
            .execute([cutoff])?;
        tx.prepare_cached(
            "DELETE FROM bridge_log WHERE bridge_address IN
                 (SELECT address FROM bridges WHERE last_seen < ?1)",
        )?
        .execute([cutoff])?;
        let bridges = tx
            .prepare_cached("DELETE FROM bridges WHERE last_seen < ?1")?
            .execute([cutoff])?;
        // Log rows of bridges that have no row (written before it).
        tx.prepare_cached(
            "DELETE FROM bridge_log WHERE received_at < ?1
               AND bridge_address NOT IN (SELECT address FROM bridges)",
        )?
        .execute([cutoff])?;
        tx.commit()?;
        if printers + bridges > 0 {
            self.wrote();
        }
        Ok((printers, bridges))
    }

    /// The link key to send when `device` asks for one
    /// (`encryption_key_required`): the key of the claim code its printer is
    /// linked to. `None` while unclaimed: send nothing, the bridge will ask
    /// again. For an address that has no row yet, the key of the newest
    /// claim with its hardware xor (what [`Store::ensure_printer`] would
    /// link it to).
    pub fn link_key_for(&self, device: DeviceAddress) -> Result<Option<LinkKey>, StoreError> {
        let conn = self.reader();
        let code: Option<Option<String>> = conn
            .prepare_cached(
                "SELECT c.code FROM printers p LEFT JOIN claims c ON c.id = p.claim_id
                 WHERE p.address = ?1",
            )?
            .query_row([device], |row| row.get(0))
            .optional()?;
        let code = match code {
            Some(linked) => linked,
            None => conn
                .prepare_cached(
                    "SELECT code FROM claims WHERE hardware_xor = ?1 ORDER BY id DESC LIMIT 1",
                )?
                .query_row([device.hardware_xor()], |row| row.get(0))
                .optional()?,
        };
        code.map(|code| {
            ClaimCode::parse(&code)
                .map(|c| c.link_key())
                .map_err(|e| StoreError::Corrupt(format!("stored claim code {code:?}: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclaimed_printers_are_kept_64_per_bridge_claimed_ones_always() {
        let store = Store::open_in_memory().unwrap();
        let bridge = BridgeAddress::parse("000d6f0001b3719d").unwrap();
        let other = BridgeAddress::parse("000d6f0002ff7a91").unwrap();
        let user = store.create_user("ada", None, 1).unwrap();
        // A claimed printer heard long ago through the same bridge.
        let claimed = device(1);
        let code = ClaimCode::new(
            claimed.hardware_xor(),
            crate::protocol::ClaimSecret::new(0xeb1ba696a0).unwrap(),
        );
        store.claim(user.id, &code, "Kitchen", 1).unwrap();
        store
            .remember_printers(&[(claimed, 1, Some(bridge))], 3)
            .unwrap();
        let batch: Vec<_> = (10..20)
            .map(|n| (device(n), 100 + n as i64, Some(bridge)))
            .collect();
        store.remember_printers(&batch, 3).unwrap();
        store
            .remember_printers(&[(device(50), 5, Some(other))], 3)
            .unwrap();
        let all = store.list_printers().unwrap();
        let on_bridge: Vec<_> = all
            .iter()
            .filter(|p| p.last_bridge == Some(bridge) && p.claim_id.is_none())
            .map(|p| p.address)
            .collect();
        assert_eq!(
            on_bridge,
            vec![device(17), device(18), device(19)],
            "the newest 3"
        );
        assert!(
            all.iter()
                .any(|p| p.address == claimed && p.claim_id.is_some())
        );
        assert!(all.iter().any(|p| p.address == device(50)));
        assert!(store.is_claimed(claimed).unwrap());
        assert!(!store.is_claimed(device(19)).unwrap());
        assert!(!store.is_claimed(device(99)).unwrap());

        // 30 days later: unclaimed printers not heard since are deleted
        // (unless a message refers to one), claimed ones never.
        let keep = store.printer_by_address(device(18)).unwrap().unwrap();
        store
            .create_print_key(keep.id, "abcdefghijklmnopqrstuvwx", None, None, 1)
            .unwrap();
        let (printers, _) = store.forget_before(1000).unwrap();
        assert_eq!(printers, 3);
        let left: Vec<_> = store
            .list_printers()
            .unwrap()
            .iter()
            .map(|p| p.address)
            .collect();
        assert_eq!(left, vec![claimed, device(18)]);
    }

    #[test]
    fn bridges_not_seen_for_the_cutoff_go_with_their_logs() {
        use crate::protocol::BridgeAddress;
        use crate::protocol::events::LogRecord;
        let store = Store::open_in_memory().unwrap();
        let old = BridgeAddress::parse("000d6f0001b3719d").unwrap();
        let recent = BridgeAddress::parse("000d6f0002ff7a91").unwrap();
        let records = [LogRecord {
            message: Some("hello".into()),
            ..Default::default()
        }];
        store.record_bridge_seen(old, None, 10).unwrap();
        store.append_bridge_log(old, &records, 10).unwrap();
        store.record_bridge_seen(recent, None, 10).unwrap();
        store.append_bridge_log(recent, &records, 10).unwrap();
        store.record_bridge_seen(recent, None, 2000).unwrap();

        let (_, bridges) = store.forget_before(1000).unwrap();
        assert_eq!(bridges, 1);
        let left: Vec<_> = store
            .list_bridges()
            .unwrap()
            .iter()
            .map(|b| b.address)
            .collect();
        assert_eq!(left, vec![recent]);
        assert!(store.bridge_log(old, 10).unwrap().is_empty());
        // A bridge still around keeps its log, however old the rows.
        assert_eq!(store.bridge_log(recent, 10).unwrap().len(), 1);
    }

    fn device(n: u32) -> DeviceAddress {
        let mut bytes = [0, 0x0d, 0x6f, 0, 0, 0, 0, 0];
        bytes[4..].copy_from_slice(&n.to_be_bytes());
        DeviceAddress::from_bytes(bytes)
    }

    #[test]
    fn first_sight_creates_an_unclaimed_printer() {
        let store = Store::open_in_memory().unwrap();
        let a = DeviceAddress::parse("000d6f000273ce0b").unwrap();
        let p = store.ensure_printer(a, 100).unwrap();
        assert_eq!(p.address, a);
        assert_eq!(p.hardware_xor.value(), 7586148);
        assert_eq!(p.first_seen, 100);
        assert_eq!(
            (p.claim_id, p.owner_id, &p.owner, &p.name),
            (None, None, &None, &None)
        );
        assert_eq!((p.last_heard, p.last_bridge), (None, None));
        assert_eq!(store.writes(), 1);
        assert_eq!(store.printer_by_address(a).unwrap(), Some(p.clone()));
        assert_eq!(store.printer_by_id(p.id).unwrap(), Some(p.clone()));
        assert_eq!(store.printer_by_id(p.id + 1).unwrap(), None);
        assert_eq!(store.printer_by_address(device(9)).unwrap(), None);
        assert_eq!(store.link_key_for(a).unwrap(), None);
    }

    #[test]
    fn link_key_for_an_address_not_seen_yet_follows_the_newest_claim() {
        use crate::protocol::{ClaimCode, ClaimSecret};
        let store = Store::open_in_memory().unwrap();
        let a = DeviceAddress::parse("000d6f000273ce0b").unwrap();
        assert_eq!(store.link_key_for(a).unwrap(), None);
        let user = store.create_user("alice", None, 0).unwrap();
        let old = ClaimCode::new(a.hardware_xor(), ClaimSecret::new(1).unwrap());
        let new = ClaimCode::new(a.hardware_xor(), ClaimSecret::new(2).unwrap());
        store.claim(user.id, &old, "x", 0).unwrap();
        store.claim(user.id, &new, "x", 0).unwrap();
        let writes = store.writes();
        assert_eq!(store.link_key_for(a).unwrap(), Some(new.link_key()));
        assert_eq!(store.writes(), writes);
        assert_eq!(
            store.printer_by_address(a).unwrap(),
            None,
            "reading creates nothing"
        );
    }

    #[test]
    fn ensure_printer_for_a_known_printer_does_not_write() {
        let store = Store::open_in_memory().unwrap();
        let first = store.ensure_printer(device(1), 100).unwrap();
        let writes = store.writes();
        let again = store.ensure_printer(device(1), 200).unwrap();
        assert_eq!(again, first, "unchanged: first_seen stays 100");
        assert_eq!(store.writes(), writes);
        assert_eq!(store.list_printers().unwrap(), [first]);
    }

    #[test]
    fn last_heard_for_1000_printers_is_one_write() {
        let store = Store::open_in_memory().unwrap();
        for n in 0..1000 {
            store.ensure_printer(device(n), 0).unwrap();
        }
        let bridge = BridgeAddress::parse("000d6f0001b3719d").unwrap();
        let items: Vec<_> = (0..1000)
            .map(|n| (device(n), 500 + i64::from(n), Some(bridge)))
            .collect();
        let before = store.writes();
        store.update_last_heard(&items).unwrap();
        assert_eq!(store.writes(), before + 1);
        store.update_last_heard(&[]).unwrap();
        assert_eq!(store.writes(), before + 1, "an empty batch writes nothing");

        let printers = store.list_printers().unwrap();
        assert_eq!(printers.len(), 1000);
        for (n, p) in printers.iter().enumerate() {
            assert_eq!(p.last_heard, Some(500 + n as i64));
            assert_eq!(p.last_bridge, Some(bridge));
        }
    }

    #[test]
    fn last_heard_never_goes_back_and_keeps_the_bridge() {
        let store = Store::open_in_memory().unwrap();
        store.ensure_printer(device(1), 0).unwrap();
        let bridge = BridgeAddress::parse("000d6f0001b3719d").unwrap();
        store
            .update_last_heard(&[(device(1), 50, Some(bridge))])
            .unwrap();
        store.update_last_heard(&[(device(1), 40, None)]).unwrap();
        // Unknown addresses are skipped.
        store.update_last_heard(&[(device(2), 60, None)]).unwrap();
        let p = store.printer_by_address(device(1)).unwrap().unwrap();
        assert_eq!((p.last_heard, p.last_bridge), (Some(50), Some(bridge)));
        assert_eq!(store.printer_by_address(device(2)).unwrap(), None);
    }
}
