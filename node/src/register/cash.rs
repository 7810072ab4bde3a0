//! The cash drawer: cash paid in, paid out or dropped to the safe, and the
//! drawer opened without a sale (its kick queued with the event).
//!
//! Invariant: cash moves only in the open shift; a paid-out or a drawer
//! opening has a supervisor's approval on a register with staff.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::OpId;
use caja_shared::money::Money;
use serde::{Deserialize, Serialize};

use super::kernel::{invalid, text, Register, Written};
use crate::error::OpError;

/// What a drawer opening wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawerResult {
    /// The opening.
    pub movement_id: caja_shared::ids::MovementId,
    /// Journal seq of the `DrawerOpened`.
    pub seq: u64,
    /// The print job that kicks the drawer.
    pub job: u64,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Cash paid in, paid out (a supervisor approves on a register with
    /// staff) or dropped to the safe, in the open shift.
    pub fn cash_move(
        &mut self,
        op_id: OpId,
        kind: caja_shared::kind::CashMovement,
        amount: Money,
        reason: &str,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<Written, OpError> {
        let reason = text("reason", reason, true)?;
        if amount.0 <= 0 {
            return Err(invalid("amount", "must be positive"));
        }
        let approval = if kind == caja_shared::kind::CashMovement::PaidOut {
            self.approval_for(cred, "paid_out")?
        } else {
            None
        };
        self.run(op_id, "cash_move", &(kind, amount, &reason), |ctx| {
            let (shift_id, _, shift_seq) = ctx.open_shift()?;
            let dep = ctx.event_id_at(shift_seq)?;
            let movement_id = caja_shared::ids::MovementId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("movement_id", e.to_string()))?;
            let seq = ctx.append(
                caja_shared::kind::CashMoved {
                    movement_id,
                    shift_id,
                    kind,
                    amount,
                    reason: reason.clone(),
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }

    /// Opens the cash drawer without a sale, in the open shift: a reason, a
    /// supervisor's approval on a register with staff, a `DrawerOpened` event
    /// and the drawer kick queued in the print queue in the same transaction
    /// (printed after commit, like a receipt).
    pub fn open_drawer(
        &mut self,
        op_id: OpId,
        reason: &str,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<DrawerResult, OpError> {
        let reason = text("reason", reason, true)?;
        let approval = self.approval_for(cred, "drawer_open")?;
        self.run(op_id, "drawer_open", &reason, |ctx| {
            let (shift_id, _, shift_seq) = ctx.open_shift()?;
            let dep = ctx.event_id_at(shift_seq)?;
            let movement_id = caja_shared::ids::MovementId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("movement_id", e.to_string()))?;
            let seq = ctx.append(
                caja_shared::kind::DrawerOpened {
                    movement_id,
                    shift_id,
                    reason: reason.clone(),
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            let job = crate::print::enqueue_drawer(ctx.tx, movement_id, ctx.now_ms)?;
            Ok(DrawerResult {
                movement_id,
                seq,
                job: job.0,
            })
        })
    }
}
