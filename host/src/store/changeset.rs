//! The one way records change: a changeset of record writes and the journal events they
//! cause, committed in a single transaction with optimistic version checks.

use super::{family, Result, Store, StoreError, Tx};
use crate::model::{Event, Record};

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

/// Everything one change (a request, or later a run) writes, applied all or nothing.
#[derive(Debug, Clone, Default)]
pub struct Changeset {
    pub tenant: String,
    pub records: Vec<RecordWrite>,
    pub events: Vec<Event>,
}

impl Changeset {
    pub fn new(tenant: &str) -> Changeset {
        Changeset {
            tenant: tenant.to_string(),
            ..Default::default()
        }
    }
}

impl Store {
    pub fn commit(&self, cs: &Changeset) -> Result<()> {
        self.transact(|tx| apply(tx, cs))
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
