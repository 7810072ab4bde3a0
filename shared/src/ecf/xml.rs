//! Caja's XML: a writer that produces the canonical form (C14N 1.0 inclusive,
//! without comments) directly, and a strict reader for documents in exactly
//! that form.
//!
//! Invariant: [`Element::to_canonical`] of what [`parse`] returns is the input
//! byte for byte whenever the input is in Caja's serialization (no whitespace
//! between elements, start and end tag for every element — never `<a/>` —,
//! attributes with double quotes, text escaped as C14N escapes it). The
//! signature verifier relies on this: it accepts a document only when the
//! re-serialization equals the received bytes, so the canonical form it hashes
//! is the received form. Source: W3C "Canonical XML 1.0" §2.3 (character
//! escaping, empty elements) and DGII "Descripción técnica de facturación
//! electrónica" (no empty tags, no whitespace: Caja's builders never write an
//! element without content, except the signature's method elements, which
//! XMLDSig defines empty).

use std::fmt::Write as _;

/// The XML declaration Caja writes before the root (not part of the
/// canonical form: C14N drops it).
pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// Most elements nested in a document Caja reads.
pub const MAX_DEPTH: usize = 16;

/// Largest document Caja reads (DGII allows 1,000 items of a few hundred
/// bytes; 4 MiB leaves room).
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// One element of a document to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `<name>text</name>`.
    Text(&'static str, String),
    /// `<name>children</name>`.
    Parent(&'static str, Vec<Node>),
}

impl Node {
    /// A text element, left out when `text` is `None` (no empty tags).
    pub fn opt(name: &'static str, text: Option<String>) -> Option<Node> {
        text.map(|t| Node::Text(name, t))
    }

    /// Appends the canonical form of this node.
    pub fn write(&self, out: &mut String) {
        match self {
            Node::Text(name, text) => {
                open(out, name, &[]);
                escape_text(out, text);
                close(out, name);
            }
            Node::Parent(name, children) => {
                open(out, name, &[]);
                for c in children {
                    c.write(out);
                }
                close(out, name);
            }
        }
    }
}

/// The declaration followed by the canonical form of `root`.
pub fn document(root: &Node) -> Vec<u8> {
    let mut out = String::from(DECLARATION);
    root.write(&mut out);
    out.into_bytes()
}

/// `<name a="v" …>`, attributes in the given order (callers give them sorted,
/// namespace declarations first, as C14N orders them).
pub fn open(out: &mut String, name: &str, attrs: &[(&str, &str)]) {
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr(out, v);
        out.push('"');
    }
    out.push('>');
}

/// `</name>`.
pub fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Text as C14N writes it: `&` `<` `>` and carriage return escaped.
pub fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// An attribute value as C14N writes it.
pub fn escape_attr(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Whether a character may appear in text Caja writes: XML 1.0 characters
/// other than control characters (tab, line feed and carriage return
/// included: DGII's fields are single-line).
pub fn is_allowed_char(c: char) -> bool {
    !c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}'
}

/// A parsed element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The tag name as written (prefix included, if any).
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Children in document order.
    pub children: Vec<Content>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

impl Element {
    /// Appends the canonical form.
    pub fn write(&self, out: &mut String) {
        let attrs: Vec<(&str, &str)> = self
            .attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        open(out, &self.name, &attrs);
        for c in &self.children {
            match c {
                Content::Element(e) => e.write(out),
                Content::Text(t) => escape_text(out, t),
            }
        }
        close(out, &self.name);
    }

    /// The canonical form.
    pub fn to_canonical(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Content::Element(e) => Some(e),
            Content::Text(_) => None,
        })
    }

    /// The text of an element whose only child is text.
    pub fn text(&self) -> Option<&str> {
        match self.children.as_slice() {
            [Content::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The text at a `/`-separated path of child names below this element.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let mut e = self;
        for part in path.split('/') {
            e = e.child(part)?;
        }
        e.text()
    }
}

/// Why bytes are not a document in Caja's serialization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8.
    #[error("document is not UTF-8")]
    NotUtf8,
    /// Does not start with [`DECLARATION`].
    #[error("document does not start with {DECLARATION}")]
    Declaration,
    /// Malformed at a byte offset.
    #[error("malformed XML at byte {at}: {what}")]
    Malformed {
        /// Offset in the input.
        at: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Parses a document: the declaration, then one root element and nothing
/// after it. Comments, processing instructions, CDATA, DOCTYPE, self-closing
/// tags and entities other than the five predefined ones and `&#xD;` `&#x9;`
/// `&#xA;` are refused.
pub fn parse(bytes: &[u8]) -> Result<Element, ParseError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ParseError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
    let body = text
        .strip_prefix(DECLARATION)
        .ok_or(ParseError::Declaration)?;
    let mut p = Parser {
        s: body.as_bytes(),
        text: body,
        pos: 0,
        base: DECLARATION.len(),
    };
    let root = p.element(0)?;
    if p.pos != p.s.len() {
        return Err(p.err("content after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    base: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError::Malformed {
            at: self.base + self.pos,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos == start || !self.s[start].is_ascii_alphabetic() && self.s[start] != b'_' {
            return Err(self.err("expected a name"));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    /// Text up to `stop` (exclusive), entities resolved.
    fn chars(&mut self, stop: u8) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == stop || b == b'&' || b == b'<' {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b'&') => {
                    let rest = &self.text[self.pos..];
                    let (c, len) = [
                        ("&amp;", '&'),
                        ("&lt;", '<'),
                        ("&gt;", '>'),
                        ("&quot;", '"'),
                        ("&apos;", '\''),
                        ("&#xD;", '\r'),
                        ("&#x9;", '\t'),
                        ("&#xA;", '\n'),
                    ]
                    .iter()
                    .find(|(e, _)| rest.starts_with(e))
                    .map(|(e, c)| (*c, e.len()))
                    .ok_or_else(|| self.err("unsupported entity"))?;
                    out.push(c);
                    self.pos += len;
                }
                _ => return Ok(out),
            }
        }
    }

    fn element(&mut self, depth: usize) -> Result<Element, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        self.expect(b'<', "expected '<'")?;
        let name = self.name()?;
        let mut attrs = Vec::new();
        loop {
            match self.peek() {
                Some(b'>') => {
                    self.pos += 1;
                    break;
                }
                Some(b' ') => {
                    self.pos += 1;
                    let k = self.name()?;
                    self.expect(b'=', "expected '='")?;
                    self.expect(b'"', "expected '\"'")?;
                    let v = self.chars(b'"')?;
                    self.expect(b'"', "unterminated attribute")?;
                    attrs.push((k, v));
                }
                _ => return Err(self.err("expected ' ' or '>' in a start tag")),
            }
        }
        let mut children = Vec::new();
        loop {
            match (self.peek(), self.s.get(self.pos + 1).copied()) {
                (None, _) => return Err(self.err("unclosed element")),
                (Some(b'<'), Some(b'/')) => {
                    self.pos += 2;
                    let end = self.name()?;
                    if end != name {
                        return Err(self.err("end tag does not match"));
                    }
                    self.expect(b'>', "expected '>'")?;
                    return Ok(Element {
                        name,
                        attrs,
                        children,
                    });
                }
                (Some(b'<'), _) => children.push(Content::Element(self.element(depth + 1)?)),
                _ => {
                    let t = self.chars(b'<')?;
                    if t.chars()
                        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                    {
                        return Err(self.err("control character in text"));
                    }
                    children.push(Content::Text(t));
                }
            }
        }
    }
}

/// `value` with at most `max` characters: longer input is an error naming
/// `field`; control characters are refused.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    if value.trim().is_empty() {
        return Err(TextError::Empty(field.to_owned()));
    }
    if let Some(c) = value.chars().find(|c| !is_allowed_char(*c)) {
        let mut code = String::new();
        let _ = write!(code, "U+{:04X}", u32::from(c));
        return Err(TextError::Character(field.to_owned(), code));
    }
    let n = value.chars().count();
    if n > max {
        return Err(TextError::TooLong(field.to_owned(), n, max));
    }
    Ok(())
}

/// Why a text field cannot go into a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty or blank.
    #[error("{0} is empty")]
    Empty(String),
    /// A character XML or DGII does not take.
    #[error("{0} contains the control character {1}")]
    Character(String, String),
    /// Longer than the schema allows.
    #[error("{0} has {1} characters, at most {2} are allowed")]
    TooLong(String, usize, usize),
}

/// `value` cut to at most `max` characters and stripped of control
/// characters (names printed on receipts: the schema's limit is narrower than
/// the catalog's).
pub fn fit(value: &str, max: usize) -> String {
    value
        .chars()
        .map(|c| if is_allowed_char(c) { c } else { ' ' })
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_canonically_and_reads_back_exactly() {
        let doc = Node::Parent(
            "ECF",
            vec![
                Node::Text("Nombre", "Arroz & <habichuelas> \"ñ\" 'x'\r".into()),
                Node::Parent("Items", vec![Node::Text("N", "1".into())]),
            ],
        );
        let bytes = document(&doc);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><ECF><Nombre>Arroz &amp; &lt;habichuelas&gt; \"ñ\" 'x'&#xD;</Nombre><Items><N>1</N></Items></ECF>"
        );
        let e = parse(&bytes).unwrap();
        assert_eq!(
            e.text_at("Nombre"),
            Some("Arroz & <habichuelas> \"ñ\" 'x'\r")
        );
        assert_eq!(e.text_at("Items/N"), Some("1"));
        assert_eq!(e.to_canonical(), text[DECLARATION.len()..]);
    }

    #[test]
    fn other_serializations_do_not_round_trip_or_are_refused() {
        let d = DECLARATION;
        for (input, refused) in [
            (format!("{d}<a><b/></a>"), true),
            (format!("{d}<a><!-- c --></a>"), true),
            (format!("{d}<a>&nope;</a>"), true),
            (format!("{d}<a></b>"), true),
            (format!("{d}<a>"), true),
            (format!("{d}<a></a>x"), true),
            (format!("{d}<a x='1'></a>"), true),
            ("<a></a>".to_owned(), true),
            (format!("{d}<a>&quot;</a>"), false),
        ] {
            match parse(input.as_bytes()) {
                Err(_) => assert!(refused, "{input}"),
                Ok(e) => {
                    assert!(!refused, "{input}");
                    // Parsed, but not Caja's form: re-serialization differs.
                    assert_ne!(e.to_canonical(), input[d.len()..], "{input}");
                }
            }
        }
        // Whitespace is character data: kept, canonical, and hashed as such.
        let ws = format!("{d}<a> <b></b></a>");
        assert_eq!(parse(ws.as_bytes()).unwrap().to_canonical(), ws[d.len()..]);
        let deep = format!("{d}{}{}", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(parse(deep.as_bytes()), Err(ParseError::TooDeep));
    }

    #[test]
    fn text_fields_are_checked_and_fitted() {
        assert!(check_text("issuer.legal_name", "Colmado Ñoño & Hijos", 150).is_ok());
        assert_eq!(
            check_text("issuer.address", "a\u{7}b", 100)
                .unwrap_err()
                .to_string(),
            "issuer.address contains the control character U+0007"
        );
        assert!(matches!(
            check_text("x", &"a".repeat(101), 100),
            Err(TextError::TooLong(_, 101, 100))
        ));
        assert!(matches!(
            check_text("x", "  ", 100),
            Err(TextError::Empty(_))
        ));
        assert_eq!(fit(&"ñ".repeat(90), 80).chars().count(), 80);
        assert_eq!(fit("a\tb", 80), "a b");
    }
}
