//! `sirius import --from URL`: the earlier (Python) server's database, in
//! a real SQLite file and on a real PostgreSQL server started here, brought
//! over by the real binary; then checked the way a self-hoster would: the
//! printers are claimed by the right people with the right names and link
//! keys, the old print keys work, Twitter users are linked, a second run
//! adds nothing, and the source is unchanged.
//!
//! The fixtures (tests/fixtures/earlier-server/) are written from reading
//! the earlier server's alembic migrations; see generate.py there.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::Digest as _;
use sirius::protocol::{ClaimCode, DeviceAddress};
use sirius::raster::convert::{Dither, page_from_image_bytes};
use sirius::store::import::read_earlier;
use sirius::store::{MessageState, Store};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/earlier-server");

/// The addresses and codes generate.py used.
fn expected() -> HashMap<String, String> {
    std::fs::read_to_string(format!("{FIXTURES}/expected.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sirius-import-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Imports through the library, as `sirius import` does, and returns the
/// report as the `--json` output has it. (The binary itself is run by the
/// tests of its messages and one full run below.)
fn import(db: &Path, url: &str, extra: &[&str]) -> Value {
    let dry_run = extra.contains(&"--dry-run");
    let data = read_earlier(url).unwrap_or_else(|e| panic!("reading {url}: {e}"));
    let store = Store::open(db).unwrap();
    let report = store.import_earlier(&data, 1_800_000_000, dry_run).unwrap();
    serde_json::to_value(&report).unwrap()
}

/// Runs the real binary: `sirius --db DB import --from URL ARGS`.
fn run_cli(db: &Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sirius"))
        .arg("--db")
        .arg(db)
        .args(["import", "--from", url])
        .args(args)
        .env("SIRIUS_LOG", "warn")
        .output()
        .unwrap()
}

fn added(report: &Value, what: &str) -> u64 {
    report[what]["added"].as_u64().unwrap()
}

fn skipped_for(report: &Value, what: &str, reason_part: &str) -> u64 {
    report[what]["skipped"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(reason, _)| reason.contains(reason_part))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// Row counts of every table of our database.
fn our_counts(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

fn query_one<T: rusqlite::types::FromSql>(db: &Path, sql: &str, p: &[&dyn rusqlite::ToSql]) -> T {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, p, |r| r.get(0))
        .unwrap()
}

/// Our database with a local "bob" made by the admin before the import, so
/// the earlier server's bob must get another name.
fn our_store(dir: &TempDir) -> PathBuf {
    let db = dir.0.join("sirius.db");
    let store = Store::open(&db).unwrap();
    store.create_user("bob", Some("local password"), 1).unwrap();
    db
}

/// What a user would check after the import, for both sources. `full`:
/// the source is at the last revision (print keys with use counts and
/// senders); otherwise at 36ba0c7b9fbc, where SQLite databases stay.
fn check_imported(db: &Path, report: &Value, full: bool) {
    let e = expected();
    let address = |k: &str| DeviceAddress::parse(&e[k]).unwrap();
    let code = |k: &str| ClaimCode::parse(&e[k]).unwrap();
    let store = Store::open(db).unwrap();

    // Users: ada, bob (renamed: a local bob exists), Carol X (fitted),
    // dave; none has a password.
    assert_eq!(added(report, "users"), 4, "{report:#}");
    let ada = store.user_by_name("ada").unwrap().unwrap();
    let bob = store.user_by_name("bob-2").unwrap().unwrap();
    let carol = store.user_by_name("Carol_X").unwrap().unwrap();
    let dave = store.user_by_name("dave").unwrap().unwrap();
    for u in [&ada, &bob, &carol, &dave] {
        assert!(!u.has_password, "{u:?}");
    }
    assert!(
        store.user_by_name("bob").unwrap().unwrap().has_password,
        "the local bob is untouched"
    );
    assert_eq!(
        store
            .verify_password("bob", "local password")
            .unwrap()
            .map(|u| u.id),
        Some(store.user_by_name("bob").unwrap().unwrap().id)
    );

    // Twitter sign-in finds ada and the imported bob by their Twitter ids.
    let linked = |twitter_id: &str| -> Option<(i64, String)> {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row(
                "SELECT user_id, screen_name FROM twitter_identities WHERE twitter_id = ?1",
                [twitter_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
    };
    assert_eq!(linked("1001"), Some((ada.id, "ada".into())));
    assert_eq!(linked("1002"), Some((bob.id, "bob".into())));
    assert_eq!(added(report, "twitter_links"), 2);
    assert_eq!(skipped_for(report, "twitter_links", "no Twitter id"), 1);
    assert_eq!(
        skipped_for(report, "users", "no username and no Twitter screen name"),
        1
    );
    let n_links: i64 = query_one(db, "SELECT count(*) FROM twitter_identities", &[]);
    assert_eq!(n_links, 2);

    // Bob's API key works as its hash.
    let bob_key_hash: Option<String> = query_one(
        db,
        "SELECT api_key_hash FROM users WHERE id = ?1",
        &[&bob.id],
    );
    assert_eq!(
        bob_key_hash.as_deref(),
        Some(sirius::store::sha256_hex("BobsApiKey0123456789abcdefghijkl").as_str())
    );

    // Ada's printer, reset once on the earlier server: its current address
    // is hers, named as the printer row said, with the link key of the code
    // it used — no reset needed.
    let kitchen = store
        .printer_by_address(address("ada_new"))
        .unwrap()
        .unwrap();
    assert_eq!(kitchen.owner.as_deref(), Some("ada"));
    assert_eq!(kitchen.name.as_deref(), Some("Kitchen"));
    assert_eq!(
        store.link_key_for(address("ada_new")).unwrap(),
        Some(code("code_ada_2").link_key())
    );
    // Its address before the reset follows the same (newest) claim.
    let old = store
        .printer_by_address(address("ada_old"))
        .unwrap()
        .unwrap();
    assert_eq!(old.owner_id, Some(ada.id));
    assert_eq!(old.claim_id, kitchen.claim_id);
    assert_eq!(old.first_seen, 1454321400, "2016-02-01 10:10:00 UTC");

    // Bob's printer used a code with no claim_code row: still his.
    let desk = store.printer_by_address(address("bob")).unwrap().unwrap();
    assert_eq!(desk.owner_id, Some(bob.id));
    assert_eq!(desk.name.as_deref(), Some("Bob's desk"));
    assert_eq!(
        store.link_key_for(address("bob")).unwrap(),
        Some(code("code_bob").link_key())
    );

    // Carol claimed a printer that never called home: when it does, it is
    // hers and gets its key.
    assert_eq!(store.printer_by_address(address("carol")).unwrap(), None);
    assert_eq!(
        store.link_key_for(address("carol")).unwrap(),
        Some(code("code_carol").link_key())
    );
    // A printer nobody claimed is not brought over.
    assert_eq!(store.printer_by_address(address("loose")).unwrap(), None);
    assert_eq!(added(report, "printers"), 3);
    assert_eq!(skipped_for(report, "printers", "never claimed"), 1);

    // Claims: ada's two codes, bob's, carol's; a typo and a code of a
    // missing user are skipped.
    assert_eq!(added(report, "claims"), 4);
    assert_eq!(skipped_for(report, "claims", "not a valid claim code"), 1);
    assert_eq!(
        skipped_for(report, "claims", "user was not brought over"),
        1
    );
    assert_eq!(store.user_by_id(ada.id).unwrap().unwrap().printer_count, 2);

    // Print keys (from revision 15dd8689e7fe on): the same secrets print
    // to the same printers.
    if full {
        check_print_keys(&store, report, kitchen.id, ada.id);
    } else {
        assert_eq!(
            report["print_keys"],
            serde_json::json!({"added": 0, "already": 0, "skipped": {}})
        );
    }

    // Friends: ada follows bob and Carol X, bob follows ada.
    let shared_with = |xor_of: &str| -> Vec<i64> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let xor = address(xor_of).hardware_xor().value();
        let mut ids: Vec<i64> = conn
            .prepare("SELECT user_id FROM shares WHERE hardware_xor = ?1")
            .unwrap()
            .query_map([xor], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ids.sort();
        ids
    };
    let mut bob_and_carol = vec![bob.id, carol.id];
    bob_and_carol.sort();
    assert_eq!(shared_with("ada_new"), bob_and_carol);
    assert_eq!(shared_with("bob"), [ada.id]);
    assert_eq!(added(report, "shares"), 3);
    assert_eq!(skipped_for(report, "shares", "never signed up"), 1);

    // Messages: four pages, all history, nothing to send again.
    let kitchen_msgs = store.recent_messages(kitchen.id, 10).unwrap();
    let desk_msgs = store.recent_messages(desk.id, 10).unwrap();
    assert_eq!(kitchen_msgs.len(), 2);
    assert_eq!(desk_msgs.len(), 2);
    let delivered = kitchen_msgs.iter().find(|m| m.sender == "bob").unwrap();
    assert_eq!(delivered.state, MessageState::Delivered);
    assert_eq!(delivered.created_at, 1498896000, "2017-07-01 08:00:00 UTC");
    assert_eq!(delivered.command_id, None, "old print ids are not ours");
    assert_eq!((delivered.page_width, delivered.page_height), (384, 48));
    let offline = kitchen_msgs.iter().find(|m| m.id != delivered.id).unwrap();
    assert_eq!(offline.state, MessageState::Failed);
    assert_eq!(offline.sender, if full { "Key k1ad" } else { "ada" });
    assert_eq!(offline.attempts, 0, "it never reached the printer");
    let states: Vec<MessageState> = desk_msgs.iter().map(|m| m.state).collect();
    assert!(states.contains(&MessageState::TimedOut), "{states:?}");
    let problem = desk_msgs
        .iter()
        .find(|m| m.return_code == Some(128))
        .unwrap();
    assert_eq!(problem.state, MessageState::Failed);
    assert_eq!(problem.sender, "Unknown sender");
    assert!(store.printers_with_queued().unwrap().is_empty());
    // The page prints exactly as the earlier server stored it.
    let png = store.message_page(delivered.id).unwrap().unwrap();
    let ours = page_from_image_bytes(&png, Dither::Threshold).unwrap().page;
    assert!(ours.black_count() > 0);
    assert_eq!(ours, stored_page(0, 48));
    assert_eq!(added(report, "messages"), 4);
    assert_eq!(skipped_for(report, "messages", "no page stored"), 1);
    assert_eq!(
        skipped_for(report, "messages", "printer was not brought over"),
        1
    );
    assert_eq!(skipped_for(report, "messages", "not an image"), 1);
}

fn check_print_keys(store: &Store, report: &Value, kitchen_id: i64, ada_id: i64) {
    let e = expected();
    let address = |k: &str| DeviceAddress::parse(&e[k]).unwrap();
    let key = |secret: &str| store.print_key(secret).unwrap();
    let (k1, p1) = key("k1adakitchen0000abcd").expect("ada's key works");
    assert_eq!(p1.address, address("ada_new"));
    assert_eq!(k1.created_by, Some(ada_id));
    assert_eq!(
        key("k2bobsdesk000000wxyz").unwrap().1.address,
        address("bob")
    );
    assert_eq!(
        key("k3adaoldaddress00000").unwrap().1.address,
        address("ada_old")
    );
    assert!(
        key("k4loose0000000000000").is_none(),
        "its printer was never claimed"
    );
    assert_eq!(
        key("HandMadeKey-With.Caps").unwrap().1.address,
        address("bob"),
        "stored even though /printkey/ refuses its shape today"
    );
    assert!(key("k1adakitchen0000abce").is_none());
    assert_eq!(added(report, "print_keys"), 4);
    assert_eq!(
        skipped_for(report, "print_keys", "printer was not brought over"),
        1
    );
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("4 of 20 characters, 1 of 21 characters"),
        "{notes}"
    );
    assert!(
        notes.contains("1 imported print key(s) are not 20-64"),
        "{notes}"
    );
    assert_eq!(k1.uses, 5);
    let keys = store.print_keys_of(kitchen_id).unwrap();
    let mut senders = keys.iter().find(|k| k.id == k1.id).unwrap().senders.clone();
    senders.sort();
    assert_eq!(senders, ["Ada", "IFTTT"], "the anonymous sender is dropped");
}

/// The page generate.py drew: 8-pixel squares, every third black.
fn stored_page(seed: u32, height: u32) -> sirius::raster::Page {
    sirius::raster::Page::from_fn(384, height, |x, y| (x / 8 + y / 8 + seed).is_multiple_of(3))
        .unwrap()
}

/// The second run adds nothing and changes no row.
fn check_second_run(db: &Path, url: &str, full: bool) {
    let before = our_counts(db);
    let again = import(db, url, &[]);
    for what in [
        "users",
        "twitter_links",
        "api_keys",
        "claims",
        "printers",
        "shares",
        "print_keys",
        "messages",
    ] {
        assert_eq!(added(&again, what), 0, "{what}: {again:#}");
    }
    assert_eq!(again["users"]["already"], 4);
    assert_eq!(again["claims"]["already"], 4);
    assert_eq!(again["print_keys"]["already"], if full { 4 } else { 0 });
    assert_eq!(again["messages"]["already"], 4);
    assert_eq!(again["shares"]["already"], 3);
    assert_eq!(our_counts(db), before);
}

fn sha256_file(path: &Path) -> String {
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn import_from_an_sqlite_file() {
    let dir = TempDir::new("sqlite");
    let source = dir.0.join("data.sqlite");
    {
        let conn = rusqlite::Connection::open(&source).unwrap();
        conn.execute_batch(&std::fs::read_to_string(format!("{FIXTURES}/sqlite.sql")).unwrap())
            .unwrap();
    }
    let source_hash = sha256_file(&source);
    // SQLAlchemy's form for an absolute path: four slashes.
    let url = format!("sqlite:///{}", source.display());
    assert!(url.starts_with("sqlite:////"));

    // A dry run reports and writes nothing.
    let db = our_store(&dir);
    let counts = our_counts(&db);
    let dry = import(&db, &url, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(added(&dry, "printers"), 3);
    assert_eq!(our_counts(&db), counts);

    let report = import(&db, &url, &[]);
    assert_eq!(report["revision"], "36ba0c7b9fbc");
    check_imported(&db, &report, false);
    check_second_run(&db, &url, false);
    // The command itself, as a person runs it: a third time, nothing new.
    let out = run_cli(&db, &url, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Imported from sqlite:////"), "{text}");
    assert!(
        text.contains("Nothing new: everything was already here."),
        "{text}"
    );
    let out = run_cli(&db, &url, &["--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["printers"]["already"], 3, "{json:#}");
    assert_eq!(
        sha256_file(&source),
        source_hash,
        "the source file is unchanged"
    );
    let files: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("data.sqlite"))
        .collect();
    assert_eq!(
        files,
        ["data.sqlite"],
        "no journal or WAL left by the import"
    );
}

#[test]
fn the_people_running_it_are_told_what_is_wrong() {
    let dir = TempDir::new("errors");
    let db = dir.0.join("sirius.db");
    let run = |url: &str| {
        let out = run_cli(&db, url, &[]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = run(&format!("sqlite:///{}/nope.sqlite", dir.0.display()));
    assert!(missing.contains("nope.sqlite"), "{missing}");
    let mysql = run("mysql://u:hunter2@host/db");
    assert!(mysql.contains("DATABASE_URL"), "{mysql}");
    assert!(!mysql.contains("hunter2"), "{mysql}");
    // A database that is not the earlier server's.
    let other = dir.0.join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = run(&format!("sqlite:///{}", other.display()));
    assert!(
        err.contains("does not look like the earlier Sirius"),
        "{err}"
    );
    // TLS is refused with a way out.
    let tls = run("postgresql://u:p@127.0.0.1:1/db?sslmode=require");
    assert!(tls.contains("TLS"), "{tls}");
    assert!(
        !db.exists(),
        "nothing is written when the source can't be read"
    );
}

/// A PostgreSQL server of our own, in a temp folder, on a free port; stopped
/// when dropped.
struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
}

const PG_USER: &str = "sirius_old";
const PG_PASSWORD: &str = "correct horse";

fn postgres_bin() -> PathBuf {
    let find = || -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .collect();
        found.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        found.pop()
    };
    if let Some(bin) = find() {
        return bin;
    }
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and this test is not root: install Debian's postgresql package"
    );
    let ok = Command::new("apt-get")
        .arg("update")
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "could not install Debian's postgresql package (apt-get install -y postgresql failed)"
    );
    find().expect("postgresql was installed but /usr/lib/postgresql/*/bin/initdb is missing")
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn start() -> Postgres {
        let bin = postgres_bin();
        let dir = TempDir::new("postgres");
        // PostgreSQL refuses to run as root.
        let run_as = (unsafe { libc::geteuid() } == 0).then(|| {
            let has_postgres = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .is_ok_and(|o| o.status.success());
            if has_postgres { "postgres" } else { "nobody" }.to_string()
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pwfile = dir.0.join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        if let Some(user) = &run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(&dir.0)
                .status()
                .unwrap()
                .success();
            assert!(ok, "could not give {} to {user}", dir.0.display());
        }
        let pg = Postgres {
            dir,
            bin,
            run_as,
            port,
        };
        let data = pg.dir.0.join("data");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = pg
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(pg.dir.0.join("log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
                pg.port,
                pg.dir.0.display()
            ))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(pg.dir.0.join("log")).unwrap_or_default()
        );
        pg
    }

    fn url(&self, scheme: &str, db: &str) -> String {
        format!(
            "{scheme}://{PG_USER}:{}@127.0.0.1:{}/{db}",
            PG_PASSWORD.replace(' ', "%20"),
            self.port
        )
    }

    fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url("postgresql", db), postgres::NoTls).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Every table's row count and an md5 of all its rows.
fn pg_fingerprint(client: &mut postgres::Client) -> Vec<(String, i64, String)> {
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 9, "{tables:?}");
    tables
        .into_iter()
        .map(|t| {
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(*)::bigint, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))
                         FROM \"{t}\" x"
                    ),
                    &[],
                )
                .unwrap();
            (t, row.get(0), row.get(1))
        })
        .collect()
}

#[test]
fn import_from_a_postgresql_server() {
    let pg = Postgres::start();
    let mut admin = pg.client("postgres");
    admin.batch_execute("CREATE DATABASE earlier").unwrap();
    let mut earlier = pg.client("earlier");
    earlier
        .batch_execute(&std::fs::read_to_string(format!("{FIXTURES}/postgres.sql")).unwrap())
        .unwrap();
    let before = pg_fingerprint(&mut earlier);

    let dir = TempDir::new("from-postgres");
    let db = our_store(&dir);
    let url = pg.url("postgresql", "earlier");
    let report = import(&db, &url, &[]);
    assert_eq!(report["revision"], "44c4368c2db1");
    assert!(
        !report["source"].as_str().unwrap().contains("horse"),
        "the password is not repeated: {}",
        report["source"]
    );
    check_imported(&db, &report, true);
    // The other URL form Heroku and others write.
    check_second_run(&db, &pg.url("postgres", "earlier"), true);
    assert_eq!(
        pg_fingerprint(&mut earlier),
        before,
        "the source is unchanged"
    );

    // A wrong password is a clear error, and nothing is written.
    let counts = our_counts(&db);
    let out = run_cli(
        &db,
        &format!("postgresql://{PG_USER}:wrong@127.0.0.1:{}/earlier", pg.port),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not read the PostgreSQL database"),
        "{err}"
    );
    assert_eq!(our_counts(&db), counts);
}
