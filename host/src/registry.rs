//! The module registry's one write path: check an upload (and that its tenant has room for
//! it), compile it on the sandbox's compile pool, cache the artifact and record the new
//! immutable version; and the one delete path, which removes a version's files once no
//! stored version has its bytes. Used by the API and by the demo seed alike.

use std::sync::Arc;

use chrono::Utc;

use crate::model::ModuleVersion;
use crate::sandbox::{Sandbox, SandboxError, Ticket, UploadError};
use crate::store::{Changeset, ModuleQuota, Op, Store, StoreError};

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
    /// The tenant's module storage has no room for it ([`ModuleQuota`]); the message names
    /// the limit and how to make room.
    #[error("{0}")]
    OverQuota(String),
}

impl PublishError {
    fn from_store(e: StoreError) -> PublishError {
        match e {
            StoreError::OverQuota(m) => PublishError::OverQuota(m),
            e => PublishError::Store(e),
        }
    }
}

/// Starts publishing `bytes` as the next version of module `name`, in the compile queue place
/// `ticket` holds for its tenant (`sandbox.compiler().reserve(tenant)`, taken before the
/// bytes were read). The cheap checks run now, on the calling thread (milliseconds, but not
/// for an async worker); the compile, the artifact and the record happen later on a compile
/// thread, in the tenant's turn, and `done` gets the outcome there. A refusal now is returned
/// and `done` is dropped uncalled. A rejected upload stores nothing. A tenant with no room
/// left under `quota` is refused now, before its upload costs a compile.
#[allow(clippy::too_many_arguments)]
pub fn submit(
    store: &Store,
    sandbox: &Arc<Sandbox>,
    ticket: Ticket,
    quota: ModuleQuota,
    name: &str,
    bytes: Arc<[u8]>,
    uploaded_by: &str,
    done: impl FnOnce(Result<ModuleVersion, PublishError>) + Send + 'static,
) -> Result<(), PublishError> {
    store
        .check_module_room(ticket.tenant(), name, &quota, bytes.len() as u64)
        .map_err(PublishError::from_store)?;
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
        let result = inspected.map_err(PublishError::from).and_then(|ins| {
            let upload = Upload {
                tenant: &tenant,
                name: &name,
                bytes: &source,
                uploaded_by: &by,
                config_schema,
            };
            record(&store, &sandbox2, &quota, upload, ins)
        });
        // Let go of the store before the uploader hears back: a server stopped right after
        // its answer then closes its database at once.
        drop((store, sandbox2, source));
        done(result)
    })?;
    Ok(())
}

/// Publishes and waits for the outcome. Blocking (it waits for the compile): call it from a
/// blocking thread.
pub fn publish(
    store: &Store,
    sandbox: &Arc<Sandbox>,
    quota: ModuleQuota,
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
        quota,
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
    quota: ModuleQuota,
    name: &str,
    bytes: impl AsRef<[u8]> + Send + 'static,
    uploaded_by: &str,
) -> Result<ModuleVersion, PublishError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (store, sandbox) = (store.clone(), sandbox.clone());
    let (name, by) = (name.to_string(), uploaded_by.to_string());
    tokio::task::spawn_blocking(move || {
        let bytes = Arc::from(bytes.as_ref());
        submit(
            &store,
            &sandbox,
            ticket,
            quota,
            &name,
            bytes,
            &by,
            move |r| {
                let _ = tx.send(r);
            },
        )
    })
    .await
    .map_err(|_| PublishError::Interrupted)??;
    rx.await.map_err(|_| PublishError::Interrupted)?
}

/// Who uploads what as which module, with what was read from it.
struct Upload<'a> {
    tenant: &'a str,
    name: &'a str,
    bytes: &'a [u8],
    uploaded_by: &'a str,
    config_schema: Option<serde_json::Value>,
}

/// Stores a compiled upload's source and artifact and records the next version, if its
/// tenant has room for it under `quota`; a refused upload's files go again unless another
/// version has the same bytes.
fn record(
    store: &Store,
    sandbox: &Sandbox,
    quota: &ModuleQuota,
    up: Upload<'_>,
    ins: crate::sandbox::Inspected,
) -> Result<ModuleVersion, PublishError> {
    let (hash, size, language, imports) = (
        ins.hash.clone(),
        ins.size,
        ins.language.clone(),
        ins.imports.clone(),
    );
    // From storing the files to recording the version: a delete of the last other version
    // with these bytes must not remove them in between.
    let _files = sandbox.lock_files();
    sandbox.install(ins, up.bytes).map_err(|e| match &e {
        // Its artifact shares the database's disk: a full one is the same 503.
        SandboxError::Io { source, .. } => {
            StoreError::disk_full(source).map_or(PublishError::Sandbox(e), PublishError::Store)
        }
        _ => PublishError::Sandbox(e),
    })?;
    let artifact_size = sandbox.artifact_size(&hash);
    let now = Utc::now();
    // The store numbers it, after the module's latest, if the tenant has room for it.
    let version = ModuleVersion {
        module: up.name.to_string(),
        version: 0,
        hash: hash.clone(),
        size: size as u64,
        artifact_size,
        language,
        imports,
        config_schema: up.config_schema.clone(),
        uploaded_by: up.uploaded_by.to_string(),
        uploaded_at: now,
    };
    // Many hosts: the component is kept for every host in the same transaction as the
    // version (a host that runs the version finds its bytes however soon it asks, and a
    // failed commit leaves no bytes behind).
    let add = Op::AddModuleVersion {
        version,
        quota: *quota,
    };
    let mut cs = Changeset::op(up.tenant, add);
    if sandbox.shared_modules().is_some() {
        cs.ops.insert(
            0,
            Op::KeepModuleBytes {
                hash: hash.clone(),
                bytes: up.bytes.into(),
            },
        );
    }
    let added = store.commit(&cs).and_then(|c| c.module_version());
    let v = match added {
        Ok(v) => v,
        Err(e) => {
            // Nothing recorded: the files go unless a stored version has these bytes (when
            // that cannot be read, they stay: an unused file is better than a missing one).
            if store.module_file_uses(&hash).is_ok_and(|n| n == 0) {
                sandbox.remove(&hash);
            }
            return Err(PublishError::from_store(e));
        }
    };
    tracing::info!(module = %up.name, version = v.version, hash = %v.hash, "module version published");
    Ok(v)
}

/// Deletes a version no binding uses, and its files when no stored version (of any tenant)
/// has its bytes any more. Blocking: call it from a blocking thread.
pub fn delete_version(
    store: &Store,
    sandbox: &Sandbox,
    tenant: &str,
    name: &str,
    version: u32,
) -> Result<(), StoreError> {
    let _files = sandbox.lock_files();
    if let Some(hash) = store.delete_module_version(tenant, name, version)? {
        sandbox.remove(&hash);
        tracing::info!(module = %name, version, %hash, "module files removed: no version has them any more");
    }
    Ok(())
}
