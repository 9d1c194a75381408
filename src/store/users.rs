//! Users: the people who claim printers and log in to the web app.
//!
//! Owns the `users` table: creating accounts (usernames are checked here and
//! unique regardless of case), looking them up, and passwords, which are
//! kept only as argon2id hashes (PHC strings, default parameters, a random
//! salt from the operating system).

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rusqlite::{OptionalExtension, Row};

use super::{Store, StoreError};

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

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
}

/// The columns [`user_from_row`] reads, from `users u`.
const USER_COLUMNS: &str = "u.id, u.username, u.password_hash IS NOT NULL, u.created_at,
    (SELECT count(*) FROM printers p JOIN claims c ON c.id = p.claim_id WHERE c.user_id = u.id)";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        has_password: row.get(2)?,
        created_at: row.get(3)?,
        // A count is never negative.
        printer_count: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
    })
}

/// Checks a username and returns it trimmed.
fn valid_username(name: &str) -> Result<&str, StoreError> {
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

/// Hashes a password with argon2id, default parameters and a fresh salt
/// from the operating system's random generator.
fn hash_password(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::PasswordHash(e.to_string()))
}

/// Whether `password` matches a stored PHC string. A string that doesn't
/// parse matches nothing.
fn password_matches(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
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
        })
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
        let found = {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = ?1"
            ))?;
            stmt.query_row([username.trim()], |row| {
                Ok((user_from_row(row)?, row.get::<_, Option<String>>(5)?))
            })
            .optional()?
        };
        // Hashing happens outside the lock.
        match found {
            Some((user, Some(hash))) => Ok(password_matches(password, &hash).then_some(user)),
            _ => {
                if let Some(dummy) = dummy_hash() {
                    password_matches(password, dummy);
                }
                Ok(None)
            }
        }
    }
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
