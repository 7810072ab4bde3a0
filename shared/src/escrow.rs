//! Escrow stock (DESIGN "Escrow stock"): the quota a register may sell of a
//! product without asking anyone, and how much the hub may grant.
//!
//! Quantities are thousandths (`qty_milli`; grams for weighed items). A
//! register's outstanding quota of a product is what it was granted, minus
//! what it released, minus what it sold *within* quota (the part of a line
//! beyond its quota — allowed only under `warn` — consumes none), never below
//! zero. The hub grants only from what is not already promised:
//! `stock − Σ outstanding`, so the sum of outstanding quotas never exceeds the
//! stock, and registers that sell only within quota (`block`) can never drive
//! the stock below zero — whatever the partitions, whatever the order their
//! events reach the hub (DESIGN invariant 3; property-tested below).
//!
//! Architecture invariant: pure; no clock, no storage.

/// How a sale line meets the register's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSplit {
    /// The part sold from the quota.
    pub in_quota: i64,
    /// The part beyond it (an oversell, `warn` only).
    pub beyond: i64,
}

/// Splits a line of `qty` against `left` quota.
pub fn split(qty: i64, left: i64) -> LineSplit {
    let in_quota = qty.clamp(0, left.max(0));
    LineSplit {
        in_quota,
        beyond: qty - in_quota,
    }
}

/// A register's outstanding quota of one product.
pub fn outstanding(granted: i64, released: i64, sold_in_quota: i64) -> i64 {
    granted
        .saturating_sub(released)
        .saturating_sub(sold_in_quota)
        .max(0)
}

/// What the hub may still promise of a product: its stock minus every
/// outstanding quota, never below zero.
pub fn available(stock: i64, outstanding_total: i64) -> i64 {
    stock.saturating_sub(outstanding_total).max(0)
}

/// How much to grant a register that asked for `requested`, given what is
/// `available` and its share of the product's recent sales in the store
/// (`device_recent` of `store_recent`) among `registers` registers: at most
/// the larger of an equal share and its sales share of what is available
/// (rebalancing towards where the product sells), and never more than asked
/// or available. A register alone, or the first to ask for a product nobody
/// sold yet, gets its equal share.
pub fn grant_amount(
    requested: i64,
    available: i64,
    device_recent: i64,
    store_recent: i64,
    registers: u32,
) -> i64 {
    if requested <= 0 || available <= 0 {
        return 0;
    }
    let n = i128::from(registers.max(1));
    let avail = i128::from(available);
    let equal = (avail + n - 1) / n;
    let by_sales = if store_recent > 0 && device_recent > 0 {
        (avail * i128::from(device_recent.min(store_recent)) + i128::from(store_recent) - 1)
            / i128::from(store_recent)
    } else {
        0
    };
    let cap = equal.max(by_sales).min(avail);
    let out = i128::from(requested).min(cap);
    i64::try_from(out).unwrap_or(0)
}

/// A grant of an item sold by the piece in whole pieces (1000 thousandths):
/// `g` rounded up to a whole piece, but never beyond the whole pieces
/// `available`.
pub fn whole_units(g: i64, available: i64) -> i64 {
    if g <= 0 {
        return 0;
    }
    let up = g.saturating_add(999) / 1000 * 1000;
    up.min(available.max(0) / 1000 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{RandomSource, SeededRandom};
    use proptest::prelude::*;

    #[test]
    fn lines_split_against_the_quota() {
        assert_eq!(
            split(3000, 5000),
            LineSplit {
                in_quota: 3000,
                beyond: 0
            }
        );
        assert_eq!(
            split(3000, 1000),
            LineSplit {
                in_quota: 1000,
                beyond: 2000
            }
        );
        assert_eq!(
            split(3000, 0),
            LineSplit {
                in_quota: 0,
                beyond: 3000
            }
        );
        assert_eq!(
            split(3000, -5),
            LineSplit {
                in_quota: 0,
                beyond: 3000
            }
        );
        assert_eq!(outstanding(10_000, 2_000, 3_000), 5_000);
        assert_eq!(outstanding(1_000, 0, 3_000), 0);
        assert_eq!(available(10_000, 4_000), 6_000);
        assert_eq!(available(3_000, 4_000), 0);
    }

    #[test]
    fn pieces_are_granted_whole() {
        assert_eq!(whole_units(667, 2_000), 1_000);
        assert_eq!(whole_units(1_500, 1_800), 1_000);
        assert_eq!(whole_units(400, 900), 0);
        assert_eq!(whole_units(0, 9_000), 0);
    }

    #[test]
    fn grants_share_what_is_available() {
        // Alone: everything asked for, up to what is available.
        assert_eq!(grant_amount(5_000, 20_000, 0, 0, 1), 5_000);
        assert_eq!(grant_amount(50_000, 20_000, 0, 0, 1), 20_000);
        // Two registers, no history: half each at most.
        assert_eq!(grant_amount(50_000, 20_000, 0, 0, 2), 10_000);
        // The register that sells 3 of 4 gets up to 3/4.
        assert_eq!(grant_amount(50_000, 20_000, 3, 4, 2), 15_000);
        // One that sells little still gets its equal share.
        assert_eq!(grant_amount(50_000, 20_000, 1, 10, 2), 10_000);
        assert_eq!(grant_amount(0, 20_000, 0, 0, 2), 0);
        assert_eq!(grant_amount(5, 0, 0, 0, 2), 0);
    }

    /// One step of a random store: the hub grants, registers sell (online or
    /// not), release, reconnect; a count may reveal a loss.
    #[derive(Debug, Clone)]
    enum Step {
        Grant { r: usize, qty: i64 },
        Sell { r: usize, qty: i64 },
        Release { r: usize },
        Sync { r: usize },
        Cut { r: usize },
        Receive { qty: i64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..3, 1i64..8_000).prop_map(|(r, qty)| Step::Grant { r, qty }),
            (0usize..3, 1i64..4_000).prop_map(|(r, qty)| Step::Sell { r, qty }),
            (0usize..3, 1i64..4_000).prop_map(|(r, qty)| Step::Sell { r, qty }),
            (0usize..3).prop_map(|r| Step::Release { r }),
            (0usize..3).prop_map(|r| Step::Sync { r }),
            (0usize..3).prop_map(|r| Step::Cut { r }),
            (1i64..5_000).prop_map(|qty| Step::Receive { qty }),
        ]
    }

    #[derive(Debug, Default, Clone)]
    struct Reg {
        online: bool,
        granted: i64,
        released: i64,
        sold_in_quota: i64,
        beyond: i64,
        /// What the hub has received of this register.
        synced: (i64, i64, i64),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Under `block` (registers sell only within quota) the stock never
        /// goes below zero: not at the hub (from what it knows at any time),
        /// not in truth (every sale made anywhere). Under `warn`, every unit
        /// beyond a quota is flagged, so a negative stock always has an alert.
        #[test]
        fn block_never_oversells_and_warn_always_flags(
            steps in proptest::collection::vec(step(), 0..120),
            warn in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = SeededRandom::new(seed);
            let mut regs = vec![Reg { online: true, ..Reg::default() }; 3];
            let mut stock_truth: i64 = 5_000;
            let mut received: i64 = 5_000;
            let mut flagged: i64 = 0;
            for s in &steps {
                match *s {
                    Step::Grant { r, qty } => {
                        if !regs[r].online {
                            continue;
                        }
                        // The hub's view: stock and outstanding from what it received.
                        let hub_sold: i64 = regs.iter().map(|g| g.synced.1 + g.synced.2).sum();
                        let hub_stock = received - hub_sold;
                        let out: i64 = regs.iter().map(|g| outstanding(g.granted, g.synced.0, g.synced.1)).sum();
                        let recent = i64::try_from(rng.next_u64() % 3).unwrap_or(0);
                        let g = grant_amount(qty, available(hub_stock, out), recent, 3, 3);
                        prop_assert!(g <= available(hub_stock, out));
                        regs[r].granted += g;
                        prop_assert!(out + g <= hub_stock.max(0) || g == 0);
                    }
                    Step::Sell { r, qty } => {
                        let reg = &mut regs[r];
                        let left = outstanding(reg.granted, reg.released, reg.sold_in_quota);
                        let sp = split(qty, left);
                        if sp.beyond > 0 && !warn {
                            continue; // refused under block
                        }
                        reg.sold_in_quota += sp.in_quota;
                        reg.beyond += sp.beyond;
                        flagged += sp.beyond;
                        stock_truth -= qty;
                    }
                    Step::Release { r } => {
                        let reg = &mut regs[r];
                        reg.released += outstanding(reg.granted, reg.released, reg.sold_in_quota);
                    }
                    Step::Sync { r } => {
                        let reg = &mut regs[r];
                        reg.online = true;
                        reg.synced = (reg.released, reg.sold_in_quota, reg.beyond);
                    }
                    Step::Cut { r } => regs[r].online = false,
                    Step::Receive { qty } => {
                        received += qty;
                        stock_truth += qty;
                    }
                }
                if !warn {
                    prop_assert!(stock_truth >= 0, "block: stock went to {}", stock_truth);
                    let hub_sold: i64 = regs.iter().map(|g| g.synced.1 + g.synced.2).sum();
                    prop_assert!(received - hub_sold >= 0);
                } else if stock_truth < 0 {
                    prop_assert!(flagged >= -stock_truth, "every unit below zero was flagged");
                }
            }
        }
    }
}
