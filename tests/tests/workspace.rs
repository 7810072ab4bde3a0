//! Checks on the workspace itself.

/// DESIGN.md: one SQLite in the dependency graph (rusqlite with `bundled`), so no
/// crate links a second, different SQLite.
#[test]
fn exactly_one_libsqlite3_sys_in_the_lockfile() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock is committed at the workspace root");
    let count = lock
        .lines()
        .filter(|l| l.trim() == "name = \"libsqlite3-sys\"")
        .count();
    assert_eq!(
        count, 1,
        "libsqlite3-sys appears {count} times in Cargo.lock"
    );
    let rusqlite = lock
        .lines()
        .filter(|l| l.trim() == "name = \"rusqlite\"")
        .count();
    assert_eq!(
        rusqlite, 1,
        "rusqlite appears {rusqlite} times in Cargo.lock"
    );
}
