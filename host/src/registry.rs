//! The module registry's one write path: validate an upload, compile it, cache the artifact
//! and record the new immutable version. Used by the API and by the demo seed alike.

use chrono::Utc;

use crate::model::ModuleVersion;
use crate::sandbox::{Sandbox, SandboxError, UploadError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The upload was fine; storing its artifact failed (a server fault).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Publishes `bytes` as the next version of module `name`. Blocking (compiles): call it
/// from a blocking thread. A rejected upload stores nothing.
pub fn publish(
    store: &Store,
    sandbox: &Sandbox,
    tenant: &str,
    name: &str,
    bytes: &[u8],
    uploaded_by: &str,
) -> Result<ModuleVersion, PublishError> {
    let ins = sandbox.inspect(bytes)?;
    let config_schema = match crate::sandbox::inspect::config_schema(bytes)? {
        Some(section) => {
            Some(crate::crm::config_schema::check(section).map_err(UploadError::ConfigSchema)?)
        }
        None => None,
    };
    let (hash, size, language, imports) = (
        ins.hash.clone(),
        ins.size,
        ins.language.clone(),
        ins.imports.clone(),
    );
    sandbox.install(ins, bytes)?;
    let now = Utc::now();
    let v = store.add_module_version(tenant, name, |version| ModuleVersion {
        module: name.to_string(),
        version,
        hash: hash.clone(),
        size: size as u64,
        language: language.clone(),
        imports: imports.clone(),
        config_schema: config_schema.clone(),
        uploaded_by: uploaded_by.to_string(),
        uploaded_at: now,
    })?;
    tracing::info!(module = %name, version = v.version, hash = %v.hash, "module version published");
    Ok(v)
}
