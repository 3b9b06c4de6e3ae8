//! Which due messages get the free slots, and in what order. The due index sorts by time
//! across tenants, so reading it from the front would show only the oldest tenant's backlog.
//! Instead, once a tick, the worker goes on sweeping the index where the last tick stopped
//! ([`SWEEP_BUDGET`] entries at most, wrapping at the end) and then reads what came due lately
//! (the last [`FRESH_WINDOW`], [`FRESH_BUDGET`] entries at most), offering each tenant a few
//! candidates ([`OFFER_PER_SLOT`] per slot of its share). Entries past a tenant's offer are
//! passed over with no read or write beyond the key. The candidates are then handed out one
//! tenant at a time, round-robin, to tenants with a slot free, so a tenant with a big backlog
//! takes its turn like any other and cannot hide another tenant's message behind it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::slots::Slots;
use crate::store::{DueMessage, Result, Store};

/// Due-index entries the sweep looks at per tick.
pub const SWEEP_BUDGET: usize = 2048;
/// Entries looked at per tick among those that came due lately.
pub const FRESH_BUDGET: usize = 1024;
/// How far back "came due lately" reaches (at least two ticks).
pub const FRESH_WINDOW: Duration = Duration::from_secs(2);
/// Candidates offered to a tenant per tick, per slot of its share: a slot freed between ticks
/// is refilled at once from them.
pub const OFFER_PER_SLOT: usize = 4;

#[derive(Default)]
pub struct Sweep {
    /// The last due key the sweep looked at; None: the next sweep starts at the front.
    cursor: Option<String>,
    /// This tick's candidates, oldest first within a tenant.
    queue: BTreeMap<String, VecDeque<DueMessage>>,
    /// The tenant served last: the next turn goes to the one after it.
    turn: Option<String>,
}

impl Sweep {
    /// Replaces the candidates with this tick's: up to `offer` per tenant (its share times
    /// [`OFFER_PER_SLOT`]) from the sweep, then from what came due lately.
    pub fn refill(
        &mut self,
        store: &Store,
        offer: usize,
        now: DateTime<Utc>,
        tick: Duration,
    ) -> Result<()> {
        self.queue.clear();
        let mut offered: HashMap<String, usize> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut take = |tenant: &str, key: &str| {
            let n = offered.get(tenant).copied().unwrap_or(0);
            if n >= offer || seen.contains(key) {
                return false;
            }
            offered.insert(tenant.to_string(), n + 1);
            seen.insert(key.to_string());
            true
        };
        let (swept, cursor) =
            store.due_after(self.cursor.as_deref(), now, SWEEP_BUDGET, &mut take)?;
        self.cursor = cursor;
        let window = FRESH_WINDOW.max(tick * 2);
        let since = now - chrono::Duration::from_std(window).unwrap_or_default();
        let (fresh, _) = store.due_since(since, now, FRESH_BUDGET, &mut take)?;
        for d in swept.into_iter().chain(fresh) {
            self.queue.entry(d.tenant.clone()).or_default().push_back(d);
        }
        for q in self.queue.values_mut() {
            q.make_contiguous().sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(())
    }

    /// The next candidate: the oldest of the next tenant in turn that has one and a slot
    /// free. None when no tenant with a free slot has a candidate left.
    pub fn next(&mut self, slots: &Slots) -> Option<DueMessage> {
        let after = self.turn.clone().unwrap_or_default();
        let tenant = {
            let later = self.queue.range::<String, _>((
                std::ops::Bound::Excluded(&after),
                std::ops::Bound::Unbounded,
            ));
            let earlier = self.queue.range::<String, _>(..=&after);
            later
                .chain(earlier)
                .find(|(t, q)| !q.is_empty() && slots.tenant_free(t) > 0)
                .map(|(t, _)| t.clone())?
        };
        let q = self.queue.get_mut(&tenant)?;
        let d = q.pop_front();
        if q.is_empty() {
            self.queue.remove(&tenant);
        }
        self.turn = Some(tenant);
        d
    }
}
