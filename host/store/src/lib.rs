//! Persistence (`stagecraft-store`), re-exported by the host as `stagecraft::store`.
//!
//! Three layers, and who may call what:
//! - [`Store`], the typed facade: the only thing the rest of the host calls. Writes are
//!   [`Changeset`]s (record changes, journal events, runs, messages, timers, jobs, and
//!   [`Op`]s for everything else); reads are typed methods; taking due work is leasing.
//!   Written once over `Arc<dyn Backend>`, with the decoded caches (bindings, pipelines).
//! - [`Backend`], the seam: a small vocabulary of data ([`Changeset`], [`Read`], [`List`],
//!   [`LeaseRequest`], [`PruneRequest`]) that every backend implements, and [`contract`],
//!   the suite every backend must pass. Only backends and their tests use it.
//! - `sled`, the embedded default backend: one sled tree under key families, each value a
//!   storage row (`rows`: the store's own versioned types, postcard-encoded, never the
//!   model's serde types); a v1 data dir (JSON values) is migrated in place when it opens.
//!   Private: [`Store::open`] is the only way in, so nothing outside this crate can name it
//!   (the crate graph enforces that the host never reaches past the facade to sled).
//!
//! The crate depends on the model, never on the host, so it cannot reach automation, HTTP
//! or the sandbox; the sandbox cannot reach it either (it reads through its own
//! `RecordSource`).

mod backend;
mod cache;
mod change;
#[doc(hidden)]
pub mod contract;
mod copy;
mod metrics;
pub mod names;
mod query;
mod quota;
mod reads;
mod registry;
mod rows;
mod sled;
mod store;
mod tasks;

pub use backend::Backend;
pub use change::{
    Applied, Changeset, Committed, Durability, FollowUpCaps, Op, RecordWrite, TaskCaps,
};
pub use copy::{CopyCounts, NOUNS};
pub use query::{task_due_cursor, task_status_cursor, timeline_order};
pub use query::{
    DueMessage, DueTimer, LeaseRequest, Leased, List, ListLimits, MessageFilter, Page, PageRequest,
    PruneRequest, Pruned, Queue, QueuedJob, Read, RecordFilter, Recovered, Row, RunFilter, Scope,
    TaskFilter, TimelineItem,
};
pub use quota::{ModuleQuota, ModuleUsage};
pub use reads::RecordPage;
pub use rows::Stored;
pub use store::{Leases, Store};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full or failing. A write that gets this was not acknowledged: it is lost
    /// or (rarely, when its bytes reached the disk before the failure) kept, whole either way.
    /// Everything is refused until the store can reopen its database (see `sled::database`);
    /// the message says which failure it was.
    #[error("{0}")]
    Unavailable(String),
    #[error("stored value under {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
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
    /// A tenant's module storage is full ([`ModuleQuota`]): the message names the limit and
    /// how to make room.
    #[error("{0}")]
    OverQuota(String),
    /// A bound on what a tenant keeps (tasks per record, open tasks, comments per record:
    /// [`TaskCaps`]) would be exceeded; the message names it.
    #[error("{0}")]
    Limit(String),
    /// What a module read changed before its effects could commit; run it again.
    #[error("{0}")]
    Stale(String),
    /// The run was committed before (exactly-once processing skips it).
    #[error("run {0} was already committed")]
    AlreadyDone(String),
    /// Any other failure of the backend (or a backend answering with the wrong kind of row:
    /// a bug).
    #[error("storage failure: {0}")]
    Backend(String),
    /// A backend engine's own error inside its write machinery (the sled backend turns I/O
    /// failures into `Unavailable`). Opaque, so that no backend's types appear in the
    /// store's public API.
    #[doc(hidden)]
    #[error("storage failure: {0}")]
    Engine(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// [`StoreError::Unavailable`] when `e` says the disk is full: for files kept beside the
    /// database (module artifacts), so a full disk gets one answer everywhere.
    pub fn disk_full(e: &std::io::Error) -> Option<StoreError> {
        crate::sled::database::is_full(e)
            .then(|| StoreError::Unavailable(crate::sled::database::describe(e)))
    }
}

/// The JSON that storage v1 kept for a value stored by the sled backend under `key`, in
/// either encoding: for tests that plant what an older version would have left.
#[doc(hidden)]
pub fn stored_as_v1_json(key: &str, bytes: &[u8]) -> Result<serde_json::Value> {
    crate::sled::migrate::v1_json(key, bytes)
}

/// [`stored_as_v1_json`] for a value of the sled `tree` it was read from (an event's
/// snapshot may be stored as changes to another event's).
#[doc(hidden)]
pub fn stored_as_v1_json_in(
    tree: &::sled::Tree,
    key: &str,
    bytes: &[u8],
) -> Result<serde_json::Value> {
    crate::sled::migrate::v1_json_in(Some(tree), key, bytes)
}

/// How the bytes of a value stored under `key` split between its fields (the disk bench's
/// breakdown; empty for kinds it does not break down).
#[doc(hidden)]
pub fn stored_breakdown(key: &str, bytes: &[u8]) -> Vec<(&'static str, usize)> {
    crate::sled::migrate::breakdown(key, bytes)
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
