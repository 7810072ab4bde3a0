//! Store-local dates and times: the pure calendar arithmetic lives in
//! [`caja_shared::localtime`] (the hub needs it for fiscal expiry dates and
//! monthly reports); re-exported here for receipts.

pub use caja_shared::localtime::*;
