//! Tidy tests: the layout rules of the hub and the node, checked on the source
//! tree (pure file scanning, no build).
//!
//! - No file-level import cycles inside `hub/src` and inside `node/src`. Each
//!   file's references to the crate's other files (`use` trees and inline
//!   paths from `crate`, `self`, `super` or a child module; a name re-exported
//!   by `pub use` is followed to the file that defines it) make a graph whose
//!   strongly connected components must be single files. `#[cfg(test)]` items
//!   and test module files are ignored: tests may import anything.
//!   The cycles that exist while the layout is being untangled are listed in
//!   [`ALLOWED_CYCLES`]; a cycle not listed fails, and so does a listed one
//!   that no longer exists, so the list only shrinks.
//! - No SQL outside the storage modules: no string literal holding an SQL
//!   statement in a file outside [`HUB_STORAGE_DIR`] and [`NODE_SQL_FILES`]
//!   (test code excluded).
//! - The hub's pure modules ([`HUB_PURE_MODULES`]) refer to no file of the
//!   storage layer.
//! - No source file of the workspace's crates is over [`MAX_FILE_LINES`]
//!   lines (test modules excluded) unless [`LONG_FILES`] lists it with a
//!   reason and its top `//!` doc says why it is one cohesive thing.
//!
//! Invariant: reads files only; never runs cargo or rustc.

#[path = "tidy/scan.rs"]
mod scan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use scan::{cycles, sql_keyword, Crate};

/// The hub's storage layer: the only directory of `hub/src` where SQL lives.
const HUB_STORAGE_DIR: &str = "hub/src/storage";

/// The node's files that may hold SQL: opening and migrating the database,
/// the journal, the projections, the shared read queries, and the tables owned
/// by one feature (fiscal blocks, escrow quotas, staff, print queue, imports,
/// sync state, the screen's cart). An entry whose file holds no SQL any more
/// fails the test, so the list stays exact.
const NODE_SQL_FILES: &[&str] = &[
    "node/src/db.rs",
    "node/src/migrate.rs",
    "node/src/queries.rs",
    "node/src/drawer_journal.rs",
    "node/src/print.rs",
    "node/src/import.rs",
    "node/src/sync/state.rs",
    "node/src/ui/cart.rs",
    "node/src/journal/chain.rs",
    "node/src/journal/checkpoint.rs",
    "node/src/journal/device.rs",
    "node/src/journal/export.rs",
    "node/src/journal/verify.rs",
    "node/src/projection/register_events.rs",
    "node/src/projection/hub_events.rs",
    "node/src/projection/rebuild.rs",
    "node/src/projection/reads.rs",
    "node/src/fiscal/store.rs",
    "node/src/ecf/store.rs",
    "node/src/escrow/store.rs",
    "node/src/staff/store.rs",
];

/// Hub files outside [`HUB_STORAGE_DIR`] that hold SQL (none today; the
/// same rule as [`NODE_SQL_FILES`]).
const HUB_SQL_FILES_TO_MOVE: &[&str] = &[];

/// The hub's pure modules (decisions without IO): a file here, or under its
/// directory, refers to nothing in [`HUB_STORAGE_DIR`]. `health` is not one
/// yet: it reads the storage layer's `HealthInputs`.
const HUB_PURE_MODULES: &[&str] = &[
    "audit",
    "audit_tree",
    "auth",
    "catalog_csv",
    "conflict",
    "escrow",
    "fiscal",
    "hubchain",
    "ingest",
    "outbox",
    "payments",
    "projection",
    "ratelimit",
    "wire",
];

/// The file-level import cycles that exist today, each as its set of files:
/// to break, never to grow (the test prints the edges of each).
const ALLOWED_CYCLES: &[&[&str]] = &[];

/// The source roots whose files [`no_source_file_is_over_the_length_limit`]
/// measures.
const SOURCE_ROOTS: &[&str] = &[
    "shared/src",
    "node/src",
    "hub/src",
    "hardware/src",
    "bench/src",
    "tests/src",
];

/// The most lines a source file may have, counted up to its first top-level
/// `#[cfg(test)]` line.
const MAX_FILE_LINES: usize = 1_200;

/// The files allowed over [`MAX_FILE_LINES`], each with a one-line reason
/// (its top `//!` doc must also say why it is "one cohesive" thing). An entry
/// no longer over the limit fails the test, so the list stays exact.
const LONG_FILES: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests crate")
        .to_path_buf()
}

/// The crate of `rel` (`hub/src`), read.
fn read_crate(rel: &str) -> Crate {
    let c = Crate::read(&root().join(rel));
    assert!(
        c.files.len() >= 10,
        "only {} files found in {rel}",
        c.files.len()
    );
    c
}

fn cycle_names(c: &Crate, prefix: &str) -> BTreeSet<Vec<String>> {
    cycles(&c.graph())
        .into_iter()
        .map(|comp| {
            let mut names: Vec<String> = comp.iter().map(|i| c.name(*i, prefix)).collect();
            names.sort();
            names
        })
        .collect()
}

/// The edges inside `files` of crate `c`, for a failure message.
fn describe(c: &Crate, prefix: &str, files: &[String]) -> String {
    let mut out = String::new();
    for (i, (_, _, facts)) in c.files.iter().enumerate() {
        let from = c.name(i, prefix);
        if !files.contains(&from) {
            continue;
        }
        for (path, line) in &facts.refs {
            let Some(t) = c.resolve(path) else { continue };
            let to = c.name(t, prefix);
            if t != i && files.contains(&to) {
                out.push_str(&format!("    {from}:{line} → {to} ({})\n", path.join("::")));
            }
        }
    }
    out
}

#[test]
fn no_import_cycles_between_files_of_hub_and_node() {
    let mut found = BTreeSet::new();
    let mut details = String::new();
    for prefix in ["hub/src", "node/src"] {
        for c in crates_of(prefix) {
            for cycle in cycle_names(&c, prefix) {
                details.push_str(&format!("  {cycle:?}\n{}", describe(&c, prefix, &cycle)));
                found.insert(cycle);
            }
        }
    }
    let allowed: BTreeSet<Vec<String>> = ALLOWED_CYCLES
        .iter()
        .map(|c| {
            let mut v: Vec<String> = c.iter().map(|s| (*s).to_owned()).collect();
            v.sort();
            v
        })
        .collect();
    let new: Vec<_> = found.difference(&allowed).collect();
    let gone: Vec<_> = allowed.difference(&found).collect();
    let listing: String = found
        .iter()
        .map(|c| {
            format!(
                "    &[{}],\n",
                c.iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "file-level import cycles changed.\nnew (break them): {new:?}\nno longer there \
         (remove them from ALLOWED_CYCLES): {gone:?}\n\nthe cycles today, with their edges:\n\
         {details}\nALLOWED_CYCLES as it stands:\n{listing}"
    );
}

/// The crates of a source directory: the library (`lib.rs`) and, when there
/// is one, the binary with its own modules (`main.rs`).
fn crates_of(prefix: &str) -> Vec<Crate> {
    let src = root().join(prefix);
    let mut out = vec![read_crate(prefix)];
    if src.join("main.rs").exists() {
        out.push(Crate::read_root(&src, "main.rs"));
    }
    out
}

/// Every string literal outside test code: (file, line, text).
fn string_literals(prefix: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for c in crates_of(prefix) {
        for (i, (_, _, f)) in c.files.iter().enumerate() {
            let name = c.name(i, prefix);
            for (s, line) in &f.strings {
                out.push((name.clone(), *line, s.clone()));
            }
        }
    }
    out
}

/// Every SQL literal outside test code: (file, line, keyword).
fn sql_literals(prefix: &str) -> Vec<(String, usize, &'static str)> {
    string_literals(prefix)
        .into_iter()
        .filter_map(|(file, line, s)| sql_keyword(&s).map(|kw| (file, line, kw)))
        .collect()
}

#[test]
fn no_sql_outside_the_storage_modules() {
    let mut stray = Vec::new();
    let mut with_sql = BTreeSet::new();
    for prefix in ["hub/src", "node/src"] {
        for (file, line, kw) in sql_literals(prefix) {
            with_sql.insert(file.clone());
            let allowed = file.starts_with(&format!("{HUB_STORAGE_DIR}/"))
                || NODE_SQL_FILES.contains(&file.as_str())
                || HUB_SQL_FILES_TO_MOVE.contains(&file.as_str());
            if !allowed {
                stray.push(format!("{file}:{line}: {kw}"));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "SQL outside the storage modules (move it behind them):\n{}",
        stray.join("\n")
    );
    let stale: Vec<&&str> = NODE_SQL_FILES
        .iter()
        .chain(HUB_SQL_FILES_TO_MOVE)
        .filter(|f| !with_sql.contains(**f))
        .collect();
    assert!(
        stale.is_empty(),
        "these files hold no SQL any more: remove them from the allowed list: {stale:?}"
    );
    assert!(
        with_sql.iter().any(|f| f.starts_with(HUB_STORAGE_DIR)),
        "no SQL found in {HUB_STORAGE_DIR}: is the scan blind? {with_sql:?}"
    );
}

#[test]
fn pure_hub_modules_do_not_touch_storage() {
    let prefix = "hub/src";
    let c = read_crate(prefix);
    let storage = format!("{HUB_STORAGE_DIR}/");
    let mut bad = Vec::new();
    let mut checked = BTreeSet::new();
    for (i, (_, _, facts)) in c.files.iter().enumerate() {
        let from = c.name(i, prefix);
        let Some(module) = HUB_PURE_MODULES.iter().find(|m| {
            from == format!("{prefix}/{m}.rs")
                || from == format!("{prefix}/{m}/mod.rs")
                || from.starts_with(&format!("{prefix}/{m}/"))
        }) else {
            continue;
        };
        checked.insert(*module);
        for (path, line) in &facts.refs {
            let Some(t) = c.resolve(path) else { continue };
            let to = c.name(t, prefix);
            if to.starts_with(&storage) {
                bad.push(format!("{from}:{line}: {} (in {to})", path.join("::")));
            }
        }
    }
    let missing: Vec<_> = HUB_PURE_MODULES
        .iter()
        .filter(|m| !checked.contains(*m))
        .collect();
    assert!(missing.is_empty(), "no such hub modules: {missing:?}");
    assert!(
        bad.is_empty(),
        "pure hub modules refer to the storage layer:\n{}",
        bad.join("\n")
    );
}

/// The hub storage layer's kernel: the SQL facade, opening and migrating,
/// errors and row codecs, multi-row inserts, the writer and its
/// per-transaction cache and WAL checkpointer, the audit log and its tree, alerts, device
/// authentication and idempotent device requests. Feature modules (ingest, facts, conflicts, fiscal,
/// escrow, payments, outbox, dashboard, …) sit above it.
const HUB_STORAGE_KERNEL: &[&str] = &[
    "alerts.rs",
    "audit_log.rs",
    "audit_tree.rs",
    "checkpointer.rs",
    "codec.rs",
    "connect.rs",
    "db.rs",
    "device_auth.rs",
    "device_request.rs",
    "error.rs",
    "migrate.rs",
    "multirow.rs",
    "pg_tls.rs",
    "serial.rs",
    "tx_cache.rs",
    "writer.rs",
];

#[test]
fn the_storage_kernel_imports_no_feature_module() {
    let prefix = "hub/src";
    let c = read_crate(prefix);
    let storage = format!("{HUB_STORAGE_DIR}/");
    let in_kernel = |name: &str| {
        name.strip_prefix(&storage)
            .is_some_and(|rest| HUB_STORAGE_KERNEL.contains(&rest))
    };
    let mut bad = Vec::new();
    let mut checked = BTreeSet::new();
    for (i, (_, _, facts)) in c.files.iter().enumerate() {
        let from = c.name(i, prefix);
        if !in_kernel(&from) {
            continue;
        }
        checked.insert(from.clone());
        for (path, line) in &facts.refs {
            let Some(t) = c.resolve(path) else { continue };
            let to = c.name(t, prefix);
            // Anything outside storage is fine (pure modules, wire types);
            // inside storage only the kernel itself.
            if to.starts_with(&storage) && !in_kernel(&to) {
                bad.push(format!("{from}:{line}: {} (in {to})", path.join("::")));
            }
        }
    }
    assert_eq!(
        checked.len(),
        HUB_STORAGE_KERNEL.len(),
        "kernel files missing from {HUB_STORAGE_DIR}: found only {checked:?}"
    );
    assert!(
        bad.is_empty(),
        "the storage kernel refers to feature modules above it:\n{}",
        bad.join("\n")
    );
}

#[test]
fn inserts_name_their_columns() {
    // `INSERT INTO t VALUES (…)` depends on the table's column order, which
    // two dialects' migrations keep by hand: every insert names its columns.
    let mut positional = Vec::new();
    for prefix in ["hub/src", "node/src"] {
        for (file, line, text) in string_literals(prefix) {
            let words: Vec<&str> = text
                .split(|c: char| c.is_whitespace() || c == '\\')
                .filter(|w| !w.is_empty())
                .collect();
            for w in words.windows(4) {
                let insert = w[0].eq_ignore_ascii_case("INSERT");
                let into = w[1].eq_ignore_ascii_case("INTO");
                let values =
                    w[3].eq_ignore_ascii_case("VALUES") || w[3].eq_ignore_ascii_case("SELECT");
                if insert && into && values {
                    positional.push(format!("{file}:{line}: {}", w.join(" ")));
                }
            }
            for w in words.windows(6) {
                // INSERT OR IGNORE INTO t VALUES
                if w[0].eq_ignore_ascii_case("INSERT")
                    && w[1].eq_ignore_ascii_case("OR")
                    && w[3].eq_ignore_ascii_case("INTO")
                    && (w[5].eq_ignore_ascii_case("VALUES") || w[5].eq_ignore_ascii_case("SELECT"))
                {
                    positional.push(format!("{file}:{line}: {}", w.join(" ")));
                }
            }
        }
    }
    assert!(
        positional.is_empty(),
        "inserts without a column list:\n{}",
        positional.join("\n")
    );
}

/// The lines of `text` that count toward [`MAX_FILE_LINES`]: those before
/// the first top-level `#[cfg(test)]` line (the test module that follows is
/// test code).
fn counted_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim_end() != "#[cfg(test)]")
        .count()
}

/// Whether `rel` (relative to its source root) is a test module file: named
/// `tests.rs` or under a `tests/` directory.
fn is_test_module(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "tests.rs")
        || rel
            .parent()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The leading `//!` paragraph block of a file, joined.
fn top_doc(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn no_source_file_is_over_the_length_limit() {
    let mut measured = 0;
    let mut long = BTreeSet::new();
    let mut bad = Vec::new();
    for src in SOURCE_ROOTS {
        let base = root().join(src);
        let mut files = Vec::new();
        rust_files(&base, &mut files);
        for path in files {
            let rel = path.strip_prefix(&base).expect("under its root");
            if is_test_module(rel) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            measured += 1;
            let lines = counted_lines(&text);
            if lines <= MAX_FILE_LINES {
                continue;
            }
            let name = format!("{src}/{}", rel.display());
            long.insert(name.clone());
            if !LONG_FILES.iter().any(|(f, _)| *f == name) {
                bad.push(format!(
                    "{name}: {lines} lines (split it by concept, or list it in LONG_FILES)"
                ));
            } else if !top_doc(&text).contains("one cohesive") {
                bad.push(format!(
                    "{name}: listed in LONG_FILES, but its top //! doc does not say why it \
                     is one cohesive thing"
                ));
            }
        }
    }
    assert!(
        measured >= 100,
        "only {measured} files measured: is the scan blind?"
    );
    for (name, reason) in LONG_FILES {
        assert!(!reason.trim().is_empty(), "{name}: give a reason");
        if !long.contains(*name) {
            bad.push(format!(
                "{name}: listed in LONG_FILES but not over {MAX_FILE_LINES} lines: remove it"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "source files over {MAX_FILE_LINES} lines:\n{}",
        bad.join("\n")
    );
}

#[test]
fn file_length_counts_to_the_test_module_and_skips_test_files() {
    assert_eq!(counted_lines("a\nb\n#[cfg(test)]\nmod tests {\n}\n"), 2);
    assert_eq!(counted_lines("a\n    #[cfg(test)]\nb\n"), 3);
    assert_eq!(counted_lines("a\nb"), 2);
    assert!(is_test_module(Path::new("money/tests.rs")));
    assert!(is_test_module(Path::new("projection/tests/conflicts.rs")));
    assert!(!is_test_module(Path::new("projection/decide.rs")));
    assert_eq!(
        top_doc("//! Holds X.\n//! one cohesive thing.\n\nuse y;\n"),
        "Holds X. one cohesive thing."
    );
}

// The scanner itself, on small examples.

fn crate_of(files: &[(&str, &str)]) -> (tempfile::TempDir, Crate) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    let c = Crate::read(dir.path());
    (dir, c)
}

fn cycle_files(c: &Crate) -> Vec<Vec<String>> {
    cycle_names(c, "src").into_iter().collect()
}

#[test]
fn scanner_finds_a_cycle_through_use_and_inline_paths() {
    let (_d, c) = crate_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        ("a.rs", "use crate::b::{self, Thing};\npub fn fa() {}\n"),
        (
            "b.rs",
            "pub struct Thing;\npub fn fb() { crate::a::fa(); }\n",
        ),
        ("c.rs", "use super::a::fa;\n"),
    ]);
    assert_eq!(
        cycle_files(&c),
        vec![vec!["src/a.rs".to_owned(), "src/b.rs".to_owned()]]
    );
}

#[test]
fn scanner_ignores_comments_strings_and_test_code() {
    let (_d, c) = crate_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a.rs",
            "pub fn fa() {}\n// crate::b::fb()\n/* crate::b::fb() */\nconst S: &str = \"crate::b::fb()\";\n\
             #[cfg(test)]\nmod tests { use crate::b::fb; }\n#[cfg(test)]\nuse crate::b::{fb, Other};\n",
        ),
        ("b.rs", "pub fn fb() { crate::a::fa(); let c = '\"'; let r = r#\"crate::a\"#; }\n"),
    ]);
    assert!(cycle_files(&c).is_empty(), "{:?}", c.graph());
}

#[test]
fn scanner_resolves_nested_modules_super_self_and_children() {
    let (_d, c) = crate_of(&[
        ("lib.rs", "pub mod store;\npub mod audit;\n"),
        ("store/mod.rs", "mod sqlite;\nmod conflicts;\npub use sqlite::open;\n#[cfg(test)]\nmod tests;\n"),
        ("store/sqlite.rs", "pub fn open() { super::conflicts::write(); }\n"),
        ("store/conflicts.rs", "use self::inner::X;\nmod inner { pub struct X; }\npub fn write() { super::super::audit::append(); }\n"),
        ("store/tests.rs", "use crate::store::sqlite;\n"),
        ("audit.rs", "pub fn append() {}\npub fn f() { crate::store::open(); }\n"),
    ]);
    let names: Vec<String> = c.files.iter().map(|f| f.0.display().to_string()).collect();
    assert_eq!(
        names,
        [
            "audit.rs",
            "lib.rs",
            "store/conflicts.rs",
            "store/mod.rs",
            "store/sqlite.rs"
        ],
        "a #[cfg(test)] module file is left out"
    );
    let store = c
        .files
        .iter()
        .find(|f| f.0.ends_with("store/mod.rs"))
        .expect("store");
    assert!(
        store.2.test_mods.contains("tests"),
        "{:?}",
        store.2.test_mods
    );
    // audit → (through the re-export) sqlite → conflicts → audit.
    assert_eq!(
        cycle_files(&c),
        vec![vec![
            "src/audit.rs".to_owned(),
            "src/store/conflicts.rs".to_owned(),
            "src/store/sqlite.rs".to_owned()
        ]]
    );
}

#[test]
fn scanner_follows_glob_reexports_and_does_not_blame_the_facade() {
    let (_d, c) = crate_of(&[
        ("lib.rs", "pub mod store;\n"),
        (
            "store/mod.rs",
            "mod kernel;\nmod facts;\npub use kernel::*;\npub use facts::write_fact;\n",
        ),
        ("store/kernel.rs", "pub struct Conn;\n"),
        (
            "store/facts.rs",
            "use super::Conn;\npub fn write_fact(_: &Conn) {}\n",
        ),
    ]);
    assert!(cycle_files(&c).is_empty(), "{:?}", c.graph());
    let facts = c
        .files
        .iter()
        .position(|f| f.0.ends_with("facts.rs"))
        .expect("facts");
    let kernel = c
        .files
        .iter()
        .position(|f| f.0.ends_with("kernel.rs"))
        .expect("kernel");
    assert!(c.graph()[facts].contains(&kernel), "{:?}", c.graph());
}

#[test]
fn sql_keywords_are_statements_not_prose() {
    assert_eq!(
        sql_keyword("SELECT a, b FROM t WHERE x = ?1"),
        Some("SELECT … FROM")
    );
    assert_eq!(
        sql_keyword("INSERT INTO t (a) VALUES (?1)"),
        Some("INSERT INTO")
    );
    assert_eq!(sql_keyword("UPDATE t SET a = 1"), Some("UPDATE … SET"));
    assert_eq!(sql_keyword("DELETE FROM t"), Some("DELETE FROM"));
    assert_eq!(
        sql_keyword("CREATE TABLE IF NOT EXISTS t (a)"),
        Some("CREATE TABLE")
    );
    assert_eq!(sql_keyword("PRAGMA journal_mode = WAL"), Some("PRAGMA"));
    assert_eq!(sql_keyword("select the sale from the list"), None);
    assert_eq!(sql_keyword("SELECT a product"), None);
    assert_eq!(sql_keyword("price UPDATE"), None);
}
