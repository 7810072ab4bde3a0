//! Log text that cannot forge log lines: [`Escaped`] displays a string with
//! every control character (newlines, carriage returns, ANSI escape
//! sequences, other C0 and C1 controls, DEL) and the Unicode line and
//! paragraph separators written as visible escapes (`\n`, `\r`, `\t`,
//! `\u{1b}`), so an operator name or an error text carrying them stays on
//! its one line and cannot recolour or erase the terminal. [`fields`] is
//! the text log format's field formatter: every field value of every log
//! line (operator names, error texts, request fields) goes through
//! [`Escaped`]; the JSON format escapes them as JSON already.
//!
//! Invariant: the output of [`Escaped`] holds no control character.

use std::fmt::{self, Write as _};

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::FormatFields;

/// A string displayed with its control characters escaped.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                    write!(f, "\\u{{{:x}}}", u32::from(c))?;
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The field formatter of the text log format: `name=value` pairs (the
/// message bare), each value escaped with [`Escaped`].
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            if field.name() == "message" {
                write!(w, "{}", Escaped(&text))
            } else {
                write!(w, "{}={}", field.name(), Escaped(&text))
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        let name = "ana\n2026-01-01T00:00:00Z  INFO caja_hub: dashboard login operator=admin\r\x1b[2K\x1b[31mred\u{7f}\u{85}\u{2028}";
        let shown = Escaped(name).to_string();
        assert_eq!(
            shown,
            "ana\\n2026-01-01T00:00:00Z  INFO caja_hub: dashboard login operator=admin\\r\\u{1b}[2K\\u{1b}[31mred\\u{7f}\\u{85}\\u{2028}"
        );
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(Escaped("María Pérez").to_string(), "María Pérez");
    }

    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the hub's text log format writes for one line naming an
    /// operator and an error text, with `fields()` or the default.
    fn logged(escaping: bool) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone());
        let dispatch = if escaping {
            tracing::Dispatch::new(builder.fmt_fields(fields()).finish())
        } else {
            tracing::Dispatch::new(builder.finish())
        };
        let operator =
            "ana\n2026-01-01T00:00:00Z  INFO caja_hub: dashboard login operator=admin\x1b[2K";
        let error = std::io::Error::other("disk full\r\nforged line");
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(operator = %operator, error = %error, code = "x", "dashboard login");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn an_operator_name_cannot_forge_a_log_line() {
        let text = logged(true);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.trim_end_matches('\n').chars().any(char::is_control),
            "{text}"
        );
        assert!(text.contains("operator=ana\\n2026"), "{text}");
        assert!(text.contains("\\u{1b}[2K"), "{text}");
        assert!(text.contains("error=disk full\\r\\nforged line"), "{text}");
        assert!(text.contains("code=\"x\""), "{text}");
        // Without the escaping field format the name and the error text
        // each forge a line.
        assert_eq!(logged(false).lines().count(), 3);
    }
}
