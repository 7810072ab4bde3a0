//! The audit log's Merkle tree against `vectors/merkle_log.json`, case by case, and
//! property tests of inclusion and consistency proofs on random trees.
//!
//! Each vector test checks every case and then fails once, listing every case that
//! went wrong by name, so one run shows the whole damage.

use caja_shared::digest::Hash256;
use caja_shared::ids::KeyId;
use caja_shared::key::{HubPublicKey, HubSigningKey};
use caja_shared::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, sign_tree_head, verify_consistency,
    verify_inclusion, verify_tree_head, MerkleError, SignedTreeHead, TreeHead,
};
use proptest::prelude::*;
use serde::Deserialize;

const VECTORS: &str = include_str!("vectors/merkle_log.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    #[allow(dead_code)]
    about: String,
    empty_root: Hash256,
    entries: Vec<String>,
    leaf_hashes: Vec<Hash256>,
    trees: Vec<Tree>,
    signed_tree_head: SthVector,
    must_fail: Vec<MustFail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tree {
    tree_size: u64,
    root: Hash256,
    inclusion: Vec<InclusionCase>,
    consistency: Vec<ConsistencyCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionCase {
    index: u64,
    proof: Vec<Hash256>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyCase {
    from_size: u64,
    proof: Vec<Hash256>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SthVector {
    #[allow(dead_code)]
    about: String,
    private_key_seed_hex: String,
    public_key_hex: String,
    head: TreeHead,
    canonical_head: String,
    signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum MustFail {
    Inclusion {
        why: String,
        leaf_hash: Hash256,
        index: u64,
        tree_size: u64,
        root: Hash256,
        proof: Vec<Hash256>,
    },
    Consistency {
        why: String,
        first_size: u64,
        second_size: u64,
        first_root: Hash256,
        second_root: Hash256,
        proof: Vec<Hash256>,
    },
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS).expect("vectors/merkle_log.json parses")
}

/// Collects failed cases by name; `finish` fails the test listing all of them and
/// also fails if fewer cases ran than expected (a loop that ran zero times proves
/// nothing).
#[derive(Default)]
struct Cases {
    ran: usize,
    failed: Vec<String>,
}

impl Cases {
    fn check(&mut self, case: &str, ok: bool, detail: impl FnOnce() -> String) {
        self.ran += 1;
        if !ok {
            self.failed.push(format!("{case}: {}", detail()));
        }
    }

    fn finish(self, expected: usize) {
        assert!(
            self.failed.is_empty(),
            "{} of {} cases failed:\n  {}",
            self.failed.len(),
            self.ran,
            self.failed.join("\n  ")
        );
        assert_eq!(self.ran, expected, "number of cases checked");
    }
}

fn signing_key_of(v: &SthVector) -> HubSigningKey {
    HubSigningKey::from_hex(&v.private_key_seed_hex).expect("seed is 32 bytes of lowercase hex")
}

fn size(n: u64) -> usize {
    usize::try_from(n).expect("vector sizes fit in usize")
}

#[test]
fn vectors_cover_every_index_and_every_size() {
    let v = vectors();
    assert_eq!(v.entries.len(), 8, "entries");
    assert_eq!(
        v.leaf_hashes.len(),
        v.entries.len(),
        "one leaf hash per entry"
    );
    let sizes: Vec<u64> = v.trees.iter().map(|t| t.tree_size).collect();
    assert_eq!(
        sizes,
        (1..=8).collect::<Vec<u64>>(),
        "a tree for every size"
    );
    for t in &v.trees {
        let indexes: Vec<u64> = t.inclusion.iter().map(|c| c.index).collect();
        assert_eq!(
            indexes,
            (0..t.tree_size).collect::<Vec<u64>>(),
            "tree {}",
            t.tree_size
        );
        let froms: Vec<u64> = t.consistency.iter().map(|c| c.from_size).collect();
        assert_eq!(
            froms,
            (1..t.tree_size).collect::<Vec<u64>>(),
            "tree {}",
            t.tree_size
        );
    }
    let inclusion = v
        .must_fail
        .iter()
        .filter(|m| matches!(m, MustFail::Inclusion { .. }));
    assert_eq!(inclusion.count(), 6, "must_fail inclusion cases");
    let consistency = v
        .must_fail
        .iter()
        .filter(|m| matches!(m, MustFail::Consistency { .. }));
    assert_eq!(consistency.count(), 5, "must_fail consistency cases");
}

#[test]
fn leaf_hashes_of_entries() {
    let v = vectors();
    let mut cases = Cases::default();
    for (i, (entry, expected)) in v.entries.iter().zip(&v.leaf_hashes).enumerate() {
        let got = leaf_hash(entry.as_bytes());
        cases.check(&format!("leaf_hashes[{i}]"), got == *expected, || {
            format!("leaf_hash(entries[{i}]) = {got}, vector says {expected}")
        });
    }
    cases.finish(8);
}

#[test]
fn empty_root_and_the_root_of_every_tree() {
    let v = vectors();
    let mut cases = Cases::default();
    let empty = root(&[]);
    cases.check("empty_root", empty == v.empty_root, || {
        format!("root(&[]) = {empty}, vector says {}", v.empty_root)
    });
    for t in &v.trees {
        let got = root(&v.leaf_hashes[..size(t.tree_size)]);
        cases.check(
            &format!("trees[size {}].root", t.tree_size),
            got == t.root,
            || format!("computed {got}, vector says {}", t.root),
        );
    }
    cases.finish(9);
}

#[test]
fn every_inclusion_proof_is_generated_and_verifies() {
    let v = vectors();
    let mut cases = Cases::default();
    for t in &v.trees {
        let leaves = &v.leaf_hashes[..size(t.tree_size)];
        for c in &t.inclusion {
            let name = format!("tree {} inclusion index {}", t.tree_size, c.index);
            let generated = inclusion_proof(leaves, c.index);
            cases.check(
                &format!("{name} (generated)"),
                generated.as_ref() == Ok(&c.proof),
                || format!("generated {generated:?}, vector says {:?}", c.proof),
            );
            let leaf = &v.leaf_hashes[size(c.index)];
            let verified = verify_inclusion(leaf, c.index, t.tree_size, &c.proof, &t.root);
            cases.check(&format!("{name} (verified)"), verified.is_ok(), || {
                format!("vector proof rejected: {verified:?}")
            });
        }
    }
    // 1 + 2 + … + 8 proofs, each generated and verified.
    cases.finish(2 * 36);
}

#[test]
fn every_consistency_proof_is_generated_and_verifies() {
    let v = vectors();
    let mut cases = Cases::default();
    for t in &v.trees {
        let leaves = &v.leaf_hashes[..size(t.tree_size)];
        for c in &t.consistency {
            let name = format!("tree {} consistency from {}", t.tree_size, c.from_size);
            let generated = consistency_proof(leaves, c.from_size);
            cases.check(
                &format!("{name} (generated)"),
                generated.as_ref() == Ok(&c.proof),
                || format!("generated {generated:?}, vector says {:?}", c.proof),
            );
            let Some(first) = v.trees.iter().find(|f| f.tree_size == c.from_size) else {
                cases.check(&name, false, || {
                    "no tree of the first size in the vectors".into()
                });
                continue;
            };
            let verified =
                verify_consistency(c.from_size, t.tree_size, &first.root, &t.root, &c.proof);
            cases.check(&format!("{name} (verified)"), verified.is_ok(), || {
                format!("vector proof rejected: {verified:?}")
            });
        }
    }
    // 0 + 1 + … + 7 proofs, each generated and verified.
    cases.finish(2 * 28);
}

#[test]
fn signed_tree_head_matches_the_vector_and_tampering_fails() {
    let v = vectors().signed_tree_head;
    let key = signing_key_of(&v);
    let head = &v.head;
    let mut cases = Cases::default();

    let public =
        HubPublicKey::from_hex(&v.public_key_hex).expect("public_key_hex is 32 bytes of hex");
    let derived = key.public_key();
    cases.check("public key from seed", derived == public, || {
        format!("derived {derived:?}, vector says {}", v.public_key_hex)
    });

    let canonical = head.canonical_bytes().map(String::from_utf8);
    cases.check(
        "canonical head",
        canonical == Ok(Ok(v.canonical_head.clone())),
        || format!("got {canonical:?}, vector says {}", v.canonical_head),
    );

    let signed = sign_tree_head(&key, head).map(|s| s.to_hex());
    cases.check(
        "signature from the seed",
        signed == Ok(v.signature.clone()),
        || format!("got {signed:?}, vector says {}", v.signature),
    );

    let signature = hex::decode(&v.signature).expect("vector signature is hex");
    let verified = verify_tree_head(&public, head, &signature);
    cases.check("vector signature verifies", verified.is_ok(), || {
        format!("{verified:?}")
    });

    // sth.json as the export writes it: the head's four fields plus "signature".
    let sth_json = serde_json::json!({
        "tree_size": head.tree_size,
        "root": head.root,
        "at_ms": head.at_ms,
        "key_id": head.key_id,
        "signature": v.signature,
    })
    .to_string();
    let parsed = SignedTreeHead::parse_and_verify(&sth_json, &public);
    cases.check(
        "sth.json parses and verifies",
        parsed.as_ref() == Ok(head),
        || format!("{parsed:?}"),
    );
    let written = SignedTreeHead::sign(head, &key).and_then(|s| s.to_json());
    let expected_json = v.canonical_head.replacen(
        r#","tree_size""#,
        &format!(r#","signature":"{}","tree_size""#, v.signature),
        1,
    );
    cases.check(
        "sth.json is written canonically",
        written == Ok(expected_json),
        || format!("{written:?}"),
    );

    for byte in 0..signature.len() {
        let mut flipped = signature.clone();
        flipped[byte] ^= 0x01;
        let got = verify_tree_head(&public, head, &flipped);
        cases.check(
            &format!("signature with byte {byte} flipped"),
            got == Err(MerkleError::BadSignature),
            || format!("{got:?}"),
        );
    }

    let mut root_flipped = head.root;
    root_flipped.0[31] ^= 0x01;
    let tampered = [
        (
            "tree_size + 1",
            TreeHead {
                tree_size: head.tree_size + 1,
                ..head.clone()
            },
        ),
        (
            "at_ms + 1",
            TreeHead {
                at_ms: head.at_ms + 1,
                ..head.clone()
            },
        ),
        (
            "root flipped",
            TreeHead {
                root: root_flipped,
                ..head.clone()
            },
        ),
        (
            "key_id changed",
            TreeHead {
                key_id: "hub-2026-2".parse::<KeyId>().expect("valid key id"),
                ..head.clone()
            },
        ),
    ];
    for (what, bad) in &tampered {
        let got = verify_tree_head(&public, bad, &signature);
        cases.check(
            &format!("head with {what}"),
            got == Err(MerkleError::BadSignature),
            || format!("{got:?}"),
        );
    }
    cases.finish(6 + 64 + 4);
}

/// The error each known `must_fail` case gives, by type and `why`: the reason a
/// verifier reports should match the tampering. A case not listed here (added to the
/// vectors later) only has to be rejected.
fn expected_error(kind: &str, why: &str) -> Option<MerkleError> {
    use MerkleError::*;
    Some(match (kind, why) {
        ("inclusion", "wrong index") => RootMismatch,
        ("inclusion", "wrong tree size") => ProofTooLong { len: 3 },
        ("inclusion", "index beyond size") => IndexOutOfRange {
            index: 7,
            tree_size: 7,
        },
        ("inclusion", "proof truncated") => ProofTooShort { len: 2 },
        ("inclusion", "extra hash appended") => ProofTooLong { len: 4 },
        ("inclusion", "one hash flipped") => RootMismatch,
        // Size 4 is a power of two, so the first root is prepended: one hash too many.
        ("consistency", "wrong first size") => ProofTooLong { len: 4 },
        ("consistency", "roots swapped") => FirstRootMismatch,
        ("consistency", "proof truncated") => ProofTooShort { len: 3 },
        ("consistency", "one hash flipped") => FirstRootMismatch,
        ("consistency", "empty proof for different sizes") => ProofTooShort { len: 0 },
        _ => return None,
    })
}

#[test]
fn every_must_fail_case_is_rejected() {
    let v = vectors();
    let mut cases = Cases::default();
    for (i, case) in v.must_fail.iter().enumerate() {
        let (kind, why, got) = match case {
            MustFail::Inclusion {
                why,
                leaf_hash,
                index,
                tree_size,
                root,
                proof,
            } => (
                "inclusion",
                why,
                verify_inclusion(leaf_hash, *index, *tree_size, proof, root),
            ),
            MustFail::Consistency {
                why,
                first_size,
                second_size,
                first_root,
                second_root,
                proof,
            } => (
                "consistency",
                why,
                verify_consistency(*first_size, *second_size, first_root, second_root, proof),
            ),
        };
        let name = format!("must_fail[{i}] {kind}: {why}");
        match expected_error(kind, why) {
            Some(expected) => {
                let want = Err(expected);
                cases.check(&name, got == want, || {
                    format!("got {got:?}, expected {want:?}")
                });
            }
            None => cases.check(&name, got.is_err(), || "accepted".into()),
        }
    }
    cases.finish(11);
}

/// `n` distinct leaf hashes, different for every `seed`.
fn random_leaves(seed: u64, n: usize) -> Vec<Hash256> {
    (0..n)
        .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect()
}

/// `h` with one of its 256 bits flipped.
fn flip(h: &Hash256, bit: u8) -> Hash256 {
    let mut bytes = h.0;
    bytes[usize::from(bit / 8)] ^= 1 << (bit % 8);
    Hash256(bytes)
}

fn len(n: usize) -> u64 {
    u64::try_from(n).expect("fits")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_inclusion_proof_verifies_and_only_for_its_leaf_and_index(
        seed in any::<u64>(),
        n in 1usize..200,
        bit in any::<u8>(),
    ) {
        let leaves = random_leaves(seed, n);
        let r = root(&leaves);
        let size = len(n);
        for (i, leaf) in leaves.iter().enumerate() {
            let index = len(i);
            let proof = inclusion_proof(&leaves, index).unwrap();
            prop_assert_eq!(verify_inclusion(leaf, index, size, &proof, &r), Ok(()), "index {}", i);
            prop_assert!(verify_inclusion(&flip(leaf, bit), index, size, &proof, &r).is_err());
            if n > 1 {
                let other = (index + 1) % size;
                prop_assert!(
                    verify_inclusion(leaf, other, size, &proof, &r).is_err(),
                    "proof of index {} accepted for index {}", i, other
                );
                prop_assert!(verify_inclusion(&leaves[(i + 1) % n], index, size, &proof, &r).is_err());
            }
            for k in 0..proof.len() {
                let mut bad = proof.clone();
                bad[k] = flip(&bad[k], bit);
                prop_assert!(verify_inclusion(leaf, index, size, &bad, &r).is_err());
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_fails_when_tampered(
        seed in any::<u64>(),
        (m, n) in (1usize..200).prop_flat_map(|n| (0..=n, Just(n))),
        pick in any::<prop::sample::Index>(),
        bit in any::<u8>(),
    ) {
        let leaves = random_leaves(seed, n);
        let (first, second) = (root(&leaves[..m]), root(&leaves));
        let (m64, n64) = (len(m), len(n));
        let proof = consistency_proof(&leaves, m64).unwrap();
        prop_assert_eq!(verify_consistency(m64, n64, &first, &second, &proof), Ok(()));
        prop_assert!(verify_consistency(m64, n64, &flip(&first, bit), &second, &proof).is_err());
        if m > 0 {
            // From the empty tree, the second root is unconstrained.
            prop_assert!(verify_consistency(m64, n64, &first, &flip(&second, bit), &proof).is_err());
        }
        if !proof.is_empty() {
            let k = pick.index(proof.len());
            let mut bad = proof.clone();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(
                verify_consistency(m64, n64, &first, &second, &bad).is_err(),
                "hash {} of {} flipped", k, proof.len()
            );
            prop_assert!(verify_consistency(m64, n64, &first, &second, &proof[..proof.len() - 1]).is_err());
        }
        let mut longer = proof.clone();
        longer.push(first);
        prop_assert!(verify_consistency(m64, n64, &first, &second, &longer).is_err());
        if m < n {
            prop_assert!(verify_consistency(m64 + 1, n64, &first, &second, &proof).is_err());
        }
    }

    #[test]
    fn verifiers_never_panic_on_arbitrary_input(
        index in any::<u64>(),
        first_size in any::<u64>(),
        second_size in any::<u64>(),
        raw in prop::collection::vec(any::<[u8; 32]>(), 0..80),
        a in any::<[u8; 32]>(),
        b in any::<[u8; 32]>(),
    ) {
        let proof: Vec<Hash256> = raw.into_iter().map(Hash256).collect();
        let (a, b) = (Hash256(a), Hash256(b));
        let _ = verify_inclusion(&a, index, second_size, &proof, &b);
        let _ = verify_inclusion(&a, index % second_size.max(1), second_size, &proof, &b);
        let _ = verify_consistency(first_size, second_size, &a, &b, &proof);
        let _ = verify_consistency(first_size.min(second_size), second_size, &a, &b, &proof);
    }
}
