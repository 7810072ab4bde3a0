//! Architecture invariant: `caja-shared` does no IO, so no IO crate may be in its
//! dependency tree (normal and build dependencies; dev-dependencies are test-only).

use std::process::Command;

/// Crates that would let the core touch the network, the disk through SQLite, or
/// an async runtime.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "mio",
    "rusqlite",
    "libsqlite3-sys",
    "reqwest",
    "hyper",
    "axum",
    "tower",
    "serialport",
    "tokio-postgres",
    "postgres",
    "rand",
];

#[test]
fn shared_has_no_io_crates_in_its_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--package",
            "caja-shared",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf8");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"caja-shared"), "unexpected output:\n{tree}");
    assert!(
        names.contains(&"ring"),
        "the tree should list real dependencies:\n{tree}"
    );
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| names.contains(f)).collect();
    assert!(
        found.is_empty(),
        "IO crates in caja-shared's tree: {found:?}\n{tree}"
    );
}

/// ring (for SHA-256, HMAC, Ed25519) brings `getrandom` along for its
/// `SystemRandom`, so the tree alone cannot prove the core never reads the OS
/// random source or clock: the source must not name them either (every file
/// under `src/`, at any depth).
#[test]
fn shared_source_reads_no_clock_no_os_randomness_no_files() {
    const FORBIDDEN_APIS: &[&str] = &[
        "SystemRandom",
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::process",
        "std::env",
        "getrandom",
        "thread_rng",
        "Uuid::now_v7",
        "Uuid::new_v4",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&dir);
    assert!(
        files.iter().any(|f| f.parent() != Some(dir.as_path())),
        "the scan must reach the subdirectories of {}: {files:?}",
        dir.display()
    );
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read source");
        for api in FORBIDDEN_APIS {
            assert!(
                !text.contains(api),
                "{} mentions {api}: the core must take time and randomness as inputs",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} source files found in {}",
        dir.display()
    );
}

/// Every `.rs` file under `dir`, at any depth, sorted.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
