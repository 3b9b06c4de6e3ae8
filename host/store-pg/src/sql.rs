//! What every module of this crate shares: the error a transaction body returns (a rule's
//! [`StoreError`] or the database's own), how database errors become store errors, and the
//! JSON encoding of stored values.

use serde::de::DeserializeOwned;
use serde::Serialize;
use stagecraft_store::StoreError;

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

/// A value as stored (JSONB).
pub fn enc<T: Serialize + ?Sized>(what: &str, v: &T) -> TxResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| {
        Fail::Store(StoreError::Backend(format!(
            "cannot encode {what} for storage: {e}"
        )))
    })
}

/// A stored value read back as text (`value::text`).
pub fn dec<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        key: what.to_string(),
        reason: e.to_string(),
    })
}

/// A serde enum's name (`"queued"`, `"email"`, `"lead"`), as stored in its column.
pub fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Milliseconds since the epoch (how times are kept in indexed columns).
pub fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// A u64 counter or version as PostgreSQL's BIGINT.
pub fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
