//! Bindings, and the per-module-version use counts that keep enabled versions from being
//! deleted.

use super::tx::Tx;
use super::{family, SledBackend};
use crate::{Result, StoreError};
use stagecraft_model::Binding;

fn uses(tx: &Tx<'_>, tenant: &str, b: &Binding, delta: i64) -> Result<()> {
    tx.add(&family::module_uses(tenant, &b.module, b.version), delta)?;
    Ok(())
}

impl SledBackend {
    /// The tenant's bindings, in key (id) order.
    pub(super) fn bindings(&self, tenant: &str) -> Result<Vec<Binding>> {
        self.scan(&family::bindings(tenant), None)
            .map(|r| r.map(|(_, b)| b))
            .collect()
    }
}

/// Creates (`expected` None) or replaces a binding at revision `expected`. The module
/// version and pipeline must exist at commit time.
pub(super) fn put(tx: &Tx<'_>, tenant: &str, b: &Binding, expected: Option<u64>) -> Result<()> {
    let key = family::binding(tenant, &b.id);
    let current: Option<Binding> = tx.get(&key)?;
    match (&current, expected) {
        (Some(_), None) => return Err(StoreError::AlreadyExists(format!("binding {:?}", b.id))),
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
}

pub(super) fn delete(tx: &Tx<'_>, tenant: &str, id: &str) -> Result<()> {
    let key = family::binding(tenant, id);
    let Some(b) = tx.get::<Binding>(&key)? else {
        return Err(StoreError::NotFound(format!("binding {id:?}")));
    };
    uses(tx, tenant, &b, -1)?;
    tx.remove(&key)?;
    Ok(())
}
