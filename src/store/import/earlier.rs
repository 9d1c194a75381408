//! Reading the earlier server's database: the Python Sirius (Flask,
//! SQLAlchemy, alembic) that ran BERG's Little Printer before this one.
//!
//! Owns the `--from` URL (`sqlite:///path`, `postgresql://…`, as its
//! `DATABASE_URL` was written), opening the source so that nothing in it can
//! change (SQLite read-only and `query_only`; PostgreSQL inside one
//! `READ ONLY`, `REPEATABLE READ` transaction that is rolled back), and
//! turning its tables into an [`EarlierData`] snapshot. Its schema, as its
//! alembic migrations define it (revisions 5ac2a9d2e622 → 36ba0c7b9fbc →
//! 18ec55ca3e22 → 15dd8689e7fe → 3a2c72f262b5 → 44c4368c2db1):
//!
//! * `user` (id, created, username, api_key): accounts; the username is a
//!   copy of the Twitter screen name.
//! * `twitter_o_auth` (user_id, screen_name, token, token_secret,
//!   last_friend_refresh, friends): the Twitter sign-in. No numeric Twitter
//!   id is kept, but a Twitter OAuth 1.0a access token starts with it
//!   (`12345-AbC…`). `friends` is a Python pickle of a list of
//!   `Friend(screen_name, name, profile_image_url)`: the people this user
//!   follows, who may print on this user's printers.
//! * `printer` (device_address, hardware_xor, name, owner_id,
//!   used_claim_code): one row per device address; the code gives the link
//!   key.
//! * `claim_code` (by_id, hardware_xor, claim_code, name): claims, the
//!   newest per hardware xor wins.
//! * `print_key` (secret, created, printer_id, and from 3a2c72f262b5
//!   number_of_uses and senders — a PostgreSQL array, so an SQLite database
//!   stops at 15dd8689e7fe — and parent_id, which the server never used).
//! * `message` (created, pixels — the printed page as PNG —, print_id,
//!   sender_name or, before 18ec55ca3e22, sender_id, target_printer_id,
//!   response_timestamp, failure_message).
//! * `bridge` and `device_log`: nothing a user needs (bridges register
//!   themselves; the log was never written); only counted.
//!
//! Columns are looked up, not assumed, so every revision reads.

use std::collections::HashSet;
use std::path::PathBuf;

use rusqlite::OpenFlags;

/// Why the earlier server's database could not be read. Written for the
/// person running the import.
#[derive(Debug, thiserror::Error)]
pub enum EarlierError {
    /// The `--from` value is not a database URL this command reads.
    #[error(
        "{0:?} is not a database URL Sirius can import from; give the earlier server's DATABASE_URL, e.g. sqlite:////var/lib/sirius/data.sqlite or postgresql://user:password@host/dbname"
    )]
    BadUrl(String),
    /// There is no file at the path the URL names.
    #[error(
        "there is no SQLite database at {0}: sqlite:///relative/path is relative to this folder, sqlite:////absolute/path starts at /"
    )]
    NoSuchFile(PathBuf),
    /// The SQLite file could not be opened or read.
    #[error(
        "could not read the SQLite database {path}: {source}; check the path (sqlite:///relative/path or sqlite:////absolute/path) and that this user may read it"
    )]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The PostgreSQL server refused or failed.
    #[error(
        "could not read the PostgreSQL database: {0}; check the URL, that the server runs and accepts this user, and that it needs no TLS (see the README, \"Moving over from the earlier server\")"
    )]
    Postgres(#[from] postgres::Error),
    /// The URL asks for TLS, which this build does not speak.
    #[error(
        "the URL asks for TLS (sslmode={0}); Sirius reads PostgreSQL without TLS only: copy the database to a server on this machine or reach it through an SSH tunnel, and use sslmode=disable"
    )]
    TlsRequired(String),
    /// The database is not the earlier server's.
    #[error(
        "this database has no table {0:?}: it does not look like the earlier Sirius server's database (tables user, twitter_o_auth, printer, claim_code, print_key, message)"
    )]
    NotEarlierServer(&'static str),
    /// A value that is not what the earlier server wrote.
    #[error("the earlier server's table {table} holds a value Sirius can't read: {detail}")]
    Unreadable { table: &'static str, detail: String },
}

/// An account of the earlier server (`user`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlierUser {
    pub id: i64,
    pub created: Option<i64>,
    pub username: Option<String>,
    pub api_key: Option<String>,
}

/// A Twitter sign-in (`twitter_o_auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierTwitter {
    pub id: i64,
    pub created: Option<i64>,
    pub user_id: Option<i64>,
    pub screen_name: Option<String>,
    /// The OAuth access token; its digits before the first `-` are the
    /// numeric Twitter id.
    pub token: Option<String>,
    /// The screen names this user follows; `Err` says why the pickle could
    /// not be read; `Ok(empty)` when none were stored.
    pub friends: Result<Vec<String>, String>,
}

impl Default for EarlierTwitter {
    fn default() -> Self {
        EarlierTwitter {
            id: 0,
            created: None,
            user_id: None,
            screen_name: None,
            token: None,
            friends: Ok(Vec::new()),
        }
    }
}

impl EarlierTwitter {
    /// The numeric Twitter id, from the access token (`ID-…`).
    pub fn twitter_id(&self) -> Option<String> {
        let token = self.token.as_deref()?.trim();
        let (id, rest) = token.split_once('-')?;
        (!id.is_empty()
            && id.len() <= 20
            && id.bytes().all(|b| b.is_ascii_digit())
            && !id.starts_with('0')
            && !rest.is_empty())
        .then(|| id.to_string())
    }
}

/// A printer row (`printer`): one per device address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlierPrinter {
    pub id: i64,
    pub created: Option<i64>,
    pub device_address: Option<String>,
    pub hardware_xor: Option<i64>,
    pub name: Option<String>,
    pub owner_id: Option<i64>,
    pub used_claim_code: Option<String>,
}

/// A claim (`claim_code`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlierClaim {
    pub id: i64,
    pub created: Option<i64>,
    pub by_id: Option<i64>,
    pub hardware_xor: Option<i64>,
    pub claim_code: Option<String>,
    pub name: Option<String>,
}

/// A print key (`print_key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlierPrintKey {
    pub id: i64,
    pub secret: Option<String>,
    pub created: Option<i64>,
    pub printer_id: Option<i64>,
    /// `None` before revision 3a2c72f262b5.
    pub number_of_uses: Option<i64>,
    /// Empty before revision 3a2c72f262b5; `None` entries were anonymous.
    pub senders: Vec<Option<String>>,
}

/// A printed message (`message`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlierMessage {
    pub id: i64,
    pub created: Option<i64>,
    /// The page as the earlier server stored it (PNG).
    pub pixels: Option<Vec<u8>>,
    pub sender_name: Option<String>,
    /// Before revision 18ec55ca3e22 the sender was a user id.
    pub sender_id: Option<i64>,
    pub target_printer_id: Option<i64>,
    pub response_timestamp: Option<i64>,
    pub failure_message: Option<String>,
}

/// Everything read from the earlier server, in one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct EarlierData {
    /// What the URL named, without its password (for the report).
    pub source: String,
    /// `alembic_version.version_num`, if the table exists.
    pub revision: Option<String>,
    pub users: Vec<EarlierUser>,
    pub twitter: Vec<EarlierTwitter>,
    pub printers: Vec<EarlierPrinter>,
    pub claims: Vec<EarlierClaim>,
    pub print_keys: Vec<EarlierPrintKey>,
    pub messages: Vec<EarlierMessage>,
    /// Rows of `bridge` (not brought over).
    pub bridges: u64,
    /// Rows of `device_log` (not brought over).
    pub device_log: u64,
}

/// The revisions of the earlier server's migrations, oldest first.
pub const KNOWN_REVISIONS: &[&str] = &[
    "5ac2a9d2e622",
    "36ba0c7b9fbc",
    "18ec55ca3e22",
    "15dd8689e7fe",
    "3a2c72f262b5",
    "44c4368c2db1",
];

/// Where the earlier server's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlierUrl {
    /// `sqlite:///relative/path` or `sqlite:////absolute/path`, as
    /// SQLAlchemy reads them.
    Sqlite(PathBuf),
    /// `postgresql://…` or `postgres://…`, handed to the `postgres` crate.
    Postgres(String),
}

impl EarlierUrl {
    /// Parses a `DATABASE_URL` of the earlier server.
    pub fn parse(url: &str) -> Result<EarlierUrl, EarlierError> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("sqlite:///") {
            if path.is_empty() {
                return Err(EarlierError::BadUrl(url.into()));
            }
            return Ok(EarlierUrl::Sqlite(PathBuf::from(path)));
        }
        // SQLAlchemy's dialect+driver form, e.g. postgresql+psycopg2://.
        let lower = url.to_ascii_lowercase();
        for scheme in ["postgresql://", "postgres://"] {
            if lower.starts_with(scheme) {
                return Ok(EarlierUrl::Postgres(url.to_string()));
            }
        }
        if let Some(rest) = lower.strip_prefix("postgresql+")
            && let Some(i) = rest.find("://")
        {
            let tail = &url["postgresql+".len() + i + 3..];
            return Ok(EarlierUrl::Postgres(format!("postgresql://{tail}")));
        }
        Err(EarlierError::BadUrl(redact(url)))
    }
}

/// The URL without its password, for messages and the report.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                ),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A value from either database.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    TextArray(Vec<Option<String>>),
}

impl Val {
    fn int(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            Val::Real(f) => Some(*f as i64),
            Val::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Val::Text(t) => Some(t.clone()),
            Val::Int(n) => Some(n.to_string()),
            Val::Bytes(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }

    fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Val::Bytes(b) => Some(b.clone()),
            Val::Text(t) => Some(t.as_bytes().to_vec()),
            _ => None,
        }
    }

    /// A SQLAlchemy `DateTime` (naive UTC) as unix seconds: SQLite keeps
    /// `YYYY-MM-DD HH:MM:SS.ffffff` text, PostgreSQL's `timestamp` is read
    /// as text in the same form.
    fn time(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            Val::Real(f) => Some(*f as i64),
            Val::Text(t) => parse_time(t),
            _ => None,
        }
    }
}

/// Parses a naive UTC date and time as SQLAlchemy and PostgreSQL write it.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let civil: jiff::civil::DateTime = text
        .parse()
        .ok()
        .or_else(|| text.replacen(' ', "T", 1).parse().ok())
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .ok()
        .map(|t| t.as_second())
}

/// A source database, either kind: which columns a table has, and rows.
trait Source {
    /// The columns of `table`, or `None` when there is no such table.
    fn columns(&mut self, table: &str) -> Result<Option<HashSet<String>>, EarlierError>;
    /// Runs a SELECT whose columns are given as (expression, kind).
    fn select(
        &mut self,
        table: &str,
        columns: &[(String, Kind)],
    ) -> Result<Vec<Vec<Val>>, EarlierError>;
    fn count(&mut self, table: &str) -> Result<u64, EarlierError>;
}

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Time,
    Bytes,
    TextArray,
}

/// Reads the earlier server's database at `url`, changing nothing in it.
pub fn read_earlier(url: &str) -> Result<EarlierData, EarlierError> {
    match EarlierUrl::parse(url)? {
        EarlierUrl::Sqlite(path) => {
            let sqlite_error = |source| EarlierError::Sqlite {
                path: path.clone(),
                source,
            };
            if !path.is_file() {
                return Err(EarlierError::NoSuchFile(path));
            }
            // Read-only, and no URI parsing of the name: the file is never
            // written, not even a journal.
            let conn = rusqlite::Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sqlite_error)?;
            conn.pragma_update(None, "query_only", "ON")
                .map_err(sqlite_error)?;
            // One read transaction: a consistent snapshot even if the
            // earlier server still runs.
            conn.execute_batch("BEGIN DEFERRED").map_err(sqlite_error)?;
            let mut source = SqliteSource {
                conn: &conn,
                path: path.clone(),
            };
            let mut data = read_all(&mut source)?;
            conn.execute_batch("ROLLBACK").map_err(sqlite_error)?;
            data.source = format!("sqlite:///{}", path.display());
            Ok(data)
        }
        EarlierUrl::Postgres(pg_url) => {
            let config: postgres::Config = pg_url.parse()?;
            // `prefer` (the default) falls back to a plain connection.
            if matches!(config.get_ssl_mode(), postgres::config::SslMode::Require) {
                return Err(EarlierError::TlsRequired("require".into()));
            }
            let mut client = config.connect(postgres::NoTls)?;
            let mut tx = client
                .build_transaction()
                .read_only(true)
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()?;
            let mut source = PostgresSource { tx: &mut tx };
            let mut data = read_all(&mut source)?;
            tx.rollback()?;
            data.source = redact(&pg_url);
            Ok(data)
        }
    }
}

/// Quotes an identifier (`user` is a reserved word in PostgreSQL).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns to read from `table`: each wanted column that exists, read
/// as `kind`; missing ones come back as NULL.
fn read_table(
    source: &mut dyn Source,
    table: &'static str,
    wanted: &[(&str, Kind)],
    required: bool,
) -> Result<Vec<Vec<Val>>, EarlierError> {
    let Some(present) = source.columns(table)? else {
        if required {
            return Err(EarlierError::NotEarlierServer(table));
        }
        return Ok(Vec::new());
    };
    if !present.contains("id") {
        return Err(EarlierError::Unreadable {
            table,
            detail: "it has no id column".into(),
        });
    }
    let existing: Vec<(String, Kind)> = wanted
        .iter()
        .filter(|(c, _)| present.contains(*c))
        .map(|(c, k)| (c.to_string(), *k))
        .collect();
    let rows = source.select(table, &existing)?;
    // Put the values back in the order asked for, NULL where missing.
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut values = row.into_iter();
            wanted
                .iter()
                .map(|(c, _)| {
                    if present.contains(*c) {
                        values.next().unwrap_or(Val::Null)
                    } else {
                        Val::Null
                    }
                })
                .collect()
        })
        .collect())
}

fn id_of(table: &'static str, v: &Val) -> Result<i64, EarlierError> {
    v.int().ok_or_else(|| EarlierError::Unreadable {
        table,
        detail: format!("an id that is not a number ({v:?})"),
    })
}

fn read_all(source: &mut dyn Source) -> Result<EarlierData, EarlierError> {
    use Kind::*;
    let mut data = EarlierData::default();
    if let Some(cols) = source.columns("alembic_version")?
        && cols.contains("version_num")
    {
        data.revision = source
            .select("alembic_version", &[("version_num".into(), Text)])?
            .into_iter()
            .next()
            .and_then(|r| r.first().and_then(Val::text));
    }

    for r in read_table(
        source,
        "user",
        &[
            ("id", Int),
            ("created", Time),
            ("username", Text),
            ("api_key", Text),
        ],
        true,
    )? {
        data.users.push(EarlierUser {
            id: id_of("user", &r[0])?,
            created: r[1].time(),
            username: r[2].text(),
            api_key: r[3].text(),
        });
    }

    for r in read_table(
        source,
        "twitter_o_auth",
        &[
            ("id", Int),
            ("created", Time),
            ("user_id", Int),
            ("screen_name", Text),
            ("token", Text),
            ("friends", Bytes),
        ],
        true,
    )? {
        data.twitter.push(EarlierTwitter {
            id: id_of("twitter_o_auth", &r[0])?,
            created: r[1].time(),
            user_id: r[2].int(),
            screen_name: r[3].text(),
            token: r[4].text(),
            friends: match r[5].bytes() {
                None => Ok(Vec::new()),
                Some(b) => friends_from_pickle(&b),
            },
        });
    }

    for r in read_table(
        source,
        "printer",
        &[
            ("id", Int),
            ("created", Time),
            ("device_address", Text),
            ("hardware_xor", Int),
            ("name", Text),
            ("owner_id", Int),
            ("used_claim_code", Text),
        ],
        true,
    )? {
        data.printers.push(EarlierPrinter {
            id: id_of("printer", &r[0])?,
            created: r[1].time(),
            device_address: r[2].text(),
            hardware_xor: r[3].int(),
            name: r[4].text(),
            owner_id: r[5].int(),
            used_claim_code: r[6].text(),
        });
    }

    for r in read_table(
        source,
        "claim_code",
        &[
            ("id", Int),
            ("created", Time),
            ("by_id", Int),
            ("hardware_xor", Int),
            ("claim_code", Text),
            ("name", Text),
        ],
        true,
    )? {
        data.claims.push(EarlierClaim {
            id: id_of("claim_code", &r[0])?,
            created: r[1].time(),
            by_id: r[2].int(),
            hardware_xor: r[3].int(),
            claim_code: r[4].text(),
            name: r[5].text(),
        });
    }

    // print_key arrived with revision 15dd8689e7fe.
    for r in read_table(
        source,
        "print_key",
        &[
            ("id", Int),
            ("secret", Text),
            ("created", Time),
            ("printer_id", Int),
            ("number_of_uses", Int),
            ("senders", TextArray),
        ],
        false,
    )? {
        data.print_keys.push(EarlierPrintKey {
            id: id_of("print_key", &r[0])?,
            secret: r[1].text(),
            created: r[2].time(),
            printer_id: r[3].int(),
            number_of_uses: r[4].int(),
            senders: match &r[5] {
                Val::TextArray(a) => a.clone(),
                _ => Vec::new(),
            },
        });
    }

    for r in read_table(
        source,
        "message",
        &[
            ("id", Int),
            ("created", Time),
            ("pixels", Bytes),
            ("sender_name", Text),
            ("sender_id", Int),
            ("target_printer_id", Int),
            ("response_timestamp", Time),
            ("failure_message", Text),
        ],
        true,
    )? {
        data.messages.push(EarlierMessage {
            id: id_of("message", &r[0])?,
            created: r[1].time(),
            pixels: r[2].bytes(),
            sender_name: r[3].text(),
            sender_id: r[4].int(),
            target_printer_id: r[5].int(),
            response_timestamp: r[6].time(),
            failure_message: r[7].text(),
        });
    }

    if source.columns("bridge")?.is_some() {
        data.bridges = source.count("bridge")?;
    }
    if source.columns("device_log")?.is_some() {
        data.device_log = source.count("device_log")?;
    }
    Ok(data)
}

/// The screen names in a pickled list of `Friend(screen_name, name,
/// profile_image_url)` named tuples (any pickle protocol Python 2 or 3
/// wrote). Unpickling here builds plain values: nothing is executed.
pub fn friends_from_pickle(bytes: &[u8]) -> Result<Vec<String>, String> {
    use serde_pickle::{DeOptions, HashableValue, Value};
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let options = DeOptions::new()
        .keep_restore_state()
        .replace_unresolved_globals()
        .decode_strings();
    let value = serde_pickle::value_from_slice(bytes, options)
        .map_err(|e| format!("the friends list is not a pickle Sirius can read ({e})"))?;
    fn screen_name(v: &Value) -> Option<String> {
        match v {
            // Friend(...) comes back as its constructor arguments.
            Value::Tuple(items) | Value::List(items) => match items.first() {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Bytes(b)) => String::from_utf8(b.clone()).ok(),
                // NEWOBJ_EX: (args, kwargs).
                Some(inner @ (Value::Tuple(_) | Value::List(_))) => screen_name(inner),
                _ => None,
            },
            Value::Dict(map) => map.iter().find_map(|(k, v)| match (k, v) {
                (HashableValue::String(k), Value::String(s)) if k == "screen_name" => {
                    Some(s.clone())
                }
                _ => None,
            }),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }
    match value {
        Value::None => Ok(Vec::new()),
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|f| {
                screen_name(f).ok_or_else(|| {
                    format!("a friend in the list is not Friend(screen_name, …): {f:?}")
                })
            })
            .collect(),
        other => Err(format!("the friends list is not a list: {other:?}")),
    }
}

struct SqliteSource<'c> {
    conn: &'c rusqlite::Connection,
    path: PathBuf,
}

impl SqliteSource<'_> {
    fn err(&self, source: rusqlite::Error) -> EarlierError {
        EarlierError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

impl Source for SqliteSource<'_> {
    fn columns(&mut self, table: &str) -> Result<Option<HashSet<String>>, EarlierError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .map_err(|e| self.err(e))?;
        let cols: HashSet<String> = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok((!cols.is_empty()).then_some(cols))
    }

    fn select(
        &mut self,
        table: &str,
        columns: &[(String, Kind)],
    ) -> Result<Vec<Vec<Val>>, EarlierError> {
        let list: Vec<String> = columns.iter().map(|(c, _)| quote(c)).collect();
        let order = if columns.iter().any(|(c, _)| c == "id") {
            " ORDER BY \"id\""
        } else {
            ""
        };
        let sql = format!("SELECT {} FROM {}{order}", list.join(", "), quote(table));
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let n = columns.len();
        let rows = stmt
            .query_map([], |row| {
                (0..n)
                    .map(|i| {
                        use rusqlite::types::ValueRef;
                        Ok(match row.get_ref(i)? {
                            ValueRef::Null => Val::Null,
                            ValueRef::Integer(v) => Val::Int(v),
                            ValueRef::Real(v) => Val::Real(v),
                            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                            ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Val>>>()
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn count(&mut self, table: &str) -> Result<u64, EarlierError> {
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }
}

struct PostgresSource<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
}

impl Source for PostgresSource<'_, '_> {
    fn columns(&mut self, table: &str) -> Result<Option<HashSet<String>>, EarlierError> {
        let rows = self.tx.query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )?;
        let cols: HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        Ok((!cols.is_empty()).then_some(cols))
    }

    fn select(
        &mut self,
        table: &str,
        columns: &[(String, Kind)],
    ) -> Result<Vec<Vec<Val>>, EarlierError> {
        // Everything is cast to a type read the same way whatever the
        // column was declared as.
        let list: Vec<String> = columns
            .iter()
            .map(|(c, k)| match k {
                Kind::Int => format!("{}::bigint", quote(c)),
                Kind::Text | Kind::Time => format!("{}::text", quote(c)),
                Kind::Bytes => format!("{}::bytea", quote(c)),
                Kind::TextArray => format!("{}::text[]", quote(c)),
            })
            .collect();
        let order = if columns.iter().any(|(c, _)| c == "id") {
            " ORDER BY \"id\""
        } else {
            ""
        };
        let sql = format!("SELECT {} FROM {}{order}", list.join(", "), quote(table));
        let rows = self.tx.query(sql.as_str(), &[])?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(columns.len());
            for (i, (_, kind)) in columns.iter().enumerate() {
                let v = match kind {
                    Kind::Int => row.try_get::<_, Option<i64>>(i)?.map(Val::Int),
                    Kind::Text | Kind::Time => row.try_get::<_, Option<String>>(i)?.map(Val::Text),
                    Kind::Bytes => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::Bytes),
                    Kind::TextArray => row
                        .try_get::<_, Option<Vec<Option<String>>>>(i)?
                        .map(Val::TextArray),
                };
                values.push(v.unwrap_or(Val::Null));
            }
            out.push(values);
        }
        Ok(out)
    }

    fn count(&mut self, table: &str) -> Result<u64, EarlierError> {
        let row = self.tx.query_one(
            format!("SELECT count(*)::bigint FROM {}", quote(table)).as_str(),
            &[],
        )?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_the_earlier_server_wrote_them() {
        assert_eq!(
            EarlierUrl::parse("sqlite:////var/lib/sirius/data.sqlite").unwrap(),
            EarlierUrl::Sqlite("/var/lib/sirius/data.sqlite".into())
        );
        assert_eq!(
            EarlierUrl::parse("sqlite:///data-dev.sqlite").unwrap(),
            EarlierUrl::Sqlite("data-dev.sqlite".into())
        );
        for pg in [
            "postgresql://u:p@db/sirius",
            "postgres://u:p@db/sirius",
            "POSTGRES://u@db/sirius",
        ] {
            assert!(matches!(
                EarlierUrl::parse(pg).unwrap(),
                EarlierUrl::Postgres(_)
            ));
        }
        assert_eq!(
            EarlierUrl::parse("postgresql+psycopg2://u:p@db/x").unwrap(),
            EarlierUrl::Postgres("postgresql://u:p@db/x".into())
        );
        for bad in ["", "sqlite:///", "mysql://u:p@h/db", "/var/lib/data.sqlite"] {
            assert!(matches!(
                EarlierUrl::parse(bad),
                Err(EarlierError::BadUrl(_))
            ));
        }
        let err = EarlierUrl::parse("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgresql://ada:s3cret@db:5432/sirius?x=1"),
            "postgresql://ada:***@db:5432/sirius?x=1"
        );
        assert_eq!(redact("postgresql://ada@db/x"), "postgresql://ada@db/x");
        assert_eq!(redact("postgresql:///x"), "postgresql:///x");
    }

    #[test]
    fn times_as_sqlalchemy_and_postgres_write_them() {
        assert_eq!(parse_time("2015-01-26 10:34:21.975511"), Some(1422268461));
        assert_eq!(parse_time("2015-01-26T10:34:21"), Some(1422268461));
        assert_eq!(parse_time("2015-01-26"), Some(1422230400));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn twitter_ids_come_from_access_tokens() {
        let t = |token: &str| EarlierTwitter {
            token: Some(token.into()),
            ..EarlierTwitter::default()
        };
        assert_eq!(
            t("783214-AbCdEf0123").twitter_id().as_deref(),
            Some("783214")
        );
        assert_eq!(
            t("1087654321098765432-xYz").twitter_id().as_deref(),
            Some("1087654321098765432")
        );
        for bad in ["", "abc-def", "123", "-abc", "123-", "0123-abc"] {
            assert_eq!(t(bad).twitter_id(), None, "{bad:?}");
        }
        assert_eq!(EarlierTwitter::default().twitter_id(), None);
    }
}
