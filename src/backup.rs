//! Backups and restores of the database file.
//!
//! [`backup`] copies the database while the server runs: SQLite's
//! `VACUUM INTO` reads one consistent snapshot (WAL mode: readers never
//! stop the writer, so bridges keep heartbeating and messages keep
//! printing) into a new, compact file. The copy is written beside the
//! destination first and moved into place when complete, so a failed
//! backup never leaves half a file under the name, and it never replaces
//! an existing file unless asked to.
//!
//! [`restore`] puts a backup in place of the database. It takes the
//! database's lock ([`crate::lockfile`]), so it refuses while a server
//! runs; it checks the backup first (`PRAGMA integrity_check`, a schema
//! version this build knows) and changes nothing when the check fails; it
//! keeps the old database beside the new one as
//! `sirius.db.before-restore-YYYYMMDD-HHMMSS` (its WAL checkpointed into
//! it first, and any `-wal`/`-shm`/`-journal` file moved along, so the kept
//! file is whole and no stale WAL is applied to the restored one). A
//! backup from an older schema is upgraded by the server when it next
//! opens it, as any older database is.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::lockfile::{DbLock, LockError};
use crate::store::SCHEMA_VERSION;

/// What went wrong in a backup or a restore. Said for the person at the
/// command line.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// There is no database to back up.
    #[error(
        "there is no database at {}; point --db (or SIRIUS_DB) at the server's database",
        .0.display()
    )]
    NoDatabase(PathBuf),
    /// The destination exists and may not be replaced.
    #[error(
        "{} already exists; choose another name, or add --force to replace it",
        .0.display()
    )]
    Exists(PathBuf),
    /// A server (or another restore) holds the database.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The file is not an SQLite database, or is damaged.
    #[error(
        "{} is not a usable Sirius backup: {reason}; nothing was changed",
        file.display()
    )]
    Unusable {
        /// The backup file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The backup was written by a newer Sirius.
    #[error(
        "{} was written by a newer Sirius (schema {found}, this build knows up to {supported}); upgrade Sirius first, then restore; nothing was changed",
        file.display()
    )]
    TooNew {
        /// The backup file.
        file: PathBuf,
        /// Its schema version.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// SQLite failed while copying.
    #[error("could not {what}: {source}")]
    Sqlite {
        /// What was being done.
        what: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A file could not be read, written or moved.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Sqlite { what, source }
}

/// What a backup made.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The size of the backup file.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Flushes a folder's entries (renames, new files) to the disk.
fn sync_dir(file: &Path) {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies the database at `db` into `to` while the server may run. Refuses
/// to replace an existing `to` unless `overwrite`.
pub fn backup(db: &Path, to: &Path, overwrite: bool) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    if !db.is_file() {
        return Err(BackupError::NoDatabase(db.to_path_buf()));
    }
    if !overwrite && to.exists() {
        return Err(BackupError::Exists(to.to_path_buf()));
    }
    let to_text = to.to_str().ok_or_else(|| BackupError::Io {
        what: format!("write to {}", to.display()),
        source: std::io::Error::other("the file name is not valid UTF-8"),
    })?;
    let partial = with_suffix(to, &format!(".partial-{}", std::process::id()));
    let partial_text = format!("{to_text}.partial-{}", std::process::id());
    let _ = std::fs::remove_file(&partial);
    let made = (|| {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql(format!("open the database {}", db.display())))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(sql("set a busy timeout"))?;
        conn.execute("VACUUM INTO ?1", [&partial_text])
            .map_err(sql(format!(
                "copy {} into {} (is there room on that disk, and may Sirius write there?)",
                db.display(),
                to.display()
            )))?;
        drop(conn);
        // It holds password hashes and keys: for its owner only.
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("protect {}", partial.display())))?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io(format!("flush {} to the disk", partial.display())))?;
        if overwrite {
            std::fs::rename(&partial, to).map_err(io(format!("move the copy to {}", to.display())))
        } else {
            // A hard link never replaces an existing file; where links are
            // not supported (FAT on a USB stick), check and rename.
            match std::fs::hard_link(&partial, to) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&partial);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(BackupError::Exists(to.to_path_buf()))
                }
                Err(_) if to.exists() => Err(BackupError::Exists(to.to_path_buf())),
                Err(_) => std::fs::rename(&partial, to)
                    .map_err(io(format!("move the copy to {}", to.display()))),
            }
        }
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made?;
    sync_dir(to);
    let bytes = std::fs::metadata(to)
        .map_err(io(format!("read {}", to.display())))?
        .len();
    Ok(BackupReport {
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Checks that `conn` holds a whole Sirius database this build can open,
/// and returns its schema version.
fn check(conn: &Connection, file: &Path) -> Result<i64, BackupError> {
    let unusable = |reason: String| BackupError::Unusable {
        file: file.to_path_buf(),
        reason,
    };
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| unusable(format!("it is not an SQLite database, or is damaged ({e})")))?;
    if problems != ["ok"] {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        return Err(unusable(format!(
            "SQLite's integrity check found damage ({})",
            shown.join("; ")
        )));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| unusable(e.to_string()))?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'
             AND name IN ('users', 'printers', 'claims', 'bridges')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| unusable(e.to_string()))?;
    if version < 1 || tables < 4 {
        return Err(unusable("it holds no Sirius database".into()));
    }
    if version > SCHEMA_VERSION {
        return Err(BackupError::TooNew {
            file: file.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Checks a backup file without changing it: whole, a Sirius database, a
/// schema version this build knows. Returns the version.
pub fn check_backup(file: &Path) -> Result<i64, BackupError> {
    if !file.is_file() {
        return Err(BackupError::Unusable {
            file: file.to_path_buf(),
            reason: "there is no such file".into(),
        });
    }
    let conn =
        Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
            BackupError::Unusable {
                file: file.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
    check(&conn, file)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The schema version of the restored database (the server upgrades an
    /// older one when it starts).
    pub schema_version: i64,
    /// Where the database that was replaced is kept; `None` when there was
    /// none.
    pub previous: Option<PathBuf>,
    /// The size of the restored database.
    pub bytes: u64,
}

/// The side files SQLite may keep next to a database.
const SIDE_FILES: &[&str] = &["-wal", "-shm", "-journal"];

/// Puts the backup `from` in place of the database at `db`. Refuses while
/// a server holds the database, and when the backup fails its checks
/// (then nothing is changed).
pub fn restore(db: &Path, from: &Path) -> Result<RestoreReport, BackupError> {
    let _lock = DbLock::try_acquire(db)?;
    check_backup(from)?;

    // A private copy next to the database (same file system, so the final
    // step is a rename), checked again: the copy is what goes in place.
    let incoming = with_suffix(db, ".restoring");
    let remove_incoming = || {
        let _ = std::fs::remove_file(&incoming);
        for side in SIDE_FILES {
            let _ = std::fs::remove_file(with_suffix(&incoming, side));
        }
    };
    remove_incoming();
    let prepared = (|| {
        std::fs::copy(from, &incoming).map_err(io(format!(
            "copy {} to {}",
            from.display(),
            incoming.display()
        )))?;
        // A backup taken by copying a live database may have its WAL
        // beside it: bring it along so SQLite applies it.
        let from_wal = with_suffix(from, "-wal");
        if from_wal.is_file() {
            std::fs::copy(&from_wal, with_suffix(&incoming, "-wal"))
                .map_err(io(format!("copy {}", from_wal.display())))?;
        }
        let conn = Connection::open(&incoming)
            .map_err(sql(format!("open the copy {}", incoming.display())))?;
        let version = check(&conn, from)?;
        // Everything in the main file, no side files left.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sql("fold the backup's WAL into it"))?;
        conn.close().map_err(|(_, e)| sql("close the copy")(e))?;
        std::fs::File::open(&incoming)
            .and_then(|f| f.sync_all())
            .map_err(io(format!("flush {} to the disk", incoming.display())))?;
        Ok(version)
    })();
    let schema_version = match prepared {
        Ok(v) => v,
        Err(e) => {
            remove_incoming();
            return Err(e);
        }
    };

    // The old database: its WAL folded in, then moved aside with any side
    // files, so the restored file never meets a stale WAL.
    let old_meta = std::fs::metadata(db).ok();
    let previous = if old_meta.is_some() {
        if let Ok(conn) = Connection::open(db) {
            let _ = conn.busy_timeout(Duration::from_secs(5));
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            let _ = conn.close();
        }
        let stamp = jiff::ZonedDateTime::now()
            .strftime("%Y%m%d-%H%M%S")
            .to_string();
        let mut kept = with_suffix(db, &format!(".before-restore-{stamp}"));
        let mut n = 2;
        while kept.exists() {
            kept = with_suffix(db, &format!(".before-restore-{stamp}-{n}"));
            n += 1;
        }
        if let Err(e) = std::fs::rename(db, &kept) {
            remove_incoming();
            return Err(io(format!(
                "move the old database aside to {}",
                kept.display()
            ))(e));
        }
        for side in SIDE_FILES {
            let from_side = with_suffix(db, side);
            if from_side.exists() {
                let _ = std::fs::rename(&from_side, with_suffix(&kept, side));
            }
        }
        Some(kept)
    } else {
        None
    };

    // The restored file belongs to whoever owned the old one (the service
    // user, when root runs the restore), with the same mode.
    if let Some(meta) = &old_meta {
        let _ = std::fs::set_permissions(
            &incoming,
            std::fs::Permissions::from_mode(meta.mode() & 0o777),
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let _ = std::os::unix::fs::chown(&incoming, Some(meta.uid()), Some(meta.gid()));
        }
    } else {
        let _ = std::fs::set_permissions(&incoming, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::rename(&incoming, db).map_err(io(format!(
        "move the restored database to {} (the old one is kept as {})",
        db.display(),
        previous
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "nothing".into())
    )))?;
    sync_dir(db);
    let bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    Ok(RestoreReport {
        schema_version,
        previous,
        bytes,
    })
}
