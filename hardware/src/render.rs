//! A [`Layout`] to ESC/POS bytes, through the `escpos` crate's command builder.
//!
//! `escpos` builds initialize (`ESC @`), code page (`ESC t n`), font (`ESC M 1`:
//! font B gives 42 columns on 58 mm paper), justification
//! (`ESC a n`), emphasis (`ESC E n`), character size (`GS ! n`), print-and-feed
//! (`ESC d n`), the QR code (`GS ( k`, model 2) and the cut (`GS V`). Its `Printer`
//! writes into an in-memory driver here: no device is touched. Text arrives already
//! fitted to the code page and is passed as raw bytes (see [`crate::escpos_ext`]
//! for why), so the output has exactly one byte per printed character.
//!
//! **Architecture invariant: no IO.** Rendering the same layout always gives the
//! same bytes; sending them is [`crate::printer`]'s job.

use std::sync::{Arc, Mutex};

use escpos::driver::Driver;
use escpos::printer::Printer;
use escpos::utils::{
    Font, JustifyMode, Protocol, QRCodeCorrectionLevel, QRCodeModel, QRCodeOption,
};

use crate::codepage::Unmappable;
use crate::receipt::{Align, Block, Layout, Style, Width};

/// QR module size in dots (1–16). At 203 dpi (8 dots/mm, 58 and 80 mm
/// printers alike) a module is 0.625 mm. DGII's shortest e-CF payload (a
/// `ConsultaTimbreFC` address, about 120 bytes) needs a version-8 symbol
/// (49 modules) at error correction M: 30.6 mm, above the 22 × 22 mm DGII's
/// "Representación Impresa" asks for; the longest (`ConsultaTimbre`, about
/// 260 bytes, 65 modules) is 40.6 mm, inside 58 mm paper's 48 mm print width.
/// `hardware/tests/receipt.rs` checks both bounds.
pub const QR_MODULE_DOTS: u8 = 5;

/// Printer dots per millimetre (203 dpi), for the QR size bound.
pub const DOTS_PER_MM: u32 = 8;

/// A receipt as printer bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The ESC/POS job, from `ESC @` to the cut.
    pub bytes: Vec<u8>,
    /// Characters printed as `?` because the code page lacks them.
    pub unmappable: Unmappable,
}

/// The `escpos` builder refused a command (only possible for out-of-range
/// parameters, which would be a bug here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ESC/POS encoding failed: {0}")]
pub struct RenderError(String);

impl From<escpos::errors::PrinterError> for RenderError {
    fn from(e: escpos::errors::PrinterError) -> Self {
        RenderError(e.to_string())
    }
}

/// An `escpos` driver that only collects bytes.
#[derive(Clone, Default)]
pub(crate) struct Collect(Arc<Mutex<Vec<u8>>>);

impl Driver for Collect {
    fn name(&self) -> String {
        "memory".to_string()
    }
    fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
        self.0
            .lock()
            .map_err(|_| escpos::errors::PrinterError::Io("poisoned buffer".into()))?
            .extend_from_slice(data);
        Ok(())
    }
    fn read(&self, _buf: &mut [u8]) -> escpos::errors::Result<usize> {
        Ok(0)
    }
    fn flush(&self) -> escpos::errors::Result<()> {
        Ok(())
    }
}

/// Runs `build` on an `escpos` printer writing to memory and returns the bytes.
pub(crate) fn with_escpos(
    build: impl FnOnce(&mut Printer<Collect>) -> escpos::errors::Result<()>,
) -> Result<Vec<u8>, RenderError> {
    let sink = Collect::default();
    let mut printer = Printer::new(sink.clone(), Protocol::default(), None);
    build(&mut printer)?;
    printer.print()?;
    let bytes = sink
        .0
        .lock()
        .map_err(|_| RenderError("poisoned buffer".into()))?
        .clone();
    Ok(bytes)
}

/// Renders a layout to one ESC/POS job.
pub fn render(layout: &Layout) -> Result<Rendered, RenderError> {
    let page = layout.page;
    let bytes = with_escpos(|p| {
        p.init()?.page_code(page.escpos_page())?;
        if layout.width == Width::Mm58 {
            // 42 columns on 58 mm paper (384 dots) need the narrower font B
            // (9 dots wide); font A (12 dots) gives 32.
            p.font(Font::B)?;
        }
        let mut align = Align::Left;
        let mut style = Style::PLAIN;
        for block in &layout.blocks {
            match block {
                Block::Line(line) => {
                    if line.align != align {
                        p.justify(justify(line.align))?;
                        align = line.align;
                    }
                    if line.style.bold != style.bold {
                        p.bold(line.style.bold)?;
                    }
                    if line.style.tall != style.tall {
                        if line.style.tall {
                            p.size(1, 2)?;
                        } else {
                            p.reset_size()?;
                        }
                    }
                    style = line.style;
                    let text: Vec<u8> = line
                        .text
                        .chars()
                        .map(|c| page.encode_char(c).unwrap_or(b'?'))
                        .collect();
                    if !text.is_empty() {
                        p.custom(&text)?;
                    }
                    p.feed()?;
                }
                Block::Qr(data) => {
                    if align != Align::Center {
                        p.justify(JustifyMode::CENTER)?;
                        align = Align::Center;
                    }
                    let option = QRCodeOption::new(
                        QRCodeModel::Model2,
                        QR_MODULE_DOTS,
                        QRCodeCorrectionLevel::M,
                    );
                    p.qrcode_option(data, option)?;
                    p.feed()?;
                }
                Block::Cut => {
                    p.feeds(2)?.cut()?;
                }
            }
        }
        Ok(())
    })?;
    Ok(Rendered {
        bytes,
        unmappable: layout.unmappable.clone(),
    })
}

/// The paper a layout prints, as text: rendered, then decoded
/// ([`crate::decode::Decoded::paper`]). What the node's `receipt show` prints.
pub fn preview(layout: &Layout) -> Result<String, RenderError> {
    let rendered = render(layout)?;
    Ok(crate::decode::decode(&rendered.bytes).paper(layout.width.columns()))
}

fn justify(align: Align) -> JustifyMode {
    match align {
        Align::Left => JustifyMode::LEFT,
        Align::Center => JustifyMode::CENTER,
        Align::Right => JustifyMode::RIGHT,
    }
}
