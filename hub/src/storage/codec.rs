//! Row codecs shared by every storage module: stored text parsed back into
//! typed ids ([`parse`], [`id_opt`]), HLC columns ([`hlc_opt`]), the `u64` ↔
//! SQL integer conversions ([`i`], [`u`]) and [`corrupt`] for a row that
//! does not decode.
//!
//! Kernel: no SQL and no other storage module besides [`super::error`].

use crate::storage::error::StorageError;
use caja_shared::hlc::Hlc;
use std::str::FromStr;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

pub(crate) fn parse<T: FromStr>(s: &str) -> Result<T, StorageError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(format!("{s:?}: {e}")))
}

/// A u64 as an SQLite integer (values here are seqs and counts, far below 2^63).
pub(crate) fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn id_opt<T: FromStr>(s: Option<String>) -> Result<Option<T>, StorageError>
where
    T::Err: std::fmt::Display,
{
    s.map(|s| parse(&s)).transpose()
}

pub(crate) fn hlc_opt(ms: Option<i64>, n: Option<i64>) -> Result<Option<Hlc>, StorageError> {
    match (ms, n) {
        (Some(ms), Some(n)) => Ok(Some(
            Hlc::new(ms, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?,
        )),
        _ => Ok(None),
    }
}

pub(crate) fn opt_str<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}
