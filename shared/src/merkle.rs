//! RFC 9162 (Certificate Transparency v2) Merkle tree math for the hub's audit log,
//! and the signed tree head that commits to it.
//!
//! Everything here is a pure function over hashes: no storage, no clock, no IO. The
//! hub keeps the leaves and calls the generators ([`root`], [`inclusion_proof`],
//! [`consistency_proof`]); nodes and external auditors call the verifiers
//! ([`verify_inclusion`], [`verify_consistency`], [`verify_tree_head`],
//! [`SignedTreeHead::parse_and_verify`]), which follow RFC 9162 sections 2.1.3.2
//! and 2.1.4.2 step by step so that any other implementation of the RFC agrees
//! with them.
//!
//! Verifiers treat every proof as hostile: a proof of any length, any tree size up
//! to `u64::MAX`, and any hash give a typed [`MerkleError`], never a panic, and the
//! work done is bounded by the 64 bits of the tree size, not by the proof length.
//!
//! Test vectors: `tests/vectors/merkle_log.json`.

use serde::{Deserialize, Serialize};

use crate::canonical::MAX_SAFE_INTEGER;
use crate::digest::{Hash256, Signature};
use crate::ids::KeyId;
use crate::key::{HubPublicKey, HubSigningKey};

/// Length in bytes of an Ed25519 signature (the `signature` of `sth.json`).
pub const SIGNATURE_LEN: usize = 64;

/// Domain-separation prefix of a leaf hash (RFC 9162 section 2.1.1).
const LEAF_PREFIX: [u8; 1] = [0x00];

/// Domain-separation prefix of an interior node hash (RFC 9162 section 2.1.1).
const NODE_PREFIX: [u8; 1] = [0x01];

/// Why a Merkle proof, a tree head or a signature was rejected. Every verifier in
/// this module returns one of these instead of panicking, whatever its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not inside the tree (`index >= tree_size`).
    #[error("leaf index {index} is out of range for a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The index that was asked for.
        index: u64,
        /// The size of the tree.
        tree_size: u64,
    },
    /// A consistency proof was asked for between sizes that are not `first <= second`
    /// (or, when generating, a first size larger than the tree).
    #[error("first tree size {first_size} is larger than second tree size {second_size}")]
    InvalidSizes {
        /// The older (smaller) tree size.
        first_size: u64,
        /// The newer (larger) tree size.
        second_size: u64,
    },
    /// The proof ran out of hashes before reaching the root of the tree size given.
    #[error("proof of {len} hashes is too short for the tree sizes given")]
    ProofTooShort {
        /// Number of hashes in the proof received.
        len: usize,
    },
    /// The proof has hashes left over after reaching the root of the tree size given.
    #[error("proof of {len} hashes is too long for the tree sizes given")]
    ProofTooLong {
        /// Number of hashes in the proof received.
        len: usize,
    },
    /// The inclusion proof leads to a root other than the one given.
    #[error("inclusion proof does not lead to the given root")]
    RootMismatch,
    /// The consistency proof does not reproduce the first (older) root.
    #[error("consistency proof does not lead to the given first root")]
    FirstRootMismatch,
    /// The consistency proof does not reproduce the second (newer) root; for equal
    /// tree sizes, the two roots differ.
    #[error("consistency proof does not lead to the given second root")]
    SecondRootMismatch,
    /// An integer field is outside ±(2^53 − 1), which canonical JSON cannot carry.
    #[error("{field} = {value} is outside ±(2^53 - 1)")]
    IntegerOutOfRange {
        /// Name of the field on the wire.
        field: &'static str,
        /// The value found.
        value: i128,
    },
    /// A signature that is not exactly [`SIGNATURE_LEN`] bytes.
    #[error("an Ed25519 signature has {SIGNATURE_LEN} bytes, got {len}")]
    SignatureLength {
        /// Number of bytes received.
        len: usize,
    },
    /// The Ed25519 signature does not verify for this head and public key.
    #[error("tree head signature does not verify with the given public key")]
    BadSignature,
    /// `sth.json` is not the expected JSON object (this includes a `key_id` that is
    /// not a valid [`KeyId`]).
    #[error("sth.json is malformed: {0}")]
    Json(String),
}

/// Hash of one log entry as a leaf: SHA-256(0x00 ‖ entry). The prefix keeps a leaf
/// from ever being passed off as an interior node (second-preimage protection).
pub fn leaf_hash(entry: &[u8]) -> Hash256 {
    Hash256::of_parts(&[&LEAF_PREFIX, entry])
}

/// Hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash256, right: &Hash256) -> Hash256 {
    Hash256::of_parts(&[&NODE_PREFIX, left.as_bytes(), right.as_bytes()])
}

/// Merkle Tree Hash (RFC 9162 section 2.1.1) of a list of leaf hashes. The empty
/// tree's root is SHA-256 of the empty string.
pub fn root(leaves: &[Hash256]) -> Hash256 {
    match leaves {
        [] => Hash256::of(b""),
        [only] => *only,
        _ => {
            let (left, right) = split(leaves);
            node_hash(&root(left), &root(right))
        }
    }
}

/// Inclusion proof (audit path, RFC 9162 section 2.1.3.1) for the leaf at `index`
/// in the tree made of `leaves`: the sibling hashes from the leaf up to the root.
pub fn inclusion_proof(leaves: &[Hash256], index: u64) -> Result<Vec<Hash256>, MerkleError> {
    let position = usize::try_from(index)
        .ok()
        .filter(|&i| i < leaves.len())
        .ok_or(MerkleError::IndexOutOfRange {
            index,
            tree_size: len_u64(leaves),
        })?;
    let mut proof = Vec::new();
    path(position, leaves, &mut proof);
    Ok(proof)
}

/// Consistency proof (RFC 9162 section 2.1.4.1) that the first `first_size` of
/// `leaves` are a prefix of the whole tree. Empty when `first_size` is 0 or the
/// whole tree; an error when it is larger than the tree.
pub fn consistency_proof(leaves: &[Hash256], first_size: u64) -> Result<Vec<Hash256>, MerkleError> {
    let first = usize::try_from(first_size)
        .ok()
        .filter(|&m| m <= leaves.len())
        .ok_or(MerkleError::InvalidSizes {
            first_size,
            second_size: len_u64(leaves),
        })?;
    let mut proof = Vec::new();
    // PROOF(0, D[n]) is not defined by the RFC; the empty tree is a prefix of every
    // tree, so nothing needs proving (see `verify_consistency`).
    if first > 0 {
        subproof(first, leaves, true, &mut proof);
    }
    Ok(proof)
}

/// Verifies that `leaf` is the leaf at `index` of the tree of `tree_size` leaves
/// whose root is `root`, following RFC 9162 section 2.1.3.2 exactly.
pub fn verify_inclusion(
    leaf: &Hash256,
    index: u64,
    tree_size: u64,
    proof: &[Hash256],
    root: &Hash256,
) -> Result<(), MerkleError> {
    // Step 1.
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    // Step 2; `tree_size >= 1` here.
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    // Step 3.
    let mut r = *leaf;
    // Step 4. Each hash consumed shifts `sn` right at least once, so at most 64
    // hashes are ever read, whatever the proof's length.
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::ProofTooLong { len: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(MerkleError::ProofTooShort { len: proof.len() });
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `second_size` leaves with root `second_root` extends
/// the tree of `first_size` leaves with root `first_root` (append-only), following
/// RFC 9162 section 2.1.4.2 exactly for `0 < first_size < second_size`.
///
/// Cases the RFC's algorithm does not cover: `first_size > second_size` is
/// [`MerkleError::InvalidSizes`]; equal sizes need an empty proof and equal roots;
/// `first_size == 0` needs an empty proof and `first_root` equal to the empty
/// tree's root (the empty tree is a prefix of any tree, so `second_root` is not
/// constrained).
pub fn verify_consistency(
    first_size: u64,
    second_size: u64,
    first_root: &Hash256,
    second_root: &Hash256,
    proof: &[Hash256],
) -> Result<(), MerkleError> {
    if first_size > second_size {
        return Err(MerkleError::InvalidSizes {
            first_size,
            second_size,
        });
    }
    if first_size == second_size {
        if !proof.is_empty() {
            return Err(MerkleError::ProofTooLong { len: proof.len() });
        }
        if first_root != second_root {
            return Err(MerkleError::SecondRootMismatch);
        }
        return Ok(());
    }
    if first_size == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::ProofTooLong { len: proof.len() });
        }
        if *first_root != root(&[]) {
            return Err(MerkleError::FirstRootMismatch);
        }
        return Ok(());
    }
    // Step 1.
    if proof.is_empty() {
        return Err(MerkleError::ProofTooShort { len: 0 });
    }
    // Step 2: prepend `first_root` when `first_size` is a power of two, without
    // copying the (untrusted) proof.
    let prefix = first_size.is_power_of_two().then_some(first_root);
    let mut path = prefix.into_iter().chain(proof);
    // Step 3; `0 < first_size < second_size` here.
    let mut fn_ = first_size - 1;
    let mut sn = second_size - 1;
    // Step 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let Some(start) = path.next() else {
        return Err(MerkleError::ProofTooShort { len: proof.len() });
    };
    let mut fr = *start;
    let mut sr = *start;
    // Step 6. As for inclusion, at most 64 hashes are ever read.
    for c in path {
        if sn == 0 {
            return Err(MerkleError::ProofTooLong { len: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(MerkleError::ProofTooShort { len: proof.len() });
    }
    if fr != *first_root {
        return Err(MerkleError::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(MerkleError::SecondRootMismatch);
    }
    Ok(())
}

/// The number of leaves as a `u64`, for error messages. Saturates on the
/// (theoretical) platform where `usize` is wider than 64 bits.
fn len_u64(leaves: &[Hash256]) -> u64 {
    u64::try_from(leaves.len()).unwrap_or(u64::MAX)
}

/// Splits `n >= 2` leaves at `k`, the largest power of two smaller than `n`
/// (RFC 9162 section 2.1.1).
fn split(leaves: &[Hash256]) -> (&[Hash256], &[Hash256]) {
    let n = leaves.len();
    debug_assert!(n >= 2, "split needs at least two leaves, got {n}");
    // For n >= 2, (n - 1).ilog2() < usize::BITS - 1, so the shift cannot
    // overflow; for n < 2 (never reached), k is 1 and `split_at` returns an empty
    // side rather than panicking.
    let k = match (n.saturating_sub(1)).checked_ilog2() {
        Some(bits) => 1usize << bits,
        None => 1,
    };
    leaves.split_at(k.min(n))
}

/// PATH(m, D[n]) of RFC 9162 section 2.1.3.1, appended to `out` from the leaf up.
fn path(m: usize, leaves: &[Hash256], out: &mut Vec<Hash256>) {
    if leaves.len() <= 1 {
        return;
    }
    let (left, right) = split(leaves);
    if m < left.len() {
        path(m, left, out);
        out.push(root(right));
    } else {
        path(m - left.len(), right, out);
        out.push(root(left));
    }
}

/// SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1, appended to `out`.
/// Requires `1 <= m <= leaves.len()`.
fn subproof(m: usize, leaves: &[Hash256], complete: bool, out: &mut Vec<Hash256>) {
    debug_assert!(
        m >= 1 && m <= leaves.len(),
        "subproof({m}) of {}",
        leaves.len()
    );
    if m >= leaves.len() {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let (left, right) = split(leaves);
    if m <= left.len() {
        subproof(m, left, complete, out);
        out.push(root(right));
    } else {
        subproof(m - left.len(), right, false, out);
        out.push(root(left));
    }
}

/// The head of the audit log at one moment: how many entries, their Merkle root,
/// when (UTC ms, passed in by the caller) and which hub key signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeHead {
    /// Number of entries in the log.
    pub tree_size: u64,
    /// [`root`] of the leaf hashes of those entries.
    pub root: Hash256,
    /// When the hub made this head, UTC milliseconds.
    pub at_ms: i64,
    /// Which of the hub's Ed25519 keys signs it. A [`KeyId`] is 1 to 64
    /// characters of `[A-Za-z0-9._-]`, so it never needs escaping in JSON.
    pub key_id: KeyId,
}

impl TreeHead {
    /// Checks what canonical JSON needs of this head: both integers within
    /// ±(2^53 − 1). (`key_id` needs no check: a [`KeyId`] is valid by
    /// construction and never needs escaping.)
    pub fn validate(&self) -> Result<(), MerkleError> {
        let max = MAX_SAFE_INTEGER.unsigned_abs();
        if self.tree_size > max {
            return Err(MerkleError::IntegerOutOfRange {
                field: "tree_size",
                value: i128::from(self.tree_size),
            });
        }
        if self.at_ms.unsigned_abs() > max {
            return Err(MerkleError::IntegerOutOfRange {
                field: "at_ms",
                value: i128::from(self.at_ms),
            });
        }
        Ok(())
    }

    /// The bytes that are signed: RFC 8785 canonical JSON of the four fields,
    /// `{"at_ms":…,"key_id":"…","root":"<hex>","tree_size":…}`, keys sorted, no
    /// whitespace. Fails if the head does not pass [`TreeHead::validate`].
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, MerkleError> {
        self.validate()?;
        // `KeyId` guarantees that `key_id` needs no escaping, and validation that
        // the integers print the same as RFC 8785's number serialization.
        Ok(format!(
            r#"{{"at_ms":{},"key_id":"{}","root":"{}","tree_size":{}}}"#,
            self.at_ms,
            self.key_id,
            self.root.to_hex(),
            self.tree_size
        )
        .into_bytes())
    }
}

/// Signs the canonical JSON of `head` with the hub's Ed25519 `key`. Ed25519 is
/// deterministic, so the same key and head always give the same bytes.
pub fn sign_tree_head(key: &HubSigningKey, head: &TreeHead) -> Result<Signature, MerkleError> {
    let message = head.canonical_bytes()?;
    Ok(Signature::from_bytes(key.sign(&message)))
}

/// Verifies an Ed25519 `signature` over the canonical JSON of `head` with the hub's
/// public `key`. A head that cannot be canonicalized is rejected before any
/// signature check.
pub fn verify_tree_head(
    key: &HubPublicKey,
    head: &TreeHead,
    signature: &[u8],
) -> Result<(), MerkleError> {
    let message = head.canonical_bytes()?;
    if signature.len() != SIGNATURE_LEN {
        return Err(MerkleError::SignatureLength {
            len: signature.len(),
        });
    }
    if key.verify(&message, signature) {
        Ok(())
    } else {
        Err(MerkleError::BadSignature)
    }
}

/// `sth.json` of the audit log export: the head's four fields plus `signature`, the
/// lowercase hex of the Ed25519 signature over the head's canonical JSON. Fields are
/// declared in sorted order so that serializing gives canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTreeHead {
    /// See [`TreeHead::at_ms`].
    pub at_ms: i64,
    /// See [`TreeHead::key_id`].
    pub key_id: KeyId,
    /// See [`TreeHead::root`].
    pub root: Hash256,
    /// Ed25519 signature over [`TreeHead::canonical_bytes`]; 128 lowercase hex
    /// characters on the wire.
    pub signature: Signature,
    /// See [`TreeHead::tree_size`].
    pub tree_size: u64,
}

impl SignedTreeHead {
    /// Signs `head` with the hub's Ed25519 `key` (the hub's side).
    pub fn sign(head: &TreeHead, key: &HubSigningKey) -> Result<SignedTreeHead, MerkleError> {
        let signature = sign_tree_head(key, head)?;
        Ok(SignedTreeHead {
            at_ms: head.at_ms,
            key_id: head.key_id.clone(),
            root: head.root,
            signature,
            tree_size: head.tree_size,
        })
    }

    /// The four signed fields, without the signature.
    pub fn head(&self) -> TreeHead {
        TreeHead {
            tree_size: self.tree_size,
            root: self.root,
            at_ms: self.at_ms,
            key_id: self.key_id.clone(),
        }
    }

    /// Checks the signature with the hub's public `key` and returns the head it
    /// vouches for.
    pub fn verify(&self, key: &HubPublicKey) -> Result<TreeHead, MerkleError> {
        let head = self.head();
        verify_tree_head(key, &head, &self.signature.0)?;
        Ok(head)
    }

    /// Parses `sth.json`. Unknown, missing or duplicate fields, a `key_id` that is
    /// not a valid [`KeyId`], a signature that is not 128 lowercase hex characters,
    /// and non-integer numbers are rejected; the signature itself is not checked
    /// (see [`SignedTreeHead::verify`]).
    pub fn parse(json: &str) -> Result<SignedTreeHead, MerkleError> {
        serde_json::from_str(json).map_err(|e| MerkleError::Json(e.to_string()))
    }

    /// Parses `sth.json` and verifies it with the hub's public `key`: what an
    /// auditor or a node does with a head it received.
    pub fn parse_and_verify(json: &str, key: &HubPublicKey) -> Result<TreeHead, MerkleError> {
        SignedTreeHead::parse(json)?.verify(key)
    }

    /// Writes `sth.json` as canonical JSON (keys sorted, no whitespace). Fails if
    /// the head does not pass [`TreeHead::validate`].
    pub fn to_json(&self) -> Result<String, MerkleError> {
        self.head().validate()?;
        serde_json::to_string(self).map_err(|e| MerkleError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical;

    /// Distinct leaf hashes `leaf_hash("0")`, `leaf_hash("1")`, ….
    fn leaves(n: usize) -> Vec<Hash256> {
        (0..n)
            .map(|i| leaf_hash(i.to_string().as_bytes()))
            .collect()
    }

    fn head() -> TreeHead {
        TreeHead {
            tree_size: 3,
            root: root(&leaves(3)),
            at_ms: 1_763_880_001_000,
            key_id: key_id("hub-2026-1"),
        }
    }

    fn key_id(s: &str) -> KeyId {
        s.parse().unwrap()
    }

    fn signing_key() -> HubSigningKey {
        HubSigningKey::from_seed([7; 32])
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = Hash256::of(b"a");
        let b = Hash256::of(b"b");
        let mut concat = Vec::new();
        concat.extend_from_slice(a.as_bytes());
        concat.extend_from_slice(b.as_bytes());
        assert_eq!(leaf_hash(b""), Hash256::of(&[0u8]));
        assert_eq!(node_hash(&a, &b), Hash256::of_parts(&[&[1u8], &concat]));
        assert_ne!(leaf_hash(&concat), node_hash(&a, &b));
    }

    #[test]
    fn roots_of_small_trees_follow_the_largest_power_of_two_split() {
        let l = leaves(5);
        assert_eq!(
            root(&[]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node_hash(&l[0], &l[1]));
        assert_eq!(root(&l[..3]), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        let four = node_hash(&node_hash(&l[0], &l[1]), &node_hash(&l[2], &l[3]));
        assert_eq!(root(&l[..4]), four);
        assert_eq!(root(&l), node_hash(&four, &l[4]));
    }

    #[test]
    fn inclusion_proof_of_a_leaf_in_a_tree_of_five() {
        let l = leaves(5);
        let proof = inclusion_proof(&l, 2).unwrap();
        assert_eq!(
            proof,
            vec![l[3], node_hash(&l[0], &l[1]), l[4]],
            "sibling, then the left pair, then the lone fifth leaf"
        );
        verify_inclusion(&l[2], 2, 5, &proof, &root(&l)).unwrap();
        assert_eq!(inclusion_proof(&l, 4).unwrap(), vec![root(&l[..4])]);
    }

    #[test]
    fn generating_outside_the_tree_is_an_error() {
        let l = leaves(3);
        assert_eq!(
            inclusion_proof(&l, 3),
            Err(MerkleError::IndexOutOfRange {
                index: 3,
                tree_size: 3
            })
        );
        assert!(inclusion_proof(&[], 0).is_err());
        assert!(inclusion_proof(&l, u64::MAX).is_err());
        assert_eq!(
            consistency_proof(&l, 4),
            Err(MerkleError::InvalidSizes {
                first_size: 4,
                second_size: 3
            })
        );
        assert_eq!(consistency_proof(&l, 0), Ok(vec![]));
        assert_eq!(consistency_proof(&l, 3), Ok(vec![]));
        assert_eq!(consistency_proof(&[], 0), Ok(vec![]));
    }

    #[test]
    fn inclusion_verifier_reports_what_is_wrong() {
        let l = leaves(7);
        let r = root(&l);
        let proof = inclusion_proof(&l, 4).unwrap();
        assert_eq!(
            verify_inclusion(&l[4], 7, 7, &proof, &r),
            Err(MerkleError::IndexOutOfRange {
                index: 7,
                tree_size: 7
            })
        );
        assert_eq!(
            verify_inclusion(&l[4], 0, 0, &[], &r),
            Err(MerkleError::IndexOutOfRange {
                index: 0,
                tree_size: 0
            })
        );
        assert_eq!(
            verify_inclusion(&l[4], 4, 7, &proof[..2], &r),
            Err(MerkleError::ProofTooShort { len: 2 })
        );
        let mut long = proof.clone();
        long.push(l[0]);
        assert_eq!(
            verify_inclusion(&l[4], 4, 7, &long, &r),
            Err(MerkleError::ProofTooLong { len: 4 })
        );
        assert_eq!(
            verify_inclusion(&l[3], 4, 7, &proof, &r),
            Err(MerkleError::RootMismatch)
        );
        // A single-leaf tree: the leaf is the root and the proof is empty.
        verify_inclusion(&l[0], 0, 1, &[], &l[0]).unwrap();
        assert_eq!(
            verify_inclusion(&l[0], 0, 1, &[l[1]], &l[0]),
            Err(MerkleError::ProofTooLong { len: 1 })
        );
    }

    #[test]
    fn consistency_special_cases() {
        let l = leaves(6);
        let r6 = root(&l);
        let r3 = root(&l[..3]);
        let empty = root(&[]);
        assert_eq!(
            verify_consistency(6, 3, &r6, &r3, &[]),
            Err(MerkleError::InvalidSizes {
                first_size: 6,
                second_size: 3
            })
        );
        // Equal sizes: empty proof, equal roots.
        verify_consistency(6, 6, &r6, &r6, &[]).unwrap();
        verify_consistency(0, 0, &empty, &empty, &[]).unwrap();
        assert_eq!(
            verify_consistency(6, 6, &r6, &r3, &[]),
            Err(MerkleError::SecondRootMismatch)
        );
        assert_eq!(
            verify_consistency(6, 6, &r6, &r6, &[r3]),
            Err(MerkleError::ProofTooLong { len: 1 })
        );
        // From the empty tree: empty proof, and the first root is the empty root.
        verify_consistency(0, 6, &empty, &r6, &[]).unwrap();
        assert_eq!(
            verify_consistency(0, 6, &r3, &r6, &[]),
            Err(MerkleError::FirstRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 6, &empty, &r6, &[r3]),
            Err(MerkleError::ProofTooLong { len: 1 })
        );
        // 0 < first < second: an empty proof is never enough (RFC step 1).
        assert_eq!(
            verify_consistency(3, 6, &r3, &r6, &[]),
            Err(MerkleError::ProofTooShort { len: 0 })
        );
        let proof = consistency_proof(&l, 3).unwrap();
        verify_consistency(3, 6, &r3, &r6, &proof).unwrap();
        assert_eq!(
            verify_consistency(3, 6, &r6, &r6, &proof),
            Err(MerkleError::FirstRootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 6, &r3, &r3, &proof),
            Err(MerkleError::SecondRootMismatch)
        );
    }

    #[test]
    fn a_power_of_two_first_tree_is_not_repeated_in_the_proof() {
        let l = leaves(6);
        let proof = consistency_proof(&l, 4).unwrap();
        assert_eq!(proof, vec![node_hash(&l[4], &l[5])]);
        verify_consistency(4, 6, &root(&l[..4]), &root(&l), &proof).unwrap();
        // Sending the first root along as well makes the proof one hash too long.
        let mut with_first = vec![root(&l[..4])];
        with_first.extend_from_slice(&proof);
        assert_eq!(
            verify_consistency(4, 6, &root(&l[..4]), &root(&l), &with_first),
            Err(MerkleError::ProofTooLong { len: 2 })
        );
    }

    #[test]
    fn proofs_against_the_largest_trees_are_bounded_and_never_panic() {
        use MerkleError::{ProofTooLong, ProofTooShort};
        let junk = vec![Hash256::of(b"junk"); 1000];
        let h = Hash256::ZERO;
        for size in [2, 3, 1 << 53, u64::MAX - 1, u64::MAX] {
            for index in [0, size / 2, size - 1] {
                let long = verify_inclusion(&h, index, size, &junk, &h);
                assert_eq!(long, Err(ProofTooLong { len: 1000 }), "{index} of {size}");
                let empty = verify_inclusion(&h, index, size, &[], &h);
                assert_eq!(empty, Err(ProofTooShort { len: 0 }), "{index} of {size}");
            }
            for first in [1, size / 2, size - 1] {
                let long = verify_consistency(first, size, &h, &h, &junk);
                assert_eq!(long, Err(ProofTooLong { len: 1000 }), "{first} to {size}");
                let empty = verify_consistency(first, size, &h, &h, &[]);
                assert_eq!(empty, Err(ProofTooShort { len: 0 }), "{first} to {size}");
            }
        }
        assert_eq!(
            verify_consistency(u64::MAX, u64::MAX, &h, &h, &junk),
            Err(ProofTooLong { len: 1000 })
        );
    }

    #[test]
    fn canonical_head_has_sorted_keys_and_no_whitespace() {
        let h = head();
        let text = String::from_utf8(h.canonical_bytes().unwrap()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"at_ms":1763880001000,"key_id":"hub-2026-1","root":"{}","tree_size":3}}"#,
                h.root
            )
        );
        // The hand-written bytes are exactly what the canonical JSON module makes.
        assert_eq!(
            canonical::canonicalize(text.as_bytes()).unwrap(),
            text.as_bytes()
        );
        let negative = TreeHead {
            at_ms: -MAX_SAFE_INTEGER,
            ..head()
        };
        let bytes = negative.canonical_bytes().unwrap();
        assert!(String::from_utf8(bytes.clone())
            .unwrap()
            .starts_with(r#"{"at_ms":-9007199254740991,"#));
        assert_eq!(canonical::canonicalize(&bytes).unwrap(), bytes);
    }

    #[test]
    fn head_fields_that_canonical_json_cannot_carry_are_rejected() {
        // A key id that would need escaping, or is empty or too long, cannot even
        // be made (nor deserialized), so it never reaches the canonical bytes.
        let head_json = |key_id: &str| {
            format!(
                r#"{{"tree_size":3,"root":"{}","at_ms":0,"key_id":{}}}"#,
                head().root,
                serde_json::to_string(key_id).unwrap()
            )
        };
        for bad in ["", &"k".repeat(65), "a\"b", "a b", "ñ", "a\\"] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad:?}");
            let json = head_json(bad);
            assert!(serde_json::from_str::<TreeHead>(&json).is_err(), "{json}");
        }
        for good in ["k".repeat(64), "A.z_0-9".to_string()] {
            let parsed: TreeHead = serde_json::from_str(&head_json(&good)).unwrap();
            assert_eq!(parsed.key_id.as_str(), good);
            let h = TreeHead {
                key_id: key_id(&good),
                ..head()
            };
            let text = String::from_utf8(h.canonical_bytes().unwrap()).unwrap();
            assert!(text.contains(&format!(r#""key_id":"{good}""#)), "{text}");
        }

        let too_big = TreeHead {
            tree_size: 1 << 53,
            ..head()
        };
        assert_eq!(
            too_big.canonical_bytes(),
            Err(MerkleError::IntegerOutOfRange {
                field: "tree_size",
                value: 1 << 53
            })
        );
        for at_ms in [
            MAX_SAFE_INTEGER + 1,
            -MAX_SAFE_INTEGER - 1,
            i64::MIN,
            i64::MAX,
        ] {
            let h = TreeHead { at_ms, ..head() };
            assert_eq!(
                h.canonical_bytes(),
                Err(MerkleError::IntegerOutOfRange {
                    field: "at_ms",
                    value: i128::from(at_ms)
                })
            );
        }
        let edge = TreeHead {
            tree_size: MAX_SAFE_INTEGER.unsigned_abs(),
            at_ms: MAX_SAFE_INTEGER,
            ..head()
        };
        assert!(edge.canonical_bytes().is_ok());
    }

    #[test]
    fn signing_round_trips_and_tampering_is_caught() {
        let public = signing_key().public_key();
        let h = head();
        let sig = sign_tree_head(&signing_key(), &h).unwrap();
        verify_tree_head(&public, &h, &sig.0).unwrap();
        assert_eq!(
            sig,
            sign_tree_head(&signing_key(), &h).unwrap(),
            "deterministic"
        );

        let later = TreeHead {
            at_ms: h.at_ms + 1,
            ..h.clone()
        };
        assert_eq!(
            verify_tree_head(&public, &later, &sig.0),
            Err(MerkleError::BadSignature)
        );
        let other = HubSigningKey::from_seed([8; 32]).public_key();
        assert_eq!(
            verify_tree_head(&other, &h, &sig.0),
            Err(MerkleError::BadSignature)
        );
        assert_eq!(
            verify_tree_head(&public, &h, &sig.0[..63]),
            Err(MerkleError::SignatureLength { len: 63 })
        );
        // A head that canonical JSON cannot carry is neither signed nor verified.
        let too_big = TreeHead {
            tree_size: 1 << 53,
            ..h
        };
        let out_of_range = MerkleError::IntegerOutOfRange {
            field: "tree_size",
            value: 1 << 53,
        };
        assert_eq!(
            sign_tree_head(&signing_key(), &too_big),
            Err(out_of_range.clone())
        );
        assert_eq!(
            verify_tree_head(&public, &too_big, &sig.0),
            Err(out_of_range)
        );
    }

    #[test]
    fn sth_json_is_canonical_and_parses_back() {
        let public = signing_key().public_key();
        let sth = SignedTreeHead::sign(&head(), &signing_key()).unwrap();
        let json = sth.to_json().unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"at_ms":1763880001000,"key_id":"hub-2026-1","root":"{}","signature":"{}","tree_size":3}}"#,
                head().root,
                sth.signature.to_hex()
            )
        );
        assert_eq!(SignedTreeHead::parse(&json), Ok(sth.clone()));
        assert_eq!(SignedTreeHead::parse_and_verify(&json, &public), Ok(head()));

        let upper = json.replace(
            &sth.signature.to_hex(),
            &sth.signature.to_hex().to_uppercase(),
        );
        assert!(matches!(
            SignedTreeHead::parse(&upper),
            Err(MerkleError::Json(_))
        ));
        let extra = json.replacen('{', r#"{"note":"x","#, 1);
        assert!(matches!(
            SignedTreeHead::parse(&extra),
            Err(MerkleError::Json(_))
        ));
        let duplicate = json.replacen('{', r#"{"at_ms":0,"#, 1);
        assert!(matches!(
            SignedTreeHead::parse(&duplicate),
            Err(MerkleError::Json(_))
        ));
        let float = json.replace(r#""tree_size":3"#, r#""tree_size":3.0"#);
        assert!(matches!(
            SignedTreeHead::parse(&float),
            Err(MerkleError::Json(_))
        ));
        let bad_key_id = json.replace(r#""key_id":"hub-2026-1""#, r#""key_id":"hub 2026""#);
        assert!(matches!(
            SignedTreeHead::parse_and_verify(&bad_key_id, &public),
            Err(MerkleError::Json(_))
        ));
        let tampered = json.replace(r#""tree_size":3"#, r#""tree_size":4"#);
        assert_eq!(
            SignedTreeHead::parse_and_verify(&tampered, &public),
            Err(MerkleError::BadSignature)
        );
        let other = HubSigningKey::from_seed([8; 32]).public_key();
        assert_eq!(
            SignedTreeHead::parse_and_verify(&json, &other),
            Err(MerkleError::BadSignature)
        );
    }
}
