//! The facade's module registry bookkeeping: the early quota check an upload gets before its
//! compile, deleting a version (which says when its files may go), and sizing, once at
//! start-up, the versions stored before artifact sizes were kept. Adding a version is
//! `Op::AddModuleVersion`, which the backend checks against the quota exactly.

use stagecraft_model::ModuleVersion;

use crate::change::{Changeset, Op};
use crate::query::{Read, Row};
use crate::quota::{ModuleQuota, ModuleUsage};
use crate::store::Store;
use crate::{Result, StoreError};

impl Store {
    /// What the tenant's modules take, with the stored versions of `module`.
    pub fn module_usage(&self, tenant: &str, module: &str) -> Result<ModuleUsage> {
        let read = Read::ModuleUsage {
            tenant: tenant.to_string(),
            module: module.to_string(),
        };
        match self.backend.read(&read)? {
            Some(Row::ModuleUsage(u)) => Ok(u),
            None => Ok(ModuleUsage::default()),
            Some(_) => Err(StoreError::Backend(
                "the backend answered a module usage read with another kind of row".into(),
            )),
        }
    }

    /// Refuses at once an upload that could not be stored under `quota` whatever its
    /// compiled artifact weighs (`size` is the component's bytes): run before compiling, so a
    /// tenant over its quota costs no compile. `Op::AddModuleVersion` checks again, exactly,
    /// when the version is recorded.
    pub fn check_module_room(
        &self,
        tenant: &str,
        name: &str,
        quota: &ModuleQuota,
        size: u64,
    ) -> Result<()> {
        let usage = self.module_usage(tenant, name)?;
        quota.admit(
            name,
            &usage,
            size,
            &format!("its {size} bytes plus its compiled artifact"),
        )
    }

    /// How many stored versions, in any tenant, have the content `hash`.
    pub fn module_file_uses(&self, hash: &str) -> Result<u64> {
        let read = Read::ModuleFileUses {
            hash: hash.to_string(),
        };
        match self.backend.read(&read)? {
            Some(Row::Count(n)) => Ok(n),
            None => Ok(0),
            Some(_) => Err(StoreError::Backend(
                "the backend answered a file use read with another kind of row".into(),
            )),
        }
    }

    /// Deletes a version no binding uses, giving its room back to the tenant. Returns its
    /// content hash when no stored version has those bytes any more: its files may go.
    pub fn delete_module_version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Option<String>> {
        let op = Op::DeleteModuleVersion {
            module: name.to_string(),
            version,
        };
        self.commit(&Changeset::op(tenant, op))?.files_freed()
    }

    /// Once at start-up, before any request: versions recorded before artifact sizes were
    /// kept get theirs from `artifact_size` (the file on disk), so they count whole against
    /// their tenant's quota. Returns how many versions it sized (0 when none needed it).
    pub fn count_stored_modules(&self, artifact_size: impl Fn(&str) -> u64) -> Result<u64> {
        let mut n = 0;
        for tenant in self.tenants()? {
            for module in self.modules(&tenant.id)? {
                for v in self.module_versions(&tenant.id, &module.name)? {
                    if v.artifact_size != 0 {
                        continue;
                    }
                    let size = artifact_size(&v.hash);
                    if size == 0 {
                        continue;
                    }
                    self.size_version(&tenant.id, &v, size)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn size_version(&self, tenant: &str, v: &ModuleVersion, artifact_size: u64) -> Result<()> {
        let op = Op::SizeModuleVersion {
            module: v.module.clone(),
            version: v.version,
            artifact_size,
        };
        self.commit(&Changeset::op(tenant, op)).map(|_| ())
    }
}
