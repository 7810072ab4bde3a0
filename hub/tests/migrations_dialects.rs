//! The hub's two SQL dialects describe the same schema: a fresh SQLite file
//! and a fresh PostgreSQL database are migrated by the hub's own migrator,
//! their schemas read back (`pragma_table_info`, `information_schema.columns`)
//! and compared table by table and column by column: name, order, type class
//! (integer, text, bytes, json, …) and nullability.
//!
//! Normalisations, each a difference that is none: a primary-key column is
//! not null on both sides (SQLite's `INTEGER PRIMARY KEY` is the rowid and
//! `pragma_table_info` reports it nullable); a view's columns are compared by
//! name and order, and by type class only where SQLite declares one (an
//! expression's column has no declared type in SQLite, and no view column has
//! a nullability in either). Differences that exist in shipped migrations
//! (which are never edited) are listed in [`KNOWN_DIFFERENCES`]; a new one
//! fails, and so does a listed one that is gone.
//!
//! Without PostgreSQL the comparison is skipped with a loud line (a failure
//! with `CAJA_REQUIRE_EXTERNAL=1`), as in the hub's other PostgreSQL tests.

use std::collections::{BTreeMap, BTreeSet};

use caja_hub::storage::{open_offline, Database};

/// Differences between the dialects in shipped migrations, as
/// [`differences`] words them.
const KNOWN_DIFFERENCES: &[&str] = &[
    // SQLite declares the column of a compound (`UNION ALL`) subquery whose
    // branches differ in affinity as BLOB: `v_stock` unions `product` (TEXT)
    // with `json_extract` of the sale lines (no affinity). Its values are
    // the TEXT SKUs in both dialects; only the declared type differs.
    "v_stock.product: type bytes in SQLite, text in PostgreSQL",
];

/// One column as a dialect describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// The type class ([`class`]); empty when the dialect declares none.
    class: String,
    not_null: bool,
}

/// A table or a view and its columns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Relation {
    view: bool,
    columns: Vec<Column>,
}

type Schema = BTreeMap<String, Relation>;

/// The class of a declared type: what both dialects must agree on.
fn class(declared: &str) -> String {
    let t = declared.trim().to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "" => String::new(),
        "integer" | "int" | "bigint" | "smallint" | "int2" | "int4" | "int8" | "bigserial"
        | "serial" => "integer".into(),
        "text" | "varchar" | "character" | "char" | "clob" => "text".into(),
        "blob" | "bytea" => "bytes".into(),
        "json" | "jsonb" => "json".into(),
        "boolean" | "bool" => "boolean".into(),
        "real" | "double" | "float" | "float8" | "float4" => "float".into(),
        "numeric" | "decimal" => "numeric".into(),
        other => format!("other({other})"),
    }
}

/// The schema of a migrated SQLite file.
fn sqlite_schema(path: &std::path::Path) -> Schema {
    let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
    let mut stmt = conn
        .prepare(
            "SELECT m.name, m.type, p.name, p.type, p.\"notnull\", p.pk \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' \
             ORDER BY m.name, p.cid",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .expect("query");
    let mut schema = Schema::new();
    for row in rows {
        let (table, kind, name, declared, not_null, pk) = row.expect("row");
        let view = kind == "view";
        schema
            .entry(table)
            .or_insert_with(|| Relation {
                view,
                columns: Vec::new(),
            })
            .columns
            .push(Column {
                name,
                class: class(&declared),
                not_null: !view && (not_null != 0 || pk > 0),
            });
    }
    schema
}

/// The schema of a migrated PostgreSQL database (schema `public`).
fn postgres_schema(url: &str) -> Schema {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let rows = client
        .query(
            "SELECT c.table_name::text, t.table_type::text, c.column_name::text, \
                    c.data_type::text, c.is_nullable::text \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = 'public' \
             ORDER BY c.table_name, c.ordinal_position",
            &[],
        )
        .expect("information_schema");
    let mut schema = Schema::new();
    for row in rows {
        let table: String = row.get(0);
        let view = row.get::<_, String>(1) == "VIEW";
        let nullable: String = row.get(4);
        schema
            .entry(table)
            .or_insert_with(|| Relation {
                view,
                columns: Vec::new(),
            })
            .columns
            .push(Column {
                name: row.get(2),
                class: class(&row.get::<_, String>(3)),
                not_null: !view && nullable == "NO",
            });
    }
    schema
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for name in names {
        let (s, p) = match (sqlite.get(name), postgres.get(name)) {
            (Some(s), Some(p)) => (s, p),
            (Some(_), None) => {
                out.push(format!("{name}: only in SQLite"));
                continue;
            }
            (None, _) => {
                out.push(format!("{name}: only in PostgreSQL"));
                continue;
            }
        };
        if s.view != p.view {
            out.push(format!(
                "{name}: a {} in SQLite, a {} in PostgreSQL",
                if s.view { "view" } else { "table" },
                if p.view { "view" } else { "table" }
            ));
        }
        let s_names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        let p_names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
        for c in &s_names {
            if !p_names.contains(c) {
                out.push(format!("{name}.{c}: only in SQLite"));
            }
        }
        for c in &p_names {
            if !s_names.contains(c) {
                out.push(format!("{name}.{c}: only in PostgreSQL"));
            }
        }
        let s_common: Vec<&str> = s_names
            .iter()
            .copied()
            .filter(|c| p_names.contains(c))
            .collect();
        let p_common: Vec<&str> = p_names
            .iter()
            .copied()
            .filter(|c| s_names.contains(c))
            .collect();
        if s_common != p_common {
            out.push(format!(
                "{name}: column order SQLite {s_common:?}, PostgreSQL {p_common:?}"
            ));
        }
        for sc in &s.columns {
            let Some(pc) = p.columns.iter().find(|c| c.name == sc.name) else {
                continue;
            };
            let typed = !(s.view && sc.class.is_empty());
            if typed && sc.class != pc.class {
                out.push(format!(
                    "{name}.{}: type {} in SQLite, {} in PostgreSQL",
                    sc.name, sc.class, pc.class
                ));
            }
            if sc.not_null != pc.not_null {
                let word = |n: bool| if n { "NOT NULL" } else { "nullable" };
                out.push(format!(
                    "{name}.{}: {} in SQLite, {} in PostgreSQL",
                    sc.name,
                    word(sc.not_null),
                    word(pc.not_null)
                ));
            }
        }
    }
    out
}

#[test]
fn sqlite_and_postgresql_migrate_to_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hub.sqlite");
    drop(open_offline(&Database::Sqlite(file.clone())).expect("migrate SQLite"));
    let sqlite = sqlite_schema(&file);
    assert!(
        sqlite.len() >= 20 && sqlite.values().any(|r| r.view),
        "the SQLite schema looks empty: {:?}",
        sqlite.keys().collect::<Vec<_>>()
    );
    let Some(url) = caja_hub::testpg::fresh_database() else {
        return;
    };
    drop(open_offline(&Database::Postgres(url.clone())).expect("migrate PostgreSQL"));
    let postgres = postgres_schema(&url);
    let found: BTreeSet<String> = differences(&sqlite, &postgres).into_iter().collect();
    let known: BTreeSet<String> = KNOWN_DIFFERENCES.iter().map(|s| (*s).to_owned()).collect();
    let new: Vec<&String> = found.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&found).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "the dialects' schemas differ.\nnew differences (add a migration pair that \
         removes them): {new:#?}\nlisted but gone (remove them from KNOWN_DIFFERENCES): \
         {gone:#?}"
    );
}

fn col(name: &str, class: &str, not_null: bool) -> Column {
    Column {
        name: name.into(),
        class: class.into(),
        not_null,
    }
}

fn table(columns: Vec<Column>) -> Relation {
    Relation {
        view: false,
        columns,
    }
}

#[test]
fn the_comparison_names_each_kind_of_difference() {
    let sqlite: Schema = [
        (
            "a".to_owned(),
            table(vec![col("x", "integer", true), col("y", "text", false)]),
        ),
        (
            "b".to_owned(),
            table(vec![col("x", "integer", true), col("y", "text", true)]),
        ),
        ("c".to_owned(), table(vec![col("x", "bytes", true)])),
        ("only_s".to_owned(), table(vec![col("x", "integer", true)])),
    ]
    .into_iter()
    .collect();
    let postgres: Schema = [
        (
            "a".to_owned(),
            table(vec![col("x", "integer", true), col("y", "text", false)]),
        ),
        (
            "b".to_owned(),
            table(vec![
                col("y", "text", false),
                col("x", "integer", true),
                col("z", "text", false),
            ]),
        ),
        ("c".to_owned(), table(vec![col("x", "text", true)])),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        differences(&sqlite, &postgres),
        vec![
            "b.z: only in PostgreSQL",
            "b: column order SQLite [\"x\", \"y\"], PostgreSQL [\"y\", \"x\"]",
            "b.y: NOT NULL in SQLite, nullable in PostgreSQL",
            "c.x: type bytes in SQLite, text in PostgreSQL",
            "only_s: only in SQLite",
        ]
    );
    assert!(differences(&sqlite, &sqlite).is_empty());
}

#[test]
fn type_classes_join_the_dialects_names() {
    for (s, p) in [
        ("INTEGER", "bigint"),
        ("INTEGER", "integer"),
        ("TEXT", "text"),
        ("TEXT", "character varying"),
        ("BLOB", "bytea"),
        ("JSON", "jsonb"),
    ] {
        assert_eq!(class(s), class(p), "{s} / {p}");
    }
    assert_ne!(class("INTEGER"), class("TEXT"));
    assert_ne!(class("BLOB"), class("text"));
}
