//! Typed access to the data tree inside a write: every value goes through its
//! [`codec`](super::codec) pair, every sled error is kept for the database to sort.
//!
//! A write reads through three layers — its own writes, then the writes of the commits
//! already accepted into the group waiting for the same flush (see `group`), then the tree —
//! and writes only to the first. Nothing reaches the tree until the group is applied in one
//! batch; a write that fails leaves its layer behind, so a conflict drops only its own
//! changeset.

use std::cell::RefCell;
use std::collections::HashMap;

use sled::IVec;

use super::codec::{self, Decode, Encode};
use crate::{Result, StoreError};

/// Writes not yet in the tree: `None` removes the key.
pub(crate) type Writes = HashMap<IVec, Option<IVec>>;

pub(crate) struct Tx<'a> {
    tree: &'a sled::Tree,
    /// What the group accepted before this write (read only).
    below: &'a Writes,
    mine: RefCell<Writes>,
}

impl<'a> Tx<'a> {
    pub fn new(tree: &'a sled::Tree, below: &'a Writes) -> Tx<'a> {
        Tx {
            tree,
            below,
            mine: RefCell::default(),
        }
    }

    /// This write's own changes, for the group to take once it succeeded.
    pub fn into_writes(self) -> Writes {
        self.mine.into_inner()
    }

    pub fn raw(&self, key: &str) -> Result<Option<IVec>> {
        let k = key.as_bytes();
        if let Some(v) = self.mine.borrow().get(k) {
            return Ok(v.clone());
        }
        if let Some(v) = self.below.get(k) {
            return Ok(v.clone());
        }
        // The database sorts an engine error (an I/O failure marks it failed).
        self.tree
            .get(k)
            .map_err(|e| StoreError::Engine(Box::new(e)))
    }

    /// The last key under `prefix` that this write sees: the tree's (unless a layer above
    /// removed it) or one this write added. Keys added by the rest of the group are not
    /// looked for (that would walk the whole group): the journal only wants a recent key.
    pub fn last_key_under(&self, prefix: &str) -> Result<Option<String>> {
        let p = prefix.as_bytes();
        let removed = |k: &[u8]| {
            let mine = self.mine.borrow();
            match mine.get(k) {
                Some(v) => v.is_none(),
                None => matches!(self.below.get(k), Some(None)),
            }
        };
        let mut best: Option<Vec<u8>> = None;
        for item in self.tree.scan_prefix(p).rev() {
            let (k, _) = item.map_err(|e| StoreError::Engine(Box::new(e)))?;
            if !removed(&k) {
                best = Some(k.to_vec());
                break;
            }
        }
        for (k, v) in self.mine.borrow().iter() {
            if v.is_some() && k.starts_with(p) && best.as_deref().is_none_or(|b| &k[..] > b) {
                best = Some(k.to_vec());
            }
        }
        Ok(best.map(|k| String::from_utf8_lossy(&k).into_owned()))
    }

    /// Every key under `prefix` this write sees (the tree's, the group's and its own), in
    /// order.
    pub fn keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.as_bytes();
        let mut keys: std::collections::BTreeMap<Vec<u8>, bool> = Default::default();
        for item in self.tree.scan_prefix(p) {
            let (k, _) = item.map_err(|e| StoreError::Engine(Box::new(e)))?;
            keys.insert(k.to_vec(), true);
        }
        for layer in [self.below, &*self.mine.borrow()] {
            for (k, v) in layer {
                if k.starts_with(p) {
                    keys.insert(k.to_vec(), v.is_some());
                }
            }
        }
        Ok(keys
            .into_iter()
            .filter(|(_, live)| *live)
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    fn set(&self, key: &str, value: Option<IVec>) {
        self.mine
            .borrow_mut()
            .insert(IVec::from(key.as_bytes()), value);
    }

    pub fn get<T: Decode>(&self, key: &str) -> Result<Option<T>> {
        match self.raw(key)? {
            Some(bytes) => T::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn put<T: Encode + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = value.encode(key)?;
        self.set(key, Some(IVec::from(bytes)));
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<bool> {
        let was = self.raw(key)?.is_some();
        self.set(key, None);
        Ok(was)
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.raw(key)?.is_some())
    }

    /// Adds `delta` to a counter and returns the new value (a counter at zero is removed).
    pub fn add(&self, key: &str, delta: i64) -> Result<i64> {
        let now = self.counter(key)? + delta;
        if now == 0 {
            self.set(key, None);
        } else {
            self.set_counter(key, now)?;
        }
        Ok(now)
    }

    /// Stores a counter as it is (start-up counting).
    pub fn set_counter(&self, key: &str, value: i64) -> Result<()> {
        self.set(key, Some(IVec::from(&codec::encode_counter(value)[..])));
        Ok(())
    }

    pub fn counter(&self, key: &str) -> Result<i64> {
        Ok(match self.raw(key)? {
            Some(b) => codec::counter(&b),
            None => 0,
        })
    }
}
