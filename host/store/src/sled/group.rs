//! Group commit: the writes waiting at the same time reach the tree in ONE batch and the
//! disk in ONE flush.
//!
//! Each write runs on its caller's thread, one at a time (the group lock), against the
//! tree plus what the group accepted before it ([`Tx`]): its checks are its own, and a
//! write that fails leaves nothing behind, so a conflict rejects only its own changeset.
//! A write that succeeds joins the pending group and waits. When nobody is flushing, the
//! first waiter leads: it takes the whole group, applies it as one `apply_batch` (sled
//! holds its concurrency-control write lock for it, so a reader sees all of the batch or
//! none), and flushes once for everyone in it. While it flushes, the next writes run and
//! gather into the next group — that overlap is what makes groups grow with load. A lone
//! write leads at once: no waiting window, so latency at low load is one batch and one
//! flush, as it was with one transaction and one flush.
//!
//! Why not each caller's own sled transaction followed by a shared flush: sled 0.34's
//! flush holds the concurrency-control lock shared for the whole fsync, and a transaction
//! takes it exclusively, so no transaction can run while a flush is in flight and nobody
//! ever "arrives meanwhile" (measured: 8 threads gave no more commits than one; see
//! BENCHMARKS.md). Gathering in memory needs no sled lock at all.
//!
//! `Durability::Lazy` writes wait for the batch, not the flush. A group validated against
//! a handle that has since failed or been reopened is refused whole with `Unavailable`
//! (the database is failed: see `database`).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::database::Database;
use super::tx::{Tx, Writes};
use crate::{Result, StoreError};

/// The group lock's state.
#[derive(Default)]
pub(crate) struct Group {
    state: Mutex<State>,
    /// Signalled whenever a group ends (its members' results are in `done`).
    ended: Condvar,
}

#[derive(Default)]
struct State {
    pending: Pending,
    /// A leader is applying or flushing a group.
    leading: bool,
    next_member: u64,
    /// Results not yet picked up, by member.
    done: HashMap<u64, Result<(), Failed>>,
}

/// The group being gathered.
#[derive(Default)]
struct Pending {
    /// Numbers groups, so a waiter knows whether its group is still being gathered.
    seq: u64,
    /// The handle generation every write in it was checked against.
    generation: u64,
    writes: Writes,
    members: Vec<Member>,
}

struct Member {
    id: u64,
    durable: bool,
}

/// Why a group did not reach the disk, for each of its members.
#[derive(Clone)]
enum Failed {
    Unavailable(String),
    Engine(String),
}

impl From<Failed> for StoreError {
    fn from(f: Failed) -> StoreError {
        match f {
            Failed::Unavailable(m) => StoreError::Unavailable(m),
            Failed::Engine(m) => StoreError::Backend(m),
        }
    }
}

impl Failed {
    fn of(e: StoreError) -> Failed {
        match e {
            StoreError::Unavailable(m) => Failed::Unavailable(m),
            other => Failed::Engine(other.to_string()),
        }
    }
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Database {
    /// Runs `write` for each item, each against the tree plus what the group accepted
    /// before it; the writes of each that returns `Ok` join the group, which is applied in
    /// one batch and (if any of its writes is `durable`) flushed once. Returns when this
    /// caller's writes are applied, and on disk if any of them is durable: one result per
    /// item, an item's own error or, if the group failed, the group's.
    pub fn write_all<T, R>(
        &self,
        items: &[T],
        durable: impl Fn(&T) -> bool,
        write: impl Fn(&Tx<'_>, &T) -> Result<R>,
    ) -> Vec<Result<R>> {
        let group = &self.group;
        let mut s = group.lock();
        let live = match self.live() {
            Ok(live) => live,
            Err(e) => {
                let f = Failed::of(e);
                return items.iter().map(|_| Err(f.clone().into())).collect();
            }
        };
        if s.pending.generation != live.generation {
            // Whatever is pending was checked against a handle that is gone.
            fail_pending(
                &mut s,
                &Failed::Unavailable("the store was reopened".into()),
            );
            s.pending.generation = live.generation;
        }
        let mut results = Vec::with_capacity(items.len());
        let mut wrote = false;
        let mut flush = false;
        for item in items {
            let tx = Tx::new(&live.tree, &s.pending.writes);
            match write(&tx, item) {
                Ok(r) => {
                    let mine = tx.into_writes();
                    if !mine.is_empty() {
                        wrote = true;
                        flush |= durable(item);
                    }
                    s.pending.writes.extend(mine);
                    results.push(Ok(r));
                }
                Err(e) => {
                    drop(tx);
                    results.push(Err(self.sort(live.generation, e)));
                }
            }
        }
        let generation = live.generation;
        drop(live);
        // What a write read from the pending group is only true once that group lands.
        if !wrote && s.pending.members.is_empty() {
            return results;
        }
        let id = s.next_member;
        s.next_member += 1;
        let seq = s.pending.seq;
        s.pending.members.push(Member { id, durable: flush });
        debug_assert_eq!(s.pending.generation, generation);
        loop {
            if let Some(outcome) = s.done.remove(&id) {
                drop(s);
                if let Err(f) = outcome {
                    for r in &mut results {
                        if r.is_ok() {
                            *r = Err(f.clone().into());
                        }
                    }
                }
                return results;
            }
            if !s.leading && s.pending.seq == seq {
                s = self.lead(s);
                continue;
            }
            s = group.ended.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Applies the pending group in one batch and flushes it once, answering each member.
    fn lead<'g>(&'g self, mut s: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        let next = Pending {
            seq: s.pending.seq + 1,
            generation: s.pending.generation,
            ..Pending::default()
        };
        let pending = std::mem::replace(&mut s.pending, next);
        s.leading = true;
        // Applied under the group lock: a write checked after this reads it from the tree.
        let live = match self.live() {
            Ok(live) if live.generation == pending.generation => live,
            Ok(_) => {
                let f = Failed::Unavailable("the store was reopened".into());
                return self.end(s, &pending.members, |_| Err(f.clone()));
            }
            Err(e) => {
                let f = Failed::of(e);
                return self.end(s, &pending.members, |_| Err(f.clone()));
            }
        };
        let mut batch = sled::Batch::default();
        for (k, v) in pending.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        let generation = live.generation;
        if let Err(e) = live.tree.apply_batch(batch) {
            drop(live);
            let f = Failed::of(self.failed(generation, e));
            return self.end(s, &pending.members, |_| Err(f.clone()));
        }
        // Lazy members are done once applied; the rest wait for the flush.
        let (durable, lazy): (Vec<_>, Vec<_>) =
            pending.members.into_iter().partition(|m| m.durable);
        for m in lazy {
            s.done.insert(m.id, Ok(()));
        }
        if durable.is_empty() {
            return self.end(s, &[], |_| Ok(()));
        }
        group_size(durable.len());
        drop(s);
        let flushed = live.db.flush();
        drop(live);
        let outcome = flushed
            .map(|_| ())
            .map_err(|e| Failed::of(self.failed(generation, e)));
        let s = self.group.lock();
        self.end(s, &durable, |_| outcome.clone())
    }

    /// Answers `members`, ends the lead and wakes every waiter.
    fn end<'g>(
        &'g self,
        mut s: MutexGuard<'g, State>,
        members: &[Member],
        outcome: impl Fn(&Member) -> Result<(), Failed>,
    ) -> MutexGuard<'g, State> {
        for m in members {
            s.done.insert(m.id, outcome(m));
        }
        s.leading = false;
        self.group.ended.notify_all();
        s
    }

    /// `e` from a write's checks: an engine error (an I/O failure) marks the database
    /// failed, like any other; the rest are the write's own.
    fn sort(&self, generation: u64, e: StoreError) -> StoreError {
        match e {
            StoreError::Engine(e) => match e.downcast::<sled::Error>() {
                Ok(e) => self.failed(generation, *e),
                Err(e) => StoreError::Engine(e),
            },
            other => other,
        }
    }
}

/// Refuses every member of the pending group (its writes are dropped).
fn fail_pending(s: &mut State, f: &Failed) {
    let members = std::mem::take(&mut s.pending.members);
    s.pending.writes.clear();
    for m in members {
        s.done.insert(m.id, Err(f.clone()));
    }
}

/// How many durable commits one flush covered.
fn group_size(n: usize) {
    metrics::histogram!("stagecraft_store_commit_group_size").record(n as f64);
}
