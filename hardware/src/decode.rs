//! ESC/POS bytes back to commands and to the text as it would come out on paper.
//!
//! Used by the tests (a receipt test compares the decoded paper with an expected
//! text) and by the node's `receipt show` (a receipt as text, without a printer).
//! It understands every command this crate emits and the common ones it does not;
//! anything else becomes [`Command::Unknown`] and decoding goes on.
//!
//! **Architecture invariant: total.** Any byte string decodes, never panics, and
//! uses memory proportional to its input (property-tested).

use crate::codepage::CodePage;
use crate::escpos_ext::{DC4, DLE, EOT, ESC, GS, LF};
use crate::messages as msg;
use crate::receipt::Align;

/// One decoded element of an ESC/POS stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ESC @`: initialize (resets modes; the code page goes back to page 0).
    Init,
    /// `ESC t n`: select a character code table.
    CodePage(u8),
    /// `ESC a n`: justification.
    Justify(Align),
    /// `ESC E n`: emphasis on/off.
    Bold(bool),
    /// `ESC M n`: character font (0 = A, 1 = B).
    Font(u8),
    /// `GS ! n`: character size, width and height multipliers (1–8).
    Size {
        /// Width multiplier.
        width: u8,
        /// Height multiplier.
        height: u8,
    },
    /// `ESC d n`: print the line and feed `n` lines.
    PrintAndFeed(u8),
    /// `LF`: print the line and feed one line.
    LineFeed,
    /// Printable bytes, decoded with the code page in force.
    Text(String),
    /// `GS ( k … 49 65`: QR model (49 = model 1, 50 = model 2, 51 = micro).
    QrModel(u8),
    /// `GS ( k … 49 67`: QR module size in dots.
    QrModuleSize(u8),
    /// `GS ( k … 49 69`: QR error correction (48 = L … 51 = H).
    QrErrorCorrection(u8),
    /// `GS ( k … 49 80 48`: QR data stored in the symbol buffer (shown lossily
    /// as UTF-8).
    QrStore(String),
    /// `GS ( k … 49 81 48`: print the stored QR symbol.
    QrPrint,
    /// Another `GS ( k` function: its `cn`, `fn` and parameters.
    Symbol {
        /// Symbol type (49 = QR, 48 = PDF417, …).
        cn: u8,
        /// Function.
        func: u8,
        /// The remaining parameter bytes.
        params: Vec<u8>,
    },
    /// `GS V`: cut the paper.
    Cut {
        /// Partial (one point left uncut) rather than full.
        partial: bool,
    },
    /// `ESC p m t1 t2`: cash drawer pulse.
    DrawerKick {
        /// `m`: 0 = pin 2, 1 = pin 5.
        pin: u8,
        /// On time in milliseconds (`t1 × 2`).
        on_ms: u16,
        /// Off time in milliseconds (`t2 × 2`).
        off_ms: u16,
    },
    /// `DLE EOT n`: real-time status request.
    StatusRequest(u8),
    /// `DLE DC4 1 m t`: real-time drawer pulse.
    RealTimePulse {
        /// `m`: 0 = pin 2, 1 = pin 5.
        pin: u8,
        /// On time in milliseconds (`t × 100`).
        on_ms: u16,
    },
    /// Another command of known length that changes no text (`ESC - n`,
    /// `ESC 2`, `GS B n`…), kept as its bytes.
    Other(Vec<u8>),
    /// Bytes not understood (a lone control byte, an unknown `ESC`/`GS` command).
    Unknown(Vec<u8>),
    /// A command cut short by the end of the input.
    Truncated(Vec<u8>),
}

/// A decoded stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The commands in order.
    pub commands: Vec<Command>,
}

/// `ESC x n` commands with one parameter byte that change no text.
const ESC_ONE_PARAM: &[u8] = b"!-GRJ3 U{V";
/// `GS x n` commands with one parameter byte.
const GS_ONE_PARAM: &[u8] = b"BbHfhwx";

/// Decodes an ESC/POS byte stream. Text is decoded with the code page selected by
/// `ESC t` (PC858 until one is selected, and after `ESC @`: receipts from this
/// crate always select theirs; bytes of a page we do not know show as U+FFFD).
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Vec::new();
    let mut page: Option<CodePage> = Some(CodePage::Pc858);
    let mut text = String::new();
    let mut i = 0;
    let flush = |text: &mut String, out: &mut Vec<Command>| {
        if !text.is_empty() {
            out.push(Command::Text(std::mem::take(text)));
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        if b >= 0x20 && b != 0x7F {
            text.push(match page {
                Some(p) => p.decode_byte(b),
                None if b < 0x80 => char::from(b),
                None => '\u{FFFD}',
            });
            i += 1;
            continue;
        }
        flush(&mut text, &mut out);
        let rest = &bytes[i..];
        let (command, used) = match b {
            LF => (Command::LineFeed, 1),
            0x0D => (Command::Other(vec![0x0D]), 1),
            ESC => decode_esc(rest),
            GS => decode_gs(rest),
            DLE => decode_dle(rest),
            _ => (Command::Unknown(vec![b]), 1),
        };
        match &command {
            Command::Init => page = Some(CodePage::Pc858),
            Command::CodePage(n) => page = CodePage::from_escpos_number(*n),
            _ => {}
        }
        debug_assert!(used >= 1 && used <= rest.len());
        out.push(command);
        i += used.max(1);
    }
    flush(&mut text, &mut out);
    Decoded { commands: out }
}

/// `(command, bytes used)` for a stream starting with `ESC`.
fn decode_esc(rest: &[u8]) -> (Command, usize) {
    let Some(&op) = rest.get(1) else {
        return (Command::Truncated(rest.to_vec()), rest.len());
    };
    match op {
        b'@' => (Command::Init, 2),
        b'2' => (Command::Other(rest[..2].to_vec()), 2),
        b'p' => match rest.get(2..5) {
            Some(&[m, t1, t2]) => (
                Command::DrawerKick {
                    pin: m,
                    on_ms: u16::from(t1) * 2,
                    off_ms: u16::from(t2) * 2,
                },
                5,
            ),
            _ => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        b't' | b'a' | b'E' | b'd' | b'M' => match rest.get(2) {
            Some(&n) => {
                let command = match op {
                    b't' => Command::CodePage(n),
                    b'a' => Command::Justify(match n {
                        1 | 49 => Align::Center,
                        2 | 50 => Align::Right,
                        _ => Align::Left,
                    }),
                    b'E' => Command::Bold(n & 1 == 1),
                    b'M' => Command::Font(n & 1),
                    _ => Command::PrintAndFeed(n),
                };
                (command, 3)
            }
            None => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        op if ESC_ONE_PARAM.contains(&op) => match rest.get(..3) {
            Some(cmd) => (Command::Other(cmd.to_vec()), 3),
            None => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        _ => (Command::Unknown(rest[..2].to_vec()), 2),
    }
}

/// `(command, bytes used)` for a stream starting with `GS`.
fn decode_gs(rest: &[u8]) -> (Command, usize) {
    let Some(&op) = rest.get(1) else {
        return (Command::Truncated(rest.to_vec()), rest.len());
    };
    match op {
        b'!' => match rest.get(2) {
            Some(&n) => (
                Command::Size {
                    width: (n >> 4) + 1,
                    height: (n & 0x0F) + 1,
                },
                3,
            ),
            None => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        b'V' => match rest.get(2) {
            Some(&m @ (0 | 1 | 48 | 49)) => (
                Command::Cut {
                    partial: m & 1 == 1,
                },
                3,
            ),
            Some(&m @ (65 | 66)) => match rest.get(3) {
                Some(_) => (Command::Cut { partial: m == 66 }, 4),
                None => (Command::Truncated(rest.to_vec()), rest.len()),
            },
            Some(_) => (Command::Unknown(rest[..3].to_vec()), 3),
            None => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        b'(' => decode_gs_paren(rest),
        op if GS_ONE_PARAM.contains(&op) => match rest.get(..3) {
            Some(cmd) => (Command::Other(cmd.to_vec()), 3),
            None => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        _ => (Command::Unknown(rest[..2].to_vec()), 2),
    }
}

/// `GS ( x pL pH …`: a length-prefixed function.
fn decode_gs_paren(rest: &[u8]) -> (Command, usize) {
    let Some(&[_, _, kind, pl, ph]) = rest.get(..5) else {
        return (Command::Truncated(rest.to_vec()), rest.len());
    };
    let len = usize::from(pl) + 256 * usize::from(ph);
    let Some(body) = rest.get(5..5 + len) else {
        return (Command::Truncated(rest.to_vec()), rest.len());
    };
    let used = 5 + len;
    if kind != b'k' || body.len() < 2 {
        return (Command::Other(rest[..used].to_vec()), used);
    }
    let (cn, func, params) = (body[0], body[1], &body[2..]);
    let command = match (cn, func, params) {
        (49, 65, [model, ..]) => Command::QrModel(*model),
        (49, 67, [size]) => Command::QrModuleSize(*size),
        (49, 69, [level]) => Command::QrErrorCorrection(*level),
        (49, 80, [48, data @ ..]) => Command::QrStore(String::from_utf8_lossy(data).into_owned()),
        (49, 81, [48]) => Command::QrPrint,
        _ => Command::Symbol {
            cn,
            func,
            params: params.to_vec(),
        },
    };
    (command, used)
}

/// `(command, bytes used)` for a stream starting with `DLE`.
fn decode_dle(rest: &[u8]) -> (Command, usize) {
    match rest.get(1..3) {
        Some(&[EOT, n]) => {
            // n = 7, 8 and 18 carry one more byte.
            if matches!(n, 7 | 8 | 18) {
                match rest.get(3) {
                    Some(_) => (Command::StatusRequest(n), 4),
                    None => (Command::Truncated(rest.to_vec()), rest.len()),
                }
            } else {
                (Command::StatusRequest(n), 3)
            }
        }
        Some(&[DC4, 1]) => match rest.get(3..5) {
            Some(&[pin, t]) => (
                Command::RealTimePulse {
                    pin,
                    on_ms: u16::from(t) * 100,
                },
                5,
            ),
            _ => (Command::Truncated(rest.to_vec()), rest.len()),
        },
        Some(_) => (Command::Unknown(rest[..2].to_vec()), 2),
        None => (Command::Truncated(rest.to_vec()), rest.len()),
    }
}

impl Decoded {
    /// The paper as a person would read it, `columns` wide: text justified the way
    /// the printer would place it (trailing spaces trimmed), lines wrapped at the
    /// paper's edge as the printer does, and markers for what is not text:
    /// `[QR: …]`, `[CORTE]`, `[GAVETA]`.
    pub fn paper(&self, columns: usize) -> String {
        let columns = columns.max(1);
        let mut out: Vec<String> = Vec::new();
        let mut line = String::new();
        let mut line_len = 0;
        let mut align = Align::Left;
        let mut line_align = Align::Left;
        let mut qr_data = String::new();
        let emit = |out: &mut Vec<String>, line: &mut String, len: &mut usize, align: Align| {
            let pad = columns.saturating_sub(*len);
            let left = match align {
                Align::Left => 0,
                Align::Center => pad / 2,
                Align::Right => pad,
            };
            let text = format!("{}{}", " ".repeat(left), line);
            out.push(text.trim_end().to_string());
            line.clear();
            *len = 0;
        };
        for command in &self.commands {
            match command {
                Command::Init => align = Align::Left,
                Command::Justify(a) => {
                    align = *a;
                    if line_len == 0 {
                        line_align = *a;
                    }
                }
                Command::Text(t) => {
                    for c in t.chars() {
                        if line_len == columns {
                            // The character does not fit: the printer prints the
                            // full line and goes on with the next one.
                            emit(&mut out, &mut line, &mut line_len, line_align);
                        }
                        if line_len == 0 {
                            line_align = align;
                        }
                        line.push(c);
                        line_len += 1;
                    }
                }
                Command::LineFeed => emit(&mut out, &mut line, &mut line_len, line_align),
                Command::PrintAndFeed(n) => {
                    emit(&mut out, &mut line, &mut line_len, line_align);
                    for _ in 1..*n {
                        out.push(String::new());
                    }
                }
                Command::QrStore(data) => qr_data = data.clone(),
                Command::QrPrint => out.push(msg::decoded_qr(&qr_data)),
                Command::Cut { .. } => {
                    if line_len > 0 {
                        emit(&mut out, &mut line, &mut line_len, line_align);
                    }
                    out.push(msg::DECODED_CUT.to_string());
                }
                Command::DrawerKick { .. } | Command::RealTimePulse { .. } => {
                    out.push(msg::DECODED_DRAWER.to_string())
                }
                _ => {}
            }
        }
        if line_len > 0 {
            emit(&mut out, &mut line, &mut line_len, line_align);
        }
        let mut text = out.join("\n");
        text.push('\n');
        text
    }

    /// Only the text, without layout: the concatenation of every
    /// [`Command::Text`], one line per line feed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for command in &self.commands {
            match command {
                Command::Text(t) => s.push_str(t),
                Command::LineFeed | Command::PrintAndFeed(_) => s.push('\n'),
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_the_commands_we_emit() {
        let mut bytes = vec![ESC, b'@', ESC, b't', 19, ESC, b'a', 1, ESC, b'E', 1];
        bytes.extend_from_slice(b"Pi\xA4a");
        bytes.extend_from_slice(&[ESC, b'd', 1, GS, b'!', 0x01, GS, b'V', b'A', 0]);
        bytes.extend_from_slice(&[ESC, b'p', 0, 50, 100, DLE, EOT, 4]);
        let d = decode(&bytes);
        assert_eq!(
            d.commands,
            vec![
                Command::Init,
                Command::CodePage(19),
                Command::Justify(Align::Center),
                Command::Bold(true),
                Command::Text("Piña".into()),
                Command::PrintAndFeed(1),
                Command::Size {
                    width: 1,
                    height: 2
                },
                Command::Cut { partial: false },
                Command::DrawerKick {
                    pin: 0,
                    on_ms: 100,
                    off_ms: 200
                },
                Command::StatusRequest(4),
            ]
        );
        assert_eq!(d.paper(10), "   Piña\n[CORTE]\n[GAVETA]\n");
    }

    #[test]
    fn the_code_page_in_force_decodes_text() {
        let d = decode(&[ESC, b't', 16, 0xF1, ESC, b't', 19, 0xA4, ESC, b't', 2, 0xA4]);
        assert_eq!(d.text(), "ññ\u{FFFD}");
    }

    #[test]
    fn truncated_and_unknown_commands_do_not_stop_decoding() {
        let d = decode(&[0x07, b'a', ESC, b'z', b'b', GS, b'(', b'k', 200, 0, 49]);
        assert_eq!(
            d.commands,
            vec![
                Command::Unknown(vec![0x07]),
                Command::Text("a".into()),
                Command::Unknown(vec![ESC, b'z']),
                Command::Text("b".into()),
                Command::Truncated(vec![GS, b'(', b'k', 200, 0, 49]),
            ]
        );
    }

    #[test]
    fn long_text_wraps_at_the_paper_edge() {
        let d = decode(b"abcdefgh\n");
        assert_eq!(d.paper(5), "abcde\nfgh\n");
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let d = decode(&bytes);
            prop_assert!(d.commands.len() <= bytes.len());
            let _ = d.paper(42);
            let _ = d.text();
        }

        #[test]
        fn command_heavy_bytes_decode_without_panicking(
            bytes in proptest::collection::vec(prop_oneof![Just(ESC), Just(GS), Just(DLE), Just(EOT), Just(b'('), Just(b'k'), any::<u8>()], 0..256)
        ) {
            let _ = decode(&bytes).paper(48);
        }
    }
}
