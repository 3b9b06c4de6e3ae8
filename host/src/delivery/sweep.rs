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
/// is refilled at once from them, so a tenant whose receivers answer fast can send 64 a tick
/// with the default share (as many as the whole worker read per tick before shares).
pub const OFFER_PER_SLOT: usize = 16;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, MessageStatus, OutboxMessage};
    use crate::store::Changeset;

    /// A store in a fresh directory, removed when dropped.
    struct Scratch(std::path::PathBuf, Store);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "stagecraft-sweep-{name}-{}-{}",
                std::process::id(),
                ulid::Ulid::new()
            ));
            let store = Store::open(&dir).unwrap();
            Scratch(dir, store)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Queues `n` messages of `tenant`, the i-th due `i` ms after `at`.
    fn queue(store: &Store, tenant: &str, at: DateTime<Utc>, n: usize) {
        let mut cs = Changeset::new(tenant);
        for i in 0..n {
            cs.messages.push(OutboxMessage {
                id: format!("msg_{tenant}_{i:05}"),
                channel: Channel::Notify,
                to: "ann".into(),
                subject: String::new(),
                body: String::new(),
                idempotency_key: None,
                record: None,
                run: format!("run_{i}"),
                status: MessageStatus::Queued,
                created_at: at + chrono::Duration::milliseconds(i as i64),
                attempts: Vec::new(),
                next_attempt_at: None,
                sent_at: None,
            });
        }
        store.commit(&cs).unwrap();
    }

    fn tenants(sweep: &mut Sweep, slots: &Slots) -> Vec<String> {
        std::iter::from_fn(|| sweep.next(slots).map(|d| d.tenant)).collect()
    }

    #[test]
    fn tenants_take_turns_and_one_without_a_free_slot_is_passed_over() {
        let s = Scratch::new("turns");
        let old = Utc::now() - chrono::Duration::minutes(1);
        queue(&s.1, "a", old, 3);
        queue(&s.1, "b", old + chrono::Duration::seconds(1), 1);
        queue(&s.1, "c", old + chrono::Duration::seconds(2), 2);
        let slots = Slots::new(16, 4, 4);
        let mut sweep = Sweep::default();
        let tick = Duration::from_millis(100);
        sweep.refill(&s.1, 16, Utc::now(), tick).unwrap();
        assert_eq!(tenants(&mut sweep, &slots), ["a", "b", "c", "a", "c", "a"]);

        // The turn goes on across ticks; a tenant with no free slot is passed over.
        sweep.refill(&s.1, 16, Utc::now(), tick).unwrap();
        let d = sweep.next(&slots).unwrap();
        assert_eq!(d.tenant, "b");
        let held: Vec<_> = (0..4).map(|_| slots.tenant("c").unwrap()).collect();
        assert_eq!(tenants(&mut sweep, &slots), ["a", "a", "a"]);
        drop(held);
    }

    #[test]
    fn a_sweep_passes_a_backlog_in_bounded_steps_and_finds_what_lies_behind_it() {
        let s = Scratch::new("backlog");
        let old = Utc::now() - chrono::Duration::minutes(10);
        queue(&s.1, "a", old, SWEEP_BUDGET * 2 + 10);
        queue(&s.1, "b", old + chrono::Duration::minutes(1), 1);
        let slots = Slots::new(16, 4, 4);
        let mut sweep = Sweep::default();
        let tick = Duration::from_millis(100);
        let mut ticks = 0;
        let found = loop {
            ticks += 1;
            assert!(ticks <= 3, "b was never offered");
            sweep.refill(&s.1, 16, Utc::now(), tick).unwrap();
            let offered = tenants(&mut sweep, &slots);
            assert!(
                offered.iter().filter(|t| *t == "a").count() <= 16,
                "a's offer"
            );
            if offered.iter().any(|t| t == "b") {
                break ticks;
            }
        };
        assert_eq!(found, 3, "two steps of the backlog, then b");
    }
}
