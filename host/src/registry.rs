//! The module registry's one write path: check an upload, compile it on the sandbox's compile
//! pool, cache the artifact and record the new immutable version. Used by the API and by the
//! demo seed alike.

use std::sync::Arc;

use chrono::Utc;

use crate::model::ModuleVersion;
use crate::sandbox::{Sandbox, SandboxError, Ticket, UploadError};
use crate::store::{Changeset, Op, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The upload was fine; storing its artifact failed (a server fault).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The compile never reported back (the server is shutting down, or it crashed).
    #[error("the compile of this upload was interrupted")]
    Interrupted,
}

/// Starts publishing `bytes` as the next version of module `name`, in the compile queue place
/// `ticket` holds for its tenant (`sandbox.compiler().reserve(tenant)`, taken before the
/// bytes were read). The cheap checks run now, on the calling thread (milliseconds, but not
/// for an async worker); the compile, the artifact and the record happen later on a compile
/// thread, in the tenant's turn, and `done` gets the outcome there. A refusal now is returned
/// and `done` is dropped uncalled. A rejected upload stores nothing.
pub fn submit(
    store: &Store,
    sandbox: &Arc<Sandbox>,
    ticket: Ticket,
    name: &str,
    bytes: Arc<[u8]>,
    uploaded_by: &str,
    done: impl FnOnce(Result<ModuleVersion, PublishError>) + Send + 'static,
) -> Result<(), PublishError> {
    let (store, sandbox2) = (store.clone(), sandbox.clone());
    let (tenant, name, by) = (
        ticket.tenant().to_string(),
        name.to_string(),
        uploaded_by.to_string(),
    );
    // The config schema is read and checked with the cheap checks, before the compile.
    let config_schema = match crate::sandbox::inspect::config_schema(&bytes)? {
        Some(section) => {
            Some(crate::crm::config_schema::check(section).map_err(UploadError::ConfigSchema)?)
        }
        None => None,
    };
    let source = bytes.clone();
    sandbox.compile_upload(ticket, bytes, move |inspected| {
        done(inspected.map_err(PublishError::from).and_then(|ins| {
            let upload = Upload {
                ins,
                bytes: &source,
                config_schema,
            };
            record(&store, &sandbox2, &tenant, &name, upload, &by)
        }))
    })?;
    Ok(())
}

/// Publishes and waits for the outcome. Blocking (it waits for the compile): call it from a
/// blocking thread.
pub fn publish(
    store: &Store,
    sandbox: &Arc<Sandbox>,
    tenant: &str,
    name: &str,
    bytes: &[u8],
    uploaded_by: &str,
) -> Result<ModuleVersion, PublishError> {
    let ticket = sandbox
        .compiler()
        .reserve(tenant)
        .map_err(UploadError::Busy)?;
    let (tx, rx) = std::sync::mpsc::channel();
    submit(
        store,
        sandbox,
        ticket,
        name,
        Arc::from(bytes),
        uploaded_by,
        move |r| {
            let _ = tx.send(r);
        },
    )?;
    rx.recv().map_err(|_| PublishError::Interrupted)?
}

/// Publishes from async code, in `ticket`'s place: the cheap checks on a blocking thread,
/// then the compile is awaited without holding any thread (no thread waits for a queued
/// compile).
pub async fn publish_async(
    store: &Store,
    sandbox: &Arc<Sandbox>,
    ticket: Ticket,
    name: &str,
    bytes: impl AsRef<[u8]> + Send + 'static,
    uploaded_by: &str,
) -> Result<ModuleVersion, PublishError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (store, sandbox) = (store.clone(), sandbox.clone());
    let (name, by) = (name.to_string(), uploaded_by.to_string());
    tokio::task::spawn_blocking(move || {
        let bytes = Arc::from(bytes.as_ref());
        submit(&store, &sandbox, ticket, &name, bytes, &by, move |r| {
            let _ = tx.send(r);
        })
    })
    .await
    .map_err(|_| PublishError::Interrupted)??;
    rx.await.map_err(|_| PublishError::Interrupted)?
}

/// A compiled upload with what was read from it.
struct Upload<'a> {
    ins: crate::sandbox::Inspected,
    bytes: &'a [u8],
    config_schema: Option<serde_json::Value>,
}

/// Stores a compiled upload's source and artifact and records the next version.
fn record(
    store: &Store,
    sandbox: &Sandbox,
    tenant: &str,
    name: &str,
    upload: Upload<'_>,
    uploaded_by: &str,
) -> Result<ModuleVersion, PublishError> {
    let Upload {
        ins,
        bytes,
        config_schema,
    } = upload;
    let (hash, size, language, imports) = (
        ins.hash.clone(),
        ins.size,
        ins.language.clone(),
        ins.imports.clone(),
    );
    sandbox.install(ins, bytes).map_err(|e| match &e {
        // Its artifact shares the database's disk: a full one is the same 503.
        SandboxError::Io { source, .. } => {
            StoreError::disk_full(source).map_or(PublishError::Sandbox(e), PublishError::Store)
        }
        _ => PublishError::Sandbox(e),
    })?;
    let now = Utc::now();
    // The store numbers it, after the module's latest.
    let version = ModuleVersion {
        module: name.to_string(),
        version: 0,
        hash,
        size: size as u64,
        language,
        imports,
        config_schema,
        uploaded_by: uploaded_by.to_string(),
        uploaded_at: now,
    };
    let v = store
        .commit(&Changeset::op(tenant, Op::AddModuleVersion { version }))?
        .module_version()?;
    tracing::info!(module = %name, version = v.version, hash = %v.hash, "module version published");
    Ok(v)
}
