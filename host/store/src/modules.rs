//! The module registry: names, immutable numbered versions, and how many bindings use each.

use chrono::Utc;

use super::{family, Result, Store, StoreError};
use crate::model::{Module, ModuleVersion};

impl Store {
    /// Records a new version of `name` (creating the module on first upload). `make` receives
    /// the version number this upload gets.
    pub fn add_module_version(
        &self,
        tenant: &str,
        name: &str,
        make: impl Fn(u32) -> ModuleVersion,
    ) -> Result<ModuleVersion> {
        self.transact(|tx| {
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
            let v = make(m.latest);
            tx.put(&key, &m)?;
            tx.put(&family::module_version(tenant, name, v.version), &v)?;
            Ok(v)
        })
    }

    pub fn module(&self, tenant: &str, name: &str) -> Result<Option<Module>> {
        self.get(&family::module(tenant, name))
    }

    pub fn modules(&self, tenant: &str) -> Result<Vec<Module>> {
        self.scan(&family::modules(tenant), None)
            .map(|r| r.map(|(_, m)| m))
            .collect()
    }

    pub fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<ModuleVersion>> {
        self.scan(&family::module_versions(tenant, name), None)
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    pub fn module_version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Option<ModuleVersion>> {
        self.get(&family::module_version(tenant, name, version))
    }

    /// Deletes a version no binding uses.
    pub fn delete_module_version(&self, tenant: &str, name: &str, version: u32) -> Result<()> {
        self.transact(|tx| {
            let key = family::module_version(tenant, name, version);
            if !tx.exists(&key)? {
                return Err(StoreError::NotFound(format!("module {name:?} version {version}")));
            }
            let uses = tx.counter(&family::module_uses(tenant, name, version))?;
            if uses > 0 {
                return Err(StoreError::Refused(format!(
                    "module {name:?} version {version} is enabled in {uses} binding(s); switch or delete them first"
                )));
            }
            tx.remove(&key)?;
            Ok(())
        })
    }
}
