//! Print keys: secret URLs that print to one printer, with their use count
//! and the distinct sender names they were used with.
//!
//! Only a SHA-256 of each secret is kept ([`super::sha256_hex`]) and its
//! first 4 characters, so lists can tell keys apart: the full URL is shown
//! once, when the key is made. A key stops working when it is revoked, and
//! when its printer is claimed by someone else ([`super::claims`]).

use rusqlite::{OptionalExtension, Row, params};

use super::printers::{PRINTER_SELECT, printer_from_row};
use super::{PrinterRow, Store, StoreError, sha256_hex};

/// How many characters of a secret lists show.
pub const PREFIX_CHARS: usize = 4;

/// A print key (never its secret) and the printer it prints to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintKeyRow {
    pub id: i64,
    /// The secret's first characters, for lists.
    pub prefix: String,
    /// What the owner called it, if anything.
    pub label: Option<String>,
    pub printer_id: i64,
    /// Who made it (`None`: the command line).
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub uses: u64,
    pub last_used_at: Option<i64>,
    /// Distinct sender names, most used first.
    pub senders: Vec<String>,
}

impl PrintKeyRow {
    /// The sender name printed when a print names none: "Print key" and
    /// the key's label, or its id. Never part of the secret.
    pub fn default_sender(&self) -> String {
        match self
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            Some(label) => format!("Print key {label}"),
            None => format!("Print key {}", self.id),
        }
    }
}

const KEY_SELECT: &str = "SELECT id, prefix, label, printer_id, created_by, created_at,
        revoked_at, uses, last_used_at FROM print_keys";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<PrintKeyRow> {
    Ok(PrintKeyRow {
        id: row.get(0)?,
        prefix: row.get(1)?,
        label: row.get(2)?,
        printer_id: row.get(3)?,
        created_by: row.get(4)?,
        created_at: row.get(5)?,
        revoked_at: row.get(6)?,
        uses: row.get::<_, i64>(7)?.max(0) as u64,
        last_used_at: row.get(8)?,
        senders: Vec::new(),
    })
}

/// Fills in the senders of each key.
fn with_senders(
    conn: &rusqlite::Connection,
    mut keys: Vec<PrintKeyRow>,
) -> rusqlite::Result<Vec<PrintKeyRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sender FROM print_key_senders WHERE key_id = ?1 ORDER BY uses DESC, sender LIMIT 50",
    )?;
    for k in &mut keys {
        k.senders = stmt
            .query_map([k.id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(keys)
}

impl Store {
    /// Stores a new key for a printer. The caller makes the secret (from
    /// the OS random generator); only its hash and prefix are kept.
    pub fn create_print_key(
        &self,
        printer_id: i64,
        secret: &str,
        label: Option<&str>,
        created_by: Option<i64>,
        now: i64,
    ) -> Result<PrintKeyRow, StoreError> {
        let label = label
            .map(|l| l.trim().chars().take(64).collect::<String>())
            .filter(|l| !l.is_empty());
        let prefix: String = secret.chars().take(PREFIX_CHARS).collect();
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO print_keys (printer_id, secret_hash, prefix, label, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            printer_id,
            sha256_hex(secret),
            prefix,
            label,
            created_by,
            now
        ])?;
        self.wrote();
        let id = conn.last_insert_rowid();
        Ok(PrintKeyRow {
            id,
            prefix,
            label,
            printer_id,
            created_by,
            created_at: now,
            revoked_at: None,
            uses: 0,
            last_used_at: None,
            senders: Vec::new(),
        })
    }

    /// A working (not revoked) key by its secret, with its printer.
    pub fn print_key(&self, secret: &str) -> Result<Option<(PrintKeyRow, PrinterRow)>, StoreError> {
        let conn = self.reader();
        let key = conn
            .prepare_cached(&format!(
                "{KEY_SELECT} WHERE secret_hash = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([sha256_hex(secret)], key_from_row)
            .optional()?;
        let Some(key) = key else { return Ok(None) };
        let printer = conn
            .prepare_cached(&format!("{PRINTER_SELECT} WHERE p.id = ?1"))?
            .query_row([key.printer_id], printer_from_row)
            .optional()?;
        Ok(printer.map(|p| (key, p)))
    }

    /// Every key, revoked ones too, with their senders.
    pub fn list_print_keys(&self) -> Result<Vec<PrintKeyRow>, StoreError> {
        let conn = self.reader();
        let keys: Vec<PrintKeyRow> = conn
            .prepare_cached(&format!("{KEY_SELECT} ORDER BY id"))?
            .query_map([], key_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(with_senders(&conn, keys)?)
    }

    /// The keys of one printer, revoked ones too, newest first.
    pub fn print_keys_of(&self, printer_id: i64) -> Result<Vec<PrintKeyRow>, StoreError> {
        let conn = self.reader();
        let keys: Vec<PrintKeyRow> = conn
            .prepare_cached(&format!(
                "{KEY_SELECT} WHERE printer_id = ?1 ORDER BY id DESC"
            ))?
            .query_map([printer_id], key_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(with_senders(&conn, keys)?)
    }

    /// Revokes a key given by its secret or its id. Returns whether a
    /// working key was revoked.
    pub fn revoke_print_key(&self, secret_or_id: &str, now: i64) -> Result<bool, StoreError> {
        let id: i64 = secret_or_id.parse().unwrap_or(-1);
        let n = self.lock().execute(
            "UPDATE print_keys SET revoked_at = ?3
             WHERE (secret_hash = ?1 OR id = ?2) AND revoked_at IS NULL",
            params![sha256_hex(secret_or_id), id, now],
        )?;
        if n > 0 {
            self.wrote();
        }
        Ok(n > 0)
    }

    /// Counts one use of a key by `sender`.
    pub fn record_print_key_use(
        &self,
        key_id: i64,
        sender: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "UPDATE print_keys SET uses = uses + 1, last_used_at = ?2 WHERE id = ?1",
        )?
        .execute(params![key_id, now])?;
        tx.prepare_cached(
            "INSERT INTO print_key_senders (key_id, sender, uses) VALUES (?1, ?2, 1)
             ON CONFLICT (key_id, sender) DO UPDATE SET uses = uses + 1",
        )?
        .execute(params![key_id, sender])?;
        tx.commit()?;
        self.wrote();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DeviceAddress;

    #[test]
    fn keys_uses_senders_revocation() {
        let s = Store::open_in_memory().unwrap();
        let p = s
            .ensure_printer(DeviceAddress::parse("000d6f000273ce0b").unwrap(), 1)
            .unwrap();
        let k = s
            .create_print_key(p.id, "abcdefghij0123456789", Some("phone"), None, 5)
            .unwrap();
        assert_eq!(k.prefix, "abcd");
        assert_eq!(k.default_sender(), "Print key phone");
        let (found, printer) = s.print_key("abcdefghij0123456789").unwrap().unwrap();
        assert_eq!(found.id, k.id);
        assert_eq!(printer.id, p.id);
        s.record_print_key_use(k.id, "ada", 6).unwrap();
        s.record_print_key_use(k.id, "ada", 7).unwrap();
        s.record_print_key_use(k.id, "bob", 8).unwrap();
        let all = s.list_print_keys().unwrap();
        assert_eq!(all[0].uses, 3);
        assert_eq!(all[0].senders, vec!["ada", "bob"]);
        assert!(s.print_key("nope").unwrap().is_none());
        assert!(s.revoke_print_key("abcdefghij0123456789", 9).unwrap());
        assert!(!s.revoke_print_key(&k.id.to_string(), 9).unwrap());
        assert!(s.print_key("abcdefghij0123456789").unwrap().is_none());
    }
}
