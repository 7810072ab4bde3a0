//! The real `caja-hub` binary answers `version` and `--help`.

use std::process::Command;

#[test]
fn version_names_the_protocol_versions() {
    let out = Command::new(env!("CARGO_BIN_EXE_caja-hub"))
        .arg("version")
        .output()
        .expect("caja-hub runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with(&format!("caja-hub {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("event envelope v1"), "{text}");
}

#[test]
fn help_lists_commands_and_unknown_commands_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_caja-hub"))
        .arg("--help")
        .output()
        .expect("caja-hub runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("version"));
    let bad = Command::new(env!("CARGO_BIN_EXE_caja-hub"))
        .arg("no-such-command")
        .output()
        .expect("caja-hub runs");
    assert_eq!(bad.status.code(), Some(2), "usage errors exit with 2");
}
