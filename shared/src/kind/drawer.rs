//! The register's record of a cash drawer opened for a cash sale or a cash
//! refund apart from its receipt ([`SaleDrawerOpened`]), so head office sees
//! every opening, not only the ones a printed receipt kicked.
//!
//! Invariant: one event per opening the register recorded (its print job's
//! `drawer_openings` row); `deps` = the sale's `SaleCreated` or the return's
//! `SaleReturned`. A kick sent with the receipt itself is not an event: the
//! receipt's original prints once, and the sale says it took cash.

use serde::{Deserialize, Serialize};

use crate::ids::{ReturnId, SaleId};

/// How the drawer was opened apart from its receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawerHow {
    /// The real-time pulse (`DLE DC4 1 m t`), sent while the printer was
    /// reachable but could not print (paper end, cover open).
    Pulse,
    /// The cashier's key, recorded by hand, while the printer could not be
    /// reached.
    Manual,
}

impl DrawerHow {
    /// The wire name (`pulse`, `manual`).
    pub fn as_str(self) -> &'static str {
        match self {
            DrawerHow::Pulse => "pulse",
            DrawerHow::Manual => "manual",
        }
    }

    /// Looks up a wire name.
    pub fn parse(s: &str) -> Option<DrawerHow> {
        match s {
            "pulse" => Some(DrawerHow::Pulse),
            "manual" => Some(DrawerHow::Manual),
            _ => None,
        }
    }
}

/// Body of [`super::EventKind::SaleDrawerOpened`]: the drawer of a cash sale
/// (`sale_id`) or of a cash refund (`return_id`) opened apart from its
/// receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleDrawerOpened {
    /// The cash sale whose drawer it was (absent for a refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<SaleId>,
    /// The return whose cash refund it was (absent for a sale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<ReturnId>,
    /// Pulse or key.
    pub how: DrawerHow,
    /// When the register recorded the opening (its clock, UTC ms).
    pub opened_ms: i64,
}
