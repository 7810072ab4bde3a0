//! The audit log's RFC 9162 Merkle tree over persisted nodes (DESIGN "Audit log
//! v1"): appends, roots and proofs that read O(log n) stored hashes, never the
//! whole list of leaves.
//!
//! The tree is kept as the hashes of its **complete subtrees**: leaf `j` is node
//! (level 0, `j`), and node (level `l`, `j`) is the root of the `2^l` leaves
//! `j·2^l .. (j+1)·2^l`, stored once all of them exist. Appending leaf `n` stores
//! it and every subtree it completes (one per trailing 1 bit of `n`): amortized
//! two rows, at most 1 + log2(n). Any range RFC 9162's recursion visits is either
//! one complete subtree (one read) or the right edge of a smaller tree, split
//! into at most log2(n) complete subtrees; so a root costs popcount(n) reads and
//! a proof at most about 2·log2(n). A node's hash never changes once stored, so
//! the same rows answer for every tree size up to the current one.
//!
//! Node ids are the in-order numbering of a perfect binary tree over the leaves
//! ([`node_id`]): leaf `j` is `2j`, and a subtree's id lies between its first and
//! last leaf, so the largest id stored is always the last leaf's and the tree
//! size is `max_id / 2 + 1`.
//!
//! Architecture invariant: pure. The storage is behind [`NodeSource`]; the
//! SQLite side is `storage::audit_tree`. Results equal `caja_shared::merkle`'s
//! in-memory functions for every size (property-tested below).

use caja_shared::digest::Hash256;
use caja_shared::merkle::{self, MerkleError};

/// Largest tree size whose sizes canonical JSON can carry (2^53 − 1).
pub const MAX_TREE_SIZE: u64 = (1 << 53) - 1;

/// Reads stored complete-subtree hashes.
pub trait NodeSource {
    /// Why a read failed.
    type Error;
    /// The hash of complete subtree (`level`, `index`); an error when it is not
    /// stored.
    fn node(&mut self, level: u32, index: u64) -> Result<Hash256, Self::Error>;
}

/// Why a tree operation failed: the request does not fit the tree, or storage.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E> {
    /// Sizes or index outside the tree (the same cases as `shared::merkle`).
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// The storage failed or lacks a node.
    #[error("{0}")]
    Storage(E),
}

/// A node stored by an append: its id and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewNode {
    /// [`node_id`] of the subtree.
    pub id: u64,
    /// Its hash.
    pub hash: Hash256,
}

/// In-order id of complete subtree (`level`, `index`): `index·2^(level+1) +
/// 2^level − 1`. Trees are at most [`MAX_TREE_SIZE`] leaves, so ids stay below
/// 2^54; larger arguments saturate (and are never stored).
pub fn node_id(level: u32, index: u64) -> u64 {
    if level >= 54 {
        return u64::MAX;
    }
    index
        .checked_mul(1u64 << (level + 1))
        .and_then(|v| v.checked_add((1u64 << level) - 1))
        .unwrap_or(u64::MAX)
}

/// The tree size whose last leaf has id `max_id` (the largest id stored), or 0
/// for an empty tree.
pub fn size_from_max_id(max_id: Option<u64>) -> u64 {
    max_id.map_or(0, |m| m / 2 + 1)
}

/// The nodes to store when `leaf` becomes leaf number `index` (the tree had
/// `index` leaves): the leaf itself, then each subtree it completes, bottom up.
/// Reads one stored left sibling per completed subtree.
pub fn append<S: NodeSource>(
    source: &mut S,
    index: u64,
    leaf: Hash256,
) -> Result<Vec<NewNode>, TreeError<S::Error>> {
    if index >= MAX_TREE_SIZE {
        return Err(MerkleError::IndexOutOfRange {
            index,
            tree_size: MAX_TREE_SIZE,
        }
        .into());
    }
    let mut out = vec![NewNode {
        id: node_id(0, index),
        hash: leaf,
    }];
    let mut current = leaf;
    let mut level = 0u32;
    let mut j = index;
    while j & 1 == 1 {
        let left = source.node(level, j - 1).map_err(TreeError::Storage)?;
        current = merkle::node_hash(&left, &current);
        level += 1;
        j >>= 1;
        out.push(NewNode {
            id: node_id(level, j),
            hash: current,
        });
    }
    Ok(out)
}

/// Root of the first `size` leaves (RFC 9162 MTH); SHA-256 of "" when 0.
pub fn root<S: NodeSource>(source: &mut S, size: u64) -> Result<Hash256, TreeError<S::Error>> {
    check_size(size)?;
    if size == 0 {
        return Ok(merkle::root(&[]));
    }
    range_hash(source, 0, size)
}

/// Inclusion proof of leaf `index` in the tree of the first `size` leaves, as
/// `shared::merkle::inclusion_proof` gives it.
pub fn inclusion_proof<S: NodeSource>(
    source: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash256>, TreeError<S::Error>> {
    check_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange {
            index,
            tree_size: size,
        }
        .into());
    }
    let mut proof = Vec::new();
    path(source, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// Consistency proof between the trees of the first `first` and `second` leaves,
/// as `shared::merkle::consistency_proof` gives it (empty when `first` is 0 or
/// equals `second`).
pub fn consistency_proof<S: NodeSource>(
    source: &mut S,
    first: u64,
    second: u64,
) -> Result<Vec<Hash256>, TreeError<S::Error>> {
    check_size(second)?;
    if first > second {
        return Err(MerkleError::InvalidSizes {
            first_size: first,
            second_size: second,
        }
        .into());
    }
    let mut proof = Vec::new();
    if first > 0 {
        subproof(source, first, 0, second, true, &mut proof)?;
    }
    Ok(proof)
}

fn check_size<E>(size: u64) -> Result<(), TreeError<E>> {
    if size > MAX_TREE_SIZE {
        return Err(MerkleError::IntegerOutOfRange {
            field: "tree_size",
            value: i128::from(size),
        }
        .into());
    }
    Ok(())
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    match (n.saturating_sub(1)).checked_ilog2() {
        Some(bits) => 1u64 << bits,
        None => 1,
    }
}

/// MTH of leaves `start..end` (`end > start`), a range RFC 9162's recursion
/// visits: `start` is a multiple of the largest power of two not above
/// `end - start`, so the range is one complete subtree or splits into one
/// followed by a smaller such range.
fn range_hash<S: NodeSource>(
    source: &mut S,
    start: u64,
    end: u64,
) -> Result<Hash256, TreeError<S::Error>> {
    let n = end - start;
    if n.is_power_of_two() && start % n == 0 {
        return source
            .node(n.ilog2(), start / n)
            .map_err(TreeError::Storage);
    }
    let k = split_point(n);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(merkle::node_hash(&left, &right))
}

/// PATH(m, D[start..end]) of RFC 9162 section 2.1.3.1 with `m` absolute.
fn path<S: NodeSource>(
    source: &mut S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash256>,
) -> Result<(), TreeError<S::Error>> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < start + k {
        path(source, m, start, start + k, out)?;
        out.push(range_hash(source, start + k, end)?);
    } else {
        path(source, m, start + k, end, out)?;
        out.push(range_hash(source, start, start + k)?);
    }
    Ok(())
}

/// SUBPROOF(m, D[start..end], b) of RFC 9162 section 2.1.4.1, `m` relative to
/// `start`, `1 <= m <= end - start`.
fn subproof<S: NodeSource>(
    source: &mut S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash256>,
) -> Result<(), TreeError<S::Error>> {
    let n = end - start;
    if m >= n {
        if !complete {
            out.push(range_hash(source, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(source, m, start, start + k, complete, out)?;
        out.push(range_hash(source, start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, out)?;
        out.push(range_hash(source, start, start + k)?);
    }
    Ok(())
}

/// Streaming MTH: feed leaf hashes in order, keep only the roots of the
/// complete subtrees so far (at most 64 hashes), read the root at any time.
/// What `caja-hub audit verify` and the hub's start-up check use to hash a
/// whole log in constant memory.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// (level, hash) of the complete subtrees, largest (leftmost) first.
    stack: Vec<(u32, Hash256)>,
    size: u64,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Leaves fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf; returns the nodes it completes, as [`append`] does.
    pub fn push(&mut self, leaf: Hash256) -> Vec<NewNode> {
        let index = self.size;
        let mut out = vec![NewNode {
            id: node_id(0, index),
            hash: leaf,
        }];
        let mut current = (0u32, leaf);
        let mut j = index;
        while let Some(&(level, left)) = self.stack.last() {
            if level != current.0 {
                break;
            }
            self.stack.pop();
            let hash = merkle::node_hash(&left, &current.1);
            j >>= 1;
            current = (level + 1, hash);
            out.push(NewNode {
                id: node_id(level + 1, j),
                hash,
            });
        }
        self.stack.push(current);
        self.size += 1;
        out
    }

    /// The root of the leaves fed so far.
    pub fn root(&self) -> Hash256 {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, last)) = iter.next() else {
            return merkle::root(&[]);
        };
        iter.fold(last, |acc, (_, left)| merkle::node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    /// Nodes in a map, counting reads.
    #[derive(Default)]
    struct Mem {
        nodes: HashMap<u64, Hash256>,
        reads: usize,
    }

    impl NodeSource for Mem {
        type Error = String;
        fn node(&mut self, level: u32, index: u64) -> Result<Hash256, String> {
            self.reads += 1;
            self.nodes
                .get(&node_id(level, index))
                .copied()
                .ok_or_else(|| format!("no node ({level}, {index})"))
        }
    }

    fn leaves(n: u64) -> Vec<Hash256> {
        (0..n)
            .map(|i| merkle::leaf_hash(i.to_string().as_bytes()))
            .collect()
    }

    fn build(leaves: &[Hash256]) -> Mem {
        let mut mem = Mem::default();
        for (i, l) in leaves.iter().enumerate() {
            for n in append(&mut mem, i as u64, *l).unwrap() {
                assert!(mem.nodes.insert(n.id, n.hash).is_none(), "stored twice");
            }
        }
        mem
    }

    #[test]
    fn node_ids_are_in_order_and_the_last_leaf_is_the_largest() {
        assert_eq!(node_id(0, 0), 0);
        assert_eq!(node_id(0, 3), 6);
        assert_eq!(node_id(1, 0), 1);
        assert_eq!(node_id(1, 1), 5);
        assert_eq!(node_id(2, 0), 3);
        assert_eq!(node_id(60, 1), u64::MAX);
        for n in 1..200u64 {
            let mem = build(&leaves(n));
            let max = mem.nodes.keys().max().copied();
            assert_eq!(size_from_max_id(max), n);
            // n leaves complete n - 1 subtrees above them.
            assert_eq!(mem.nodes.len() as u64, 2 * n - u64::from(n.count_ones()));
        }
        assert_eq!(size_from_max_id(None), 0);
    }

    #[test]
    fn small_trees_match_the_in_memory_functions_for_every_size_and_index() {
        let all = leaves(70);
        let mut mem = build(&all);
        for size in 0..=70u64 {
            let l = &all[..usize::try_from(size).unwrap()];
            assert_eq!(root(&mut mem, size).unwrap(), merkle::root(l), "{size}");
            for i in 0..size {
                assert_eq!(
                    inclusion_proof(&mut mem, i, size).unwrap(),
                    merkle::inclusion_proof(l, i).unwrap(),
                    "{i} of {size}"
                );
            }
            for first in 0..=size {
                assert_eq!(
                    consistency_proof(&mut mem, first, size).unwrap(),
                    merkle::consistency_proof(l, first).unwrap(),
                    "{first} to {size}"
                );
            }
        }
    }

    #[test]
    fn out_of_range_requests_are_typed_errors() {
        let mut mem = build(&leaves(5));
        assert!(matches!(
            inclusion_proof(&mut mem, 5, 5),
            Err(TreeError::Merkle(MerkleError::IndexOutOfRange { .. }))
        ));
        assert!(matches!(
            consistency_proof(&mut mem, 4, 3),
            Err(TreeError::Merkle(MerkleError::InvalidSizes { .. }))
        ));
        assert!(matches!(
            root(&mut mem, MAX_TREE_SIZE + 1),
            Err(TreeError::Merkle(MerkleError::IntegerOutOfRange { .. }))
        ));
        // A size beyond what is stored is a storage error, not a panic.
        assert!(matches!(root(&mut mem, 6), Err(TreeError::Storage(_))));
        assert!(matches!(
            append(&mut mem, MAX_TREE_SIZE, Hash256::ZERO),
            Err(TreeError::Merkle(_))
        ));
    }

    #[test]
    fn reads_are_logarithmic() {
        let n = 1u64 << 12;
        let mut mem = build(&leaves(n + 1000));
        for size in [n, n + 999, n + 1000] {
            for i in [0, 1, size / 2, size - 1] {
                mem.reads = 0;
                let proof = inclusion_proof(&mut mem, i, size).unwrap();
                assert!(proof.len() <= 14, "{}", proof.len());
                assert!(mem.reads <= 2 * 14, "{} reads for {i} of {size}", mem.reads);
            }
            for first in [1, 7, n - 1, size - 1] {
                mem.reads = 0;
                consistency_proof(&mut mem, first, size).unwrap();
                assert!(
                    mem.reads <= 3 * 14,
                    "{} reads for {first}..{size}",
                    mem.reads
                );
            }
        }
    }

    proptest! {
        #[test]
        fn persisted_tree_equals_the_in_memory_tree(
            size in 1u64..600,
            picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..8),
        ) {
            let all = leaves(size);
            let mut mem = build(&all);
            let mut frontier = Frontier::new();
            for (i, l) in all.iter().enumerate() {
                let stored: Vec<NewNode> = frontier.push(*l);
                for n in stored {
                    prop_assert_eq!(mem.nodes.get(&n.id), Some(&n.hash), "leaf {}", i);
                }
            }
            prop_assert_eq!(frontier.root(), merkle::root(&all));
            prop_assert_eq!(root(&mut mem, size).unwrap(), merkle::root(&all));
            for (a, b) in picks {
                let second = 1 + b % size;
                let first = a % (second + 1);
                let prefix = &all[..usize::try_from(second).unwrap()];
                let index = a % second;
                prop_assert_eq!(
                    inclusion_proof(&mut mem, index, second).unwrap(),
                    merkle::inclusion_proof(prefix, index).unwrap()
                );
                let proof = consistency_proof(&mut mem, first, second).unwrap();
                prop_assert_eq!(&proof, &merkle::consistency_proof(prefix, first).unwrap());
                let first_root = root(&mut mem, first).unwrap();
                let second_root = root(&mut mem, second).unwrap();
                prop_assert!(merkle::verify_consistency(first, second, &first_root, &second_root, &proof).is_ok());
            }
        }
    }
}
