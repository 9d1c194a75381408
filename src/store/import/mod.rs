//! Moving over from the earlier server: what `sirius import --from URL`
//! brings into this store, and how.
//!
//! Owns the mapping from the earlier Python server's tables ([`earlier`]
//! reads them) to ours, done by [`Store::import_earlier`] in one
//! transaction:
//!
//! * **Users** keep their Twitter screen name as username (made to fit our
//!   rules, suffixed `-2`, `-3`… when taken) and get no password: they sign
//!   in with Twitter, or the admin sets one. Each is linked in
//!   `twitter_identities` by the numeric Twitter id, which the earlier
//!   server kept only as the start of the access token (`ID-…`). The old
//!   `api_key` is kept as its SHA-256, so `?api_key=` scripts can keep
//!   working. Keyed on the Twitter id (else the screen name, else the
//!   username, recorded in `meta` as `earlier_import.user:…`).
//! * **Claims** are the earlier `claim_code` rows plus any code a printer
//!   used without a row; per printer (hardware xor) the code the newest
//!   printer row used goes in last, so it is the newest claim here and the
//!   printer gets the same link key without a reset. A printer claimed
//!   again on this server keeps that claim. Keyed on the code.
//! * **Printers** that had an owner, by device address, with their name
//!   (from the printer row, which renames update). Never-claimed ones are
//!   left to call home by themselves.
//! * **Shares**: the earlier server let the people an owner follows on
//!   Twitter (and who signed up) print on the owner's printers; each such
//!   pair becomes a share. Keyed on (printer, user).
//! * **Print keys** with the same secrets (only their SHA-256 is stored),
//!   their use count and sender names. Keyed on the hash.
//! * **Messages**: the stored page (a PNG) becomes our 1-bit page; the
//!   state follows what the earlier server recorded, and is always final
//!   (nothing imported is ever sent again). No command id is kept: old
//!   print ids would collide with ours. Keyed on (printer, time, sender,
//!   page).
//!
//! Bridges and the device log are not brought over (bridges register
//! themselves when they connect; the log was never written to).

pub mod earlier;

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::users::MAX_USERNAME_CHARS;
use super::{Store, StoreError, sha256_hex};
use crate::protocol::{ClaimCode, DeviceAddress, HardwareXor};
use crate::raster::convert::{Dither, page_from_image_bytes, page_to_png};
pub use earlier::{EarlierData, EarlierError, read_earlier};

/// The prefix of `meta` keys recording which user an earlier account became.
const META_USER: &str = "earlier_import.user:";

/// The longest printer name (as claims allow).
const MAX_NAME_CHARS: usize = super::claims::MAX_NAME_CHARS;

/// What happened to one kind of thing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Brought over by this run.
    pub added: u64,
    /// Already here (an earlier run, or made here): left as it is.
    pub already: u64,
    /// Not brought over, by reason.
    pub skipped: BTreeMap<String, u64>,
}

impl Tally {
    fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// How many were skipped, all reasons together.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// The source, without its password.
    pub source: String,
    /// The earlier server's alembic revision, if it recorded one.
    pub revision: Option<String>,
    /// Nothing was written: the transaction was rolled back.
    pub dry_run: bool,
    pub users: Tally,
    pub twitter_links: Tally,
    pub api_keys: Tally,
    pub claims: Tally,
    pub printers: Tally,
    pub shares: Tally,
    pub print_keys: Tally,
    pub messages: Tally,
    /// Things worth knowing: renamed users, print keys our route would
    /// refuse, tables not brought over.
    pub notes: Vec<String>,
}

impl ImportReport {
    /// Every tally with its name, in the order the import runs.
    pub fn tallies(&self) -> [(&'static str, &Tally); 8] {
        [
            ("users", &self.users),
            ("Twitter sign-ins", &self.twitter_links),
            ("API keys", &self.api_keys),
            ("claims", &self.claims),
            ("printers", &self.printers),
            ("shares", &self.shares),
            ("print keys", &self.print_keys),
            ("messages", &self.messages),
        ]
    }

    /// How many things this run added, all kinds together.
    pub fn added_total(&self) -> u64 {
        self.tallies().iter().map(|(_, t)| t.added).sum()
    }
}

/// A claim to make, from a `claim_code` row or a printer's used code.
#[derive(Debug, Clone)]
struct ClaimToMake {
    code: ClaimCode,
    canonical: String,
    old_user: i64,
    name: Option<String>,
    created: i64,
    /// Old row id, for a stable order among equal times.
    order: i64,
}

/// Per hardware xor, the newest earlier printer row that used a code:
/// (created, id) to compare, its code, name and owner.
struct NewestRow {
    when: (i64, i64),
    code: String,
    name: Option<String>,
    owner: Option<i64>,
}

/// A message's page, converted before the transaction starts.
struct PreparedPage {
    png: Vec<u8>,
    width: u32,
    height: u32,
    truncated: bool,
}

/// A username that fits our rules, from a screen name or old username:
/// letters, digits, `.`, `_`, `-` (anything else becomes `_`), at most 64
/// characters; empty when nothing is left.
pub fn fitting_username(name: &str) -> String {
    let mapped: String = name
        .trim()
        .trim_start_matches('@')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_USERNAME_CHARS)
        .collect();
    if mapped.chars().all(|c| c == '_') {
        String::new()
    } else {
        mapped
    }
}

/// `base`, or `base-2`, `base-3`… (cut to fit 64 characters): the first
/// not taken here, case aside.
pub(super) fn free_username(tx: &Transaction<'_>, base: &str) -> rusqlite::Result<String> {
    let taken = |name: &str| -> rusqlite::Result<bool> {
        Ok(tx
            .prepare_cached("SELECT 1 FROM users WHERE username = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some())
    };
    if !taken(base)? {
        return Ok(base.to_string());
    }
    let mut n = 2u64;
    loop {
        let suffix = format!("-{n}");
        let keep = MAX_USERNAME_CHARS - suffix.len();
        let candidate: String = base.chars().take(keep).collect::<String>() + &suffix;
        if !taken(&candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// A printer name that fits a claim: trimmed, at most 64 characters.
fn fitting_name(name: Option<&str>) -> Option<String> {
    let name: String = name?.trim().chars().take(MAX_NAME_CHARS).collect();
    let name = name.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// The hardware xor of an earlier printer row: from its address when it
/// parses (what ours does), else the stored number.
fn printer_xor(p: &earlier::EarlierPrinter) -> Option<HardwareXor> {
    p.device_address
        .as_deref()
        .and_then(|a| DeviceAddress::parse(a.trim()).ok())
        .map(|a| a.hardware_xor())
        .or_else(|| {
            p.hardware_xor
                .and_then(|x| u32::try_from(x).ok())
                .and_then(HardwareXor::new)
        })
}

/// Whether our `/printkey/` route accepts a secret of this shape today.
fn route_accepts(secret: &str) -> bool {
    (20..=64).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Our message state for an earlier message: (state, failure, return code,
/// attempts). Never `queued` or `sent`: an imported message is history.
fn message_outcome(
    m: &earlier::EarlierMessage,
) -> (&'static str, Option<String>, Option<i64>, i64) {
    match m.failure_message.as_deref().map(str::trim) {
        None | Some("") if m.response_timestamp.is_some() => ("delivered", None, Some(0), 1),
        None | Some("") => (
            "timed_out",
            Some("no answer was recorded by the earlier server".into()),
            None,
            1,
        ),
        Some("Timed out") => ("timed_out", None, None, 1),
        Some("Printer offline") => (
            "failed",
            Some("the printer was offline (earlier server)".into()),
            None,
            0,
        ),
        Some(other) => {
            let code = other
                .strip_prefix("Problem printing: ")
                .and_then(|n| n.trim().parse::<i64>().ok());
            ("failed", Some(other.to_string()), code, 1)
        }
    }
}

impl Store {
    /// Brings the earlier server's data into this store, in one
    /// transaction (rolled back when `dry_run`): users, Twitter links, API
    /// keys, claims, printers, shares, print keys and messages, as the
    /// module documentation describes. Running it again adds nothing.
    pub fn import_earlier(
        &self,
        data: &EarlierData,
        now: i64,
        dry_run: bool,
    ) -> Result<ImportReport, StoreError> {
        let mut report = ImportReport {
            source: data.source.clone(),
            revision: data.revision.clone(),
            dry_run,
            ..ImportReport::default()
        };
        if let Some(rev) = &data.revision
            && !earlier::KNOWN_REVISIONS.contains(&rev.as_str())
        {
            report.notes.push(format!(
                "the earlier database is at revision {rev}, which Sirius does not know; what it recognised was imported"
            ));
        }

        // Pages are converted before the transaction, so a running server
        // never waits for image decoding.
        let pages: HashMap<i64, Result<PreparedPage, String>> = data
            .messages
            .iter()
            .filter_map(|m| {
                let bytes = m.pixels.as_deref().filter(|b| !b.is_empty())?;
                let page = page_from_image_bytes(bytes, Dither::Threshold)
                    .map(|p| PreparedPage {
                        png: page_to_png(&p.page),
                        width: p.page.width(),
                        height: p.page.height(),
                        truncated: p.truncated,
                    })
                    .map_err(|e| e.to_string());
                Some((m.id, page))
            })
            .collect();

        let mut conn = self.lock();
        let tx = conn.transaction()?;

        let user_map = import_users(&tx, data, now, &mut report)?;
        import_claims(&tx, data, &user_map, now, &mut report)?;
        let printer_map = import_printers(&tx, data, &user_map, now, &mut report)?;
        import_shares(&tx, data, &user_map, now, &mut report)?;
        import_print_keys(&tx, data, &user_map, &printer_map, now, &mut report)?;
        import_messages(&tx, data, &printer_map, &pages, &mut report)?;

        if data.bridges > 0 {
            report.notes.push(format!(
                "{} bridge(s) not brought over: bridges register themselves when they connect",
                data.bridges
            ));
        }
        if data.device_log > 0 {
            report.notes.push(format!(
                "{} device log entries not brought over: the earlier server's log is not used here",
                data.device_log
            ));
        }

        if dry_run {
            tx.rollback()?;
        } else {
            tx.commit()?;
            self.wrote();
        }
        Ok(report)
    }
}

/// Users, their Twitter link and API key. Returns old user id → our id.
fn import_users(
    tx: &Transaction<'_>,
    data: &EarlierData,
    now: i64,
    report: &mut ImportReport,
) -> Result<HashMap<i64, i64>, StoreError> {
    let mut twitter_by_user: HashMap<i64, &earlier::EarlierTwitter> = HashMap::new();
    for t in &data.twitter {
        match t.user_id {
            Some(u) if data.users.iter().any(|x| x.id == u) => {
                twitter_by_user.entry(u).or_insert(t);
            }
            _ => report
                .twitter_links
                .skip("a Twitter sign-in whose user does not exist"),
        }
    }
    let mut map = HashMap::new();
    for u in &data.users {
        let tw = twitter_by_user.get(&u.id).copied();
        let twitter_id = tw.and_then(|t| t.twitter_id());
        let screen_name = tw
            .and_then(|t| t.screen_name.clone())
            .filter(|s| !s.trim().is_empty());
        let name_source = screen_name
            .clone()
            .or_else(|| u.username.clone())
            .unwrap_or_default();
        let key = match (&twitter_id, &screen_name) {
            (Some(id), _) => format!("{META_USER}twitter:{id}"),
            (None, Some(sn)) => format!("{META_USER}screen_name:{}", sn.trim().to_lowercase()),
            (None, None) if !name_source.trim().is_empty() => {
                format!("{META_USER}username:{}", name_source.trim().to_lowercase())
            }
            (None, None) => {
                report.users.skip("no username and no Twitter screen name");
                continue;
            }
        };

        // Already here? By the Twitter link, else by what an earlier run
        // recorded.
        let mut existing: Option<i64> = None;
        if let Some(id) = &twitter_id {
            existing = tx
                .prepare_cached("SELECT user_id FROM twitter_identities WHERE twitter_id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
        }
        if existing.is_none() {
            let recorded: Option<String> = tx
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            if let Some(id) = recorded.and_then(|v| v.parse::<i64>().ok()) {
                let alive = tx
                    .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
                    .query_row([id], |_| Ok(()))
                    .optional()?
                    .is_some();
                existing = alive.then_some(id);
            }
        }
        if let Some(id) = existing {
            map.insert(u.id, id);
            report.users.already += 1;
            if twitter_id.is_some() {
                report.twitter_links.already += 1;
            }
            if u.api_key.as_deref().is_some_and(|k| !k.trim().is_empty()) {
                report.api_keys.already += 1;
            }
            continue;
        }

        let base = fitting_username(&name_source);
        let base = if base.is_empty() {
            format!("user-{}", u.id)
        } else {
            base
        };
        let username = free_username(tx, &base)?;
        if username != base {
            report.notes.push(format!(
                "{:?} is now {username:?}: {base:?} was taken here",
                name_source.trim()
            ));
        } else if username != name_source.trim() {
            report.notes.push(format!(
                "{:?} is now {username:?} (usernames here are letters, digits, '.', '_' and '-')",
                name_source.trim()
            ));
        }
        tx.prepare_cached(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, NULL, ?2)",
        )?
        .execute(params![username, u.created.unwrap_or(now)])?;
        let id = tx.last_insert_rowid();
        map.insert(u.id, id);
        report.users.added += 1;
        tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(params![key, id.to_string()])?;

        match (tw, &twitter_id) {
            (Some(t), Some(tid)) => {
                let taken = tx
                    .prepare_cached("SELECT 1 FROM twitter_identities WHERE twitter_id = ?1")?
                    .query_row([tid], |_| Ok(()))
                    .optional()?
                    .is_some();
                if taken {
                    report
                        .twitter_links
                        .skip("the Twitter account is linked to another user here");
                } else {
                    tx.prepare_cached(
                        "INSERT INTO twitter_identities (twitter_id, user_id, screen_name, linked_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        tid,
                        id,
                        t.screen_name.as_deref().unwrap_or(&username),
                        now
                    ])?;
                    report.twitter_links.added += 1;
                }
            }
            (Some(_), None) => report.twitter_links.skip(
                "no Twitter id in the stored token: the user needs a password from the admin",
            ),
            (None, _) => {}
        }

        if let Some(api_key) = u
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            let hash = sha256_hex(api_key);
            let taken = tx
                .prepare_cached("SELECT 1 FROM users WHERE api_key_hash = ?1")?
                .query_row([&hash], |_| Ok(()))
                .optional()?
                .is_some();
            if taken {
                report
                    .api_keys
                    .skip("the same API key belongs to another user here");
            } else {
                let prefix: String = api_key.chars().take(4).collect();
                tx.prepare_cached(
                    "UPDATE users SET api_key_hash = ?2, api_key_prefix = ?3 WHERE id = ?1",
                )?
                .execute(params![id, hash, prefix])?;
                report.api_keys.added += 1;
            }
        }
    }
    Ok(map)
}

/// Claims, grouped by printer (hardware xor).
fn import_claims(
    tx: &Transaction<'_>,
    data: &EarlierData,
    user_map: &HashMap<i64, i64>,
    now: i64,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    let mut by_xor: BTreeMap<u32, Vec<ClaimToMake>> = BTreeMap::new();
    let mut seen_codes: HashSet<String> = HashSet::new();
    for c in &data.claims {
        let Some(text) = c.claim_code.as_deref().filter(|t| !t.trim().is_empty()) else {
            report.claims.skip("no code stored");
            continue;
        };
        let code = match ClaimCode::parse(text) {
            Ok(code) => code,
            Err(e) => {
                report.claims.skip(format!("not a valid claim code ({e})"));
                continue;
            }
        };
        let Some(old_user) = c.by_id.filter(|u| user_map.contains_key(u)) else {
            report.claims.skip("its user was not brought over");
            continue;
        };
        let canonical = code.to_string();
        if !seen_codes.insert(canonical.clone()) {
            report.claims.skip("the same code twice");
            continue;
        }
        by_xor
            .entry(code.hardware_xor().value())
            .or_default()
            .push(ClaimToMake {
                code,
                canonical,
                old_user,
                name: c.name.clone(),
                created: c.created.unwrap_or(0),
                order: c.id,
            });
    }

    // The code each printer row uses gives its link key: make sure it is a
    // claim (a printer may use a code that has no claim_code row), and find,
    // per xor, the code of the newest printer row.
    let mut current: HashMap<u32, NewestRow> = HashMap::new();
    for p in &data.printers {
        let Some(text) = p
            .used_claim_code
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        else {
            continue;
        };
        let Ok(code) = ClaimCode::parse(text) else {
            continue;
        };
        let xor = code.hardware_xor().value();
        if printer_xor(p).map(HardwareXor::value) != Some(xor) {
            continue;
        }
        let canonical = code.to_string();
        if !seen_codes.contains(&canonical)
            && let Some(owner) = p.owner_id.filter(|u| user_map.contains_key(u))
        {
            seen_codes.insert(canonical.clone());
            by_xor.entry(xor).or_default().push(ClaimToMake {
                code,
                canonical: canonical.clone(),
                old_user: owner,
                name: p.name.clone(),
                created: p.created.unwrap_or(0),
                order: i64::MAX,
            });
        }
        let key = (p.created.unwrap_or(0), p.id);
        let newer = current.get(&xor).is_none_or(|row| key > row.when);
        if newer {
            current.insert(
                xor,
                NewestRow {
                    when: key,
                    code: canonical,
                    name: p.name.clone(),
                    owner: p.owner_id,
                },
            );
        }
    }

    for (xor, mut claims) in by_xor {
        claims.sort_by_key(|c| (c.created, c.order));
        // The code the newest printer row used goes last: it becomes the
        // newest claim, with that printer's name and owner.
        if let Some(row) = current.get(&xor)
            && let Some(i) = claims.iter().position(|c| c.canonical == row.code)
        {
            let mut c = claims.remove(i);
            if let Some(name) = fitting_name(row.name.as_deref()) {
                c.name = Some(name);
            }
            if let Some(owner) = row.owner.filter(|o| user_map.contains_key(o)) {
                c.old_user = owner;
            }
            claims.push(c);
        }

        let existing: Vec<(String, i64)> = tx
            .prepare_cached("SELECT code, user_id FROM claims WHERE hardware_xor = ?1")?
            .query_map([xor], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let ours: HashSet<&str> = claims.iter().map(|c| c.canonical.as_str()).collect();
        if existing
            .iter()
            .any(|(code, _)| !ours.contains(code.as_str()))
        {
            for _ in &claims {
                report
                    .claims
                    .skip("the printer was claimed again on this server; that claim stands");
            }
            continue;
        }
        let mut inserted = false;
        for c in &claims {
            let user = user_map[&c.old_user];
            match existing.iter().find(|(code, _)| code == &c.canonical) {
                Some((_, owner)) if *owner == user => report.claims.already += 1,
                Some(_) => report
                    .claims
                    .skip("the code is claimed by another user here"),
                None => {
                    let name = fitting_name(c.name.as_deref())
                        .unwrap_or_else(|| "Little Printer".to_string());
                    tx.prepare_cached(
                        "INSERT INTO claims (user_id, hardware_xor, code, name, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        user,
                        c.code.hardware_xor(),
                        c.canonical,
                        name,
                        if c.created > 0 { c.created } else { now }
                    ])?;
                    report.claims.added += 1;
                    inserted = true;
                }
            }
        }
        if inserted {
            // The newest claim for a xor owns every printer with that xor.
            tx.prepare_cached(
                "UPDATE printers SET claim_id = (SELECT max(id) FROM claims WHERE hardware_xor = ?1)
                 WHERE hardware_xor = ?1",
            )?
            .execute([xor])?;
        }
    }
    Ok(())
}

/// Printers that had an owner. Returns old printer id → our printer id.
fn import_printers(
    tx: &Transaction<'_>,
    data: &EarlierData,
    user_map: &HashMap<i64, i64>,
    now: i64,
    report: &mut ImportReport,
) -> Result<HashMap<i64, i64>, StoreError> {
    let mut map = HashMap::new();
    for p in &data.printers {
        let Some(address) = p
            .device_address
            .as_deref()
            .and_then(|a| DeviceAddress::parse(a.trim()).ok())
        else {
            report.printers.skip("no valid device address");
            continue;
        };
        let existing: Option<i64> = tx
            .prepare_cached("SELECT id FROM printers WHERE address = ?1")?
            .query_row([address], |r| r.get(0))
            .optional()?;
        if p.owner_id.is_none() {
            report
                .printers
                .skip("never claimed: it appears here when it calls home");
            continue;
        }
        if !p.owner_id.is_some_and(|o| user_map.contains_key(&o)) {
            report.printers.skip("its owner was not brought over");
            continue;
        }
        let id = match existing {
            Some(id) => {
                report.printers.already += 1;
                id
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO printers (address, hardware_xor, claim_id, first_seen)
                     VALUES (?1, ?2, (SELECT max(id) FROM claims WHERE hardware_xor = ?2), ?3)",
                )?
                .execute(params![
                    address,
                    address.hardware_xor(),
                    p.created.unwrap_or(now)
                ])?;
                report.printers.added += 1;
                tx.last_insert_rowid()
            }
        };
        map.insert(p.id, id);
    }
    Ok(map)
}

/// The user who owns the printers of `xor` here (the newest claim's).
fn owner_here(tx: &Transaction<'_>, xor: HardwareXor) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(
        "SELECT user_id FROM claims WHERE hardware_xor = ?1 ORDER BY id DESC LIMIT 1",
    )?
    .query_row([xor], |r| r.get(0))
    .optional()
}

/// Friends who may print on an owner's printers, as shares.
fn import_shares(
    tx: &Transaction<'_>,
    data: &EarlierData,
    user_map: &HashMap<i64, i64>,
    now: i64,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    // The earlier server matched a friend's screen name to a username.
    let mut by_username: HashMap<&str, Vec<i64>> = HashMap::new();
    for u in &data.users {
        if let Some(name) = u.username.as_deref() {
            by_username.entry(name).or_default().push(u.id);
        }
    }
    for t in &data.twitter {
        let Some(owner_old) = t.user_id else { continue };
        let Some(&owner) = user_map.get(&owner_old) else {
            continue;
        };
        let friends = match &t.friends {
            Ok(f) => f,
            Err(e) => {
                report
                    .shares
                    .skip(format!("a friends list could not be read: {e}"));
                continue;
            }
        };
        // The owner's printers, as they are owned here.
        let mut xors: Vec<HardwareXor> = Vec::new();
        for p in data
            .printers
            .iter()
            .filter(|p| p.owner_id == Some(owner_old))
        {
            if let Some(x) = printer_xor(p)
                && !xors.contains(&x)
                && owner_here(tx, x)? == Some(owner)
            {
                xors.push(x);
            }
        }
        if xors.is_empty() {
            continue;
        }
        let mut friend_users: Vec<i64> = Vec::new();
        for f in friends {
            match by_username.get(f.as_str()) {
                None => report
                    .shares
                    .skip("followed on Twitter but never signed up to the earlier server"),
                Some(olds) => {
                    for old in olds {
                        match user_map.get(old) {
                            Some(&u) if u != owner && !friend_users.contains(&u) => {
                                friend_users.push(u)
                            }
                            Some(_) => {}
                            None => report.shares.skip("the friend was not brought over"),
                        }
                    }
                }
            }
        }
        for x in &xors {
            for &u in &friend_users {
                let n = tx
                    .prepare_cached(
                        "INSERT INTO shares (hardware_xor, user_id, created_by, created_at)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (hardware_xor, user_id) DO NOTHING",
                    )?
                    .execute(params![x, u, owner, now])?;
                if n > 0 {
                    report.shares.added += 1;
                } else {
                    report.shares.already += 1;
                }
            }
        }
    }
    Ok(())
}

/// Print keys with the same secrets.
fn import_print_keys(
    tx: &Transaction<'_>,
    data: &EarlierData,
    user_map: &HashMap<i64, i64>,
    printer_map: &HashMap<i64, i64>,
    now: i64,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    let printers: HashMap<i64, &earlier::EarlierPrinter> =
        data.printers.iter().map(|p| (p.id, p)).collect();
    let mut refused_by_route = 0u64;
    let mut lengths: BTreeMap<usize, u64> = BTreeMap::new();
    let mut alphabet: BTreeMap<&'static str, u64> = BTreeMap::new();
    for k in &data.print_keys {
        let Some(secret) = k.secret.as_deref().filter(|s| !s.is_empty()) else {
            report.print_keys.skip("no secret stored");
            continue;
        };
        *lengths.entry(secret.chars().count()).or_default() += 1;
        let class = if secret
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            "a-z0-9"
        } else if secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
            "A-Za-z0-9"
        } else {
            "other characters"
        };
        *alphabet.entry(class).or_default() += 1;
        let Some((old, &printer_id)) = k
            .printer_id
            .and_then(|p| Some((printers.get(&p)?, printer_map.get(&p)?)))
        else {
            report.print_keys.skip("its printer was not brought over");
            continue;
        };
        let owner = old.owner_id.and_then(|o| user_map.get(&o).copied());
        let xor = printer_xor(old);
        if owner.is_none() || xor.map(|x| owner_here(tx, x)).transpose()?.flatten() != owner {
            report
                .print_keys
                .skip("the printer belongs to someone else on this server");
            continue;
        }
        let hash = sha256_hex(secret);
        let exists = tx
            .prepare_cached("SELECT 1 FROM print_keys WHERE secret_hash = ?1")?
            .query_row([&hash], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            report.print_keys.already += 1;
            continue;
        }
        let prefix: String = secret
            .chars()
            .take(super::print_keys::PREFIX_CHARS)
            .collect();
        tx.prepare_cached(
            "INSERT INTO print_keys (printer_id, secret_hash, prefix, label, created_by, created_at, uses)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)",
        )?
        .execute(params![
            printer_id,
            hash,
            prefix,
            owner,
            k.created.unwrap_or(now),
            k.number_of_uses.unwrap_or(0).max(0)
        ])?;
        let key_id = tx.last_insert_rowid();
        // The earlier server kept each sender once, without counts.
        for sender in k.senders.iter().flatten() {
            let sender: String = sender.trim().chars().take(64).collect();
            if sender.is_empty() {
                continue;
            }
            tx.prepare_cached(
                "INSERT INTO print_key_senders (key_id, sender, uses) VALUES (?1, ?2, 0)
                 ON CONFLICT (key_id, sender) DO NOTHING",
            )?
            .execute(params![key_id, sender])?;
        }
        report.print_keys.added += 1;
        if !route_accepts(secret) {
            refused_by_route += 1;
        }
    }
    if !data.print_keys.is_empty() {
        let lengths: Vec<String> = lengths
            .iter()
            .map(|(len, n)| format!("{n} of {len} characters"))
            .collect();
        let alphabet: Vec<String> = alphabet
            .iter()
            .map(|(class, n)| format!("{n} of {class}"))
            .collect();
        report.notes.push(format!(
            "print key secrets: {}; {}",
            lengths.join(", "),
            alphabet.join(", ")
        ));
    }
    if refused_by_route > 0 {
        report.notes.push(format!(
            "{refused_by_route} imported print key(s) are not 20-64 characters of a-z0-9, which /printkey/ accepts today: they won't print until it accepts their shape"
        ));
    }
    Ok(())
}

/// Message history, as final states.
fn import_messages(
    tx: &Transaction<'_>,
    data: &EarlierData,
    printer_map: &HashMap<i64, i64>,
    pages: &HashMap<i64, Result<PreparedPage, String>>,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    let usernames: HashMap<i64, &str> = data
        .users
        .iter()
        .filter_map(|u| Some((u.id, u.username.as_deref()?)))
        .collect();
    for m in &data.messages {
        let Some(&printer_id) = m.target_printer_id.and_then(|p| printer_map.get(&p)) else {
            report.messages.skip("its printer was not brought over");
            continue;
        };
        let page = match pages.get(&m.id) {
            None => {
                report.messages.skip("no page stored");
                continue;
            }
            Some(Err(e)) => {
                report.messages.skip(format!(
                    "the stored page is not an image Sirius reads ({e})"
                ));
                continue;
            }
            Some(Ok(page)) => page,
        };
        let sender: String = m
            .sender_name
            .as_deref()
            .or_else(|| m.sender_id.and_then(|id| usernames.get(&id).copied()))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("Unknown sender")
            .chars()
            .take(64)
            .collect();
        let created = m.created.or(m.response_timestamp).unwrap_or(0);
        let exists = tx
            .prepare_cached(
                "SELECT 1 FROM messages
                 WHERE printer_id = ?1 AND created_at = ?2 AND sender = ?3 AND page_png = ?4",
            )?
            .query_row(params![printer_id, created, sender, page.png], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            report.messages.already += 1;
            continue;
        }
        let (state, failure, return_code, attempts) = message_outcome(m);
        tx.prepare_cached(
            "INSERT INTO messages (printer_id, sender, content_kind, command_kind, page_png,
                page_width, page_height, truncated, created_at, state, command_id, attempts,
                sent_at, answered_at, return_code, failure)
             VALUES (?1, ?2, 'html', 'set_delivery_and_print', ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9,
                ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            printer_id,
            sender,
            page.png,
            page.width,
            page.height,
            page.truncated,
            created,
            state,
            attempts,
            (attempts > 0).then_some(created),
            m.response_timestamp,
            return_code,
            failure,
        ])?;
        report.messages.added += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_made_to_fit() {
        assert_eq!(fitting_username("ada_lovelace"), "ada_lovelace");
        assert_eq!(fitting_username(" @Ada "), "Ada");
        assert_eq!(fitting_username("émile zola"), "_mile_zola");
        assert_eq!(fitting_username("???"), "");
        assert_eq!(fitting_username(&"x".repeat(80)).len(), 64);
        // What comes out is accepted by create_user.
        let store = Store::open_in_memory().unwrap();
        for name in ["ada_lovelace", " @Ada ", "émile zola", &"x".repeat(80)] {
            store.create_user(&fitting_username(name), None, 0).unwrap();
        }
    }

    #[test]
    fn taken_usernames_get_a_suffix_that_still_fits() {
        let store = Store::open_in_memory().unwrap();
        store.create_user("ada", None, 0).unwrap();
        store.create_user("ADA-2", None, 0).unwrap();
        let long = "y".repeat(64);
        store.create_user(&long, None, 0).unwrap();
        let mut conn = store.lock();
        let tx = conn.transaction().unwrap();
        assert_eq!(free_username(&tx, "Ada").unwrap(), "Ada-3");
        assert_eq!(free_username(&tx, "bob").unwrap(), "bob");
        let suffixed = free_username(&tx, &long).unwrap();
        assert_eq!(suffixed, format!("{}-2", "y".repeat(62)));
    }

    #[test]
    fn imported_messages_are_never_queued_again() {
        let m = |failure: Option<&str>, answered: Option<i64>| earlier::EarlierMessage {
            failure_message: failure.map(str::to_string),
            response_timestamp: answered,
            ..Default::default()
        };
        assert_eq!(message_outcome(&m(None, Some(5))).0, "delivered");
        assert_eq!(message_outcome(&m(None, None)).0, "timed_out");
        assert_eq!(
            message_outcome(&m(Some("Timed out"), Some(5))).0,
            "timed_out"
        );
        let offline = message_outcome(&m(Some("Printer offline"), Some(5)));
        assert_eq!((offline.0, offline.3), ("failed", 0));
        let problem = message_outcome(&m(Some("Problem printing: 128"), Some(5)));
        assert_eq!((problem.0, problem.2), ("failed", Some(128)));
    }
}
