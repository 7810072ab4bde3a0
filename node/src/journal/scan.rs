//! Reading an envelope's chain and index fields straight from its canonical
//! bytes, for verification: from the fixed-shape tail (`tail`), else by one
//! pass over the top level (`skim`); plus the hex helpers the chain check
//! compares in.
//!
//! Invariant: pure — no SQL, no I/O, no allocation per event; anything not in
//! the canonical shape gives `None` and the caller falls back to the strict
//! parser, which decides.

use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;

/// Lowercase hex of a hash into a fixed buffer.
pub(super) fn hex64(h: &Hash256) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(h.0) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

/// 64 lowercase hex characters.
pub(super) fn is_lower_hex64(b: &[u8]) -> bool {
    b.len() == 64 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses 64 lowercase hex characters (a stored hash or `prev`) without the
/// general-purpose checks of `Hash256::from_str`: this runs twice per event
/// when a whole journal is verified.
pub(super) fn parse_hash(s: &str) -> Option<Hash256> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(Hash256(out))
}

/// The envelope fields verification reads: `seq` and `prev` for the chain (as
/// the shared verifier reads them), the rest to check the index columns.
/// `None` where a field is missing or malformed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Fields<'a> {
    pub(super) seq: Option<u64>,
    pub(super) prev_hex: Option<&'a str>,
    pub(super) event_id: Option<&'a str>,
    pub(super) kind: Option<&'a str>,
    pub(super) hlc_ms: Option<i64>,
    pub(super) hlc_n: Option<i64>,
}

impl<'a> Fields<'a> {
    /// From a fully parsed envelope.
    pub(super) fn of(envelope: &'a Value) -> Fields<'a> {
        let hlc = |k: &str| {
            envelope
                .get("hlc")
                .and_then(|h| h.get(k))
                .and_then(Value::as_i64)
        };
        Fields {
            seq: envelope
                .get("seq")
                .and_then(Value::as_i64)
                .and_then(|n| u64::try_from(n).ok()),
            prev_hex: envelope.get("prev").and_then(Value::as_str),
            event_id: envelope.get("event_id").and_then(Value::as_str),
            kind: envelope.get("kind").and_then(Value::as_str),
            hlc_ms: hlc("ms"),
            hlc_n: hlc("n"),
        }
    }
}

/// Reads the top-level fields from the end of canonical envelope bytes, in
/// constant time. In canonical order the envelope ends with
/// `"event_id":"<36>","hlc":{"ms":<int>,"n":<int>},"kind":"<name>","prev":"<64>","seq":<int>,"store":"<36>","v":1}`
/// (only `body`, `deps` and `device` sort before `event_id`), and every event the
/// journal holds was validated to have exactly the envelope's fields when it was
/// appended. An unescaped `"` cannot occur inside a JSON string, so a tail of
/// this shape is the real top level. Anything else gives `None` and the caller
/// falls back to the scan and then the strict parser. The bytes themselves are
/// bound by their hash and the chain links.
pub(super) mod tail {
    use crate::journal::scan::Fields;

    struct Back<'a> {
        b: &'a [u8],
        end: usize,
    }

    impl<'a> Back<'a> {
        fn lit(&mut self, pat: &[u8]) -> Option<()> {
            let start = self.end.checked_sub(pat.len())?;
            (self.b.get(start..self.end)? == pat).then(|| self.end = start)
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let start = self.end.checked_sub(n)?;
            let s = self.b.get(start..self.end)?;
            self.end = start;
            Some(s)
        }

        /// A canonical non-negative integer (no leading zero, at most 16 digits).
        fn uint(&mut self) -> Option<i64> {
            let mut start = self.end;
            while start > 0 && self.b.get(start - 1)?.is_ascii_digit() {
                start -= 1;
            }
            let digits = self.b.get(start..self.end)?;
            if digits.is_empty() || digits.len() > 16 || (digits.len() > 1 && digits[0] == b'0') {
                return None;
            }
            self.end = start;
            // At most 16 ASCII digits: no overflow, no parser needed.
            let n = digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            (n <= caja_shared::canonical::MAX_SAFE_INTEGER).then_some(n)
        }

        fn word(&mut self) -> Option<&'a str> {
            let mut start = self.end;
            while start > 0 && self.b.get(start - 1)?.is_ascii_alphabetic() {
                start -= 1;
            }
            let w = self.b.get(start..self.end)?;
            if w.is_empty() {
                return None;
            }
            self.end = start;
            std::str::from_utf8(w).ok()
        }
    }

    pub(crate) fn envelope_fields(bytes: &[u8]) -> Option<Fields<'_>> {
        let mut c = Back {
            b: bytes,
            end: bytes.len(),
        };
        c.lit(b",\"v\":1}")?;
        c.lit(b"\"")?;
        c.take(36)?;
        c.lit(b",\"store\":\"")?;
        let seq = c.uint()?;
        c.lit(b",\"seq\":")?;
        c.lit(b"\"")?;
        let prev = std::str::from_utf8(c.take(64)?).ok()?;
        c.lit(b",\"prev\":\"")?;
        c.lit(b"\"")?;
        let kind = c.word()?;
        c.lit(b",\"kind\":\"")?;
        c.lit(b"}")?;
        let n = c.uint()?;
        c.lit(b",\"n\":")?;
        let ms = c.uint()?;
        c.lit(b",\"hlc\":{\"ms\":")?;
        c.lit(b"\"")?;
        let event_id = std::str::from_utf8(c.take(36)?).ok()?;
        c.lit(b",\"event_id\":\"")?;
        // What precedes must be the object's start and its first members.
        if bytes.first() != Some(&b'{') || c.end < 1 {
            return None;
        }
        Some(Fields {
            seq: u64::try_from(seq).ok(),
            prev_hex: Some(prev),
            event_id: Some(event_id),
            kind: Some(kind),
            hlc_ms: Some(ms),
            hlc_n: Some(n),
        })
    }
}

/// A single pass over canonical envelope bytes that reads the top-level fields
/// verification needs without building a JSON tree — verifying a long journal
/// costs little more than reading and hashing it.
///
/// It accepts only the canonical shape: no whitespace, top-level keys sorted and
/// unique, the fields it reads in their plain form (`seq` a safe integer,
/// `prev`, `event_id` and `kind` strings without escapes, `hlc` exactly
/// `{"ms":<int>,"n":<int>}`). Anything else gives `None`, and the caller falls
/// back to the strict parser, which then decides. It does not validate the
/// body: the chain is checked by the hash of the bytes and the links, and
/// bodies are validated where they are applied.
pub(super) mod skim {
    use caja_shared::canonical::{MAX_DEPTH, MAX_SAFE_INTEGER};

    use crate::journal::scan::Fields;

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// A string with no escape and no control character.
        fn plain_string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match self.peek()? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            self.i += 1;
            Some(s)
        }

        /// An integer in canonical form (no leading zero, no sign on zero)
        /// within ±(2^53 − 1).
        fn int(&mut self) -> Option<i64> {
            let negative = self.eat(b'-').is_some();
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = &self.b[start..self.i];
            let canonical = match digits {
                [] => false,
                [b'0'] => !negative,
                [b'0', ..] => false,
                _ => digits.len() <= 16,
            };
            if !canonical {
                return None;
            }
            let mut n: i64 = 0;
            for d in digits {
                n = n * 10 + i64::from(d - b'0');
            }
            (n <= MAX_SAFE_INTEGER).then_some(if negative { -n } else { n })
        }

        /// Skips any string, escapes included.
        fn skip_string(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                match self.peek()? {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => self.i += 2,
                    _ => self.i += 1,
                }
            }
        }

        /// Skips one value of the body or another field not read here.
        fn skip_value(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.skip_string(),
                open @ (b'{' | b'[') => {
                    if depth >= MAX_DEPTH {
                        return None;
                    }
                    let close = if open == b'{' { b'}' } else { b']' };
                    self.i += 1;
                    if self.eat(close).is_some() {
                        return Some(());
                    }
                    loop {
                        if open == b'{' {
                            self.skip_string()?;
                            self.eat(b':')?;
                        }
                        self.skip_value(depth + 1)?;
                        match self.peek()? {
                            b',' => self.i += 1,
                            c if c == close => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                _ => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b'"' | b'{' | b'['))
                    {
                        self.i += 1;
                    }
                    (self.i > start).then_some(())
                }
            }
        }

        fn hlc(&mut self) -> Option<(i64, i64)> {
            self.eat(b'{')?;
            (self.plain_string()? == "ms").then_some(())?;
            self.eat(b':')?;
            let ms = self.int()?;
            self.eat(b',')?;
            (self.plain_string()? == "n").then_some(())?;
            self.eat(b':')?;
            let n = self.int()?;
            self.eat(b'}')?;
            Some((ms, n))
        }
    }

    /// The fields of canonical envelope bytes, or `None` if the bytes are not
    /// in the canonical shape this scan reads.
    pub(crate) fn envelope_fields(bytes: &[u8]) -> Option<Fields<'_>> {
        let mut c = Cursor { b: bytes, i: 0 };
        let mut f = Fields::default();
        let mut last_key: Option<&str> = None;
        c.eat(b'{')?;
        loop {
            let key = c.plain_string()?;
            // ASCII keys: byte order is UTF-16 order. Sorted and unique.
            if !key.is_ascii() || last_key.is_some_and(|last| last >= key) {
                return None;
            }
            last_key = Some(key);
            c.eat(b':')?;
            match key {
                "seq" => f.seq = Some(u64::try_from(c.int()?).ok()?),
                "prev" => {
                    f.prev_hex = Some(c.plain_string()?);
                }
                "event_id" => f.event_id = Some(c.plain_string()?),
                "kind" => f.kind = Some(c.plain_string()?),
                "hlc" => {
                    let (ms, n) = c.hlc()?;
                    f.hlc_ms = Some(ms);
                    f.hlc_n = Some(n);
                }
                _ => c.skip_value(1)?,
            }
            match c.peek()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        (c.i == bytes.len()).then_some(f)
    }
}
