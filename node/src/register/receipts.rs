//! Receipts through the register: its receipt and printer settings, a
//! receipt's text, reprints (marked "COPIA"), printing the due jobs, and
//! drawer openings apart from receipts into the journal.
//!
//! Invariant: the original receipt of a sale is never printed twice.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{OpId, ReturnId, SaleId};
use caja_shared::kind::SaleDrawerOpened;

use super::kernel::{invalid, Register};
use crate::error::{OpError, Refusal};

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// The receipt settings of this register's configuration.
    pub fn receipt_settings(&self) -> Result<crate::print::ReceiptSettings, OpError> {
        Ok(crate::print::ReceiptSettings::from_config(&self.config)?)
    }

    /// The configured printer, if any.
    pub fn printer_settings(&self) -> Result<Option<crate::print::PrinterSettings>, OpError> {
        Ok(crate::print::PrinterSettings::from_config(&self.config)?)
    }

    /// The receipt of one of this register's sales as it prints (decoded text).
    pub fn receipt_text(&self, sale: SaleId) -> Result<String, OpError> {
        crate::print::receipt_text(self.conn(), sale, &self.receipt_settings()?)
    }

    /// Queues a reprint of a sale, marked "COPIA"; the original is never
    /// printed again.
    pub fn reprint(&mut self, sale: SaleId) -> Result<caja_hardware::queue::JobId, OpError> {
        let now_ms = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        let id = crate::print::enqueue_copy(&tx, sale, now_ms)?;
        tx.commit()?;
        Ok(id)
    }

    /// Prints the due jobs on `printer` (see [`crate::print::print_pending`]).
    pub fn print_pending_on(
        &mut self,
        printer: &crate::print::PrinterSettings,
    ) -> Result<crate::print::PrintRun, OpError> {
        self.print_on(printer, crate::print::Due::Scheduled)
    }

    /// Prints on `printer` the jobs `due` selects.
    pub fn print_on(
        &mut self,
        printer: &crate::print::PrinterSettings,
        due: crate::print::Due,
    ) -> Result<crate::print::PrintRun, OpError> {
        let receipt = self.receipt_settings()?;
        let now_ms = self.clock.now_ms();
        let run = crate::print::print_pending(self.conn(), printer, &receipt, now_ms, due)?;
        // The openings this run made (and any an earlier run left) go into
        // the journal; one that cannot now is written by a later run.
        let _ = self.journal_drawer_openings();
        Ok(run)
    }

    /// Prints the due jobs on the configured printer.
    pub fn print_pending(&mut self) -> Result<crate::print::PrintRun, OpError> {
        let printer = self
            .printer_settings()?
            .ok_or(OpError::Refused(Refusal::NoPrinter))?;
        self.print_pending_on(&printer)
    }

    /// Prints every pending job now, whatever its backoff (a person pressed
    /// print); the run carries the queue left after it.
    pub fn print_now(&mut self) -> Result<crate::print::PrintRun, OpError> {
        let printer = self
            .printer_settings()?
            .ok_or(OpError::Refused(Refusal::NoPrinter))?;
        self.print_on(&printer, crate::print::Due::Now)
    }

    /// Records that the cashier opened the drawer of `sale` with the key
    /// because the printer could not be reached (see
    /// [`crate::print::record_manual_opening`]).
    pub fn record_manual_drawer(
        &mut self,
        sale: SaleId,
    ) -> Result<crate::print::ManualOpening, OpError> {
        let now_ms = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        let opening = crate::print::record_manual_opening(&tx, sale, now_ms)?;
        tx.commit()?;
        let _ = self.journal_drawer_openings();
        Ok(opening)
    }

    /// Writes a `SaleDrawerOpened` for every drawer opening recorded apart
    /// from its receipt (pulse or key) that is not in the journal yet, each
    /// in its own operation; returns the seqs written. A no-sale opening's
    /// pulse is already said by its `DrawerOpened`: it is only marked.
    pub fn journal_drawer_openings(&mut self) -> Result<Vec<u64>, OpError> {
        use caja_hardware::queue::JobKind;
        let mut seqs = Vec::new();
        for o in crate::drawer_journal::unjournaled(self.conn())? {
            let op = OpId::new_v7(self.clock.now_ms(), &mut self.rng)
                .map_err(|e| invalid("op", e.to_string()))?;
            let written = self.run(op, "drawer_journal", &o.job.0, |ctx| {
                if !crate::drawer_journal::still_unjournaled(ctx.tx, o.job)? {
                    return Ok(None);
                }
                let at = crate::drawer_journal::document_seq(ctx.tx, o.kind, &o.document)?
                    .ok_or_else(|| invalid("sale", format!("no event for {}", o.document)))?;
                if o.kind == JobKind::Drawer {
                    let at = u64::try_from(at).map_err(|_| invalid("seq", "out of range"))?;
                    crate::drawer_journal::mark(ctx.tx, o.job, at)?;
                    return Ok(None);
                }
                let dep = ctx.event_id_at(at)?;
                let (sale_id, return_id) = if o.kind == JobKind::Return {
                    let r: ReturnId = o
                        .document
                        .parse()
                        .map_err(|_| invalid("return_id", "stored id unreadable"))?;
                    (None, Some(r))
                } else {
                    let s: SaleId = o
                        .document
                        .parse()
                        .map_err(|_| invalid("sale_id", "stored id unreadable"))?;
                    (Some(s), None)
                };
                let seq = ctx.append(
                    SaleDrawerOpened {
                        sale_id,
                        return_id,
                        how: o.how,
                        opened_ms: o.opened_ms,
                    }
                    .into(),
                    vec![dep],
                )?;
                crate::drawer_journal::mark(ctx.tx, o.job, seq)?;
                Ok(Some(seq))
            })?;
            seqs.extend(written);
        }
        Ok(seqs)
    }

    /// Puts the print jobs that were given up back in the queue.
    pub fn retry_failed_prints(&mut self) -> Result<usize, OpError> {
        let now_ms = self.clock.now_ms();
        crate::print::retry_failed(self.conn(), now_ms)
    }
}
