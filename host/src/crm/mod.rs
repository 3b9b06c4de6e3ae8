//! CRM operations: validate a request against current state and turn it into a
//! [`Changeset`](crate::store::Changeset) plus the journal events it causes.
//!
//! Nothing here commits record changes: the caller hands the changeset to the commit path
//! (where automation gets its say), so API writes and module effects share one set of rules.

pub mod bindings;
pub mod config_schema;
pub mod pipelines;
pub mod records;
pub mod tasks;
pub mod tenants;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Refused(String),
    /// A bound on what a tenant keeps (tasks per record, open tasks, comments per record).
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CrmError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => CrmError::NotFound(w),
            StoreError::AlreadyExists(w) => CrmError::Conflict(format!("{w} already exists")),
            e @ StoreError::VersionConflict { .. } => CrmError::Conflict(e.to_string()),
            StoreError::Stale(m) => CrmError::Conflict(m),
            StoreError::Refused(m) | StoreError::OverQuota(m) => CrmError::Refused(m),
            StoreError::Limit(m) => CrmError::Limit(m),
            other => CrmError::Store(other),
        }
    }
}

pub type Result<T, E = CrmError> = std::result::Result<T, E>;
