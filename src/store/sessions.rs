//! Sessions: the browsers signed in to the web app.
//!
//! Owns the `sessions` table. The cookie holds a random id made by the web
//! layer from the OS random generator; only its SHA-256 is stored, so a
//! copy of the database signs nobody in. A session belongs to one user,
//! carries the CSRF token of that browser's forms, and expires
//! [`SESSION_DAYS`] after it was last used (rolling; the expiry is pushed on
//! at most once an hour, see [`Store::touch_session`]). A disabled or
//! deleted user's sessions stop working.

use rusqlite::{OptionalExtension, Row, params};

use super::users::User;
use super::{Store, StoreError, sha256_hex};

/// A session lives this many days after its last use.
pub const SESSION_DAYS: i64 = 30;

/// How often (seconds) a used session's expiry is written again.
pub const TOUCH_EVERY: i64 = 3600;

/// A signed-in browser (never its id: only the hash is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The SHA-256 of the cookie's id, lowercase hex.
    pub id_hash: String,
    pub user_id: i64,
    /// The token every state-changing form of this browser carries.
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

const SESSION_COLUMNS: &str = "s.id_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, s.user_agent, s.ip";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id_hash: row.get(0)?,
        user_id: row.get(1)?,
        csrf_token: row.get(2)?,
        created_at: row.get(3)?,
        last_seen_at: row.get(4)?,
        expires_at: row.get(5)?,
        user_agent: row.get(6)?,
        ip: row.get(7)?,
    })
}

/// Keeps a client-given text short enough to store.
fn short(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect())
}

impl Store {
    /// Stores a new session for `user_id` under the hash of `id` (made by
    /// the caller from the OS random generator), expiring
    /// [`SESSION_DAYS`] from `now`. Also deletes expired sessions.
    #[allow(clippy::too_many_arguments)]
    pub fn create_session(
        &self,
        id: &str,
        user_id: i64,
        csrf_token: &str,
        user_agent: Option<&str>,
        ip: Option<&str>,
        now: i64,
    ) -> Result<SessionRow, StoreError> {
        let row = SessionRow {
            id_hash: sha256_hex(id),
            user_id,
            csrf_token: csrf_token.to_string(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_DAYS * 86400,
            user_agent: short(user_agent, 200),
            ip: short(ip, 64),
        };
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now])?;
        tx.prepare_cached(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at,
                expires_at, user_agent, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            row.id_hash,
            row.user_id,
            row.csrf_token,
            row.created_at,
            row.last_seen_at,
            row.expires_at,
            row.user_agent,
            row.ip
        ])?;
        tx.commit()?;
        self.wrote();
        Ok(row)
    }

    /// The live session with the cookie id `id` and its user: `None` when
    /// unknown, expired, or its user is disabled.
    pub fn session(&self, id: &str, now: i64) -> Result<Option<(SessionRow, User)>, StoreError> {
        let conn = self.reader();
        let found = conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id_hash = ?1 AND s.expires_at > ?2"
            ))?
            .query_row(params![sha256_hex(id), now], session_from_row)
            .optional()?;
        drop(conn);
        let Some(session) = found else {
            return Ok(None);
        };
        match self.user_by_id(session.user_id)? {
            Some(user) if user.disabled_at.is_none() => Ok(Some((session, user))),
            _ => Ok(None),
        }
    }

    /// Records that a session was used at `now`: pushes its expiry to
    /// [`SESSION_DAYS`] from now. The caller does this at most once per
    /// [`TOUCH_EVERY`] (see [`SessionRow::needs_touch`]).
    pub fn touch_session(
        &self,
        id_hash: &str,
        now: i64,
        ip: Option<&str>,
    ) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE sessions SET last_seen_at = ?2, expires_at = ?3, ip = coalesce(?4, ip)
                 WHERE id_hash = ?1",
            )?
            .execute(params![
                id_hash,
                now,
                now + SESSION_DAYS * 86400,
                short(ip, 64)
            ])?;
        self.wrote();
        Ok(())
    }

    /// Ends one session (signing out), given by its cookie id.
    pub fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_session_by_hash(&sha256_hex(id))
    }

    /// Ends one session, given by the hash the account page shows.
    pub fn delete_session_by_hash(&self, id_hash: &str) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
            .execute([id_hash])?;
        self.wrote();
        Ok(n > 0)
    }

    /// Ends every session of a user ("sign out everywhere"), but `keep`
    /// (a hash) if given. Returns how many ended.
    pub fn delete_sessions_of(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<usize, StoreError> {
        let n = self
            .lock()
            .prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND id_hash IS NOT ?2")?
            .execute(params![user_id, keep])?;
        self.wrote();
        Ok(n)
    }

    /// A user's live sessions, most recently used first.
    pub fn sessions_of(&self, user_id: i64, now: i64) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = ?1 AND s.expires_at > ?2
             ORDER BY s.last_seen_at DESC, s.created_at DESC"
        ))?;
        let rows = stmt
            .query_map(params![user_id, now], session_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

impl SessionRow {
    /// Whether the last recorded use is old enough to write a new one.
    pub fn needs_touch(&self, now: i64) -> bool {
        now - self.last_seen_at >= TOUCH_EVERY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_finds_its_user_until_it_expires_or_ends() {
        let store = Store::open_in_memory().unwrap();
        let u = store.create_user("ada", None, 0).unwrap();
        let s = store
            .create_session(
                "cookie-id",
                u.id,
                "tok",
                Some("Firefox"),
                Some("10.0.0.2"),
                100,
            )
            .unwrap();
        assert_eq!(s.expires_at, 100 + 30 * 86400);
        let stored: String = store
            .lock()
            .query_row("SELECT id_hash FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, "cookie-id", "only the hash is stored");
        let (found, user) = store.session("cookie-id", 200).unwrap().unwrap();
        assert_eq!((found.csrf_token.as_str(), user.id), ("tok", u.id));
        assert!(store.session("other", 200).unwrap().is_none());
        assert!(store.session("cookie-id", s.expires_at).unwrap().is_none());

        // Rolling: a touch pushes the expiry on.
        store.touch_session(&s.id_hash, 5000, None).unwrap();
        assert!(
            store
                .session("cookie-id", s.expires_at + 10)
                .unwrap()
                .is_some()
        );

        store.set_disabled(u.id, Some(300)).unwrap();
        assert!(store.session("cookie-id", 301).unwrap().is_none());
        assert!(store.sessions_of(u.id, 301).unwrap().is_empty());
    }

    #[test]
    fn sign_out_everywhere_keeps_only_the_current_session() {
        let store = Store::open_in_memory().unwrap();
        let u = store.create_user("ada", None, 0).unwrap();
        let other = store.create_user("bob", None, 0).unwrap();
        let keep = store.create_session("a", u.id, "t", None, None, 1).unwrap();
        store.create_session("b", u.id, "t", None, None, 2).unwrap();
        store.create_session("c", u.id, "t", None, None, 3).unwrap();
        store
            .create_session("d", other.id, "t", None, None, 3)
            .unwrap();
        assert_eq!(store.sessions_of(u.id, 10).unwrap().len(), 3);
        assert_eq!(
            store.delete_sessions_of(u.id, Some(&keep.id_hash)).unwrap(),
            2
        );
        let left = store.sessions_of(u.id, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id_hash, keep.id_hash);
        assert!(store.session("d", 10).unwrap().is_some());
        assert!(store.delete_session("a").unwrap());
        assert!(store.session("a", 10).unwrap().is_none());
    }
}
