//! THE seam: what a storage backend implements. The rest of the host never calls it — it
//! uses the typed facade [`crate::Store`], written once over `Arc<dyn Backend>` — so a
//! backend only answers a small vocabulary of data ([`Changeset`], [`Read`], [`List`],
//! [`LeaseRequest`], [`PruneRequest`]) and keeps the rules that must hold atomically.
//! [`crate::contract`] is the executable form of what every backend must guarantee.

use crate::change::{Changeset, Committed};
use crate::query::{LeaseRequest, Leased, List, Page, PageRequest, PruneRequest, Pruned, Read};
use crate::query::{Recovered, Row};
use crate::Result;

/// A storage backend. Object-safe; shared as `Arc<dyn Backend>`.
///
/// What every backend guarantees (held to it by [`crate::contract`]):
/// - **Atomic commits.** Each changeset applies all or nothing, with its checks inside the
///   same transaction: record versions (`VersionConflict`, `AlreadyExists`, `NotFound`),
///   pipeline versions and stage occupancy (a stage that holds records cannot go), binding
///   revisions and module-version use counts, exactly-once run ids (`AlreadyDone`), the
///   tenant's idempotency keys (a message whose key was used is dropped), timers cancelled
///   when their record leaves their stage (and timers born cancelled), follow-up counters
///   and their caps (`Stale`), rollups and the binding run index written with the run.
///   A conflict rejects only its own changeset.
/// - **Durable acknowledgement.** A [`Durability::Durable`](crate::Durability) commit is on
///   disk when it returns.
/// - **Reads see whole commits.** A read never sees part of a changeset: once one of its
///   writes is visible, all are, to every later read. A list is not a snapshot: a page
///   read while commits land may show some of them and not others.
/// - **Indexed lists, complete or cursor.** Every list is read from an index (or the
///   backend's equivalent) in list order, so a filter never walks rows that do not match;
///   it is complete or ends with `next`, and walking the cursors returns every match once,
///   in order, while commits land.
/// - **Leases.** Two holders never hold the same due item; an expired lease is taken over;
///   what a holder that died held is taken again.
pub trait Backend: Send + Sync + 'static {
    /// Commits each changeset all-or-nothing and independently: a conflict rejects only its
    /// own changeset. A backend may commit several together (one transaction, one flush).
    fn commit(&self, batch: &[&Changeset]) -> Vec<Result<Committed>>;

    fn read(&self, read: &Read) -> Result<Option<Row>>;

    fn list(&self, list: &List, page: &PageRequest) -> Result<Page<Row>>;

    /// Takes up to `limit` due items for `holder` until `now + ttl` (see
    /// [`LeaseRequest`]).
    ///
    /// In sled (one process owns the data dir, so every holder lives in it): jobs and timers
    /// are leased in memory, never written — a lease ends when the op that finishes its
    /// item commits, or at `now + ttl`; a message's lease is its `sending` status, written
    /// with the claim, and it ends with the attempt's `FinishMessage`, or with the process
    /// (the next start's [`Backend::recover`] queues it again: one extra delivery at most).
    /// Reopening the database voids every in-memory lease: whatever the old process held is
    /// due again.
    fn lease(&self, req: &LeaseRequest) -> Result<Vec<Leased>>;

    /// Once when a host starts, before its workers: takes back what this host's previous run
    /// left held. sled: every `sending` message goes back to the queue (that process is
    /// gone). A backend whose leases expire by time has nothing to do.
    fn recover(&self) -> Result<Recovered>;

    fn prune(&self, req: &PruneRequest) -> Result<Pruned>;

    /// Writes everything to disk; called on shutdown.
    fn flush(&self) -> Result<()>;

    /// Changes whenever values read before may no longer be what is stored (sled: its
    /// database was reopened after a failure, and what the failed handle showed may never
    /// have reached the disk). The facade's caches forget everything when it moves.
    fn epoch(&self) -> u64;
}
