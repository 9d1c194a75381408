//! Shares: the owner of a printer lets another user print to it.
//!
//! Owns the `shares` table and the one question every printer page asks:
//! may this user see this printer, and as what ([`Store::printer_access`])?
//! A share is keyed by the printer's hardware xor, so a reset by the same
//! owner keeps it; a claim by someone else deletes it (see
//! [`super::claims`]). Only the owner manages shares.
//!
//! Also here, the few other things an owner does to a printer from its
//! page: rename it, cancel a queued message.

use rusqlite::{OptionalExtension, params};

use super::printers::{PRINTER_SELECT, printer_from_row};
use super::{PrinterRow, Store, StoreError};

/// What a user may do with a printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// They own it: everything.
    Owner,
    /// It is shared with them: print, and see their own messages.
    Shared,
}

/// One user a printer is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub user_id: i64,
    pub username: String,
    pub created_at: i64,
}

/// Why a share was refused. Written for the owner.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("there is no user called {0:?}")]
    NoSuchUser(String),
    #[error("you own this printer already; share it with someone else")]
    Yourself,
    #[error("the printer is not claimed")]
    Unclaimed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ShareError {
    fn from(e: rusqlite::Error) -> Self {
        ShareError::Store(e.into())
    }
}

impl Store {
    /// The printer `printer_id` and what `user_id` may do with it; `None`
    /// when it does not exist or the user is neither its owner nor someone
    /// it is shared with (the two look the same from outside).
    pub fn printer_access(
        &self,
        printer_id: i64,
        user_id: i64,
    ) -> Result<Option<(PrinterRow, Access)>, StoreError> {
        let conn = self.reader();
        let printer = conn
            .prepare_cached(&format!("{PRINTER_SELECT} WHERE p.id = ?1"))?
            .query_row([printer_id], printer_from_row)
            .optional()?;
        let Some(printer) = printer else {
            return Ok(None);
        };
        let Some(owner) = printer.owner_id else {
            return Ok(None);
        };
        if owner == user_id {
            return Ok(Some((printer, Access::Owner)));
        }
        let shared = conn
            .prepare_cached("SELECT 1 FROM shares WHERE hardware_xor = ?1 AND user_id = ?2")?
            .query_row(params![printer.hardware_xor, user_id], |_| Ok(()))
            .optional()?
            .is_some();
        Ok(shared.then_some((printer, Access::Shared)))
    }

    /// Shares a claimed printer's hardware with the user `username`.
    /// Sharing twice is fine (nothing changes).
    pub fn share_printer(
        &self,
        printer_id: i64,
        username: &str,
        created_by: i64,
        now: i64,
    ) -> Result<ShareRow, ShareError> {
        let printer = self
            .printer_by_id(printer_id)?
            .ok_or(ShareError::Unclaimed)?;
        let owner = printer.owner_id.ok_or(ShareError::Unclaimed)?;
        let user = self
            .user_by_name(username)?
            .ok_or_else(|| ShareError::NoSuchUser(username.trim().to_string()))?;
        if user.id == owner {
            return Err(ShareError::Yourself);
        }
        self.lock()
            .prepare_cached(
                "INSERT INTO shares (hardware_xor, user_id, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (hardware_xor, user_id) DO NOTHING",
            )?
            .execute(params![printer.hardware_xor, user.id, created_by, now])?;
        self.wrote();
        Ok(ShareRow {
            user_id: user.id,
            username: user.username,
            created_at: now,
        })
    }

    /// Stops sharing a printer with a user. Returns whether it was shared.
    pub fn unshare_printer(&self, printer_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached(
                "DELETE FROM shares WHERE user_id = ?2
                   AND hardware_xor = (SELECT hardware_xor FROM printers WHERE id = ?1)",
            )?
            .execute(params![printer_id, user_id])?;
        self.wrote();
        Ok(n > 0)
    }

    /// The users a printer is shared with, by name.
    pub fn shares_of(&self, printer_id: i64) -> Result<Vec<ShareRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT s.user_id, u.username, s.created_at FROM shares s
             JOIN users u ON u.id = s.user_id
             WHERE s.hardware_xor = (SELECT hardware_xor FROM printers WHERE id = ?1)
             ORDER BY u.username",
        )?;
        let rows = stmt
            .query_map([printer_id], |r| {
                Ok(ShareRow {
                    user_id: r.get(0)?,
                    username: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The claimed printers shared with a user (not their own), in the
    /// order they were first seen.
    pub fn printers_shared_with(&self, user_id: i64) -> Result<Vec<PrinterRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "{PRINTER_SELECT}
             WHERE p.hardware_xor IN (SELECT hardware_xor FROM shares WHERE user_id = ?1)
               AND c.user_id IS NOT NULL AND c.user_id != ?1
             ORDER BY p.id"
        ))?;
        let rows = stmt
            .query_map([user_id], printer_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Renames a claimed printer (its claim's name, 1 to 64 characters).
    /// Returns whether the printer is claimed.
    pub fn rename_printer(&self, printer_id: i64, name: &str) -> Result<bool, super::ClaimError> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > super::claims::MAX_NAME_CHARS {
            return Err(super::ClaimError::InvalidName);
        }
        let n = self
            .lock()
            .prepare_cached(
                "UPDATE claims SET name = ?2
                 WHERE id = (SELECT claim_id FROM printers WHERE id = ?1)",
            )?
            .execute(params![printer_id, name])?;
        self.wrote();
        Ok(n > 0)
    }

    /// Cancels a message still waiting in a printer's queue (it is
    /// deleted; one already sent can't be called back). Returns whether
    /// one was.
    pub fn cancel_queued(&self, printer_id: i64, message_id: i64) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached(
                "DELETE FROM messages WHERE id = ?2 AND printer_id = ?1 AND state = 'queued'",
            )?
            .execute(params![printer_id, message_id])?;
        self.wrote();
        Ok(n > 0)
    }

    /// The owner gives a printer up ("remove" on its page): it becomes
    /// unclaimed, in one transaction, as when its owner's account is
    /// deleted: every claim on its hardware goes, its print keys are
    /// revoked, its shares end, and its messages (history and queue) are
    /// deleted. Like any unclaimed printer, whoever holds a code it printed
    /// may then claim it; give it away after a reset (the new code is the
    /// only one that matters once claimed). Returns whether the
    /// printer was owned by `owner_id`.
    pub fn release_printer(
        &self,
        printer_id: i64,
        owner_id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let xor: Option<i64> = tx
            .prepare_cached(
                "SELECT p.hardware_xor FROM printers p JOIN claims c ON c.id = p.claim_id
                 WHERE p.id = ?1 AND c.user_id = ?2",
            )?
            .query_row(params![printer_id, owner_id], |r| r.get(0))
            .optional()?;
        let Some(xor) = xor else {
            return Ok(false);
        };
        super::claims::revoke_keys_and_shares(&tx, xor, now)?;
        super::claims::delete_messages(&tx, xor)?;
        super::claims::unclaim(&tx, xor)?;
        tx.commit()?;
        self.wrote();
        Ok(true)
    }

    /// How many messages wait in a printer's queue.
    pub fn queued_count(&self, printer_id: i64) -> Result<u64, StoreError> {
        let n: i64 = self
            .reader()
            .prepare_cached(
                "SELECT count(*) FROM messages WHERE printer_id = ?1 AND state = 'queued'",
            )?
            .query_row([printer_id], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClaimCode, ClaimSecret, DeviceAddress};

    /// The test printer's address.
    fn addr() -> DeviceAddress {
        DeviceAddress::parse("000d6f000273ce0b").unwrap()
    }

    /// A claim code the test printer could print, with `secret`.
    fn code(secret: u64) -> ClaimCode {
        ClaimCode::new(addr().hardware_xor(), ClaimSecret::new(secret).unwrap())
    }

    /// The test printer, claimed by `owner` as "Kitchen" with `code(7)`.
    fn kitchen_of(store: &Store, owner: i64) -> PrinterRow {
        let p = store.ensure_printer(addr(), 0).unwrap();
        store.claim(owner, &code(7), "Kitchen", 1).unwrap();
        p
    }

    #[test]
    fn the_owner_and_users_it_is_shared_with_get_in_nobody_else() {
        let store = Store::open_in_memory().unwrap();
        let ada = store.create_user("ada", None, 0).unwrap();
        let bob = store.create_user("bob", None, 0).unwrap();
        let eve = store.create_user("eve", None, 0).unwrap();
        let p = store.ensure_printer(addr(), 0).unwrap();
        assert_eq!(
            store.printer_access(p.id, ada.id).unwrap(),
            None,
            "unclaimed"
        );
        store.claim(ada.id, &code(7), "Kitchen", 1).unwrap();

        assert_eq!(
            store.printer_access(p.id, ada.id).unwrap().map(|a| a.1),
            Some(Access::Owner)
        );
        assert_eq!(store.printer_access(p.id, bob.id).unwrap(), None);
        assert_eq!(store.printer_access(p.id + 1, ada.id).unwrap(), None);

        store.share_printer(p.id, "BOB", ada.id, 2).unwrap();
        store.share_printer(p.id, "bob", ada.id, 3).unwrap();
        assert_eq!(
            store.printer_access(p.id, bob.id).unwrap().map(|a| a.1),
            Some(Access::Shared)
        );
        assert_eq!(store.printer_access(p.id, eve.id).unwrap(), None);
        assert_eq!(store.shares_of(p.id).unwrap().len(), 1);
        assert_eq!(store.printers_shared_with(bob.id).unwrap().len(), 1);
        assert!(store.printers_shared_with(ada.id).unwrap().is_empty());
        assert!(matches!(
            store.share_printer(p.id, "ada", ada.id, 4),
            Err(ShareError::Yourself)
        ));
        assert!(matches!(
            store.share_printer(p.id, "nobody", ada.id, 4),
            Err(ShareError::NoSuchUser(_))
        ));

        // A claim by someone else ends the shares.
        store.claim(eve.id, &code(8), "Mine now", 5).unwrap();
        assert_eq!(store.printer_access(p.id, bob.id).unwrap(), None);
        assert!(store.shares_of(p.id).unwrap().is_empty());
    }

    fn message_from(printer_id: i64, user_id: Option<i64>) -> super::super::NewMessage<'static> {
        super::super::NewMessage {
            created_at: 10,
            sender_user_id: user_id,
            ..super::super::messages::test_message(printer_id, "someone")
        }
    }

    #[test]
    fn removing_a_printer_unclaims_it_and_takes_its_keys_shares_and_messages() {
        let store = Store::open_in_memory().unwrap();
        let ada = store.create_user("ada", None, 0).unwrap();
        let bob = store.create_user("bob", None, 0).unwrap();
        let p = kitchen_of(&store, ada.id);
        store.share_printer(p.id, "bob", ada.id, 2).unwrap();
        store
            .create_print_key(p.id, "abcdefghij0123456789", None, Some(ada.id), 3)
            .unwrap();
        store
            .insert_message(&message_from(p.id, Some(bob.id)), 100, 100)
            .unwrap();
        store
            .insert_message(&message_from(p.id, Some(ada.id)), 100, 100)
            .unwrap();
        assert_eq!(
            store.recent_messages_from(p.id, bob.id, 10).unwrap().len(),
            1,
            "bob sees his own message only"
        );

        // Not bob's to remove.
        assert!(!store.release_printer(p.id, bob.id, 4).unwrap());
        assert!(store.release_printer(p.id, ada.id, 4).unwrap());
        assert_eq!(store.printer_access(p.id, ada.id).unwrap(), None);
        assert_eq!(store.printer_access(p.id, bob.id).unwrap(), None);
        assert!(
            store.print_key("abcdefghij0123456789").unwrap().is_none(),
            "the key is revoked"
        );
        assert!(store.recent_messages(p.id, 10).unwrap().is_empty());
        assert_eq!(store.queued_count(p.id).unwrap(), 0);
        // Unclaimed now: whoever has a code it printed may claim it.
        store.claim(bob.id, &code(7), "Bob's", 5).unwrap();
        assert_eq!(
            store.printer_access(p.id, bob.id).unwrap().map(|a| a.1),
            Some(Access::Owner)
        );
    }

    #[test]
    fn a_new_owner_does_not_see_the_old_owners_history() {
        let store = Store::open_in_memory().unwrap();
        let ada = store.create_user("ada", None, 0).unwrap();
        let eve = store.create_user("eve", None, 0).unwrap();
        let p = kitchen_of(&store, ada.id);
        store
            .insert_message(&message_from(p.id, Some(ada.id)), 100, 100)
            .unwrap();
        // A reset by the same owner keeps the history.
        store.claim(ada.id, &code(8), "Kitchen", 2).unwrap();
        assert_eq!(store.recent_messages(p.id, 10).unwrap().len(), 1);
        // Someone else's claim does not.
        store.claim(eve.id, &code(9), "Mine", 3).unwrap();
        assert!(store.recent_messages(p.id, 10).unwrap().is_empty());
    }

    #[test]
    fn unsharing_ends_access() {
        let store = Store::open_in_memory().unwrap();
        let ada = store.create_user("ada", None, 0).unwrap();
        let bob = store.create_user("bob", None, 0).unwrap();
        let p = kitchen_of(&store, ada.id);
        store.share_printer(p.id, "bob", ada.id, 2).unwrap();
        assert!(store.unshare_printer(p.id, bob.id).unwrap());
        assert!(!store.unshare_printer(p.id, bob.id).unwrap());
        assert_eq!(store.printer_access(p.id, bob.id).unwrap(), None);
    }
}
