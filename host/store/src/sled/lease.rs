//! Leases on due work. One process owns a sled data dir, so every holder lives in it and
//! the leases of jobs and timers live in memory: taking an item records (holder, expiry)
//! here, and the commit of the op that finishes it (`FinishJob`, `FireTimer`) lets go. An
//! item held by another live holder is skipped; a holder's own live lease comes back to it
//! (renewed); an expired one is anyone's. Nothing is written, so taking costs no disk, and
//! a new process starts with no leases: whatever the old one held is due again.
//!
//! A message is different: its lease is its `sending` status, written by the claim (a
//! transaction that drops its due entry, so only one claimer wins), and it ends with the
//! attempt's `FinishMessage` — or with the process: the next start's `recover` queues every
//! `sending` message again (one extra delivery at most, as documented).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::SledBackend;
use crate::query::{LeaseRequest, Leased, Queue};
use crate::Result;

struct Held {
    holder: String,
    until: DateTime<Utc>,
}

/// Who holds which item (by its key), until when.
#[derive(Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Held>>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets go of `key` (its item was finished).
    pub fn release(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Takes what `req` asks for (see [`crate::Backend::lease`]).
pub(super) fn lease(b: &SledBackend, req: &LeaseRequest) -> Result<Vec<Leased>> {
    let ttl = chrono::Duration::from_std(req.ttl).unwrap_or(chrono::Duration::MAX);
    let until = req
        .now
        .checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let now = req.now;
    match &req.queue {
        Queue::Message(due) => Ok(b
            .claim_message(due)?
            .map(Leased::Message)
            .into_iter()
            .collect()),
        Queue::Jobs { tenant } => {
            let mut held = b.leases.lock();
            held.retain(|_, h| h.until > now);
            let other = |key: &str| held.get(key).is_some_and(|h| h.holder != req.holder);
            let jobs = b.tenant_jobs(tenant, req.limit, other)?;
            for j in &jobs {
                hold(&mut held, &j.key, &req.holder, until);
            }
            Ok(jobs.into_iter().map(Leased::Job).collect())
        }
        Queue::Timers => {
            let mut held = b.leases.lock();
            held.retain(|_, h| h.until > now);
            let other = |key: &str| held.get(key).is_some_and(|h| h.holder != req.holder);
            let timers = b.due_timers(now, req.limit, other)?;
            for t in &timers {
                hold(&mut held, &t.key, &req.holder, until);
            }
            Ok(timers.into_iter().map(Leased::Timer).collect())
        }
    }
}

fn hold(held: &mut HashMap<String, Held>, key: &str, holder: &str, until: DateTime<Utc>) {
    held.insert(
        key.to_string(),
        Held {
            holder: holder.to_string(),
            until,
        },
    );
}
