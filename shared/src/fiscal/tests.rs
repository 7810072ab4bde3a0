use super::*;
use proptest::prelude::*;

fn dev(n: u8) -> DeviceId {
    format!("01935f4e-8a00-7000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

fn gid(n: u32) -> GrantId {
    format!("01935f4e-8a00-7000-8000-0000{n:08x}")
        .parse()
        .unwrap()
}

fn eid(n: u32) -> EventId {
    format!("01935f4e-8a00-7000-9000-0000{n:08x}")
        .parse()
        .unwrap()
}

fn sid(n: u32) -> SaleId {
    format!("01935f4e-8a00-7000-a000-0000{n:08x}")
        .parse()
        .unwrap()
}

#[test]
fn numbers_are_formatted_and_parsed_with_their_width() {
    assert_eq!(format_number("B02", 8, 51).unwrap(), "B0200000051");
    assert_eq!(format_number("E31", 10, 1).unwrap(), "E310000000001");
    assert!(format_number("B02", 8, 100_000_000).is_err());
    assert!(format_number("b02", 8, 1).is_err());
    assert!(format_number("B2", 8, 1).is_err());
    assert_eq!(parse_number("B02", "B0200000051"), Some(51));
    assert_eq!(parse_number("B02", "B01000051"), None);
    assert_eq!(parse_number("B02", "B02"), None);
    assert_eq!(parse_number("B02", "B02-0051"), None);
    check_series("B02", 8, 1, 99_999_999).unwrap();
    assert!(matches!(
        check_series("B02", 8, 0, 10),
        Err(FiscalError::BadRange { field: "first", .. })
    ));
    assert!(matches!(
        check_series("B02", 8, 10, 9),
        Err(FiscalError::BadRange { field: "last", .. })
    ));
    assert_eq!(
        check_series("B02", 14, 1, 9),
        Err(FiscalError::BadDigits(14))
    );
}

#[test]
fn rnc_and_cedula_check_digits() {
    assert_eq!(
        validate_tax_id("1-01-85004-3").unwrap(),
        (TaxIdKind::Rnc, "101850043".into())
    );
    assert_eq!(validate_tax_id("131098193").unwrap().0, TaxIdKind::Rnc);
    assert_eq!(
        validate_tax_id("001-1391820-5").unwrap(),
        (TaxIdKind::Cedula, "00113918205".into())
    );
    for bad in ["101850042", "00113918204", "12345", "10185004X", ""] {
        assert!(validate_tax_id(bad).is_err(), "{bad}");
    }
    assert!(requires_buyer_tax_id("B01") && requires_buyer_tax_id("E31"));
    assert!(!requires_buyer_tax_id("B02"));
}

#[test]
fn every_status_is_found_and_totals_add_up() {
    let (a, b, c) = (dev(1), dev(2), dev(3));
    let h = History {
        grants: vec![
            Grant {
                grant_id: gid(1),
                device: a,
                first: 1,
                last: 10,
            },
            Grant {
                grant_id: gid(2),
                device: b,
                first: 11,
                last: 20,
            },
            Grant {
                grant_id: gid(3),
                device: c,
                first: 21,
                last: 25,
            },
        ],
        releases: vec![Release {
            grant_id: gid(1),
            device: a,
            first: 6,
            last: 10,
        }],
        uses: vec![
            Use {
                number: 1,
                device: a,
                sale: sid(1),
                event_id: eid(1),
                at_ms: 1,
                voided: false,
            },
            Use {
                number: 2,
                device: a,
                sale: sid(2),
                event_id: eid(2),
                at_ms: 2,
                voided: true,
            },
            Use {
                number: 11,
                device: b,
                sale: sid(3),
                event_id: eid(3),
                at_ms: 3,
                voided: false,
            },
        ],
        written_off: [c].into_iter().collect(),
    };
    let acc = account(1, 30, &h);
    assert_eq!(acc.total(NumberStatus::Used), 2);
    assert_eq!(acc.total(NumberStatus::Voided), 1);
    assert_eq!(acc.total(NumberStatus::Outstanding), 3 + 9);
    assert_eq!(acc.total(NumberStatus::ReleasedUnused), 5);
    assert_eq!(acc.total(NumberStatus::WrittenOff), 5);
    assert_eq!(acc.total(NumberStatus::NeverAllocated), 5);
    assert_eq!(acc.totals.values().sum::<u64>(), acc.size());
    assert_eq!(acc.duplicates, 0);
    assert!(acc.anomalies.is_empty(), "{:?}", acc.anomalies);
    assert_eq!(
        acc.status_of(7).unwrap().status,
        NumberStatus::ReleasedUnused
    );
    assert_eq!(acc.status_of(4).unwrap().device, Some(a));
    assert_eq!(acc.status_of(31), None);
    // Released and never allocated numbers are free, lowest first.
    assert_eq!(acc.free_runs(), vec![(6, 10), (26, 30)]);
    assert_eq!(allocate(&acc.free_runs(), 7), vec![(6, 10), (26, 27)]);
    assert_eq!(allocate(&acc.free_runs(), 100), vec![(6, 10), (26, 30)]);
}

#[test]
fn a_number_on_two_sales_is_a_duplicate_and_outsiders_are_anomalies() {
    let (a, b) = (dev(1), dev(2));
    let h = History {
        grants: vec![Grant {
            grant_id: gid(1),
            device: a,
            first: 1,
            last: 5,
        }],
        releases: vec![Release {
            grant_id: gid(1),
            device: a,
            first: 4,
            last: 5,
        }],
        uses: vec![
            Use {
                number: 1,
                device: a,
                sale: sid(1),
                event_id: eid(1),
                at_ms: 1,
                voided: false,
            },
            Use {
                number: 1,
                device: b,
                sale: sid(2),
                event_id: eid(2),
                at_ms: 1,
                voided: false,
            },
            // The same event twice counts once.
            Use {
                number: 1,
                device: b,
                sale: sid(2),
                event_id: eid(2),
                at_ms: 1,
                voided: false,
            },
            Use {
                number: 5,
                device: a,
                sale: sid(3),
                event_id: eid(3),
                at_ms: 1,
                voided: false,
            },
        ],
        written_off: BTreeSet::new(),
    };
    let acc = account(1, 5, &h);
    assert_eq!(acc.duplicates, 1);
    assert_eq!(acc.status_of(1).unwrap().sales.len(), 2);
    assert!(acc.anomalies.contains(&Anomaly::Duplicate {
        number: 1,
        sales: 2
    }));
    assert!(acc.anomalies.contains(&Anomaly::OutsideGrant {
        number: 1,
        device: b
    }));
    assert!(acc.anomalies.contains(&Anomaly::UsedAfterRelease {
        number: 5,
        device: a
    }));
    // A used number is never free, even inside a released range.
    assert_eq!(acc.free_runs(), vec![(4, 4)]);
}

/// One step of a random history, as registers and head office would make it.
#[derive(Debug, Clone)]
enum Step {
    Grant { device: u8, count: u64 },
    Sell { device: u8 },
    Void { pick: usize },
    Release { device: u8 },
    WriteOff { device: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, 1u64..15).prop_map(|(device, count)| Step::Grant { device, count }),
        (0u8..4).prop_map(|device| Step::Sell { device }),
        (0u8..4).prop_map(|device| Step::Sell { device }),
        any::<usize>().prop_map(|pick| Step::Void { pick }),
        (0u8..4).prop_map(|device| Step::Release { device }),
        (0u8..4).prop_map(|device| Step::WriteOff { device }),
    ]
}

/// Plays the steps following the protocol (allocation from [`account`]'s free
/// runs, registers using the lowest unused number of their open blocks) and
/// returns the history and what a model says each number is.
fn play(last: u64, steps: &[Step]) -> (History, BTreeMap<u64, NumberStatus>) {
    let mut h = History::default();
    let mut model: BTreeMap<u64, NumberStatus> = BTreeMap::new();
    // Per grant: the numbers still unused and unreleased.
    let mut open: BTreeMap<GrantId, (DeviceId, BTreeSet<u64>)> = BTreeMap::new();
    let mut next_id = 0u32;
    for s in steps {
        next_id += 1;
        match *s {
            Step::Grant { device, count } => {
                let d = dev(device);
                if h.written_off.contains(&d) {
                    continue;
                }
                let acc = account(1, last, &h);
                for (a, b) in allocate(&acc.free_runs(), count) {
                    next_id += 1;
                    let g = gid(next_id);
                    h.grants.push(Grant {
                        grant_id: g,
                        device: d,
                        first: a,
                        last: b,
                    });
                    open.insert(g, (d, (a..=b).collect()));
                    for n in a..=b {
                        model.insert(n, NumberStatus::Outstanding);
                    }
                }
            }
            Step::Sell { device } => {
                let d = dev(device);
                if h.written_off.contains(&d) {
                    continue;
                }
                let pick = open
                    .iter_mut()
                    .filter(|(_, (owner, left))| *owner == d && !left.is_empty())
                    .filter_map(|(g, (_, left))| left.first().copied().map(|n| (n, *g)))
                    .min();
                if let Some((n, g)) = pick {
                    if let Some((_, left)) = open.get_mut(&g) {
                        left.remove(&n);
                    }
                    h.uses.push(Use {
                        number: n,
                        device: d,
                        sale: sid(next_id),
                        event_id: eid(next_id),
                        at_ms: i64::from(next_id),
                        voided: false,
                    });
                    model.insert(n, NumberStatus::Used);
                }
            }
            Step::Void { pick } => {
                if h.uses.is_empty() {
                    continue;
                }
                let i = pick % h.uses.len();
                h.uses[i].voided = true;
                model.insert(h.uses[i].number, NumberStatus::Voided);
            }
            Step::Release { device } => {
                let d = dev(device);
                if h.written_off.contains(&d) {
                    continue;
                }
                // Release the unused tail of each of the device's grants.
                for (g, (owner, left)) in open.iter_mut() {
                    if *owner != d || left.is_empty() {
                        continue;
                    }
                    // The unused numbers of a block are always its tail.
                    let (a, b) = (*left.first().unwrap(), *left.last().unwrap());
                    assert_eq!(b - a + 1, left.len() as u64, "unused numbers are a tail");
                    h.releases.push(Release {
                        grant_id: *g,
                        device: d,
                        first: a,
                        last: b,
                    });
                    for n in a..=b {
                        model.insert(n, NumberStatus::ReleasedUnused);
                    }
                    left.clear();
                }
            }
            Step::WriteOff { device } => {
                let d = dev(device);
                h.written_off.insert(d);
                for (owner, left) in open.values_mut() {
                    if *owner == d {
                        for n in left.iter() {
                            model.insert(*n, NumberStatus::WrittenOff);
                        }
                        left.clear();
                    }
                }
            }
        }
    }
    (h, model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any interleaving of grant/sell/void/release/write-off across registers:
    /// no number is used twice, every number has exactly the model's status,
    /// the totals add up to the series size, and the accounting does not
    /// depend on the order the hub learnt the facts in.
    #[test]
    fn accounting_matches_the_model_in_any_order(
        last in 1u64..120,
        steps in proptest::collection::vec(step(), 0..80),
        seed in any::<u64>(),
    ) {
        let (h, model) = play(last, &steps);
        let acc = account(1, last, &h);
        prop_assert_eq!(acc.duplicates, 0);
        prop_assert!(acc.anomalies.is_empty(), "{:?}", acc.anomalies);
        prop_assert_eq!(acc.totals.values().sum::<u64>(), last);
        let mut covered = 0;
        for r in &acc.runs {
            prop_assert!(r.first <= r.last);
            prop_assert_eq!(r.first, covered + 1, "runs are contiguous and in order");
            covered = r.last;
            for n in r.first..=r.last {
                let want = model.get(&n).copied().unwrap_or(NumberStatus::NeverAllocated);
                prop_assert_eq!(r.status, want, "number {}", n);
            }
        }
        prop_assert_eq!(covered, last);
        // Shuffled history, same accounting.
        let mut shuffled = h.clone();
        let mut rng = crate::entropy::SeededRandom::new(seed);
        use crate::entropy::RandomSource;
        for v in [&mut shuffled.uses] {
            for i in (1..v.len()).rev() {
                let j = usize::try_from(rng.next_u64() % (i as u64 + 1)).unwrap();
                v.swap(i, j);
            }
        }
        shuffled.grants.reverse();
        shuffled.releases.reverse();
        prop_assert_eq!(account(1, last, &shuffled), acc);
    }
}
