//! The ESC/POS commands this crate encodes by hand, because the `escpos` crate
//! (0.17) gets them wrong. Everything else (initialize, code page, font,
//! justification, emphasis, size, feed, cut, QR code, and decoding the status
//! answers) comes from `escpos` (see [`crate::render`] and [`crate::status`]).
//!
//! - **Cash drawer kick, `ESC p m t1 t2`.** `escpos` emits `ESC p m` only, without
//!   the two pulse times, so a printer takes the next two bytes of the job as
//!   `t1 t2` and they never print. We emit the five bytes with explicit times.
//! - **Real-time status request, `DLE EOT n`.** For `n = 1…4` the command is three
//!   bytes; `escpos` appends a fourth (`0x00`), which the printer then takes as
//!   data. We emit `DLE EOT n` (and the decoder knows which `n` take a fourth
//!   byte). The answers are still decoded by `escpos` ([`crate::status`]).
//! - **Receipt text.** Not a command, but `escpos`'s text path sends UTF-8 bytes
//!   (or fails) for characters missing from its page tables, and its PC858 table
//!   lacks `¿` and misplaces `®` and `Ò`; text goes through [`crate::codepage`]
//!   and is handed to `escpos` as raw bytes.
//!
//! Reference: Epson ESC/POS Command Reference, `ESC p` and `DLE EOT`.
//!
//! **Architecture invariant: constants and pure byte builders only**; the decoder
//! ([`crate::decode`]) understands every sequence built here.

/// Escape.
pub const ESC: u8 = 0x1B;
/// Group separator (the `GS` commands).
pub const GS: u8 = 0x1D;
/// Data link escape (real-time commands).
pub const DLE: u8 = 0x10;
/// End of transmission (`DLE EOT n`, real-time status).
pub const EOT: u8 = 0x04;
/// Device control 4 (`DLE DC4 n`, real-time requests).
pub const DC4: u8 = 0x14;
/// Line feed.
pub const LF: u8 = 0x0A;

/// The drawer connector pin that drives the drawer's solenoid.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum DrawerPin {
    /// Pin 2 (`m = 0`): the usual single drawer.
    #[default]
    Pin2,
    /// Pin 5 (`m = 1`): a second drawer.
    Pin5,
}

/// How long the drawer's solenoid is driven and rested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DrawerPulse {
    /// Which connector pin.
    pub pin: DrawerPin,
    /// On time, milliseconds (sent in 2 ms units, 2..=510).
    pub on_ms: u16,
    /// Off time, milliseconds (sent in 2 ms units, 2..=510; at least the on time).
    pub off_ms: u16,
}

impl Default for DrawerPulse {
    /// Pin 2, 100 ms on, 200 ms off: opens common drawers (the solenoid needs
    /// 50–200 ms).
    fn default() -> Self {
        DrawerPulse {
            pin: DrawerPin::Pin2,
            on_ms: 100,
            off_ms: 200,
        }
    }
}

/// `ESC p m t1 t2`: pulse the drawer connector. Times are rounded up to 2 ms units
/// and clamped to `1..=255` units; `t2` is raised to `t1` when shorter (the
/// printer requires `t2 ≥ t1`).
pub fn drawer_kick(pulse: DrawerPulse) -> [u8; 5] {
    let units = |ms: u16| -> u8 { u8::try_from(ms.div_ceil(2).clamp(1, 255)).unwrap_or(u8::MAX) };
    let m = match pulse.pin {
        DrawerPin::Pin2 => 0,
        DrawerPin::Pin5 => 1,
    };
    let t1 = units(pulse.on_ms);
    let t2 = units(pulse.off_ms).max(t1);
    [ESC, b'p', m, t1, t2]
}

/// `DLE DC4 1 m t`: generate the drawer pulse in real time — executed on
/// arrival even while the printer is offline for paper end or an open cover
/// (Epson ESC/POS reference, `DLE DC4 n` with `n = 1`), so the drawer opens
/// without waiting for the receipt. `t` is the on time in 100 ms units (the off
/// time is the same), clamped to `1..=8`.
pub fn drawer_pulse_realtime(pin: DrawerPin, t: u8) -> [u8; 5] {
    let m = match pin {
        DrawerPin::Pin2 => 0,
        DrawerPin::Pin5 => 1,
    };
    [DLE, DC4, 1, m, t.clamp(1, 8)]
}

/// `DLE EOT n`: real-time status request (`n` = 1 printer, 2 offline cause,
/// 3 error cause, 4 roll paper sensor).
pub const fn status_request(n: u8) -> [u8; 3] {
    [DLE, EOT, n]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the `escpos` behaviour this module works around: when a new version
    /// emits the full commands, these functions can go.
    #[test]
    fn escpos_defects_we_work_around() {
        use escpos::utils::{CashDrawer, RealTimeStatusRequest};
        let drawer = crate::render::with_escpos(|p| p.cash_drawer(CashDrawer::Pin2).map(|_| ()));
        assert_eq!(drawer, Ok(vec![ESC, b'p', 0]), "no pulse times");
        let status = crate::render::with_escpos(|p| {
            p.real_time_status(RealTimeStatusRequest::Printer)
                .map(|_| ())
        });
        assert_eq!(status, Ok(vec![DLE, EOT, 1, 0]), "a stray fourth byte");
        assert_eq!(status_request(1), [DLE, EOT, 1]);
    }

    #[test]
    fn the_real_time_pulse_is_dle_dc4_1_m_t() {
        assert_eq!(
            drawer_pulse_realtime(DrawerPin::Pin2, 1),
            [0x10, 0x14, 1, 0, 1]
        );
        assert_eq!(
            drawer_pulse_realtime(DrawerPin::Pin5, 20),
            [0x10, 0x14, 1, 1, 8]
        );
        assert_eq!(
            drawer_pulse_realtime(DrawerPin::Pin2, 0),
            [0x10, 0x14, 1, 0, 1]
        );
    }

    #[test]
    fn drawer_kick_has_five_bytes_with_pulse_times() {
        assert_eq!(
            drawer_kick(DrawerPulse::default()),
            [0x1B, b'p', 0, 50, 100]
        );
        let short_off = DrawerPulse {
            pin: DrawerPin::Pin5,
            on_ms: 2000,
            off_ms: 1,
        };
        assert_eq!(drawer_kick(short_off), [0x1B, b'p', 1, 255, 255]);
    }
}
