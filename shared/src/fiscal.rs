//! Fiscal number series (DESIGN "Fiscal number ranges"): the formatted number,
//! the buyer's tax id, the allocator's free runs and the per-number accounting.
//!
//! A series is what the tax authority authorized: a prefix (`B02` consumer
//! receipts, `B01` tax-credit invoices, `E31`/`E32` electronic), numbers
//! `first..=last`, a width (`B02` + 8 digits, `E31` + 10). The hub grants
//! registers blocks of it; a register uses one number per sale, voids keep the
//! number (never reused), and it releases what it did not use. Head office must
//! account for every number: [`account`] gives each exactly one
//! [`NumberStatus`] from the *set* of grants, releases, uses and write-offs, so
//! the answer does not depend on the order they arrived in (DESIGN invariant 5).
//!
//! Architecture invariant: pure; no clock, no storage. The hub's store feeds
//! these functions rows; the property tests feed them random histories.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{DeviceId, EventId, GrantId, SaleId};

/// Most digits after the prefix (e-CF uses 10; 13 keeps every number < 2^53).
pub const MAX_DIGITS: u8 = 13;

/// Why a fiscal value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiscalError {
    /// The prefix is not a letter and two digits.
    #[error("series: {0:?} is not a series prefix (a capital letter and two digits, e.g. B02)")]
    BadPrefix(String),
    /// The width is out of range.
    #[error("digits: {0} is out of range (1..=13)")]
    BadDigits(u8),
    /// A number does not fit the width, or the range is empty.
    #[error("{field}: {reason}")]
    BadRange {
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A buyer tax id that is neither a valid RNC nor a valid cédula.
    #[error("buyer_tax_id: {0}")]
    BadTaxId(String),
}

/// Checks a series prefix: one ASCII capital letter and two digits.
pub fn check_prefix(prefix: &str) -> Result<(), FiscalError> {
    let b = prefix.as_bytes();
    let ok =
        b.len() == 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(FiscalError::BadPrefix(prefix.to_owned()))
    }
}

/// The largest number `digits` digits can write.
pub fn max_number(digits: u8) -> Result<u64, FiscalError> {
    if digits == 0 || digits > MAX_DIGITS {
        return Err(FiscalError::BadDigits(digits));
    }
    Ok(10u64.pow(u32::from(digits)) - 1)
}

/// Checks a whole series definition.
pub fn check_series(prefix: &str, digits: u8, first: u64, last: u64) -> Result<(), FiscalError> {
    check_prefix(prefix)?;
    let max = max_number(digits)?;
    if first == 0 {
        return Err(FiscalError::BadRange {
            field: "first",
            reason: "numbers start at 1".into(),
        });
    }
    if last < first {
        return Err(FiscalError::BadRange {
            field: "last",
            reason: format!("{last} is below first {first}"),
        });
    }
    if last > max {
        return Err(FiscalError::BadRange {
            field: "last",
            reason: format!("{last} does not fit in {digits} digits"),
        });
    }
    Ok(())
}

/// The printed number: prefix and the number zero-padded, e.g. `B0200000051`.
pub fn format_number(prefix: &str, digits: u8, n: u64) -> Result<String, FiscalError> {
    check_prefix(prefix)?;
    if n > max_number(digits)? {
        return Err(FiscalError::BadRange {
            field: "number",
            reason: format!("{n} does not fit in {digits} digits"),
        });
    }
    Ok(format!("{prefix}{n:0width$}", width = usize::from(digits)))
}

/// The number inside a printed fiscal number of series `prefix`, if it is one:
/// the prefix, then only digits (any width up to [`MAX_DIGITS`]).
pub fn parse_number(prefix: &str, printed: &str) -> Option<u64> {
    let digits = printed.strip_prefix(prefix)?;
    if digits.is_empty()
        || digits.len() > usize::from(MAX_DIGITS)
        || !digits.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

/// Whether documents of this series need the buyer's RNC or cédula:
/// tax-credit invoices (`B01`, `E31`) and governmental/special-regime ones
/// (`B14`, `B15`, `E44`, `E45`).
pub fn requires_buyer_tax_id(prefix: &str) -> bool {
    matches!(prefix, "B01" | "B14" | "B15" | "E31" | "E44" | "E45")
}

/// A Dominican taxpayer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxIdKind {
    /// RNC, 9 digits (companies).
    Rnc,
    /// Cédula, 11 digits (persons).
    Cedula,
}

/// Validates an RNC (9 digits, DGII weights 7 9 8 6 5 4 3 2, mod 11) or a
/// cédula (11 digits, Luhn). Hyphens and spaces are ignored; the answer is the
/// digits alone, as they are kept with the sale.
pub fn validate_tax_id(input: &str) -> Result<(TaxIdKind, String), FiscalError> {
    let digits: String = input.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(FiscalError::BadTaxId(format!(
            "{input:?} must hold only digits (and hyphens)"
        )));
    }
    let d: Vec<u32> = digits.bytes().map(|c| u32::from(c - b'0')).collect();
    match d.len() {
        9 => {
            let weights = [7, 9, 8, 6, 5, 4, 3, 2];
            let sum: u32 = d.iter().zip(weights).map(|(a, w)| a * w).sum();
            let check = match sum % 11 {
                0 => 2,
                1 => 1,
                r => 11 - r,
            };
            if check == d[8] {
                Ok((TaxIdKind::Rnc, digits))
            } else {
                Err(FiscalError::BadTaxId(format!(
                    "RNC {input} has a wrong check digit"
                )))
            }
        }
        11 => {
            let sum: u32 = d
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &x)| {
                    if i % 2 == 1 {
                        let y = x * 2;
                        if y > 9 {
                            y - 9
                        } else {
                            y
                        }
                    } else {
                        x
                    }
                })
                .sum();
            if sum % 10 == 0 {
                Ok((TaxIdKind::Cedula, digits))
            } else {
                Err(FiscalError::BadTaxId(format!(
                    "cédula {input} has a wrong check digit"
                )))
            }
        }
        n => Err(FiscalError::BadTaxId(format!(
            "{input:?} has {n} digits: an RNC has 9, a cédula 11"
        ))),
    }
}

/// A block granted to a register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant.
    pub grant_id: GrantId,
    /// The register.
    pub device: DeviceId,
    /// First number, inclusive.
    pub first: u64,
    /// Last number, inclusive.
    pub last: u64,
}

/// Numbers a register gave back from one of its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The grant they came from.
    pub grant_id: GrantId,
    /// The register that released them.
    pub device: DeviceId,
    /// First, inclusive.
    pub first: u64,
    /// Last, inclusive.
    pub last: u64,
}

/// A sale that carries a number of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The number.
    pub number: u64,
    /// The register that made the sale.
    pub device: DeviceId,
    /// The sale.
    pub sale: SaleId,
    /// Its event.
    pub event_id: EventId,
    /// Its time (the event's HLC ms).
    pub at_ms: i64,
    /// Whether the sale was voided.
    pub voided: bool,
}

/// Everything known about one series.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Blocks granted.
    pub grants: Vec<Grant>,
    /// Numbers released.
    pub releases: Vec<Release>,
    /// Sales carrying numbers of the series.
    pub uses: Vec<Use>,
    /// Registers head office wrote off (lost, stolen, dead).
    pub written_off: BTreeSet<DeviceId>,
}

/// The one status of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NumberStatus {
    /// On a sale that stands.
    Used,
    /// On a sale that was voided (never reused).
    Voided,
    /// Given back unused by the register it was granted to.
    ReleasedUnused,
    /// Granted to a register that was written off, unused as far as the hub
    /// knows: never issued again.
    WrittenOff,
    /// Granted, not used, not released: a register may still use it.
    Outstanding,
    /// Never granted (free for the allocator).
    NeverAllocated,
}

impl NumberStatus {
    /// Every status, in report order.
    pub const ALL: [NumberStatus; 6] = [
        NumberStatus::Used,
        NumberStatus::Voided,
        NumberStatus::ReleasedUnused,
        NumberStatus::WrittenOff,
        NumberStatus::Outstanding,
        NumberStatus::NeverAllocated,
    ];

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberStatus::Used => "used",
            NumberStatus::Voided => "voided",
            NumberStatus::ReleasedUnused => "released_unused",
            NumberStatus::WrittenOff => "written_off",
            NumberStatus::Outstanding => "outstanding",
            NumberStatus::NeverAllocated => "never_allocated",
        }
    }
}

/// Consecutive numbers with the same status and holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// First, inclusive.
    pub first: u64,
    /// Last, inclusive.
    pub last: u64,
    /// Their status.
    pub status: NumberStatus,
    /// The register holding (outstanding, written off) or that used them.
    pub device: Option<DeviceId>,
    /// The grant they belong to, for outstanding and written-off runs.
    pub grant: Option<GrantId>,
    /// For a used or voided number (a run of one): every sale that carries
    /// it, in event-id order (more than one is a duplicate).
    pub sales: Vec<Use>,
}

/// Something wrong that the accounting found (kept, never hidden).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Anomaly {
    /// One number on more than one sale (a `manual` conflict).
    Duplicate {
        /// The number.
        number: u64,
        /// How many sales carry it.
        sales: usize,
    },
    /// A sale used a number that was not granted to its register.
    OutsideGrant {
        /// The number.
        number: u64,
        /// The register.
        device: DeviceId,
    },
    /// A sale used a number its register had released.
    UsedAfterRelease {
        /// The number.
        number: u64,
        /// The register.
        device: DeviceId,
    },
    /// Two grants open on the same number at once (an allocator fault).
    OverlappingGrants {
        /// The first number of the overlap.
        number: u64,
    },
    /// A number outside the series' range was used or granted.
    OutsideSeries {
        /// The number.
        number: u64,
    },
}

/// The accounting of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    /// First number of the series.
    pub first: u64,
    /// Last number of the series.
    pub last: u64,
    /// Every number of the series, exactly once, in order.
    pub runs: Vec<Run>,
    /// Count per status; they add up to the series size.
    pub totals: BTreeMap<NumberStatus, u64>,
    /// Sales beyond the first on the same number (must be 0).
    pub duplicates: u64,
    /// Everything wrong, sorted.
    pub anomalies: Vec<Anomaly>,
}

impl Accounting {
    /// The count of one status.
    pub fn total(&self, s: NumberStatus) -> u64 {
        self.totals.get(&s).copied().unwrap_or(0)
    }

    /// The series size.
    pub fn size(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The status of one number (`None` outside the series).
    pub fn status_of(&self, n: u64) -> Option<&Run> {
        let i = self.runs.partition_point(|r| r.last < n);
        self.runs.get(i).filter(|r| r.first <= n)
    }

    /// The runs the allocator may grant from: never allocated, or released
    /// unused (and not used by any sale).
    pub fn free_runs(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for r in &self.runs {
            if matches!(
                r.status,
                NumberStatus::NeverAllocated | NumberStatus::ReleasedUnused
            ) {
                match out.last_mut() {
                    Some(prev) if prev.1 + 1 == r.first => prev.1 = r.last,
                    _ => out.push((r.first, r.last)),
                }
            }
        }
        out
    }
}

/// Pieces of grants after their releases, by what they are now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    Open,
    WrittenOff,
    Released,
}

/// Subtracts sorted, merged `cuts` from `[first, last]`.
fn subtract(first: u64, last: u64, cuts: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = first;
    for &(a, b) in cuts {
        if b < at || a > last {
            continue;
        }
        if a > at {
            out.push((at, a - 1));
        }
        at = at.max(b.saturating_add(1));
        if at > last {
            return out;
        }
    }
    if at <= last {
        out.push((at, last));
    }
    out
}

/// Sorts and merges intervals.
fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(prev) if a <= prev.1.saturating_add(1) => prev.1 = prev.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Accounts for every number of the series `first..=last` from its history.
///
/// Each number gets exactly one status, in this precedence: a sale carries it
/// (`used`, or `voided` when every sale carrying it was voided); else a grant
/// holds it open (`outstanding`); else it was granted to a written-off
/// register and not released (`written_off`); else every grant that covered it
/// released it (`released_unused`); else `never_allocated`. The result is a
/// function of the sets in `history` (their order does not matter).
pub fn account(first: u64, last: u64, history: &History) -> Accounting {
    assert!(first <= last, "a series is never empty");
    let mut anomalies = BTreeSet::new();
    // Releases per grant, clipped to the grant and only from its own register.
    let grants_by_id: BTreeMap<GrantId, &Grant> =
        history.grants.iter().map(|g| (g.grant_id, g)).collect();
    let mut released: BTreeMap<GrantId, Vec<(u64, u64)>> = BTreeMap::new();
    for r in &history.releases {
        if let Some(g) = grants_by_id.get(&r.grant_id) {
            if g.device == r.device && r.first <= r.last {
                let (a, b) = (r.first.max(g.first), r.last.min(g.last));
                if a <= b {
                    released.entry(r.grant_id).or_default().push((a, b));
                }
            }
        }
    }
    // Pieces: (first, last, kind, device, grant).
    let mut pieces: Vec<(u64, u64, PieceKind, DeviceId, GrantId)> = Vec::new();
    let mut seen_grants = BTreeSet::new();
    for g in &history.grants {
        if g.first > g.last || !seen_grants.insert(g.grant_id) {
            continue;
        }
        if g.first < first || g.last > last {
            anomalies.insert(Anomaly::OutsideSeries {
                number: if g.first < first { g.first } else { g.last },
            });
        }
        let cuts = merge(released.get(&g.grant_id).cloned().unwrap_or_default());
        let kind = if history.written_off.contains(&g.device) {
            PieceKind::WrittenOff
        } else {
            PieceKind::Open
        };
        for (a, b) in subtract(g.first, g.last, &cuts) {
            pieces.push((a, b, kind, g.device, g.grant_id));
        }
        for &(a, b) in &cuts {
            pieces.push((a, b, PieceKind::Released, g.device, g.grant_id));
        }
    }
    // Uses per number, sorted by event id; duplicates of the same event
    // collapse (the set of events is what counts).
    let mut uses: BTreeMap<u64, Vec<Use>> = BTreeMap::new();
    for u in &history.uses {
        if u.number < first || u.number > last {
            anomalies.insert(Anomaly::OutsideSeries { number: u.number });
            continue;
        }
        let v = uses.entry(u.number).or_default();
        if !v.iter().any(|x| x.event_id == u.event_id) {
            v.push(u.clone());
        }
    }
    for v in uses.values_mut() {
        v.sort_by_key(|u| u.event_id);
    }
    // Breakpoints of the sweep.
    let mut cuts: BTreeSet<u64> = BTreeSet::new();
    cuts.insert(first);
    for &(a, b, ..) in &pieces {
        if b >= first && a <= last {
            cuts.insert(a.max(first));
            if b < last {
                cuts.insert(b + 1);
            }
        }
    }
    for &n in uses.keys() {
        cuts.insert(n);
        if n < last {
            cuts.insert(n + 1);
        }
    }
    let cuts: Vec<u64> = cuts.into_iter().collect();
    // Pieces sorted by start; an active list swept along the breakpoints.
    pieces.sort_by_key(|p| (p.0, p.1));
    let mut next_piece = 0;
    let mut active: Vec<(u64, u64, PieceKind, DeviceId, GrantId)> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut totals: BTreeMap<NumberStatus, u64> = BTreeMap::new();
    let mut duplicates = 0u64;
    for (i, &a) in cuts.iter().enumerate() {
        let b = cuts.get(i + 1).map_or(last, |n| n - 1);
        active.retain(|p| p.1 >= a);
        while next_piece < pieces.len() && pieces[next_piece].0 <= a {
            if pieces[next_piece].1 >= a {
                active.push(pieces[next_piece]);
            }
            next_piece += 1;
        }
        let open: Vec<_> = active
            .iter()
            .filter(|p| p.2 == PieceKind::Open)
            .copied()
            .collect();
        if open.len() > 1 {
            anomalies.insert(Anomaly::OverlappingGrants { number: a });
        }
        let run = if let Some(sales) = uses.get(&a) {
            debug_assert_eq!(a, b, "a used number is a run of one");
            if sales.len() > 1 {
                duplicates += sales.len() as u64 - 1;
                anomalies.insert(Anomaly::Duplicate {
                    number: a,
                    sales: sales.len(),
                });
            }
            for s in sales {
                let mine: Vec<_> = active.iter().filter(|p| p.3 == s.device).collect();
                if mine.is_empty() {
                    anomalies.insert(Anomaly::OutsideGrant {
                        number: a,
                        device: s.device,
                    });
                } else if mine.iter().all(|p| p.2 == PieceKind::Released) {
                    anomalies.insert(Anomaly::UsedAfterRelease {
                        number: a,
                        device: s.device,
                    });
                }
            }
            let status = if sales.iter().all(|s| s.voided) {
                NumberStatus::Voided
            } else {
                NumberStatus::Used
            };
            Run {
                first: a,
                last: a,
                status,
                device: sales.first().map(|s| s.device),
                grant: None,
                sales: sales.clone(),
            }
        } else {
            let pick = |k: PieceKind| active.iter().filter(|p| p.2 == k).min_by_key(|p| p.4);
            let (status, holder) = if let Some(p) = pick(PieceKind::Open) {
                (NumberStatus::Outstanding, Some(p))
            } else if let Some(p) = pick(PieceKind::WrittenOff) {
                (NumberStatus::WrittenOff, Some(p))
            } else if pick(PieceKind::Released).is_some() {
                (NumberStatus::ReleasedUnused, None)
            } else {
                (NumberStatus::NeverAllocated, None)
            };
            Run {
                first: a,
                last: b,
                status,
                device: holder.map(|p| p.3),
                grant: holder.map(|p| p.4),
                sales: vec![],
            }
        };
        *totals.entry(run.status).or_default() += run.last - run.first + 1;
        match runs.last_mut() {
            Some(prev)
                if run.sales.is_empty()
                    && prev.sales.is_empty()
                    && prev.status == run.status
                    && prev.device == run.device
                    && prev.grant == run.grant
                    && prev.last + 1 == run.first =>
            {
                prev.last = run.last;
            }
            _ => runs.push(run),
        }
    }
    debug_assert_eq!(totals.values().sum::<u64>(), last - first + 1);
    Accounting {
        first,
        last,
        runs,
        totals,
        duplicates,
        anomalies: anomalies.into_iter().collect(),
    }
}

/// Picks up to `count` numbers from `free` runs, lowest first; the answer is
/// one or more disjoint blocks whose sizes add up to at most `count` (less
/// only when the series has fewer free numbers).
pub fn allocate(free: &[(u64, u64)], count: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut left = count;
    for &(a, b) in free {
        if left == 0 {
            break;
        }
        let take = (b - a + 1).min(left);
        out.push((a, a + take - 1));
        left -= take;
    }
    out
}

#[cfg(test)]
mod tests;
