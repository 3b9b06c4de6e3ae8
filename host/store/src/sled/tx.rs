//! Typed access to the data tree inside a transaction: every value goes through its
//! [`codec`](super::codec) pair, every sled error is sorted for the retry loop.

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::codec::{self, Decode, Encode};
use crate::{Result, StoreError};

pub(crate) struct Tx<'a> {
    t: &'a TransactionalTree,
}

impl<'a> Tx<'a> {
    pub fn new(t: &'a TransactionalTree) -> Tx<'a> {
        Tx { t }
    }

    pub fn get<T: Decode>(&self, key: &str) -> Result<Option<T>> {
        match self.t.get(key).map_err(unabortable)? {
            Some(bytes) => T::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn put<T: Encode + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = value.encode(key)?;
        self.t.insert(key, bytes).map_err(unabortable)?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<bool> {
        Ok(self.t.remove(key).map_err(unabortable)?.is_some())
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.t.get(key).map_err(unabortable)?.is_some())
    }

    /// Adds `delta` to a counter and returns the new value (a counter at zero is removed).
    pub fn add(&self, key: &str, delta: i64) -> Result<i64> {
        let now = self.counter(key)? + delta;
        if now == 0 {
            self.t.remove(key).map_err(unabortable)?;
        } else {
            self.set_counter(key, now)?;
        }
        Ok(now)
    }

    /// Stores a counter as it is (start-up counting).
    pub fn set_counter(&self, key: &str, value: i64) -> Result<()> {
        self.t
            .insert(key, &codec::encode_counter(value)[..])
            .map_err(unabortable)?;
        Ok(())
    }

    pub fn counter(&self, key: &str) -> Result<i64> {
        Ok(match self.t.get(key).map_err(unabortable)? {
            Some(b) => codec::counter(&b),
            None => 0,
        })
    }
}

fn unabortable(e: UnabortableTransactionError) -> StoreError {
    match e {
        // Handed back to sled's retry loop by `run_tx`.
        UnabortableTransactionError::Conflict => StoreError::TxConflict,
        UnabortableTransactionError::Storage(e) => StoreError::Engine(Box::new(e)),
    }
}
