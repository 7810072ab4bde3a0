//! Tests of `money`: rounding, line totals and tax, checked arithmetic, tax
//! rates and serde, display and parsing, spreading a sale discount, and
//! property tests over their invariants. Test code only (compiled under
//! `cfg(test)`); it reads the module's private items through `super::*`.

use super::*;
use proptest::prelude::*;

fn rate(bp: u16) -> TaxRateBp {
    TaxRateBp::new(bp).unwrap()
}

fn money(v: &[i64]) -> Vec<Money> {
    v.iter().copied().map(Money).collect()
}

// ---- rounding -------------------------------------------------------------

#[test]
fn rounding_table() {
    // (num, den, expected)
    let cases: &[(i128, i128, i64)] = &[
        (0, 7, 0),
        (5, 2, 3),
        (-5, 2, -3),
        (4, 2, 2),
        (7, 3, 2),
        (8, 3, 3),
        (-7, 3, -2),
        (-8, 3, -3),
        (1, 3, 0),
        (-1, 3, 0),
        (1, 2, 1),
        (-1, 2, -1),
        (499_500, 1000, 500),
        (-499_500, 1000, -500),
        (499_499, 1000, 499),
        (i128::from(i64::MAX), 1, i64::MAX),
        (i128::from(i64::MIN), 1, i64::MIN),
    ];
    for &(num, den, expected) in cases {
        assert_eq!(
            div_round_half_away(num, den),
            Ok(expected),
            "round({num}/{den})"
        );
    }
}

#[test]
fn rounding_rejects_bad_divisor_and_overflow() {
    assert_eq!(
        div_round_half_away(1, 0),
        Err(MoneyError::NonPositiveDivisor { den: 0 })
    );
    assert_eq!(
        div_round_half_away(1, -3),
        Err(MoneyError::NonPositiveDivisor { den: -3 })
    );
    assert_eq!(
        div_round_half_away(i128::from(i64::MAX) + 1, 1),
        Err(MoneyError::Overflow)
    );
    assert_eq!(
        div_round_half_away(i128::from(i64::MIN) - 1, 1),
        Err(MoneyError::Overflow)
    );
    assert_eq!(div_round_half_away(i128::MAX, 1), Err(MoneyError::Overflow));
    assert_eq!(div_round_half_away(i128::MIN, 1), Err(MoneyError::Overflow));
    assert_eq!(div_round_half_away(i128::MIN, i128::MAX), Ok(-1));
    assert_eq!(div_round_half_away(i128::MAX, i128::MAX), Ok(1));
    // Rounds up past i64::MAX: 2·i64::MAX + 1 over 2 is i64::MAX + 0.5.
    let twice_max_plus_one = 2 * i128::from(i64::MAX) + 1;
    assert_eq!(
        div_round_half_away(twice_max_plus_one, 2),
        Err(MoneyError::Overflow)
    );
    // ... and i64::MIN − 0.5 rounds away to i64::MIN − 1.
    assert_eq!(
        div_round_half_away(2 * i128::from(i64::MIN) - 1, 2),
        Err(MoneyError::Overflow)
    );
}

// ---- lines ----------------------------------------------------------------

#[test]
fn design_example_130_pesos_at_18_percent() {
    assert_eq!(line_tax(Money(13000), rate(1800)), Ok(Money(1983)));
}

#[test]
fn line_tax_edges() {
    assert_eq!(line_tax(Money(0), rate(1800)), Ok(Money(0)));
    assert_eq!(line_tax(Money(12345), TaxRateBp::ZERO), Ok(Money(0)));
    // 100 %: half of a tax-inclusive total is tax.
    assert_eq!(line_tax(Money(200), rate(10_000)), Ok(Money(100)));
    assert_eq!(line_tax(Money(1), rate(10_000)), Ok(Money(0)));
    assert_eq!(line_tax(Money(-1), rate(10_000)), Ok(Money(0)));
    assert_eq!(
        line_tax(Money(i64::MAX), rate(1800)).map(|t| t > Money(0)),
        Ok(true)
    );
    assert_eq!(
        line_tax(Money(i64::MIN), rate(1800)).map(|t| t < Money(0)),
        Ok(true)
    );
}

#[test]
fn line_amounts_and_returns_mirror_sales() {
    let sale = LineAmounts::compute(Money(333), QtyMilli(1500), Money(0), rate(1600)).unwrap();
    let ret = LineAmounts::compute(Money(333), QtyMilli(-1500), Money(0), rate(1600)).unwrap();
    assert_eq!(
        sale,
        LineAmounts {
            gross: Money(500),
            discount: Money(0),
            total: Money(500),
            tax: Money(69)
        }
    );
    assert_eq!(ret.total, Money(-500));
    assert_eq!(ret.tax, Money(-69));
    assert_eq!(sale.net(), Ok(Money(431)));
    let discounted =
        LineAmounts::compute(Money(6500), QtyMilli(2000), Money(409), rate(1800)).unwrap();
    assert_eq!(discounted.total, Money(12591));
    assert_eq!(
        line_total(Money(6500), QtyMilli(2000), Money(409)),
        Ok(Money(12591))
    );
}

#[test]
fn line_overflow_is_an_error() {
    assert_eq!(
        line_gross(Money(i64::MAX), QtyMilli(i64::MAX)),
        Err(MoneyError::Overflow)
    );
    assert_eq!(
        line_gross(Money(i64::MIN), QtyMilli(i64::MIN)),
        Err(MoneyError::Overflow)
    );
    assert_eq!(
        line_gross(Money(i64::MAX), QtyMilli(1000)),
        Ok(Money(i64::MAX))
    );
    assert_eq!(
        line_total(Money(i64::MIN), QtyMilli(1000), Money(1)),
        Err(MoneyError::Overflow)
    );
    assert_eq!(
        LineAmounts::compute(Money(i64::MAX), QtyMilli(2000), Money(0), rate(0)),
        Err(MoneyError::Overflow)
    );
}

// ---- checked arithmetic ----------------------------------------------------

#[test]
fn checked_money_arithmetic() {
    assert_eq!(Money(1).checked_add(Money(2)), Ok(Money(3)));
    assert_eq!(
        Money(i64::MAX).checked_add(Money(1)),
        Err(MoneyError::Overflow)
    );
    assert_eq!(
        Money(i64::MIN).checked_sub(Money(1)),
        Err(MoneyError::Overflow)
    );
    assert_eq!(Money(i64::MIN).checked_neg(), Err(MoneyError::Overflow));
    assert_eq!(Money(5).checked_neg(), Ok(Money(-5)));
    assert_eq!(Money::sum(money(&[1, 2, 3])), Ok(Money(6)));
    assert_eq!(Money::sum(Vec::new()), Ok(Money::ZERO));
    assert_eq!(
        Money::sum(money(&[i64::MAX, 1, -5])),
        Err(MoneyError::Overflow)
    );
    let v = money(&[100, -30]);
    assert_eq!(v.iter().sum::<Result<Money, MoneyError>>(), Ok(Money(70)));
    assert_eq!(
        v.into_iter().sum::<Result<Money, MoneyError>>(),
        Ok(Money(70))
    );
    assert_eq!(
        QtyMilli(i64::MAX).checked_add(QtyMilli(1)),
        Err(MoneyError::Overflow)
    );
    assert_eq!(QtyMilli(1).checked_sub(QtyMilli(3)), Ok(QtyMilli(-2)));
    assert_eq!(QtyMilli(i64::MIN).checked_neg(), Err(MoneyError::Overflow));
    assert_eq!(QtyMilli::ONE, QtyMilli(1000));
}

// ---- tax rates and serde ---------------------------------------------------

#[test]
fn tax_rate_validation() {
    assert_eq!(TaxRateBp::new(10_000).map(TaxRateBp::bp), Ok(10_000));
    assert_eq!(
        TaxRateBp::new(10_001),
        Err(MoneyError::TaxRateOutOfRange { bp: 10_001 })
    );
    assert_eq!(
        TaxRateBp::try_from(-1),
        Err(MoneyError::TaxRateOutOfRange { bp: -1 })
    );
    assert_eq!(
        TaxRateBp::try_from(70_000),
        Err(MoneyError::TaxRateOutOfRange { bp: 70_000 })
    );
    assert_eq!(TaxRateBp::try_from(1800), Ok(rate(1800)));
    assert_eq!(i64::from(rate(1600)), 1600);
    let shown: Vec<String> = [1800, 1650, 1, 0, 10_000, 1605]
        .iter()
        .map(|bp| rate(*bp).to_string())
        .collect();
    assert_eq!(shown, ["18%", "16.5%", "0.01%", "0%", "100%", "16.05%"]);
}

#[test]
fn serde_is_plain_integers() {
    assert_eq!(serde_json::to_string(&Money(-13000)).unwrap(), "-13000");
    assert_eq!(serde_json::to_string(&QtyMilli(1250)).unwrap(), "1250");
    assert_eq!(serde_json::to_string(&rate(1800)).unwrap(), "1800");
    assert_eq!(
        serde_json::from_str::<Money>("13000").unwrap(),
        Money(13000)
    );
    assert_eq!(
        serde_json::from_str::<QtyMilli>("-455").unwrap(),
        QtyMilli(-455)
    );
    assert_eq!(
        serde_json::from_str::<TaxRateBp>("1600").unwrap(),
        rate(1600)
    );
    assert!(serde_json::from_str::<TaxRateBp>("10001").is_err());
    assert!(serde_json::from_str::<TaxRateBp>("-1").is_err());
    assert!(serde_json::from_str::<Money>("130.00").is_err());
    assert!(serde_json::from_str::<Money>("\"130\"").is_err());
    assert!(serde_json::from_str::<QtyMilli>("1.5").is_err());
    // Rates key JSON objects too (serde_json writes integer keys as strings).
    let map = BTreeMap::from([(rate(1800), Money(1983)), (rate(0), Money(0))]);
    let json = serde_json::to_string(&map).unwrap();
    assert_eq!(json, r#"{"0":0,"1800":1983}"#);
    assert_eq!(
        serde_json::from_str::<BTreeMap<TaxRateBp, Money>>(&json).unwrap(),
        map
    );
}

// ---- display and parse -----------------------------------------------------

#[test]
fn money_display() {
    let cases: &[(i64, &str)] = &[
        (13000, "130.00"),
        (-500, "-5.00"),
        (5, "0.05"),
        (-5, "-0.05"),
        (0, "0.00"),
        (1983, "19.83"),
        (i64::MAX, "92233720368547758.07"),
        (i64::MIN, "-92233720368547758.08"),
    ];
    for &(minor, text) in cases {
        assert_eq!(Money(minor).to_string(), text, "Money({minor})");
    }
    assert_eq!(format!("{:>8}|", Money(13000)), "  130.00|");
    assert_eq!(format!("{:>8}|", Money(-500)), "   -5.00|");
    assert_eq!(format!("{:<7}|", Money(5)), "0.05   |");
    assert_eq!(format!("{:+}", Money(5)), "+0.05");
}

#[test]
fn qty_display() {
    let cases: &[(i64, &str)] = &[
        (1250, "1.250"),
        (455, "0.455"),
        (-1500, "-1.500"),
        (1, "0.001"),
        (2000, "2.000"),
        (0, "0.000"),
        (i64::MIN, "-9223372036854775.808"),
    ];
    for &(milli, text) in cases {
        assert_eq!(QtyMilli(milli).to_string(), text, "QtyMilli({milli})");
    }
}

#[test]
fn parse_accepts() {
    let money_cases: &[(&str, i64)] = &[
        ("45.00", 4500),
        ("45", 4500),
        ("45.5", 4550),
        ("0.05", 5),
        ("-5.00", -500),
        ("-0.00", 0),
        ("007.10", 710),
        ("92233720368547758.07", i64::MAX),
        ("-92233720368547758.08", i64::MIN),
    ];
    for &(text, minor) in money_cases {
        assert_eq!(text.parse::<Money>(), Ok(Money(minor)), "{text:?}");
    }
    let qty_cases: &[(&str, i64)] = &[
        ("1.250", 1250),
        ("1.25", 1250),
        ("2", 2000),
        ("0.001", 1),
        ("-1.5", -1500),
        ("-9223372036854775.808", i64::MIN),
    ];
    for &(text, milli) in qty_cases {
        assert_eq!(text.parse::<QtyMilli>(), Ok(QtyMilli(milli)), "{text:?}");
    }
}

#[test]
fn parse_rejects() {
    use ParseAmountError as E;
    let s = |x: &str| x.to_owned();
    let cases: Vec<(&str, E)> = vec![
        ("", E::Empty),
        ("-", E::MissingDigits { input: s("-") }),
        (".50", E::MissingDigits { input: s(".50") }),
        ("45.", E::MissingDigits { input: s("45.") }),
        ("-.5", E::MissingDigits { input: s("-.5") }),
        (
            "1.005",
            E::TooManyDecimals {
                input: s("1.005"),
                found: 3,
                max: 2,
            },
        ),
        (
            "abc",
            E::InvalidCharacter {
                input: s("abc"),
                found: 'a',
                index: 0,
            },
        ),
        (
            " 45.00",
            E::InvalidCharacter {
                input: s(" 45.00"),
                found: ' ',
                index: 0,
            },
        ),
        (
            "+45",
            E::InvalidCharacter {
                input: s("+45"),
                found: '+',
                index: 0,
            },
        ),
        (
            "1,000.00",
            E::InvalidCharacter {
                input: s("1,000.00"),
                found: ',',
                index: 1,
            },
        ),
        (
            "1.2.3",
            E::InvalidCharacter {
                input: s("1.2.3"),
                found: '.',
                index: 3,
            },
        ),
        (
            "--5",
            E::InvalidCharacter {
                input: s("--5"),
                found: '-',
                index: 1,
            },
        ),
        (
            "5e3",
            E::InvalidCharacter {
                input: s("5e3"),
                found: 'e',
                index: 1,
            },
        ),
        (
            "4５",
            E::InvalidCharacter {
                input: s("4５"),
                found: '５',
                index: 1,
            },
        ),
        (
            "92233720368547758.08",
            E::OutOfRange {
                input: s("92233720368547758.08"),
            },
        ),
        (
            "-92233720368547758.09",
            E::OutOfRange {
                input: s("-92233720368547758.09"),
            },
        ),
        (
            "99999999999999999999999999999999999999999999999999",
            E::OutOfRange {
                input: s("99999999999999999999999999999999999999999999999999"),
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<Money>(), Err(expected), "{text:?}");
    }
    assert_eq!(
        "1.2345".parse::<QtyMilli>(),
        Err(E::TooManyDecimals {
            input: s("1.2345"),
            found: 4,
            max: 3
        })
    );
    // Messages name the input.
    let msg = "1.005".parse::<Money>().unwrap_err().to_string();
    assert!(
        msg.contains("\"1.005\"") && msg.contains("at most 2"),
        "{msg}"
    );
}

// ---- spreading a sale discount ---------------------------------------------

#[test]
fn spread_table() {
    // (discount, gross, shares)
    let cases: &[(i64, &[i64], &[i64])] = &[
        (1000, &[13000, 17290, 1499], &[409, 544, 47]),
        (1, &[100, 100, 100], &[0, 0, 1]),
        (500, &[1000], &[500]),
        (0, &[], &[]),
        (0, &[0, 0], &[0, 0]),
        (0, &[5, 7], &[0, 0]),
        (12, &[5, 7], &[5, 7]),
        (10, &[0, 10, 0], &[0, 10, 0]),
        (3, &[1, 1, 1], &[1, 1, 1]),
        // Pathological: remainder negative (2 over four lines of 1 centavo:
        // each exact share 0.5 rounds up to 1).
        (2, &[1, 1, 1, 1], &[1, 1, 0, 0]),
        // Pathological: remainder above the last gross (each exact 0.4 → 0).
        (2, &[1, 1, 1, 1, 1], &[0, 0, 0, 1, 1]),
        // Last line has no gross: everything goes elsewhere.
        (1, &[1, 1, 0], &[1, 0, 0]),
        (3, &[2, 2, 0], &[2, 1, 0]),
        // Largest rounding error first. Exact shares 0.6, 0.6, 1.8 round up to
        // 1, 1, 2 (errors 0.4, 0.4, 0.2) leaving −1: the later of the two 0.4
        // lines gives its centavo back.
        (3, &[1, 1, 3, 0], &[1, 0, 2, 0]),
        // Exact 0.75, 0.75, 1.5 → 1, 1, 2 (errors 0.25, 0.25, 0.5): the 0.5 line.
        (3, &[1, 1, 2, 0], &[1, 1, 1, 0]),
        // Exact 0.29, 0.29, 1.43 → 0, 0, 1 leaving 1 for a last line of gross 0:
        // the line rounded down the most (0.43) receives it.
        (2, &[1, 1, 5, 0], &[0, 0, 2, 0]),
    ];
    for &(discount, gross, shares) in cases {
        assert_eq!(
            spread_discount(Money(discount), &money(gross)),
            Ok(money(shares)),
            "spread {discount} over {gross:?}"
        );
    }
}

#[test]
fn spread_errors() {
    assert_eq!(
        spread_discount(Money(-1), &money(&[100])),
        Err(MoneyError::NegativeDiscount {
            discount: Money(-1)
        })
    );
    assert_eq!(
        spread_discount(Money(1), &money(&[100, -5, -7])),
        Err(MoneyError::NegativeGross {
            line: 1,
            gross: Money(-5)
        })
    );
    assert_eq!(
        spread_discount(Money(1), &[]),
        Err(MoneyError::NoLines { discount: Money(1) })
    );
    assert_eq!(
        spread_discount(Money(301), &money(&[100, 100, 100])),
        Err(MoneyError::DiscountExceedsGross {
            discount: Money(301),
            gross_sum_minor: 300
        })
    );
    assert_eq!(
        spread_discount(Money(1), &money(&[0, 0])),
        Err(MoneyError::DiscountExceedsGross {
            discount: Money(1),
            gross_sum_minor: 0
        })
    );
}

#[test]
fn spread_extreme_values() {
    let max = Money(i64::MAX);
    let shares = spread_discount(max, &[max, max, max]).unwrap();
    assert_eq!(Money::sum(shares.iter().copied()), Ok(max));
    let shares = spread_discount(Money(i64::MAX - 1), &[max, Money(1), max]).unwrap();
    assert_eq!(Money::sum(shares.iter().copied()), Ok(Money(i64::MAX - 1)));
    assert_eq!(spread_discount(max, &[max]), Ok(vec![max]));
}

#[test]
fn sale_totals_sum_lines() {
    let lines = [
        (
            rate(1800),
            LineAmounts::compute(Money(6500), QtyMilli(2000), Money(409), rate(1800)).unwrap(),
        ),
        (
            rate(0),
            LineAmounts::compute(Money(38000), QtyMilli(455), Money(544), rate(0)).unwrap(),
        ),
        (
            rate(1800),
            LineAmounts::compute(Money(4500), QtyMilli(333), Money(47), rate(1800)).unwrap(),
        ),
    ];
    let totals = SaleTotals::from_lines(lines).unwrap();
    assert_eq!(totals.gross, Money(31789));
    assert_eq!(totals.discount, Money(1000));
    assert_eq!(totals.total, Money(30789));
    let expected_tax_18 = lines[0].1.tax.checked_add(lines[2].1.tax).unwrap();
    assert_eq!(
        totals.tax_by_rate,
        BTreeMap::from([(rate(0), Money(0)), (rate(1800), expected_tax_18)])
    );
    assert_eq!(totals.tax, expected_tax_18);
    assert_eq!(SaleTotals::from_lines([]), Ok(SaleTotals::default()));
    let big = LineAmounts {
        gross: Money(i64::MAX),
        discount: Money(0),
        total: Money(i64::MAX),
        tax: Money(0),
    };
    assert_eq!(
        SaleTotals::from_lines([(rate(0), big), (rate(0), big)]),
        Err(MoneyError::Overflow)
    );
}

// ---- properties -------------------------------------------------------------

/// Reference rounding computed differently: floor((2|n| + d) / (2d)), then the
/// sign of n. Valid for |n| ≤ 2^126 and 0 < d ≤ 2^126 (computed in u128).
fn reference_round(num: i128, den: i128) -> i128 {
    let (n, d) = (num.unsigned_abs(), den.unsigned_abs());
    let magnitude = i128::try_from((2 * n + d) / (2 * d)).unwrap();
    if num < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The plain rule of `spread_discount`, without any correction.
fn plain_spread(discount: i64, gross: &[i64]) -> Vec<i64> {
    let total: i128 = gross.iter().map(|g| i128::from(*g)).sum();
    if total == 0 {
        return vec![0; gross.len()];
    }
    let d = i128::from(discount);
    let mut shares: Vec<i64> = gross[..gross.len() - 1]
        .iter()
        .map(|g| div_round_half_away(d * i128::from(*g), total).unwrap())
        .collect();
    let assigned: i128 = shares.iter().map(|s| i128::from(*s)).sum();
    shares.push(i64::try_from(d - assigned).unwrap());
    shares
}

fn check_spread(discount: i64, gross: &[i64]) -> Result<(), TestCaseError> {
    let shares = spread_discount(Money(discount), &money(gross)).unwrap();
    prop_assert_eq!(shares.len(), gross.len());
    let sum: i128 = shares.iter().map(|s| i128::from(s.0)).sum();
    prop_assert_eq!(sum, i128::from(discount), "shares {:?}", shares);
    for (i, (s, g)) in shares.iter().zip(gross).enumerate() {
        prop_assert!(
            (0..=*g).contains(&s.0),
            "share {} = {} outside 0..={}",
            i,
            s.0,
            g
        );
    }
    // The correction never changes a result the plain rule gets right.
    let plain = plain_spread(discount, gross);
    let plain_ok = plain.iter().zip(gross).all(|(s, g)| (0..=*g).contains(s));
    if plain_ok {
        prop_assert_eq!(&shares, &money(&plain));
    }
    // Every share but the last (which takes the remainder) is one of the two
    // integers next to its exact value, corrected or not.
    let total: i128 = gross.iter().map(|g| i128::from(*g)).sum();
    for (s, g) in shares.iter().zip(gross).take(gross.len() - 1) {
        let exact_num = i128::from(discount) * i128::from(*g);
        let scaled = i128::from(s.0) * total;
        prop_assert!((scaled - exact_num).abs() < total || total == 0);
    }
    Ok(())
}

/// A discount within 0..=Σ gross for the given lines.
fn spread_case(lines: impl Strategy<Value = Vec<i64>>) -> impl Strategy<Value = (i64, Vec<i64>)> {
    lines.prop_flat_map(|gross| {
        let total: i64 = gross.iter().sum();
        (0..=total, Just(gross))
    })
}

fn any_rate() -> impl Strategy<Value = TaxRateBp> {
    prop_oneof![
        Just(rate(0)),
        Just(rate(1600)),
        Just(rate(1800)),
        (0..=TaxRateBp::MAX_BP).prop_map(rate),
    ]
}

proptest! {
    #[test]
    fn prop_rounding_matches_reference(
        num in prop_oneof![any::<i64>().prop_map(i128::from), -(1_i128 << 100)..(1_i128 << 100)],
        den in prop_oneof![1_i128..=10, 1_i128..(1_i128 << 40), (1_i128 << 40)..(1_i128 << 60)],
    ) {
        let expected = reference_round(num, den);
        match div_round_half_away(num, den) {
            Ok(q) => prop_assert_eq!(i128::from(q), expected),
            Err(e) => {
                prop_assert_eq!(e, MoneyError::Overflow);
                prop_assert!(i64::try_from(expected).is_err());
            }
        }
    }

    #[test]
    fn prop_rounding_is_nearest_with_halves_away(
        num in any::<i64>().prop_map(i128::from),
        den in 1_i128..=i128::from(i64::MAX),
    ) {
        let q = i128::from(div_round_half_away(num, den).unwrap());
        // Nearest: the distance to the exact value is at most half.
        let diff = q * den - num;
        prop_assert!(2 * diff.abs() <= den);
        // Halves go away from zero.
        if 2 * diff.abs() == den {
            prop_assert!((q * den).abs() > num.abs());
        }
    }

    #[test]
    fn prop_rounding_is_symmetric(
        num in prop_oneof![any::<i64>().prop_map(i128::from), (i128::MIN + 1)..=i128::MAX],
        den in prop_oneof![1_i128..=10, 1_i128..=i128::from(i64::MAX), 1_i128..=i128::MAX],
    ) {
        let pos = div_round_half_away(num, den);
        let neg = div_round_half_away(-num, den);
        match (pos, neg) {
            (Ok(p), Ok(n)) => prop_assert_eq!(i128::from(p), -i128::from(n)),
            // Only ±(i64::MAX + 1) is representable one way and not the other.
            (p, n) => prop_assert!(p.is_err() || n.is_err()),
        }
    }

    #[test]
    fn prop_line_tax_bounds(total in 0_i64..=i64::MAX, rate in any_rate()) {
        let tax = line_tax(Money(total), rate).unwrap();
        prop_assert!((0..=total).contains(&tax.0));
        // Within half a centavo of the exact total·bp/(10000+bp) ...
        let den = 10_000 + i128::from(rate.bp());
        let error = i128::from(tax.0) * den - i128::from(total) * i128::from(rate.bp());
        prop_assert!(2 * error.abs() <= den);
        // ... hence never more than the rate applied to the tax-inclusive total.
        prop_assert!(i128::from(tax.0) * 10_000 <= i128::from(total) * i128::from(rate.bp()) + 10_000);
        // A negative total is the mirror image.
        let neg = line_tax(Money(-total), rate).unwrap();
        prop_assert_eq!(neg.0, -tax.0);
    }

    #[test]
    fn prop_line_is_gross_minus_discount(
        unit_price in -10_000_000_i64..10_000_000,
        qty in -100_000_000_i64..100_000_000,
        discount in -1_000_000_i64..1_000_000,
        rate in any_rate(),
    ) {
        let line = LineAmounts::compute(Money(unit_price), QtyMilli(qty), Money(discount), rate).unwrap();
        prop_assert_eq!(line.gross, line_gross(Money(unit_price), QtyMilli(qty)).unwrap());
        prop_assert_eq!(line.total.0, line.gross.0 - discount);
        prop_assert_eq!(line.tax, line_tax(line.total, rate).unwrap());
        let returned = LineAmounts::compute(Money(unit_price), QtyMilli(-qty), Money(-discount), rate).unwrap();
        prop_assert_eq!(returned.total.0, -line.total.0);
        prop_assert_eq!(returned.tax.0, -line.tax.0);
    }

    #[test]
    fn prop_spread_small_lines(
        (discount, gross) in spread_case(prop::collection::vec(0_i64..=3, 1..200)),
    ) {
        check_spread(discount, &gross)?;
    }

    #[test]
    fn prop_spread_mixed_lines(
        (discount, gross) in spread_case(prop::collection::vec(
            prop_oneof![0_i64..=5, 0_i64..=100_000, 0_i64..=1_000_000_000_000],
            1..40,
        )),
    ) {
        check_spread(discount, &gross)?;
    }

    #[test]
    fn prop_spread_near_half(
        // Lines whose exact shares sit at or near .5, the worst case for the plain rule.
        n in 2_usize..300,
        tiny in 1_i64..=2,
        last in 0_i64..=2,
        shift in -2_i64..=2,
    ) {
        let mut gross = vec![tiny; n];
        gross.push(last);
        let total: i64 = gross.iter().sum();
        let discount = (total / 2 + shift).clamp(0, total);
        check_spread(discount, &gross)?;
    }

    #[test]
    fn prop_spread_huge_values(
        (discount, gross) in prop::collection::vec(0_i64..=i64::MAX, 1..8)
            .prop_flat_map(|gross| {
                let cap = gross.iter().copied().max().unwrap_or(0);
                (0..=cap, Just(gross))
            }),
    ) {
        check_spread(discount, &gross)?;
    }

    #[test]
    fn prop_sale_totals_are_sums_of_lines(
        lines in prop::collection::vec(
            (-1_000_000_i64..1_000_000, -10_000_000_i64..10_000_000, 0_i64..10_000, any_rate()),
            0..30,
        ),
    ) {
        let computed: Vec<(TaxRateBp, LineAmounts)> = lines
            .iter()
            .map(|&(price, qty, discount, rate)| {
                (rate, LineAmounts::compute(Money(price), QtyMilli(qty), Money(discount), rate).unwrap())
            })
            .collect();
        let totals = SaleTotals::from_lines(computed.iter().copied()).unwrap();
        let sum = |f: fn(&LineAmounts) -> Money| Money::sum(computed.iter().map(|(_, l)| f(l))).unwrap();
        prop_assert_eq!(totals.gross, sum(|l| l.gross));
        prop_assert_eq!(totals.discount, sum(|l| l.discount));
        prop_assert_eq!(totals.total, sum(|l| l.total));
        prop_assert_eq!(totals.tax, sum(|l| l.tax));
        prop_assert_eq!(Money::sum(totals.tax_by_rate.values().copied()).unwrap(), totals.tax);
        prop_assert_eq!(Money::sum(totals.total_by_rate.values().copied()).unwrap(), totals.total);
        for (rate, tax) in &totals.tax_by_rate {
            let expected = Money::sum(computed.iter().filter(|(r, _)| r == rate).map(|(_, l)| l.tax)).unwrap();
            prop_assert_eq!(*tax, expected);
        }
    }

    #[test]
    fn prop_extreme_values_never_panic(
        a in prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN), Just(-1_i64), Just(0_i64)],
        b in prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN), Just(-1_i64), Just(0_i64)],
        c in prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN)],
        rate in any_rate(),
    ) {
        let wide = |x: i64| i128::from(x);
        let ok_or_overflow = |r: Result<Money, MoneyError>, exact: Option<i128>| -> Result<(), TestCaseError> {
            match (r, exact) {
                (Ok(m), Some(e)) => prop_assert_eq!(i128::from(m.0), e),
                (Err(MoneyError::Overflow), None) => {}
                (r, e) => return Err(TestCaseError::fail(format!("got {r:?}, exact {e:?}"))),
            }
            Ok(())
        };
        let fits = |x: i128| i64::try_from(x).is_ok().then_some(x);
        ok_or_overflow(Money(a).checked_add(Money(b)), fits(wide(a) + wide(b)))?;
        ok_or_overflow(Money(a).checked_sub(Money(b)), fits(wide(a) - wide(b)))?;
        ok_or_overflow(Money(a).checked_neg(), fits(-wide(a)))?;
        ok_or_overflow(Money::sum([Money(a), Money(b), Money(c)]), fits(wide(a) + wide(b) + wide(c)).filter(|_| {
            wide(a).checked_add(wide(b)).and_then(fits).is_some()
        }))?;
        let gross = line_gross(Money(a), QtyMilli(b));
        let exact_gross = fits(reference_round(wide(a) * wide(b), 1000));
        ok_or_overflow(gross.clone(), exact_gross)?;
        let line = LineAmounts::compute(Money(a), QtyMilli(b), Money(c), rate);
        if let Ok(line) = line {
            prop_assert_eq!(Ok(line.gross), gross);
            prop_assert_eq!(i128::from(line.total.0), i128::from(line.gross.0) - wide(c));
        } else {
            prop_assert_eq!(line, Err(MoneyError::Overflow));
        }
        prop_assert!(line_tax(Money(a), rate).is_ok());
        let _ = spread_discount(Money(a), &[Money(b), Money(c)]);
    }
}
