//! Invites: one-time links (`/invite/TOKEN`) that let one person make an
//! account while sign-up is by invitation.
//!
//! Owns the `invites` table. The token is made by the caller from the OS
//! random generator and shown once; only its SHA-256 is kept. An invite
//! works once, for [`INVITE_DAYS`] days, and may make its user an
//! administrator. Using it and creating the account are one transaction, so
//! two people racing for one link can't both get in.

use rusqlite::{OptionalExtension, Row, params};

use super::users::User;
use super::{Store, StoreError, sha256_hex};

/// An invite works this many days.
pub const INVITE_DAYS: i64 = 7;

/// An invite (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRow {
    pub id: i64,
    /// Who made it (`None`: the command line).
    pub created_by: Option<i64>,
    pub created_by_name: Option<String>,
    pub make_admin: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_name: Option<String>,
}

/// Why an invite link can't be used. Written for the person holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteProblem {
    #[error("this invite link is not known here; check that you copied all of it")]
    Unknown,
    #[error("this invite link was already used; ask for a new one")]
    Used,
    #[error("this invite link has expired (they work for 7 days); ask for a new one")]
    Expired,
}

const INVITE_SELECT: &str = "SELECT i.id, i.created_by, c.username, i.make_admin, i.created_at,
        i.expires_at, i.used_at, u.username
    FROM invites i LEFT JOIN users c ON c.id = i.created_by LEFT JOIN users u ON u.id = i.used_by";

fn invite_from_row(row: &Row<'_>) -> rusqlite::Result<InviteRow> {
    Ok(InviteRow {
        id: row.get(0)?,
        created_by: row.get(1)?,
        created_by_name: row.get(2)?,
        make_admin: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        used_at: row.get(6)?,
        used_by_name: row.get(7)?,
    })
}

fn check(row: Option<InviteRow>, now: i64) -> Result<InviteRow, InviteProblem> {
    let row = row.ok_or(InviteProblem::Unknown)?;
    if row.used_at.is_some() {
        return Err(InviteProblem::Used);
    }
    if row.expires_at <= now {
        return Err(InviteProblem::Expired);
    }
    Ok(row)
}

/// The invite with this token, if it can still be used, read on `conn`
/// (a transaction that will use it up with [`use_invite`]).
pub(super) fn usable_invite(
    conn: &rusqlite::Connection,
    token: &str,
    now: i64,
) -> Result<Result<InviteRow, InviteProblem>, StoreError> {
    let row = conn
        .prepare_cached(&format!("{INVITE_SELECT} WHERE i.token_hash = ?1"))?
        .query_row([sha256_hex(token)], invite_from_row)
        .optional()?;
    Ok(check(row, now))
}

/// Marks an invite used by `user_id`.
pub(super) fn use_invite(
    conn: &rusqlite::Connection,
    invite_id: i64,
    user_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE invites SET used_at = ?2, used_by = ?3 WHERE id = ?1")?
        .execute(params![invite_id, now, user_id])?;
    Ok(())
}

impl Store {
    /// Stores a new invite under the hash of `token`, working
    /// [`INVITE_DAYS`] from `now`.
    pub fn create_invite(
        &self,
        token: &str,
        created_by: Option<i64>,
        make_admin: bool,
        now: i64,
    ) -> Result<InviteRow, StoreError> {
        let expires_at = now + INVITE_DAYS * 86400;
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO invites (token_hash, created_by, make_admin, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            sha256_hex(token),
            created_by,
            make_admin,
            now,
            expires_at
        ])?;
        self.wrote();
        let id = conn.last_insert_rowid();
        Ok(conn
            .prepare_cached(&format!("{INVITE_SELECT} WHERE i.id = ?1"))?
            .query_row([id], invite_from_row)?)
    }

    /// The invite with this token, if it can still be used.
    pub fn invite(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Result<InviteRow, InviteProblem>, StoreError> {
        let row = self
            .reader()
            .prepare_cached(&format!("{INVITE_SELECT} WHERE i.token_hash = ?1"))?
            .query_row([sha256_hex(token)], invite_from_row)
            .optional()?;
        Ok(check(row, now))
    }

    /// Uses the invite `token` to create the account `username` with a
    /// password hashed by [`super::users::hash_password`], in one
    /// transaction: the user is an administrator if the invite says so.
    pub fn sign_up_with_invite(
        &self,
        token: &str,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Result<User, InviteProblem>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let invite = match usable_invite(&tx, token, now)? {
            Ok(i) => i,
            Err(problem) => return Ok(Err(problem)),
        };
        let username = super::users::valid_username(username)?;
        let user =
            super::users::insert_user(&tx, username, Some(password_hash), invite.make_admin, now)?;
        use_invite(&tx, invite.id, user.id, now)?;
        tx.commit()?;
        self.wrote();
        Ok(Ok(user))
    }

    /// Invites not used yet and not expired, and those used or expired in
    /// the last 7 days, newest first.
    pub fn list_invites(&self, now: i64) -> Result<Vec<InviteRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "{INVITE_SELECT} WHERE i.expires_at > ?1 - 7 * 86400 ORDER BY i.id DESC LIMIT 200"
        ))?;
        let rows = stmt
            .query_map([now], invite_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Withdraws an invite that was not used yet. Returns whether one was.
    pub fn delete_invite(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached("DELETE FROM invites WHERE id = ?1 AND used_at IS NULL")?
            .execute([id])?;
        self.wrote();
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_works_once_and_only_for_seven_days() {
        let store = Store::open_in_memory().unwrap();
        let admin = store.create_user("admin", None, 0).unwrap();
        let inv = store
            .create_invite("tok-1", Some(admin.id), false, 1000)
            .unwrap();
        assert_eq!(inv.expires_at, 1000 + 7 * 86400);
        assert_eq!(inv.created_by_name.as_deref(), Some("admin"));
        assert!(store.invite("tok-1", 2000).unwrap().is_ok());
        assert_eq!(
            store.invite("tok-2", 2000).unwrap(),
            Err(InviteProblem::Unknown)
        );
        assert_eq!(
            store.invite("tok-1", inv.expires_at).unwrap(),
            Err(InviteProblem::Expired)
        );

        let user = store
            .sign_up_with_invite("tok-1", "bob", "$argon2id$fake", 2000)
            .unwrap()
            .unwrap();
        assert!(!user.is_admin);
        assert_eq!(
            store.invite("tok-1", 2001).unwrap(),
            Err(InviteProblem::Used)
        );
        assert_eq!(
            store
                .sign_up_with_invite("tok-1", "carol", "$argon2id$fake", 2001)
                .unwrap(),
            Err(InviteProblem::Used)
        );
        assert!(store.user_by_name("carol").unwrap().is_none());
        let listed = store.list_invites(2002).unwrap();
        assert_eq!(listed[0].used_by_name.as_deref(), Some("bob"));
    }

    #[test]
    fn an_admin_invite_makes_an_admin_and_a_taken_name_keeps_the_invite() {
        let store = Store::open_in_memory().unwrap();
        store.create_user("bob", None, 0).unwrap();
        store.create_invite("t", None, true, 0).unwrap();
        assert!(matches!(
            store.sign_up_with_invite("t", "BOB", "$argon2id$fake", 1),
            Err(StoreError::UsernameTaken(_))
        ));
        assert!(store.invite("t", 2).unwrap().is_ok(), "still usable");
        let u = store
            .sign_up_with_invite("t", "carol", "$argon2id$fake", 3)
            .unwrap()
            .unwrap();
        assert!(u.is_admin);
        let inv = store.create_invite("u", None, false, 0).unwrap();
        assert!(store.delete_invite(inv.id).unwrap());
        assert_eq!(store.invite("u", 1).unwrap(), Err(InviteProblem::Unknown));
    }
}
