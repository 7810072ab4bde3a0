//! The error answer of DESIGN.md "Wire shapes": one struct for every non-2xx
//! reply, with the code, a message for a person and the extra fields a given code
//! carries (`field` for 400, `expected_seq` for `seq_gap`, `seq` and `acked_seq`
//! for `chain_mismatch`, `hub_time_ms` for 401, `Retry-After` for 429).
//!
//! Architecture invariant: nothing here knows about HTTP frameworks or SQL; the
//! `http` module turns an [`ApiError`] into a response.

use serde::Serialize;

/// A rejected request: HTTP status, DESIGN error code and details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// HTTP status code.
    #[serde(skip)]
    pub status: u16,
    /// DESIGN.md error code, e.g. `seq_gap`.
    pub error: &'static str,
    /// For a person.
    pub message: String,
    /// JSON path of the offending field (400 answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The seq the hub expects next (`seq_gap`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
    /// The first mismatching seq (`chain_mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The highest contiguous seq the hub holds (`chain_mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_seq: Option<u64>,
    /// The hub's clock (401 answers), so a node can correct its skew.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_time_ms: Option<i64>,
    /// Seconds to wait before retrying (429), sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// A bare error with a status, code and message.
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
            field: None,
            expected_seq: None,
            seq: None,
            acked_seq: None,
            hub_time_ms: None,
            retry_after_s: None,
        }
    }

    /// 400 with a code (`invalid`, `unknown_kind`, `unsupported_version`) naming
    /// the field at fault.
    pub fn bad_request(
        error: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(400, error, message)
        }
    }

    /// 400 `invalid` naming the field at fault.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::bad_request("invalid", field, message)
    }

    /// 401 with the hub's time.
    pub fn unauthorized(error: &'static str, message: impl Into<String>, now_ms: i64) -> ApiError {
        ApiError {
            hub_time_ms: Some(now_ms),
            ..ApiError::new(401, error, message)
        }
    }

    /// 403 (`wrong_store`, `quarantined`).
    pub fn forbidden(error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(403, error, message)
    }

    /// 404 for an unknown route or an admin object that does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    /// 409 `seq_gap`.
    pub fn seq_gap(expected_seq: u64) -> ApiError {
        ApiError {
            expected_seq: Some(expected_seq),
            ..ApiError::new(
                409,
                "seq_gap",
                format!("events must continue the chain at seq {expected_seq}"),
            )
        }
    }

    /// 409 `chain_mismatch`.
    pub fn chain_mismatch(seq: u64, acked_seq: u64) -> ApiError {
        ApiError {
            seq: Some(seq),
            acked_seq: Some(acked_seq),
            ..ApiError::new(
                409,
                "chain_mismatch",
                format!(
                    "the event at seq {seq} differs from the one the hub holds; the device is quarantined"
                ),
            )
        }
    }

    /// 413 `too_large`.
    pub fn too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            413,
            "too_large",
            format!("the body exceeds the limit of {limit_bytes} bytes"),
        )
    }

    /// 429 `overloaded` with `Retry-After`.
    pub fn overloaded(message: impl Into<String>, retry_after_s: u64) -> ApiError {
        ApiError {
            retry_after_s: Some(retry_after_s.max(1)),
            ..ApiError::new(429, "overloaded", message)
        }
    }

    /// 500: a storage failure. The message is generic; the cause is logged.
    pub fn internal() -> ApiError {
        ApiError::new(500, "internal", "the hub failed to process the request")
    }

    /// 503: the hub is shutting down.
    pub fn unavailable() -> ApiError {
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(503, "unavailable", "the hub is shutting down")
        }
    }

    /// The JSON body of the answer.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec())
    }

    /// 503 `timeout` with `Retry-After`: the request (its body, or the whole
    /// of it) did not arrive or complete within the serve loop's limits. A
    /// register retries it like any 5xx.
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(503, "timeout", message)
        }
    }

    /// 413 `too_large` naming the part of the body over its cap (an event,
    /// a signed document), with the size and the limit in the message.
    pub fn too_large_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(413, "too_large", message)
        }
    }

    // — FAULT —

    /// 503 `storage_unavailable` with `Retry-After`: the database could not
    /// write (disk full, I/O error); nothing of the request was kept.
    /// `Retry-After: 10`: long enough for an operator to free space, short
    /// enough that registers come back soon after.
    pub fn storage_unavailable() -> ApiError {
        ApiError {
            retry_after_s: Some(10),
            ..ApiError::new(
                503,
                "storage_unavailable",
                "the hub cannot write to its database (disk full or failing); nothing was kept, retry later",
            )
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_carry_only_their_fields() {
        let e = ApiError::seq_gap(7);
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"error":"seq_gap","message":"events must continue the chain at seq 7","expected_seq":7}"#
        );
        let e = ApiError::invalid("events[2].prev", "does not chain");
        assert_eq!(e.status, 400);
        assert!(String::from_utf8(e.to_json())
            .unwrap()
            .contains(r#""field":"events[2].prev""#));
        let e = ApiError::unauthorized("bad_signature", "x", 5);
        assert!(String::from_utf8(e.to_json())
            .unwrap()
            .contains(r#""hub_time_ms":5"#));
    }
}
