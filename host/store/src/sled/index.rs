//! Secondary indexes: the posting lists that lists and `records.find` read instead of
//! scanning a family, written in the same transaction as the rows they point at.
//!
//! One entry per (index, value, row): `ix/{index}/{tenant}/{value…}/{id}`, an empty marker.
//! Every segment is escaped ([`esc`]) so a `/` in a value cannot split it; the sort
//! component is the row's id (ids sort by time), so every posting list is in list order and
//! any two can be intersected by seeking ([`super::postings`]). The update-time index sorts
//! by `{updated_ms:016}/{id}` instead.
//!
//! - records: kind (`rk`), pipeline (`rp`), (pipeline, stage) (`rs`), owner (`ro`), exact
//!   email, trimmed and lowercased (`re`), update time (`ru`);
//! - runs: record (`nr`), binding (`nb`), module (`nm`), outcome (`no`);
//! - messages: record (`mr`), status (`ms`), channel (`mc`);
//! - events by record: the journal's own `rev/{tenant}/{record}/{event}` entries.
//!
//! Who writes them: [`keep`] around each changeset (the one call in the commit path: record
//! writes, new runs and messages, `FinishMessage`/`RetryMessage` status moves); the outbox's
//! claim and restart requeue ([`message_status`]); retention ([`remove_run`],
//! [`remove_message`]). A data dir written before the indexes existed gets them once when
//! it opens ([`build`]), idempotently, with a marker written last.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::codec::{Decode, Marker, MessageHead};
use super::tx::Tx;
use super::{family, SledBackend};
use crate::change::{Changeset, Op, RecordWrite};
pub use crate::names::status_name;
use crate::Result;
use stagecraft_model::{MessageStatus, OutboxMessage, Record, RunRecord};

/// Set once every stored record, run and message has its index entries.
pub const BUILT: &str = "meta/indexes-built";

/// Escapes one key segment: `%` and `/` (and nothing else, so plain ids keep their order).
pub fn esc(v: &str) -> Cow<'_, str> {
    if !v.contains(['%', '/']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.replace('%', "%25").replace('/', "%2F"))
}

/// The inverse of [`esc`].
pub fn unesc(v: &str) -> Cow<'_, str> {
    if !v.contains('%') {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.replace("%2F", "/").replace("%25", "%"))
}

/// The posting list of `index` for `values` in `tenant`: every entry starts with it and
/// ends with the row's (escaped) id.
pub fn prefix(index: &str, tenant: &str, values: &[&str]) -> String {
    let mut p = format!("ix/{index}/{}/", esc(tenant));
    for v in values {
        p.push_str(&esc(v));
        p.push('/');
    }
    p
}

fn entry(index: &str, tenant: &str, values: &[&str], id: &str) -> String {
    let mut k = prefix(index, tenant, values);
    k.push_str(&esc(id));
    k
}

/// How an email is compared: trimmed and lowercased (the text search's exact-email match).
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The update-time index's list (oldest update first).
pub fn updated_prefix(tenant: &str) -> String {
    prefix("ru", tenant, &[])
}

/// Every index entry of a record.
pub fn record_entries(tenant: &str, r: &Record) -> Vec<String> {
    let id = r.id.as_str();
    let mut out = vec![
        entry("rk", tenant, &[r.kind.as_str()], id),
        format!(
            "{}{:016}/{}",
            updated_prefix(tenant),
            r.updated_at.timestamp_millis().max(0),
            esc(id)
        ),
    ];
    if let Some(p) = &r.pipeline {
        out.push(entry("rp", tenant, &[p], id));
        if let Some(s) = &r.stage {
            out.push(entry("rs", tenant, &[p, s], id));
        }
    }
    if let Some(o) = &r.owner {
        out.push(entry("ro", tenant, &[o], id));
    }
    if let Some(e) = r.email.as_deref().map(email_key).filter(|e| !e.is_empty()) {
        out.push(entry("re", tenant, &[&e], id));
    }
    out
}

/// Every index entry of a run.
pub fn run_entries(tenant: &str, r: &RunRecord) -> Vec<String> {
    let id = r.id.as_str();
    let mut out = vec![
        entry("nb", tenant, &[&r.binding], id),
        entry("nm", tenant, &[&r.module], id),
        entry("no", tenant, &[r.outcome.name()], id),
    ];
    if let Some(rec) = &r.record {
        out.push(entry("nr", tenant, &[rec], id));
    }
    out
}

fn message_status_entry(tenant: &str, id: &str, s: MessageStatus) -> String {
    entry("ms", tenant, &[status_name(s)], id)
}

/// Every index entry of a message.
pub fn message_entries(tenant: &str, m: &OutboxMessage) -> Vec<String> {
    message_head_entries(
        tenant,
        &m.id,
        &MessageHead {
            status: m.status,
            channel: m.channel,
            record: m.record.clone(),
        },
    )
}

fn message_head_entries(tenant: &str, id: &str, m: &MessageHead) -> Vec<String> {
    let mut out = vec![
        message_status_entry(tenant, id, m.status),
        entry("mc", tenant, &[m.channel.as_str()], id),
    ];
    if let Some(r) = &m.record {
        out.push(entry("mr", tenant, &[r], id));
    }
    out
}

fn put_all(tx: &Tx<'_>, keys: &[String]) -> Result<()> {
    for k in keys {
        tx.put(k, &Marker)?;
    }
    Ok(())
}

/// Runs `body` (a changeset's writes, in its transaction) and keeps the indexes of what it
/// wrote: records' entries move with their fields (and go with a delete), new runs and
/// stored messages get theirs, a message's status entry follows `FinishMessage` and
/// `RetryMessage`. The one call the commit path makes.
pub(super) fn keep<R>(tx: &Tx<'_>, cs: &Changeset, body: impl FnOnce() -> Result<R>) -> Result<R> {
    let tenant = cs.tenant.as_str();
    // What the rows were before: the first write of each record decides.
    let mut records: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for w in &cs.records {
        let id = match w {
            RecordWrite::Put { record, .. } => record.id.as_str(),
            RecordWrite::Delete { id, .. } => id.as_str(),
        };
        if !records.contains_key(id) {
            let old = tx
                .get::<Record>(&family::record(tenant, id))?
                .map(|r| record_entries(tenant, &r))
                .unwrap_or_default();
            records.insert(id, (old, Vec::new()));
        }
    }
    let mut statuses: Vec<(&str, Option<MessageStatus>, MessageStatus)> = Vec::new();
    for op in &cs.ops {
        let (id, new) = match op {
            Op::FinishMessage { message } => (message.id.as_str(), message.status),
            Op::RetryMessage { id } => (id.as_str(), MessageStatus::Queued),
            _ => continue,
        };
        let old = tx
            .get::<MessageHead>(&family::message(tenant, id))?
            .map(|m| m.status);
        statuses.push((id, old, new));
    }
    let out = body()?;
    // What they are now: the last write of each record decides.
    for w in &cs.records {
        match w {
            RecordWrite::Put { record, .. } => {
                if let Some(slot) = records.get_mut(record.id.as_str()) {
                    slot.1 = record_entries(tenant, record);
                }
            }
            RecordWrite::Delete { id, .. } => {
                if let Some(slot) = records.get_mut(id.as_str()) {
                    slot.1.clear();
                }
            }
        }
    }
    for (old, new) in records.values() {
        for k in old.iter().filter(|k| !new.contains(k)) {
            tx.remove(k)?;
        }
        for k in new.iter().filter(|k| !old.contains(k)) {
            tx.put(k, &Marker)?;
        }
    }
    for r in &cs.runs {
        put_all(tx, &run_entries(tenant, r))?;
    }
    for m in &cs.messages {
        // A message whose idempotency key was used before is not stored.
        if tx.exists(&family::message(tenant, &m.id))? {
            put_all(tx, &message_entries(tenant, m))?;
        }
    }
    for (id, old, new) in statuses {
        if old.is_none() {
            // A finished message that was not there before (written whole by the op).
            if let Some(m) = tx.get::<MessageHead>(&family::message(tenant, id))? {
                put_all(tx, &message_head_entries(tenant, id, &m))?;
            }
            continue;
        }
        message_status(tx, tenant, id, old, new)?;
    }
    Ok(out)
}

/// Moves a message's status entry from `old` to `new`.
pub(super) fn message_status(
    tx: &Tx<'_>,
    tenant: &str,
    id: &str,
    old: Option<MessageStatus>,
    new: MessageStatus,
) -> Result<()> {
    if old == Some(new) {
        return Ok(());
    }
    if let Some(o) = old {
        tx.remove(&message_status_entry(tenant, id, o))?;
    }
    tx.put(&message_status_entry(tenant, id, new), &Marker)
}

/// Drops a run's entries (retention removes the run).
pub(super) fn remove_run(tx: &Tx<'_>, tenant: &str, r: &RunRecord) -> Result<()> {
    for k in run_entries(tenant, r) {
        tx.remove(&k)?;
    }
    Ok(())
}

/// Drops a message's entries (retention removes the message).
pub(super) fn remove_message(tx: &Tx<'_>, tenant: &str, m: &OutboxMessage) -> Result<()> {
    for k in message_entries(tenant, m) {
        tx.remove(&k)?;
    }
    Ok(())
}

/// Rows indexed per transaction while building.
const BUILD_BATCH: usize = 512;

/// Gives every stored record, run and message its entries, once, for a data dir written
/// before the indexes existed (before anything else reads it). Idempotent, so a crash
/// half-way just does it again at the next open; [`BUILT`] is written last. Returns how
/// many rows it indexed (0 when already done).
pub(super) fn build(b: &SledBackend) -> Result<u64> {
    if b.data.get(BUILT)?.is_some() {
        return Ok(0);
    }
    let mut n = 0;
    n += build_family(b, "rec/", |tenant, key, bytes| {
        Ok(record_entries(tenant, &Record::decode(key, bytes)?))
    })?;
    n += build_family(b, "run/", |tenant, key, bytes| {
        Ok(run_entries(tenant, &RunRecord::decode(key, bytes)?))
    })?;
    n += build_family(b, "out/", |tenant, key, bytes| {
        let m = MessageHead::decode(key, bytes)?;
        Ok(message_head_entries(tenant, family::id_of(key), &m))
    })?;
    b.transact(|tx| tx.put(BUILT, &true))?;
    Ok(n)
}

/// Indexes every row under `family_prefix` (`{family}/{tenant}/{id}`), a batch per
/// transaction. A row that cannot be read is logged and left unindexed.
fn build_family(
    b: &SledBackend,
    family_prefix: &str,
    entries: impl Fn(&str, &str, &[u8]) -> Result<Vec<String>>,
) -> Result<u64> {
    let mut n = 0;
    let mut batch: Vec<String> = Vec::new();
    let mut rows = 0;
    for item in b.scan_raw(family_prefix, None) {
        let (key, bytes) = item?;
        let tenant = key.split('/').nth(1).unwrap_or_default().to_string();
        match entries(&tenant, &key, &bytes[..]) {
            Ok(keys) => batch.extend(keys),
            Err(e) => tracing::warn!(%key, error = %e, "unreadable row; not indexed"),
        }
        rows += 1;
        n += 1;
        if rows >= BUILD_BATCH {
            b.transact(|tx| put_all(tx, &batch))?;
            batch.clear();
            rows = 0;
        }
    }
    if !batch.is_empty() {
        b.transact(|tx| put_all(tx, &batch))?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{at, record};
    use crate::query::{List, PageRequest, Row};
    use crate::{Backend, RecordFilter};

    fn owned_by(b: &SledBackend, owner: &str) -> Vec<String> {
        let list = List::Records {
            tenant: "t".into(),
            filter: RecordFilter {
                owner: Some(owner.into()),
                ..Default::default()
            },
            text: None,
        };
        let page = b.list(&list, &PageRequest::all()).expect("a list");
        page.items
            .into_iter()
            .map(|r| match r {
                Row::Record(r) => r.id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// A data dir written before the indexes (no entries, no marker) gets them when it
    /// opens, once; a second open finds the marker and leaves everything as it is.
    #[test]
    fn a_data_dir_without_indexes_gets_them_when_it_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let b = SledBackend::open(dir.path()).expect("opens");
            let mut cs = Changeset::new("t");
            for n in 0..700 {
                let mut r = record(&format!("rec_{n:04}"), None);
                r.owner = Some(if n % 7 == 0 { "ann/x" } else { "bob" }.into());
                r.updated_at = at(n);
                cs.records.push(RecordWrite::Put {
                    record: Box::new(r),
                    expected: None,
                });
            }
            b.commit(&[&cs]).pop().expect("one").expect("committed");
            assert_eq!(owned_by(&b, "ann/x").len(), 100);
            // As an older version left it: rows only.
            let keys: Vec<String> = b
                .scan_raw("ix/", None)
                .map(|i| i.map(|(k, _)| k))
                .collect::<Result<_>>()
                .expect("scanned");
            assert!(keys.len() >= 700 * 3, "{}", keys.len());
            b.transact(|tx| {
                for k in &keys {
                    tx.remove(k)?;
                }
                tx.remove(BUILT).map(|_| ())
            })
            .expect("removed");
            assert!(owned_by(&b, "ann/x").is_empty());
        }
        let b = SledBackend::open(dir.path()).expect("opens again");
        let want: Vec<String> = (0..700)
            .filter(|n| n % 7 == 0)
            .map(|n| format!("rec_{n:04}"))
            .collect();
        assert_eq!(owned_by(&b, "ann/x"), want);
        assert_eq!(owned_by(&b, "bob").len(), 600);
        assert_eq!(build(&b).expect("no-op"), 0, "built once");
    }
}
