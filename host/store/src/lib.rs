//! Persistence (`stagecraft-store`): the only crate that names sled. The host re-exports it
//! as `stagecraft::store`; it depends on the model only, never on the host, so it cannot
//! reach automation, HTTP or the sandbox.
//!
//! Everything lives in one sled tree under key families (`rec/{tenant}/{id}`, `evt/…`), so any
//! set of writes can be one single-tree transaction. The rest of the host calls the small set of
//! operations defined in this module's files — [`Store::commit`] for record changes and
//! their events, plus typed reads — so another backend could replace sled without touching
//! automation or HTTP.

mod automation;
mod bindings;
mod cache;
mod changeset;
mod database;
mod deep;
mod family;
mod metrics;
mod modules;
mod outbox;
mod page;
mod pipelines;
mod records;
mod retention;
mod stats;
mod tenants;

use stagecraft_model as model;

use std::path::Path;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

pub use crate::model::RecordFilter;
pub use automation::{DueTimer, FollowUpCaps, QueuedJob, RunFilter};
pub use changeset::{Changeset, RecordWrite};
pub use outbox::{DueMessage, MessageFilter};
pub use page::{ListLimits, Page};
pub use records::RecordPage;
pub use retention::Pruned;
pub use stats::Scope;

use crate::model::{Binding, Pipeline};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Sled(sled::Error),
    /// The disk is full or failing. A write that gets this was not acknowledged: it is lost
    /// or (rarely, when its bytes reached the disk before the failure) kept, whole either way.
    /// Everything is refused until the store can reopen its database (see `database`); the
    /// message says which failure it was.
    #[error("{0}")]
    Unavailable(String),
    #[error("stored value under {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{what} was changed concurrently: expected version {expected}, found {found}")]
    VersionConflict {
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{0}")]
    Refused(String),
    /// What a module read changed before its effects could commit; run it again.
    #[error("{0}")]
    Stale(String),
    /// The run was committed before (exactly-once processing skips it).
    #[error("run {0} was already committed")]
    AlreadyDone(String),
    /// sled's optimistic concurrency wants the transaction retried; never leaves `transact`.
    #[error("transaction conflict")]
    TxConflict,
}

impl StoreError {
    /// [`StoreError::Unavailable`] when `e` says the disk is full: for files kept beside the
    /// database (module artifacts), so a full disk gets one answer everywhere.
    pub fn disk_full(e: &std::io::Error) -> Option<StoreError> {
        database::is_full(e).then(|| StoreError::Unavailable(database::describe(e)))
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StoreError::Unavailable(database::describe(&io)),
            other => StoreError::Sled(other),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle every part of the host shares. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The data tree, reopened after a disk failure heals (see `database`).
    data: Arc<database::Database>,
    bindings: Arc<cache::Cache<Vec<Binding>>>,
    pipelines: Arc<cache::Cache<Pipeline>>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        let bindings: Arc<cache::Cache<Vec<Binding>>> = Arc::default();
        let pipelines: Arc<cache::Cache<Pipeline>> = Arc::default();
        let (b, p) = (bindings.clone(), pipelines.clone());
        // What the failed handle showed may not have reached the disk: forget it all.
        let on_reopen = Box::new(move || {
            b.clear();
            p.clear();
        });
        Ok(Store {
            data: Arc::new(database::Database::open(dir, on_reopen)?),
            bindings,
            pipelines,
        })
    }

    /// Writes everything to disk; called on shutdown.
    pub fn flush(&self) -> Result<()> {
        self.data.flush()
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.data.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Decoded values under `prefix`, starting strictly after `after` (a full key), in key order.
    fn scan<T: DeserializeOwned>(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        self.scan_raw(prefix, after).map(|item| {
            let (key, v) = item?;
            let value = decode(&key, &v)?;
            Ok((key, value))
        })
    }

    /// [`Store::scan`] without decoding, for callers that decode only part of what they see.
    fn scan_raw(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, sled::IVec)>> + '_ {
        // A failed scan yields its error once and ends (`database::Scan`).
        let iter = match after {
            Some(a) => {
                let mut start = a.as_bytes().to_vec();
                start.push(0);
                let mut end = prefix.as_bytes().to_vec();
                end.push(0xff);
                self.data.range(start..end)
            }
            None => self.data.scan_prefix(prefix),
        };
        let prefix = prefix.to_string();
        iter.take_while(move |item| match item {
            Ok((k, _)) => k.starts_with(prefix.as_bytes()),
            Err(_) => true,
        })
        .map(|item| {
            let (k, v) = item?;
            Ok((String::from_utf8_lossy(&k).into_owned(), v))
        })
    }

    /// Runs `f` as one atomic transaction over the data tree, durable (on disk) before it
    /// returns: whatever the caller acknowledges survives a crash. On a full disk it fails with
    /// [`StoreError::Unavailable`], as does every operation until the store reopens.
    fn transact<R>(&self, f: impl Fn(&Tx<'_>) -> Result<R>) -> Result<R> {
        self.data.transaction(true, |t| run_tx(t, &f))
    }

    /// [`Store::transact`] without waiting for the disk: atomic, and on disk within sled's
    /// flush interval (200 ms). Only for bookkeeping whose loss in a crash the restart
    /// repairs by itself — a finished job that reappears finds its run committed and is
    /// skipped; a lost claim or deferral leaves a message queued, as a restart would anyway.
    /// Saves a disk flush (the dominant cost of a commit) per background job and message.
    fn transact_unflushed<R>(&self, f: impl Fn(&Tx<'_>) -> Result<R>) -> Result<R> {
        self.data.transaction(false, |t| run_tx(t, &f))
    }
}

/// One attempt of a transaction body, its errors sorted for sled's retry loop.
fn run_tx<R>(
    t: &TransactionalTree,
    f: &impl Fn(&Tx<'_>) -> Result<R>,
) -> std::result::Result<R, ConflictableTransactionError<StoreError>> {
    f(&Tx { t }).map_err(|e| match e {
        StoreError::Sled(e) => ConflictableTransactionError::Storage(e),
        StoreError::TxConflict => ConflictableTransactionError::Conflict,
        other => ConflictableTransactionError::Abort(other),
    })
}

/// Typed access to the data tree inside a transaction.
pub(crate) struct Tx<'a> {
    t: &'a TransactionalTree,
}

impl Tx<'_> {
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.t.get(key).map_err(unabortable)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
            key: key.to_string(),
            source,
        })?;
        self.t.insert(key, bytes).map_err(unabortable)?;
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<bool> {
        Ok(self.t.remove(key).map_err(unabortable)?.is_some())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.t.get(key).map_err(unabortable)?.is_some())
    }

    /// Adds `delta` to a counter stored as a big-endian i64 and returns the new value.
    fn add(&self, key: &str, delta: i64) -> Result<i64> {
        let now = self.counter(key)? + delta;
        if now == 0 {
            self.t.remove(key).map_err(unabortable)?;
        } else {
            self.t
                .insert(key, &now.to_be_bytes()[..])
                .map_err(unabortable)?;
        }
        Ok(now)
    }

    fn counter(&self, key: &str) -> Result<i64> {
        Ok(match self.t.get(key).map_err(unabortable)? {
            Some(b) if b.len() == 8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                i64::from_be_bytes(a)
            }
            _ => 0,
        })
    }
}

fn unabortable(e: sled::transaction::UnabortableTransactionError) -> StoreError {
    match e {
        // Handed back to sled's retry loop by `transact`.
        sled::transaction::UnabortableTransactionError::Conflict => StoreError::TxConflict,
        sled::transaction::UnabortableTransactionError::Storage(e) => StoreError::Sled(e),
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    let corrupt = |source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    };
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        // Written by an older version that accepted deeper values: read it all the same.
        Err(e) if deep::too_deep(&e) => match deep::decode(bytes) {
            Some(decoded) => decoded.map_err(corrupt),
            None => Err(corrupt(e)),
        },
        Err(e) => Err(corrupt(e)),
    }
}
