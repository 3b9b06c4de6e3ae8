//! The module registry: names, immutable numbered versions, and how many bindings use each.

use chrono::Utc;

use super::tx::Tx;
use super::{family, SledBackend};
use crate::{Result, StoreError};
use stagecraft_model::{Module, ModuleVersion};

impl SledBackend {
    pub(super) fn modules(&self, tenant: &str) -> Result<Vec<Module>> {
        self.scan(&family::modules(tenant), None)
            .map(|r| r.map(|(_, m)| m))
            .collect()
    }

    pub(super) fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<ModuleVersion>> {
        self.scan(&family::module_versions(tenant, name), None)
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }
}

/// Records a new version of `v.module` (creating the module on first upload), numbered
/// after the module's latest.
pub(super) fn add_version(tx: &Tx<'_>, tenant: &str, v: &ModuleVersion) -> Result<ModuleVersion> {
    let name = v.module.as_str();
    let key = family::module(tenant, name);
    let now = Utc::now();
    let mut m: Module = tx.get(&key)?.unwrap_or(Module {
        name: name.to_string(),
        latest: 0,
        created_at: now,
        updated_at: now,
    });
    m.latest += 1;
    m.updated_at = now;
    let mut v = v.clone();
    v.version = m.latest;
    tx.put(&key, &m)?;
    tx.put(&family::module_version(tenant, name, v.version), &v)?;
    Ok(v)
}

/// Deletes a version no binding uses.
pub(super) fn delete_version(tx: &Tx<'_>, tenant: &str, name: &str, version: u32) -> Result<()> {
    let key = family::module_version(tenant, name, version);
    if !tx.exists(&key)? {
        return Err(StoreError::NotFound(format!(
            "module {name:?} version {version}"
        )));
    }
    let uses = tx.counter(&family::module_uses(tenant, name, version))?;
    if uses > 0 {
        return Err(StoreError::Refused(format!(
            "module {name:?} version {version} is enabled in {uses} binding(s); switch or delete them first"
        )));
    }
    tx.remove(&key)?;
    Ok(())
}
