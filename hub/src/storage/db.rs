//! The hub's SQL facade: one connection type over SQLite (rusqlite) and
//! PostgreSQL (the blocking `postgres` client), so every statement of the
//! store is written once.
//!
//! - SQL is written with `$1`, `$2`, … placeholders (PostgreSQL's); on SQLite
//!   they are rewritten to `?1`, `?2`, … when a statement is prepared (quoted
//!   literals are left alone). The portable subset: `INSERT … ON CONFLICT DO
//!   NOTHING` (not `INSERT OR IGNORE`), `RETURNING`, `CAST(SUM(x) AS BIGINT)`
//!   (PostgreSQL's `SUM` of a `BIGINT` is `NUMERIC`), `CASE` instead of the
//!   two-argument `MIN`/`MAX`. The few statements that need JSON or string
//!   aggregation are written once per dialect ([`Conn::pick`]).
//! - Parameters and rows are the small owned [`Value`] (NULL, 64-bit integer,
//!   text, bytes): integers are `INTEGER`/`BIGINT`, bytes `BLOB`/`BYTEA`,
//!   booleans (`EXISTS`) come back as 0/1.
//! - Writes: [`Conn::begin_write`] is `BEGIN IMMEDIATE` on SQLite and, on
//!   PostgreSQL, `BEGIN` followed by `pg_advisory_xact_lock(`[`WRITER_LOCK`]`)`
//!   and the audit sequencer's lock: serialized with every write of every
//!   instance (migrations, rebuild, the audit start-up check, export heads).
//!   The writer thread begins with [`Conn::begin_unlocked`] and each job takes
//!   finer locks (`super::serial`). Locks end with `COMMIT`/`ROLLBACK`, or
//!   when the server sees an instance die mid-transaction.
//! - Rows are read into memory per statement (the store's queries return few
//!   rows); [`Conn::for_each`] streams large scans (the audit log, a rebuild)
//!   in constant memory — a cursor fetched in pages on PostgreSQL, so the
//!   callback may run other statements on the same connection.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;

use crate::storage::pg_tls;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// The advisory lock every write transaction takes on PostgreSQL.
pub const WRITER_LOCK: i64 = 0x6361_6a61_6875_6221; // "cajahub!"

/// The audit sequencer's lock (two-integer advisory lock space).
pub const SEQUENCER_LOCK: (i32, i32) = (0x6361_0004, 0);

/// Rows fetched per page by [`Conn::for_each`] on PostgreSQL.
const FETCH_PAGE: usize = 1000;

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (one file, one writer thread).
    Sqlite,
    /// PostgreSQL (one or more hub instances).
    Postgres,
}

/// Where the hub's database is.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection string (`postgres://user@host:port/db`).
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            // The URL may carry a password.
            Database::Postgres(url) => write!(f, "Postgres({})", redact(url)),
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(url) => write!(f, "{}", redact(url)),
        }
    }
}

/// A connection URL without its password: the user info keeps the user
/// name only (the last `@` ends it, so an unencoded `@` in the password does
/// not leak its tail), and a `password=` query option is masked.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((user, host)) => {
            out.push_str(user.split(':').next().unwrap_or(""));
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(before_query),
    }
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

impl Database {
    /// `postgres://…` / `postgresql://…` is PostgreSQL, anything else an
    /// SQLite path (relative paths are taken from `base`).
    pub fn parse(text: &str, base: &Path) -> Database {
        let t = text.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            Database::Postgres(t.to_owned())
        } else {
            let p = Path::new(t);
            Database::Sqlite(if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            })
        }
    }

    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Sqlite(_) => Dialect::Sqlite,
            Database::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    /// `query_row` found no row.
    #[error("the query returned no rows")]
    NoRows,
    /// A column does not hold the type asked for.
    #[error("column {index}: {message}")]
    Type {
        /// The column.
        index: usize,
        /// What was found.
        message: String,
    },
    /// A statement the facade cannot run on this backend.
    #[error("{0}")]
    Unsupported(String),
    /// The PostgreSQL URL cannot be used as it is (TLS settings; names
    /// `database`, never shows the password).
    #[error(transparent)]
    PgUrl(#[from] pg_tls::PgUrlError),
}

impl From<pg_tls::ConnectError> for DbError {
    fn from(e: pg_tls::ConnectError) -> Self {
        match e {
            pg_tls::ConnectError::Url(u) => DbError::PgUrl(u),
            pg_tls::ConnectError::Postgres(p) => DbError::Postgres(p),
        }
    }
}

/// A PostgreSQL error with the server's message (the client's `Display`
/// says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; {d}"));
            }
            if let Some(w) = db.where_() {
                m.push_str(&format!("; where: {w}"));
            }
            m
        }
        None => e.to_string(),
    }
}

impl DbError {
    /// Whether the connection itself is gone (the server closed it, the
    /// network failed): the connection must be replaced.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Postgres(e) => e.is_closed(),
            _ => false,
        }
    }
}

/// `Option` for "no row", as rusqlite's `OptionalExtension`.
pub trait OptionalExtension<T> {
    /// `NoRows` becomes `Ok(None)`.
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// What can be a parameter.
pub trait ToValue {
    /// The parameter's value.
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// A statement's parameters.
pub trait Params {
    /// The values, in placeholder order.
    fn values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl Params for Vec<Value> {
    fn values(self) -> Vec<Value> {
        self
    }
}
impl Params for [&dyn ToValue; 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}
macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
        impl<T: ToValue> Params for &[T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// Parameters of mixed types, as rusqlite's `params!`.
#[macro_export]
macro_rules! sql_params {
    () => { &[] as &[&dyn $crate::storage::db::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::storage::db::ToValue),+] as &[&dyn $crate::storage::db::ToValue] };
}
pub use crate::sql_params as params;

/// What a column can be read as.
pub trait FromValue: Sized {
    /// Converts the column's value.
    fn from_value(v: &Value) -> Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> Result<Self, String> {
        u32::try_from(i64::from_value(v)?).map_err(|e| e.to_string())
    }
}
impl FromValue for i32 {
    fn from_value(v: &Value) -> Result<Self, String> {
        i32::try_from(i64::from_value(v)?).map_err(|e| e.to_string())
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            // SQLite keeps what it is given: text read as bytes.
            Value::Text(s) => Ok(s.clone().into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A column index (a trait, as in rusqlite, so `r.get(0)` needs no suffix).
pub trait RowIndex {
    /// The index.
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One row, read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` as `T` (the first type parameter is there so calls
    /// written for rusqlite, `get::<_, String>(0)`, read the same).
    pub fn get<I: RowIndex, T: FromValue>(&self, index: I) -> Result<T, DbError> {
        let index = index.index();
        let v = self.values.get(index).ok_or_else(|| DbError::Type {
            index,
            message: "no such column".into(),
        })?;
        T::from_value(v).map_err(|message| DbError::Type { index, message })
    }

    /// Column `index` as stored.
    pub fn value(&self, index: usize) -> Result<&Value, DbError> {
        self.values.get(index).ok_or_else(|| DbError::Type {
            index,
            message: "no such column".into(),
        })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no column.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The rows of a query, as rusqlite's `Rows` (`while let Some(r) = rows.next()?`).
#[derive(Debug)]
pub struct Rows {
    rows: std::vec::IntoIter<Row>,
    current: Option<Row>,
}

impl Rows {
    /// The next row.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<&Row>, DbError> {
        self.current = self.rows.next();
        Ok(self.current.as_ref())
    }
}

struct Pg {
    /// Always `Some` but while dropped.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// Every call on a thread of its own (see [`Conn::connect_postgres_detached`]).
    detached: bool,
}

/// Runs `f` on the connection's client: on this thread, or — for a
/// detached connection — on a scoped thread of its own, since the blocking
/// client cannot run on a thread that drives asynchronous tasks.
fn run<T: Send>(pg: &RefCell<Pg>, f: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
    let mut guard = pg.borrow_mut();
    let p = &mut *guard;
    let client = p
        .client
        .as_mut()
        .expect("a PostgreSQL client until dropped");
    if p.detached {
        std::thread::scope(|s| {
            s.spawn(move || f(client))
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    } else {
        f(client)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Closing the connection blocks too: a detached one closes on a thread
        // of its own, and so does any connection dropped where a tokio
        // runtime is current (the last clone of a `Storage` dropped by async
        // code drops its read connections there).
        let elsewhere = self.detached || tokio::runtime::Handle::try_current().is_ok();
        if let (true, Some(c)) = (elsewhere, self.client.take()) {
            let _ = std::thread::spawn(move || drop(c)).join();
        }
    }
}

enum Kind {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Pg>>),
}

/// A connection to the hub's database.
pub struct Conn {
    kind: Kind,
    /// Open transaction (PostgreSQL: [`Conn::for_each`] needs one).
    in_tx: Cell<bool>,
    /// Cursors opened so far (their names).
    cursors: Cell<u64>,
    /// Statements sent so far ([`Conn::statements`]).
    sent: Cell<u64>,
    /// SQLite: the `?N` form of each `$N` statement prepared so far, so a
    /// cached statement is not rewritten on every call (bounded by
    /// [`REWRITTEN_MAX`]).
    rewritten: RefCell<HashMap<String, String>>,
    /// Rows queued by [`Conn::defer_row`]: per `INSERT` head, its rows and
    /// their writer.
    later: RefCell<Vec<Deferred>>,
}

/// Rows of one `INSERT` head queued by [`Conn::defer_row`], and their writer.
type Deferred = (&'static str, Vec<Vec<Value>>, WriteRows);

/// Writes queued rows of one `INSERT` head multi-row (`super::multirow`).
pub(crate) type WriteRows = fn(&Conn, &str, Vec<Vec<Value>>) -> Result<(), DbError>;

/// Most statements [`Conn`] keeps rewritten; past it the map starts over
/// (the store's statements are a few hundred).
const REWRITTEN_MAX: usize = 4_096;

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("dialect", &self.dialect())
            .finish_non_exhaustive()
    }
}

/// `$N` placeholders rewritten as SQLite's `?N` (quoted text untouched).
fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>, index: usize) -> Result<Value, DbError> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| DbError::Type {
                    index,
                    message: e.to_string(),
                })?
                .to_owned(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) => {
            return Err(DbError::Type {
                index,
                message: "a floating-point value (the hub stores none)".into(),
            })
        }
    })
}

fn sqlite_row(r: &rusqlite::Row<'_>, n: usize) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(from_sqlite(r.get_ref(i)?, i)?);
    }
    Ok(Row { values })
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            _ => {
                return Err(format!(
                    "a column of type {ty} (cast it to BIGINT or TEXT in the statement)"
                )
                .into())
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn pg_row(r: &postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(r.len());
    for i in 0..r.len() {
        values.push(r.try_get::<usize, Value>(i)?);
    }
    Ok(Row { values })
}

fn pg_params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Conn {
    /// Wraps an SQLite connection.
    pub fn from_sqlite(conn: rusqlite::Connection) -> Conn {
        Conn {
            kind: Kind::Sqlite(conn),
            in_tx: Cell::new(false),
            cursors: Cell::new(0),
            sent: Cell::new(0),
            rewritten: RefCell::new(HashMap::new()),
            later: RefCell::new(Vec::new()),
        }
    }

    /// Connects to PostgreSQL: without TLS to a local server only, else over
    /// TLS with the server's certificate verified (`sslmode`, `sslrootcert`;
    /// [`crate::storage::pg_tls`]).
    pub fn connect_postgres(url: &str) -> Result<Conn, DbError> {
        Conn::connect_pg(url, false)
    }

    /// Connects to PostgreSQL for use from asynchronous code (tests, tools):
    /// each call runs on a short-lived thread of its own. The hub itself uses
    /// [`Conn::connect_postgres`] on its writer thread and blocking readers.
    pub fn connect_postgres_detached(url: &str) -> Result<Conn, DbError> {
        Conn::connect_pg(url, true)
    }

    fn connect_pg(url: &str, detached: bool) -> Result<Conn, DbError> {
        let mut target = pg_tls::target(url)?;
        if target.config.get_application_name().is_none() {
            target.config.application_name("caja-hub");
        }
        let client = if detached {
            std::thread::scope(|s| {
                s.spawn(|| pg_tls::connect(&target))
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })?
        } else {
            pg_tls::connect(&target)?
        };
        Ok(Conn {
            kind: Kind::Postgres(Box::new(RefCell::new(Pg {
                client: Some(client),
                statements: HashMap::new(),
                detached,
            }))),
            in_tx: Cell::new(false),
            cursors: Cell::new(0),
            sent: Cell::new(0),
            rewritten: RefCell::new(HashMap::new()),
            later: RefCell::new(Vec::new()),
        })
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self.kind {
            Kind::Sqlite(_) => Dialect::Sqlite,
            Kind::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The statement for this connection's dialect.
    pub fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self.kind {
            Kind::Sqlite(_) => sqlite,
            Kind::Postgres(_) => postgres,
        }
    }

    /// The SQLite connection (for what only SQLite has: its pragmas, the
    /// backup API, tests that tamper with the file).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.kind {
            Kind::Sqlite(c) => Some(c),
            Kind::Postgres(_) => None,
        }
    }

    /// Whether the connection is gone and must be replaced.
    pub fn is_broken(&self) -> bool {
        match &self.kind {
            Kind::Sqlite(_) => false,
            Kind::Postgres(pg) => pg.borrow().client.as_ref().is_none_or(|c| c.is_closed()),
        }
    }

    /// Statements sent on this connection so far: each run of a prepared
    /// statement and each [`Conn::execute_batch`] counts one (on PostgreSQL
    /// each is one round trip; preparing one the first time is another). A
    /// measuring probe: the benchmark and the tests count a push's
    /// statements with it.
    pub fn statements(&self) -> u64 {
        self.sent.get()
    }

    /// Queues one row of `head` (`INSERT INTO t (…)`) whose writing nothing
    /// waits for: written multi-row by `write` before the next statement of
    /// any other kind runs on this connection (so every read sees it) or the
    /// commit; dropped by a rollback.
    pub(crate) fn defer_row(&self, head: &'static str, row: Vec<Value>, write: WriteRows) -> usize {
        let mut later = self.later.borrow_mut();
        match later.iter_mut().find(|d| d.0 == head) {
            Some(d) => d.1.push(row),
            None => later.push((head, vec![row], write)),
        }
        later.iter().map(|d| d.1.len()).sum()
    }

    /// Writes the rows [`Conn::defer_row`] queued.
    pub(crate) fn flush_later(&self) -> Result<(), DbError> {
        let later = std::mem::take(&mut *self.later.borrow_mut());
        later
            .into_iter()
            .try_for_each(|(h, rows, write)| write(self, h, rows))
    }

    /// Runs several statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        self.flush_later()?;
        self.sent.set(self.sent.get() + 1);
        match &self.kind {
            Kind::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Kind::Postgres(pg) => Ok(run(pg, |c| c.batch_execute(sql))?),
        }
    }

    /// Begins a write transaction (see the module doc: `BEGIN IMMEDIATE`, or
    /// `BEGIN` and the writers' advisory lock).
    pub fn begin_write(&self) -> Result<(), DbError> {
        match &self.kind {
            Kind::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Kind::Postgres(pg) => run(pg, |c| {
                let (ns, key) = SEQUENCER_LOCK;
                c.batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK}); SELECT pg_advisory_xact_lock({ns}, {key})"
                ))
            })?,
        }
        self.in_tx.set(true);
        Ok(())
    }

    /// Begins a write transaction without a lock on PostgreSQL (the caller
    /// takes its own, `super::serial`); `BEGIN IMMEDIATE` on SQLite.
    pub fn begin_unlocked(&self) -> Result<(), DbError> {
        self.execute_batch(self.pick("BEGIN IMMEDIATE", "BEGIN"))?;
        self.in_tx.set(true);
        Ok(())
    }

    /// Begins a read-only transaction: one snapshot for several statements
    /// (PostgreSQL; SQLite reads run as they always did, statement by
    /// statement on a WAL reader).
    pub fn begin_read(&self) -> Result<(), DbError> {
        if let Kind::Postgres(pg) = &self.kind {
            run(pg, |c| {
                c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            })?;
            self.in_tx.set(true);
        }
        Ok(())
    }

    /// Ends a transaction begun by [`Conn::begin_read`].
    pub fn end_read(&self) -> Result<(), DbError> {
        if let Kind::Postgres(pg) = &self.kind {
            self.in_tx.set(false);
            run(pg, |c| c.batch_execute("COMMIT"))?;
        }
        Ok(())
    }

    /// Commits the open transaction.
    pub fn commit(&self) -> Result<(), DbError> {
        self.in_tx.set(false);
        self.execute_batch("COMMIT")
    }

    /// Rolls the open transaction back.
    pub fn rollback(&self) -> Result<(), DbError> {
        self.in_tx.set(false);
        self.later.borrow_mut().clear();
        self.execute_batch("ROLLBACK")
    }

    /// Runs `f` in a write transaction: committed when it returns `Ok`,
    /// rolled back otherwise.
    pub fn write_tx<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        self.begin_write()?;
        match f(self) {
            Ok(v) => {
                self.commit()?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback();
                Err(e)
            }
        }
    }

    /// A statement, prepared once per connection and cached.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        match &self.kind {
            Kind::Sqlite(c) => {
                let stmt = if sql.contains('$') {
                    let map = &mut *self.rewritten.borrow_mut();
                    match map.get(sql) {
                        Some(rewritten) => c.prepare_cached(rewritten)?,
                        None => {
                            if map.len() >= REWRITTEN_MAX {
                                map.clear();
                            }
                            let rewritten = sqlite_sql(sql).into_owned();
                            let stmt = c.prepare_cached(&rewritten)?;
                            map.insert(sql.to_owned(), rewritten);
                            stmt
                        }
                    }
                } else {
                    c.prepare_cached(sql)?
                };
                Ok(Stmt {
                    inner: StmtKind::Sqlite(SqliteStmt::Cached(stmt)),
                    conn: self,
                })
            }
            Kind::Postgres(pg) => {
                let cached = pg.borrow().statements.get(sql).cloned();
                let stmt = match cached {
                    Some(s) => s,
                    None => {
                        self.sent.set(self.sent.get() + 1);
                        let s = run(pg, |c| c.prepare(sql))?;
                        pg.borrow_mut().statements.insert(sql.to_owned(), s.clone());
                        s
                    }
                };
                Ok(Stmt {
                    inner: StmtKind::Postgres { conn: pg, stmt },
                    conn: self,
                })
            }
        }
    }

    /// A statement run once (not kept in SQLite's statement cache).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        match &self.kind {
            Kind::Sqlite(c) => Ok(Stmt {
                inner: StmtKind::Sqlite(SqliteStmt::Plain(c.prepare(&sqlite_sql(sql))?)),
                conn: self,
            }),
            Kind::Postgres(_) => self.prepare_cached(sql),
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize, DbError> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of a query, through `f` (`NoRows` when there is none).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.prepare(sql)?.query_row(params, f)
    }

    /// Streams the rows of a query to `f` in constant memory; `f` may run
    /// other statements on this connection. On PostgreSQL the parameters must
    /// be integers or NULL (they are written into the cursor's statement).
    pub fn for_each<E: From<DbError>>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<(), E>,
    ) -> Result<(), E> {
        let values = params.values();
        self.flush_later()?;
        match &self.kind {
            Kind::Sqlite(c) => {
                let mut stmt = c.prepare(&sqlite_sql(sql)).map_err(DbError::from)?;
                let n = stmt.column_count();
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(values.iter()))
                    .map_err(DbError::from)?;
                while let Some(r) = rows.next().map_err(DbError::from)? {
                    f(&sqlite_row(r, n)?)?;
                }
                Ok(())
            }
            Kind::Postgres(pg) => {
                let inline = inline_params(sql, &values)?;
                let own_tx = !self.in_tx.get();
                let n = self.cursors.get() + 1;
                self.cursors.set(n);
                let name = format!("caja_scan_{n}");
                let declare = format!("DECLARE {name} NO SCROLL CURSOR FOR {inline}");
                run(pg, |c| {
                    if own_tx {
                        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                    }
                    c.batch_execute(&declare)
                })
                .map_err(DbError::from)?;
                let fetch = format!("FETCH FORWARD {FETCH_PAGE} FROM {name}");
                let result = (|| -> Result<(), E> {
                    loop {
                        let page =
                            run(pg, |c| c.query(fetch.as_str(), &[])).map_err(DbError::from)?;
                        for r in &page {
                            f(&pg_row(r)?)?;
                        }
                        if page.len() < FETCH_PAGE {
                            return Ok(());
                        }
                    }
                })();
                if own_tx {
                    run(pg, |c| c.batch_execute("COMMIT")).map_err(DbError::from)?;
                } else if result.is_ok() {
                    let close = format!("CLOSE {name}");
                    run(pg, |c| c.batch_execute(&close)).map_err(DbError::from)?;
                }
                result
            }
        }
    }
}

/// Integer parameters written into a statement (for a cursor, which takes
/// none on the wire).
fn inline_params(sql: &str, values: &[Value]) -> Result<String, DbError> {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            let i: usize = digits
                .parse()
                .map_err(|_| DbError::Unsupported(format!("placeholder ${digits}")))?;
            match values.get(i.wrapping_sub(1)) {
                Some(Value::Int(v)) => out.push_str(&v.to_string()),
                Some(Value::Null) => out.push_str("NULL"),
                _ => {
                    return Err(DbError::Unsupported(format!(
                        "a streamed statement takes integer parameters only (${i})"
                    )))
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

enum SqliteStmt<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Plain(rusqlite::Statement<'c>),
}

impl<'c> SqliteStmt<'c> {
    fn get(&mut self) -> &mut rusqlite::Statement<'c> {
        match self {
            SqliteStmt::Cached(s) => s,
            SqliteStmt::Plain(s) => s,
        }
    }
}

/// A prepared statement.
pub struct Stmt<'c> {
    inner: StmtKind<'c>,
    /// Its connection (statement count, deferred rows).
    conn: &'c Conn,
}

enum StmtKind<'c> {
    Sqlite(SqliteStmt<'c>),
    Postgres {
        conn: &'c RefCell<Pg>,
        stmt: postgres::Statement,
    },
}

impl std::fmt::Debug for Stmt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stmt")
    }
}

impl Stmt<'_> {
    /// Runs it; returns the rows it changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize, DbError> {
        let values = params.values();
        self.conn.flush_later()?;
        self.conn.sent.set(self.conn.sent.get() + 1);
        match &mut self.inner {
            StmtKind::Sqlite(s) => {
                Ok(s.get().execute(rusqlite::params_from_iter(values.iter()))?)
            }
            StmtKind::Postgres { conn, stmt } => {
                let stmt = &*stmt;
                let n = run(conn, |c| c.execute(stmt, &pg_params(&values)))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row.
    pub fn query(&mut self, params: impl Params) -> Result<Rows, DbError> {
        let values = params.values();
        self.conn.flush_later()?;
        self.conn.sent.set(self.conn.sent.get() + 1);
        let rows = match &mut self.inner {
            StmtKind::Sqlite(s) => {
                let s = s.get();
                let n = s.column_count();
                let mut rs = s.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rs.next()? {
                    out.push(sqlite_row(r, n)?);
                }
                out
            }
            StmtKind::Postgres { conn, stmt } => {
                let stmt = &*stmt;
                run(conn, |c| c.query(stmt, &pg_params(&values)))?
                    .iter()
                    .map(pg_row)
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Rows {
            rows: rows.into_iter(),
            current: None,
        })
    }

    /// Every row through `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let mut rows = self.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(r));
        }
        Ok(out.into_iter())
    }

    /// The first row through `f` (`NoRows` when there is none).
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(r) => f(r),
            None => Err(DbError::NoRows),
        }
    }

    /// Whether the query returns a row.
    pub fn exists(&mut self, params: impl Params) -> Result<bool, DbError> {
        Ok(self.query(params)?.next()?.is_some())
    }

    /// SQLite's count of re-preparations and VM steps of this statement (a
    /// test probe; `None` on PostgreSQL).
    pub fn sqlite_status(&mut self) -> Option<(i32, i32)> {
        match &mut self.inner {
            StmtKind::Sqlite(s) => {
                let s = s.get();
                Some((
                    s.get_status(rusqlite::StatementStatus::RePrepare),
                    s.get_status(rusqlite::StatementStatus::VmStep),
                ))
            }
            StmtKind::Postgres { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes_only() {
        assert_eq!(
            sqlite_sql("SELECT json_extract(b, '$[0]') FROM t WHERE a = $1 AND c = $12"),
            "SELECT json_extract(b, '$[0]') FROM t WHERE a = ?1 AND c = ?12"
        );
        assert!(matches!(sqlite_sql("SELECT 1"), Cow::Borrowed(_)));
        assert_eq!(
            inline_params(
                "SELECT x FROM t WHERE a < $1 AND b = $2 AND c = '$1'",
                &[Value::Int(5), Value::Null]
            )
            .unwrap(),
            "SELECT x FROM t WHERE a < 5 AND b = NULL AND c = '$1'"
        );
        assert!(inline_params("SELECT $1", &[Value::Text("x".into())]).is_err());
    }

    #[test]
    fn sqlite_round_trips_values() {
        let c = Conn::from_sqlite(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
            .unwrap();
        c.execute(
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)",
            params![7i64, "x", vec![1u8, 2]],
        )
        .unwrap();
        c.execute(
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)",
            params![None::<i64>, None::<String>, None::<Vec<u8>>],
        )
        .unwrap();
        let (a, b, cc): (Option<i64>, Option<String>, Option<Vec<u8>>) = c
            .query_row("SELECT a, b, c FROM t ORDER BY a DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            (a, b.as_deref(), cc),
            (Some(7), Some("x"), Some(vec![1, 2]))
        );
        let n: Option<i64> = c
            .query_row("SELECT a FROM t WHERE a = $1", [8i64], |r| r.get(0))
            .optional()
            .unwrap();
        assert_eq!(n, None);
        let mut seen = 0;
        c.for_each("SELECT a FROM t WHERE a < $1", [100i64], |_| {
            seen += 1;
            Ok::<_, DbError>(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn a_database_is_a_postgres_url_or_a_path() {
        let base = Path::new("/data");
        assert_eq!(
            Database::parse("postgres://u:secret@h:5432/caja", base).dialect(),
            Dialect::Postgres
        );
        assert_eq!(
            Database::parse("hub.db", base),
            Database::Sqlite("/data/hub.db".into())
        );
        let shown = format!(
            "{} {:?}",
            Database::parse("postgresql://u:secret@h/caja", base),
            Database::parse("postgresql://u:secret@h/caja", base)
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
}
