//! Module bytes shared between hosts. In a many-host deployment (PostgreSQL) a component is
//! uploaded through one host, and its bytes are kept in the database by content hash; every
//! other host compiles it into its own data dir the first time it needs it. The sandbox
//! cannot see the store, so the host hands it this interface ([`Sandbox::share_modules`]).

use std::path::Path;

use crate::{content_hash, write, Sandbox, SandboxError};

/// Where a module's bytes are kept for every host.
pub trait SharedModules: Send + Sync {
    /// The bytes stored under `hash`, if any.
    fn fetch(&self, hash: &str) -> Result<Option<Vec<u8>>, String>;
    /// Keeps `bytes` (whose content hash is `hash`) for every host, once per tenant.
    fn keep(&self, tenant: &str, hash: &str, bytes: &[u8]) -> Result<(), String>;
}

impl Sandbox {
    /// Shares module bytes through `shared` (set once, at start).
    pub fn share_modules(&self, shared: std::sync::Arc<dyn SharedModules>) {
        let _ = self.shared.set(shared);
    }

    pub fn shared_modules(&self) -> Option<&dyn SharedModules> {
        self.shared.get().map(|s| s.as_ref())
    }

    /// The bytes of `hash` from the shared store, written to `source` (this host's copy);
    /// `Missing` when there is no shared store or it has no such bytes, or when what it
    /// holds does not hash to `hash`.
    pub(crate) fn fetch_shared(&self, hash: &str, source: &Path) -> Result<Vec<u8>, SandboxError> {
        let missing = || SandboxError::Missing {
            hash: hash.to_string(),
        };
        let Some(shared) = self.shared.get() else {
            return Err(missing());
        };
        let bytes = match shared.fetch(hash) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(missing()),
            Err(e) => {
                tracing::warn!(module = hash, error = %e, "cannot fetch a module's bytes from the shared store");
                return Err(missing());
            }
        };
        if content_hash(&bytes) != hash {
            tracing::warn!(
                module = hash,
                "the shared store's bytes do not match their hash"
            );
            return Err(missing());
        }
        write(source, &bytes)?;
        tracing::info!(module = hash, "module fetched from the shared store");
        Ok(bytes)
    }
}
