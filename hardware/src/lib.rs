//! # caja-hardware
//!
//! Receipt printers (ESC/POS), cash drawers and serial scales for the register.
//!
//! The crate is split like the rest of Caja: a sans-IO core and a thin IO shell.
//!
//! - Pure: [`codepage`] (text → one byte per character, replacements counted),
//!   [`localtime`] (UTC ms → store-local date), [`receipt`] (the receipt model
//!   and its layout), [`render`] (layout → ESC/POS bytes through the `escpos`
//!   crate), [`escpos_ext`] (the commands we encode ourselves), [`decode`]
//!   (ESC/POS bytes → readable paper and commands), [`status`] (`DLE EOT`
//!   answers), [`queue`] (the print job state machine the node persists),
//!   [`scale`]'s frame parsers and certification, [`device`] (device addresses)
//!   and [`messages`] (every Spanish string this crate prints or shows).
//! - IO: [`transport`] (TCP, serial, device file, file, folder — the virtual
//!   printer with one text and one byte file per receipt; every write has a
//!   deadline), [`printer`] (status, delivery, drawer), [`scale::reader`] (polls a
//!   serial scale until it reports a stable weight or the deadline passes) and
//!   [`scale::sim`] (a simulated scale on a pseudo-terminal).
//!
//! No floats anywhere: weights are grams ([`caja_shared::money::QtyMilli`]), money
//! is centavos ([`caja_shared::money::Money`]). Unix only (device files, ptys).

pub mod codepage;
pub mod decode;
pub mod device;
pub mod escpos_ext;
pub mod localtime;
pub mod messages;
pub mod printer;
pub mod queue;
pub mod receipt;
pub mod render;
pub mod scale;
pub mod status;
pub mod transport;
