//! What a run may read, and nothing more: one tenant's records, pipelines and tasks. Automation hands
//! the sandbox a [`RecordSource`] bound to the run's tenant; the sandbox never sees the store,
//! so it cannot reach another tenant's data or anything else the store holds, and the host
//! API can be tested against [`MemorySource`] without a database.

use std::collections::BTreeMap;

use stagecraft_model::{Pipeline, Record, RecordFilter, Task};

/// A read failed in the backend (not "not found": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The reads a run may make, already scoped to its tenant.
pub trait RecordSource: Send + Sync {
    fn record(&self, id: &str) -> Result<Option<Record>, SourceError>;
    /// Records matching `filter`, at most `limit`, in the backend's list order.
    fn find(&self, filter: &RecordFilter, limit: usize) -> Result<Vec<Record>, SourceError>;
    fn pipeline(&self, id: &str) -> Result<Option<Pipeline>, SourceError>;
    /// A task (`tasks.complete` reads it). The store's source answers from the store's
    /// tasks; sources that hold none answer `None`, so completing a task made before the run
    /// is `not-found` there.
    fn task(&self, _id: &str) -> Result<Option<Task>, SourceError> {
        Ok(None)
    }
}

/// Records and pipelines held in memory: a source for tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemorySource {
    pub records: BTreeMap<String, Record>,
    pub pipelines: BTreeMap<String, Pipeline>,
    pub tasks: BTreeMap<String, Task>,
}

impl MemorySource {
    pub fn with_record(mut self, r: Record) -> Self {
        self.records.insert(r.id.clone(), r);
        self
    }

    pub fn with_pipeline(mut self, p: Pipeline) -> Self {
        self.pipelines.insert(p.id.clone(), p);
        self
    }
}

impl RecordSource for MemorySource {
    fn record(&self, id: &str) -> Result<Option<Record>, SourceError> {
        Ok(self.records.get(id).cloned())
    }

    fn find(&self, filter: &RecordFilter, limit: usize) -> Result<Vec<Record>, SourceError> {
        Ok(self
            .records
            .values()
            .filter(|r| filter.matches(r))
            .take(limit)
            .cloned()
            .collect())
    }

    fn pipeline(&self, id: &str) -> Result<Option<Pipeline>, SourceError> {
        Ok(self.pipelines.get(id).cloned())
    }

    fn task(&self, id: &str) -> Result<Option<Task>, SourceError> {
        Ok(self.tasks.get(id).cloned())
    }
}
