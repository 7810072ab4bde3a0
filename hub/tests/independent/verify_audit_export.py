#!/usr/bin/env python3
"""Verify a Caja audit log export without Caja.

    python3 verify_audit_export.py <export dir>

Uses only the Python standard library (hashlib, json). Ed25519 is the RFC 8032
reference verification (section 6), in pure Python; the Merkle tree is RFC 9162
section 2.1.1. It reads exactly the three files DESIGN.md fixes:

  entries.jsonl  one canonical JSON entry per line, "index" = line number from 0
  sth.json       {"at_ms","key_id","root","signature","tree_size"}
  hub_pubkey     lowercase hex of the 32-byte Ed25519 public key

Exit status 0 and "OK ..." when every entry leads to the signed root and the
signature verifies; 1 and "FAIL: ..." otherwise.
"""
import hashlib
import json
import sys

# ---- Ed25519 verification, RFC 8032 section 6 -------------------------------
P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493


def inv(x):
    return pow(x, P - 2, P)


D = -121665 * inv(121666) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_add(a, b):
    x = (a[1] - a[0]) * (b[1] - b[0]) % P
    y = (a[1] + a[0]) * (b[1] + b[0]) % P
    c = 2 * a[3] * b[3] * D % P
    d = 2 * a[2] * b[2] % P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f, g * h, f * g, e * h)


def point_mul(s, pt):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = point_add(acc, pt)
        pt = point_add(pt, pt)
        s >>= 1
    return acc


def point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * inv(D * y * y + 1)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


G_Y = 4 * inv(5) % P
G = (recover_x(G_Y, 0), G_Y, 1, recover_x(G_Y, 0) * G_Y % P)


def ed25519_verify(public, msg, sig):
    if len(public) != 32 or len(sig) != 64:
        return False
    a = decompress(public)
    r = decompress(sig[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= Q:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % Q
    return point_equal(point_mul(s, G), point_add(r, point_mul(h, a)))


# ---- RFC 9162 Merkle tree ----------------------------------------------------
def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def main(directory):
    with open(directory + "/hub_pubkey", "r", encoding="ascii") as f:
        public = bytes.fromhex(f.read().strip())
    with open(directory + "/sth.json", "rb") as f:
        sth = json.loads(f.read())
    head = {k: sth[k] for k in ("at_ms", "key_id", "root", "tree_size")}
    # RFC 8785 for this object (integers and ASCII strings): sorted keys, no spaces.
    signed = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
    if not ed25519_verify(public, signed, bytes.fromhex(sth["signature"])):
        fail("the signature of sth.json does not verify with hub_pubkey")
    leaves = []
    with open(directory + "/entries.jsonl", "rb") as f:
        for i, line in enumerate(f):
            if line.endswith(b"\n"):
                line = line[:-1]
            if json.loads(line).get("index") != i:
                fail("entry %d: line %d does not hold index %d" % (i, i, i))
            leaves.append(leaf_hash(line))
    if len(leaves) != sth["tree_size"]:
        fail("%d entries, but the signed tree has %d" % (len(leaves), sth["tree_size"]))
    root = mth(leaves).hex()
    if root != sth["root"]:
        fail("the entries lead to root %s, not the signed %s" % (root, sth["root"]))
    print("OK %d entries, root %s" % (len(leaves), root))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1])
