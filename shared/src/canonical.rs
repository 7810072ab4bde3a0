//! Canonical JSON (RFC 8785, "JCS") for integer-only documents.
//!
//! These are the bytes that Caja hashes and signs, so they must be identical on
//! every register, every hub and in every auditor's tool:
//!
//! * object keys sorted by their UTF-16 code units (not by code points, not by
//!   UTF-8 bytes: `"😀"` sorts before `"\u{FFFF}"`-range keys such as `"\u{E000}"`);
//! * no whitespace;
//! * strings escaped minimally: `"` and `\`, the two-letter forms `\b \t \n \f \r`,
//!   every other character below U+0020 as `\u00xx` with lowercase hex; everything
//!   else, U+007F and `/` included, written as is;
//! * integers only, within ±(2^53−1). A float (even `1.0`, even `1e3`) and an
//!   integer beyond that range are rejected, never rounded.
//!
//! The parser is strict as well: it rejects duplicate keys, lone surrogates,
//! invalid UTF-8, leading zeros, trailing data and nesting deeper than
//! [`MAX_DEPTH`]. It never panics on any input.
//!
//! Why our own code and not a crate: `serde_json` silently keeps the last of
//! duplicate keys and accepts floats, and the JCS crates serialize through it, so
//! none rejects what DESIGN.md requires. A strict parser and a serializer for the
//! integer-only subset are small (this file) and are tested against the vectors.

use std::cmp::Ordering;
use std::fmt;
use std::fmt::Write as _;

/// Largest magnitude of an integer accepted: 2^53 − 1 (exactly representable by
/// every JSON implementation, including JavaScript's).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Deepest nesting of arrays and objects accepted. Bounded so hostile input cannot
/// exhaust the stack; Caja's documents nest about five levels.
pub const MAX_DEPTH: usize = 64;

/// A JSON value of the integer-only subset that Caja hashes and signs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer within ±(2^53−1).
    Int(i64),
    /// A string (valid Unicode, no lone surrogates).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object with unique keys.
    Object(Object),
}

/// A JSON object whose keys are unique and kept in canonical (UTF-16) order.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Object {
    entries: Vec<(String, Value)>,
}

/// Why a document is not acceptable canonical-JSON input. Offsets are byte
/// offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The input is not valid UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The input is not JSON.
    #[error("malformed JSON at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// A number with a fraction or an exponent.
    #[error("floats are not allowed (byte {offset}): money and quantities are integers")]
    Float {
        /// Byte offset of the number.
        offset: usize,
    },
    /// An integer beyond ±(2^53−1).
    #[error("integer out of range ±(2^53-1) at byte {offset}")]
    IntegerOutOfRange {
        /// Byte offset of the number.
        offset: usize,
    },
    /// The same key twice in one object.
    #[error("duplicate key {key:?}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A `\uD800`-style escape without its pair.
    #[error("lone surrogate escape at byte {offset}")]
    LoneSurrogate {
        /// Byte offset of the escape.
        offset: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep {
        /// Byte offset where the limit was crossed.
        offset: usize,
    },
    /// A float or out-of-range number in a value built in memory.
    #[error("value at {path} is not an integer within ±(2^53-1)")]
    NotAnInteger {
        /// JSON path of the value.
        path: String,
    },
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object::default()
    }

    /// Builds an object from pairs; duplicate keys are an error.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Object, CanonicalError> {
        let mut obj = Object::new();
        for (k, v) in pairs {
            obj.insert_new(k, v)?;
        }
        Ok(obj)
    }

    /// Inserts a key that must not be present yet.
    pub fn insert_new(&mut self, key: String, value: Value) -> Result<(), CanonicalError> {
        match self.entries.binary_search_by(|(k, _)| cmp_utf16(k, &key)) {
            Ok(_) => Err(CanonicalError::DuplicateKey { key }),
            Err(pos) => {
                self.entries.insert(pos, (key, value));
                Ok(())
            }
        }
    }

    /// Inserts or replaces a key, returning the old value.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.entries.binary_search_by(|(k, _)| cmp_utf16(k, &key)) {
            Ok(pos) => Some(std::mem::replace(&mut self.entries[pos].1, value)),
            Err(pos) => {
                self.entries.insert(pos, (key, value));
                None
            }
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .binary_search_by(|(k, _)| cmp_utf16(k, key))
            .ok()
            .map(|pos| &self.entries[pos].1)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.entries
            .binary_search_by(|(k, _)| cmp_utf16(k, key))
            .ok()
            .map(|pos| self.entries.remove(pos).1)
    }

    /// Entries in canonical key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Keys in canonical order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Orders two strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    // Where the two first differ at an ASCII byte (or one is a prefix of the
    // other), byte order is UTF-16 order: the bytes before are the same
    // characters, and an ASCII character sorts below every other in both
    // orders. Only two different non-ASCII characters need UTF-16 units.
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0x80 || y[i] < 0x80 => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

impl Value {
    /// The object inside, if this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The integer inside, if this is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Shorthand for `self.as_object()?.get(key)`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    /// The canonical bytes of this value.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        write_value(self, &mut out);
        out
    }

    /// The canonical text of this value.
    pub fn to_canonical_string(&self) -> String {
        let bytes = self.to_canonical_bytes();
        // The writer only emits UTF-8 taken from `String`s and ASCII.
        String::from_utf8(bytes)
            .unwrap_or_else(|e| unreachable!("canonical writer produced invalid UTF-8: {e}"))
    }

    /// Converts from a `serde_json` value, rejecting floats and integers beyond
    /// ±(2^53−1) with the JSON path of the offending value.
    pub fn from_serde(v: serde_json::Value) -> Result<Value, CanonicalError> {
        from_serde_at(v, &mut String::from("$"))
    }

    /// Converts into a `serde_json` value (always possible).
    pub fn to_serde(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_serde).collect()),
            Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_serde()))
                    .collect(),
            ),
        }
    }

    /// Converts a typed Rust value via serde, rejecting floats.
    pub fn from_typed<T: serde::Serialize>(t: &T) -> Result<Value, CanonicalError> {
        let v = serde_json::to_value(t)
            .map_err(|_| CanonicalError::NotAnInteger { path: "$".into() })?;
        Value::from_serde(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_string())
    }
}

fn from_serde_at(v: serde_json::Value, path: &mut String) -> Result<Value, CanonicalError> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => Value::Int(i),
            _ => return Err(CanonicalError::NotAnInteger { path: path.clone() }),
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, item) in a.into_iter().enumerate() {
                let len = path.len();
                // The path names an offending value; `write!` to a String
                // cannot fail.
                let _ = write!(path, "[{i}]");
                out.push(from_serde_at(item, path)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        serde_json::Value::Object(m) => {
            let mut obj = Object::new();
            for (k, item) in m {
                let len = path.len();
                path.push('.');
                path.push_str(&k);
                let item = from_serde_at(item, path)?;
                path.truncate(len);
                obj.insert_new(k, item)?;
            }
            Value::Object(obj)
        }
    })
}

/// Parses JSON text strictly (see the module doc) into a [`Value`].
pub fn parse(input: &[u8]) -> Result<Value, CanonicalError> {
    let text = std::str::from_utf8(input).map_err(|e| CanonicalError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.syntax("end of input"));
    }
    Ok(v)
}

/// Parses `input` and returns its canonical bytes.
pub fn canonicalize(input: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    Ok(parse(input)?.to_canonical_bytes())
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn syntax(&self, expected: &'static str) -> CanonicalError {
        CanonicalError::Syntax {
            offset: self.pos,
            expected,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8, expected: &'static str) -> Result<(), CanonicalError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn literal(&mut self, word: &'static str, v: Value) -> Result<Value, CanonicalError> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.syntax(word))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.syntax("a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { offset: self.pos });
        }
        self.pos += 1; // '{'
        let mut obj = Object::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(obj));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.eat(b':', "':'")?;
            self.skip_ws();
            let v = self.value(depth)?;
            obj.insert_new(key, v)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(obj));
                }
                _ => return Err(self.syntax("',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { offset: self.pos });
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.syntax("',' or ']'")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, CanonicalError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.syntax("a digit")),
        }
        let digits_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("a digit after '.'"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_float = true;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("a digit in the exponent"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if is_float {
            return Err(CanonicalError::Float { offset: start });
        }
        if matches!(self.peek(), Some(b'0'..=b'9')) {
            // "01": a leading zero followed by more digits.
            return Err(self.syntax("no leading zeros"));
        }
        let digits = &self.text[digits_start..digits_end];
        // 16 digits already exceed 2^53; stop before any overflow.
        if digits.len() > 16 {
            return Err(CanonicalError::IntegerOutOfRange { offset: start });
        }
        let magnitude: i64 = digits
            .parse()
            .map_err(|_| CanonicalError::IntegerOutOfRange { offset: start })?;
        if magnitude > MAX_SAFE_INTEGER {
            return Err(CanonicalError::IntegerOutOfRange { offset: start });
        }
        Ok(Value::Int(if negative { -magnitude } else { magnitude }))
    }

    fn hex4(&mut self) -> Result<u32, CanonicalError> {
        let Some(h) = self.text.get(self.pos..self.pos + 4) else {
            return Err(self.syntax("four hex digits"));
        };
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.syntax("four hex digits"));
        }
        let v = u32::from_str_radix(h, 16).map_err(|_| self.syntax("four hex digits"))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, CanonicalError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain characters at once.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Only stops at ASCII bytes, so both ends are char boundaries.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.syntax("closing '\"'")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc_at = self.pos;
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.syntax("an escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // Must be followed by a low surrogate escape.
                                if self.s.get(self.pos) != Some(&b'\\')
                                    || self.s.get(self.pos + 1) != Some(&b'u')
                                {
                                    return Err(CanonicalError::LoneSurrogate { offset: esc_at });
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(CanonicalError::LoneSurrogate { offset: esc_at });
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(CanonicalError::LoneSurrogate { offset: esc_at });
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(c) => out.push(c),
                                None => {
                                    return Err(CanonicalError::LoneSurrogate { offset: esc_at })
                                }
                            }
                        }
                        _ => {
                            self.pos = esc_at;
                            return Err(self.syntax("a valid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.syntax("no raw control characters in strings")),
            }
        }
    }
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => {
            debug_assert!(n.unsigned_abs() <= MAX_SAFE_INTEGER.unsigned_abs());
            write_int(*n, out);
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(obj) => {
            out.push(b'{');
            for (i, (k, item)) in obj.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

/// An integer in decimal, without an intermediate `String`.
fn write_int(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, CanonicalError> {
        Ok(parse(s.as_bytes())?.to_canonical_string())
    }

    #[test]
    fn keys_sort_by_utf16_not_code_points() {
        // U+E000 is one UTF-16 unit 0xE000; U+1F600 is 0xD83D 0xDE00, so it sorts first.
        assert_eq!(
            canon("{\"\u{e000}\":1,\"\u{1f600}\":2}").unwrap(),
            "{\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }

    #[test]
    fn rejects_malformed_input_with_typed_errors() {
        type Check = fn(&CanonicalError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("{", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("[1,]", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("01", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("-", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("1 2", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("\"a\u{1}\"", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("\"\\x\"", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("\"\\u12\"", |e| matches!(e, CanonicalError::Syntax { .. })),
            ("\"\\udc00\"", |e| {
                matches!(e, CanonicalError::LoneSurrogate { .. })
            }),
            ("\"\\ud800\\u0041\"", |e| {
                matches!(e, CanonicalError::LoneSurrogate { .. })
            }),
            ("-0.0", |e| matches!(e, CanonicalError::Float { .. })),
            ("12345678901234567890123", |e| {
                matches!(e, CanonicalError::IntegerOutOfRange { .. })
            }),
            ("{\"a\":{\"a\":1,\"a\":1}}", |e| {
                matches!(e, CanonicalError::DuplicateKey { .. })
            }),
        ];
        for (input, ok) in cases {
            let err = parse(input.as_bytes()).expect_err(input);
            assert!(ok(&err), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn nesting_is_bounded_without_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(CanonicalError::TooDeep { .. })
        ));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn surrogate_pairs_decode_and_del_is_written_as_is() {
        assert_eq!(
            canon("\"\\ud83d\\ude00\\u007f\\/\"").unwrap(),
            "\"😀\u{7f}/\""
        );
        assert_eq!(canon("-0").unwrap(), "0");
    }

    #[test]
    fn from_serde_rejects_floats_with_their_path() {
        let v = serde_json::json!({"lines":[{"qty": 1.5}]});
        assert_eq!(
            Value::from_serde(v),
            Err(CanonicalError::NotAnInteger {
                path: "$.lines[0].qty".into()
            })
        );
        let big = serde_json::json!({"n": u64::MAX});
        assert!(Value::from_serde(big).is_err());
    }
}
