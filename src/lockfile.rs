//! The database's lock file: who may use the database file as a whole.
//!
//! `sirius serve` holds an exclusive advisory lock (`flock`) on a file next
//! to the database (`sirius.db.lock` for `sirius.db`) for as long as it
//! runs; `sirius restore`, which replaces the database file, takes the same
//! lock and so refuses while a server runs (and a server refuses to start
//! during a restore, or while another server uses the same file). The lock
//! is the kernel's: it goes away with the process, however it ends, so a
//! crash never leaves a stale lock behind. The file itself stays and holds
//! the process id of the last holder, for the message.
//!
//! Other tools (`sirius user`, `sirius backup`, …) don't take the lock:
//! SQLite's own locking lets them work next to a running server.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another Sirius process{} is using the database {} (a running server, or a restore); stop it first (for the service: systemctl stop sirius)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        db.display()
    )]
    Held {
        /// The database file.
        db: PathBuf,
        /// The holder's process id, when it wrote one.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error(
        "could not lock {}: {source}; check that the folder exists and Sirius may write there",
        path.display()
    )]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The lock file of the database at `db`: the same path with `.lock`
/// appended.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// An exclusive lock on a database, released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct DbLock {
    path: PathBuf,
    // Holding the open file holds the lock.
    _file: File,
}

impl DbLock {
    /// Takes the lock without waiting: [`LockError::Held`] when another
    /// process (or another `DbLock` in this one) has it.
    pub fn try_acquire(db: &Path) -> Result<DbLock, LockError> {
        let path = lock_path(db);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Read-write to record our pid; a lock file made by another user
        // (root running a restore) may only be readable, which is enough
        // for the lock itself.
        let (mut file, writable) = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                (File::open(&path).map_err(io)?, false)
            }
            Err(e) => return Err(io(e)),
        };
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    db: db.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            return Err(io(err));
        }
        if writable {
            // Best effort: the pid only makes the message more helpful.
            let _ = file
                .set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| writeln!(file, "{}", std::process::id()));
        }
        Ok(DbLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!(
            "sirius-lock-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("sirius.db");
        let first = DbLock::try_acquire(&db).unwrap();
        assert_eq!(first.path(), dir.join("sirius.db.lock"));
        // flock locks belong to the open file, so a second open in the same
        // process conflicts as another process would.
        let err = DbLock::try_acquire(&db).unwrap_err();
        match &err {
            LockError::Held { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("systemctl stop sirius"), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(first);
        let again = DbLock::try_acquire(&db).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_folder_says_which_file() {
        let db = Path::new("/nonexistent-sirius-folder/sirius.db");
        let err = DbLock::try_acquire(db).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("sirius.db.lock"), "{err}");
    }
}
