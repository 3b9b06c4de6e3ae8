//! Retention: removes run history, journal snapshots and delivered messages older than a
//! cutoff, in bounded batches of small transactions so writers never wait behind it.
//!
//! What stays: the journal's events themselves (without their snapshot), hourly rollups
//! (stats outlive the runs they count), idempotency keys (a key used once is never queued
//! again), and everything not yet delivered.
//!
//! Age decides, whatever the id: keys are walked in id order only as far as the cutoff's id
//! (every id sorts by the time it carries), and each value's own time says whether it goes.
//! A value that cannot be read is skipped, logged and counted (`Pruned::unreadable`); it
//! never fails the pass.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::codec::Decode;
use super::{family, journal, SledBackend};
use crate::query::Pruned;
use crate::{Result, StoreError};
use stagecraft_model::id::last_id_at;
use stagecraft_model::{MessageStatus, OutboxMessage, RunRecord};

impl SledBackend {
    /// Prunes everything older than `cutoff`, `batch` keys per transaction. Where the walk
    /// over the journal stopped is kept in a retention mark per tenant (`retm/evt/{tenant}`),
    /// so a pass never rescans what it pruned.
    pub(super) fn prune_older(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<Pruned> {
        let batch = batch.max(1);
        let mut out = Pruned::default();
        for t in self.tenants()? {
            out.runs += self.prune_runs(&t.id, cutoff, batch, &mut out.unreadable)?;
            out.snapshots += self.prune_snapshots(&t.id, cutoff, batch, &mut out.unreadable)?;
        }
        out.messages += self.prune_sent(cutoff, batch, &mut out.unreadable)?;
        Ok(out)
    }

    /// Runs that started before `cutoff`, with their binding-index entries. Run ids sort by
    /// their event's time and a run never starts before its event, so only ids up to the
    /// cutoff's need looking at.
    fn prune_runs(
        &self,
        tenant: &str,
        cutoff: DateTime<Utc>,
        batch: usize,
        unreadable: &mut u64,
    ) -> Result<u64> {
        let prefix = family::runs(tenant);
        let end = format!(
            "{prefix}{}\u{ff}",
            last_id_at("run", cutoff.timestamp_millis())
        );
        let mut after: Option<Vec<u8>> = None;
        let mut n = 0;
        loop {
            let start = match &after {
                Some(a) => {
                    let mut s = a.clone();
                    s.push(0);
                    s
                }
                None => prefix.as_bytes().to_vec(),
            };
            let mut old: Vec<RunRecord> = Vec::new();
            let mut scanned = 0;
            for item in self.data.range(start..end.as_bytes().to_vec()) {
                let (k, v) = item?;
                scanned += 1;
                after = Some(k.to_vec());
                let key = String::from_utf8_lossy(&k).into_owned();
                match RunRecord::decode(&key, &v) {
                    Ok(r) if r.started_at < cutoff => old.push(r),
                    Ok(_) => {}
                    Err(e) => skip(&key, &e, unreadable),
                }
                if old.len() >= batch || scanned >= batch * 8 {
                    break;
                }
            }
            if !old.is_empty() {
                n += self.transact(|tx| {
                    let mut removed = 0;
                    for r in &old {
                        if tx.remove(&family::run(tenant, &r.id))? {
                            removed += 1;
                        }
                        let ms = r.started_at.timestamp_millis();
                        tx.remove(&family::binding_run(tenant, &r.binding, ms, &r.id))?;
                        super::index::remove_run(tx, tenant, r)?;
                    }
                    Ok(removed)
                })?;
            }
            if scanned == 0 || (old.len() < batch && scanned < batch * 8) {
                return Ok(n);
            }
        }
    }

    /// Drops the record snapshot of journal events that happened before `cutoff`. Events are
    /// never rewritten otherwise, so a mark remembers how far this got. Every event id is a
    /// ULID of when it happened (a follow-up's, of when it came due), so the walk ends at the
    /// cutoff's id; the event's own time decides, so an id of another shape (hex follow-up
    /// ids written by older versions sort anywhere) never loses its snapshot early.
    fn prune_snapshots(
        &self,
        tenant: &str,
        cutoff: DateTime<Utc>,
        batch: usize,
        unreadable: &mut u64,
    ) -> Result<u64> {
        let prefix = family::events(tenant);
        let mark_key = family::retention_mark("evt", tenant);
        // Strictly before the cutoff's millisecond: an event of that millisecond may be newer.
        let end = family::event(tenant, &last_id_at("evt", cutoff.timestamp_millis() - 1));
        let mut n = 0;
        loop {
            let mark: Option<String> = self.get(&mark_key)?;
            let start = match &mark {
                Some(m) => format!("{m}\u{0}"),
                None => prefix.clone(),
            };
            if start.as_str() > end.as_str() {
                return Ok(n);
            }
            let mut keys: Vec<String> = Vec::new();
            for item in self
                .data
                .range(start.into_bytes()..=end.as_bytes().to_vec())
                .take(batch)
            {
                keys.push(String::from_utf8_lossy(&item?.0).into_owned());
            }
            let Some(last) = keys.last().cloned() else {
                return Ok(n);
            };
            let (stripped, bad) = self.transact(|tx| {
                let (mut stripped, mut bad) = (0, Vec::new());
                // A record's snapshots go together, so no kept snapshot is left built on a
                // dropped one (see `journal`).
                let mut records: BTreeSet<String> = BTreeSet::new();
                for k in &keys {
                    let Some(raw) = tx.raw(k)? else { continue };
                    match journal::resolve(tx, k, &raw) {
                        Ok((e, _, _)) if e.snapshot.is_some() && e.occurred_at < cutoff => {
                            match e.record {
                                Some(r) => {
                                    records.insert(r);
                                }
                                None => {
                                    let mut e = e;
                                    e.snapshot = None;
                                    tx.put(k, &e)?;
                                    stripped += 1;
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e @ StoreError::Corrupt { .. }) => bad.push((k.clone(), e)),
                        Err(e) => return Err(e),
                    }
                }
                for r in &records {
                    stripped += journal::strip_record(tx, tenant, r, cutoff)?;
                }
                // An event its record's list does not hold (written before that list
                // existed) has no delta built on it.
                for k in &keys {
                    let Some(raw) = tx.raw(k)? else { continue };
                    if let Ok(journal::Stored::Whole(mut e)) = journal::stored(k, &raw) {
                        if e.snapshot.is_some() && e.occurred_at < cutoff {
                            e.snapshot = None;
                            tx.put(k, &e)?;
                            stripped += 1;
                        }
                    }
                }
                tx.put(&mark_key, last.as_str())?;
                Ok((stripped, bad))
            })?;
            n += stripped;
            for (k, e) in bad {
                skip(&k, &e, unreadable);
            }
            if keys.len() < batch {
                return Ok(n);
            }
        }
    }

    /// Delivered messages sent before `cutoff` (the `sent/` index is in time order).
    fn prune_sent(&self, cutoff: DateTime<Utc>, batch: usize, unreadable: &mut u64) -> Result<u64> {
        let end = family::sent(cutoff.timestamp_millis(), "", "");
        let mut n = 0;
        loop {
            let mut keys: Vec<String> = Vec::new();
            for item in self
                .data
                .range(family::SENT.as_bytes().to_vec()..end.as_bytes().to_vec())
                .take(batch)
            {
                keys.push(String::from_utf8_lossy(&item?.0).into_owned());
            }
            if keys.is_empty() {
                return Ok(n);
            }
            let (removed, bad) = self.transact(|tx| {
                let (mut removed, mut bad) = (0, Vec::new());
                for k in &keys {
                    tx.remove(k)?;
                    let mut parts = k.split('/').skip(2);
                    let (Some(tenant), Some(id)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    let mkey = family::message(tenant, id);
                    // Only a message still delivered goes (a retried one is in flight again).
                    match tx.get::<OutboxMessage>(&mkey) {
                        Ok(Some(m)) if m.status == MessageStatus::Sent => {
                            tx.remove(&mkey)?;
                            super::index::remove_message(tx, tenant, &m)?;
                            removed += 1;
                        }
                        Ok(_) => {}
                        Err(e @ StoreError::Corrupt { .. }) => bad.push((mkey, e)),
                        Err(e) => return Err(e),
                    }
                }
                Ok((removed, bad))
            })?;
            n += removed;
            for (k, e) in bad {
                skip(&k, &e, unreadable);
            }
            if keys.len() < batch {
                return Ok(n);
            }
        }
    }
}

/// Leaves an unreadable value alone, says so and counts it.
fn skip(key: &str, e: &StoreError, unreadable: &mut u64) {
    tracing::warn!(%key, error = %e, "retention skipped a value it cannot read");
    *unreadable += 1;
}
