//! `caja-hub audit export` and `caja-hub audit verify` (DESIGN "Audit log v1").
//!
//! An export is a directory of three files, verifiable without Caja:
//!
//! ```text
//! entries.jsonl  one canonical entry per line ("\n" after each), index = line number from 0
//! sth.json       canonical {"at_ms","key_id","root","signature","tree_size"}, no newline
//! hub_pubkey     lowercase hex of the hub's 32-byte Ed25519 public key, no newline
//! ```
//!
//! plus `leaf_hashes.txt` (the hex leaf hash of each entry as the signed tree
//! holds it, one per line), an aid to diagnosis only: verification never trusts it, but when the entries do
//! not lead to the signed root and these hashes do, the first entry whose hash
//! differs is the one that was changed, and `verify` names it.
//!
//! Verification streams the entries (constant memory, [`Frontier`]) and
//! reports the first problem with the index it concerns.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use caja_shared::canonical::{self, Value};
use caja_shared::digest::Hash256;
use caja_shared::key::HubPublicKey;
use caja_shared::merkle::{self, MerkleError, SignedTreeHead};

use crate::audit_tree::{Frontier, NodeSource};
use crate::datadir::{self, DataDirError};
use crate::storage::{self, audit_tree as tree_store, StorageError};

/// The entries file.
pub const ENTRIES_FILE: &str = "entries.jsonl";
/// The signed tree head file.
pub const STH_FILE: &str = "sth.json";
/// The public key file.
pub const PUBKEY_FILE: &str = "hub_pubkey";
/// The diagnostic leaf hashes file.
pub const LEAF_HASHES_FILE: &str = "leaf_hashes.txt";

/// Longest line `verify` reads as one entry (entries are a few hundred bytes;
/// this bounds the memory a hostile file can make it use).
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// The keys of an entry, sorted (canonical order).
const ENTRY_KEYS: [&str; 5] = ["at_ms", "data", "index", "kind", "store"];

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The data directory (key) is unusable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output directory is not empty.
    #[error("{0} is not empty; export into a new or empty directory")]
    Exists(PathBuf),
    /// `audit_log` holds fewer entries than the signed tree.
    #[error("the audit log has {entries} entries but its tree has {tree_size}")]
    Short {
        /// Entries found.
        entries: u64,
        /// The signed size.
        tree_size: u64,
    },
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Entries written.
    pub entries: u64,
    /// The signed head in `sth.json`.
    pub sth: SignedTreeHead,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create(path: &Path) -> Result<BufWriter<File>, ExportError> {
    if path.exists() {
        return Err(ExportError::Exists(path.to_owned()));
    }
    Ok(BufWriter::new(File::create(path).map_err(io_err(path))?))
}

fn finish(path: &Path, w: BufWriter<File>) -> Result<(), ExportError> {
    let f = w.into_inner().map_err(|e| ExportError::Io {
        path: path.to_owned(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io_err(path))
}

/// Exports the audit log of the hub in `data_dir` into `out`: signs a head of
/// the current tree (unless the latest head already covers it) with the hub's
/// key, then writes the entries it covers. Safe while the hub runs (the log is
/// append-only; the head is taken first).
pub fn export(data_dir: &Path, out: &Path, now_ms: i64) -> Result<ExportReport, ExportError> {
    let key = datadir::load_key(data_dir)?;
    if out.exists() {
        let mut listing = fs::read_dir(out).map_err(io_err(out))?;
        if listing.next().is_some() {
            return Err(ExportError::Exists(out.to_owned()));
        }
    }
    let conn = storage::open_offline(&datadir::database(data_dir)?)?;
    if tree_store::tree_size(&conn)? == 0 && tree_store::latest_sth(&conn)?.is_none() {
        // A hub upgraded to the audit tree but not served since: build the
        // tree as its start-up would.
        tree_store::startup(&conn, &key, now_ms)?;
    }
    let sth = conn.write_tx(|tx| tree_store::sign_head(tx, &key, now_ms, false))?;
    // Written into a sibling directory, then renamed into place: an
    // interrupted export leaves no half export under `out`.
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let partial = out.with_file_name(format!(".{name}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    }
    fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let entries_path = partial.join(ENTRIES_FILE);
    let leaves_path = partial.join(LEAF_HASHES_FILE);
    let mut entries = create(&entries_path)?;
    let mut leaves = create(&leaves_path)?;
    let mut write_error: Option<ExportError> = None;
    let mut nodes = tree_store::SqlNodes::new(&conn);
    let n = tree_store::for_each_entry(&conn, sth.tree_size, |index, bytes, _| {
        // The leaf hash the signed tree holds (not one recomputed from the
        // bytes): where they differ, the entry was changed.
        let leaf = nodes.node(0, index)?;
        let r = entries
            .write_all(bytes)
            .and_then(|()| entries.write_all(b"\n"))
            .map_err(io_err(&entries_path))
            .and_then(|()| writeln!(leaves, "{leaf}").map_err(io_err(&leaves_path)));
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                write_error = Some(e);
                Err(StorageError::Task(msg))
            }
        }
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    let n = n?;
    if n != sth.tree_size {
        return Err(ExportError::Short {
            entries: n,
            tree_size: sth.tree_size,
        });
    }
    finish(&entries_path, entries)?;
    finish(&leaves_path, leaves)?;
    let sth_json = sth
        .to_json()
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    write_file(&partial.join(STH_FILE), sth_json.as_bytes())?;
    write_file(
        &partial.join(PUBKEY_FILE),
        key.public_key().to_hex().as_bytes(),
    )?;
    // `out` may exist as an empty directory (checked above); rename replaces it.
    fs::rename(&partial, out).map_err(io_err(out))?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(ExportReport { entries: n, sth })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut w = create(path)?;
    w.write_all(bytes).map_err(io_err(path))?;
    finish(path, w)
}

/// Why an export does not verify. Every problem with an entry names its index.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file is missing or unreadable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `hub_pubkey` is not 64 lowercase hex characters of an Ed25519 key.
    #[error("hub_pubkey: {0}")]
    PublicKey(String),
    /// `sth.json` is malformed or its signature does not verify.
    #[error("sth.json: {0}")]
    TreeHead(MerkleError),
    /// An entry is malformed, or not where its index says.
    #[error("entry {index}: {reason}")]
    Entry {
        /// The line number from 0 (= the index the entry must have).
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// Fewer entries than the signed tree size.
    #[error("entry {index} is missing: the signed tree has {tree_size} entries")]
    Missing {
        /// The first missing index.
        index: u64,
        /// The signed size.
        tree_size: u64,
    },
    /// More entries than the signed tree size.
    #[error("entry {index} is beyond the signed tree of {tree_size} entries")]
    Extra {
        /// The first extra index.
        index: u64,
        /// The signed size.
        tree_size: u64,
    },
    /// The entries lead to another root; `leaf_hashes.txt` (which does lead to
    /// the signed root) shows the first changed entry.
    #[error("entry {index} was changed: its hash is not the one the signed tree holds")]
    Changed {
        /// The entry.
        index: u64,
    },
    /// The entries lead to another root and nothing shows which one changed.
    #[error("the entries lead to root {computed}, not to the signed root {signed}")]
    RootMismatch {
        /// Root of the entries.
        computed: Hash256,
        /// Root in `sth.json`.
        signed: Hash256,
    },
}

impl VerifyError {
    /// The entry index the problem concerns, when there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            VerifyError::Entry { index, .. }
            | VerifyError::Missing { index, .. }
            | VerifyError::Extra { index, .. }
            | VerifyError::Changed { index } => Some(*index),
            _ => None,
        }
    }
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries verified.
    pub entries: u64,
    /// The signed root they lead to.
    pub root: Hash256,
    /// The head's time.
    pub at_ms: i64,
    /// The public key that signed it.
    pub public_key: String,
}

fn read_text(path: &Path) -> Result<String, VerifyError> {
    let text = fs::read_to_string(path).map_err(|source| VerifyError::Io {
        path: path.to_owned(),
        source,
    })?;
    // A single final newline (an editor's) is tolerated; nothing else.
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
}

/// Checks one line of `entries.jsonl` at `index`.
fn check_entry(index: u64, line: &[u8]) -> Result<(), VerifyError> {
    let bad = |reason: String| VerifyError::Entry { index, reason };
    let canonical = canonical::canonicalize(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    if canonical != line {
        return Err(bad("not in canonical JSON form".into()));
    }
    let value = canonical::parse(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(bad("not a JSON object".into()));
    };
    let keys: Vec<&str> = object.keys().collect();
    if keys != ENTRY_KEYS {
        return Err(bad(format!("has keys {keys:?}, expected {ENTRY_KEYS:?}")));
    }
    match value.get("index").and_then(Value::as_i64) {
        Some(i) if u64::try_from(i).ok() == Some(index) => Ok(()),
        Some(i) => Err(bad(format!(
            "line {index} holds the entry with index {i}: an entry is missing, added or out of order here"
        ))),
        None => Err(bad("index is not an integer".into())),
    }
}

/// Verifies the export in `dir` (see the module doc).
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let key_text = read_text(&dir.join(PUBKEY_FILE))?;
    let key =
        HubPublicKey::from_hex(&key_text).map_err(|e| VerifyError::PublicKey(e.to_string()))?;
    let sth_text = read_text(&dir.join(STH_FILE))?;
    let head = SignedTreeHead::parse_and_verify(&sth_text, &key).map_err(VerifyError::TreeHead)?;

    let entries_path = dir.join(ENTRIES_FILE);
    let file = File::open(&entries_path).map_err(|source| VerifyError::Io {
        path: entries_path.clone(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    // The diagnostic hashes, read alongside when present.
    let mut hashes = File::open(dir.join(LEAF_HASHES_FILE))
        .ok()
        .map(|f| BufReader::new(f).lines());
    let mut from_hashes = Frontier::new();
    let mut hashes_ok = hashes.is_some();
    let mut first_differing: Option<u64> = None;

    let mut frontier = Frontier::new();
    let mut line = Vec::new();
    let mut index = 0u64;
    loop {
        line.clear();
        let n = std::io::Read::take(&mut reader, MAX_ENTRY_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| VerifyError::Io {
                path: entries_path.clone(),
                source,
            })?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if u64::try_from(line.len()).unwrap_or(u64::MAX) > MAX_ENTRY_BYTES {
            return Err(VerifyError::Entry {
                index,
                reason: format!("longer than {MAX_ENTRY_BYTES} bytes"),
            });
        }
        if index >= head.tree_size {
            return Err(VerifyError::Extra {
                index,
                tree_size: head.tree_size,
            });
        }
        check_entry(index, &line)?;
        let leaf = merkle::leaf_hash(&line);
        frontier.push(leaf);
        if let Some(lines) = hashes.as_mut() {
            match lines
                .next()
                .and_then(Result::ok)
                .and_then(|l| l.parse::<Hash256>().ok())
            {
                Some(h) if hashes_ok => {
                    from_hashes.push(h);
                    if h != leaf && first_differing.is_none() {
                        first_differing = Some(index);
                    }
                }
                _ => hashes_ok = false,
            }
        }
        index += 1;
    }
    if index < head.tree_size {
        return Err(VerifyError::Missing {
            index,
            tree_size: head.tree_size,
        });
    }
    let computed = frontier.root();
    if computed != head.root {
        if hashes_ok && from_hashes.root() == head.root {
            if let Some(index) = first_differing {
                return Err(VerifyError::Changed { index });
            }
        }
        return Err(VerifyError::RootMismatch {
            computed,
            signed: head.root,
        });
    }
    Ok(VerifyReport {
        entries: index,
        root: head.root,
        at_ms: head.at_ms,
        public_key: key.to_hex(),
    })
}
