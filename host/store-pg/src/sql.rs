//! What every module of this crate shares: the error a transaction body returns (a rule's
//! [`StoreError`] or the database's own), how database errors become store errors, the
//! encoding of stored values (their storage rows, never the model's serde shapes) and the
//! names kept in indexed columns.

use stagecraft_store::{StoreError, Stored};

/// Why a transaction body stopped: a rule said no ([`StoreError`]), or the database failed
/// (a serialization failure among them, which the caller retries).
#[derive(Debug)]
pub enum Fail {
    Store(StoreError),
    Db(postgres::Error),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Db(e)
    }
}

pub type TxResult<T> = std::result::Result<T, Fail>;

/// Whether the database asks for the transaction to be run again (SERIALIZABLE conflicts
/// and deadlocks).
pub fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A database error as the store names it: a lost or refused connection is `Unavailable`
/// (the host answers 503 and retries), anything else a backend failure.
pub fn db(e: postgres::Error) -> StoreError {
    if e.is_closed() || e.code().is_none() {
        StoreError::Unavailable(format!("PostgreSQL is unavailable: {e}"))
    } else {
        StoreError::Backend(format!("PostgreSQL: {e}"))
    }
}

pub fn fail_into(f: Fail) -> StoreError {
    match f {
        Fail::Store(e) => e,
        Fail::Db(e) => db(e),
    }
}

/// A value as stored in its `value` column (BYTEA): its storage row's bytes, the same as
/// sled stores (`stagecraft_store::Stored`: only model types with a row can be stored).
pub fn enc<T: Stored>(_what: &str, v: &T) -> TxResult<Vec<u8>> {
    Ok(v.encode_row()?)
}

/// A stored value read back from its row's bytes.
pub fn dec<T: Stored>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    T::decode_row(what, bytes)
}

// The names enum values take in columns are the storage's own, one copy for both backends.
pub use stagecraft_store::names::{channel_name, kind_name, status_name};

/// Milliseconds since the epoch (how times are kept in indexed columns).
pub fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// A u64 counter or version as PostgreSQL's BIGINT.
pub fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
