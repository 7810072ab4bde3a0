//! `application/x-www-form-urlencoded` bodies of the dashboard's forms,
//! parsed by hand (axum's `Form` would pull in a crate for ten lines) into
//! fields whose errors name the field for the person (`FormError`).
//!
//! Architecture invariant: pure; never panics on any input.

use crate::ui::text;

/// Most fields one form may send.
pub const MAX_FIELDS: usize = 32;
/// Longest value of one field (bytes, after decoding).
pub const MAX_VALUE: usize = 4000;

/// Why a form cannot be used. Each variant names the field for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is not a form (bad escape, not UTF-8, too many fields).
    #[error("malformed form body: {0}")]
    Malformed(String),
    /// A required field is missing or blank.
    #[error("field {0} is required")]
    Missing(&'static str),
    /// A field is too long.
    #[error("field {field} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// A field has a value that is not allowed.
    #[error("field {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why, for the person (Spanish).
        reason: String,
    },
}

impl FormError {
    /// The sentence shown to the operator.
    pub fn for_person(&self) -> String {
        match self {
            FormError::Malformed(_) => text::FORM_MALFORMED.to_owned(),
            FormError::Missing(f) => text::field_required(text::field_label(f)),
            FormError::TooLong { field, max } => {
                text::field_too_long(text::field_label(field), *max)
            }
            FormError::Invalid { field, reason } => {
                format!("{}: {reason}", text::field_label(field))
            }
        }
    }
}

/// A parsed form: its fields in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(raw: &str) -> Result<String, FormError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h * 16 + l),
                    _ => return Err(FormError::Malformed("bad percent escape".into())),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::Malformed("not UTF-8".into()))
}

impl Form {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        let text =
            std::str::from_utf8(body).map_err(|_| FormError::Malformed("not UTF-8".into()))?;
        let mut fields = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            if fields.len() == MAX_FIELDS {
                return Err(FormError::Malformed("too many fields".into()));
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            fields.push((decode(k)?, decode(v)?));
        }
        Ok(Form { fields })
    }

    /// The first value of `name`, as sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed; `None` when absent or blank. Too long is
    /// an error.
    pub fn optional(&self, name: &'static str, max: usize) -> Result<Option<String>, FormError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.chars().count() > max.min(MAX_VALUE) => Err(FormError::TooLong {
                field: name,
                max: max.min(MAX_VALUE),
            }),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    /// The value of `name`, trimmed, required and at most `max` characters.
    pub fn required(&self, name: &'static str, max: usize) -> Result<String, FormError> {
        self.optional(name, max)?.ok_or(FormError::Missing(name))
    }

    /// The value of `name` parsed with `parse`; `reason` explains a refusal.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
        reason: &str,
    ) -> Result<T, FormError> {
        let v = self.required(name, 200)?;
        parse(&v).ok_or_else(|| FormError::Invalid {
            field: name,
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_plus_and_utf8() {
        let f = Form::parse(b"nota=Se+acept%C3%B3+el+precio&by=Mar%c3%ada&empty=&flag").unwrap();
        assert_eq!(f.get("nota"), Some("Se aceptó el precio"));
        assert_eq!(f.get("by"), Some("María"));
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("flag"), Some(""));
        assert_eq!(f.get("nope"), None);
        assert_eq!(f.required("nota", 100).unwrap(), "Se aceptó el precio");
    }

    #[test]
    fn refuses_what_is_not_a_form_without_panicking() {
        for bad in [&b"a=%"[..], b"a=%4", b"a=%zz", b"a=%ff%fe", b"\xff=1"] {
            assert!(
                matches!(Form::parse(bad), Err(FormError::Malformed(_))),
                "{bad:?}"
            );
        }
        let many: Vec<u8> = (0..=MAX_FIELDS)
            .map(|i| format!("f{i}=1"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        assert!(matches!(Form::parse(&many), Err(FormError::Malformed(_))));
    }

    #[test]
    fn required_and_lengths_name_the_field() {
        let f = Form::parse(b"note=++&name=abcdef").unwrap();
        assert_eq!(f.required("note", 10), Err(FormError::Missing("note")));
        assert_eq!(
            f.required("name", 3),
            Err(FormError::TooLong {
                field: "name",
                max: 3
            })
        );
        let e = f
            .parsed("name", |v| v.parse::<u32>().ok(), "no es un número")
            .unwrap_err();
        assert!(e.for_person().contains("no es un número"), "{e:?}");
        assert!(FormError::Missing("note")
            .for_person()
            .contains(text::field_label("note")));
    }

    proptest::proptest! {
        #[test]
        fn any_body_parses_or_is_refused_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(f) = Form::parse(&body) {
                let _ = f.required("note", 10);
                let _ = f.optional("x", 5);
            }
        }
    }
}
