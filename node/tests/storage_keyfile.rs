//! The device key file: owner-only, atomic, refused when others may read it.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use caja_node::keyfile::{read_key_file, write_key_file, KeyFileError, KEY_FILE_NAME};
use caja_shared::key::DeviceKey;

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn the_key_file_is_written_with_mode_0600_and_reads_back() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(KEY_FILE_NAME);
    let key = DeviceKey::from_bytes([0xab; 32]);
    write_key_file(&path, &key).expect("write");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        format!("{}\n", "ab".repeat(32))
    );
    let back = read_key_file(&path).expect("read back");
    assert_eq!(back.mac(b"m"), key.mac(b"m"));
    // Only the key file is left in the directory: no temporary copy.
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE_NAME)]);
}

#[test]
fn writing_again_replaces_the_key_atomically_and_keeps_0600() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(KEY_FILE_NAME);
    write_key_file(&path, &DeviceKey::from_bytes([1; 32])).expect("first");
    let new = DeviceKey::from_bytes([2; 32]);
    write_key_file(&path, &new).expect("second");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(read_key_file(&path).expect("read").mac(b"m"), new.mac(b"m"));
}

#[test]
fn a_key_file_others_may_read_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(KEY_FILE_NAME);
    write_key_file(&path, &DeviceKey::from_bytes([3; 32])).expect("write");
    for m in [0o644, 0o640, 0o604, 0o660, 0o602] {
        fs::set_permissions(&path, fs::Permissions::from_mode(m)).expect("chmod");
        let err = read_key_file(&path).expect_err("refused");
        match &err {
            KeyFileError::TooOpen { path: p, mode } => {
                assert_eq!((p, *mode), (&path, m));
            }
            other => panic!("expected TooOpen for {m:o}, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("{m:04o}")), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
    read_key_file(&path).expect("owner read-only is fine");
}

#[test]
fn contents_that_are_not_a_key_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(KEY_FILE_NAME);
    let write = |contents: &[u8]| {
        fs::write(&path, contents).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    for bad in [
        b"".to_vec(),
        b"abcd\n".to_vec(),
        "AB".repeat(32).into_bytes(),
        format!("{}\n\n", "ab".repeat(32)).into_bytes(),
        vec![0xff; 64],
    ] {
        write(&bad);
        let err = read_key_file(&path).expect_err("not a key");
        assert!(matches!(err, KeyFileError::Format { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
    write(&[b'a'; 4096]);
    assert!(matches!(
        read_key_file(&path),
        Err(KeyFileError::TooLong { .. })
    ));
    write("ab".repeat(32).as_bytes());
    read_key_file(&path).expect("no trailing newline is fine");
}

#[test]
fn a_missing_key_file_or_a_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let err = read_key_file(&dir.path().join("nope")).expect_err("missing");
    assert!(
        matches!(err, KeyFileError::Io { action: "open", .. }),
        "{err:?}"
    );
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let err = read_key_file(dir.path()).expect_err("a directory");
    assert!(matches!(err, KeyFileError::NotAFile { .. }), "{err:?}");
}
