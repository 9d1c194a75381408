//! Claims: who owns a printer (PROTOCOL §7, "Who owns a printer").
//!
//! Owns the `claims` table and the rules that link printers to claims:
//!
//! * A user claims with the code the printer printed after a reset and a
//!   name. The code's hardware xor is stored with the claim; several claims
//!   may share a xor (the printer was reset and printed a new code), and the
//!   newest claim (highest id) wins.
//! * Every printer row with that xor follows the newest claim: linked when
//!   the claim is made, or when the printer first calls home
//!   ([`Store::ensure_printer`]).
//! * The same code claimed by a different user is refused; an old code can
//!   never take a printer back once a newer code for the same printer was
//!   claimed. Only a reset (a new code) moves a printer to a new owner.

use rusqlite::OptionalExtension;

use super::{Store, StoreError};
use crate::protocol::{ClaimCode, DeviceAddress};

/// The longest printer name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a claim was refused. The messages are written for the person
/// claiming.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The printer name is empty or too long.
    #[error("give the printer a name of 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    /// No user with that id or name.
    #[error("there is no such user; log in again or create the account first")]
    UnknownUser,
    /// Another user claimed this very code.
    #[error(
        "this printer's code has already been claimed by someone else; reset the printer to print a new code"
    )]
    AlreadyClaimed,
    /// A newer code for the same printer was claimed since.
    #[error(
        "this code is out of date: the printer was reset and claimed with a newer code; reset it again to print a new one"
    )]
    Superseded,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ClaimError {
    fn from(e: rusqlite::Error) -> Self {
        ClaimError::Store(e.into())
    }
}

/// What a successful claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The claim's row id (an existing one when the same user claimed the
    /// same code again).
    pub claim_id: i64,
    /// Every printer now linked to this claim (none if the printer has not
    /// called home yet).
    pub printers_linked: Vec<DeviceAddress>,
}

impl Store {
    /// Claims the printer behind `code` for the user `user_id`, under
    /// `name` (trimmed, 1 to 64 characters).
    ///
    /// * A new code: the claim is stored and every printer with its hardware
    ///   xor is linked to it, taking it from any older claim. When the older
    ///   claim was another user's, that printer's print keys are revoked and
    ///   its shares deleted. Unless the older claim was this user's, the
    ///   printer's messages (history and queue) are deleted: they belonged
    ///   to whoever had it before.
    /// * A code this user claimed before: if it is still the newest claim
    ///   for its xor, the claim is renamed (and its printers relinked);
    ///   otherwise [`ClaimError::Superseded`].
    /// * A code another user claimed: [`ClaimError::AlreadyClaimed`].
    ///
    /// One transaction, one write.
    pub fn claim(
        &self,
        user_id: i64,
        code: &ClaimCode,
        name: &str,
        now: i64,
    ) -> Result<ClaimOutcome, ClaimError> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(ClaimError::InvalidName);
        }
        let xor = code.hardware_xor();
        let canonical = code.to_string();

        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let user_known = tx
            .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
            .query_row([user_id], |_| Ok(()))
            .optional()?
            .is_some();
        if !user_known {
            return Err(ClaimError::UnknownUser);
        }

        let existing: Option<(i64, i64)> = tx
            .prepare_cached("SELECT id, user_id FROM claims WHERE code = ?1")?
            .query_row([&canonical], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let claim_id = match existing {
            Some((_, owner)) if owner != user_id => return Err(ClaimError::AlreadyClaimed),
            Some((id, _)) => {
                let newest: i64 = tx
                    .prepare_cached("SELECT max(id) FROM claims WHERE hardware_xor = ?1")?
                    .query_row([xor], |row| row.get(0))?;
                if newest != id {
                    return Err(ClaimError::Superseded);
                }
                tx.prepare_cached("UPDATE claims SET name = ?2 WHERE id = ?1")?
                    .execute(rusqlite::params![id, name])?;
                id
            }
            None => {
                let previous_owner: Option<i64> = tx
                    .prepare_cached(
                        "SELECT user_id FROM claims WHERE hardware_xor = ?1 ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row([xor], |row| row.get(0))
                    .optional()?;
                if previous_owner != Some(user_id) {
                    // A new owner (or the printer's owner was deleted):
                    // the history and the queue were someone else's.
                    delete_messages(&tx, xor)?;
                }
                if previous_owner.is_some_and(|owner| owner != user_id) {
                    // A new owner: what the old one handed out stops working.
                    revoke_keys_and_shares(&tx, xor, now)?;
                }
                tx.prepare_cached(
                    "INSERT INTO claims (user_id, hardware_xor, code, name, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(rusqlite::params![user_id, xor, canonical, name, now])?;
                tx.last_insert_rowid()
            }
        };

        // The newest claim for a xor owns every printer with that xor.
        tx.prepare_cached(
            "UPDATE printers SET claim_id = ?1
             WHERE hardware_xor = ?2 AND claim_id IS NOT ?1",
        )?
        .execute(rusqlite::params![claim_id, xor])?;
        let printers_linked = tx
            .prepare_cached("SELECT address FROM printers WHERE claim_id = ?1 ORDER BY id")?
            .query_map([claim_id], |row| row.get(0))?
            .collect::<Result<Vec<DeviceAddress>, _>>()?;
        tx.commit()?;
        self.wrote();
        Ok(ClaimOutcome {
            claim_id,
            printers_linked,
        })
    }

    /// [`Store::claim`] for the user with this username (case does not
    /// matter); [`ClaimError::UnknownUser`] if there is none.
    pub fn claim_by_name(
        &self,
        username: &str,
        code: &ClaimCode,
        name: &str,
        now: i64,
    ) -> Result<ClaimOutcome, ClaimError> {
        let user = self
            .user_by_name(username)?
            .ok_or(ClaimError::UnknownUser)?;
        self.claim(user.id, code, name, now)
    }
}

/// A printer changes hands (a claim by someone else, its owner removed it
/// or was deleted): the print keys of every printer with this hardware xor
/// are revoked and its shares deleted.
pub(super) fn revoke_keys_and_shares(
    tx: &rusqlite::Transaction<'_>,
    xor: impl rusqlite::ToSql,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE print_keys SET revoked_at = ?2
         WHERE revoked_at IS NULL
           AND printer_id IN (SELECT id FROM printers WHERE hardware_xor = ?1)",
    )?
    .execute(rusqlite::params![&xor, now])?;
    tx.prepare_cached("DELETE FROM shares WHERE hardware_xor = ?1")?
        .execute([&xor])?;
    Ok(())
}

/// The messages (history and queue) of every printer with this hardware
/// xor are deleted: they belonged to whoever had it before.
pub(super) fn delete_messages(
    tx: &rusqlite::Transaction<'_>,
    xor: impl rusqlite::ToSql,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "DELETE FROM messages
         WHERE printer_id IN (SELECT id FROM printers WHERE hardware_xor = ?1)",
    )?
    .execute([xor])?;
    Ok(())
}

/// No claim owns this hardware any more: its printers are unlinked and
/// every claim on it deleted (so an old code is no longer anyone's).
pub(super) fn unclaim(
    tx: &rusqlite::Transaction<'_>,
    xor: impl rusqlite::ToSql,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE printers SET claim_id = NULL WHERE hardware_xor = ?1")?
        .execute([&xor])?;
    tx.prepare_cached("DELETE FROM claims WHERE hardware_xor = ?1")?
        .execute([&xor])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClaimSecret, HardwareXor};

    /// The xor of the PROTOCOL example address 000d6f000273ce0b.
    const XOR: u32 = 7586148;

    fn code(xor: u32, secret: u64) -> ClaimCode {
        ClaimCode::new(
            HardwareXor::new(xor).unwrap(),
            ClaimSecret::new(secret).unwrap(),
        )
    }

    /// The printer before its reset.
    fn first_address() -> DeviceAddress {
        let a = DeviceAddress::parse("000d6f000273ce0b").unwrap();
        assert_eq!(a.hardware_xor().value(), XOR);
        a
    }

    /// The same printer after a reset: a new address with the same xor.
    /// Reversed, the bytes of 000d6f000273ce0b are b0..b7 = 0b ce 73 02 00
    /// 6f 0d 00; x1 = b1^b3^b6, so flipping the same bit in b3 and b6 keeps
    /// the xor: 02 → 12 and 0d → 1d.
    fn reset_address() -> DeviceAddress {
        let a = DeviceAddress::parse("001d6f001273ce0b").unwrap();
        assert_ne!(a, first_address());
        assert_eq!(a.hardware_xor().value(), XOR);
        a
    }

    struct Fixture {
        store: Store,
        alice: i64,
        bob: i64,
    }

    fn fixture() -> Fixture {
        let store = Store::open_in_memory().unwrap();
        let alice = store.create_user("alice", None, 0).unwrap().id;
        let bob = store.create_user("bob", None, 0).unwrap().id;
        Fixture { store, alice, bob }
    }

    #[test]
    fn claim_before_the_printer_calls_home() {
        let Fixture { store, alice, .. } = fixture();
        let code = code(XOR, 0xeb1ba696a0);
        let outcome = store.claim(alice, &code, " Kitchen ", 10).unwrap();
        assert!(outcome.printers_linked.is_empty());

        let p = store.ensure_printer(first_address(), 20).unwrap();
        assert_eq!(p.claim_id, Some(outcome.claim_id));
        assert_eq!(p.owner_id, Some(alice));
        assert_eq!(p.owner.as_deref(), Some("alice"));
        assert_eq!(p.name.as_deref(), Some("Kitchen"));
        assert_eq!(
            store.link_key_for(first_address()).unwrap(),
            Some(code.link_key())
        );
        assert_eq!(store.user_by_id(alice).unwrap().unwrap().printer_count, 1);
    }

    #[test]
    fn claim_after_the_printer_called_home() {
        let Fixture { store, alice, .. } = fixture();
        let unclaimed = store.ensure_printer(first_address(), 5).unwrap();
        assert_eq!(unclaimed.claim_id, None);
        assert_eq!(store.link_key_for(first_address()).unwrap(), None);

        let code = code(XOR, 0x1234);
        let outcome = store.claim(alice, &code, "Desk", 10).unwrap();
        assert_eq!(outcome.printers_linked, [first_address()]);
        let p = store.printer_by_address(first_address()).unwrap().unwrap();
        assert_eq!(p.owner_id, Some(alice));
        assert_eq!(p.name.as_deref(), Some("Desk"));
        assert_eq!(p.first_seen, 5);
        assert_eq!(
            store.link_key_for(first_address()).unwrap(),
            Some(code.link_key())
        );
    }

    #[test]
    fn the_same_code_by_another_user_is_refused() {
        let Fixture { store, alice, bob } = fixture();
        store.ensure_printer(first_address(), 0).unwrap();
        let code = code(XOR, 0x1234);
        let first = store.claim(alice, &code, "Desk", 10).unwrap();
        let writes = store.writes();

        let err = store.claim(bob, &code, "Mine now", 11).unwrap_err();
        assert!(matches!(err, ClaimError::AlreadyClaimed), "{err:?}");
        assert!(
            err.to_string()
                .contains("already been claimed by someone else")
        );
        assert_eq!(store.writes(), writes, "a refused claim writes nothing");
        let p = store.printer_by_address(first_address()).unwrap().unwrap();
        assert_eq!((p.owner_id, p.name.as_deref()), (Some(alice), Some("Desk")));

        // The same user again: idempotent, renames.
        let again = store.claim(alice, &code, "Study", 12).unwrap();
        assert_eq!(again, first);
        let p = store.printer_by_address(first_address()).unwrap().unwrap();
        assert_eq!(p.name.as_deref(), Some("Study"));
        // The code is matched in canonical form whatever way it was typed.
        let typed = ClaimCode::parse(&code.to_string().to_uppercase().replace('-', " ")).unwrap();
        assert!(matches!(
            store.claim(bob, &typed, "x", 13),
            Err(ClaimError::AlreadyClaimed)
        ));
    }

    #[test]
    fn a_reset_printer_goes_to_a_new_owner() {
        let Fixture { store, alice, bob } = fixture();
        let old_code = code(XOR, 0x1111);
        store.claim(alice, &old_code, "Alice's", 10).unwrap();
        store.ensure_printer(first_address(), 11).unwrap();

        // Alice gives the printer away; it is reset: new code, new address.
        let new_code = code(XOR, 0x2222);
        store.ensure_printer(reset_address(), 20).unwrap();
        let outcome = store.claim(bob, &new_code, "Bob's", 21).unwrap();
        assert_eq!(outcome.printers_linked, [first_address(), reset_address()]);

        let p = store.printer_by_address(reset_address()).unwrap().unwrap();
        assert_eq!(
            (p.owner.as_deref(), p.name.as_deref()),
            (Some("bob"), Some("Bob's"))
        );
        assert_eq!(
            store.link_key_for(reset_address()).unwrap(),
            Some(new_code.link_key())
        );
        assert_ne!(new_code.link_key(), old_code.link_key());
        // The old address follows the newest claim too.
        let old = store.printer_by_address(first_address()).unwrap().unwrap();
        assert_eq!(old.owner_id, Some(bob));
        assert_eq!(store.user_by_id(alice).unwrap().unwrap().printer_count, 0);
        assert_eq!(store.user_by_id(bob).unwrap().unwrap().printer_count, 2);

        // An address seen for the first time after the new claim is Bob's.
        let later = DeviceAddress::parse("002d6f002273ce0b").unwrap();
        assert_eq!(later.hardware_xor().value(), XOR);
        assert_eq!(store.ensure_printer(later, 30).unwrap().owner_id, Some(bob));
    }

    #[test]
    fn an_old_code_cannot_take_the_printer_back() {
        let Fixture { store, alice, bob } = fixture();
        let old_code = code(XOR, 0x1111);
        let new_code = code(XOR, 0x2222);
        store.claim(alice, &old_code, "Alice's", 10).unwrap();
        store.ensure_printer(first_address(), 11).unwrap();
        store.ensure_printer(reset_address(), 20).unwrap();
        let bobs = store.claim(bob, &new_code, "Bob's", 21).unwrap();
        let writes = store.writes();

        let err = store.claim(alice, &old_code, "Mine again", 30).unwrap_err();
        assert!(matches!(err, ClaimError::Superseded), "{err:?}");
        assert!(err.to_string().contains("out of date"), "{err}");
        assert_eq!(store.writes(), writes);
        for address in [first_address(), reset_address()] {
            let p = store.printer_by_address(address).unwrap().unwrap();
            assert_eq!(p.claim_id, Some(bobs.claim_id));
            assert_eq!(p.name.as_deref(), Some("Bob's"));
        }
        assert_eq!(
            store.link_key_for(reset_address()).unwrap(),
            Some(new_code.link_key())
        );
        // Nor can Bob use Alice's old code.
        assert!(matches!(
            store.claim(bob, &old_code, "x", 31),
            Err(ClaimError::AlreadyClaimed)
        ));
    }

    #[test]
    fn claims_for_other_printers_do_not_interfere() {
        let Fixture { store, alice, bob } = fixture();
        store.ensure_printer(first_address(), 0).unwrap();
        store.claim(alice, &code(XOR, 1), "A", 1).unwrap();
        let other = store.claim(bob, &code(XOR + 1, 1), "B", 2).unwrap();
        assert!(other.printers_linked.is_empty());
        let p = store.printer_by_address(first_address()).unwrap().unwrap();
        assert_eq!(p.owner_id, Some(alice));
    }

    #[test]
    fn names_and_users_are_checked() {
        let Fixture { store, alice, .. } = fixture();
        let c = code(XOR, 1);
        for bad in ["", "   ", &"n".repeat(65)] {
            assert!(matches!(
                store.claim(alice, &c, bad, 0),
                Err(ClaimError::InvalidName)
            ));
        }
        store.claim(alice, &c, &"é".repeat(64), 0).unwrap();
        assert!(matches!(
            store.claim(alice + 100, &code(XOR, 2), "x", 0),
            Err(ClaimError::UnknownUser)
        ));
        assert!(matches!(
            store.claim_by_name("nobody", &code(XOR, 2), "x", 0),
            Err(ClaimError::UnknownUser)
        ));
        let by_name = store
            .claim_by_name("ALICE", &code(XOR, 3), "Hall", 0)
            .unwrap();
        let p = store.ensure_printer(first_address(), 0).unwrap();
        assert_eq!(p.claim_id, Some(by_name.claim_id));
        assert_eq!(p.owner_id, Some(alice));
    }
}
