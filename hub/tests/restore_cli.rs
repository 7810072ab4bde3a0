//! `caja-hub backup` and `caja-hub restore` as an operator runs them: a
//! backup and a secrets bundle (owner-only) from a hub's data directory, a
//! restore onto an empty directory that starts restore epoch 1 with its
//! `restored` audit entry and a tree that still verifies, and the refusals
//! that protect data (an existing backup file, a directory that already has
//! a database, a non-empty directory with `--secrets`, no key).

use std::path::Path;
use std::process::{Command, Output};

fn hub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caja-hub"))
        .args(args)
        .env_remove("CAJA_HUB_DATABASE")
        .env("CAJA_HUB_ADMIN_TOKEN", "restore-cli-admin-token-0123456789")
        .output()
        .expect("caja-hub runs")
}

fn ok(args: &[&str]) -> String {
    let out = hub(args);
    assert!(
        out.status.success(),
        "caja-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(args: &[&str], why: &str) {
    let out = hub(args);
    assert_eq!(out.status.code(), Some(3), "caja-hub {args:?} must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "{args:?}: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn backup_then_restore_on_an_empty_directory_starts_a_new_epoch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("hub");
    ok(&["init", "--data-dir", s(&dir), "--tls-self-signed"]);
    let backup = tmp.path().join("hub.db.bak");
    let secrets = tmp.path().join("secrets.json");
    let printed = ok(&[
        "backup",
        "--data-dir",
        s(&dir),
        "--out",
        s(&backup),
        "--secrets-out",
        s(&secrets),
    ]);
    assert!(printed.contains("backup written"), "{printed}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets)
            .expect("bundle")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secrets bundle is owner-only");
    }
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&secrets).expect("bundle")).expect("json");
    for f in ["hub.key", "hub.toml", "tls/cert.pem", "tls/key.pem"] {
        assert!(bundle["files"][f].is_string(), "{f} in the bundle");
    }
    let stamp = std::fs::read_to_string(dir.join("backup-stamp")).expect("stamp");
    assert!(stamp.trim().parse::<i64>().expect("ms") > 0);

    refused(
        &["backup", "--data-dir", s(&dir), "--out", s(&backup)],
        "exists already",
    );
    // The live directory has a database: never overwritten.
    refused(&["restore", s(&backup), "--data-dir", s(&dir)], "exists");
    refused(
        &[
            "restore",
            s(&backup),
            "--data-dir",
            s(&dir),
            "--secrets",
            s(&secrets),
        ],
        "not empty",
    );
    let bare = tmp.path().join("bare");
    std::fs::create_dir(&bare).expect("bare");
    refused(&["restore", s(&backup), "--data-dir", s(&bare)], "hub key");

    let fresh = tmp.path().join("fresh");
    let printed = ok(&[
        "restore",
        s(&backup),
        "--data-dir",
        s(&fresh),
        "--secrets",
        s(&secrets),
    ]);
    assert!(printed.contains("restored: epoch 1"), "{printed}");
    assert_eq!(
        std::fs::read(fresh.join("hub.key")).expect("key"),
        std::fs::read(dir.join("hub.key")).expect("key")
    );
    let db = rusqlite::Connection::open(fresh.join("hub.db")).expect("db");
    let (epoch, kind): (i64, String) = db
        .query_row(
            "SELECT (SELECT MAX(epoch) FROM restore_epochs), (SELECT kind FROM audit_log ORDER BY idx DESC LIMIT 1)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("epoch");
    assert_eq!((epoch, kind.as_str()), (1, "restored"));
    // The restored log still verifies end to end.
    let export = tmp.path().join("export");
    ok(&["audit", "export", "--data-dir", s(&fresh), s(&export)]);
    ok(&["audit", "verify", s(&export)]);
    // A second restore of the same database is epoch 2.
    let printed = ok(&["restore", "--mark-only", "--data-dir", s(&fresh)]);
    assert!(printed.contains("restored: epoch 2"), "{printed}");
}
