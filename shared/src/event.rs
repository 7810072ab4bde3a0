//! The event envelope v1 (DESIGN.md "Event envelope v1").
//!
//! ```text
//! {"v":1, "store", "device", "seq", "event_id", "hlc":{"ms","n"}, "deps":[…],
//!  "kind", "body":{…}, "prev"}
//! hash = lowercase hex SHA-256(canonical(envelope))
//! ```
//!
//! An [`Event`] keeps the JSON value it was built from or received as, and hashes
//! *that* value's canonical form, never a re-serialization of typed structs, so an
//! event with fields this version does not know still hashes to what its writer
//! computed.

use crate::canonical::{self, CanonicalError, Object, Value, MAX_SAFE_INTEGER};
use crate::digest::Hash256;
use crate::entropy::RandomSource;
use crate::hlc::Hlc;
use crate::ids::{DeviceId, EventId, IdError, Seq, StoreId};
use crate::kind::{BodyError, EventBody, EventKind};

/// The only envelope version this code knows.
pub const ENVELOPE_VERSION: i64 = 1;

/// Most causal dependencies one event may name. Bounded so a hostile event
/// cannot make the hub's dependency index grow without limit.
pub const MAX_DEPS: usize = 64;

/// The envelope's fields, in the order DESIGN.md lists them.
pub const ENVELOPE_FIELDS: [&str; 10] = [
    "v", "store", "device", "seq", "event_id", "hlc", "deps", "kind", "body", "prev",
];

/// What is wrong with an envelope. Maps onto DESIGN.md's 400 codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeProblem {
    /// `v` is an integer other than 1.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(i64),
    /// `kind` names a kind this version does not know.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// A field this version does not know.
    #[error("unknown field")]
    UnknownField,
    /// A required field is absent.
    #[error("missing")]
    Missing,
    /// A field has the wrong type or value.
    #[error("{0}")]
    Invalid(String),
}

/// An envelope error with the JSON path of the field at fault (relative to the
/// envelope, e.g. `seq` or `body.lines[0].qty_milli`; empty for the whole value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", if field.is_empty() { "event" } else { field.as_str() })]
pub struct EnvelopeError {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong.
    pub problem: EnvelopeProblem,
}

impl EnvelopeError {
    fn new(field: impl Into<String>, problem: EnvelopeProblem) -> EnvelopeError {
        EnvelopeError {
            field: field.into(),
            problem,
        }
    }

    fn invalid(field: &str, why: impl std::fmt::Display) -> EnvelopeError {
        EnvelopeError::new(field, EnvelopeProblem::Invalid(why.to_string()))
    }

    /// The wire error code of DESIGN.md (`invalid`, `unknown_kind`,
    /// `unsupported_version`).
    pub fn code(&self) -> &'static str {
        match self.problem {
            EnvelopeProblem::UnsupportedVersion(_) => "unsupported_version",
            EnvelopeProblem::UnknownKind(_) => "unknown_kind",
            _ => "invalid",
        }
    }

    /// Whether this error only means "written by a newer version" (an unknown
    /// kind or field), as opposed to malformed input.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self.problem,
            EnvelopeProblem::UnknownKind(_) | EnvelopeProblem::UnknownField
        )
    }

    fn from_body(e: BodyError) -> EnvelopeError {
        match e {
            BodyError::UnknownField { path } => {
                EnvelopeError::new(format!("body.{path}"), EnvelopeProblem::UnknownField)
            }
            BodyError::Invalid { path, reason } => EnvelopeError::new(
                if path.is_empty() {
                    "body".to_owned()
                } else {
                    format!("body.{path}")
                },
                EnvelopeProblem::Invalid(reason),
            ),
        }
    }
}

/// The typed envelope fields of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The store.
    pub store: StoreId,
    /// The device whose chain this event belongs to.
    pub device: DeviceId,
    /// Position in the device's chain.
    pub seq: Seq,
    /// The event's id (UUID v7, time part = `hlc.ms`).
    pub event_id: EventId,
    /// Hybrid logical clock timestamp.
    pub hlc: Hlc,
    /// Causal dependencies.
    pub deps: Vec<EventId>,
    /// The kind (validated as known).
    pub kind: EventKind,
    /// Hash of the device's previous event (zeros for seq 1).
    pub prev: Hash256,
}

/// An event: the JSON value, its typed envelope, its canonical bytes and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    envelope: Envelope,
    value: Value,
    canonical: Vec<u8>,
    hash: Hash256,
}

/// What a device fills in to append a new event; [`Event::build`] completes it.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// The store.
    pub store: StoreId,
    /// The writing device.
    pub device: DeviceId,
    /// Next seq of the device's chain.
    pub seq: Seq,
    /// Hash of the device's last event (zeros for the first).
    pub prev: Hash256,
    /// Timestamp from the device's HLC.
    pub hlc: Hlc,
    /// Causal dependencies.
    pub deps: Vec<EventId>,
    /// The typed body.
    pub body: EventBody,
}

impl Event {
    /// Builds a new event: picks a UUID v7 id whose time is `hlc.ms`, renders the
    /// envelope and hashes its canonical bytes.
    pub fn build(draft: EventDraft, rng: &mut impl RandomSource) -> Result<Event, EnvelopeError> {
        let event_id = EventId::new_v7(draft.hlc.ms(), rng)
            .map_err(|e| EnvelopeError::invalid("hlc.ms", e))?;
        let body = draft
            .body
            .to_value()
            .map_err(|e| EnvelopeError::invalid("body", e))?;
        let mut obj = Object::new();
        let mut put = |k: &str, v: Value| {
            obj.insert(k.to_owned(), v);
        };
        put("v", Value::Int(ENVELOPE_VERSION));
        put("store", Value::String(draft.store.to_string()));
        put("device", Value::String(draft.device.to_string()));
        put("seq", seq_value(draft.seq)?);
        put("event_id", Value::String(event_id.to_string()));
        let hlc = Value::from_typed(&draft.hlc).map_err(|e| EnvelopeError::invalid("hlc", e))?;
        put("hlc", hlc);
        put(
            "deps",
            Value::Array(
                draft
                    .deps
                    .iter()
                    .map(|d| Value::String(d.to_string()))
                    .collect(),
            ),
        );
        put("kind", Value::String(draft.body.kind().as_str().to_owned()));
        put("body", body);
        put("prev", Value::String(draft.prev.to_hex()));
        let event = Event::from_value(Value::Object(obj))?;
        // What we wrote must decode to what we meant.
        debug_assert_eq!(event.body().as_ref(), Ok(&draft.body));
        Ok(event)
    }

    /// Validates a received envelope (known fields only, `v` = 1, a known kind,
    /// ids, seq, hlc, deps, prev) and hashes its canonical form. The body is
    /// checked for being an object here; [`Event::body`] decodes it strictly.
    pub fn from_value(value: Value) -> Result<Event, EnvelopeError> {
        let envelope = parse_envelope(&value)?;
        let canonical = value.to_canonical_bytes();
        let hash = Hash256::of(&canonical);
        Ok(Event {
            envelope,
            value,
            canonical,
            hash,
        })
    }

    /// Parses JSON bytes (strict canonical-JSON rules) and validates the envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Event, EnvelopeError> {
        let value =
            canonical::parse(bytes).map_err(|e: CanonicalError| EnvelopeError::invalid("", e))?;
        Event::from_value(value)
    }

    /// Validates the envelope and decodes the body strictly: what the hub
    /// requires of every pushed event.
    pub fn from_value_strict(value: Value) -> Result<(Event, EventBody), EnvelopeError> {
        let event = Event::from_value(value)?;
        let body = event.body()?;
        Ok((event, body))
    }

    /// The typed envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The JSON value as received or built.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The canonical bytes (what is hashed, stored in the journal and sent).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Hash256 {
        self.hash
    }

    /// Shorthand for the envelope's seq.
    pub fn seq(&self) -> Seq {
        self.envelope.seq
    }

    /// Shorthand for the envelope's event id.
    pub fn id(&self) -> EventId {
        self.envelope.event_id
    }

    /// The raw body value.
    pub fn body_value(&self) -> &Value {
        // parse_envelope checked the body is present.
        self.value.get("body").unwrap_or(&Value::Null)
    }

    /// Decodes the body strictly into its typed form.
    pub fn body(&self) -> Result<EventBody, EnvelopeError> {
        EventBody::decode(self.envelope.kind, self.body_value()).map_err(EnvelopeError::from_body)
    }
}

fn seq_value(seq: Seq) -> Result<Value, EnvelopeError> {
    i64::try_from(seq.get())
        .ok()
        .filter(|n| *n <= MAX_SAFE_INTEGER)
        .map(Value::Int)
        .ok_or_else(|| EnvelopeError::invalid("seq", "beyond 2^53-1"))
}

fn field<'a>(obj: &'a Object, name: &str) -> Result<&'a Value, EnvelopeError> {
    obj.get(name)
        .ok_or_else(|| EnvelopeError::new(name, EnvelopeProblem::Missing))
}

fn string_field<'a>(obj: &'a Object, name: &str) -> Result<&'a str, EnvelopeError> {
    field(obj, name)?
        .as_str()
        .ok_or_else(|| EnvelopeError::invalid(name, "must be a string"))
}

fn id_field<T: std::str::FromStr<Err = IdError>>(
    obj: &Object,
    name: &str,
) -> Result<T, EnvelopeError> {
    string_field(obj, name)?
        .parse()
        .map_err(|e: IdError| EnvelopeError::invalid(name, e))
}

fn parse_envelope(value: &Value) -> Result<Envelope, EnvelopeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| EnvelopeError::invalid("", "an event must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| !ENVELOPE_FIELDS.contains(k)) {
        return Err(EnvelopeError::new(unknown, EnvelopeProblem::UnknownField));
    }
    match field(obj, "v")? {
        Value::Int(ENVELOPE_VERSION) => {}
        Value::Int(other) => {
            return Err(EnvelopeError::new(
                "v",
                EnvelopeProblem::UnsupportedVersion(*other),
            ))
        }
        _ => return Err(EnvelopeError::invalid("v", "must be an integer")),
    }
    let store: StoreId = id_field(obj, "store")?;
    let device: DeviceId = id_field(obj, "device")?;
    let seq = match field(obj, "seq")? {
        Value::Int(n) => u64::try_from(*n)
            .ok()
            .and_then(|n| Seq::new(n).ok())
            .ok_or_else(|| EnvelopeError::invalid("seq", "must be an integer ≥ 1"))?,
        _ => return Err(EnvelopeError::invalid("seq", "must be an integer ≥ 1")),
    };
    let event_id: EventId = id_field(obj, "event_id")?;
    let hlc = parse_hlc(field(obj, "hlc")?)?;
    if event_id.time_ms() != hlc.ms() {
        return Err(EnvelopeError::invalid(
            "event_id",
            format!(
                "time part {} ms differs from hlc.ms {}",
                event_id.time_ms(),
                hlc.ms()
            ),
        ));
    }
    let deps_value = field(obj, "deps")?
        .as_array()
        .ok_or_else(|| EnvelopeError::invalid("deps", "must be an array"))?;
    if deps_value.len() > MAX_DEPS {
        return Err(EnvelopeError::invalid(
            "deps",
            format!("more than {MAX_DEPS} dependencies"),
        ));
    }
    let mut deps = Vec::with_capacity(deps_value.len());
    for (i, d) in deps_value.iter().enumerate() {
        let path = format!("deps[{i}]");
        let id: EventId = d
            .as_str()
            .ok_or_else(|| EnvelopeError::invalid(&path, "must be a string"))?
            .parse()
            .map_err(|e: IdError| EnvelopeError::invalid(&path, e))?;
        if id == event_id {
            return Err(EnvelopeError::invalid(
                &path,
                "an event cannot depend on itself",
            ));
        }
        if deps.contains(&id) {
            return Err(EnvelopeError::invalid(&path, "duplicate dependency"));
        }
        deps.push(id);
    }
    let kind_name = string_field(obj, "kind")?;
    let kind = EventKind::parse(kind_name).ok_or_else(|| {
        EnvelopeError::new("kind", EnvelopeProblem::UnknownKind(kind_name.to_owned()))
    })?;
    if field(obj, "body")?.as_object().is_none() {
        return Err(EnvelopeError::invalid("body", "must be an object"));
    }
    let prev = string_field(obj, "prev")?
        .parse()
        .map_err(|e| EnvelopeError::invalid("prev", e))?;
    if seq == Seq::FIRST && prev != Hash256::ZERO {
        return Err(EnvelopeError::invalid(
            "prev",
            "the first event's prev must be 64 zeros",
        ));
    }
    Ok(Envelope {
        store,
        device,
        seq,
        event_id,
        hlc,
        deps,
        kind,
        prev,
    })
}

fn parse_hlc(v: &Value) -> Result<Hlc, EnvelopeError> {
    let obj = v
        .as_object()
        .ok_or_else(|| EnvelopeError::invalid("hlc", "must be an object {ms, n}"))?;
    if let Some(unknown) = obj.keys().find(|k| *k != "ms" && *k != "n") {
        return Err(EnvelopeError::new(
            format!("hlc.{unknown}"),
            EnvelopeProblem::UnknownField,
        ));
    }
    let ms = obj
        .get("ms")
        .ok_or_else(|| EnvelopeError::new("hlc.ms", EnvelopeProblem::Missing))?
        .as_i64()
        .filter(|ms| *ms >= 0)
        .ok_or_else(|| EnvelopeError::invalid("hlc.ms", "must be a non-negative integer"))?;
    let n = obj
        .get("n")
        .ok_or_else(|| EnvelopeError::new("hlc.n", EnvelopeProblem::Missing))?
        .as_i64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| EnvelopeError::invalid("hlc.n", "must be an integer 0..=4294967295"))?;
    Hlc::new(ms, n).map_err(|e| EnvelopeError::invalid("hlc", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededRandom;
    use crate::kind::{SaleVoided, ShiftOpened};
    use crate::money::Money;

    fn draft(seq: u64, prev: Hash256, body: EventBody) -> EventDraft {
        EventDraft {
            store: "01935f4e-8a00-7000-8000-000000000001".parse().unwrap(),
            device: "01935f4e-8a00-7000-8000-0000000000d1".parse().unwrap(),
            seq: Seq::new(seq).unwrap(),
            prev,
            hlc: Hlc::new(1_763_880_000_000, 0).unwrap(),
            deps: vec![],
            body,
        }
    }

    fn shift_body() -> EventBody {
        EventBody::ShiftOpened(ShiftOpened {
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().unwrap(),
            cashier: "ana".into(),
            opening_float: Money(500_000),
            staff_id: None,
        })
    }

    #[test]
    fn built_event_reparses_to_the_same_hash() {
        let mut rng = SeededRandom::new(5);
        let e = Event::build(draft(1, Hash256::ZERO, shift_body()), &mut rng).unwrap();
        let again = Event::from_json(e.canonical_bytes()).unwrap();
        assert_eq!(again.hash(), e.hash());
        assert_eq!(again.body().unwrap(), shift_body());
        assert_eq!(e.envelope().event_id.time_ms(), 1_763_880_000_000);
    }

    #[test]
    fn envelope_errors_name_the_field_and_code() {
        let mut rng = SeededRandom::new(5);
        let e = Event::build(draft(1, Hash256::ZERO, shift_body()), &mut rng).unwrap();
        let base = e.value().as_object().unwrap().clone();
        let with = |k: &str, v: Value| {
            let mut o = base.clone();
            o.insert(k.into(), v);
            Event::from_value(Value::Object(o)).unwrap_err()
        };
        let err = with("v", Value::Int(2));
        assert_eq!(
            (err.field.as_str(), err.code()),
            ("v", "unsupported_version")
        );
        let err = with("kind", Value::String("SaleDeleted".into()));
        assert_eq!((err.field.as_str(), err.code()), ("kind", "unknown_kind"));
        assert!(err.is_unknown());
        let err = with("seq", Value::Int(0));
        assert_eq!((err.field.as_str(), err.code()), ("seq", "invalid"));
        let err = with("prev", Value::String("ab".into()));
        assert_eq!(err.field, "prev");
        let err = with("extra", Value::Null);
        assert_eq!(err.field, "extra");
        assert!(err.is_unknown());
        let err = with(
            "deps",
            Value::Array(vec![Value::String(e.id().to_string())]),
        );
        assert_eq!(err.field, "deps[0]");
        let err = with(
            "event_id",
            Value::String("019aaf70-da01-7000-8000-0000000e0000".into()),
        );
        assert_eq!(err.field, "event_id");
        let mut o = base.clone();
        o.remove("store");
        let err = Event::from_value(Value::Object(o)).unwrap_err();
        assert_eq!(
            (err.field.as_str(), &err.problem),
            ("store", &EnvelopeProblem::Missing)
        );
    }

    #[test]
    fn first_event_must_chain_from_zeros_and_body_errors_are_prefixed() {
        let mut rng = SeededRandom::new(5);
        let err = Event::build(draft(1, Hash256::of(b"x"), shift_body()), &mut rng).unwrap_err();
        assert_eq!(err.field, "prev");
        let bad_body = EventBody::SaleVoided(SaleVoided {
            sale_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().unwrap(),
            reason: "x".into(),
            approval: None,
            approved_by: None,
        });
        let e = Event::build(draft(2, Hash256::of(b"x"), bad_body), &mut rng).unwrap();
        let mut o = e.value().as_object().unwrap().clone();
        o.insert("kind".into(), Value::String("ShiftOpened".into()));
        let wrong = Event::from_value(Value::Object(o)).unwrap();
        let err = wrong.body().unwrap_err();
        assert!(err.field.starts_with("body"), "{err}");
    }
}
