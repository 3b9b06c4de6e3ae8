//! The store as a run sees it: [`StoreSource`] implements the sandbox's narrow
//! [`RecordSource`] over the store, bound to one tenant. This is the only bridge from the
//! sandbox to stored data.

use std::sync::Arc;

use crate::model::{Pipeline, Record, RecordFilter, Task};
use crate::sandbox::{RecordSource, SourceError};
use crate::store::{ListLimits, Store};

pub struct StoreSource {
    store: Store,
    tenant: String,
}

impl StoreSource {
    /// A source reading `tenant`'s data only.
    pub fn for_tenant(store: &Store, tenant: &str) -> Arc<dyn RecordSource> {
        Arc::new(StoreSource {
            store: store.clone(),
            tenant: tenant.to_string(),
        })
    }
}

/// Pages a find reads at most to reach its limit: each looks at up to 10,000 rows or 20,000
/// index entries (the store's page budgets), so a find looks at no more than 80,000.
const FIND_PAGES: usize = 8;

/// What a find may answer, in JSON bytes of its records (the store's page bound).
const FIND_BYTES: usize = 4 * 1024 * 1024;

fn json_bytes(r: &Record) -> usize {
    serde_json::to_vec(r).map_or(0, |v| v.len())
}

fn failed(e: crate::store::StoreError) -> SourceError {
    SourceError(e.to_string())
}

impl RecordSource for StoreSource {
    fn record(&self, id: &str) -> Result<Option<Record>, SourceError> {
        self.store.record(&self.tenant, id).map_err(failed)
    }

    /// Read from the store's record indexes (kind, pipeline and stage, owner; intersected
    /// when combined), so a find costs what it returns, whatever the tenant holds.
    fn find(&self, filter: &RecordFilter, limit: usize) -> Result<Vec<Record>, SourceError> {
        // A page ends early at its budget of rows looked at (a stage without its pipeline
        // is checked on the rows) or of bytes: the find goes on from its cursor, so it
        // answers whole or fails naming why, never short.
        let mut found: Vec<Record> = Vec::new();
        let mut after: Option<String> = None;
        let mut bytes = 0;
        for _ in 0..FIND_PAGES {
            let left = ListLimits {
                page_bytes: FIND_BYTES.saturating_sub(bytes).max(1),
            };
            let page = self
                .store
                .records(
                    &self.tenant,
                    filter,
                    after.as_deref(),
                    limit - found.len(),
                    &left,
                )
                .map_err(failed)?;
            let Some(next) = page.next else {
                found.extend(page.records);
                return Ok(found);
            };
            bytes += page.records.iter().map(json_bytes).sum::<usize>();
            found.extend(page.records);
            if found.len() >= limit {
                return Ok(found);
            }
            if bytes >= FIND_BYTES {
                return Err(SourceError(format!(
                    "records.find: the records found passed {} MiB before the limit of \
                     {limit}; ask for fewer",
                    FIND_BYTES >> 20
                )));
            }
            after = Some(next);
        }
        Err(SourceError(format!(
            "records.find: {FIND_PAGES} pages of candidates did not reach the limit of {limit}; \
             narrow the filter (a stage with its pipeline, a kind or an owner)"
        )))
    }

    fn pipeline(&self, id: &str) -> Result<Option<Pipeline>, SourceError> {
        self.store.pipeline(&self.tenant, id).map_err(failed)
    }

    fn task(&self, id: &str) -> Result<Option<Task>, SourceError> {
        self.store.task(&self.tenant, id).map_err(failed)
    }
}
