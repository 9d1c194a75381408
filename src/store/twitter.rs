//! Twitter identities: which Twitter account signs into which user
//! ("Sign in with Twitter").
//!
//! Owns the `twitter_identities` table (schema version 4): one row per
//! linked Twitter account, keyed by Twitter's numeric user id (as text:
//! ids exceed 2^53; screen names change, ids don't), at most one per user.
//! The import from the earlier server fills it the same way.
//!
//! * Linking refuses a Twitter account already linked to someone else, and
//!   a user who already has another one (unlink that first).
//! * Unlinking is refused while the user has no password: Twitter would be
//!   their only way in.
//! * A new account made by a Twitter sign-in is named after the screen name
//!   (made to fit our username rules, suffixed `-2`, `-3`… when taken), has
//!   no password, and is linked in the same transaction; with an invite,
//!   the invite is checked and used up in that transaction too.

use rusqlite::{OptionalExtension, Row, params};

use super::invites::InviteProblem;
use super::users::User;
use super::{Store, StoreError};

/// The longest screen name kept (Twitter's are at most 15 characters).
const MAX_SCREEN_NAME_CHARS: usize = 64;

/// A linked Twitter account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwitterIdentity {
    /// Twitter's numeric user id, as text.
    pub twitter_id: String,
    pub user_id: i64,
    /// The screen name when last seen (without `@`).
    pub screen_name: String,
    pub linked_at: i64,
}

/// What linking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked now.
    Linked,
    /// It was already linked to this user (the screen name is refreshed).
    AlreadyYours,
    /// Another user has it linked; nothing changed.
    TakenByOther,
    /// This user has another Twitter account linked (its screen name);
    /// nothing changed.
    UserHasAnother(String),
    /// The user does not exist (deleted meanwhile).
    NoSuchUser,
}

/// What unlinking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlinkOutcome {
    /// Unlinked (the screen name it had).
    Unlinked(String),
    /// Nothing was linked.
    NotLinked,
    /// The user has no password: unlinking would lock them out. Nothing
    /// changed.
    NeedsPassword,
}

/// What a Twitter sign-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwitterSignUp {
    /// A new account, linked.
    Created(User),
    /// The Twitter account was linked meanwhile: this is its user; no
    /// account made, the invite (if any) not used.
    AlreadyLinked(User),
    /// The invite can't be used; nothing changed.
    Invite(InviteProblem),
}

fn identity_from_row(row: &Row<'_>) -> rusqlite::Result<TwitterIdentity> {
    Ok(TwitterIdentity {
        twitter_id: row.get(0)?,
        user_id: row.get(1)?,
        screen_name: row.get(2)?,
        linked_at: row.get(3)?,
    })
}

const IDENTITY_SELECT: &str =
    "SELECT twitter_id, user_id, screen_name, linked_at FROM twitter_identities";

fn screen_name_kept(screen_name: &str) -> String {
    screen_name
        .trim()
        .trim_start_matches('@')
        .chars()
        .take(MAX_SCREEN_NAME_CHARS)
        .collect()
}

impl Store {
    /// The link of this Twitter account, if any.
    pub fn twitter_identity(
        &self,
        twitter_id: &str,
    ) -> Result<Option<TwitterIdentity>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE twitter_id = ?1"))?
            .query_row([twitter_id], identity_from_row)
            .optional()?)
    }

    /// The Twitter account linked to this user, if any.
    pub fn twitter_identity_of(&self, user_id: i64) -> Result<Option<TwitterIdentity>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE user_id = ?1"))?
            .query_row([user_id], identity_from_row)
            .optional()?)
    }

    /// The user this Twitter account signs into, if it is linked.
    pub fn user_by_twitter_id(&self, twitter_id: &str) -> Result<Option<User>, StoreError> {
        match self.twitter_identity(twitter_id)? {
            Some(identity) => self.user_by_id(identity.user_id),
            None => Ok(None),
        }
    }

    /// Links a Twitter account to a user (see [`LinkOutcome`]).
    pub fn link_twitter(
        &self,
        user_id: i64,
        twitter_id: &str,
        screen_name: &str,
        now: i64,
    ) -> Result<LinkOutcome, StoreError> {
        let screen_name = screen_name_kept(screen_name);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let user_exists = tx
            .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
            .query_row([user_id], |_| Ok(()))
            .optional()?
            .is_some();
        if !user_exists {
            return Ok(LinkOutcome::NoSuchUser);
        }
        let by_id = tx
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE twitter_id = ?1"))?
            .query_row([twitter_id], identity_from_row)
            .optional()?;
        match by_id {
            Some(i) if i.user_id == user_id => {
                tx.prepare_cached(
                    "UPDATE twitter_identities SET screen_name = ?2 WHERE twitter_id = ?1",
                )?
                .execute(params![twitter_id, screen_name])?;
                tx.commit()?;
                self.wrote();
                return Ok(LinkOutcome::AlreadyYours);
            }
            Some(_) => return Ok(LinkOutcome::TakenByOther),
            None => {}
        }
        let other = tx
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE user_id = ?1"))?
            .query_row([user_id], identity_from_row)
            .optional()?;
        if let Some(other) = other {
            return Ok(LinkOutcome::UserHasAnother(other.screen_name));
        }
        insert_identity(&tx, twitter_id, user_id, &screen_name, now)?;
        tx.commit()?;
        self.wrote();
        Ok(LinkOutcome::Linked)
    }

    /// Unlinks the user's Twitter account, unless they have no password
    /// (see [`UnlinkOutcome`]).
    pub fn unlink_twitter(&self, user_id: i64) -> Result<UnlinkOutcome, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let linked = tx
            .prepare_cached(&format!("{IDENTITY_SELECT} WHERE user_id = ?1"))?
            .query_row([user_id], identity_from_row)
            .optional()?;
        let Some(linked) = linked else {
            return Ok(UnlinkOutcome::NotLinked);
        };
        let has_password: bool = tx
            .prepare_cached("SELECT password_hash IS NOT NULL FROM users WHERE id = ?1")?
            .query_row([user_id], |r| r.get(0))
            .optional()?
            .unwrap_or(false);
        if !has_password {
            return Ok(UnlinkOutcome::NeedsPassword);
        }
        tx.prepare_cached("DELETE FROM twitter_identities WHERE user_id = ?1")?
            .execute([user_id])?;
        tx.commit()?;
        self.wrote();
        Ok(UnlinkOutcome::Unlinked(linked.screen_name))
    }

    /// Records a linked account's current screen name (it can change at
    /// Twitter). Returns whether it changed.
    pub fn refresh_twitter_screen_name(
        &self,
        twitter_id: &str,
        screen_name: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .prepare_cached(
                "UPDATE twitter_identities SET screen_name = ?2
                 WHERE twitter_id = ?1 AND screen_name <> ?2",
            )?
            .execute(params![twitter_id, screen_name_kept(screen_name)])?;
        if n > 0 {
            self.wrote();
        }
        Ok(n > 0)
    }

    /// Makes a new account for a Twitter account that is linked to nobody,
    /// in one transaction: the username from `screen_name` (fitted and
    /// suffixed when taken), no password, the link, and — with `invite` —
    /// the invite checked and used up (the user is an administrator if it
    /// says so). The caller decides whether the sign-up policy lets this
    /// person in.
    pub fn sign_up_with_twitter(
        &self,
        twitter_id: &str,
        screen_name: &str,
        invite: Option<&str>,
        now: i64,
    ) -> Result<TwitterSignUp, StoreError> {
        let screen_name = screen_name_kept(screen_name);
        let linked_user = {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            let linked = tx
                .prepare_cached(&format!("{IDENTITY_SELECT} WHERE twitter_id = ?1"))?
                .query_row([twitter_id], identity_from_row)
                .optional()?;
            match linked {
                Some(i) => i.user_id,
                None => {
                    let invite_row = match invite {
                        Some(token) => match super::invites::usable_invite(&tx, token, now)? {
                            Ok(row) => Some(row),
                            Err(problem) => return Ok(TwitterSignUp::Invite(problem)),
                        },
                        None => None,
                    };
                    let base = super::import::fitting_username(&screen_name);
                    let base = if base.is_empty() {
                        format!("twitter-{twitter_id}")
                    } else {
                        base
                    };
                    let username = super::import::free_username(&tx, &base)?;
                    let username = super::users::valid_username(&username)?;
                    let is_admin = invite_row.as_ref().is_some_and(|i| i.make_admin);
                    let user = super::users::insert_user(&tx, username, None, is_admin, now)?;
                    insert_identity(&tx, twitter_id, user.id, &screen_name, now)?;
                    if let Some(row) = invite_row {
                        super::invites::use_invite(&tx, row.id, user.id, now)?;
                    }
                    tx.commit()?;
                    self.wrote();
                    return Ok(TwitterSignUp::Created(user));
                }
            }
        };
        match self.user_by_id(linked_user)? {
            Some(user) => Ok(TwitterSignUp::AlreadyLinked(user)),
            None => Err(StoreError::Corrupt(format!(
                "Twitter account {twitter_id} is linked to user {linked_user}, who does not exist"
            ))),
        }
    }
}

fn insert_identity(
    conn: &rusqlite::Connection,
    twitter_id: &str,
    user_id: i64,
    screen_name: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO twitter_identities (twitter_id, user_id, screen_name, linked_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![twitter_id, user_id, screen_name, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twitter_account_links_to_one_user_and_a_user_to_one_account() {
        let store = Store::open_in_memory().unwrap();
        let ada = store.create_user("ada", Some("password1"), 0).unwrap();
        let bob = store.create_user("bob", Some("password2"), 0).unwrap();
        assert_eq!(
            store.link_twitter(ada.id, "1001", "@ada_tw", 5).unwrap(),
            LinkOutcome::Linked
        );
        let linked = store.twitter_identity("1001").unwrap().unwrap();
        assert_eq!(linked.screen_name, "ada_tw");
        assert_eq!(linked.user_id, ada.id);
        assert_eq!(linked.linked_at, 5);
        assert_eq!(
            store.user_by_twitter_id("1001").unwrap().unwrap().id,
            ada.id
        );
        assert_eq!(store.twitter_identity_of(ada.id).unwrap(), Some(linked));
        assert_eq!(store.user_by_twitter_id("1002").unwrap(), None);

        // Someone else's: refused, nothing changes.
        assert_eq!(
            store.link_twitter(bob.id, "1001", "x", 6).unwrap(),
            LinkOutcome::TakenByOther
        );
        assert_eq!(store.twitter_identity_of(bob.id).unwrap(), None);
        // Ada's again: fine, and the new screen name is kept.
        assert_eq!(
            store.link_twitter(ada.id, "1001", "ada_new", 7).unwrap(),
            LinkOutcome::AlreadyYours
        );
        assert_eq!(
            store.twitter_identity("1001").unwrap().unwrap().screen_name,
            "ada_new"
        );
        // A second Twitter account for Ada: refused.
        assert_eq!(
            store.link_twitter(ada.id, "1002", "other", 8).unwrap(),
            LinkOutcome::UserHasAnother("ada_new".into())
        );
        assert_eq!(
            store.link_twitter(9999, "1003", "ghost", 8).unwrap(),
            LinkOutcome::NoSuchUser
        );
        assert!(store.refresh_twitter_screen_name("1001", "ada3").unwrap());
        assert!(!store.refresh_twitter_screen_name("1001", "ada3").unwrap());

        // Deleting the user deletes the link.
        store.delete_user(ada.id, 10).unwrap();
        assert_eq!(store.twitter_identity("1001").unwrap(), None);
    }

    #[test]
    fn unlinking_needs_a_password() {
        let store = Store::open_in_memory().unwrap();
        let ada = store.create_user("ada", None, 0).unwrap();
        assert_eq!(
            store.unlink_twitter(ada.id).unwrap(),
            UnlinkOutcome::NotLinked
        );
        store.link_twitter(ada.id, "1001", "ada", 0).unwrap();
        assert_eq!(
            store.unlink_twitter(ada.id).unwrap(),
            UnlinkOutcome::NeedsPassword
        );
        assert!(store.twitter_identity("1001").unwrap().is_some());
        store
            .set_password_hash(
                ada.id,
                Some(&super::super::users::hash_password("pw123456").unwrap()),
            )
            .unwrap();
        assert_eq!(
            store.unlink_twitter(ada.id).unwrap(),
            UnlinkOutcome::Unlinked("ada".into())
        );
        assert!(store.twitter_identity("1001").unwrap().is_none());
    }

    #[test]
    fn a_twitter_sign_up_takes_the_screen_name_or_the_next_free_one() {
        let store = Store::open_in_memory().unwrap();
        store.create_user("grace", None, 0).unwrap();
        store.create_user("Grace-2", None, 0).unwrap();
        let TwitterSignUp::Created(u) = store.sign_up_with_twitter("42", "grace", None, 3).unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(u.username, "grace-3");
        assert!(!u.has_password && !u.is_admin);
        assert_eq!(store.twitter_identity("42").unwrap().unwrap().user_id, u.id);
        let TwitterSignUp::Created(v) = store.sign_up_with_twitter("43", "linus", None, 3).unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(v.username, "linus");
        // Already linked: that user, nothing new.
        assert_eq!(
            store.sign_up_with_twitter("42", "grace", None, 4).unwrap(),
            TwitterSignUp::AlreadyLinked(store.user_by_id(u.id).unwrap().unwrap())
        );
        assert_eq!(store.list_users().unwrap().len(), 4);
        // A screen name that can't be a username at all.
        let TwitterSignUp::Created(w) = store.sign_up_with_twitter("44", "@", None, 5).unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(w.username, "twitter-44");
    }

    #[test]
    fn a_twitter_sign_up_with_an_invite_uses_it_up() {
        let store = Store::open_in_memory().unwrap();
        store.create_invite("tok", None, true, 0).unwrap();
        let TwitterSignUp::Created(u) = store
            .sign_up_with_twitter("42", "grace", Some("tok"), 10)
            .unwrap()
        else {
            panic!("not created")
        };
        assert!(u.is_admin, "the invite made an administrator");
        assert_eq!(store.invite("tok", 11).unwrap(), Err(InviteProblem::Used));
        // Used up: the next one is refused, and nothing is made.
        assert_eq!(
            store
                .sign_up_with_twitter("43", "linus", Some("tok"), 12)
                .unwrap(),
            TwitterSignUp::Invite(InviteProblem::Used)
        );
        assert_eq!(
            store
                .sign_up_with_twitter("43", "linus", Some("nope"), 12)
                .unwrap(),
            TwitterSignUp::Invite(InviteProblem::Unknown)
        );
        assert!(store.user_by_name("linus").unwrap().is_none());
        assert!(store.twitter_identity("43").unwrap().is_none());
    }
}
