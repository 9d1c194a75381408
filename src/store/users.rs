//! Users: the people who claim printers and log in to the web app.
//!
//! Owns the `users` table: creating accounts (usernames are checked here and
//! unique regardless of case), looking them up, administrators, disabled
//! accounts, deleting an account (its printers become unclaimed), API keys,
//! and passwords, which are kept only as argon2id hashes (PHC strings, a
//! random salt from the operating system; parameters in [`argon2id`]).
//!
//! Hashing is slow on purpose (tens of milliseconds on a Raspberry Pi):
//! async code hashes through [`super::Db::read`] or `spawn_blocking` with
//! [`hash_password`], then stores the hash with a write that takes no time
//! ([`Store::create_user_hashed`], [`Store::set_password_hash`]).

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rusqlite::{OptionalExtension, Row};

use super::{Store, StoreError};

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// The shortest password the web app and `sirius user` accept, in
/// characters. There are no other rules.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The longest password accepted, in bytes: enough for any passphrase or
/// password manager, small enough that hashing stays cheap.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// An account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The row id.
    pub id: i64,
    /// As the user typed it (trimmed); unique regardless of case.
    pub username: String,
    /// Whether a password is set (without one, password login is refused).
    pub has_password: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// How many printers (device addresses) this user owns through claims.
    pub printer_count: u64,
    /// May manage users and invites, and sees every bridge and printer.
    pub is_admin: bool,
    /// When an admin disabled the account (it can't sign in), if so.
    pub disabled_at: Option<i64>,
    /// The first characters of the user's API key, if one was made.
    pub api_key_prefix: Option<String>,
}

/// The columns [`user_from_row`] reads, from `users u`.
const USER_COLUMNS: &str = "u.id, u.username, u.password_hash IS NOT NULL, u.created_at,
    (SELECT count(*) FROM printers p JOIN claims c ON c.id = p.claim_id WHERE c.user_id = u.id),
    u.is_admin, u.disabled_at, u.api_key_prefix";

/// The index of the first column after [`USER_COLUMNS`].
const AFTER_USER_COLUMNS: usize = 8;

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        has_password: row.get(2)?,
        created_at: row.get(3)?,
        // A count is never negative.
        printer_count: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
        is_admin: row.get(5)?,
        disabled_at: row.get(6)?,
        api_key_prefix: row.get(7)?,
    })
}

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters, at
/// most [`MAX_PASSWORD_BYTES`] bytes. No other rules.
pub fn check_new_password(password: &str) -> Result<(), StoreError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(StoreError::InvalidPassword(format!(
            "it has {chars} characters; use at least {MIN_PASSWORD_CHARS}"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(StoreError::InvalidPassword(format!(
            "it is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks a username and returns it trimmed.
pub(super) fn valid_username(name: &str) -> Result<&str, StoreError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(StoreError::InvalidUsername("it is empty".into()));
    }
    if chars > MAX_USERNAME_CHARS {
        return Err(StoreError::InvalidUsername(format!(
            "it has {chars} characters, at most {MAX_USERNAME_CHARS} are allowed"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(StoreError::InvalidUsername(format!(
            "{bad:?} is not allowed; use letters a-z, digits, '.', '_' and '-'"
        )));
    }
    Ok(name)
}

/// The password hasher: argon2id (version 0x13) with 19 MiB of memory
/// (m = 19456 KiB), 2 passes (t = 2) and 1 lane (p = 1) — the OWASP
/// recommendation for argon2id. It fits a Raspberry Pi: one hash takes
/// about 40 ms on a Pi 4 and 150 ms on a Pi Zero 2 (about 20 ms on a
/// desktop), and 19 MiB per concurrent sign-in stays far below the Pi's
/// memory even for a burst of them. The parameters are stored in every
/// hash, so changing them later keeps old passwords working.
pub fn argon2id() -> Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a password with [`argon2id`] and a fresh salt from the operating
/// system's random generator. Slow on purpose: never call it on an async
/// runtime thread.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    argon2id()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::PasswordHash(e.to_string()))
}

/// Whether `password` matches a stored PHC string. A string that doesn't
/// parse matches nothing.
fn password_matches(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2id()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => {
            tracing::warn!("a stored password hash is not a PHC string; refusing the login");
            false
        }
    }
}

/// A hash to check against when there is no real one, so that a login for
/// an unknown user costs about as much as a wrong password.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password("sirius: no such user").ok())
        .as_deref()
}

impl Store {
    /// Creates a user. The username is trimmed and must be 1 to 64
    /// characters of letters a-z (either case), digits, `.`, `_` and `-`
    /// ([`StoreError::InvalidUsername`]); it must not be taken, case aside
    /// ([`StoreError::UsernameTaken`]). A password, if given, must not be
    /// empty and is stored as an argon2id hash.
    pub fn create_user(
        &self,
        username: &str,
        password: Option<&str>,
        now: i64,
    ) -> Result<User, StoreError> {
        let username = valid_username(username)?;
        let hash = match password {
            Some("") => {
                return Err(StoreError::InvalidPassword(
                    "it is empty; give a password or none at all".into(),
                ));
            }
            // Hashing is slow on purpose: do it before taking the lock.
            Some(password) => Some(hash_password(password)?),
            None => None,
        };
        let conn = self.lock();
        let inserted = conn
            .prepare_cached(
                "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute((username, &hash, now));
        match inserted {
            Ok(_) => self.wrote(),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                return Err(StoreError::UsernameTaken(username.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(User {
            id: conn.last_insert_rowid(),
            username: username.to_string(),
            has_password: hash.is_some(),
            created_at: now,
            printer_count: 0,
            is_admin: false,
            disabled_at: None,
            api_key_prefix: None,
        })
    }

    /// Creates a user whose password was already hashed with
    /// [`hash_password`] (or none), an administrator if `is_admin`. With
    /// `only_if_first`, the user is created only while no user exists
    /// (checked in the same transaction): `Ok(None)` when someone was
    /// first. Usernames are checked as in [`Store::create_user`].
    pub fn create_user_hashed(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: bool,
        only_if_first: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let username = valid_username(username)?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if only_if_first {
            let any: i64 = tx.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
            if any > 0 {
                return Ok(None);
            }
        }
        let user = insert_user(&tx, username, password_hash, is_admin, now)?;
        tx.commit()?;
        self.wrote();
        Ok(Some(user))
    }

    /// How many users exist.
    pub fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .reader()
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Sets (or, with `None`, removes) a user's password hash, made with
    /// [`hash_password`]. Returns whether the user exists.
    pub fn set_password_hash(&self, user_id: i64, hash: Option<&str>) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
            .execute(rusqlite::params![user_id, hash])?;
        self.wrote();
        Ok(n > 0)
    }

    /// Makes a user an administrator or not. Refuses to take the last
    /// working administrator's rights away ([`StoreError::LastAdmin`]).
    /// Returns whether the user exists.
    pub fn set_admin(&self, user_id: i64, is_admin: bool) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if !is_admin {
            last_admin_guard(&tx, user_id)?;
        }
        let n = tx
            .prepare_cached("UPDATE users SET is_admin = ?2 WHERE id = ?1")?
            .execute(rusqlite::params![user_id, is_admin])?;
        tx.commit()?;
        self.wrote();
        Ok(n > 0)
    }

    /// Disables a user (`Some(now)`: they can't sign in, their sessions
    /// end, their API key stops working; their printers keep printing) or
    /// enables them again (`None`). Refuses to disable the last working
    /// administrator. Returns whether the user exists.
    pub fn set_disabled(&self, user_id: i64, disabled_at: Option<i64>) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if disabled_at.is_some() {
            last_admin_guard(&tx, user_id)?;
            tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
                .execute([user_id])?;
        }
        let n = tx
            .prepare_cached("UPDATE users SET disabled_at = ?2 WHERE id = ?1")?
            .execute(rusqlite::params![user_id, disabled_at])?;
        tx.commit()?;
        self.wrote();
        Ok(n > 0)
    }

    /// The printers a user owns (through their newest claims): what
    /// [`Store::delete_user`] would set free.
    pub fn printers_owned_by(&self, user_id: i64) -> Result<Vec<super::PrinterRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "{} WHERE c.user_id = ?1 ORDER BY p.id",
            super::printers::PRINTER_SELECT
        ))?;
        let rows = stmt
            .query_map([user_id], super::printers::printer_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A user's claims that no printer follows yet (the printer has not
    /// called home since it was claimed): claim id, name, when.
    pub fn claims_waiting(&self, user_id: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT c.id, c.name, c.created_at FROM claims c
             WHERE c.user_id = ?1
               AND c.id = (SELECT max(id) FROM claims WHERE hardware_xor = c.hardware_xor)
               AND NOT EXISTS (SELECT 1 FROM printers p WHERE p.claim_id = c.id)
             ORDER BY c.id",
        )?;
        let rows = stmt
            .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Deletes a user, in one transaction. Their printers become unclaimed
    /// (the print keys of those printers are revoked and their shares end;
    /// the printers' message history stays with the printer); their claims
    /// go, and with them the older, superseded claims on the same printers,
    /// so an old code can't take a freed printer; their sessions, invites
    /// they used, Twitter link and shares to them go; messages they sent
    /// stay, without a sender account. Refuses to delete the last working
    /// administrator. Returns whether the user existed.
    pub fn delete_user(&self, user_id: i64, now: i64) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        last_admin_guard(&tx, user_id)?;
        // The hardware of every printer this user holds the newest claim for.
        let xors: Vec<i64> = tx
            .prepare_cached(
                "SELECT c.hardware_xor FROM claims c WHERE c.user_id = ?1
                   AND c.id = (SELECT max(id) FROM claims WHERE hardware_xor = c.hardware_xor)",
            )?
            .query_map([user_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for &xor in &xors {
            super::claims::revoke_keys_and_shares(&tx, xor, now)?;
            super::claims::unclaim(&tx, xor)?;
        }
        // Claims of theirs that others' newer claims replaced: no printer
        // follows them.
        tx.prepare_cached("UPDATE printers SET claim_id = NULL WHERE claim_id IN (SELECT id FROM claims WHERE user_id = ?1)")?
            .execute([user_id])?;
        tx.prepare_cached("DELETE FROM claims WHERE user_id = ?1")?
            .execute([user_id])?;
        tx.prepare_cached("UPDATE print_keys SET created_by = NULL WHERE created_by = ?1")?
            .execute([user_id])?;
        let n = tx
            .prepare_cached("DELETE FROM users WHERE id = ?1")?
            .execute([user_id])?;
        tx.commit()?;
        self.wrote();
        Ok(n > 0)
    }

    /// Stores the SHA-256 (and prefix) of a new API key for a user,
    /// replacing the old one. The caller makes the key from the OS random
    /// generator and shows it once.
    pub fn set_api_key(&self, user_id: i64, key: &str) -> Result<(), StoreError> {
        let prefix: String = key.chars().take(super::print_keys::PREFIX_CHARS).collect();
        self.lock()
            .prepare_cached(
                "UPDATE users SET api_key_hash = ?2, api_key_prefix = ?3 WHERE id = ?1",
            )?
            .execute(rusqlite::params![user_id, super::sha256_hex(key), prefix])?;
        self.wrote();
        Ok(())
    }

    /// The working (not disabled) user whose API key this is.
    pub fn user_by_api_key(&self, key: &str) -> Result<Option<User>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.api_key_hash = ?1 AND u.disabled_at IS NULL"
        ))?;
        Ok(stmt
            .query_row([super::sha256_hex(key)], user_from_row)
            .optional()?)
    }

    /// The user with this name (trimmed; case does not matter).
    pub fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?1"
        ))?;
        Ok(stmt.query_row([name.trim()], user_from_row).optional()?)
    }

    /// The user with this id.
    pub fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"
        ))?;
        Ok(stmt.query_row([id], user_from_row).optional()?)
    }

    /// Every user, by username (case aside), each with the number of
    /// printers they own.
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.username, u.id"
        ))?;
        let users = stmt
            .query_map([], user_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(users)
    }

    /// The user, if `password` is theirs. `None` when the user is unknown,
    /// has no password, or the password is wrong; the work done is about the
    /// same in every case, so timing does not tell which usernames exist.
    pub fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let found = self.password_hash_of(username)?;
        // Hashing happens outside the lock.
        Ok(check_password(found, password))
    }

    /// A user and their stored password hash, by username (a quick read;
    /// [`check_password`] does the slow part).
    pub fn password_hash_of(
        &self,
        username: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = ?1"
        ))?;
        Ok(stmt
            .query_row([username.trim()], |row| {
                Ok((
                    user_from_row(row)?,
                    row.get::<_, Option<String>>(AFTER_USER_COLUMNS)?,
                ))
            })
            .optional()?)
    }
}

/// The user if `password` matches what [`Store::password_hash_of`] found.
/// Slow on purpose (argon2): never call it on an async runtime thread. An
/// unknown user, or one without a password, costs about as much as a wrong
/// password and matches nothing.
pub fn check_password(found: Option<(User, Option<String>)>, password: &str) -> Option<User> {
    match found {
        Some((user, Some(hash))) => password_matches(password, &hash).then_some(user),
        _ => {
            if let Some(dummy) = dummy_hash() {
                password_matches(password, dummy);
            }
            None
        }
    }
}

/// Inserts a user (the username already checked by [`valid_username`]).
pub(super) fn insert_user(
    conn: &rusqlite::Connection,
    username: &str,
    password_hash: Option<&str>,
    is_admin: bool,
    now: i64,
) -> Result<User, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (username, password_hash, created_at, is_admin)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute((username, password_hash, now, is_admin));
    match inserted {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            return Err(StoreError::UsernameTaken(username.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(User {
        id: conn.last_insert_rowid(),
        username: username.to_string(),
        has_password: password_hash.is_some(),
        created_at: now,
        printer_count: 0,
        is_admin,
        disabled_at: None,
        api_key_prefix: None,
    })
}

/// Refuses to take away the last working administrator (one who is an
/// admin and not disabled) when `user_id` is that one.
fn last_admin_guard(conn: &rusqlite::Connection, user_id: i64) -> Result<(), StoreError> {
    let (is_working_admin, working_admins): (bool, i64) = conn
        .prepare_cached(
            "SELECT coalesce((SELECT is_admin AND disabled_at IS NULL FROM users WHERE id = ?1), 0),
                    (SELECT count(*) FROM users WHERE is_admin AND disabled_at IS NULL)",
        )?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if is_working_admin && working_admins <= 1 {
        return Err(StoreError::LastAdmin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_finds_users_regardless_of_case() {
        let store = Store::open_in_memory().unwrap();
        let alice = store.create_user("  Alice ", None, 100).unwrap();
        assert_eq!(alice.username, "Alice");
        assert!(!alice.has_password);
        assert_eq!(alice.created_at, 100);
        assert_eq!(store.user_by_name("alice").unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name(" ALICE").unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_id(alice.id).unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name("bob").unwrap(), None);
        assert_eq!(store.user_by_id(alice.id + 1).unwrap(), None);
    }

    #[test]
    fn usernames_are_checked() {
        let store = Store::open_in_memory().unwrap();
        for bad in ["", "   ", "a b", "émile", "x/y", &"a".repeat(65)] {
            assert!(
                matches!(
                    store.create_user(bad, None, 0),
                    Err(StoreError::InvalidUsername(_))
                ),
                "{bad:?}"
            );
        }
        for good in ["a", "A.b_c-d", "0", &"z".repeat(64)] {
            store.create_user(good, None, 0).unwrap();
        }
        let err = store.create_user("a b", None, 0).unwrap_err().to_string();
        assert!(err.contains("' '"), "{err}");
    }

    #[test]
    fn a_taken_username_is_refused_whatever_its_case() {
        let store = Store::open_in_memory().unwrap();
        store.create_user("alice", None, 0).unwrap();
        match store.create_user("ALICE", None, 0) {
            Err(StoreError::UsernameTaken(name)) => assert_eq!(name, "ALICE"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.list_users().unwrap().len(), 1);
        assert_eq!(store.writes(), 1, "a refused insert wrote nothing");
    }

    #[test]
    fn passwords_are_hashed_and_verified() {
        let store = Store::open_in_memory().unwrap();
        let alice = store.create_user("alice", Some("hunter42"), 0).unwrap();
        assert!(alice.has_password);
        let stored: String = store
            .lock()
            .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("hunter42"));

        assert_eq!(
            store.verify_password("Alice", "hunter42").unwrap(),
            Some(alice)
        );
        assert_eq!(store.verify_password("alice", "hunter43").unwrap(), None);
        assert_eq!(store.verify_password("nobody", "hunter42").unwrap(), None);

        store.create_user("bob", None, 0).unwrap();
        assert_eq!(store.verify_password("bob", "").unwrap(), None);
        assert!(matches!(
            store.create_user("carol", Some(""), 0),
            Err(StoreError::InvalidPassword(_))
        ));
    }

    #[test]
    fn two_hashes_of_one_password_differ() {
        assert_ne!(
            hash_password("same").unwrap(),
            hash_password("same").unwrap()
        );
    }

    #[test]
    fn list_users_is_sorted_and_counts_writes() {
        let store = Store::open_in_memory().unwrap();
        store.create_user("bob", None, 0).unwrap();
        store.create_user("Alice", None, 0).unwrap();
        store.create_user("carol", None, 0).unwrap();
        let names: Vec<_> = store
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["Alice", "bob", "carol"]);
        assert_eq!(store.writes(), 3);
    }
}
