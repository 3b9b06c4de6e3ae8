//! Pipelines, with the stage-occupancy check that keeps records from losing their stage.

use super::{family, Result, Store, StoreError};
use crate::model::Pipeline;

impl Store {
    /// Read on every stage move, so kept decoded in memory until the pipeline is written.
    pub fn pipeline(&self, tenant: &str, id: &str) -> Result<Option<Pipeline>> {
        let key = family::pipeline(tenant, id);
        let p = self.pipelines.get_or_load(&key, || self.get(&key))?;
        Ok(p.map(|p| p.as_ref().clone()))
    }

    pub fn pipelines(&self, tenant: &str) -> Result<Vec<Pipeline>> {
        self.scan(&family::pipelines(tenant), None)
            .map(|r| r.map(|(_, p)| p))
            .collect()
    }

    /// Creates (`expected_version` None) or replaces a pipeline. Refuses to drop a stage that
    /// records still sit in, checked in the same transaction as the write.
    pub fn put_pipeline(
        &self,
        tenant: &str,
        p: &Pipeline,
        expected_version: Option<u64>,
    ) -> Result<()> {
        let done = self.put_pipeline_tx(tenant, p, expected_version);
        self.pipelines.invalidate(&family::pipeline(tenant, &p.id));
        done
    }

    fn put_pipeline_tx(
        &self,
        tenant: &str,
        p: &Pipeline,
        expected_version: Option<u64>,
    ) -> Result<()> {
        self.transact(|tx| {
            let key = family::pipeline(tenant, &p.id);
            let current: Option<Pipeline> = tx.get(&key)?;
            match (&current, expected_version) {
                (Some(_), None) => {
                    return Err(StoreError::AlreadyExists(format!("pipeline {:?}", p.id)))
                }
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
        })
    }

    /// Deletes a pipeline that no record uses.
    pub fn delete_pipeline(&self, tenant: &str, id: &str) -> Result<()> {
        let done = self.delete_pipeline_tx(tenant, id);
        self.pipelines.invalidate(&family::pipeline(tenant, id));
        done
    }

    fn delete_pipeline_tx(&self, tenant: &str, id: &str) -> Result<()> {
        self.transact(|tx| {
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
        })
    }
}
