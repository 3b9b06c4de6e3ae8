//! Storage v1 -> v2, in place: every value stored as its model type's JSON is rewritten as
//! its storage row ([`crate::rows`]), family by family, when a data dir opens.
//!
//! - **Bounded:** a family is converted in batches of [`BATCH`] values, each one transaction.
//! - **Crash-safe and idempotent:** reads understand both encodings at every step (the row's
//!   format tag tells them apart), a batch converts only values still in JSON, and a
//!   finished family leaves a marker (`meta/rows/{family}`), so an interrupted migration
//!   resumes where it stopped. Batches are written lazily (a crash loses at most unflushed
//!   conversions, whose JSON is still there); each family is flushed before its marker.
//! - **Recorded:** when every family is done, `meta/format` says [`FORMAT`] and the markers
//!   go. A data dir whose format is newer than [`FORMAT`] is refused before anything
//!   touches it.
//!
//! Format 3 (the journal's event row v2: compact ids, snapshots as changes to an earlier
//! event's, see `super::journal`) reads everything format 2 stored as it is, so a format-2
//! data dir only records the new format; recording it keeps a format-2 binary from
//! opening a journal it cannot read.
//!
//! Values nobody could read before (corrupt JSON) are left as they are, and stay corrupt.

use serde::Serialize;

use super::codec::{counter, Decode, Encode};
use super::{family, SledBackend};
use crate::change::Durability;
use crate::rows;
use crate::{Result, StoreError};
use stagecraft_model::stats::Rollup;
use stagecraft_model::{
    ApiKey, Binding, ChannelConfig, Event, Job, Module, ModuleVersion, Notification, OutboxMessage,
    Pipeline, Record, RunRecord, Tenant, Timer,
};

/// The storage format this binary writes: 3, storage rows with the journal's event row v2.
pub(super) const FORMAT: i64 = 3;

/// The first format of storage rows; every later one reads its rows as they are.
const FIRST_ROWS_FORMAT: i64 = 2;

/// Where a data dir records its format (a big-endian i64; absent in storage v1).
pub(super) const FORMAT_KEY: &str = "meta/format";

/// How many values one migration transaction converts.
pub(super) const BATCH: usize = 256;

/// A family converted by [`convert`]: its key prefix and how to rewrite its values.
pub(super) struct Family {
    pub prefix: &'static str,
    convert: fn(&SledBackend, &'static str) -> Result<u64>,
    v1_json: fn(&str, &[u8]) -> Result<serde_json::Value>,
}

/// Every family whose values are rows, with the kind stored under it. (Counters and index
/// entries hold no model values and keep their bytes.)
pub(super) const FAMILIES: &[Family] = &[
    family::<Tenant>("tenant/"),
    family::<ApiKey>("key/"),
    family::<Pipeline>("pipe/"),
    family::<Record>("rec/"),
    family::<Event>("evt/"),
    family::<Binding>("bind/"),
    family::<Module>("mod/"),
    family::<ModuleVersion>("modv/"),
    family::<RunRecord>("run/"),
    family::<OutboxMessage>("out/"),
    family::<Timer>("timer/"),
    family::<Job>("job/"),
    family::<ChannelConfig>("chan/"),
    family::<Notification>("notif/"),
    family::<Rollup>("roll/"),
    family::<Vec<String>>("rtim/"),
    family::<String>("whsec/"),
    family::<String>("idem/"),
    family::<String>("retm/"),
    family::<bool>(family::FOLLOW_UPS_COUNTED),
    family::<bool>(family::MODULES_COUNTED),
];

const fn family<T: Decode + Encode + Serialize>(prefix: &'static str) -> Family {
    Family {
        prefix,
        convert: convert::<T>,
        v1_json: v1_json_of::<T>,
    }
}

fn v1_json_of<T: Decode + Serialize>(key: &str, bytes: &[u8]) -> Result<serde_json::Value> {
    serde_json::to_value(T::decode(key, bytes)?).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// The JSON storage v1 kept for the value stored under `key` (in either encoding): how
/// tests plant what an older version would have left.
pub(crate) fn v1_json(key: &str, bytes: &[u8]) -> Result<serde_json::Value> {
    v1_json_in(None, key, bytes)
}

/// [`v1_json`], with the tree to read an event's snapshot base from (`tree`: None reads
/// only events whose snapshot needs no other).
pub(crate) fn v1_json_in(
    tree: Option<&sled::Tree>,
    key: &str,
    bytes: &[u8],
) -> Result<serde_json::Value> {
    if let (Some(t), true) = (tree, key.starts_with("evt/")) {
        let (e, _, _) = super::journal::resolve(t, key, bytes)?;
        return serde_json::to_value(e).map_err(|e| StoreError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        });
    }
    match FAMILIES.iter().find(|f| key.starts_with(f.prefix)) {
        Some(f) => (f.v1_json)(key, bytes),
        None => Err(StoreError::NotFound(format!(
            "a value kind stored under {key}"
        ))),
    }
}

fn marker(prefix: &str) -> String {
    format!("meta/rows/{prefix}")
}

/// The format recorded in the data dir: None for storage v1 (or a new, empty one).
pub(super) fn stored_format(b: &SledBackend) -> Result<Option<i64>> {
    Ok(b.data.get(FORMAT_KEY)?.map(|v| counter(&v)))
}

/// Refuses a data dir written by a newer binary, before anything else reads or writes it.
pub(super) fn check(b: &SledBackend) -> Result<()> {
    match stored_format(b)? {
        Some(f) if f > FORMAT => Err(StoreError::Refused(format!(
            "this data dir was written by a newer Stagecraft (storage format {f}); this \
             binary reads storage formats up to {FORMAT}. Run the newer version, or restore \
             a backup made by this one"
        ))),
        _ => Ok(()),
    }
}

/// Converts every family not yet done, then records the format. Returns how many values
/// it rewrote (0 when the data dir was already at [`FORMAT`]).
pub(super) fn run(b: &SledBackend) -> Result<u64> {
    match stored_format(b)? {
        Some(f) if f >= FORMAT => return Ok(0),
        Some(f) if f >= FIRST_ROWS_FORMAT => {
            b.transact(|tx| tx.set_counter(FORMAT_KEY, FORMAT))?;
            return Ok(0);
        }
        _ => {}
    }
    let mut total = 0;
    for f in FAMILIES {
        total += migrate_family(b, f)?;
    }
    b.transact(|tx| {
        tx.set_counter(FORMAT_KEY, FORMAT)?;
        for f in FAMILIES {
            tx.remove(&marker(f.prefix))?;
        }
        Ok(())
    })?;
    Ok(total)
}

/// Converts one family unless its marker says it is done, then sets the marker.
pub(super) fn migrate_family(b: &SledBackend, f: &Family) -> Result<u64> {
    if b.data.get(&marker(f.prefix))?.is_some() {
        return Ok(0);
    }
    let n = (f.convert)(b, f.prefix)?;
    b.data.flush()?;
    b.transact(|tx| tx.set_counter(&marker(f.prefix), 1))?;
    if n > 0 {
        tracing::info!(family = f.prefix, rows = n, "migrated to storage rows");
    }
    Ok(n)
}

/// Rewrites the JSON values under `prefix` as rows, [`BATCH`] per transaction.
fn convert<T: Decode + Encode>(b: &SledBackend, prefix: &'static str) -> Result<u64> {
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let mut batch: Vec<(String, T)> = Vec::new();
        let mut last = None;
        for item in b.scan_raw(prefix, after.as_deref()) {
            let (key, bytes) = item?;
            last = Some(key.clone());
            if rows::is_row(&bytes) {
                continue;
            }
            match T::decode(&key, &bytes) {
                Ok(v) => batch.push((key, v)),
                Err(e) => tracing::warn!(%key, error = %e, "unreadable value left as it is"),
            }
            if batch.len() >= BATCH {
                break;
            }
        }
        if !batch.is_empty() {
            b.transact_as(Durability::Lazy, |tx| {
                for (key, v) in &batch {
                    tx.put(key, v)?;
                }
                Ok(())
            })?;
            n += batch.len() as u64;
        }
        match last {
            Some(k) if batch.len() >= BATCH => after = Some(k),
            _ => return Ok(n),
        }
    }
}

/// How the bytes of a value stored under `key` split between its fields, for the disk
/// bench (empty for kinds it does not break down).
pub(crate) fn breakdown(key: &str, bytes: &[u8]) -> Vec<(&'static str, usize)> {
    if !key.starts_with("evt/") || !rows::is_row(bytes) {
        return Vec::new();
    }
    rows::event_breakdown(bytes)
}
