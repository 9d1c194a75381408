//! A database from every earlier schema version opens with this build and
//! is upgraded, keeping what a user would check: people still sign in,
//! claimed printers still get their link key, print keys made before keys
//! were hashed still print, messages and their pages are still there.
//!
//! Each earlier version has a frozen fixture, tests/fixtures/schema/vN.sql:
//! that version's schema and rows in every table. The fixtures are checked
//! against the schema files themselves (schema.sql and the migrations up to
//! that version), so a fixture can't drift from the version it claims.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::temp_dir;
use rusqlite::Connection;
use sirius::protocol::{BridgeAddress, DeviceAddress};
use sirius::raster::{decode_image, raw_page_from_image};
use sirius::store::{SCHEMA_VERSION, Store, StoreError};

const PASSWORD: &str = "correct horse battery staple";
const KEY_WORKING: &str = "k4x9mq2w7rt5ybn3vc8h";
const KEY_REVOKED: &str = "z8v2c6n1m5q9w3e7r0t4";
const BRIDGE: &str = "000d6f0001b3719d";
const KITCHEN: &str = "000d6f000273ce0b";
const DESK: &str = "cc18aff27ed5cf3d";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(version: i64) -> String {
    let path = root().join(format!("tests/fixtures/schema/v{version}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; every schema version before {SCHEMA_VERSION} needs a fixture",
            path.display()
        )
    })
}

/// The SQL of each version: schema.sql, then the migrations in order.
fn version_files() -> Vec<String> {
    let mut files = vec![std::fs::read_to_string(root().join("schema.sql")).unwrap()];
    let mut migrations: Vec<PathBuf> = std::fs::read_dir(root().join("src/store/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    migrations.sort();
    files.extend(
        migrations
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap()),
    );
    assert_eq!(files.len() as i64, SCHEMA_VERSION, "one file per version");
    files
}

/// A database file loaded from the fixture of `version`.
fn load(version: i64, dir: &Path) -> PathBuf {
    let db = dir.join(format!("v{version}.db"));
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&fixture(version))
        .unwrap_or_else(|e| panic!("fixture v{version}: {e}"));
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(found, version, "fixture v{version} records its version");
    db
}

/// Tables and indexes with their columns: what a schema is, for comparing.
fn shape(conn: &Connection) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let objects: Vec<(String, String)> = conn
        .prepare(
            "SELECT type, name FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name) in objects {
        let columns: Vec<String> = if kind == "table" {
            conn.prepare(&format!("PRAGMA table_xinfo(\"{name}\")"))
                .unwrap()
                .query_map([], |r| {
                    Ok(format!(
                        "{} {} notnull={} default={:?} pk={}",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        } else {
            conn.prepare(&format!("PRAGMA index_xinfo(\"{name}\")"))
                .unwrap()
                .query_map([], |r| Ok(format!("{:?}", r.get::<_, Option<String>>(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        out.insert(format!("{kind} {name}"), columns);
    }
    out
}

#[test]
fn each_fixture_is_true_to_its_version() {
    let files = version_files();
    let dir = temp_dir("schema-shapes");
    for version in 1..SCHEMA_VERSION {
        // Built from the files, as a server of that version built it.
        let reference = Connection::open_in_memory().unwrap();
        reference
            .create_scalar_function(
                "sirius_sha256",
                1,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                |ctx| Ok(sirius::store::sha256_hex(&ctx.get::<String>(0)?)),
            )
            .unwrap();
        for sql in &files[..version as usize] {
            reference.execute_batch(sql).unwrap();
        }
        let db = load(version, &dir);
        let loaded = Connection::open(&db).unwrap();
        assert_eq!(
            shape(&loaded),
            shape(&reference),
            "tests/fixtures/schema/v{version}.sql is not the schema of version {version}"
        );
        // Rows in every table.
        for table in shape(&loaded)
            .keys()
            .filter_map(|k| k.strip_prefix("table "))
        {
            let rows: i64 = loaded
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(rows > 0, "fixture v{version}: table {table} has no rows");
        }
        let fk: i64 = loaded
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk, 0, "fixture v{version}: rows refer to missing rows");
    }
}

fn link_key_of(code: &str) -> String {
    let vectors: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/vectors.json")).unwrap(),
    )
    .unwrap();
    vectors["claim_codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["code"] == code)
        .unwrap()["link_key_b64"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_earlier_version_opens_upgrades_and_keeps_its_data() {
    let dir = temp_dir("schema-upgrades");
    for version in 1..SCHEMA_VERSION {
        let db = load(version, &dir);
        let store = Store::open(&db)
            .unwrap_or_else(|e| panic!("a version {version} database does not open: {e}"));
        let now: i64 = Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(now, SCHEMA_VERSION, "v{version} upgraded");
        let ctx = format!("from schema version {version}");

        // People still sign in; a user without a password still can't.
        let ada = store.verify_password("ada", PASSWORD).unwrap();
        assert_eq!(ada.map(|u| u.username), Some("ada".to_string()), "{ctx}");
        assert!(store.verify_password("ada", "wrong").unwrap().is_none());
        assert!(store.verify_password("bob", "").unwrap().is_none());

        // Printers keep their owners and names; claimed ones get the link
        // key of their claim code (so they stay linked, no reset needed).
        let printers = store.list_printers().unwrap();
        assert_eq!(printers.len(), 3, "{ctx}");
        let kitchen = store
            .printer_by_address(DeviceAddress::parse(KITCHEN).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(kitchen.owner.as_deref(), Some("ada"), "{ctx}");
        assert_eq!(kitchen.name.as_deref(), Some("Kitchen"), "{ctx}");
        let key = store
            .link_key_for(DeviceAddress::parse(KITCHEN).unwrap())
            .unwrap()
            .expect("a claimed printer has a link key");
        assert_eq!(key.to_base64(), link_key_of("n5ry-p6x6-kth7-7hc4"), "{ctx}");
        let key = store
            .link_key_for(DeviceAddress::parse(DESK).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(key.to_base64(), link_key_of("ebqp-pyg7-4b0f-qbdk"), "{ctx}");
        assert!(
            store
                .link_key_for(DeviceAddress::parse("11cc0f6aaeb07dad").unwrap())
                .unwrap()
                .is_none(),
            "{ctx}: unclaimed stays unclaimed"
        );

        // Bridges, their log, and the command ids already used.
        let bridges = store.list_bridges().unwrap();
        assert_eq!(bridges.len(), 1);
        assert_eq!(
            bridges[0].firmware_version.as_deref(),
            Some("v2.3.1-f3c7946")
        );
        let log = store
            .bridge_log(BridgeAddress::parse(BRIDGE).unwrap(), 10)
            .unwrap();
        assert_eq!(log.len(), 2, "{ctx}");
        assert!(store.command_id_high_water().unwrap() >= 1000, "{ctx}");
        let cmd = store.command(1000).unwrap().expect("command 1000");
        assert_eq!(cmd.return_code, Some(0), "{ctx}");

        if version >= 2 {
            // A print key made before keys were hashed still prints, by
            // its secret; a revoked one still doesn't.
            let (key, printer) = store
                .print_key(KEY_WORKING)
                .unwrap()
                .unwrap_or_else(|| panic!("{ctx}: the print key no longer works"));
            assert_eq!(printer.address.to_string(), KITCHEN);
            assert_eq!(key.uses, 2);
            assert!(store.print_key(KEY_REVOKED).unwrap().is_none(), "{ctx}");
            assert!(store.print_key("not-a-key").unwrap().is_none());

            // Messages and their pages.
            let history = store.recent_messages(kitchen.id, 10).unwrap();
            assert_eq!(history.len(), 1, "{ctx}");
            let m = &history[0];
            assert_eq!(m.sender, "Ada's phone");
            assert_eq!(m.state.as_str(), "delivered");
            let png = store.message_page(m.id).unwrap().expect("the page");
            let page = raw_page_from_image(&decode_image(&png).unwrap()).unwrap();
            assert_eq!((page.width(), page.height()), (m.page_width, m.page_height));
            assert_eq!(page.width(), 384);
            assert!(page.black_count() > 0, "{ctx}: the page has print on it");
            // The queued message is still queued for its printer.
            let desk = store
                .printer_by_address(DeviceAddress::parse(DESK).unwrap())
                .unwrap()
                .unwrap();
            let queued = store.next_queued(desk.id).unwrap().expect("queued");
            assert_eq!(queued.content_kind, "html");
            // And new keys can be made next to the old ones.
            let made = store.create_print_key(
                kitchen.id,
                "n3wk3ymadeafter0upgrade",
                Some("After the upgrade"),
                None,
                1_800_000_000,
            );
            assert!(made.is_ok(), "{ctx}: {made:?}");
            assert!(
                store
                    .print_key("n3wk3ymadeafter0upgrade")
                    .unwrap()
                    .is_some()
            );
            assert!(store.print_key(KEY_WORKING).unwrap().is_some());
        }

        // New accounts work in the upgraded file.
        store
            .create_user("carol", Some("another good password"), 1_800_000_000)
            .unwrap();
        assert!(
            store
                .verify_password("carol", "another good password")
                .unwrap()
                .is_some()
        );
        drop(store);
        // Opening again changes nothing and fails nothing.
        Store::open(&db).unwrap();
    }
}

#[test]
fn a_database_from_a_newer_sirius_is_refused_and_left_alone() {
    let dir = temp_dir("schema-too-new");
    let db = load(SCHEMA_VERSION - 1, &dir);
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    // What the file holds: its schema, version and rows. (Opening may set
    // WAL mode in the header before the version is read; no data changes.)
    let contents = |db: &Path| -> String {
        let conn = Connection::open(db).unwrap();
        let mut out: Vec<String> = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.push(format!(
            "version {} users {:?}",
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            conn.prepare("SELECT id, username, password_hash FROM users ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?
                )))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        ));
        out.join("\n")
    };
    let before = contents(&db);
    let err = Store::open(&db).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("newer Sirius"), "{text}");
    assert!(text.contains("upgrade Sirius"), "{text}");
    assert!(contents(&db) == before, "the database was changed");
}
