//! `sirius backup` and `sirius restore` as a self-hoster uses them: the
//! real binary against the real database file of a real server, with
//! emulated bridges heartbeating over websockets while the backup runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{connect, eventually, get, heartbeat, power_on, send, server, temp_dir};
use sirius::protocol::{ClaimCode, DeviceAddress};
use sirius::store::{SCHEMA_VERSION, Store};

const CODE: &str = "n5ry-p6x6-kth7-7hc4";
const KITCHEN: &str = "000d6f000273ce0b";
const PASSWORD: &str = "correct horse battery staple";

fn sirius(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sirius"))
        .args(args)
        .env("SIRIUS_DB", db)
        .env_remove("SIRIUS_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn sirius_async(db: &Path, args: &[&str]) -> Output {
    let db = db.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sirius(&db, &args)
    })
    .await
    .unwrap()
}

/// Files in `dir` whose name starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
}

/// What a user checks in a database: ada signs in, owns the kitchen
/// printer, which gets its link key.
fn holds_the_data(db: &Path) -> Store {
    let store = Store::open(db).unwrap();
    assert!(
        store.verify_password("ada", PASSWORD).unwrap().is_some(),
        "ada signs in from {}",
        db.display()
    );
    let kitchen = store
        .printer_by_address(DeviceAddress::parse(KITCHEN).unwrap())
        .unwrap()
        .expect("the kitchen printer");
    assert_eq!(kitchen.owner.as_deref(), Some("ada"));
    assert_eq!(kitchen.name.as_deref(), Some("Kitchen"));
    assert!(
        store
            .link_key_for(DeviceAddress::parse(KITCHEN).unwrap())
            .unwrap()
            .is_some()
    );
    store
}

fn integrity_ok(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", db.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_while_bridges_heartbeat_then_restore_after_stopping() {
    let dir = temp_dir("backup-live");
    let db = dir.join("sirius.db");
    let s = server(&db).await;
    let store = Arc::clone(s.hub.store());
    let ada = store.create_user("ada", Some(PASSWORD), 1).unwrap();
    store
        .claim(ada.id, &ClaimCode::parse(CODE).unwrap(), "Kitchen", 1)
        .unwrap();
    // Some bulk, so the copy is not instantaneous.
    for i in 0..1500 {
        store.create_user(&format!("user{i}"), None, 2).unwrap();
    }

    // Three emulated bridges, each with a printer heartbeating every 50 ms.
    let stop = Arc::new(AtomicBool::new(false));
    // A failing assertion stops the bridges and the writer too.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_guard = StopOnDrop(Arc::clone(&stop));
    let heartbeats = Arc::new(AtomicU64::new(0));
    let mut bridges = Vec::new();
    let devices = [KITCHEN, "cc18aff27ed5cf3d", "11cc0f6aaeb07dad"];
    for (i, device) in devices.iter().enumerate() {
        let bridge = format!("000d6f0001b371{i:02x}");
        let mut ws = connect(&s).await;
        let stop = Arc::clone(&stop);
        let heartbeats = Arc::clone(&heartbeats);
        let device = device.to_string();
        bridges.push(tokio::spawn(async move {
            send(&mut ws, &power_on(&bridge)).await;
            let mut uptime = 1;
            while !stop.load(Ordering::Relaxed) {
                send(&mut ws, &heartbeat(&bridge, &device, uptime)).await;
                heartbeats.fetch_add(1, Ordering::Relaxed);
                uptime += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ws
        }));
    }
    for device in devices {
        let addr = DeviceAddress::parse(device).unwrap();
        assert!(
            eventually(5.0, || s.hub.is_online(addr)).await,
            "{device} online"
        );
        // Printers heard for the first time are written by the sweep.
        assert!(
            eventually(5.0, || store.printer_by_address(addr).unwrap().is_some()).await,
            "{device} written"
        );
    }
    // And a writer that never stops while backups are taken.
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        let writes = Arc::clone(&writes);
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                store.create_user(&format!("live{n}"), None, 3).unwrap();
                writes.fetch_add(1, Ordering::Relaxed);
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // Several backups while all that goes on.
    let mut backups = Vec::new();
    for i in 0..3 {
        let file = dir.join(format!("backup-{i}.db"));
        let before_beats = heartbeats.load(Ordering::Relaxed);
        let before_writes = writes.load(Ordering::Relaxed);
        let out = sirius_async(&db, &["backup", file.to_str().unwrap()]).await;
        assert!(out.status.success(), "{}", text(&out));
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        // It says what it made and how long it took.
        assert!(said.contains("backed up"), "{said}");
        assert!(said.contains(" kB") || said.contains(" MB"), "{said}");
        assert!(said.contains(" s"), "{said}");
        // The server goes on: bridges heartbeat, writes land, pages answer
        // (a backup this size takes milliseconds: checked around it).
        assert!(eventually(2.0, || heartbeats.load(Ordering::Relaxed) > before_beats).await);
        assert!(
            eventually(2.0, || writes.load(Ordering::Relaxed) > before_writes).await,
            "writes kept landing"
        );
        let (status, _) = get(&s, "/healthz").await;
        assert_eq!(status, 200);
        backups.push(file);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for device in devices {
        assert!(s.hub.is_online(DeviceAddress::parse(device).unwrap()));
    }
    // Each backup is whole, for its owner only, and holds the data.
    let mut users_before = 0;
    for file in &backups {
        integrity_ok(file);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        let copy = dir.join("check.db");
        std::fs::copy(file, &copy).unwrap();
        let users = holds_the_data(&copy).list_users().unwrap().len();
        assert!(users > 1500, "{users}");
        assert!(users >= users_before, "later backups hold more");
        users_before = users;
        let _ = std::fs::remove_file(&copy);
    }
    // An existing file is not replaced without --force.
    let taken = &backups[0];
    let before = std::fs::read(taken).unwrap();
    let out = sirius_async(&db, &["backup", taken.to_str().unwrap()]).await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(taken).unwrap(), before);
    let out = sirius_async(&db, &["backup", taken.to_str().unwrap(), "--force"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(
        std::fs::read(taken).unwrap(),
        before,
        "replaced with --force"
    );
    integrity_ok(taken);
    assert!(
        files_starting(&dir, "backup-0.db.partial").is_empty(),
        "no leftovers"
    );

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    for b in bridges {
        let _ = b.await;
    }

    // The backup to restore, then a change after it.
    let chosen = dir.join("chosen.db");
    let out = sirius_async(&db, &["backup", chosen.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    store.create_user("after-backup", None, 4).unwrap();

    // Restore refuses while the server runs, and changes nothing.
    let out = sirius_async(&db, &["restore", chosen.to_str().unwrap()]).await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stop it first"), "{err}");
    assert!(err.contains("systemctl stop sirius"), "{err}");
    assert!(
        err.contains(&std::process::id().to_string()),
        "names the server's pid: {err}"
    );
    assert!(files_starting(&dir, "sirius.db.before-restore").is_empty());
    assert!(store.user_by_name("after-backup").unwrap().is_some());

    // Stopped, it restores; the old database is kept beside it.
    drop(store);
    s.shutdown().await;
    let out = sirius_async(&db, &["restore", chosen.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("before-restore"), "{said}");
    let kept = files_starting(&dir, "sirius.db.before-restore-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let stamp = kept[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("sirius.db.before-restore-")
        .to_string();
    assert!(
        stamp.len() == 15 && stamp.as_bytes()[8] == b'-',
        "YYYYMMDD-HHMMSS: {stamp}"
    );
    assert!(
        !dir.join("sirius.db-wal").exists()
            || std::fs::metadata(dir.join("sirius.db-wal")).unwrap().len() == 0
    );
    assert!(files_starting(&dir, "sirius.db.restoring").is_empty());
    // The restored database holds what was backed up, not what came after.
    integrity_ok(&db);
    let restored = holds_the_data(&db);
    assert!(restored.user_by_name("after-backup").unwrap().is_none());
    drop(restored);
    // The old one, whole (its WAL folded in), holds what came after.
    integrity_ok(&kept[0]);
    let old = Store::open(&kept[0]).unwrap();
    assert!(old.user_by_name("after-backup").unwrap().is_some());
    drop(old);

    // A server starts on the restored database.
    let s = server(&db).await;
    let (status, _) = get(&s, "/healthz").await;
    assert_eq!(status, 200);
    assert!(s.hub.store().user_by_name("ada").unwrap().is_some());
    s.shutdown().await;
}

#[test]
fn a_damaged_or_too_new_backup_is_refused_and_changes_nothing() {
    let dir = temp_dir("restore-refused");
    let db = dir.join("sirius.db");
    {
        let store = Store::open(&db).unwrap();
        // The printer has called home once.
        store
            .ensure_printer(DeviceAddress::parse(KITCHEN).unwrap(), 1)
            .unwrap();
        let ada = store.create_user("ada", Some(PASSWORD), 1).unwrap();
        store
            .claim(ada.id, &ClaimCode::parse(CODE).unwrap(), "Kitchen", 1)
            .unwrap();
        for i in 0..300 {
            store.create_user(&format!("user{i}"), None, 2).unwrap();
        }
    }
    let good = dir.join("good.db");
    let out = sirius(&db, &["backup", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // Not a database at all.
    let text_file = dir.join("notes.db");
    std::fs::write(&text_file, "these are not the droids\n".repeat(500)).unwrap();
    // A database with damaged pages (the header intact).
    let damaged = dir.join("damaged.db");
    let mut bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > 8 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[3 * 4096 + 16..6 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    // A database from a newer Sirius.
    let newer = dir.join("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    // Another SQLite database, not Sirius's.
    let foreign = dir.join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup');")
        .unwrap();

    let before = std::fs::read(&db).unwrap();
    let listing = |dir: &Path| -> Vec<PathBuf> { files_starting(dir, "sirius.db") };
    let files_before = listing(&dir);
    for (file, says) in [
        (&text_file, "not a usable Sirius backup"),
        (&damaged, "not a usable Sirius backup"),
        (&newer, "newer Sirius"),
        (&foreign, "no Sirius database"),
        (&dir.join("missing.db"), "no such file"),
    ] {
        let out = sirius(&db, &["restore", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{}: {}", file.display(), text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{}: {err}", file.display());
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(std::fs::read(&db).unwrap(), before, "{}", file.display());
        let mut now = listing(&dir);
        now.retain(|p| !p.to_string_lossy().ends_with(".lock"));
        let mut was = files_before.clone();
        was.retain(|p| !p.to_string_lossy().ends_with(".lock"));
        assert_eq!(now, was, "no file added or removed for {}", file.display());
    }
    holds_the_data(&db);

    // The good one restores.
    let out = sirius(&db, &["restore", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    holds_the_data(&db);
}
