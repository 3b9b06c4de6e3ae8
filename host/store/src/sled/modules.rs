//! The module registry: names, immutable numbered versions, how many bindings use each, and
//! how much room a tenant's modules take. The counts are kept in the transactions that add
//! and delete versions, so a quota holds however many uploads commit at once.

use chrono::Utc;

use super::tx::Tx;
use super::{family, SledBackend};
use crate::quota::{stored_bytes, ModuleQuota, ModuleUsage};
use crate::{Result, StoreError};
use stagecraft_model::{Module, ModuleVersion};

impl SledBackend {
    /// The tenant's modules with at least one stored version.
    pub(super) fn modules(&self, tenant: &str) -> Result<Vec<Module>> {
        let mut out = Vec::new();
        for item in self.scan::<Module>(&family::modules(tenant), None) {
            let (_, m) = item?;
            if self.counter(&family::module_stored_versions(tenant, &m.name))? > 0 {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub(super) fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<ModuleVersion>> {
        self.scan(&family::module_versions(tenant, name), None)
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    pub(super) fn module_usage(&self, tenant: &str, name: &str) -> Result<ModuleUsage> {
        Ok(ModuleUsage {
            modules: self.counter(&family::tenant_modules(tenant))?,
            versions: self.counter(&family::module_stored_versions(tenant, name))?,
            bytes: self.counter(&family::tenant_module_bytes(tenant))?,
        })
    }

    pub(super) fn module_file_uses(&self, hash: &str) -> Result<u64> {
        Ok(u64::try_from(self.counter(&family::module_files(hash))?).unwrap_or(0))
    }
}

/// Records a new version of `v.module` (creating the module on first upload), numbered
/// after the module's latest, if it fits the tenant's `quota`.
pub(super) fn add_version(
    tx: &Tx<'_>,
    tenant: &str,
    v: &ModuleVersion,
    quota: &ModuleQuota,
) -> Result<ModuleVersion> {
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
    let usage = ModuleUsage {
        modules: tx.counter(&family::tenant_modules(tenant))?,
        versions: tx.counter(&family::module_stored_versions(tenant, name))?,
        bytes: tx.counter(&family::tenant_module_bytes(tenant))?,
    };
    let need = v.size.saturating_add(v.artifact_size);
    quota.admit(
        name,
        &usage,
        need,
        &format!("{need} bytes with its compiled artifact"),
    )?;
    count_version(tx, tenant, &v, 1)?;
    tx.put(&key, &m)?;
    tx.put(&family::module_version(tenant, name, v.version), &v)?;
    Ok(v)
}

/// Deletes a version no binding uses, giving its room back to the tenant. Returns its
/// content hash when no stored version has those bytes any more: its files may go.
pub(super) fn delete_version(
    tx: &Tx<'_>,
    tenant: &str,
    name: &str,
    version: u32,
) -> Result<Option<String>> {
    let key = family::module_version(tenant, name, version);
    let Some(v) = tx.get::<ModuleVersion>(&key)? else {
        return Err(StoreError::NotFound(format!(
            "module {name:?} version {version}"
        )));
    };
    let uses = tx.counter(&family::module_uses(tenant, name, version))?;
    if uses > 0 {
        return Err(StoreError::Refused(format!(
            "module {name:?} version {version} is enabled in {uses} binding(s); switch or delete them first"
        )));
    }
    tx.remove(&key)?;
    let files_left = count_version(tx, tenant, &v, -1)?;
    Ok((files_left <= 0).then(|| v.hash.clone()))
}

/// Records the artifact size of a version stored without one, moving the tenant's bytes.
pub(super) fn size_version(
    tx: &Tx<'_>,
    tenant: &str,
    name: &str,
    version: u32,
    artifact_size: u64,
) -> Result<()> {
    let key = family::module_version(tenant, name, version);
    let Some(mut v) = tx.get::<ModuleVersion>(&key)? else {
        return Ok(());
    };
    if v.artifact_size != 0 {
        return Ok(());
    }
    let before = stored_bytes(&v);
    v.artifact_size = artifact_size;
    tx.add(
        &family::tenant_module_bytes(tenant),
        stored_bytes(&v).saturating_sub(before),
    )?;
    tx.put(&key, &v)
}

/// Adds (`delta` 1) or removes (-1) version `v` in its tenant's counts; returns how many
/// stored versions now have its content hash.
pub(super) fn count_version(
    tx: &Tx<'_>,
    tenant: &str,
    v: &ModuleVersion,
    delta: i64,
) -> Result<i64> {
    let versions = tx.add(&family::module_stored_versions(tenant, &v.module), delta)?;
    if (delta > 0 && versions == 1) || (delta < 0 && versions == 0) {
        tx.add(&family::tenant_modules(tenant), delta)?;
    }
    tx.add(
        &family::tenant_module_bytes(tenant),
        delta * stored_bytes(v),
    )?;
    tx.add(&family::module_files(&v.hash), delta)
}
