//! The sled backend: the embedded default, `serve` with nothing else to run.
//!
//! Everything lives in one sled tree under key families (`rec/{tenant}/{id}`, `evt/…`,
//! see [`family`]), so any set of writes can be one single-tree transaction; every stored
//! value goes through one encode/decode pair per kind ([`codec`]), which writes storage rows
//! (`crate::rows`) and still reads v1's JSON. A changeset is one
//! transaction ([`commit`], then the op of each noun: [`tenants`], [`pipelines`],
//! [`bindings`], [`modules`], [`outbox`], [`automation`]); reads are point gets ([`read`]);
//! lists read secondary indexes written with the rows ([`index`], [`postings`], pages in
//! [`page`]); leases are in memory ([`lease`]).
//! [`database`] holds the sled handles and reopens them after a disk failure heals;
//! [`deep`] reads values older versions stored deeper than serde_json parses; [`upgrade`]
//! brings an older data dir's layout up to date when it opens, and [`migrate`] converts a
//! v1 data dir's JSON values to rows in place (or refuses a newer format).

mod automation;
mod bindings;
mod codec;
mod commit;
#[cfg(test)]
mod contract_tests;
pub(crate) mod database;
pub(crate) mod deep;
mod family;
mod group;
mod index;
mod journal;
#[cfg(test)]
mod journal_tests;
mod lease;
mod list;
pub(crate) mod migrate;
mod modules;
mod outbox;
mod page;
mod pipelines;
mod postings;
mod read;
mod records;
mod retention;
mod stats;
mod tasks;
mod tenants;
mod tx;
mod upgrade;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::backend::Backend;
use crate::change::{Changeset, Committed, Durability};
use crate::query::{LeaseRequest, Leased, List, Page, PageRequest, PruneRequest, Pruned, Read};
use crate::query::{Recovered, Row};
use crate::{Result, StoreError};
use codec::Decode;
use tx::Tx;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StoreError::Unavailable(database::describe(&io)),
            other => StoreError::Engine(Box::new(other)),
        }
    }
}

/// A data dir's database: one process owns it (sled locks it), so every lease holder lives
/// in this process.
pub struct SledBackend {
    /// The data tree, reopened after a disk failure heals (see `database`).
    data: database::Database,
    /// Moves with every reopen ([`Backend::epoch`]).
    epoch: Arc<AtomicU64>,
    leases: lease::Leases,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir` and brings an older layout up to date.
    pub fn open(dir: &Path) -> Result<SledBackend> {
        SledBackend::open_with_cache(dir, database::DEFAULT_CACHE_BYTES)
    }

    /// [`SledBackend::open`] with a page cache of `cache_bytes` (sled's estimate of the
    /// tree's pages held in memory).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledBackend> {
        let epoch = Arc::new(AtomicU64::new(0));
        let moved = epoch.clone();
        // What the failed handle showed may not have reached the disk: the facade's caches
        // forget it all, before anyone can read through the new handle.
        let on_reopen = Box::new(move || {
            moved.fetch_add(1, Ordering::AcqRel);
        });
        let backend = SledBackend {
            data: database::Database::open(dir, cache_bytes, on_reopen)?,
            epoch,
            leases: lease::Leases::default(),
        };
        upgrade::run(&backend)?;
        let indexed = index::build(&backend)?;
        if indexed > 0 {
            tracing::info!(rows = indexed, "indexed rows stored before the indexes");
        }
        Ok(backend)
    }

    fn get<T: Decode>(&self, key: &str) -> Result<Option<T>> {
        match self.data.get(key)? {
            Some(bytes) => T::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Decoded values under `prefix`, starting strictly after `after` (a full key), in key order.
    fn scan<T: Decode>(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        self.scan_raw(prefix, after).map(|item| {
            let (key, v) = item?;
            let value = T::decode(&key, &v)?;
            Ok((key, value))
        })
    }

    /// [`SledBackend::scan`] without decoding, for callers that decode only part of what
    /// they see.
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

    /// A counter kept by [`Tx::add`], read outside a transaction.
    fn counter(&self, key: &str) -> Result<i64> {
        Ok(match self.data.get(key)? {
            Some(b) => codec::counter(&b),
            None => 0,
        })
    }

    /// Runs `f` as one atomic write to the data tree, durable (on disk) before it returns:
    /// whatever the caller acknowledges survives a crash. On a full disk it fails with
    /// [`StoreError::Unavailable`], as does every operation until the store reopens.
    fn transact<R>(&self, f: impl Fn(&Tx<'_>) -> Result<R>) -> Result<R> {
        self.data.transaction(true, f)
    }

    /// [`SledBackend::transact`], durable or not as `durability` says (see
    /// [`Durability::Lazy`]).
    fn transact_as<R>(
        &self,
        durability: Durability,
        f: impl Fn(&Tx<'_>) -> Result<R>,
    ) -> Result<R> {
        self.data.transaction(durability == Durability::Durable, f)
    }
}

impl Backend for SledBackend {
    fn commit(&self, batch: &[&Changeset]) -> Vec<Result<Committed>> {
        commit::commit_all(self, batch)
    }

    fn read(&self, r: &Read) -> Result<Option<Row>> {
        read::read(self, r)
    }

    fn list(&self, l: &List, page: &PageRequest) -> Result<Page<Row>> {
        list::list(self, l, page)
    }

    fn lease(&self, req: &LeaseRequest) -> Result<Vec<Leased>> {
        lease::lease(self, req)
    }

    fn recover(&self) -> Result<Recovered> {
        Ok(Recovered {
            messages: self.requeue_interrupted()?,
        })
    }

    fn prune(&self, req: &PruneRequest) -> Result<Pruned> {
        self.prune_older(req.cutoff, req.batch)
    }

    fn flush(&self) -> Result<()> {
        self.data.flush()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}
