//! How much room one tenant's modules may take, and how much they take: the rule a backend
//! enforces inside the commit that adds a version, and the facade checks early (before a
//! compile) with the same words.

use stagecraft_model::ModuleVersion;

use crate::{Result, StoreError};

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

/// What a tenant's modules take now ([`crate::Read::ModuleUsage`]): its modules with stored
/// versions, the stored versions of one module, and the bytes of all its stored versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModuleUsage {
    pub modules: i64,
    pub versions: i64,
    pub bytes: i64,
}

const MAKE_ROOM: &str =
    "delete versions no binding uses (DELETE /v1/modules/{name}/versions/{n}) to make room";

impl ModuleQuota {
    /// Whether one more version of `name` taking `need` bytes fits next to `usage`
    /// (`need_words` says what was counted); the refusal ([`StoreError::OverQuota`]) names
    /// the limit and how to make room.
    pub fn admit(
        &self,
        name: &str,
        usage: &ModuleUsage,
        need: u64,
        need_words: &str,
    ) -> Result<()> {
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

/// What a version counts against its tenant's module storage: its component and its
/// compiled artifact.
pub fn stored_bytes(v: &ModuleVersion) -> i64 {
    i64::try_from(v.size.saturating_add(v.artifact_size)).unwrap_or(i64::MAX)
}
