//! Canonical XML for the signatures DGII's documents carry: a small
//! namespace-aware tree read with quick-xml, and its canonical form per W3C
//! "Canonical XML 1.0" (`http://www.w3.org/TR/2001/REC-xml-c14n-20010315`,
//! the algorithm DGII "Firmado de e-CF" names for `CanonicalizationMethod`)
//! and "Exclusive XML Canonicalization 1.0" (`…/xml-exc-c14n#`), both
//! without comments, for the two node-sets an enveloped signature needs: the
//! whole document minus one `Signature` element (the enveloped-signature
//! transform) and one element's subtree (`SignedInfo`) with the namespaces
//! and `xml:` attributes it inherits.
//!
//! Invariant: [`canonicalize`] of any serialization of the same infoset gives
//! the same bytes — whitespace inside tags, attribute order and quoting,
//! `<a/>` versus `<a></a>`, character and predefined entity references,
//! CDATA sections, CRLF line ends, an XML declaration, comments and
//! superfluous namespace declarations do not change it. Rules (C14N 1.0 §2.3,
//! §1.1): UTF-8; no declaration, no DTD, no comments; line ends normalized to
//! `#xA`; attribute values normalized as CDATA (literal tab/CR/LF → space,
//! character references kept) then escaped (`&amp; &lt; &quot; &#x9; &#xA;
//! &#xD;`); text escaped (`&amp; &lt; &gt; &#xD;`); empty elements as
//! start/end pairs; namespace declarations first, sorted by prefix (default
//! first), then attributes sorted by namespace URI then local name; a
//! namespace declaration is written only where the nearest written ancestor
//! did not already write the same one (`xmlns=""` only to undo a written
//! default). Exclusive C14N writes a declaration only where the element or
//! one of its attributes uses the prefix.
//!
//! Refused, not mis-canonicalized: a `<!DOCTYPE>` (entity declarations and
//! default attributes would change the infoset), undeclared entities or
//! prefixes, an encoding other than UTF-8, processing instructions outside
//! the root element, `InclusiveNamespaces` prefix lists.
//!
//! Why not a crate: `xml_c14n` binds libxml2 (C), `xml-canonicalization`
//! does not canonicalize document subsets (needed for both node-sets above),
//! and `xml-sec` is a young crate bringing its own XML parser, DER and X.509
//! stack beside the ones the workspace already has; quick-xml is already a
//! dependency and the rules above fit in this module.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::xml;

/// The `xml` prefix's namespace (bound by definition).
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Canonical XML 1.0 without comments.
pub const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
/// Exclusive XML Canonicalization 1.0 without comments.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// The largest document read (the same bound as Caja's own parser).
const MAX_BYTES: usize = xml::MAX_DOCUMENT_BYTES;
/// The deepest nesting read.
const MAX_DEPTH: usize = 64;

/// Which canonicalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Canonical XML 1.0, without comments.
    Inclusive,
    /// Exclusive XML Canonicalization 1.0, without comments.
    Exclusive,
}

impl Algorithm {
    /// The algorithm named by a URI, if supported.
    pub fn from_uri(uri: &str) -> Option<Algorithm> {
        match uri {
            C14N_10 => Some(Algorithm::Inclusive),
            EXC_C14N => Some(Algorithm::Exclusive),
            _ => None,
        }
    }
}

/// Why a document cannot be read or canonicalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum C14nError {
    /// Larger than the bound, or nested too deep.
    #[error("document too large or nested too deep")]
    TooLarge,
    /// Not UTF-8, or declares another encoding.
    #[error("document is not UTF-8")]
    NotUtf8,
    /// Malformed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// Well-formed, but outside what is canonicalized here.
    #[error("unsupported XML: {0}")]
    Unsupported(&'static str),
}

/// An attribute (namespace declarations are kept apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// The name as written.
    pub qname: String,
    /// Its namespace URI ("" when unprefixed).
    pub ns: String,
    /// Its local name.
    pub local: String,
    /// The normalized, unescaped value.
    pub value: String,
}

/// An element with its namespace declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    /// The name as written.
    pub qname: String,
    /// Its prefix ("" when none).
    pub prefix: String,
    /// Its local name.
    pub local: String,
    /// Its namespace URI ("" when none).
    pub ns: String,
    /// Declarations on this element: prefix ("" for the default) → URI.
    pub decls: Vec<(String, String)>,
    /// Attributes other than declarations.
    pub attrs: Vec<Attr>,
    /// Children in order (comments dropped, adjacent text merged).
    pub children: Vec<Child>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Child {
    /// An element.
    Elem(Elem),
    /// Character data, unescaped, line ends normalized.
    Text(String),
    /// A processing instruction: target and data (leading space dropped).
    Pi(String, String),
}

impl Elem {
    /// The child elements.
    pub fn elems(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|c| match c {
            Child::Elem(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with this namespace URI and local name.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Elem> {
        self.elems().find(|e| e.ns == ns && e.local == local)
    }

    /// All text below this element, concatenated.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            match c {
                Child::Text(t) => s.push_str(t),
                Child::Elem(e) => s.push_str(&e.text()),
                Child::Pi(..) => {}
            }
        }
        s
    }

    /// The value of an unprefixed attribute.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// Caja's element tree ([`xml::Element`]): local names, whitespace-only
    /// text beside child elements dropped, processing instructions dropped —
    /// for reading fields of a document in any serialization.
    pub fn to_element(&self) -> xml::Element {
        let has_elems = self.elems().next().is_some();
        let mut children = Vec::new();
        for c in &self.children {
            match c {
                Child::Elem(e) => children.push(xml::Content::Element(e.to_element())),
                Child::Text(t) if has_elems && t.chars().all(|c| " \t\r\n".contains(c)) => {}
                Child::Text(t) => children.push(xml::Content::Text(t.clone())),
                Child::Pi(..) => {}
            }
        }
        xml::Element {
            name: self.local.clone(),
            attrs: self
                .attrs
                .iter()
                .map(|a| (a.local.clone(), a.value.clone()))
                .collect(),
            children,
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> C14nError {
    C14nError::Malformed(e.to_string())
}

/// `\r\n` and lone `\r` → `\n` (XML 1.0 §2.11).
fn normalize_line_ends(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

fn split(qname: &str) -> (&str, &str) {
    match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname),
    }
}

/// Namespace scopes while reading.
struct Scopes(Vec<BTreeMap<String, String>>);

impl Scopes {
    fn resolve(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        self.0
            .iter()
            .rev()
            .find_map(|m| m.get(prefix))
            .map(String::as_str)
    }
}

fn start(e: &BytesStart<'_>, scopes: &mut Scopes) -> Result<Elem, C14nError> {
    let qname = std::str::from_utf8(e.name().as_ref())
        .map_err(|_| C14nError::NotUtf8)?
        .to_owned();
    let mut decls = Vec::new();
    let mut raw_attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(malformed)?;
        let key = std::str::from_utf8(a.key.as_ref())
            .map_err(|_| C14nError::NotUtf8)?
            .to_owned();
        let raw = std::str::from_utf8(&a.value).map_err(|_| C14nError::NotUtf8)?;
        // CDATA attribute-value normalization (XML 1.0 §3.3.3): literal
        // white space becomes a space; references are resolved after.
        let spaced = normalize_line_ends(raw).replace(['\t', '\n'], " ");
        let value = quick_xml::escape::unescape(&spaced)
            .map_err(malformed)?
            .into_owned();
        if key == "xmlns" {
            decls.push((String::new(), value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if value.is_empty() {
                return Err(C14nError::Unsupported("an empty prefixed namespace"));
            }
            decls.push((p.to_owned(), value));
        } else {
            raw_attrs.push((key, value));
        }
    }
    scopes.0.push(decls.iter().cloned().collect());
    let (prefix, local) = split(&qname);
    let ns = match scopes.resolve(prefix) {
        Some(u) => u.to_owned(),
        None if prefix.is_empty() => String::new(),
        None => return Err(C14nError::Malformed(format!("undeclared prefix {prefix}"))),
    };
    let mut attrs = Vec::with_capacity(raw_attrs.len());
    for (key, value) in raw_attrs {
        let (p, l) = split(&key);
        let ans = if p.is_empty() {
            String::new()
        } else {
            scopes
                .resolve(p)
                .ok_or_else(|| C14nError::Malformed(format!("undeclared prefix {p}")))?
                .to_owned()
        };
        if attrs.iter().any(|x: &Attr| x.ns == ans && x.local == l) {
            return Err(C14nError::Malformed(format!("attribute {key} twice")));
        }
        attrs.push(Attr {
            ns: ans,
            local: l.to_owned(),
            qname: key.clone(),
            value,
        });
    }
    Ok(Elem {
        prefix: prefix.to_owned(),
        local: local.to_owned(),
        qname: qname.clone(),
        ns,
        decls,
        attrs,
        children: Vec::new(),
    })
}

fn push_text(children: &mut Vec<Child>, text: &str) {
    if let Some(Child::Text(t)) = children.last_mut() {
        t.push_str(text);
    } else {
        children.push(Child::Text(text.to_owned()));
    }
}

/// Reads a document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Elem, C14nError> {
    if bytes.len() > MAX_BYTES {
        return Err(C14nError::TooLarge);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| C14nError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = true;
    cfg.check_end_names = true;
    cfg.trim_text(false);
    let mut scopes = Scopes(Vec::new());
    let mut stack: Vec<Elem> = Vec::new();
    let mut root = None;
    loop {
        let ev = reader.read_event().map_err(malformed)?;
        match ev {
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(malformed)?;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(C14nError::NotUtf8);
                    }
                }
            }
            Event::DocType(_) => return Err(C14nError::Unsupported("a DOCTYPE")),
            Event::Comment(_) => {}
            Event::Start(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(C14nError::TooLarge);
                }
                stack.push(start(&e, &mut scopes)?);
            }
            Event::End(_) => {
                scopes.0.pop();
                let done = stack.pop().ok_or_else(|| malformed("unmatched end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Child::Elem(done)),
                    None => root = Some(done),
                }
            }
            Event::Empty(_) => return Err(malformed("empty element not expanded")),
            Event::Text(t) => {
                let s = std::str::from_utf8(&t).map_err(|_| C14nError::NotUtf8)?;
                match stack.last_mut() {
                    Some(e) => push_text(&mut e.children, &normalize_line_ends(s)),
                    None if s.trim_matches([' ', '\t', '\r', '\n']).is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(&c).map_err(|_| C14nError::NotUtf8)?;
                let e = stack
                    .last_mut()
                    .ok_or_else(|| malformed("CDATA outside the root element"))?;
                push_text(&mut e.children, &normalize_line_ends(s));
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c,
                    None => {
                        let name = std::str::from_utf8(&r).map_err(|_| C14nError::NotUtf8)?;
                        predefined(name).ok_or_else(|| {
                            C14nError::Malformed(format!("undeclared entity {name}"))
                        })?
                    }
                };
                let e = stack
                    .last_mut()
                    .ok_or_else(|| malformed("a reference outside the root element"))?;
                push_text(&mut e.children, c.encode_utf8(&mut [0; 4]));
            }
            Event::PI(p) => {
                let e = stack.last_mut().ok_or(C14nError::Unsupported(
                    "a processing instruction outside the root element",
                ))?;
                let target = std::str::from_utf8(p.target()).map_err(|_| C14nError::NotUtf8)?;
                let data = std::str::from_utf8(p.content()).map_err(|_| C14nError::NotUtf8)?;
                e.children.push(Child::Pi(
                    target.to_owned(),
                    normalize_line_ends(data.trim_start_matches([' ', '\t', '\r', '\n'])),
                ));
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
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

/// What the apex of a subtree inherits from the elements above it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Namespaces in scope from the ancestors: prefix → URI.
    pub namespaces: BTreeMap<String, String>,
    /// `xml:*` attributes of the ancestors (nearest wins): local → value.
    pub xml_attrs: BTreeMap<String, String>,
}

impl Context {
    /// The context below `e` given the context above it.
    pub fn below(&self, e: &Elem) -> Context {
        let mut c = self.clone();
        for (p, u) in &e.decls {
            c.namespaces.insert(p.clone(), u.clone());
        }
        for a in e.attrs.iter().filter(|a| a.ns == XML_NS) {
            c.xml_attrs.insert(a.local.clone(), a.value.clone());
        }
        c
    }
}

/// The canonical form of `apex`'s subtree, without any element for which
/// `skip` is true (and its subtree), given what the apex inherits.
/// The whole document is the root with an empty [`Context`].
pub fn canonicalize(
    apex: &Elem,
    inherited: &Context,
    alg: Algorithm,
    skip: &dyn Fn(&Elem) -> bool,
) -> String {
    let mut out = String::new();
    let in_scope = inherited.below(apex);
    // What the apex's (absent) output parent rendered: nothing.
    let rendered = BTreeMap::new();
    let mut xml_attrs: Vec<Attr> = Vec::new();
    if alg == Algorithm::Inclusive {
        for (local, value) in &inherited.xml_attrs {
            if !apex
                .attrs
                .iter()
                .any(|a| a.ns == XML_NS && &a.local == local)
            {
                xml_attrs.push(Attr {
                    qname: format!("xml:{local}"),
                    ns: XML_NS.to_owned(),
                    local: local.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    write_elem(&mut out, apex, &in_scope, &rendered, &xml_attrs, alg, skip);
    out
}

fn write_elem(
    out: &mut String,
    e: &Elem,
    in_scope: &Context,
    rendered: &BTreeMap<String, String>,
    extra_attrs: &[Attr],
    alg: Algorithm,
    skip: &dyn Fn(&Elem) -> bool,
) {
    // Namespace declarations to write: prefix → URI ("" URI = xmlns="").
    let mut write: BTreeMap<String, String> = BTreeMap::new();
    let candidates: Vec<&String> = match alg {
        Algorithm::Inclusive => in_scope.namespaces.keys().collect(),
        Algorithm::Exclusive => {
            let mut used: Vec<&String> = Vec::new();
            let mut prefixes: Vec<&str> = vec![e.prefix.as_str()];
            prefixes.extend(
                e.attrs
                    .iter()
                    .filter(|a| !a.ns.is_empty() && a.ns != XML_NS)
                    .map(|a| split(&a.qname).0),
            );
            for p in prefixes {
                if let Some((k, _)) = in_scope.namespaces.get_key_value(p) {
                    if !used.contains(&k) {
                        used.push(k);
                    }
                }
            }
            used
        }
    };
    for p in candidates {
        let uri = &in_scope.namespaces[p];
        let already = rendered.get(p);
        if p.is_empty() && uri.is_empty() {
            // xmlns="" only undoes a default the output ancestor wrote.
            if already.is_some_and(|u| !u.is_empty()) {
                write.insert(String::new(), String::new());
            }
        } else if already != Some(uri) {
            write.insert(p.clone(), uri.clone());
        }
    }
    // Exclusive: an unprefixed element whose default namespace is empty
    // undoes a written default.
    if alg == Algorithm::Exclusive
        && e.prefix.is_empty()
        && !in_scope.namespaces.contains_key("")
        && rendered.get("").is_some_and(|u| !u.is_empty())
    {
        write.insert(String::new(), String::new());
    }
    let mut rendered_here = rendered.clone();
    out.push('<');
    out.push_str(&e.qname);
    for (p, u) in &write {
        rendered_here.insert(p.clone(), u.clone());
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
        }
        escape_attr(out, u);
        out.push('"');
    }
    let mut attrs: Vec<&Attr> = e.attrs.iter().chain(extra_attrs.iter()).collect();
    attrs.sort_by(|a, b| (&a.ns, &a.local).cmp(&(&b.ns, &b.local)));
    for a in attrs {
        out.push(' ');
        out.push_str(&a.qname);
        out.push_str("=\"");
        escape_attr(out, &a.value);
        out.push('"');
    }
    out.push('>');
    for c in &e.children {
        match c {
            Child::Text(t) => escape_text(out, t),
            Child::Pi(target, data) => {
                out.push_str("<?");
                out.push_str(target);
                if !data.is_empty() {
                    out.push(' ');
                    out.push_str(data);
                }
                out.push_str("?>");
            }
            Child::Elem(child) if skip(child) => {}
            Child::Elem(child) => {
                let below = in_scope.below(child);
                write_elem(out, child, &below, &rendered_here, &[], alg, skip);
            }
        }
    }
    out.push_str("</");
    out.push_str(&e.qname);
    out.push('>');
}

/// The canonical form of a whole document (inclusive C14N 1.0).
pub fn canonical_document(bytes: &[u8]) -> Result<String, C14nError> {
    let root = parse(bytes)?;
    Ok(canonicalize(
        &root,
        &Context::default(),
        Algorithm::Inclusive,
        &|_| false,
    ))
}

/// Reads a document in any serialization into Caja's element tree (see
/// [`Elem::to_element`]).
pub fn parse_element(bytes: &[u8]) -> Result<xml::Element, C14nError> {
    Ok(parse(bytes)?.to_element())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small tree: (name, attributes, text, children).
    #[derive(Debug, Clone)]
    struct T(usize, Vec<(usize, String)>, String, Vec<T>);

    const NAMES: [&str; 4] = ["a", "b", "p:c", "d"];
    const ATTRS: [&str; 4] = ["x", "y", "p:z", "w"];

    fn tree() -> impl Strategy<Value = T> {
        let text = "[a-z &<>\"'é\t\n]{0,6}";
        let leaf = (
            0..4usize,
            proptest::collection::btree_map(0..4usize, text, 0..3),
            text,
        )
            .prop_map(|(n, a, t)| T(n, a.into_iter().collect(), t, vec![]));
        leaf.prop_recursive(3, 12, 3, move |inner| {
            (
                0..4usize,
                proptest::collection::btree_map(0..4usize, text, 0..3),
                text,
                proptest::collection::vec(inner, 0..3),
            )
                .prop_map(|(n, a, t, c)| T(n, a.into_iter().collect(), t, c))
        })
    }

    /// Writes `t` one of several equivalent ways, chosen by `style` bits.
    fn write(t: &T, style: u32, root: bool, out: &mut String) {
        let name = NAMES[t.0];
        out.push('<');
        out.push_str(name);
        if root {
            out.push_str(if style & 1 == 0 {
                " xmlns:p=\"urn:p\""
            } else {
                " xmlns:p='urn:p' xmlns:q=\"urn:q\""
            });
        } else if style & 2 != 0 {
            // A superfluous redeclaration.
            out.push_str(" xmlns:p=\"urn:p\"");
        }
        let mut attrs = t.1.clone();
        if style & 4 != 0 {
            attrs.reverse();
        }
        for (k, v) in &attrs {
            let q = if style & 8 != 0 { '\'' } else { '"' };
            out.push_str(if style & 16 != 0 { "  " } else { " " });
            out.push_str(ATTRS[*k]);
            out.push('=');
            out.push(q);
            for c in v.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    '\t' => out.push_str("&#9;"),
                    '\n' => out.push_str("&#xA;"),
                    'é' if style & 32 != 0 => out.push_str("&#233;"),
                    c => out.push(c),
                }
            }
            out.push(q);
        }
        if t.2.is_empty() && t.3.is_empty() && style & 64 != 0 {
            out.push_str(" />");
            return;
        }
        out.push('>');
        for c in t.2.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' if style & 32 != 0 => out.push_str("&gt;"),
                '\n' if style & 128 != 0 => out.push_str("\r\n"),
                'é' if style & 32 != 0 => out.push_str("&#xe9;"),
                c => out.push(c),
            }
        }
        if style & 256 != 0 {
            out.push_str("<!-- c -->");
        }
        for c in &t.3 {
            write(c, style, false, out);
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }

    proptest! {
        /// Equivalent serializations canonicalize to the same bytes, and the
        /// canonical form is a fixed point.
        #[test]
        fn equivalent_serializations_have_one_canonical_form(t in tree(), style in 0u32..512) {
            let (mut plain, mut other) = (String::new(), String::new());
            write(&t, 0, true, &mut plain);
            write(&t, style & !1, true, &mut other);
            let a = canonical_document(plain.as_bytes()).unwrap();
            let b = canonical_document(other.as_bytes()).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(canonical_document(a.as_bytes()).unwrap(), a);
        }
    }
}
