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

/// The test-only features: each package and the feature that compiles its
/// test-only code in (the hub's `testpg`, `workload`, emulators and `dev`
/// commands; the node's crash points).
const TEST_ONLY_FEATURES: &[(&str, &str)] =
    &[("caja-hub", "testkit"), ("caja-node", "crashpoints")];

/// The features `cargo tree` resolves for each package of a build run in the
/// workspace root with `args`, as cargo would build it (normal and build
/// dependencies only: dev-dependencies do not unify into a build).
fn resolved_features(args: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new(cargo)
        .arg("tree")
        .args(args)
        .args([
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}|{f}",
        ])
        .current_dir(root)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf8");
    let mut features = std::collections::BTreeMap::new();
    for line in tree.lines() {
        let Some((package, list)) = line.split_once('|') else {
            continue;
        };
        let Some(name) = package.split_whitespace().next() else {
            continue;
        };
        let list = list.trim().trim_end_matches("(*)").trim();
        let entry: &mut Vec<String> = features.entry(name.to_owned()).or_default();
        for f in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !entry.iter().any(|e| e == f) {
                entry.push(f.to_owned());
            }
        }
    }
    features
}

/// Asserts a build with `args` enables no test-only feature; returns what it
/// resolves.
fn assert_no_test_only_features(args: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    let features = resolved_features(args);
    for (package, feature) in TEST_ONLY_FEATURES {
        let enabled = features.get(*package).unwrap_or_else(|| {
            panic!(
                "{package} is not in `cargo tree {}`: {:?}",
                args.join(" "),
                features.keys().collect::<Vec<_>>()
            )
        });
        assert!(
            !enabled.iter().any(|f| f == feature),
            "`cargo build {}` would build {package} with its test-only feature \
             `{feature}` (enabled: {enabled:?})",
            args.join(" ")
        );
    }
    features
}

/// A release build never contains test-only code: `cargo build --release` in
/// the workspace root builds the default members (not `caja-tests` nor
/// `caja-bench`, whose dependencies enable the test-only features), and the
/// shipped packages built by name have none of those features either.
#[test]
fn release_builds_have_no_test_only_features() {
    let root = assert_no_test_only_features(&[]);
    assert!(
        !root.contains_key("caja-tests") && !root.contains_key("caja-bench"),
        "`cargo build` in the root builds the test crates: {:?}",
        root.keys().collect::<Vec<_>>()
    );
    let shipped = assert_no_test_only_features(&["-p", "caja-hub", "-p", "caja-node"]);
    // The fault-injecting SQLite VFS comes only with the test features.
    for tree in [&root, &shipped] {
        assert!(
            !tree.contains_key("caja-faultvfs"),
            "a release build would link the fault-injecting VFS"
        );
    }
}

/// The binaries the end-to-end tests drive are built with every test-only
/// feature (the crash-point sweep needs its points armed), and the check
/// above would see those features if a build had them.
#[test]
fn driven_binaries_are_built_with_the_test_only_features() {
    let features = resolved_features(&[
        "-p",
        "caja-hub",
        "-p",
        "caja-node",
        "--features",
        caja_tests::procs::TEST_FEATURES,
    ]);
    for (package, feature) in TEST_ONLY_FEATURES {
        assert!(
            features
                .get(*package)
                .is_some_and(|f| f.iter().any(|f| f == feature)),
            "{package} is built for the tests without `{feature}`: {:?}",
            features.get(*package)
        );
    }
}
