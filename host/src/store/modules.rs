//! The module registry: names, immutable numbered versions, how many bindings use each, and
//! how much room a tenant's modules take. The counts are kept in the transactions that add
//! and delete versions, so a quota holds however many uploads commit at once.

use std::collections::BTreeMap;

use chrono::Utc;

use super::{family, Result, Store, StoreError, Tx};
use crate::model::{Module, ModuleVersion};

/// How much one tenant may keep in the module registry. Every stored version keeps its
/// component and its compiled artifact on disk, so without a bound a tenant could fill the
/// disk every tenant shares; deleting versions no binding uses makes room again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleQuota {
    /// Modules with at least one stored version.
    pub modules: u32,
    /// Stored versions of one module (version numbers keep counting up; deleted versions
    /// do not count).
    pub versions: u32,
    /// Bytes of all stored versions together: components plus compiled artifacts. A version
    /// counts whole even when another version (of any tenant) has the same bytes.
    pub bytes: u64,
}

impl Default for ModuleQuota {
    fn default() -> Self {
        ModuleQuota {
            modules: 100,
            versions: 100,
            bytes: 1 << 30,
        }
    }
}

/// What a tenant's modules take now, and what one module of it takes.
struct Usage {
    modules: i64,
    versions: i64,
    bytes: i64,
}

const MAKE_ROOM: &str =
    "delete versions no binding uses (DELETE /v1/modules/{name}/versions/{n}) to make room";

impl ModuleQuota {
    /// Whether one more version of `name` taking `need` bytes fits next to `usage`
    /// (`need_words` says what was counted); the refusal names the limit and how to make room.
    fn admit(&self, name: &str, usage: &Usage, need: u64, need_words: &str) -> Result<()> {
        if usage.versions >= i64::from(self.versions) {
            return Err(StoreError::OverQuota(format!(
                "module {name:?} already keeps {} versions, the most one module may keep; {MAKE_ROOM}",
                usage.versions
            )));
        }
        if usage.versions == 0 && usage.modules >= i64::from(self.modules) {
            return Err(StoreError::OverQuota(format!(
                "the tenant already has {} modules with stored versions, the most it may have; delete every version of a module it no longer uses (DELETE /v1/modules/{{name}}/versions/{{n}}) to make room",
                usage.modules
            )));
        }
        let used = u64::try_from(usage.bytes).unwrap_or(0);
        if used.saturating_add(need) > self.bytes {
            return Err(StoreError::OverQuota(format!(
                "this version takes {need_words} and the tenant's modules already take {used} of the {} bytes they may; {MAKE_ROOM}",
                self.bytes
            )));
        }
        Ok(())
    }
}

/// What a version counts against its tenant's module storage.
fn stored_bytes(v: &ModuleVersion) -> i64 {
    i64::try_from(v.size.saturating_add(v.artifact_size)).unwrap_or(i64::MAX)
}

impl Store {
    /// Refuses at once an upload that could not be stored under `quota` whatever its
    /// compiled artifact weighs (`size` is the component's bytes): run before compiling, so a
    /// tenant over its quota costs no compile. [`Store::add_module_version`] checks again,
    /// exactly, when the version is recorded.
    pub fn check_module_room(
        &self,
        tenant: &str,
        name: &str,
        quota: &ModuleQuota,
        size: u64,
    ) -> Result<()> {
        let usage = Usage {
            modules: self.counter(&family::tenant_modules(tenant))?,
            versions: self.counter(&family::module_stored_versions(tenant, name))?,
            bytes: self.counter(&family::tenant_module_bytes(tenant))?,
        };
        quota.admit(
            name,
            &usage,
            size,
            &format!("its {size} bytes plus its compiled artifact"),
        )
    }

    /// Records a new version of `name` (creating the module on first upload), if it fits the
    /// tenant's `quota` ([`StoreError::OverQuota`] otherwise, naming the limit). `make`
    /// receives the version number this upload gets.
    pub fn add_module_version(
        &self,
        tenant: &str,
        name: &str,
        quota: &ModuleQuota,
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
            let usage = Usage {
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
        })
    }

    pub fn module(&self, tenant: &str, name: &str) -> Result<Option<Module>> {
        self.get(&family::module(tenant, name))
    }

    /// The tenant's modules with at least one stored version (at most its quota's
    /// `modules`). A module whose versions were all deleted keeps its record, so its
    /// version numbers are never reused, but is no longer listed.
    pub fn modules(&self, tenant: &str) -> Result<Vec<Module>> {
        let mut out = Vec::new();
        for item in self.scan::<Module>(&family::modules(tenant), None) {
            let (_, m) = item?;
            if self.counter(&family::module_stored_versions(tenant, &m.name))? > 0 {
                out.push(m);
            }
        }
        Ok(out)
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

    /// How many stored versions, in any tenant, have the content `hash`.
    pub fn module_file_uses(&self, hash: &str) -> Result<i64> {
        self.counter(&family::module_files(hash))
    }

    /// A counter kept by [`Tx::add`], read outside a transaction.
    fn counter(&self, key: &str) -> Result<i64> {
        Ok(match self.data.get(key)? {
            Some(b) if b.len() == 8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                i64::from_be_bytes(a)
            }
            _ => 0,
        })
    }

    /// Deletes a version no binding uses, giving its room back to the tenant. Returns its
    /// content hash when no stored version has those bytes any more: its files may go.
    pub fn delete_module_version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Option<String>> {
        self.transact(|tx| {
            let key = family::module_version(tenant, name, version);
            let Some(v) = tx.get::<ModuleVersion>(&key)? else {
                return Err(StoreError::NotFound(format!("module {name:?} version {version}")));
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
        })
    }

    /// Counts the versions stored before the module counters existed, once: at start-up,
    /// before any request. A version recorded without its artifact's size gets it from
    /// `artifact_size` (the file on disk) and is rewritten with it. Returns how many versions
    /// it counted (0 when already done).
    pub fn count_stored_modules(&self, artifact_size: impl Fn(&str) -> u64) -> Result<u64> {
        if self.data.get(family::MODULES_COUNTED)?.is_some() {
            return Ok(0);
        }
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut sized = Vec::new();
        let mut n = 0;
        for item in self.scan_raw(family::MODULE_VERSIONS, None) {
            let (key, bytes) = item?;
            let Ok(mut v) = super::decode::<ModuleVersion>(&key, &bytes) else {
                tracing::warn!(%key, "unreadable module version; not counted");
                continue;
            };
            let tenant = key.split('/').nth(1).unwrap_or_default();
            if v.artifact_size == 0 {
                v.artifact_size = artifact_size(&v.hash);
                sized.push((key.clone(), v.clone()));
            }
            let versions = counts
                .entry(family::module_stored_versions(tenant, &v.module))
                .or_default();
            *versions += 1;
            if *versions == 1 {
                *counts.entry(family::tenant_modules(tenant)).or_default() += 1;
            }
            *counts
                .entry(family::tenant_module_bytes(tenant))
                .or_default() += stored_bytes(&v);
            *counts.entry(family::module_files(&v.hash)).or_default() += 1;
            n += 1;
        }
        for chunk in sized.chunks(256) {
            self.transact(|tx| {
                for (k, v) in chunk {
                    tx.put(k, v)?;
                }
                Ok(())
            })?;
        }
        let counts: Vec<(String, i64)> = counts.into_iter().collect();
        for chunk in counts.chunks(256) {
            self.transact(|tx| {
                for (k, v) in chunk {
                    tx.t.insert(k.as_str(), &v.to_be_bytes()[..])
                        .map_err(super::unabortable)?;
                }
                Ok(())
            })?;
        }
        self.transact(|tx| tx.put(family::MODULES_COUNTED, &true))?;
        Ok(n)
    }
}

/// Adds (`delta` 1) or removes (-1) version `v` in its tenant's counts; returns how many
/// stored versions now have its content hash.
fn count_version(tx: &Tx<'_>, tenant: &str, v: &ModuleVersion, delta: i64) -> Result<i64> {
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
