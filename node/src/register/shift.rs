//! Shifts: opening one (by name, or signed in with a PIN on a register with
//! staff), closing it (Z report, fiscal numbers and stock quota given back,
//! a checkpoint) and the Z report of a shift.
//!
//! Invariant: at most one shift is open; a close is signed by its cashier or
//! a supervisor on a register with staff.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::event::Event;
use caja_shared::ids::{OpId, SaleId, ShiftId};
use caja_shared::kind::{EventBody, SaleCreated, ShiftClosed, ShiftOpened};
use caja_shared::money::Money;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::kernel::{invalid, text, Register};
use crate::error::{OpError, Refusal};
use crate::journal::{CheckpointReason, Journal};
use crate::projection;
use crate::queries;
use crate::zreport::ZReport;

/// Result of opening a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftOpenedResult {
    /// The shift.
    pub shift_id: ShiftId,
    /// Journal seq of its `ShiftOpened`.
    pub seq: u64,
}

/// Result of closing a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftClosedResult {
    /// Journal seq of its `ShiftClosed`.
    pub seq: u64,
    /// The Z report, computed from the shift's events.
    pub z: ZReport,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Opens a shift for `cashier` with an opening cash float.
    pub fn open_shift(
        &mut self,
        op_id: OpId,
        cashier: &str,
        opening_float: Money,
    ) -> Result<ShiftOpenedResult, OpError> {
        let cashier = text("cashier", cashier, true)?;
        if opening_float.0 < 0 {
            return Err(invalid("opening_float", "must not be negative"));
        }
        if crate::staff::has_staff(self.conn())? {
            return Err(OpError::Refused(Refusal::SignInRequired));
        }
        let request = (&cashier, opening_float);
        self.run(op_id, "shift_open", &request, |ctx| {
            if let Some((shift, _, _)) = projection::open_shift(ctx.tx)? {
                return Err(OpError::Refused(Refusal::ShiftAlreadyOpen(shift)));
            }
            let shift_id = ShiftId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("shift_id", e.to_string()))?;
            let seq = ctx.append(
                ShiftOpened {
                    shift_id,
                    cashier: cashier.clone(),
                    opening_float,
                    staff_id: None,
                }
                .into(),
                vec![],
            )?;
            Ok(ShiftOpenedResult { shift_id, seq })
        })
    }

    /// The member of staff who opened the open shift, if any.
    fn shift_staff(&self) -> Result<Option<caja_shared::ids::StaffId>, OpError> {
        let Some((_, _, seq)) = projection::open_shift(self.conn())? else {
            return Err(OpError::Refused(Refusal::ShiftNotOpen));
        };
        let event = Journal::event(self.conn(), seq.unsigned_abs())?;
        Ok(match event.map(|e| e.body()).transpose() {
            Ok(Some(EventBody::ShiftOpened(o))) => o.staff_id,
            _ => None,
        })
    }

    /// Opens a shift for a member of staff who signs in with their PIN.
    pub fn open_shift_signed(
        &mut self,
        op_id: OpId,
        cred: &crate::staff::Credentials,
        opening_float: Money,
    ) -> Result<ShiftOpenedResult, OpError> {
        if opening_float.0 < 0 {
            return Err(invalid("opening_float", "must not be negative"));
        }
        let who = self.approve(cred, caja_shared::kind::Role::Cashier, "sign_in")?;
        let request = (who.staff_id, opening_float);
        self.run(op_id, "shift_open", &request, |ctx| {
            if let Some((shift, _, _)) = projection::open_shift(ctx.tx)? {
                return Err(OpError::Refused(Refusal::ShiftAlreadyOpen(shift)));
            }
            let shift_id = ShiftId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("shift_id", e.to_string()))?;
            let seq = ctx.append(
                ShiftOpened {
                    shift_id,
                    cashier: who.name.clone(),
                    opening_float,
                    staff_id: Some(who.staff_id),
                }
                .into(),
                vec![],
            )?;
            Ok(ShiftOpenedResult { shift_id, seq })
        })
    }

    /// Closes the open shift with the cash counted, writes a checkpoint, and
    /// returns the Z report.
    pub fn close_shift(
        &mut self,
        op_id: OpId,
        counted_cash: Money,
    ) -> Result<ShiftClosedResult, OpError> {
        self.close_shift_as(op_id, counted_cash, None)
    }

    /// Closes the open shift. On a register with staff someone signs the
    /// close with their PIN: the shift's own cashier, or a supervisor for
    /// another person's shift (recorded in the event and the Z report).
    pub fn close_shift_as(
        &mut self,
        op_id: OpId,
        counted_cash: Money,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<ShiftClosedResult, OpError> {
        if counted_cash.0 < 0 {
            return Err(invalid("counted_cash", "must not be negative"));
        }
        let approval = if crate::staff::has_staff(self.conn())? {
            let cred = cred.ok_or(OpError::Refused(Refusal::SignInRequired))?;
            let owner = self.shift_staff()?;
            if owner == Some(cred.staff_id) {
                Some(self.approve(cred, caja_shared::kind::Role::Cashier, "close_own_shift")?)
            } else {
                Some(self.approve(cred, caja_shared::kind::Role::Supervisor, "close_shift")?)
            }
        } else {
            None
        };
        let release_all = self.config.fiscal_release_at_close;
        self.run(op_id, "shift_close", &counted_cash, |ctx| {
            let (shift_id, cashier, opened_seq) = ctx.open_shift()?;
            let before = z_report_of(ctx.tx, opened_seq, None)?;
            let dep = ctx.event_id_at(opened_seq)?;
            let seq = ctx.append(
                ShiftClosed {
                    shift_id,
                    cashier,
                    expected_cash: before.expected_cash,
                    counted_cash,
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            // Unused fiscal numbers go back: of expired blocks always, of every
            // block when so configured.
            let own = ctx.journal.device().device;
            for r in crate::fiscal::to_release(ctx.tx, own, ctx.now_ms, release_all)? {
                ctx.append(r.into(), vec![])?;
            }
            // Unused stock quota goes back to the store at every close.
            for r in crate::escrow::to_release(ctx.tx)? {
                crate::escrow::released(ctx.tx, &r)?;
                ctx.append(r.into(), vec![])?;
            }
            ctx.journal
                .write_checkpoint(ctx.tx, CheckpointReason::ShiftClose, ctx.now_ms)?;
            let closed = i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?;
            let z = z_report_of(ctx.tx, opened_seq, Some(closed))?;
            Ok(ShiftClosedResult { seq, z })
        })
    }

    /// The Z report of the open shift, or of the shift with this id.
    pub fn z_report(&self, shift: Option<ShiftId>) -> Result<ZReport, OpError> {
        let conn = self.db.conn();
        let row = queries::shift_seqs(conn, shift)?;
        let (opened, closed) = row.ok_or(OpError::Refused(Refusal::ShiftNotOpen))?;
        z_report_of(conn, opened, closed)
    }
}

/// Computes the Z report of the shift opened at `opened_seq` (and closed at
/// `closed_seq`, when closed) from the journal.
fn z_report_of(
    conn: &Connection,
    opened_seq: i64,
    closed_seq: Option<i64>,
) -> Result<ZReport, OpError> {
    let end = closed_seq.unwrap_or(i64::MAX);
    let mut events = Vec::new();
    for (seq, bytes) in queries::journal_range(conn, opened_seq, end)? {
        let e = Event::from_json(&bytes).map_err(|err| invalid("journal", err.to_string()))?;
        let body = e
            .body()
            .map_err(|err| invalid("journal", err.to_string()))?;
        events.push((u64::try_from(seq).unwrap_or(0), body));
    }
    let earlier = |sale_id: &SaleId| -> Option<SaleCreated> {
        let seq = queries::own_sale_seq(conn, sale_id).ok().flatten()?;
        let e = Journal::event(conn, u64::try_from(seq).ok()?).ok()??;
        match e.body().ok()? {
            EventBody::SaleCreated(s) => Some(s),
            _ => None,
        }
    };
    Ok(ZReport::compute(&events, earlier)?)
}
