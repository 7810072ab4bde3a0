//! The one-file `multipart/form-data` body the DGII services take (a field
//! named `xml` holding the document), written and read by hand: it is one
//! part, and the emulator must read exactly what the client writes. Pure.

/// The content type and body of a form with one file field.
pub fn form(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    // A boundary derived from the content cannot occur inside it unless the
    // content contains its own hash, which SHA-256 rules out.
    let boundary = format!(
        "caja-{}",
        &caja_shared::digest::Hash256::of(bytes).to_hex()[..32]
    );
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: text/xml\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The content of field `field` of a form body, given the request's content
/// type; `None` when it is not a multipart form or has no such field.
pub fn field<'a>(content_type: &str, body: &'a [u8], field: &str) -> Option<&'a [u8]> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    if !content_type.trim_start().starts_with("multipart/form-data") || boundary.is_empty() {
        return None;
    }
    let delim = format!("--{boundary}");
    let mut rest = body;
    loop {
        let at = find(rest, delim.as_bytes())?;
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            return None;
        }
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delim}").as_bytes())?;
        let named = head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("content-disposition")
                && l.contains(&format!("name=\"{field}\""))
        });
        if named {
            return Some(&content[..end]);
        }
        rest = &content[end..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_forms() {
        let doc = b"<ECF><a>1</a>\r\n--not-a-boundary</ECF>";
        let (ct, body) = form("xml", "101E320000000001.xml", doc);
        assert_eq!(field(&ct, &body, "xml"), Some(&doc[..]));
        assert_eq!(field(&ct, &body, "other"), None);
        // A form as curl writes it, with two fields.
        let curl = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhola\r\n--XyZ\r\nContent-Disposition: form-data; name=\"xml\"; filename=\"a.xml\"\r\nContent-Type: text/xml\r\n\r\n<RFCE/>\r\n--XyZ--\r\n";
        assert_eq!(
            field("multipart/form-data; boundary=XyZ", curl, "xml"),
            Some(&b"<RFCE/>"[..])
        );
        assert_eq!(field("text/xml", curl, "xml"), None);
        assert_eq!(
            field("multipart/form-data; boundary=XyZ", b"garbage", "xml"),
            None
        );
    }
}
