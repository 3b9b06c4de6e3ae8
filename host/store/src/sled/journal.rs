//! The journal's events and their record snapshots, written small and read back whole.
//!
//! An event carries the record as it was right after the change. Most events of a record
//! differ from the one before by a field or two, so the commit path stores a snapshot as
//! the changes to the snapshot of the record's latest event ([`append`]: a
//! [`SnapRow::Delta`] naming that base event), at most [`MAX_DEPTH`] steps from a snapshot
//! that needs no other ([`SnapRow::Own`]). Every read resolves the chain ([`resolve`]), so
//! an event reads back exactly as it was committed, whatever form it was stored in (v1
//! JSON, row v1, row v2).
//!
//! - **Bases never change under a delta:** events are written once. The one rewrite is
//!   retention dropping old snapshots ([`strip_record`]): it first rewrites every kept
//!   event whose chain passes through a dropped snapshot as one that needs no other, in the
//!   same transaction.
//! - **No cycles:** a delta's base is an event that existed before it, and an event that
//!   is written again (same id) is never written as a delta.
//! - **A reader racing retention** (it read an event, then its base lost its snapshot)
//!   reads the event again ([`read`]).

use std::collections::{BTreeMap, BTreeSet};

use sled::IVec;

use super::codec::{corrupt, json_decode, Marker};
use super::database::Database;
use super::page::Fetched;
use super::tx::Tx;
use super::{family, SledBackend};
use crate::rows::{self, EventRow, FieldRow, IdRow, JournalRow, SnapRow};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use stagecraft_model::{Event, Record};

/// The longest chain of deltas a write makes (a read follows at most [`MAX_HOPS`]).
pub(super) const MAX_DEPTH: u8 = 8;

/// A delta this small is kept without working out the snapshot's own form (a record's
/// own snapshot is its id, kind, name, version and a timestamp at least).
const SMALL_DELTA: usize = 24;

/// The most bases a read follows before calling the chain corrupt (a cycle cannot be
/// written, see the module doc; this only bounds a damaged one).
const MAX_HOPS: usize = 64;

/// Where the journal reads from: the tree, or a write's view of it.
pub(super) trait Source {
    fn raw(&self, key: &str) -> Result<Option<IVec>>;
}

impl Source for Database {
    fn raw(&self, key: &str) -> Result<Option<IVec>> {
        self.get(key)
    }
}

impl Source for Tx<'_> {
    fn raw(&self, key: &str) -> Result<Option<IVec>> {
        Tx::raw(self, key)
    }
}

impl Source for sled::Tree {
    fn raw(&self, key: &str) -> Result<Option<IVec>> {
        Ok(self.get(key)?)
    }
}

/// `(tenant, id)` of an event key `evt/{tenant}/{id}`.
pub(super) fn key_parts(key: &str) -> (&str, &str) {
    let rest = key.strip_prefix("evt/").unwrap_or(key);
    rest.rsplit_once('/').unwrap_or(("", rest))
}

/// An event as stored: whole, or with its snapshot as changes to another event's.
pub(super) enum Stored {
    Whole(Event),
    Delta {
        event: Event,
        base: String,
        depth: u8,
        changes: Vec<FieldRow>,
    },
}

impl Stored {
    fn event(&self) -> &Event {
        match self {
            Stored::Whole(e) | Stored::Delta { event: e, .. } => e,
        }
    }

    fn has_snapshot(&self) -> bool {
        match self {
            Stored::Whole(e) => e.snapshot.is_some(),
            Stored::Delta { .. } => true,
        }
    }
}

/// Decodes the event stored under `key` in any of its encodings, without following a base.
pub(super) fn stored(key: &str, bytes: &[u8]) -> Result<Stored> {
    if !rows::is_row(bytes) {
        return json_decode(key, bytes).map(Stored::Whole);
    }
    if rows::version(bytes) == Some(1) {
        let row: EventRow = rows::decode(bytes).map_err(|e| corrupt(key, e))?;
        return Event::try_from(row)
            .map(Stored::Whole)
            .map_err(|e| corrupt(key, e));
    }
    let row: JournalRow = rows::decode(bytes).map_err(|e| corrupt(key, e))?;
    let (tenant, id) = key_parts(key);
    let (mut event, snapshot) = row.event(tenant, id).map_err(|e| corrupt(key, e))?;
    let at = event.occurred_at;
    event.snapshot = match snapshot {
        SnapRow::None => None,
        SnapRow::Own(changes) => Some(
            rows::apply(rows::blank(event.record.as_deref(), at), &changes, at)
                .map_err(|e| corrupt(key, e))?,
        ),
        SnapRow::Full(r) => Some(Record::try_from(*r).map_err(|e| corrupt(key, e))?),
        SnapRow::Delta {
            base,
            depth,
            changes,
        } => {
            return Ok(Stored::Delta {
                event,
                base: base.text(),
                depth,
                changes,
            })
        }
    };
    Ok(Stored::Whole(event))
}

/// The event stored under `key` as `bytes`, its snapshot resolved through its bases, with
/// how many deltas it took and the ids of the bases it read.
pub(super) fn resolve(
    src: &impl Source,
    key: &str,
    bytes: &[u8],
) -> Result<(Event, u8, Vec<String>)> {
    let (tenant, _) = key_parts(key);
    let (mut head, mut next, depth, mut steps) = match stored(key, bytes)? {
        Stored::Whole(e) => return Ok((e, 0, Vec::new())),
        Stored::Delta {
            event,
            base,
            depth,
            changes,
        } => {
            let at = event.occurred_at;
            (event, base, depth, vec![(changes, at)])
        }
    };
    let mut bases = Vec::new();
    let snapshot = loop {
        if bases.len() >= MAX_HOPS || bases.contains(&next) {
            return Err(corrupt(key, "its chain of snapshot bases does not end"));
        }
        let base_key = family::event(tenant, &next);
        let Some(raw) = src.raw(&base_key)? else {
            return Err(corrupt(
                key,
                format!("its snapshot's base event {next} is gone"),
            ));
        };
        bases.push(next.clone());
        match stored(&base_key, &raw)? {
            Stored::Whole(b) => match b.snapshot {
                Some(s) => break s,
                None => {
                    return Err(corrupt(
                        key,
                        format!("its snapshot's base event {next} has no snapshot"),
                    ))
                }
            },
            Stored::Delta {
                event,
                base,
                changes,
                ..
            } => {
                steps.push((changes, event.occurred_at));
                next = base;
            }
        }
    };
    let mut record = snapshot;
    for (changes, at) in steps.iter().rev() {
        record = rows::apply(record, changes, *at).map_err(|e| corrupt(key, e))?;
    }
    head.snapshot = Some(record);
    Ok((head, depth, bases))
}

/// The event under `key`, read whole. A read that raced retention (the event's base lost
/// its snapshot after the event was read) reads the event again.
pub(super) fn read(b: &SledBackend, key: &str) -> Result<Option<(usize, Event)>> {
    let mut tries = 0;
    loop {
        let Some(bytes) = b.data.get(key)? else {
            return Ok(None);
        };
        match resolve(&b.data, key, &bytes) {
            Ok((e, _, _)) => return Ok(Some((listed_size(&e), e))),
            Err(e @ StoreError::Corrupt { .. }) => {
                tries += 1;
                if tries >= 3 || b.data.get(key)?.as_ref() == Some(&bytes) {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// An event for a page: its size is what it takes as a whole row (a page holds the same
/// events whatever form they are stored in).
pub(super) fn fetch(b: &SledBackend, key: &str) -> Result<Fetched<Event>> {
    Ok(match read(b, key)? {
        Some((len, e)) => Fetched::Item(len, e),
        None => Fetched::Mismatch {
            key: key.to_string(),
            bytes: None,
        },
    })
}

/// The size of `e` as a whole row (version 1, snapshot included).
pub(super) fn listed_size(e: &Event) -> usize {
    rows::encode(&EventRow::from(e)).map_or(0, |b| b.len())
}

/// Writes `e` (and its entry in the record's events, `rev/`) in `tx`: its snapshot as
/// changes to the snapshot of the record's latest event when that is smaller.
pub(super) fn append(tx: &Tx<'_>, tenant: &str, e: &Event) -> Result<()> {
    let key = family::event(tenant, &e.id);
    let snapshot = match delta(tx, tenant, &key, e)? {
        // Smaller than any record's own snapshot: no need to compare.
        Some(d) if size(&d) <= SMALL_DELTA => d,
        Some(d) => {
            let own = rows::own_snapshot(e);
            if size(&d) < size(&own) {
                d
            } else {
                own
            }
        }
        None => rows::own_snapshot(e),
    };
    tx.put(&key, &JournalRow::new(tenant, &e.id, e, snapshot))?;
    if let Some(r) = &e.record {
        tx.put(&family::record_event(tenant, r, &e.id), &Marker)?;
    }
    Ok(())
}

fn size(s: &SnapRow) -> usize {
    postcard::to_allocvec(s).map_or(usize::MAX, |b| b.len())
}

/// `e`'s snapshot as changes to the snapshot of its record's latest event, if there is
/// one this write can see, it is not `e` itself, and the chain stays short.
fn delta(tx: &Tx<'_>, tenant: &str, key: &str, e: &Event) -> Result<Option<SnapRow>> {
    let (Some(record), Some(snapshot)) = (&e.record, &e.snapshot) else {
        return Ok(None);
    };
    if tx.exists(key)? {
        return Ok(None); // written again: never a delta (no cycles)
    }
    let Some(last) = tx.last_key_under(&family::record_events(tenant, record))? else {
        return Ok(None);
    };
    let base = family::id_of(&last).to_string();
    let base_key = family::event(tenant, &base);
    let Some(raw) = tx.raw(&base_key)? else {
        return Ok(None);
    };
    let (b, depth, _) = match resolve(tx, &base_key, &raw) {
        Ok(r) => r,
        Err(StoreError::Corrupt { .. }) => return Ok(None),
        Err(err) => return Err(err),
    };
    let Some(base_snapshot) = b.snapshot else {
        return Ok(None);
    };
    if depth >= MAX_DEPTH {
        return Ok(None);
    }
    Ok(
        rows::changes(&base_snapshot, snapshot, e.occurred_at).map(|changes| SnapRow::Delta {
            base: IdRow::from(&base),
            depth: depth + 1,
            changes,
        }),
    )
}

/// Drops the snapshot of every event of `record` that happened before `cutoff`, after
/// rewriting each kept event whose snapshot is built on a dropped one as one that needs
/// no other. Returns how many snapshots it dropped.
pub(super) fn strip_record(
    tx: &Tx<'_>,
    tenant: &str,
    record: &str,
    cutoff: DateTime<Utc>,
) -> Result<u64> {
    let mut events: BTreeMap<String, Stored> = BTreeMap::new();
    for rev in tx.keys_under(&family::record_events(tenant, record))? {
        let id = family::id_of(&rev).to_string();
        let key = family::event(tenant, &id);
        if let Some(raw) = tx.raw(&key)? {
            events.insert(id, stored(&key, &raw)?);
        }
    }
    let dropped: BTreeSet<&String> = events
        .iter()
        .filter(|(_, s)| s.has_snapshot() && s.event().occurred_at < cutoff)
        .map(|(id, _)| id)
        .collect();
    if dropped.is_empty() {
        return Ok(0);
    }
    // Kept events built on a dropped snapshot, resolved before anything is rewritten.
    let mut rebuilt: Vec<(String, Event)> = Vec::new();
    for (id, s) in &events {
        if dropped.contains(id) || !matches!(s, Stored::Delta { .. }) {
            continue;
        }
        let key = family::event(tenant, id);
        let Some(raw) = tx.raw(&key)? else {
            continue;
        };
        let (e, _, bases) = resolve(tx, &key, &raw)?;
        if bases.iter().any(|b| dropped.contains(b)) {
            rebuilt.push((key, e));
        }
    }
    for (key, e) in &rebuilt {
        let (tenant, id) = key_parts(key);
        tx.put(key, &JournalRow::new(tenant, id, e, rows::own_snapshot(e)))?;
    }
    for id in &dropped {
        let key = family::event(tenant, id);
        if let Some(s) = events.get(*id) {
            let mut e = s.event().clone();
            e.snapshot = None;
            tx.put(&key, &e)?;
        }
    }
    Ok(dropped.len() as u64)
}
