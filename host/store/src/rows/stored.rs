//! The model types that are stored, each as its one row type: how a backend outside this
//! crate (PostgreSQL) writes a value without knowing its shape. `value.encode_row()` is the
//! row's bytes — `[0xC2, row version]` then postcard, the same bytes sled stores — and
//! `M::decode_row` reads them back into the model value. The trait is sealed and implemented
//! here only, for the model types that have a row, so a backend that takes `T: Stored` can
//! store nothing else (a model type's serde shape never reaches a stored value).

use stagecraft_model::stats::Rollup;
use stagecraft_model::{
    ApiKey, Binding, ChannelConfig, Comment, Event, Job, Module, ModuleVersion, Notification,
    OutboxMessage, Pipeline, Record, RunRecord, Task, Tenant, Timer,
};

use super::{decode, encode, StoredRow};
use crate::StoreError;

/// A model type stored as its row (see the module's doc). Sealed: only this module
/// implements it.
pub trait Stored: Sized + sealed::Sealed {
    /// The kind's name, for messages (`"record"`, `"run record"`, …).
    const WHAT: &'static str;
    /// The value as its row's bytes (format tag and row version first).
    fn encode_row(&self) -> Result<Vec<u8>, StoreError>;
    /// A value from its row's bytes; `key` names where they were (for the error).
    fn decode_row(key: &str, bytes: &[u8]) -> Result<Self, StoreError>;
}

mod sealed {
    /// Only the model types this module maps to a row are stored.
    pub trait Sealed {}
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// Maps model types to their rows.
macro_rules! stored {
    ($($t:ty => $r:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Stored for $t {
            const WHAT: &'static str = <$r as StoredRow>::WHAT;
            fn encode_row(&self) -> Result<Vec<u8>, StoreError> {
                encode(&<$r>::from(self)).map_err(|e| {
                    StoreError::Backend(format!("cannot encode a {}: {e}", Self::WHAT))
                })
            }
            fn decode_row(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
                let row: $r = decode(bytes).map_err(|e| corrupt(key, e))?;
                <$t>::try_from(row).map_err(|e| corrupt(key, e))
            }
        }
    )*};
}

stored!(
    Tenant => super::TenantRow,
    ApiKey => super::ApiKeyRow,
    Pipeline => super::PipelineRow,
    Record => super::RecordRow,
    Event => super::EventRow,
    Binding => super::BindingRow,
    Module => super::ModuleRow,
    ModuleVersion => super::ModuleVersionRow,
    RunRecord => super::RunRow,
    OutboxMessage => super::MessageRow,
    Timer => super::TimerRow,
    Job => super::JobRow,
    Notification => super::NotificationRow,
    ChannelConfig => super::ChannelConfigRow,
    Rollup => super::RollupRow,
    Task => super::TaskRow,
    Comment => super::CommentRow,
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A stored value is its row's bytes (the sled codec's too), never the model's JSON,
    /// and reads back equal.
    #[test]
    fn a_stored_value_is_its_row() {
        let r = crate::contract::record("rec_1", Some("new"));
        let bytes = r.encode_row().unwrap();
        assert_eq!(bytes.first(), Some(&super::super::FORMAT));
        assert!(serde_json::from_slice::<Record>(&bytes).is_err());
        assert_eq!(bytes, encode(&super::super::RecordRow::from(&r)).unwrap());
        assert_eq!(Record::decode_row("rec", &bytes).unwrap(), r);
        let json = serde_json::to_vec(&r).unwrap();
        assert!(matches!(
            Record::decode_row("rec", &json),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
