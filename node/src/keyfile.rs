//! The device key file: the register's 32-byte HMAC key as 64 lowercase hex
//! characters (and a newline), readable and writable by its owner only; and
//! the atomic owner-only write it uses, shared with the e-CF credentials.
//!
//! Writing is atomic: the key goes to a temporary file created with mode 0600 in
//! the same directory, is fsynced, renamed over the target, and the directory is
//! fsynced, so after a crash the file holds either the old key or the new one,
//! never a torn mix and never a moment with wider permissions.
//!
//! Reading refuses a file that group or others may access (any of the bits
//! 0o077): a key that others could have read must be treated as leaked, not used
//! quietly. The bytes read pass only through buffers that are zeroized when
//! dropped. Unix only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use caja_shared::key::{DeviceKey, KeyError, DEVICE_KEY_LEN};
use zeroize::Zeroizing;

/// The file name of the device key inside the data directory.
pub const KEY_FILE_NAME: &str = "device.key";

/// The permissions of a key file: read and write for the owner only.
pub const KEY_FILE_MODE: u32 = 0o600;

/// Largest key file accepted: 64 hex characters plus line ending and a little
/// slack. Bounds the read buffer.
pub const MAX_KEY_FILE_BYTES: usize = 128;

/// Why the key file cannot be written or read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// An IO step failed.
    #[error("device key file {path}: cannot {action}: {source}")]
    Io {
        /// The file (or, for the directory sync, the directory).
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file may be read or written by group or others.
    #[error(
        "device key file {path} has mode {mode:04o}: group or others may access it; \
         the key must be treated as exposed. If it is not, restrict it with `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file.
    #[error("device key file {path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Longer than [`MAX_KEY_FILE_BYTES`].
    #[error(
        "device key file {path} is longer than {MAX_KEY_FILE_BYTES} bytes; it is not a key file"
    )]
    TooLong {
        /// The file.
        path: PathBuf,
    },
    /// The contents are not a key.
    #[error("device key file {path} does not hold a key: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> KeyFileError + 'a {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Writes `key` to `path` atomically with mode 0600, replacing any file there.
/// The parent directory must exist.
pub fn write_key_file(path: &Path, key: &DeviceKey) -> Result<(), KeyFileError> {
    if path.file_name().is_none() {
        return Err(KeyFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut contents = Zeroizing::new(Vec::with_capacity(DEVICE_KEY_LEN * 2 + 1));
    contents.extend_from_slice(key.to_hex().as_bytes());
    contents.push(b'\n');
    write_owner_only(path, &contents).map_err(|e| KeyFileError::Io {
        path: e.path,
        action: e.action,
        source: e.source,
    })
}

/// One failed step of [`write_owner_only`]: what was being done, to which
/// path, and the OS error.
#[derive(Debug)]
pub struct FileStepError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was being done.
    pub action: &'static str,
    /// The OS error.
    pub source: io::Error,
}

fn step<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> FileStepError + 'a {
    move |source| FileStepError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Writes a secret (`bytes`) to `path` atomically with mode 0600, replacing
/// any file there: a temporary file created 0600 in the same directory,
/// fsynced, renamed over the target, then the directory fsynced. On failure
/// the temporary copy is removed (best effort). The parent directory must
/// exist. Used for the device key and the e-CF signing credentials.
pub fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), FileStepError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    // A temporary file left by a crash of this same process id is ours to replace.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(step(&tmp, "remove a stale temporary file")(e)),
    }
    let result = write_tmp_and_rename(&tmp, path, &dir, bytes);
    if result.is_err() {
        // Best effort: do not leave a secret copy behind. The original error wins.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp_and_rename(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    bytes: &[u8],
) -> Result<(), FileStepError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_FILE_MODE)
        .open(tmp)
        .map_err(step(tmp, "create"))?;
    // The umask can only remove bits; set the mode exactly anyway.
    file.set_permissions(fs::Permissions::from_mode(KEY_FILE_MODE))
        .map_err(step(tmp, "set permissions"))?;
    file.write_all(bytes).map_err(step(tmp, "write"))?;
    file.sync_all().map_err(step(tmp, "fsync"))?;
    drop(file);
    fs::rename(tmp, path).map_err(step(path, "rename the temporary file into place"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(step(dir, "fsync the directory"))?;
    Ok(())
}

/// Reads the device key from `path`. Refuses a file group or others may access,
/// anything but a regular file, and contents other than 64 lowercase hex
/// characters (one trailing newline allowed).
pub fn read_key_file(path: &Path) -> Result<DeviceKey, KeyFileError> {
    let mut file = File::open(path).map_err(io_err(path, "open"))?;
    // Check the file actually opened (fstat), not the path again.
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    // A fixed buffer (no reallocation leaving copies behind), zeroized on drop.
    let mut buf = Zeroizing::new([0u8; MAX_KEY_FILE_BYTES + 1]);
    let mut len = 0;
    loop {
        let n = match file.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path, "read")(e)),
        };
        if n == 0 {
            break;
        }
        len += n;
        if len > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::TooLong {
                path: path.to_path_buf(),
            });
        }
    }
    let mut contents = &buf[..len];
    if let Some(rest) = contents.strip_suffix(b"\n") {
        contents = rest;
    }
    let format_err = |source| KeyFileError::Format {
        path: path.to_path_buf(),
        source,
    };
    let text = std::str::from_utf8(contents).map_err(|_| {
        format_err(KeyError::BadHex {
            expected: DEVICE_KEY_LEN * 2,
        })
    })?;
    DeviceKey::from_hex(text).map_err(format_err)
}
