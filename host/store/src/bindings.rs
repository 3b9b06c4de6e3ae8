//! Bindings, and the per-module-version use counts that keep enabled versions from being
//! deleted.

use std::sync::Arc;

use super::{family, Result, Store, StoreError, Tx};
use crate::model::Binding;

fn uses(tx: &Tx<'_>, tenant: &str, b: &Binding, delta: i64) -> Result<()> {
    tx.add(&family::module_uses(tenant, &b.module, b.version), delta)?;
    Ok(())
}

impl Store {
    pub fn binding(&self, tenant: &str, id: &str) -> Result<Option<Binding>> {
        self.get(&family::binding(tenant, id))
    }

    /// The tenant's bindings, in (pipeline, order, id) order. Read on every change, so kept
    /// decoded in memory until a binding of the tenant is written, and shared, not copied.
    pub fn bindings(&self, tenant: &str) -> Result<Arc<Vec<Binding>>> {
        let all = self.bindings.get_or_load(tenant, || {
            let mut all: Vec<Binding> = self
                .scan(&family::bindings(tenant), None)
                .map(|r| r.map(|(_, b)| b))
                .collect::<Result<_>>()?;
            all.sort_by(|a, b| (&a.pipeline, a.order, &a.id).cmp(&(&b.pipeline, b.order, &b.id)));
            Ok(Some(all))
        })?;
        Ok(all.unwrap_or_default())
    }

    /// Creates (`expected` None) or replaces a binding at revision `expected`. The module
    /// version and pipeline must exist at commit time.
    pub fn put_binding(&self, tenant: &str, b: &Binding, expected: Option<u64>) -> Result<()> {
        let done = self.put_binding_tx(tenant, b, expected);
        self.bindings.invalidate(tenant);
        done
    }

    fn put_binding_tx(&self, tenant: &str, b: &Binding, expected: Option<u64>) -> Result<()> {
        self.transact(|tx| {
            let key = family::binding(tenant, &b.id);
            let current: Option<Binding> = tx.get(&key)?;
            match (&current, expected) {
                (Some(_), None) => {
                    return Err(StoreError::AlreadyExists(format!("binding {:?}", b.id)))
                }
                (None, Some(_)) => return Err(StoreError::NotFound(format!("binding {:?}", b.id))),
                (Some(c), Some(v)) if c.revision != v => {
                    return Err(StoreError::VersionConflict {
                        what: format!("binding {:?}", b.id),
                        expected: v,
                        found: c.revision,
                    })
                }
                _ => {}
            }
            if !tx.exists(&family::module_version(tenant, &b.module, b.version))? {
                return Err(StoreError::Refused(format!(
                    "module {:?} has no version {}",
                    b.module, b.version
                )));
            }
            if !tx.exists(&family::pipeline(tenant, &b.pipeline))? {
                return Err(StoreError::Refused(format!(
                    "pipeline {:?} does not exist",
                    b.pipeline
                )));
            }
            if let Some(c) = &current {
                uses(tx, tenant, c, -1)?;
            }
            uses(tx, tenant, b, 1)?;
            tx.put(&key, b)
        })
    }

    pub fn delete_binding(&self, tenant: &str, id: &str) -> Result<()> {
        let done = self.delete_binding_tx(tenant, id);
        self.bindings.invalidate(tenant);
        done
    }

    fn delete_binding_tx(&self, tenant: &str, id: &str) -> Result<()> {
        self.transact(|tx| {
            let key = family::binding(tenant, id);
            let Some(b) = tx.get::<Binding>(&key)? else {
                return Err(StoreError::NotFound(format!("binding {id:?}")));
            };
            uses(tx, tenant, &b, -1)?;
            tx.remove(&key)?;
            Ok(())
        })
    }
}
