//! Receipts through the register: its receipt and printer settings, a
//! receipt's text, reprints (marked "COPIA") and printing the due jobs.
//!
//! Invariant: the original receipt of a sale is never printed twice.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::SaleId;

use super::kernel::Register;
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
        crate::print::print_pending(self.conn(), printer, &receipt, now_ms, due)
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
        Ok(opening)
    }

    /// Puts the print jobs that were given up back in the queue.
    pub fn retry_failed_prints(&mut self) -> Result<usize, OpError> {
        let now_ms = self.clock.now_ms();
        crate::print::retry_failed(self.conn(), now_ms)
    }
}
