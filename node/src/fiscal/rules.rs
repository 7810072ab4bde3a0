//! The register's fiscal-number rules, from values: the number the lowest
//! usable block gives a sale, the part of a block to release, and how a
//! series reads in the status.
//!
//! Invariant: pure — no SQL, no clock, no I/O; the caller loads the rows and
//! stores the outcome.

use caja_shared::fiscal;
use caja_shared::ids::GrantId;
use caja_shared::kind::{FiscalNumbersReleased, FiscalRef};
use serde::Serialize;

/// The fiscal reference a usable block's `next` number gives a sale of
/// `series`; `None` when a stored value is out of range.
pub(super) fn number_of(
    series: &str,
    digits: i64,
    next: i64,
    valid_until: String,
) -> Option<FiscalRef> {
    let digits = u8::try_from(digits).ok()?;
    let n = u64::try_from(next).ok()?;
    Some(FiscalRef {
        series: series.to_owned(),
        number: fiscal::format_number(series, digits, n).ok()?,
        modifies: None,
        valid_until: Some(valid_until),
        buyer_tax_id: None,
        buyer_name: None,
    })
}

/// The unused part `[next, end]` of one usable block, as stored.
pub(super) struct Remainder {
    /// The grant, as stored.
    pub(super) grant: String,
    /// Its series.
    pub(super) series: String,
    /// The next unused number.
    pub(super) next: i64,
    /// The last usable number (below any released part).
    pub(super) end: i64,
    /// When the block expires (UTC ms).
    pub(super) expires_ms: i64,
}

/// What to release of a block: nothing when `only_expired` and it has not
/// expired at `now_ms`, or when a stored value does not parse.
pub(super) fn release_of(
    block: Remainder,
    now_ms: i64,
    only_expired: bool,
) -> Option<FiscalNumbersReleased> {
    if only_expired && block.expires_ms > now_ms {
        return None;
    }
    let (Ok(grant_id), Ok(first), Ok(last)) = (
        block.grant.parse::<GrantId>(),
        u64::try_from(block.next),
        u64::try_from(block.end),
    ) else {
        return None;
    };
    Some(FiscalNumbersReleased {
        grant_id,
        series: block.series,
        first,
        last,
    })
}

/// One series as the register sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesLeft {
    /// Prefix.
    pub series: String,
    /// Numbers this register may still issue.
    pub left: u64,
    /// Usable blocks.
    pub blocks: u64,
    /// The nearest expiry of a usable block (UTC ms).
    pub next_expiry_ms: Option<i64>,
    /// Whether `left` is below the low-water mark.
    pub low: bool,
    /// The hub's last refusal, if any.
    pub refused: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRANT: &str = "019aaf70-dc00-7000-8000-0000000000a1";

    fn block(expires_ms: i64) -> Remainder {
        Remainder {
            grant: GRANT.into(),
            series: "B02".into(),
            next: 7,
            end: 10,
            expires_ms,
        }
    }

    #[test]
    fn a_block_gives_its_next_number_in_the_series_width() {
        let r = number_of("B02", 8, 7, "2027-12-31".into()).expect("number");
        assert_eq!(r.number, "B0200000007");
        assert_eq!(r.valid_until.as_deref(), Some("2027-12-31"));
        assert_eq!(number_of("B02", -1, 7, String::new()), None);
        assert_eq!(number_of("B02", 8, -7, String::new()), None);
    }

    #[test]
    fn only_expired_blocks_are_released_unless_all_are() {
        let released = release_of(block(2_000), 1_000, false).expect("all");
        assert_eq!((released.first, released.last), (7, 10));
        assert_eq!(release_of(block(2_000), 1_000, true), None);
        assert!(release_of(block(1_000), 1_000, true).is_some());
        let bad = Remainder {
            grant: "not a grant".into(),
            ..block(0)
        };
        assert_eq!(release_of(bad, 1_000, false), None);
    }
}
