//! Code pages for receipt text: Unicode in, exactly one byte per character out.
//!
//! A thermal printer prints bytes through the character table selected with
//! `ESC t n`. Spanish needs á é í ó ú ü ñ Ñ ¿ ¡ and, for prices in euros, €. Two
//! tables that every common ESC/POS printer has carry all of them:
//! [`CodePage::Pc858`] (`n = 19`, the DOS Latin-1 table with € at `0xD5`) and
//! [`CodePage::Wpc1252`] (`n = 16`, Windows Latin-1). PC858 is the default: it is
//! present on older firmware too.
//!
//! **Architecture invariant: one character in, one byte out, and nothing dropped.**
//! [`CodePage::fit`] turns any text into text the page can print: combining accents
//! are composed (`n` + U+0303 → `ñ`), and every character the page lacks, every
//! control character (an `ESC` inside a product name must never reach the printer
//! as a command) and every lone combining mark becomes a visible [`REPLACEMENT`]
//! (`?`) and is counted in [`Unmappable`]. Because of the one-to-one rule, the
//! column arithmetic of the receipt layout is done on the fitted text and holds on
//! paper.
//!
//! The tables are written out here (128 entries each) rather than taken from the
//! `escpos` crate, whose text path falls back to UTF-8 bytes (or an error, or HTML
//! `&#NNNN;` references) for characters a page lacks, and reports nothing; the
//! tests check these tables against `escpos`'s own PC858 table and against
//! `encoding_rs`'s windows-1252.

use std::collections::BTreeMap;
use std::fmt;

/// The byte printed for a character the code page lacks: `?`, visible on paper.
pub const REPLACEMENT: char = '?';

/// Marks a byte position that the code page leaves undefined (five positions of
/// windows-1252). Such a byte is never produced by [`CodePage::encode_char`]; the
/// decoder shows it as U+FFFD.
const UNDEFINED: char = '\u{FFFD}';

/// A printer character table that has every Spanish character and €.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CodePage {
    /// PC858 (DOS Latin-1 with €), `ESC t 19`. The default.
    #[default]
    Pc858,
    /// Windows-1252, `ESC t 16`.
    Wpc1252,
}

/// PC858, bytes `0x80..=0xFF`.
static PC858_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', // 0x80
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', 'ø', '£', 'Ø', '×', 'ƒ', // 0x90
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '®', '¬', '½', '¼', '¡', '«', '»', // 0xA0
    '░', '▒', '▓', '│', '┤', 'Á', 'Â', 'À', '©', '╣', '║', '╗', '╝', '¢', '¥', '┐', // 0xB0
    '└', '┴', '┬', '├', '─', '┼', 'ã', 'Ã', '╚', '╔', '╩', '╦', '╠', '═', '╬', '¤', // 0xC0
    'ð', 'Ð', 'Ê', 'Ë', 'È', '€', 'Í', 'Î', 'Ï', '┘', '┌', '█', '▄', '¦', 'Ì', '▀', // 0xD0
    'Ó', 'ß', 'Ô', 'Ò', 'õ', 'Õ', 'µ', 'þ', 'Þ', 'Ú', 'Û', 'Ù', 'ý', 'Ý', '¯', '´', // 0xE0
    '\u{AD}', '±', '‗', '¾', '¶', '§', '÷', '¸', '°', '¨', '·', '¹', '³', '²', '■',
    '\u{A0}', // 0xF0
];

/// Windows-1252, bytes `0x80..=0xFF` (0x81, 0x8D, 0x8F, 0x90, 0x9D undefined).
static WPC1252_HIGH: [char; 128] = [
    '€', UNDEFINED, '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', UNDEFINED, 'Ž',
    UNDEFINED, // 0x80
    UNDEFINED, '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', UNDEFINED, 'ž',
    'Ÿ', // 0x90
    '\u{A0}', '¡', '¢', '£', '¤', '¥', '¦', '§', '¨', '©', 'ª', '«', '¬', '\u{AD}', '®',
    '¯', // 0xA0
    '°', '±', '²', '³', '´', 'µ', '¶', '·', '¸', '¹', 'º', '»', '¼', '½', '¾', '¿', // 0xB0
    'À', 'Á', 'Â', 'Ã', 'Ä', 'Å', 'Æ', 'Ç', 'È', 'É', 'Ê', 'Ë', 'Ì', 'Í', 'Î', 'Ï', // 0xC0
    'Ð', 'Ñ', 'Ò', 'Ó', 'Ô', 'Õ', 'Ö', '×', 'Ø', 'Ù', 'Ú', 'Û', 'Ü', 'Ý', 'Þ', 'ß', // 0xD0
    'à', 'á', 'â', 'ã', 'ä', 'å', 'æ', 'ç', 'è', 'é', 'ê', 'ë', 'ì', 'í', 'î', 'ï', // 0xE0
    'ð', 'ñ', 'ò', 'ó', 'ô', 'õ', 'ö', '÷', 'ø', 'ù', 'ú', 'û', 'ü', 'ý', 'þ', 'ÿ', // 0xF0
];

impl CodePage {
    /// Every supported page.
    pub const ALL: [CodePage; 2] = [CodePage::Pc858, CodePage::Wpc1252];

    /// The `n` of `ESC t n` that selects this page (Epson numbering).
    pub const fn escpos_number(self) -> u8 {
        match self {
            CodePage::Pc858 => 19,
            CodePage::Wpc1252 => 16,
        }
    }

    /// The page selected by `ESC t n`, if it is one of ours.
    pub fn from_escpos_number(n: u8) -> Option<CodePage> {
        CodePage::ALL.into_iter().find(|p| p.escpos_number() == n)
    }

    /// The same page as the `escpos` crate names it.
    pub fn escpos_page(self) -> escpos::utils::PageCode {
        match self {
            CodePage::Pc858 => escpos::utils::PageCode::PC858,
            CodePage::Wpc1252 => escpos::utils::PageCode::WPC1252,
        }
    }

    /// The page's name, as in configuration (`pc858`, `wpc1252`).
    pub const fn name(self) -> &'static str {
        match self {
            CodePage::Pc858 => "pc858",
            CodePage::Wpc1252 => "wpc1252",
        }
    }

    /// Parses a configuration name (case-insensitive; `cp858`/`cp1252` accepted).
    pub fn parse(name: &str) -> Option<CodePage> {
        match name.to_ascii_lowercase().as_str() {
            "pc858" | "cp858" | "858" => Some(CodePage::Pc858),
            "wpc1252" | "cp1252" | "windows-1252" | "1252" => Some(CodePage::Wpc1252),
            _ => None,
        }
    }

    fn high_half(self) -> &'static [char; 128] {
        match self {
            CodePage::Pc858 => &PC858_HIGH,
            CodePage::Wpc1252 => &WPC1252_HIGH,
        }
    }

    /// The byte for a printable character, or `None` when the page lacks it.
    /// Control characters (U+0000–U+001F, U+007F) are never printable.
    pub fn encode_char(self, c: char) -> Option<u8> {
        if (' '..='~').contains(&c) {
            return u8::try_from(u32::from(c)).ok();
        }
        if c == UNDEFINED {
            return None;
        }
        let index = self.high_half().iter().position(|&h| h == c)?;
        u8::try_from(0x80 + index).ok()
    }

    /// The character a byte prints as: ASCII below `0x80`, the table above. Control
    /// bytes come back as themselves (the decoder handles them as commands); an
    /// undefined position is U+FFFD.
    pub fn decode_byte(self, b: u8) -> char {
        if b < 0x80 {
            char::from(b)
        } else {
            self.high_half()[usize::from(b - 0x80)]
        }
    }

    /// Makes `text` printable on this page, one character per byte: composes
    /// combining accents, replaces what the page cannot print with [`REPLACEMENT`]
    /// and counts each replacement in `report`.
    pub fn fit(self, text: &str, report: &mut Unmappable) -> String {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let c = match chars.peek().and_then(|&mark| compose(c, mark)) {
                Some(composed) => {
                    chars.next();
                    composed
                }
                None => c,
            };
            if self.encode_char(c).is_some() {
                out.push(c);
            } else {
                report.add(c);
                out.push(REPLACEMENT);
            }
        }
        out
    }

    /// Encodes `text` to bytes ([`CodePage::fit`] then one byte per character).
    pub fn encode(self, text: &str) -> Encoded {
        let mut unmappable = Unmappable::default();
        let fitted = self.fit(text, &mut unmappable);
        let bytes = fitted
            .chars()
            .map(|c| self.encode_char(c).unwrap_or(b'?'))
            .collect();
        Encoded { bytes, unmappable }
    }
}

impl fmt::Display for CodePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Text encoded for a code page, with what had to be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// One byte per character of the fitted text.
    pub bytes: Vec<u8>,
    /// Characters that were printed as [`REPLACEMENT`].
    pub unmappable: Unmappable,
}

/// The characters a code page could not print, with how many times each occurred.
/// Reported with every rendered receipt so the register can say "3 characters could
/// not be printed" instead of losing them silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unmappable {
    counts: BTreeMap<char, usize>,
}

impl Unmappable {
    /// Records one replaced character.
    pub fn add(&mut self, c: char) {
        *self.counts.entry(c).or_insert(0) += 1;
    }

    /// Adds another report to this one.
    pub fn merge(&mut self, other: &Unmappable) {
        for (&c, &n) in &other.counts {
            *self.counts.entry(c).or_insert(0) += n;
        }
    }

    /// How many characters were replaced in all.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// True when nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Each replaced character with its count, in code-point order.
    pub fn iter(&self) -> impl Iterator<Item = (char, usize)> + '_ {
        self.counts.iter().map(|(&c, &n)| (c, n))
    }
}

impl fmt::Display for Unmappable {
    /// `U+2192 '→' ×2, U+001B ×1`: code point, the character when printable, count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (c, n) in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            if c.is_control() {
                write!(f, "U+{:04X} ×{n}", u32::from(c))?;
            } else {
                write!(f, "U+{:04X} '{c}' ×{n}", u32::from(c))?;
            }
        }
        Ok(())
    }
}

/// Composes a base letter and a following combining mark into one Latin-1
/// character (the forms Spanish and its neighbours use), so decomposed input
/// (NFD, common from macOS and some keyboards) prints as it should.
fn compose(base: char, mark: char) -> Option<char> {
    let (bases, composed) = match mark {
        '\u{0301}' => ("aeiouyAEIOUY", "áéíóúýÁÉÍÓÚÝ"),
        '\u{0300}' => ("aeiouAEIOU", "àèìòùÀÈÌÒÙ"),
        '\u{0302}' => ("aeiouAEIOU", "âêîôûÂÊÎÔÛ"),
        '\u{0303}' => ("anoANO", "ãñõÃÑÕ"),
        '\u{0308}' => ("aeiouyAEIOU", "äëïöüÿÄËÏÖÜ"),
        '\u{0327}' => ("cC", "çÇ"),
        _ => return None,
    };
    let index = bases.chars().position(|b| b == base)?;
    composed.chars().nth(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn spanish_characters_and_euro_are_on_both_pages() {
        for page in CodePage::ALL {
            for c in "áéíóúüñÁÉÍÓÚÜÑ¿¡€ºª".chars() {
                let byte = page
                    .encode_char(c)
                    .unwrap_or_else(|| panic!("{page} lacks {c}"));
                assert_eq!(page.decode_byte(byte), c, "{page} {c}");
            }
        }
    }

    #[test]
    fn transcoding_table() {
        // Each row: the character, its byte on PC858, its byte on WPC1252
        // (`?` = replaced visibly and counted).
        let sample = "aá é í ó ú ñ Ñ ¿ ¡ € ü — → ✓ \u{1b}";
        let mut rows = String::new();
        for c in sample.chars().filter(|c| *c != ' ') {
            let cell = |page: CodePage| match page.encode_char(c) {
                Some(b) => format!("0x{b:02X}"),
                None => "?".to_string(),
            };
            rows.push_str(&format!(
                "U+{:04X} {:>6} {:>6}\n",
                u32::from(c),
                cell(CodePage::Pc858),
                cell(CodePage::Wpc1252)
            ));
        }
        expect![[r#"
            U+0061   0x61   0x61
            U+00E1   0xA0   0xE1
            U+00E9   0x82   0xE9
            U+00ED   0xA1   0xED
            U+00F3   0xA2   0xF3
            U+00FA   0xA3   0xFA
            U+00F1   0xA4   0xF1
            U+00D1   0xA5   0xD1
            U+00BF   0xA8   0xBF
            U+00A1   0xAD   0xA1
            U+20AC   0xD5   0x80
            U+00FC   0x81   0xFC
            U+2014      ?   0x97
            U+2192      ?      ?
            U+2713      ?      ?
            U+001B      ?      ?
        "#]]
        .assert_eq(&rows);
    }

    #[test]
    fn unmappable_characters_are_replaced_visibly_and_counted() {
        let encoded = CodePage::Pc858.encode("Café → piña — ok\u{1b}@");
        assert_eq!(
            encoded.bytes,
            [
                b'C', b'a', b'f', 0x82, b' ', b'?', b' ', b'p', b'i', 0xA4, b'a', b' ', b'?', b' ',
                b'o', b'k', b'?', b'@'
            ]
        );
        assert_eq!(encoded.unmappable.total(), 3);
        expect![[r#"U+001B ×1, U+2014 '—' ×1, U+2192 '→' ×1"#]]
            .assert_eq(&encoded.unmappable.to_string());
        // The same em dash prints on windows-1252.
        assert_eq!(CodePage::Wpc1252.encode("—").unmappable.total(), 0);
    }

    #[test]
    fn combining_accents_are_composed() {
        let mut report = Unmappable::default();
        let fitted = CodePage::Pc858.fit("Pin\u{0303}a, cafe\u{0301}, x\u{0301}", &mut report);
        assert_eq!(fitted, "Piña, café, x?");
        assert_eq!(
            report.total(),
            1,
            "a lone mark on a letter without a composed form"
        );
    }

    #[test]
    fn every_byte_round_trips() {
        for page in CodePage::ALL {
            for b in 0x20..=0xFFu8 {
                let c = page.decode_byte(b);
                if b == 0x7F || c == UNDEFINED {
                    assert_eq!(page.encode_char(c), None);
                } else {
                    assert_eq!(page.encode_char(c), Some(b), "{page} 0x{b:02X} {c}");
                }
            }
        }
    }

    #[test]
    fn wpc1252_table_matches_encoding_rs() {
        for b in 0x80..=0xFFu8 {
            let c = CodePage::Wpc1252.decode_byte(b);
            if c == UNDEFINED {
                continue;
            }
            let text = c.to_string();
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
            assert!(!unmappable);
            assert_eq!(&bytes[..], &[b], "{c}");
        }
    }

    /// Compares our tables with the `escpos` crate's: they agree except where
    /// `escpos` 0.17 is wrong (PC858 0xA8 is `¿` and 0xA9 `®` in IBM's table;
    /// 0xE3 is `Ò`; 0xF0 is the soft hyphen). Its `¿` is missing altogether, which
    /// is one reason this crate transcodes by itself.
    #[test]
    fn tables_against_the_escpos_crate() {
        use escpos::driver::Driver;
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Driver for Sink {
            fn name(&self) -> String {
                "sink".into()
            }
            fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
                self.0.lock().expect("sink").extend_from_slice(data);
                Ok(())
            }
            fn read(&self, _buf: &mut [u8]) -> escpos::errors::Result<usize> {
                Ok(0)
            }
            fn flush(&self) -> escpos::errors::Result<()> {
                Ok(())
            }
        }
        let mut differences = String::new();
        for page in CodePage::ALL {
            for b in 0x80..=0xFFu8 {
                let c = page.decode_byte(b);
                if c == UNDEFINED {
                    continue;
                }
                let sink = Sink::default();
                let options = escpos::printer_options::PrinterOptions::new(
                    Some(page.escpos_page()),
                    None,
                    42,
                );
                let mut printer = escpos::printer::Printer::new(
                    sink.clone(),
                    escpos::utils::Protocol::default(),
                    Some(options),
                );
                let theirs = printer
                    .write(&c.to_string())
                    .and_then(|p| p.print())
                    .map(|_| sink.0.lock().expect("sink").clone())
                    .map_err(|e| e.to_string());
                if theirs.as_deref() != Ok(&[b][..]) {
                    differences.push_str(&format!(
                        "{page} 0x{b:02X} {c:?}: escpos gives {theirs:?}\n"
                    ));
                }
            }
        }
        expect![[r#"
            pc858 0xA8 '¿': escpos gives Ok([194, 191])
            pc858 0xA9 '®': escpos gives Ok([168])
            pc858 0xE2 'Ô': escpos gives Ok([227])
            pc858 0xE3 'Ò': escpos gives Ok([195, 146])
            pc858 0xF0 '\u{ad}': escpos gives Ok([194, 173])
        "#]]
        .assert_eq(&differences);
    }
}
