//! Storage rows: what a backend stores, as types of its own — never the API's serde types.
//!
//! Each entity has one row struct here (`RecordRow`, `EventRow`, `RunRow`, …) with
//! conversions from and to its model type, so renaming an API field never rewrites stored
//! data, and changing a row never changes the API. Rows are encoded with postcard behind a
//! two-byte header, `[FORMAT, row version]`:
//! - timestamps are integers ([`Ts`]: seconds and nanoseconds, exact);
//! - enums are small integers (postcard writes a variant's index: NEVER reorder or remove a
//!   variant of a row enum; add new ones at the end);
//! - free-form JSON (custom fields, payloads, config) is JSON text inside the row
//!   ([`JsonText`]), parsed only when the model value is built — a head decode (see
//!   `RecordHeadRow`) never touches it;
//! - the fields a filter looks at come first in a row, so a head is a prefix of the row and
//!   decodes without reading the rest.
//!
//! A row's version says which layout follows; a layout change adds a version (and a decode
//! arm for the old one). Only the types in this module implement [`StoredRow`], and the
//! sled codec writes nothing else: a model type cannot be stored directly. Other backends
//! (PostgreSQL) store the same bytes through [`Stored`], sealed and implemented here for
//! each model type that has a row.

mod automation;
mod binding;
mod event;
mod id;
mod journal;
mod module;
mod outbox;
mod pipeline;
mod record;
mod run;
mod stats;
mod stored;
mod task;
mod task_event;
mod tenant;

pub(crate) use automation::{JobRow, TimerRow};
pub(crate) use binding::BindingRow;
pub(crate) use event::EventRow;
pub(crate) use id::IdRow;
pub(crate) use journal::{apply, blank, changes, own_snapshot, FieldRow, JournalRow, SnapRow};
pub(crate) use module::{ModuleRow, ModuleVersionRow};
pub(crate) use outbox::{ChannelConfigRow, MessageHeadRow, MessageRow, NotificationRow};
pub(crate) use pipeline::PipelineRow;
pub(crate) use record::{RecordHeadRow, RecordRow};
pub(crate) use run::{RunHeadRow, RunOwnerRow, RunRow};
pub(crate) use stats::RollupRow;
pub(crate) use task::{CommentRow, TaskRow};
pub(crate) use tenant::{ApiKeyRow, TenantRow};

pub use stored::Stored;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first byte of every encoded row. JSON (storage v1) never starts with it: a JSON
/// document starts with whitespace, `{`, `[`, `"`, a digit, `-`, `t`, `f` or `n`, and 0xC2
/// is not ASCII.
pub(crate) const FORMAT: u8 = 0xC2;

/// Why a row could not be encoded, decoded or turned into its model value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RowError {
    #[error("not a storage row (no format tag)")]
    Untagged,
    #[error("row version {found} of {what} is newer than this binary reads (up to {known})")]
    Newer {
        what: &'static str,
        found: u8,
        known: u8,
    },
    #[error("bad row encoding: {0}")]
    Encoding(#[from] postcard::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A storage row type: its name (for messages) and the layout version it writes.
pub(crate) trait StoredRow: Serialize + DeserializeOwned + sealed::Sealed {
    const WHAT: &'static str;
    const VERSION: u8;
}

mod sealed {
    /// Only this module's row types may be stored.
    pub trait Sealed {}
}

/// Declares row types: their name and current version.
macro_rules! stored_row {
    ($($t:ty => $what:literal, $v:literal);* $(;)?) => {$(
        impl $crate::rows::sealed::Sealed for $t {}
        impl $crate::rows::StoredRow for $t {
            const WHAT: &'static str = $what;
            const VERSION: u8 = $v;
        }
    )*};
}
pub(crate) use stored_row;

// Small values kept under `meta/`, `rtim/`, `whsec/`, `idem/`, `retm/` keys.
stored_row!(
    String => "text", 1;
    bool => "flag", 1;
    Vec<String> => "key list", 1;
);

/// True when `bytes` is an encoded row (else it is storage v1's JSON).
pub(crate) fn is_row(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT)
}

/// The row version of an encoded row (None for storage v1's JSON).
pub(crate) fn version(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [FORMAT, v, ..] => Some(*v),
        _ => None,
    }
}

pub(crate) fn encode<R: StoredRow>(row: &R) -> Result<Vec<u8>, RowError> {
    Ok(postcard::to_extend(row, vec![FORMAT, R::VERSION])?)
}

/// The row version of `bytes`, checked against what `R` knows.
fn body<R: StoredRow>(bytes: &[u8]) -> Result<&[u8], RowError> {
    match bytes {
        [FORMAT, v, rest @ ..] if *v == R::VERSION => Ok(rest),
        [FORMAT, v, ..] if *v > R::VERSION => Err(RowError::Newer {
            what: R::WHAT,
            found: *v,
            known: R::VERSION,
        }),
        [FORMAT, v, ..] => Err(RowError::Invalid(format!(
            "unknown row version {v} of {}",
            R::WHAT
        ))),
        _ => Err(RowError::Untagged),
    }
}

pub(crate) fn decode<R: StoredRow>(bytes: &[u8]) -> Result<R, RowError> {
    Ok(postcard::from_bytes(body::<R>(bytes)?)?)
}

/// Decodes the leading fields of a row `R` as `H` (a prefix of `R`'s fields, same order),
/// leaving the rest of the bytes unread.
pub(crate) fn decode_head<R: StoredRow, H: DeserializeOwned>(bytes: &[u8]) -> Result<H, RowError> {
    Ok(postcard::from_bytes(body::<R>(bytes)?)?)
}

/// A timestamp, exact to the nanosecond: seconds since the epoch, then nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ts(i64, u32);

impl From<&DateTime<Utc>> for Ts {
    fn from(t: &DateTime<Utc>) -> Ts {
        Ts(t.timestamp(), t.timestamp_subsec_nanos())
    }
}

impl Ts {
    pub(crate) fn get(self) -> Result<DateTime<Utc>, RowError> {
        DateTime::from_timestamp(self.0, self.1).ok_or_else(|| {
            RowError::Invalid(format!("timestamp {}.{} out of range", self.0, self.1))
        })
    }
}

pub(crate) fn ts_opt(t: &Option<DateTime<Utc>>) -> Option<Ts> {
    t.as_ref().map(Ts::from)
}

pub(crate) fn opt_ts(t: Option<Ts>) -> Result<Option<DateTime<Utc>>, RowError> {
    t.map(Ts::get).transpose()
}

/// Free-form JSON kept as its text, parsed only when the model value is built.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct JsonText(pub Vec<u8>);

impl JsonText {
    pub(crate) fn of<T: Serialize + ?Sized>(v: &T) -> JsonText {
        // Serializing a JSON value (or map of them) into memory cannot fail.
        JsonText(serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()))
    }

    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, RowError> {
        match serde_json::from_slice(&self.0) {
            Ok(v) => Ok(v),
            Err(e) if crate::sled::deep::too_deep(&e) => match crate::sled::deep::decode(&self.0) {
                Some(r) => r.map_err(|e| RowError::Invalid(format!("stored JSON: {e}"))),
                None => Err(RowError::Invalid(format!("stored JSON: {e}"))),
            },
            Err(e) => Err(RowError::Invalid(format!("stored JSON: {e}"))),
        }
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonText, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = JsonText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON text bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<JsonText, E> {
                Ok(JsonText(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<JsonText, E> {
                Ok(JsonText(v))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// How an event row's bytes split between its fields (the disk bench's breakdown).
pub(crate) fn event_breakdown(bytes: &[u8]) -> Vec<(&'static str, usize)> {
    match version(bytes) {
        Some(1) => decode::<EventRow>(bytes).map_or_else(|_| Vec::new(), |e| e.breakdown()),
        _ => decode::<JournalRow>(bytes).map_or_else(|_| Vec::new(), |e| e.breakdown()),
    }
}

#[cfg(test)]
mod tests;
