//! Stock: goods received and counts (the event carries the signed
//! difference to what the register expected).
//!
//! Invariant: quantities are validated before the transaction; unknown
//! products are refused.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::OpId;
use caja_shared::kind::{StockCounted, StockReceived};
use caja_shared::money::QtyMilli;

use super::kernel::{invalid, text, Register, Written};
use crate::error::OpError;

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Records stock received.
    pub fn receive_stock(
        &mut self,
        op_id: OpId,
        product: &str,
        qty: QtyMilli,
        reference: Option<&str>,
    ) -> Result<Written, OpError> {
        if qty.0 <= 0 {
            return Err(invalid("qty_milli", "must be positive"));
        }
        let reference = reference.map(|r| text("reference", r, false)).transpose()?;
        self.run(op_id, "stock_receive", &(product, qty, &reference), |ctx| {
            let item = ctx.item(product)?;
            let seq = ctx.append(
                StockReceived {
                    product: item.sku,
                    qty_milli: qty,
                    reference: reference.clone().filter(|r| !r.is_empty()),
                }
                .into(),
                vec![],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }

    /// Records a stock count; the event carries the signed difference to what the
    /// register expected.
    pub fn count_stock(
        &mut self,
        op_id: OpId,
        product: &str,
        counted: QtyMilli,
    ) -> Result<Written, OpError> {
        if counted.0 < 0 {
            return Err(invalid("counted_milli", "must not be negative"));
        }
        self.run(op_id, "stock_count", &(product, counted), |ctx| {
            let item = ctx.item(product)?;
            let current = crate::queries::stock_qty(ctx.tx, &item.sku)?.unwrap_or(0);
            let delta = counted
                .0
                .checked_sub(current)
                .ok_or_else(|| invalid("counted_milli", "out of range"))?;
            let seq = ctx.append(
                StockCounted {
                    product: item.sku,
                    counted_milli: counted,
                    delta_milli: QtyMilli(delta),
                }
                .into(),
                vec![],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }
}
