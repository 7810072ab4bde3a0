//! Money and quantities: integers only, checked arithmetic, one rounding rule.
//!
//! # Units
//!
//! - [`Money`] is an `i64` count of minor units (centavos) of the store's currency.
//! - [`QtyMilli`] is an `i64` count of thousandths of the unit sold (grams for items
//!   sold by the kilogram; `1000` is one piece).
//! - [`TaxRateBp`] is a tax rate in basis points (`1800` = 18 %), validated to
//!   `0..=10000`.
//!
//! There are no floats here: not in memory, not on the wire (each type serializes as
//! a plain JSON integer), not in the tests. Products of two `i64` are computed in
//! `i128`, where they cannot overflow, and narrowed back to `i64` with a typed
//! [`MoneyError::Overflow`]. No function in this module wraps or panics on any input.
//!
//! # Rounding — the one rule
//!
//! Every division in Caja's money arithmetic goes through [`div_round_half_away`]:
//! the exact quotient is rounded **to the nearest integer, and an exact half is
//! rounded away from zero**. For positive amounts this is the familiar "half-up"
//! (`2.5 → 3`, `2.4 → 2`); for negative amounts, such as returns, it is its mirror
//! image (`-2.5 → -3`, `-2.4 → -2`). Hence `round(-x) == -round(x)`: a returned
//! line is exactly the negation of the sold line. Rounding happens per line, to the
//! minor unit, never on a sale's sum.
//!
//! # Formulas
//!
//! ```text
//! gross = round(unit_price × qty_milli / 1000)                 line_gross
//! total = gross − discount                                     line_total
//! tax   = total − round(total × 10000 / (10000 + tax_bp))      line_tax
//! sale (or Z report) tax per rate = Σ of its lines' taxes      SaleTotals
//! ```
//!
//! Shelf prices include tax, so `tax` is the part of `total` that is tax:
//! RD$130.00 at 18 % carries RD$19.83 of ITBIS. A sale's tax is never recomputed
//! from its total; it is the sum of its lines' taxes.
//!
//! # Sale-level discounts
//!
//! Discounts belong to lines. A discount given on the whole sale is spread over the
//! lines by [`spread_discount`]: each line but the last gets
//! `round(discount × gross_i / Σ gross)`, and the last line gets the remainder. The
//! shares always sum exactly to the discount and each lies within `0..=gross_i`;
//! the rare inputs where the remainder alone would break that range are described
//! on [`spread_discount`].

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Sum;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Decimal places of a [`Money`] written for people.
const MONEY_DECIMALS: usize = 2;
/// Decimal places of a [`QtyMilli`] written for people.
const QTY_DECIMALS: usize = 3;
/// Basis points in 100 %.
const BP_PER_UNIT: u16 = 10_000;

/// Errors of money arithmetic and of spreading a discount. Each names its cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// A result does not fit in an `i64` amount or quantity.
    #[error("arithmetic overflow: the result does not fit in a 64-bit amount")]
    Overflow,
    /// [`div_round_half_away`] was called with a divisor that is zero or negative.
    #[error("division by the non-positive divisor {den}")]
    NonPositiveDivisor {
        /// The divisor that was given.
        den: i128,
    },
    /// A tax rate outside `0..=10000` basis points.
    #[error("tax rate of {bp} basis points is outside 0..=10000")]
    TaxRateOutOfRange {
        /// The rejected rate, in basis points.
        bp: i64,
    },
    /// [`spread_discount`] was given a negative discount.
    #[error("sale discount {discount} is negative")]
    NegativeDiscount {
        /// The rejected discount.
        discount: Money,
    },
    /// [`spread_discount`] was given a line with a negative gross (a return line).
    #[error("line {line} has a negative gross of {gross}; a sale discount is spread over non-negative lines only")]
    NegativeGross {
        /// Zero-based index of the first offending line.
        line: usize,
        /// Its gross.
        gross: Money,
    },
    /// [`spread_discount`] was given a discount larger than the lines' gross sum.
    #[error("sale discount {discount} is greater than the lines' gross sum of {gross_sum_minor} minor units")]
    DiscountExceedsGross {
        /// The rejected discount.
        discount: Money,
        /// Sum of the lines' gross, in minor units (it may exceed `i64`).
        gross_sum_minor: i128,
    },
    /// [`spread_discount`] was given a nonzero discount and no lines.
    #[error("sale discount {discount} cannot be spread over a sale with no lines")]
    NoLines {
        /// The rejected discount.
        discount: Money,
    },
}

/// Errors of parsing a decimal string typed by a person (CLI input) into an amount.
///
/// Accepted syntax: an optional leading `-`, one or more ASCII digits, and
/// optionally a `.` followed by one or more digits, at most as many as the type
/// allows (2 for [`Money`], 3 for [`QtyMilli`]). No spaces, `+`, or thousands
/// separators; callers trim their input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    /// The input was empty.
    #[error("empty amount")]
    Empty,
    /// The input holds a character that is not a digit, a leading `-` or one `.`.
    #[error("invalid character {found:?} at byte {index} in amount {input:?}")]
    InvalidCharacter {
        /// The whole input.
        input: String,
        /// The offending character.
        found: char,
        /// Its byte offset in `input`.
        index: usize,
    },
    /// The integer part, or the part after the `.`, has no digits (`""`, `"-"`,
    /// `".5"`, `"45."`).
    #[error("amount {input:?} is missing digits (write e.g. 0.50, not .50 or 45.)")]
    MissingDigits {
        /// The whole input.
        input: String,
    },
    /// More decimals than the unit allows (`"1.005"` as money).
    #[error("amount {input:?} has {found} decimals; at most {max} are allowed")]
    TooManyDecimals {
        /// The whole input.
        input: String,
        /// Decimals found.
        found: usize,
        /// Decimals allowed.
        max: usize,
    },
    /// The value does not fit in an `i64` count of minor units.
    #[error("amount {input:?} is out of range")]
    OutOfRange {
        /// The whole input.
        input: String,
    },
}

/// An amount of money: an `i64` count of minor units (centavos).
///
/// Serializes as a plain JSON integer of minor units. Displays as a decimal with two
/// places (`130.00`, `-5.00`, `0.05`) and parses from one ([`FromStr`]).
/// There are no arithmetic operators: use the `checked_*` methods, which return
/// [`MoneyError::Overflow`] instead of wrapping.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// An amount of `minor` minor units (centavos).
    pub const fn from_minor(minor: i64) -> Money {
        Money(minor)
    }

    /// The amount in minor units (centavos).
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// Whether the amount is below zero (a refund, a return).
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// `self + rhs`, or [`MoneyError::Overflow`].
    pub fn checked_add(self, rhs: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_add(rhs.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    /// `self − rhs`, or [`MoneyError::Overflow`].
    pub fn checked_sub(self, rhs: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_sub(rhs.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    /// `−self`, or [`MoneyError::Overflow`] for `i64::MIN`.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.0.checked_neg().map(Money).ok_or(MoneyError::Overflow)
    }

    /// The sum of `amounts`, or [`MoneyError::Overflow`] as soon as a partial sum
    /// leaves the `i64` range. The same as
    /// `amounts.into_iter().sum::<Result<Money, MoneyError>>()`.
    pub fn sum<I: IntoIterator<Item = Money>>(amounts: I) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }
}

impl Sum<Money> for Result<Money, MoneyError> {
    /// Checked sum: `Err(Overflow)` instead of wrapping. See [`Money::sum`].
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Self {
        Money::sum(iter)
    }
}

impl<'a> Sum<&'a Money> for Result<Money, MoneyError> {
    /// Checked sum: `Err(Overflow)` instead of wrapping. See [`Money::sum`].
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Self {
        Money::sum(iter.copied())
    }
}

impl fmt::Display for Money {
    /// Two decimals, minor units after the point: `130.00`, `-5.00`, `0.05`.
    /// Honours width, fill, alignment and `+` (e.g. `{:>10}` for receipt columns).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_fixed(f, self.0, MONEY_DECIMALS)
    }
}

impl FromStr for Money {
    type Err = ParseAmountError;

    /// Parses `"45"`, `"45.5"`, `"45.00"`, `"-5.00"` (at most two decimals) into
    /// minor units. See [`ParseAmountError`] for the accepted syntax.
    fn from_str(s: &str) -> Result<Money, ParseAmountError> {
        parse_fixed(s, MONEY_DECIMALS).map(Money)
    }
}

/// A quantity: an `i64` count of thousandths of the unit sold (`1000` = one piece or
/// one kilogram; for items sold by weight this is grams).
///
/// Serializes as a plain JSON integer. Displays with three decimals (`1.250`) and
/// parses from such a string ([`FromStr`]). Negative quantities are returns.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct QtyMilli(pub i64);

impl QtyMilli {
    /// Zero.
    pub const ZERO: QtyMilli = QtyMilli(0);
    /// Thousandths per unit: the `1000` of `unit_price × qty_milli / 1000`.
    pub const PER_UNIT: i64 = 1000;
    /// One whole unit (one piece, one kilogram).
    pub const ONE: QtyMilli = QtyMilli(QtyMilli::PER_UNIT);

    /// A quantity of `milli` thousandths of the unit.
    pub const fn from_milli(milli: i64) -> QtyMilli {
        QtyMilli(milli)
    }

    /// The quantity in thousandths of the unit.
    pub const fn milli(self) -> i64 {
        self.0
    }

    /// `self + rhs`, or [`MoneyError::Overflow`].
    pub fn checked_add(self, rhs: QtyMilli) -> Result<QtyMilli, MoneyError> {
        self.0
            .checked_add(rhs.0)
            .map(QtyMilli)
            .ok_or(MoneyError::Overflow)
    }

    /// `self − rhs`, or [`MoneyError::Overflow`].
    pub fn checked_sub(self, rhs: QtyMilli) -> Result<QtyMilli, MoneyError> {
        self.0
            .checked_sub(rhs.0)
            .map(QtyMilli)
            .ok_or(MoneyError::Overflow)
    }

    /// `−self` (a sale quantity turned into a return), or [`MoneyError::Overflow`].
    pub fn checked_neg(self) -> Result<QtyMilli, MoneyError> {
        self.0
            .checked_neg()
            .map(QtyMilli)
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for QtyMilli {
    /// Three decimals: `1.250`, `-0.500`, `2.000`. Honours width and alignment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_fixed(f, self.0, QTY_DECIMALS)
    }
}

impl FromStr for QtyMilli {
    type Err = ParseAmountError;

    /// Parses `"2"`, `"1.25"`, `"1.250"`, `"-1.000"` (at most three decimals) into
    /// thousandths. See [`ParseAmountError`] for the accepted syntax.
    fn from_str(s: &str) -> Result<QtyMilli, ParseAmountError> {
        parse_fixed(s, QTY_DECIMALS).map(QtyMilli)
    }
}

/// A tax rate in basis points (`1800` = 18 %), always within `0..=10000`.
///
/// The constructor validates; serializes as a plain JSON integer and deserializing
/// validates too. Ordered, so it can key a [`BTreeMap`] of tax per rate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct TaxRateBp(u16);

impl TaxRateBp {
    /// 0 % (exempt).
    pub const ZERO: TaxRateBp = TaxRateBp(0);
    /// The largest valid rate, 10000 bp = 100 %.
    pub const MAX_BP: u16 = BP_PER_UNIT;

    /// A rate of `bp` basis points, or [`MoneyError::TaxRateOutOfRange`] above 10000.
    pub const fn new(bp: u16) -> Result<TaxRateBp, MoneyError> {
        if bp <= Self::MAX_BP {
            Ok(TaxRateBp(bp))
        } else {
            // Widening u16 → i64; `From` is not callable in a const fn.
            Err(MoneyError::TaxRateOutOfRange { bp: bp as i64 })
        }
    }

    /// The rate in basis points, within `0..=10000`.
    pub const fn bp(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for TaxRateBp {
    type Error = MoneyError;

    /// A rate from an integer of basis points (JSON, SQLite), validated to `0..=10000`.
    fn try_from(bp: i64) -> Result<TaxRateBp, MoneyError> {
        u16::try_from(bp)
            .map_err(|_| MoneyError::TaxRateOutOfRange { bp })
            .and_then(TaxRateBp::new)
    }
}

impl From<TaxRateBp> for i64 {
    /// The rate in basis points.
    fn from(rate: TaxRateBp) -> i64 {
        i64::from(rate.0)
    }
}

impl fmt::Display for TaxRateBp {
    /// As a percentage with no trailing zeros: `18%`, `16.5%`, `0.01%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        if hundredths == 0 {
            write!(f, "{whole}%")
        } else if hundredths % 10 == 0 {
            write!(f, "{whole}.{}%", hundredths / 10)
        } else {
            write!(f, "{whole}.{hundredths:02}%")
        }
    }
}

/// `num / den` rounded to the nearest integer, halves away from zero — **the**
/// rounding rule of Caja's money arithmetic (see the [module docs](self)).
///
/// `den` must be positive ([`MoneyError::NonPositiveDivisor`] otherwise); a
/// quotient outside `i64` is [`MoneyError::Overflow`]. Symmetric:
/// `div_round_half_away(-n, d) == -div_round_half_away(n, d)`.
///
/// ```
/// use caja_shared::money::div_round_half_away;
/// assert_eq!(div_round_half_away(5, 2), Ok(3));
/// assert_eq!(div_round_half_away(-5, 2), Ok(-3));
/// assert_eq!(div_round_half_away(7, 3), Ok(2));
/// assert_eq!(div_round_half_away(-8, 3), Ok(-3));
/// ```
pub fn div_round_half_away(num: i128, den: i128) -> Result<i64, MoneyError> {
    if den <= 0 {
        return Err(MoneyError::NonPositiveDivisor { den });
    }
    // With den > 0 neither `/` nor `%` can overflow; `/` truncates toward zero and
    // the remainder carries the sign of `num`.
    let quotient = num / den;
    let remainder = num % den;
    let rem_abs = remainder.unsigned_abs();
    // |remainder| ≥ den/2 ⇔ 2·|remainder| ≥ den, written without the doubling.
    let rounded = if rem_abs != 0 && rem_abs >= den.unsigned_abs() - rem_abs {
        if num < 0 {
            quotient.checked_sub(1)
        } else {
            quotient.checked_add(1)
        }
        .ok_or(MoneyError::Overflow)?
    } else {
        quotient
    };
    i64::try_from(rounded).map_err(|_| MoneyError::Overflow)
}

/// A line's gross: `round(unit_price × qty_milli / 1000)`.
///
/// ```
/// use caja_shared::money::{line_gross, Money, QtyMilli};
/// // 0.455 kg at RD$380.00/kg
/// assert_eq!(line_gross(Money(38000), QtyMilli(455)), Ok(Money(17290)));
/// ```
pub fn line_gross(unit_price: Money, qty: QtyMilli) -> Result<Money, MoneyError> {
    // |i64 × i64| ≤ 2^126: cannot overflow i128; checked anyway.
    let product = i128::from(unit_price.0)
        .checked_mul(i128::from(qty.0))
        .ok_or(MoneyError::Overflow)?;
    div_round_half_away(product, i128::from(QtyMilli::PER_UNIT)).map(Money)
}

/// A line's total: its gross ([`line_gross`]) minus its discount.
///
/// The discount is not validated against the gross here (a return line carries a
/// negative discount); that is the sale validator's business.
pub fn line_total(unit_price: Money, qty: QtyMilli, discount: Money) -> Result<Money, MoneyError> {
    line_gross(unit_price, qty)?.checked_sub(discount)
}

/// The tax included in a tax-inclusive line total:
/// `total − round(total × 10000 / (10000 + tax_bp))`.
///
/// For a non-negative total the tax is within `0..=total`, and it differs from the
/// exact `total × tax_bp / (10000 + tax_bp)` by at most half a minor unit. Negative
/// totals give the negation of the positive case.
///
/// ```
/// use caja_shared::money::{line_tax, Money, TaxRateBp};
/// let itbis = TaxRateBp::new(1800).unwrap();
/// assert_eq!(line_tax(Money(13000), itbis), Ok(Money(1983)));
/// ```
pub fn line_tax(total: Money, rate: TaxRateBp) -> Result<Money, MoneyError> {
    let bp_per_unit = i128::from(BP_PER_UNIT);
    let num = i128::from(total.0)
        .checked_mul(bp_per_unit)
        .ok_or(MoneyError::Overflow)?;
    let net = div_round_half_away(num, bp_per_unit + i128::from(rate.0))?;
    total.checked_sub(Money(net))
}

/// The amounts of one sale line, computed by [`LineAmounts::compute`].
///
/// Invariants: `total = gross − discount`; `tax = line_tax(total, rate)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LineAmounts {
    /// `round(unit_price × qty_milli / 1000)`.
    pub gross: Money,
    /// The line's discount (its own plus its share of any sale-level discount).
    pub discount: Money,
    /// `gross − discount`, tax included.
    pub total: Money,
    /// The tax included in `total`.
    pub tax: Money,
}

impl LineAmounts {
    /// Computes a line from its unit price (tax included), quantity, discount and
    /// tax rate.
    ///
    /// ```
    /// use caja_shared::money::{LineAmounts, Money, QtyMilli, TaxRateBp};
    /// let line = LineAmounts::compute(Money(6500), QtyMilli(2000), Money(0), TaxRateBp::new(1800)?)?;
    /// assert_eq!((line.total, line.tax), (Money(13000), Money(1983)));
    /// # Ok::<(), caja_shared::money::MoneyError>(())
    /// ```
    pub fn compute(
        unit_price: Money,
        qty: QtyMilli,
        discount: Money,
        rate: TaxRateBp,
    ) -> Result<LineAmounts, MoneyError> {
        let gross = line_gross(unit_price, qty)?;
        let total = gross.checked_sub(discount)?;
        let tax = line_tax(total, rate)?;
        Ok(LineAmounts {
            gross,
            discount,
            total,
            tax,
        })
    }

    /// `total − tax`: the line's amount before tax.
    pub fn net(&self) -> Result<Money, MoneyError> {
        self.total.checked_sub(self.tax)
    }
}

/// A sale's totals, each the sum of its lines' amounts — never recomputed from the
/// sale's total (in particular the tax: Σ of rounded line taxes, not the tax of the
/// sum).
///
/// Invariants: `total = gross − discount`; the values of `tax_by_rate` sum to `tax`
/// and those of `total_by_rate` to `total`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaleTotals {
    /// Σ of the lines' gross.
    pub gross: Money,
    /// Σ of the lines' discounts.
    pub discount: Money,
    /// Σ of the lines' totals: what the customer pays (tax included).
    pub total: Money,
    /// Σ of the lines' taxes.
    pub tax: Money,
    /// For each rate present in the sale, Σ of the taxes of its lines at that rate.
    pub tax_by_rate: BTreeMap<TaxRateBp, Money>,
    /// For each rate present in the sale, Σ of the totals of its lines at that rate
    /// (the tax-inclusive base reported per rate).
    pub total_by_rate: BTreeMap<TaxRateBp, Money>,
}

impl SaleTotals {
    /// Sums the lines, each given with its tax rate. Every rate that occurs gets an
    /// entry in the per-rate maps, even when its tax is zero (exempt sales).
    /// [`MoneyError::Overflow`] if any sum leaves `i64`.
    pub fn from_lines<I>(lines: I) -> Result<SaleTotals, MoneyError>
    where
        I: IntoIterator<Item = (TaxRateBp, LineAmounts)>,
    {
        let mut totals = SaleTotals::default();
        for (rate, line) in lines {
            totals.gross = totals.gross.checked_add(line.gross)?;
            totals.discount = totals.discount.checked_add(line.discount)?;
            totals.total = totals.total.checked_add(line.total)?;
            totals.tax = totals.tax.checked_add(line.tax)?;
            let rate_tax = totals.tax_by_rate.entry(rate).or_default();
            *rate_tax = rate_tax.checked_add(line.tax)?;
            let rate_total = totals.total_by_rate.entry(rate).or_default();
            *rate_total = rate_total.checked_add(line.total)?;
        }
        Ok(totals)
    }
}

/// Spreads a sale-level `discount` over lines in proportion to their `gross`.
///
/// **Rule.** With `G = Σ gross`, every line but the last gets
/// `round(discount × gross_i / G)` ([`div_round_half_away`]), and the last line
/// gets the remainder, `discount − Σ those shares`. With no discount every share is
/// zero.
///
/// **Guarantees.** The shares sum exactly to `discount`, and each share lies within
/// `0..=gross_i`. Shares other than the last always satisfy this (because
/// `discount ≤ G`); only the remainder can fall outside `0..=gross_last`, when
/// many small shares were all rounded the same way. Then, and only then, the
/// result is corrected:
///
/// - remainder `< 0` (too many shares rounded up, e.g. 2 over `[1, 1, 1, 1]`):
///   the last share becomes 0 and the `−remainder` missing centavos are taken back,
///   one each, from lines whose share was rounded **up**;
/// - remainder `> gross_last` (too many rounded down, e.g. 2 over
///   `[1, 1, 1, 1, 1]`): the last share becomes `gross_last` and the excess
///   centavos are given, one each, to lines whose share was rounded **down**.
///
/// Lines are picked by the size of their rounding error, largest first (the lines
/// whose exact share was nearest the other integer), ties going to the later line.
/// There are always enough such lines: the rounding errors of the offending lines
/// add up to at least the number of centavos to move, and each is at most half a
/// centavo, so there are at least twice as many such lines as centavos. A moved
/// share lands on the other integer next to its exact value, so it stays within
/// `0..=gross_i`. Inputs whose plain-rule result already satisfies the guarantees
/// are never changed.
///
/// **Errors**, checked in this order: [`MoneyError::NegativeDiscount`],
/// [`MoneyError::NegativeGross`] (first offending line), [`MoneyError::NoLines`]
/// (a nonzero discount and no lines; no lines and no discount give an empty
/// vector), [`MoneyError::DiscountExceedsGross`].
///
/// ```
/// use caja_shared::money::{spread_discount, Money};
/// let shares = spread_discount(Money(1000), &[Money(13000), Money(17290), Money(1499)])?;
/// assert_eq!(shares, [Money(409), Money(544), Money(47)]);
/// assert_eq!(spread_discount(Money(2), &[Money(1); 4])?, [Money(1), Money(1), Money(0), Money(0)]);
/// # Ok::<(), caja_shared::money::MoneyError>(())
/// ```
pub fn spread_discount(discount: Money, gross: &[Money]) -> Result<Vec<Money>, MoneyError> {
    if discount.is_negative() {
        return Err(MoneyError::NegativeDiscount { discount });
    }
    if let Some((line, &g)) = gross.iter().enumerate().find(|(_, g)| g.is_negative()) {
        return Err(MoneyError::NegativeGross { line, gross: g });
    }
    let Some((&last_gross, head)) = gross.split_last() else {
        return if discount == Money::ZERO {
            Ok(Vec::new())
        } else {
            Err(MoneyError::NoLines { discount })
        };
    };
    // Each gross < 2^63 and a slice holds < 2^61 of them: the sum stays < 2^124.
    let gross_sum = gross.iter().try_fold(0_i128, |acc, g| {
        acc.checked_add(i128::from(g.0)).ok_or(MoneyError::Overflow)
    })?;
    let d = i128::from(discount.0);
    if d > gross_sum {
        return Err(MoneyError::DiscountExceedsGross {
            discount,
            gross_sum_minor: gross_sum,
        });
    }
    if d == 0 {
        return Ok(vec![Money::ZERO; gross.len()]);
    }
    // From here 0 < d ≤ gross_sum, so gross_sum > 0.

    // Plain rule. Every product below is < 2^126; every share is ≤ its gross.
    let mut shares: Vec<i64> = Vec::with_capacity(gross.len());
    for g in head {
        let exact_num = d.checked_mul(i128::from(g.0)).ok_or(MoneyError::Overflow)?;
        shares.push(div_round_half_away(exact_num, gross_sum)?);
    }
    let assigned = shares
        .iter()
        .try_fold(0_i128, |acc, s| acc.checked_add(i128::from(*s)))
        .ok_or(MoneyError::Overflow)?;
    let remainder = d - assigned;
    let last_cap = i128::from(last_gross.0);

    // Pathological cases only: move whole centavos between the last line and the
    // lines whose rounding went the offending way (see the doc comment).
    if remainder < 0 {
        // Rounded up: error_i = share_i·G − d·gross_i > 0 (in 1/G centavos).
        move_centavos(&mut shares, head, d, gross_sum, -remainder, -1);
    } else if remainder > last_cap {
        // Rounded down: error_i = d·gross_i − share_i·G > 0.
        move_centavos(&mut shares, head, d, gross_sum, remainder - last_cap, 1);
    }

    let assigned = shares
        .iter()
        .try_fold(0_i128, |acc, s| acc.checked_add(i128::from(*s)))
        .ok_or(MoneyError::Overflow)?;
    let last = i64::try_from(d - assigned).map_err(|_| MoneyError::Overflow)?;
    shares.push(last);
    debug_assert!(
        shares.iter().zip(gross).all(|(s, g)| (0..=g.0).contains(s)),
        "spread_discount postcondition: every share within 0..=gross"
    );
    Ok(shares.into_iter().map(Money).collect())
}

/// Moves `count` centavos, one per line, into (`step = 1`) or out of
/// (`step = -1`) the shares of `head` whose rounding error points the other way:
/// lines rounded down receive, lines rounded up give back. Lines with the largest
/// error go first; ties go to the later line.
fn move_centavos(
    shares: &mut [i64],
    head: &[Money],
    d: i128,
    gross_sum: i128,
    count: i128,
    step: i64,
) {
    let mut candidates: Vec<(i128, usize)> = shares
        .iter()
        .zip(head)
        .enumerate()
        .filter_map(|(i, (share, g))| {
            // share·G ≤ d·gross + G/2 < 2^127: no overflow (checked anyway).
            let scaled_share = i128::from(*share).checked_mul(gross_sum)?;
            let exact = d.checked_mul(i128::from(g.0))?;
            // error > 0 means the share sits on the side `step` moves away from.
            let error = if step < 0 {
                scaled_share.checked_sub(exact)?
            } else {
                exact.checked_sub(scaled_share)?
            };
            (error > 0).then_some((error, i))
        })
        .collect();
    candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    for &(_, i) in candidates.iter().take(count) {
        if let Some(share) = shares.get_mut(i) {
            *share = share.saturating_add(step);
        }
    }
}

/// Writes `value / 10^decimals` with exactly `decimals` places, through
/// [`fmt::Formatter::pad_integral`] so that width, fill and alignment apply.
fn fmt_fixed(f: &mut fmt::Formatter<'_>, value: i64, decimals: usize) -> fmt::Result {
    let magnitude = value.unsigned_abs();
    let scale = 10_u64.pow(u32::try_from(decimals).unwrap_or(0));
    let digits = format!(
        "{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = decimals
    );
    f.pad_integral(value >= 0, "", &digits)
}

/// Parses `[-]digits[.digits]` with at most `max_decimals` decimals into an integer
/// count of `10^-max_decimals` units. See [`ParseAmountError`].
fn parse_fixed(input: &str, max_decimals: usize) -> Result<i64, ParseAmountError> {
    if input.is_empty() {
        return Err(ParseAmountError::Empty);
    }
    let (negative, body) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let offset = input.len() - body.len();
    let mut seen_point = false;
    for (i, c) in body.char_indices() {
        match c {
            '0'..='9' => {}
            '.' if !seen_point => seen_point = true,
            _ => {
                return Err(ParseAmountError::InvalidCharacter {
                    input: input.to_owned(),
                    found: c,
                    index: offset + i,
                })
            }
        }
    }
    let (int_digits, frac_digits) = body.split_once('.').unwrap_or((body, ""));
    if int_digits.is_empty() || (seen_point && frac_digits.is_empty()) {
        return Err(ParseAmountError::MissingDigits {
            input: input.to_owned(),
        });
    }
    if frac_digits.len() > max_decimals {
        return Err(ParseAmountError::TooManyDecimals {
            input: input.to_owned(),
            found: frac_digits.len(),
            max: max_decimals,
        });
    }
    let out_of_range = || ParseAmountError::OutOfRange {
        input: input.to_owned(),
    };
    // Magnitude in units of 10^-max_decimals; i64::MIN's magnitude is 2^63.
    let limit = u128::from(i64::MIN.unsigned_abs());
    let padding = max_decimals - frac_digits.len();
    let mut magnitude: u128 = 0;
    let digits = int_digits
        .bytes()
        .chain(frac_digits.bytes())
        .chain(std::iter::repeat_n(b'0', padding));
    for b in digits {
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
            .filter(|m| *m <= limit)
            .ok_or_else(out_of_range)?;
    }
    let signed = i128::try_from(magnitude).map_err(|_| out_of_range())?;
    let signed = if negative { -signed } else { signed };
    i64::try_from(signed).map_err(|_| out_of_range())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
