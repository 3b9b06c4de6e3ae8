//! The one way records change: a changeset of record writes, the journal events they cause,
//! and what automation adds (run records, outbox messages, timers, jobs), committed in a
//! single transaction with optimistic version checks.

use super::automation::{count_follow_up, FollowUpCaps};
use super::{family, Result, Store, StoreError, Tx};
use crate::model::{Event, Job, OutboxMessage, Record, RunRecord, Timer};

#[derive(Debug, Clone)]
pub enum RecordWrite {
    /// Create (`expected` None: the id must be free) or replace the record at `expected`
    /// version.
    Put {
        record: Box<Record>,
        expected: Option<u64>,
    },
    Delete {
        id: String,
        expected: u64,
    },
}

/// Everything one change (a request and its inline automation, or a background run) writes,
/// applied all or nothing.
#[derive(Debug, Clone, Default)]
pub struct Changeset {
    pub tenant: String,
    pub records: Vec<RecordWrite>,
    pub events: Vec<Event>,
    /// A run id is committed once; a second commit of it fails with `AlreadyDone`.
    pub runs: Vec<RunRecord>,
    /// Messages whose idempotency key the tenant already used are dropped.
    pub messages: Vec<OutboxMessage>,
    pub timers: Vec<Timer>,
    pub jobs: Vec<Job>,
    /// When set, the commit fails (`Stale`: run again on fresh state) if its follow-ups
    /// would take a binding's pending follow-ups on a record, or the tenant's, past these.
    /// Automation checks the same before it commits; this makes it exact under concurrency.
    pub follow_up_caps: Option<FollowUpCaps>,
}

impl Changeset {
    pub fn new(tenant: &str) -> Changeset {
        Changeset {
            tenant: tenant.to_string(),
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.events.is_empty()
            && self.runs.is_empty()
            && self.messages.is_empty()
            && self.timers.is_empty()
            && self.jobs.is_empty()
    }

    /// The record as this changeset leaves it: its last write, if any.
    pub fn pending(&self, id: &str) -> Option<Option<&Record>> {
        self.records.iter().rev().find_map(|w| match w {
            RecordWrite::Put { record, .. } if record.id == id => Some(Some(record.as_ref())),
            RecordWrite::Delete { id: d, .. } if d == id => Some(None),
            _ => None,
        })
    }
}

impl Store {
    pub fn commit(&self, cs: &Changeset) -> Result<()> {
        let span = tracing::debug_span!(
            "commit",
            tenant = %cs.tenant,
            events = cs.events.len(),
            runs = cs.runs.len(),
            messages = cs.messages.len()
        );
        let _entered = span.enter();
        self.transact(|tx| apply(tx, cs))?;
        tracing::debug!("committed");
        crate::metrics::runs_committed(&cs.runs);
        Ok(())
    }
}

pub(crate) fn apply(tx: &Tx<'_>, cs: &Changeset) -> Result<()> {
    let tenant = cs.tenant.as_str();
    for w in &cs.records {
        match w {
            RecordWrite::Put { record, expected } => {
                let key = family::record(tenant, &record.id);
                let current: Option<Record> = tx.get(&key)?;
                check_version(&record.id, current.as_ref(), *expected)?;
                if let Some(c) = &current {
                    count(tx, tenant, c, -1)?;
                    if c.stage != record.stage {
                        cancel_timers(tx, tenant, &record.id, record.stage.as_deref())?;
                    }
                }
                count(tx, tenant, record.as_ref(), 1)?;
                tx.put(&key, record.as_ref())?;
            }
            RecordWrite::Delete { id, expected } => {
                let key = family::record(tenant, id);
                let current: Option<Record> = tx.get(&key)?;
                check_version(id, current.as_ref(), Some(*expected))?;
                if let Some(c) = &current {
                    count(tx, tenant, c, -1)?;
                }
                cancel_timers(tx, tenant, id, None)?;
                tx.remove(&key)?;
            }
        }
    }
    for e in &cs.events {
        tx.put(&family::event(tenant, &e.id), e)?;
        if let Some(r) = &e.record {
            tx.put(&family::record_event(tenant, r, &e.id), &())?;
        }
    }
    for r in &cs.runs {
        let key = family::run(tenant, &r.id);
        if tx.exists(&key)? {
            return Err(StoreError::AlreadyDone(r.id.clone()));
        }
        tx.put(&key, r)?;
        // Stats and the binding's run index move with the run, in this same transaction.
        super::stats::add_run(tx, tenant, r)?;
    }
    for m in &cs.messages {
        if let Some(k) = &m.idempotency_key {
            let ikey = family::idempotency(tenant, k);
            if tx.exists(&ikey)? {
                continue;
            }
            tx.put(&ikey, &m.id)?;
        }
        tx.put(&family::message(tenant, &m.id), m)?;
        let at = m.next_attempt_at.unwrap_or(m.created_at);
        tx.put(&family::due(at.timestamp_millis(), tenant, &m.id), &())?;
    }
    for t in &cs.timers {
        // A timer tied to a stage the record has already left within this same change (or a
        // record this change deleted) is born cancelled.
        if let Some(stage) = &t.stage {
            let now_in: Option<Record> = tx.get(&family::record(tenant, &t.record))?;
            if now_in.and_then(|r| r.stage).as_deref() != Some(stage.as_str()) {
                continue;
            }
        }
        let key = family::timer(t.due.timestamp_millis(), tenant, &t.id);
        let (pair, all) = count_follow_up(tx, tenant, t, 1)?;
        if let Some(caps) = cs.follow_up_caps {
            if let Some(message) = caps.exceeded(&t.binding, &t.record, pair, all) {
                return Err(StoreError::Stale(message));
            }
        }
        tx.put(&key, t)?;
        let list_key = family::record_timers(tenant, &t.record);
        let mut list: Vec<String> = tx.get(&list_key)?.unwrap_or_default();
        list.push(key);
        tx.put(&list_key, &list)?;
    }
    for j in &cs.jobs {
        tx.put(&family::job(tenant, &j.id), j)?;
    }
    Ok(())
}

/// Drops the record's timers tied to a stage other than `now_in` (all of them when None).
fn cancel_timers(tx: &Tx<'_>, tenant: &str, record: &str, now_in: Option<&str>) -> Result<()> {
    let list_key = family::record_timers(tenant, record);
    let Some(list) = tx.get::<Vec<String>>(&list_key)? else {
        return Ok(());
    };
    let mut keep = Vec::new();
    for key in list {
        let Some(t) = tx.get::<Timer>(&key)? else {
            continue; // fired already
        };
        let tied_elsewhere = t.stage.is_some() && t.stage.as_deref() != now_in;
        if now_in.is_none() || tied_elsewhere {
            tx.remove(&key)?;
            count_follow_up(tx, tenant, &t, -1)?;
        } else {
            keep.push(key);
        }
    }
    if keep.is_empty() {
        tx.remove(&list_key)?;
    } else {
        tx.put(&list_key, &keep)?;
    }
    Ok(())
}

fn check_version(id: &str, current: Option<&Record>, expected: Option<u64>) -> Result<()> {
    match (current, expected) {
        (Some(_), None) => Err(StoreError::AlreadyExists(format!("record {id:?}"))),
        (None, Some(_)) => Err(StoreError::NotFound(format!("record {id:?}"))),
        (Some(c), Some(v)) if c.version != v => Err(StoreError::VersionConflict {
            what: format!("record {id:?}"),
            expected: v,
            found: c.version,
        }),
        _ => Ok(()),
    }
}

fn count(tx: &Tx<'_>, tenant: &str, r: &Record, delta: i64) -> Result<()> {
    if let (Some(p), Some(s)) = (&r.pipeline, &r.stage) {
        tx.add(&family::stage_count(tenant, p, s), delta)?;
    }
    Ok(())
}
