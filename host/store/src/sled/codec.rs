//! How each kind of stored value is encoded: one [`Encode`]/[`Decode`] pair per kind, and
//! nothing else in the backend serializes. Storage version 1 stores every value as the JSON
//! of its model type (and counters as big-endian i64); changing a kind's encoding (storage
//! v2's versioned rows) is a change to its pair here. The heads are partial decodes of a
//! kind — the fields a filter looks at, read without decoding the rest.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stagecraft_model::stats::Rollup;
use stagecraft_model::{
    ApiKey, Binding, Channel, ChannelConfig, Event, Job, MessageStatus, Module, ModuleVersion,
    Notification, OutboxMessage, Pipeline, Record, RecordKind, RunRecord, Tenant, Timer,
};
use stagecraft_model::{Comment, Task};

use super::deep;
use crate::{Result, StoreError};

/// A value kind as written to the tree.
pub(crate) trait Encode {
    fn encode(&self, key: &str) -> Result<Vec<u8>>;
}

/// A value kind (or a head of one) as read back from the tree.
pub(crate) trait Decode: Sized {
    fn decode(key: &str, bytes: &[u8]) -> Result<Self>;
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// Version 1: the model type's JSON.
fn json_encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| corrupt(key, e))
}

/// Version 1: the model type's JSON; a value stored by an older version that accepted
/// deeper values is read all the same (see `deep`).
fn json_decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) if deep::too_deep(&e) => match deep::decode(bytes) {
            Some(decoded) => decoded.map_err(|e| corrupt(key, e)),
            None => Err(corrupt(key, e)),
        },
        Err(e) => Err(corrupt(key, e)),
    }
}

/// Kinds stored as their JSON, both ways.
macro_rules! json_kind {
    ($($t:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(&self, key: &str) -> Result<Vec<u8>> {
                json_encode(key, self)
            }
        }
        impl Decode for $t {
            fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
                json_decode(key, bytes)
            }
        }
    )*};
}

json_kind!(
    Tenant,
    ApiKey,
    Pipeline,
    Record,
    Event,
    Binding,
    Module,
    ModuleVersion,
    RunRecord,
    OutboxMessage,
    Timer,
    Job,
    Notification,
    ChannelConfig,
    Rollup,
    Task,
    Comment,
    // The keys of a record's timers (`rtim/`).
    Vec<String>,
    // A webhook secret, an idempotency key's message id, a retention mark.
    String,
    // Flags under `meta/`.
    bool,
);

/// An index entry: the key says it all (`rev/`, `brun/`, `due/`, `sent/`); the value is
/// JSON `null`.
pub(crate) struct Marker;

impl Encode for Marker {
    fn encode(&self, key: &str) -> Result<Vec<u8>> {
        json_encode(key, &())
    }
}

impl Encode for str {
    fn encode(&self, key: &str) -> Result<Vec<u8>> {
        json_encode(key, self)
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
    pub id: String,
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

macro_rules! json_head {
    ($($t:ty),* $(,)?) => {$(
        impl Decode for $t {
            fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
                json_decode(key, bytes)
            }
        }
    )*};
}

json_head!(RecordHead, RunHead, RunOwner, MessageHead);
