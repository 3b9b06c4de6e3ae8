//! How each kind of stored value is encoded: one [`Encode`]/[`Decode`] pair per kind, and
//! nothing else in the backend serializes. Storage v2 writes every value as its storage row
//! ([`crate::rows`]: postcard behind a format tag and row version; counters stay big-endian
//! i64, index entries are empty). Decoding also reads storage v1's values (the JSON of the
//! model types) — the format tag tells them apart — so a data dir migrating in place
//! ([`super::upgrade`]) reads whole at every step. The heads are partial decodes of a kind —
//! the fields a filter looks at, read without decoding the rest.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use stagecraft_model::stats::Rollup;
use stagecraft_model::{
    ApiKey, Binding, Channel, ChannelConfig, Event, Job, MessageStatus, Module, ModuleVersion,
    Notification, OutboxMessage, Pipeline, Record, RecordKind, RunRecord, Tenant, Timer,
};
use stagecraft_model::{Comment, Task};

use super::deep;
use crate::rows::{self, StoredRow};
use crate::{Result, StoreError};

/// A value kind as written to the tree.
pub(crate) trait Encode {
    fn encode(&self, key: &str) -> Result<Vec<u8>>;
}

/// A value kind (or a head of one) as read back from the tree.
pub(crate) trait Decode: Sized {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self>;
}

pub(super) fn corrupt(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// Storage v1: the model type's JSON; a value stored by an older version that accepted
/// deeper values is read all the same (see `deep`).
pub(super) fn json_decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) if deep::too_deep(&e) => match deep::decode(bytes) {
            Some(decoded) => decoded.map_err(|e| corrupt(key, e)),
            None => Err(corrupt(key, e)),
        },
        Err(e) => Err(corrupt(key, e)),
    }
}

fn row_encode<R: StoredRow>(key: &str, row: &R) -> Result<Vec<u8>> {
    rows::encode(row).map_err(|e| corrupt(key, e))
}

/// Kinds stored as their row `R` (v2), read from a row or from v1's JSON.
macro_rules! row_kind {
    ($($t:ty => $r:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(&self, key: &str) -> Result<Vec<u8>> {
                row_encode(key, &<$r>::from(self))
            }
        }
        impl Decode for $t {
            fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
                if !rows::is_row(bytes) {
                    return json_decode(key, bytes);
                }
                let row: $r = rows::decode(bytes).map_err(|e| corrupt(key, e))?;
                <$t>::try_from(row).map_err(|e| corrupt(key, e))
            }
        }
    )*};
}

row_kind!(
    Tenant => rows::TenantRow,
    ApiKey => rows::ApiKeyRow,
    Pipeline => rows::PipelineRow,
    Record => rows::RecordRow,
    Binding => rows::BindingRow,
    Module => rows::ModuleRow,
    ModuleVersion => rows::ModuleVersionRow,
    RunRecord => rows::RunRow,
    OutboxMessage => rows::MessageRow,
    Timer => rows::TimerRow,
    Job => rows::JobRow,
    Notification => rows::NotificationRow,
    ChannelConfig => rows::ChannelConfigRow,
    Rollup => rows::RollupRow,
    Task => rows::TaskRow,
    Comment => rows::CommentRow,
);

/// Events are written as the journal's row v2 with a snapshot that needs no other event
/// (the commit path writes snapshots as changes to an earlier one itself: `journal`), and
/// read from v1's JSON, row v1 or row v2. A snapshot stored as changes to another event's
/// needs that event: [`super::journal::read`] resolves it, this refuses it.
impl Encode for Event {
    fn encode(&self, key: &str) -> Result<Vec<u8>> {
        let (tenant, id) = super::journal::key_parts(key);
        row_encode(
            key,
            &rows::JournalRow::new(tenant, id, self, rows::own_snapshot(self)),
        )
    }
}

impl Decode for Event {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        match super::journal::stored(key, bytes)? {
            super::journal::Stored::Whole(e) => Ok(e),
            super::journal::Stored::Delta { base, .. } => Err(corrupt(
                key,
                format!("its snapshot is stored as changes to event {base}'s; read it through the journal"),
            )),
        }
    }
}

impl Encode for rows::JournalRow {
    fn encode(&self, key: &str) -> Result<Vec<u8>> {
        row_encode(key, self)
    }
}

/// Small values that are their own row: the keys of a record's timers (`rtim/`); a webhook
/// secret, an idempotency key's message id, a retention mark; flags under `meta/`.
macro_rules! plain_kind {
    ($($t:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(&self, key: &str) -> Result<Vec<u8>> {
                row_encode(key, self)
            }
        }
        impl Decode for $t {
            fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
                if !rows::is_row(bytes) {
                    return json_decode(key, bytes);
                }
                rows::decode(bytes).map_err(|e| corrupt(key, e))
            }
        }
    )*};
}

plain_kind!(Vec<String>, String, bool);

/// An index entry: the key says it all (`rev/`, `brun/`, `due/`, `sent/`); the value is
/// empty (v1 stored JSON `null`; nothing reads it).
pub(crate) struct Marker;

impl Encode for Marker {
    fn encode(&self, _key: &str) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

impl Encode for str {
    fn encode(&self, key: &str) -> Result<Vec<u8>> {
        row_encode(key, &self.to_string())
    }
}

/// Counters (`cnt/`, `muse/`, `fup/`, `fupt/`) are big-endian i64; anything else reads 0.
pub(crate) fn counter(bytes: &[u8]) -> i64 {
    match <[u8; 8]>::try_from(bytes) {
        Ok(a) => i64::from_be_bytes(a),
        Err(_) => 0,
    }
}

pub(crate) fn encode_counter(value: i64) -> [u8; 8] {
    value.to_be_bytes()
}

/// The fields a record filter looks at: decoding only these (serde skips the rest without
/// allocating, and no timestamps are parsed) makes scanning past non-matches cheap.
#[derive(Deserialize)]
pub(crate) struct RecordHead {
    pub kind: RecordKind,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// The fields a run filter looks at (the rest is skipped without being decoded).
#[derive(Deserialize)]
pub(crate) struct RunHead {
    #[serde(default)]
    pub record: Option<String>,
    pub binding: String,
    pub module: String,
    pub outcome: OutcomeHead,
}

#[derive(Deserialize)]
pub(crate) struct OutcomeHead {
    pub kind: String,
}

/// Whose run it is: the module and binding (for the rollups of the messages it queued).
#[derive(Deserialize)]
pub(crate) struct RunOwner {
    pub module: String,
    pub binding: String,
}

/// The fields a message filter looks at.
#[derive(Deserialize)]
pub(crate) struct MessageHead {
    pub status: MessageStatus,
    pub channel: Channel,
    #[serde(default)]
    pub record: Option<String>,
}

/// Heads read from a row's leading fields ([`rows::decode_head`]) or from v1's JSON.
macro_rules! head_kind {
    ($($t:ty => $r:ty, $h:ty);* $(;)?) => {$(
        impl Decode for $t {
            fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
                if !rows::is_row(bytes) {
                    return json_decode(key, bytes);
                }
                let head: $h = rows::decode_head::<$r, $h>(bytes).map_err(|e| corrupt(key, e))?;
                Ok(head.into())
            }
        }
    )*};
}

head_kind!(
    RecordHead => rows::RecordRow, rows::RecordHeadRow;
    RunHead => rows::RunRow, rows::RunHeadRow;
    RunOwner => rows::RunRow, rows::RunOwnerRow;
    MessageHead => rows::MessageRow, rows::MessageHeadRow;
);

impl From<rows::RecordHeadRow> for RecordHead {
    fn from(h: rows::RecordHeadRow) -> RecordHead {
        RecordHead {
            kind: h.kind.into(),
            name: h.name,
            email: h.email,
            pipeline: h.pipeline,
            stage: h.stage,
            owner: h.owner,
        }
    }
}

impl From<rows::RunHeadRow> for RunHead {
    fn from(h: rows::RunHeadRow) -> RunHead {
        RunHead {
            record: h.record,
            binding: h.binding,
            module: h.module,
            outcome: OutcomeHead {
                kind: h.outcome.name().to_string(),
            },
        }
    }
}

impl From<rows::RunOwnerRow> for RunOwner {
    fn from(h: rows::RunOwnerRow) -> RunOwner {
        RunOwner {
            module: h.module,
            binding: h.binding,
        }
    }
}

impl From<rows::MessageHeadRow> for MessageHead {
    fn from(h: rows::MessageHeadRow) -> MessageHead {
        MessageHead {
            status: h.status.into(),
            channel: h.channel.into(),
            record: h.record,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const T: &str = "2026-01-02T03:04:05.000000006Z";

    fn v<M: DeserializeOwned>(j: serde_json::Value) -> M {
        serde_json::from_value(j).unwrap()
    }

    /// Every kind is written as a storage row (never as the model's JSON) and reads back,
    /// and v1's JSON of the same value reads back equal.
    #[test]
    fn every_kind_is_written_as_a_row_and_v1_json_still_reads() {
        fn check<M>(m: M)
        where
            M: Encode + Decode + serde::Serialize + PartialEq + std::fmt::Debug,
        {
            let bytes = m.encode("k").unwrap();
            assert_eq!(bytes.first(), Some(&rows::FORMAT), "{m:?} is a row");
            assert_eq!(M::decode("k", &bytes).unwrap(), m);
            let json = serde_json::to_vec(&m).unwrap();
            assert_eq!(M::decode("k", &json).unwrap(), m, "v1 JSON reads");
        }
        check::<Record>(v(
            json!({"id": "rec_1", "kind": "lead", "name": "n", "email": null,
            "phone": null, "amount": null, "currency": null, "owner": null, "company": null,
            "contact": null, "pipeline": "p", "stage": "s", "custom": {"a": [1]}, "version": 1,
            "created_at": T, "updated_at": T}),
        ));
        check::<Tenant>(v(json!({"id": "t", "name": "T", "created_at": T})));
        check::<Job>(v(
            json!({"id": "j", "tenant": "t", "event": "e", "binding": null}),
        ));
        check::<Module>(v(
            json!({"name": "m", "latest": 1, "created_at": T, "updated_at": T}),
        ));
        check(Rollup::default());
        check(ChannelConfig::default());
        check(vec!["timer/1".to_string()]);
        check("secret".to_string());
        check(true);
        assert!(Marker.encode("rev/x").unwrap().is_empty());
    }

    /// Heads read the same fields from a row as from v1's JSON.
    #[test]
    fn heads_read_rows_and_v1_json_alike() {
        let m: OutboxMessage = v(json!({"id": "msg", "channel": "email", "to": "a@b.co",
            "subject": "s", "body": "b", "idempotency_key": null, "record": "rec_1",
            "run": "run_1", "status": "sending", "created_at": T}));
        for bytes in [m.encode("k").unwrap(), serde_json::to_vec(&m).unwrap()] {
            let h = MessageHead::decode("k", &bytes).unwrap();
            assert_eq!((h.status, h.channel), (m.status, m.channel));
            assert_eq!(h.record.as_deref(), Some("rec_1"));
        }
    }
}
