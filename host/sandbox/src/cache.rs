//! The module cache: compiled module versions kept ready in memory by content hash, within a
//! bound on how many and on how many bytes. Past either bound the least recently used version
//! is dropped from the cache; its next load deserializes its artifact from disk again (see
//! `Sandbox::load`), which costs about a millisecond and compiles nothing.
//!
//! Dropping a version only drops the cache's reference: a run in flight holds its own `Arc`
//! to the version, so its code stays mapped until that run ends.
//!
//! "Least recently used" is exact: each hit stamps its entry with a counter, and an eviction
//! looks for the oldest stamp. That look is a scan, bounded by the count limit and paid only
//! on a miss, next to a deserialization that costs far more.

use std::collections::HashMap;
use std::sync::Arc;

/// How much the module cache may hold. Defaults: 1,000 versions and 512 MiB.
///
/// A version's bytes are its compiled image (`Component::image_range`: machine code, its
/// metadata and the initial memory images, the same bytes as its `.cwasm` artifact). The
/// process holds a little more per version than that (wasmtime's type tables and the linked
/// `InstancePre`); BENCHMARKS.md ("Scale") compares the estimate with measured RSS.
///
/// 512 MiB holds about 900 versions of the Rust lead-scoring example (~0.55 MB each) or about
/// 13 Python or JavaScript ones (~40 MB each), and sits next to what the compile pool may
/// already take at its peak (~470 MB). 1,000 versions bounds the per-version memory the
/// estimate does not see. A miss costs one artifact load (0.4–4 ms, BENCHMARKS.md section
/// 4), never a compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Versions kept ready at most.
    pub modules: usize,
    /// Estimated bytes of the versions kept, at most. A version larger than this alone is
    /// loaded and run but not kept.
    pub bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            modules: 1_000,
            bytes: 512 << 20,
        }
    }
}

struct Entry<T> {
    value: Arc<T>,
    bytes: u64,
    used: u64,
}

/// Values by content hash, least recently used first out.
pub(crate) struct ModuleCache<T> {
    limits: CacheLimits,
    entries: HashMap<String, Entry<T>>,
    bytes: u64,
    clock: u64,
    evictions: u64,
}

impl<T> ModuleCache<T> {
    pub fn new(limits: CacheLimits) -> Self {
        ModuleCache {
            limits,
            entries: HashMap::new(),
            bytes: 0,
            clock: 0,
            evictions: 0,
        }
    }

    /// The value kept for `hash`, marked as just used.
    pub fn get(&mut self, hash: &str) -> Option<Arc<T>> {
        self.clock += 1;
        let e = self.entries.get_mut(hash)?;
        e.used = self.clock;
        Some(e.value.clone())
    }

    /// Keeps `value` (replacing what `hash` held), first dropping the least recently used
    /// versions until it fits. Returns how many were dropped. A value larger than the whole
    /// byte bound, or a bound of zero versions, keeps nothing and drops nothing.
    pub fn insert(&mut self, hash: &str, value: Arc<T>, bytes: u64) -> u64 {
        if let Some(old) = self.entries.remove(hash) {
            self.bytes -= old.bytes;
        }
        if bytes > self.limits.bytes || self.limits.modules == 0 {
            return 0;
        }
        let mut dropped = 0;
        while self.entries.len() >= self.limits.modules || self.bytes + bytes > self.limits.bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes;
                dropped += 1;
            }
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(
            hash.to_string(),
            Entry {
                value,
                bytes,
                used: self.clock,
            },
        );
        self.evictions += dropped;
        dropped
    }

    /// Forgets `hash` (its version is gone, not evicted: not counted in `evictions`).
    pub fn remove(&mut self, hash: &str) -> Option<Arc<T>> {
        let e = self.entries.remove(hash)?;
        self.bytes -= e.bytes;
        Some(e.value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Versions dropped to make room, since the cache was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(modules: usize, bytes: u64) -> ModuleCache<String> {
        ModuleCache::new(CacheLimits { modules, bytes })
    }

    fn put(c: &mut ModuleCache<String>, k: &str, bytes: u64) -> u64 {
        c.insert(k, Arc::new(k.to_string()), bytes)
    }

    #[test]
    fn the_least_recently_used_goes_first_past_the_count() {
        let mut c = cache(2, u64::MAX);
        put(&mut c, "a", 1);
        put(&mut c, "b", 1);
        assert_eq!(c.get("a").as_deref().map(String::as_str), Some("a"));
        assert_eq!(put(&mut c, "c", 1), 1);
        assert!(c.get("b").is_none(), "b was the least recently used");
        assert!(c.get("a").is_some() && c.get("c").is_some());
        assert_eq!((c.len(), c.bytes(), c.evictions()), (2, 2, 1));
    }

    #[test]
    fn bytes_are_bounded_too() {
        let mut c = cache(100, 10);
        put(&mut c, "a", 4);
        put(&mut c, "b", 4);
        assert_eq!(put(&mut c, "c", 4), 1, "a goes so that c fits");
        assert_eq!((c.len(), c.bytes()), (2, 8));
        assert_eq!(put(&mut c, "big", 10), 2, "everything else goes");
        assert_eq!((c.len(), c.bytes()), (1, 10));
        assert_eq!(put(&mut c, "huge", 11), 0, "too big to keep: kept nothing");
        assert!(c.get("huge").is_none());
        assert_eq!((c.len(), c.bytes(), c.evictions()), (1, 10, 3));
    }

    #[test]
    fn replacing_a_version_counts_its_bytes_once() {
        let mut c = cache(2, 10);
        put(&mut c, "a", 4);
        put(&mut c, "a", 6);
        assert_eq!((c.len(), c.bytes(), c.evictions()), (1, 6, 0));
        put(&mut c, "b", 4);
        assert_eq!((c.len(), c.bytes(), c.evictions()), (2, 10, 0));
    }

    #[test]
    fn removing_a_version_frees_its_bytes_and_is_no_eviction() {
        let mut c = cache(2, 10);
        put(&mut c, "a", 4);
        put(&mut c, "b", 4);
        assert!(c.remove("a").is_some());
        assert!(c.remove("a").is_none());
        assert_eq!((c.len(), c.bytes(), c.evictions()), (1, 4, 0));
        assert_eq!(put(&mut c, "c", 6), 0, "the freed room is used");
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        let mut c = cache(0, 10);
        assert_eq!(put(&mut c, "a", 1), 0);
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }
}
