//! Small helpers over `quick-xml`: a document writer that writes only the
//! elements given (the authority forbids empty tags) and a reader that
//! flattens a document to `(path, text)` pairs. Pure.

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::{Reader, Writer};

/// One element of a document tree to write.
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
}

/// Writes `<?xml version="1.0" encoding="utf-8"?>` and the tree, without
/// indentation (the bytes are what is submitted and hashed).
pub fn write_document(root: &Node) -> Result<Vec<u8>, String> {
    let mut w = Writer::new(Vec::new());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
        .map_err(|e| e.to_string())?;
    write_node(&mut w, root).map_err(|e| e.to_string())?;
    Ok(w.into_inner())
}

fn write_node(w: &mut Writer<Vec<u8>>, n: &Node) -> std::io::Result<()> {
    match n {
        Node::Text(name, text) => {
            w.create_element(*name)
                .write_text_content(BytesText::new(text))?;
        }
        Node::Parent(name, children) => {
            w.create_element(*name).write_inner_content(|w| {
                for c in children {
                    write_node(w, c)?;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// A document flattened: every element with text, as (`Root/Child/Leaf`,
/// unescaped text), in document order.
pub fn flatten(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut r = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth_seen = 0usize;
    loop {
        match r.read_event().map_err(|e| e.to_string())? {
            Event::Start(s) => {
                path.push(String::from_utf8_lossy(s.local_name().as_ref()).into_owned());
                current.clear();
                depth_seen = depth_seen.max(path.len());
                if path.len() > 32 {
                    return Err("nested deeper than 32 elements".into());
                }
            }
            Event::Text(t) => {
                current.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Event::GeneralRef(g) => {
                if let Some(c) = g.resolve_char_ref().map_err(|e| e.to_string())? {
                    current.push(c);
                } else {
                    let name = g.decode().map_err(|e| e.to_string())?;
                    let v = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?;
                    current.push_str(v);
                }
            }
            Event::CData(c) => {
                current.push_str(&String::from_utf8_lossy(&c.into_inner()));
            }
            Event::End(_) => {
                if !current.trim().is_empty() {
                    out.push((path.join("/"), std::mem::take(&mut current)));
                }
                current.clear();
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(format!("unclosed element {}", path.join("/")));
    }
    if depth_seen == 0 {
        return Err("no root element".into());
    }
    Ok(out)
}

/// The text of the first element at `path` of a flattened document.
pub fn field<'a>(fields: &'a [(String, String)], path: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_and_reads_back() {
        let doc = Node::Parent(
            "ECF",
            vec![
                Node::Text("Nombre", "Arroz & <habichuelas> \"ñ\"".into()),
                Node::Parent("Items", vec![Node::Text("N", "1".into())]),
            ],
        );
        let bytes = write_document(&doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><ECF><Nombre>Arroz &amp; &lt;habichuelas&gt; &quot;ñ&quot;</Nombre><Items><N>1</N></Items></ECF>"
        );
        let f = flatten(&bytes).unwrap();
        assert_eq!(field(&f, "ECF/Nombre"), Some("Arroz & <habichuelas> \"ñ\""));
        assert_eq!(field(&f, "ECF/Items/N"), Some("1"));
    }

    #[test]
    fn bad_documents_are_errors_not_panics() {
        for bad in [
            &b"<a><b></a>"[..],
            b"",
            b"<a>",
            b"\xff\xfe",
            b"<a>&nope;</a>",
        ] {
            assert!(flatten(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(flatten(deep.as_bytes()).is_err());
    }
}
