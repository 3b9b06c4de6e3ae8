//! Decoded copies of small values that every change reads and almost nothing writes: a
//! tenant's bindings (read on every submitted change) and pipelines (read on every stage
//! move). Decoding them from sled each time was a measurable share of a run (see
//! BENCHMARKS.md). The facade's commit invalidates what its changesets wrote; a generation
//! counter keeps a read that raced with a write from caching the value the write replaced;
//! and everything is forgotten when the backend's epoch moves (sled: its database was
//! reopened, and what the failed handle showed may never have reached the disk).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::Result;

pub(crate) struct Cache<V> {
    generation: AtomicU64,
    /// The backend epoch the cached values were read in.
    epoch: AtomicU64,
    map: RwLock<HashMap<String, Arc<V>>>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache {
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<V> Cache<V> {
    /// Forgets everything when the backend's epoch moved since the values were read.
    pub fn sync(&self, epoch: u64) {
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.clear();
            self.epoch.store(epoch, Ordering::Release);
        }
    }

    /// The cached value for `key`, else `load()` (cached when found and no write to any key
    /// of this cache happened meanwhile).
    pub fn get_or_load(
        &self,
        key: &str,
        load: impl FnOnce() -> Result<Option<V>>,
    ) -> Result<Option<Arc<V>>> {
        if let Some(v) = self.map.read().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(Some(v));
        }
        let seen = self.generation.load(Ordering::Acquire);
        let Some(v) = load()? else {
            return Ok(None);
        };
        let v = Arc::new(v);
        if let Ok(mut m) = self.map.write() {
            if self.generation.load(Ordering::Acquire) == seen {
                m.insert(key.to_string(), v.clone());
            }
        }
        Ok(Some(v))
    }

    /// Forgets everything (the backend's epoch moved). A read in flight meanwhile does not
    /// cache what it read (the generation moved on).
    pub fn clear(&self) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        m.clear();
    }

    /// Forgets `key`; called after a write to it has committed.
    pub fn invalidate(&self, key: &str) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        m.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_until_invalidated() {
        let c: Cache<u32> = Cache::default();
        assert_eq!(*c.get_or_load("k", || Ok(Some(1))).unwrap().unwrap(), 1);
        assert_eq!(*c.get_or_load("k", || Ok(Some(2))).unwrap().unwrap(), 1);
        c.invalidate("k");
        assert_eq!(*c.get_or_load("k", || Ok(Some(3))).unwrap().unwrap(), 3);
        assert!(c.get_or_load("missing", || Ok(None)).unwrap().is_none());
    }

    #[test]
    fn clear_forgets_everything_and_a_racing_read_is_not_cached() {
        let c: Cache<u32> = Cache::default();
        c.get_or_load("a", || Ok(Some(1))).unwrap();
        c.get_or_load("b", || Ok(Some(1))).unwrap();
        let v = c
            .get_or_load("c", || {
                // The database is reopened while this read is in flight.
                c.clear();
                Ok(Some(1))
            })
            .unwrap()
            .unwrap();
        assert_eq!(*v, 1);
        for k in ["a", "b", "c"] {
            assert_eq!(
                *c.get_or_load(k, || Ok(Some(2))).unwrap().unwrap(),
                2,
                "{k}"
            );
        }
    }

    #[test]
    fn a_new_epoch_forgets_everything() {
        let c: Cache<u32> = Cache::default();
        c.sync(0);
        c.get_or_load("k", || Ok(Some(1))).unwrap();
        c.sync(0);
        assert_eq!(*c.get_or_load("k", || Ok(Some(2))).unwrap().unwrap(), 1);
        c.sync(1);
        assert_eq!(*c.get_or_load("k", || Ok(Some(3))).unwrap().unwrap(), 3);
    }

    #[test]
    fn a_read_racing_a_write_does_not_cache_the_old_value() {
        let c: Cache<u32> = Cache::default();
        let v = c
            .get_or_load("k", || {
                // The write commits and invalidates while this read is in flight.
                c.invalidate("k");
                Ok(Some(1))
            })
            .unwrap()
            .unwrap();
        assert_eq!(*v, 1, "the reader still gets what it read");
        assert_eq!(*c.get_or_load("k", || Ok(Some(2))).unwrap().unwrap(), 2);
    }
}
