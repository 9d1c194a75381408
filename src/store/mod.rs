//! The store: everything Sirius keeps across restarts, in one SQLite file.
//!
//! This module owns the database file: opening it (creating it if missing),
//! the pragmas every connection gets, bringing the schema up to date
//! (`schema.sql` at the top of the repository is version 1, `MIGRATIONS`
//! the versions after it, `PRAGMA user_version` records the version), and
//! the [`Store`] handle the rest of the server shares. The tables are
//! reached through methods on [`Store`], one file per table family:
//!
//! * [`users`]: accounts and password hashes.
//! * [`bridges`]: bridges seen and their log.
//! * [`printers`]: printers seen, their owner, their link key.
//! * [`claims`]: claiming a printer with its code (PROTOCOL §7).
//! * [`commands`]: commands sent to bridges and the command id high-water
//!   mark.
//! * [`messages`]: every message and its delivery state (the queue).
//! * [`print_keys`]: secret URLs that print to one printer.
//! * [`import`]: bringing data over from the earlier (Python) server.
//! * [`sessions`], [`invites`], [`shares`]: the web app's signed-in
//!   browsers, one-time invite links, and printers shared with other users.
//! * [`twitter`]: Twitter accounts linked to users ("Sign in with Twitter").
//!
//! The store is synchronous: one writing connection behind a mutex and a
//! few read-only ones (WAL, so reads never wait for the writer), statements
//! cached. Async code never calls it directly: it goes through [`Db`]
//! ([`db`]), which runs reads on its reader threads and writes on one writer
//! thread, in order.

pub mod bridges;
pub mod claims;
pub mod commands;
pub mod db;
pub mod import;
pub mod invites;
pub mod messages;
pub mod print_keys;
pub mod printers;
pub mod sessions;
pub mod shares;
pub mod twitter;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use crate::protocol::{BridgeAddress, DeviceAddress, HardwareXor};

pub use bridges::{BridgeLogRow, BridgeRow};
pub use claims::{ClaimError, ClaimOutcome};
pub use commands::CommandRow;
pub use db::Db;
pub use messages::{MessageRow, MessageState, NewMessage};
pub use print_keys::PrintKeyRow;
pub use printers::PrinterRow;
pub use users::User;

/// The base schema (version 1), applied to a new database.
const SCHEMA: &str = include_str!("../../schema.sql");

/// The migrations after the base schema: entry `i` brings a database from
/// version `i + 1` to version `i + 2`. Append only; never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0002_messages_and_print_keys.sql"),
    include_str!("migrations/0003_hardening.sql"),
    include_str!("migrations/0004_web.sql"),
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

/// How long a statement waits for another process holding the file's lock.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// What went wrong in the store. The messages are meant for the person
/// running the server.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error(
        "could not open the database {path}: {source}; check that the folder exists and Sirius may write there"
    )]
    Open {
        /// The file Sirius tried to open.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Sirius.
    #[error(
        "this database was written by a newer Sirius (schema {found}, this build knows {supported}); upgrade Sirius or restore a backup"
    )]
    TooNew {
        /// The version found in the file.
        found: i64,
        /// [`SCHEMA_VERSION`] of this build.
        supported: i64,
    },
    /// Bringing the schema up to date failed; the file was left as it was.
    #[error(
        "could not bring the database to schema version {version}: {source}; the file was left unchanged, restore a backup if the problem persists"
    )]
    Migration {
        /// The version that could not be applied.
        version: i64,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A username that may not be used.
    #[error("that username can't be used: {0}")]
    InvalidUsername(String),
    /// A password that may not be used.
    #[error("that password can't be used: {0}")]
    InvalidPassword(String),
    /// Another user has this username (case does not matter).
    #[error("the username {0:?} is already taken; choose another one")]
    UsernameTaken(String),
    /// The change would leave the server without a working administrator.
    #[error(
        "this is the last administrator who can sign in; make another user an administrator first"
    )]
    LastAdmin,
    /// Hashing a password failed (the system's random generator, usually).
    #[error("could not hash the password: {0}")]
    PasswordHash(String),
    /// A printer has as many messages waiting as it may.
    #[error(
        "the printer's queue is full ({0} messages are waiting for it); try again once it has printed some"
    )]
    QueueFull(usize),
    /// A value in the database is not what Sirius wrote there.
    #[error(
        "the database holds a value Sirius can't read ({0}); was the file edited by hand? restore a backup"
    )]
    Corrupt(String),
    /// Any other SQLite failure (disk full, file locked for too long, …).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The handle to the database, shared by the whole server (`Send + Sync`).
///
/// Every method takes `&self` and runs to completion under one mutex, so a
/// method's reads and writes are never interleaved with another's.
pub struct Store {
    /// The one connection that writes (SQLite allows one writer at a time).
    conn: Mutex<Connection>,
    /// Read-only connections: in WAL mode a reader never waits for the
    /// writer, so pages and lookups go on while a write waits for the
    /// file's lock (a backup, a command-line tool, a slow SD card). Empty
    /// for an in-memory database, whose reads use the writer.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicU64,
    writes: AtomicU64,
}

/// Read-only connections opened next to the writer: two, each with a
/// small page cache, so reads never queue behind one slow read while
/// memory stays low on a Raspberry Pi (reads are short). [`Db`] runs one
/// reader thread per connection.
pub(crate) const READERS: usize = 2;
/// Page cache of a read-only connection, in KiB.
const READER_CACHE_KIB: i64 = 512;
/// The writer connection's page cache.
const WRITER_CACHE_KIB: i64 = 1024;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("writes", &self.writes())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating the file if it is missing,
    /// and brings its schema up to date. Refuses a file written by a newer
    /// Sirius ([`StoreError::TooNew`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        let mut store = Self::from_connection(conn)?;
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_error)?;
            configure(&reader)?;
            reader.pragma_update(None, "query_only", "ON")?;
            reader.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
            store.readers.push(Mutex::new(reader));
        }
        Ok(store)
    }

    /// A fresh database in memory, gone when the store is dropped. For tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(mut conn: Connection) -> Result<Store, StoreError> {
        configure(&conn)?;
        // Answers "memory" for an in-memory database; that is fine.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 1 MiB of pages for the writer (SQLite's default is 2): its writes
        // are small batches; a big cache only grows the server's memory.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// How many writes (write statements or transactions) this store made
    /// since it was opened. Shown in `/_/stats`.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The connection. A panic in another thread while holding it leaves
    /// no half-done work behind (an open transaction rolls back when
    /// dropped), so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read-only connection: a free one if there is one, else the next in
    /// turn. Never the writer (unless the database is in memory), so reads
    /// don't wait behind a write that waits for the file's lock.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        if self.readers.is_empty() {
            return self.lock();
        }
        for r in &self.readers {
            if let Ok(guard) = r.try_lock() {
                return guard;
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) as usize % self.readers.len();
        self.readers[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one write.
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every connection gets: the busy timeout, foreign keys, a statement
/// cache, and the `sirius_sha256(text)` function (lowercase hex) that
/// migrations use to hash secrets.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.create_scalar_function(
        "sirius_sha256",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text: String = ctx.get(0)?;
            Ok(sha256_hex(&text))
        },
    )?;
    Ok(())
}

/// Lowercase hex SHA-256 of a secret, as stored for print keys, sessions,
/// invites and API keys.
pub fn sha256_hex(secret: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The schema version recorded in the file.
fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Applies the base schema and the migrations the file lacks, each in its own
/// transaction together with the new `user_version`.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let steps: Vec<&str> = std::iter::once(SCHEMA)
        .chain(MIGRATIONS.iter().copied())
        .collect();
    apply_versions(conn, &steps)
}

/// Brings `conn` to version `versions.len()`: `versions[i]` is the SQL that
/// makes version `i + 1`.
fn apply_versions(conn: &mut Connection, versions: &[&str]) -> Result<(), StoreError> {
    let supported = versions.len() as i64;
    let found = user_version(conn)?;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    for (index, sql) in versions.iter().enumerate() {
        let version = index as i64 + 1;
        // A version that rebuilds a table says so; foreign keys are off
        // around it (they can't change inside a transaction) and checked
        // before it commits.
        let rebuilds = sql.contains("-- sirius: foreign_keys off");
        if rebuilds {
            conn.pragma_update(None, "foreign_keys", "OFF")?;
        }
        let applied = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another process may have migrated while this one waited.
            if user_version(&tx)? >= version {
                return Ok(());
            }
            tx.execute_batch(sql)?;
            if rebuilds {
                let broken: i64 =
                    tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    })?;
                if broken > 0 {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                        Some(format!("{broken} rows refer to rows that do not exist")),
                    ));
                }
            }
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        })();
        if rebuilds {
            conn.pragma_update(None, "foreign_keys", "ON")?;
        }
        applied.map_err(|source| StoreError::Migration { version, source })?;
    }
    Ok(())
}

// Addresses and xors go in and out of SQL as the text and numbers the schema
// describes; a stored value that doesn't parse is a conversion error.

fn conversion_error(e: impl std::error::Error + Send + Sync + 'static) -> FromSqlError {
    FromSqlError::Other(Box::new(e))
}

impl ToSql for DeviceAddress {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for DeviceAddress {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        DeviceAddress::parse(value.as_str()?).map_err(conversion_error)
    }
}

impl ToSql for BridgeAddress {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for BridgeAddress {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        BridgeAddress::parse(value.as_str()?).map_err(conversion_error)
    }
}

impl ToSql for HardwareXor {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.value()))
    }
}

impl FromSql for HardwareXor {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let n = value.as_i64()?;
        u32::try_from(n)
            .ok()
            .and_then(HardwareXor::new)
            .ok_or(FromSqlError::OutOfRange(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::User;

    /// A file in the system's temp folder, removed (with its WAL files) when
    /// dropped.
    pub(crate) struct TempDb(pub PathBuf);

    impl TempDb {
        pub(crate) fn new(name: &str) -> TempDb {
            let dir = std::env::temp_dir().join(format!(
                "sirius-store-{}-{}-{}",
                std::process::id(),
                name,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDb(dir)
        }

        pub(crate) fn file(&self) -> PathBuf {
            self.0.join("sirius.db")
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn a_new_database_gets_the_current_schema_and_pragmas() {
        let dir = TempDb::new("fresh");
        let store = Store::open(&dir.file()).unwrap();
        let conn = store.lock();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 5000);
        drop(conn);
        assert_eq!(store.writes(), 0, "opening is not counted");
    }

    #[test]
    fn reopening_keeps_the_version_and_applies_nothing_twice() {
        let dir = TempDb::new("reopen");
        drop(Store::open(&dir.file()).unwrap());
        let store = Store::open(&dir.file()).unwrap();
        assert_eq!(user_version(&store.lock()).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn everything_survives_closing_and_reopening_the_file() {
        use crate::protocol::{ClaimCode, ClaimSecret};
        let dir = TempDb::new("persist");
        let device = DeviceAddress::parse("000d6f000273ce0b").unwrap();
        let bridge = BridgeAddress::parse("000d6f0001b3719d").unwrap();
        let code = ClaimCode::new(
            device.hardware_xor(),
            ClaimSecret::new(0xeb1ba696a0).unwrap(),
        );
        let (alice, claim) = {
            let store = Store::open(&dir.file()).unwrap();
            let alice = store.create_user("alice", Some("hunter42"), 1).unwrap();
            store.ensure_printer(device, 2).unwrap();
            let claim = store.claim(alice.id, &code, "Kitchen", 3).unwrap();
            store
                .update_last_heard(&[(device, 4, Some(bridge))])
                .unwrap();
            store
                .record_bridge_seen(bridge, Some("10.0.0.1"), 5)
                .unwrap();
            store.reserve_command_ids(4242).unwrap();
            store
                .record_command(17, bridge, Some(device), "x", 6)
                .unwrap();
            (alice, claim)
        };
        let store = Store::open(&dir.file()).unwrap();
        let alice = User {
            printer_count: 1,
            ..alice
        };
        assert_eq!(store.user_by_name("alice").unwrap(), Some(alice.clone()));
        assert_eq!(
            store.verify_password("alice", "hunter42").unwrap(),
            Some(alice.clone())
        );
        let p = store.printer_by_address(device).unwrap().unwrap();
        assert_eq!(p.claim_id, Some(claim.claim_id));
        assert_eq!(
            (p.owner_id, p.name.as_deref()),
            (Some(alice.id), Some("Kitchen"))
        );
        assert_eq!(
            (p.first_seen, p.last_heard, p.last_bridge),
            (2, Some(4), Some(bridge))
        );
        assert_eq!(store.link_key_for(device).unwrap(), Some(code.link_key()));
        assert_eq!(
            store.list_bridges().unwrap()[0].remote_ip.as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(store.command_id_high_water().unwrap(), 4242);
        assert_eq!(store.command(17).unwrap().unwrap().device, Some(device));
        assert_eq!(store.writes(), 0, "the counter is per process");
    }

    #[test]
    fn a_database_from_a_newer_sirius_is_refused() {
        let dir = TempDb::new("too-new");
        drop(Store::open(&dir.file()).unwrap());
        {
            let conn = Connection::open(dir.file()).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = Store::open(&dir.file()).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("newer Sirius"), "{message}");
        assert!(
            message.contains("upgrade Sirius or restore a backup"),
            "{message}"
        );
    }

    #[test]
    fn migrations_run_once_in_order_and_a_failed_one_changes_nothing() {
        let dir = TempDb::new("migrate");
        drop(Store::open(&dir.file()).unwrap());
        let mut conn = Connection::open(dir.file()).unwrap();
        let next = "ALTER TABLE users ADD COLUMN email TEXT";
        let mut versions = vec![SCHEMA];
        versions.extend(MIGRATIONS);
        versions.push(next);
        apply_versions(&mut conn, &versions).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION + 1);
        // Again: nothing is applied twice (the ALTER would fail).
        apply_versions(&mut conn, &versions).unwrap();

        versions.push("CREATE TABLE later_table (id INTEGER PRIMARY KEY); THIS IS NOT SQL");
        let err = apply_versions(&mut conn, &versions).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version, .. } if version == SCHEMA_VERSION + 2),
            "{err:?}"
        );
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION + 1);
        let sessions: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'later_table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sessions, 0, "rolled back");
        drop(conn);
        // This build refuses the file the "newer" build wrote.
        assert!(matches!(
            Store::open(&dir.file()),
            Err(StoreError::TooNew { .. })
        ));
    }

    #[test]
    fn print_keys_made_before_hashing_keep_working() {
        let dir = TempDb::new("v2-keys");
        {
            let mut conn = Connection::open(dir.file()).unwrap();
            configure(&conn).unwrap();
            apply_versions(&mut conn, &[SCHEMA, MIGRATIONS[0]]).unwrap();
            conn.execute_batch(
                "INSERT INTO printers (address, hardware_xor, first_seen) VALUES ('000d6f000273ce0b', 7586148, 1);
                 INSERT INTO print_keys (printer_id, secret, created_at, uses) VALUES (1, 'abcdefghijklmnopqrstuvwx', 2, 5);
                 INSERT INTO print_key_senders (key_id, sender, uses) VALUES (1, 'Ada', 5);
                 INSERT INTO messages (printer_id, sender, content_kind, command_kind, page_png, page_width,
                     page_height, created_at, state, print_key_id) VALUES (1, 'Ada', 'text', 'x', x'00', 1, 1, 3, 'delivered', 1);",
            )
            .unwrap();
        }
        let store = Store::open(&dir.file()).unwrap();
        let (key, printer) = store
            .print_key("abcdefghijklmnopqrstuvwx")
            .unwrap()
            .unwrap();
        assert_eq!((key.id, key.prefix.as_str(), key.uses), (1, "abcd", 5));
        assert_eq!(key.default_sender(), "Print key 1");
        assert_eq!(printer.address.to_string(), "000d6f000273ce0b");
        assert_eq!(store.list_print_keys().unwrap()[0].senders, vec!["Ada"]);
        // The secret itself is gone from the file.
        let conn = store.lock();
        let leaked: i64 = conn
            .query_row(
                "SELECT count(*) FROM print_keys WHERE secret_hash LIKE '%abcdefgh%' OR prefix != 'abcd'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leaked, 0);
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on after the rebuild");
    }

    #[test]
    fn reads_go_on_while_another_process_holds_the_write_lock() {
        let dir = TempDb::new("reader");
        let store = Store::open(&dir.file()).unwrap();
        store.create_user("ada", None, 1).unwrap();
        let other = Connection::open(dir.file()).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO meta VALUES ('x', 'y');")
            .unwrap();
        let t = std::time::Instant::now();
        assert!(store.user_by_name("ada").unwrap().is_some());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the read waited for the writer"
        );
        other.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn an_unopenable_path_says_which_file() {
        let dir = TempDb::new("missing-folder");
        let path = dir.0.join("no-such-folder").join("sirius.db");
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-folder"), "{err}");
    }

    #[test]
    fn bad_stored_addresses_are_errors_not_panics() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.lock();
        let r: rusqlite::Result<DeviceAddress> =
            conn.query_row("SELECT 'not an address'", [], |r| r.get(0));
        assert!(r.is_err());
        let r: rusqlite::Result<HardwareXor> = conn.query_row("SELECT 16777216", [], |r| r.get(0));
        assert!(r.is_err());
    }
}
