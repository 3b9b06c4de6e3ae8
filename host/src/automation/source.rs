//! The store as a run sees it: [`StoreSource`] implements the sandbox's narrow
//! [`RecordSource`] over the store, bound to one tenant. This is the only bridge from the
//! sandbox to stored data.

use std::sync::Arc;

use crate::model::{Pipeline, Record, RecordFilter, Task};
use crate::sandbox::{RecordSource, SourceError};
use crate::store::Store;

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
        self.store
            .records(
                &self.tenant,
                filter,
                None,
                limit,
                &crate::store::ListLimits::default(),
            )
            .map(|page| page.records)
            .map_err(failed)
    }

    fn pipeline(&self, id: &str) -> Result<Option<Pipeline>, SourceError> {
        self.store.pipeline(&self.tenant, id).map_err(failed)
    }

    fn task(&self, id: &str) -> Result<Option<Task>, SourceError> {
        self.store.task(&self.tenant, id).map_err(failed)
    }
}
