//! The few bytes of the POSIX ustar format the audit export download needs:
//! a 512-byte header per regular file, the file's bytes padded to 512, and two
//! zero blocks at the end. Any `tar` reads it (`tar -xf`). Written by hand
//! because it is forty lines and a crate would bring file-system code we do
//! not use.
//!
//! Architecture invariant: pure.

/// The tar block size.
pub const BLOCK: usize = 512;

/// Why a header cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    /// ustar names hold at most 100 bytes (without the prefix field).
    #[error("file name {0:?} is longer than 100 bytes")]
    NameTooLong(String),
    /// ustar sizes are 11 octal digits (8 GiB).
    #[error("file of {0} bytes is too large for a ustar header")]
    TooLarge(u64),
}

fn octal(field: &mut [u8], value: u64) {
    // Digits, then a NUL: `field.len() - 1` octal digits, zero-padded.
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// The header of a regular file `name` of `size` bytes, mode 0644, modified
/// at `mtime_s` (Unix seconds).
pub fn header(name: &str, size: u64, mtime_s: u64) -> Result<[u8; BLOCK], TarError> {
    if name.len() > 100 || name.is_empty() {
        return Err(TarError::NameTooLong(name.to_owned()));
    }
    if size >= 8 << 30 {
        return Err(TarError::TooLarge(size));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime_s & 0o77_777_777_777);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as eight spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let text = format!("{sum:06o}");
    h[148..154].copy_from_slice(text.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    Ok(h)
}

/// Zero bytes after a file of `size` bytes, to the next block.
pub fn padding(size: u64) -> usize {
    let rem = usize::try_from(size % BLOCK as u64).unwrap_or(0);
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// The end of an archive: two zero blocks.
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_checksum() {
        let h = header("audit/sth.json", 1234, 1_700_000_000).unwrap();
        assert_eq!(&h[..14], b"audit/sth.json");
        assert_eq!(&h[124..136], b"00000002322\0");
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..263], b"ustar\0");
        let stored = std::str::from_utf8(&h[148..154]).unwrap();
        let mut blank = h;
        blank[148..156].copy_from_slice(b"        ");
        let sum: u64 = blank.iter().map(|b| u64::from(*b)).sum();
        assert_eq!(u64::from_str_radix(stored, 8).unwrap(), sum);
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert!(header(&"x".repeat(101), 1, 0).is_err());
        assert!(header("x", 8 << 30, 0).is_err());
    }
}
