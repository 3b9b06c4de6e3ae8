//! Pipelines, with the stage-occupancy check that keeps records from losing their stage.

use super::tx::Tx;
use super::{family, SledBackend};
use crate::{Result, StoreError};
use stagecraft_model::Pipeline;

impl SledBackend {
    pub(super) fn pipelines(&self, tenant: &str) -> Result<Vec<Pipeline>> {
        self.scan(&family::pipelines(tenant), None)
            .map(|r| r.map(|(_, p)| p))
            .collect()
    }
}

/// Creates (`expected` None) or replaces a pipeline. Refuses to drop a stage that records
/// still sit in, checked in the same transaction as the write.
pub(super) fn put(tx: &Tx<'_>, tenant: &str, p: &Pipeline, expected: Option<u64>) -> Result<()> {
    let key = family::pipeline(tenant, &p.id);
    let current: Option<Pipeline> = tx.get(&key)?;
    match (&current, expected) {
        (Some(_), None) => return Err(StoreError::AlreadyExists(format!("pipeline {:?}", p.id))),
        (None, Some(_)) => return Err(StoreError::NotFound(format!("pipeline {:?}", p.id))),
        (Some(c), Some(v)) if c.version != v => {
            return Err(StoreError::VersionConflict {
                what: format!("pipeline {:?}", p.id),
                expected: v,
                found: c.version,
            })
        }
        _ => {}
    }
    if let Some(c) = &current {
        for s in &c.stages {
            if p.stage(&s.id).is_none() {
                let n = tx.counter(&family::stage_count(tenant, &p.id, &s.id))?;
                if n > 0 {
                    return Err(StoreError::Refused(format!(
                        "stage {:?} still holds {n} record(s); move them before removing it",
                        s.id
                    )));
                }
            }
        }
    }
    tx.put(&key, p)
}

/// Deletes a pipeline that no record uses.
pub(super) fn delete(tx: &Tx<'_>, tenant: &str, id: &str) -> Result<()> {
    let key = family::pipeline(tenant, id);
    let Some(p) = tx.get::<Pipeline>(&key)? else {
        return Err(StoreError::NotFound(format!("pipeline {id:?}")));
    };
    for s in &p.stages {
        let n = tx.counter(&family::stage_count(tenant, id, &s.id))?;
        if n > 0 {
            return Err(StoreError::Refused(format!(
                "pipeline {id:?} still holds {n} record(s) in stage {:?}",
                s.id
            )));
        }
    }
    tx.remove(&key)?;
    Ok(())
}
