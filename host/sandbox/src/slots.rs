//! Run slots, shared fairly. Runs in flight never outnumber the pooling allocator's instance
//! slots (past that, instantiation would fail and look like a guest failure), and no tenant
//! can take them all:
//!
//! - a tenant holds at most `per_tenant` slots at once (whatever the class), so a busy or
//!   hostile tenant queues behind itself;
//! - the last `inline_reserve` slots are only for inline runs (a person is waiting);
//! - waiters are served inline first, then interactive (dry-runs), then background (jobs,
//!   replays); first come first served within a class, skipping tenants at their cap;
//! - inline and interactive runs wait at most `wait`; then the run ends `busy` without
//!   having started. Background runs wait as long as it takes.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why a run is wanted, which decides its place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunClass {
    /// Part of a change someone is waiting for (an API write's inline bindings).
    Inline,
    /// Someone is waiting for the answer, but nothing depends on it (a dry-run).
    Interactive,
    /// Nobody is waiting: background jobs, follow-ups, replays.
    Background,
}

impl RunClass {
    pub fn name(self) -> &'static str {
        match self {
            RunClass::Inline => "inline",
            RunClass::Interactive => "interactive",
            RunClass::Background => "background",
        }
    }
}

/// How the slots are shared; see the module docs.
#[derive(Debug, Clone)]
pub struct SlotPolicy {
    pub total: u32,
    pub per_tenant: u32,
    pub inline_reserve: u32,
    pub wait: Duration,
}

struct Waiter {
    ticket: u64,
    tenant: String,
    class: RunClass,
}

#[derive(Default)]
struct State {
    running: u32,
    by_tenant: HashMap<String, u32>,
    /// In arrival order; served by class first (see [`State::first_admissible`]).
    waiting: Vec<Waiter>,
    next_ticket: u64,
}

pub struct Slots {
    policy: SlotPolicy,
    state: Mutex<State>,
    freed: Condvar,
}

/// A slot in use; given back when dropped.
pub struct Slot<'a> {
    slots: &'a Slots,
    tenant: String,
}

/// No slot came free within the class's wait limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub waited: Duration,
}

impl State {
    fn fits(&self, p: &SlotPolicy, tenant: &str, class: RunClass) -> bool {
        let limit = match class {
            RunClass::Inline => p.total,
            _ => p.total.saturating_sub(p.inline_reserve).max(1),
        };
        self.running < limit && self.by_tenant.get(tenant).copied().unwrap_or(0) < p.per_tenant
    }

    /// The ticket of the waiter to serve next: the best class, the oldest within it, among
    /// those whose tenant is under its cap and whose class may use a free slot.
    fn first_admissible(&self, p: &SlotPolicy) -> Option<u64> {
        self.waiting
            .iter()
            .filter(|w| self.fits(p, &w.tenant, w.class))
            .min_by_key(|w| (w.class, w.ticket))
            .map(|w| w.ticket)
    }

    fn admit(&mut self, tenant: &str) {
        self.running += 1;
        *self.by_tenant.entry(tenant.to_string()).or_default() += 1;
        self.report();
    }

    fn report(&self) {
        metrics::gauge!("stagecraft_run_slots_in_use").set(f64::from(self.running));
        metrics::gauge!("stagecraft_run_slot_waiters").set(self.waiting.len() as f64);
    }
}

impl Slots {
    pub fn new(policy: SlotPolicy) -> Slots {
        Slots {
            policy,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    pub fn policy(&self) -> &SlotPolicy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot for `tenant`'s run of `class`.
    pub fn take(&self, tenant: &str, class: RunClass) -> Result<Slot<'_>, Busy> {
        let started = Instant::now();
        let mut state = self.lock();
        if state.waiting.is_empty() && state.fits(&self.policy, tenant, class) {
            state.admit(tenant);
            return Ok(self.slot(tenant));
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push(Waiter {
            ticket,
            tenant: tenant.to_string(),
            class,
        });
        let deadline = match class {
            RunClass::Background => None,
            _ => Some(started + self.policy.wait),
        };
        loop {
            if state.first_admissible(&self.policy) == Some(ticket) {
                state.waiting.retain(|w| w.ticket != ticket);
                state.admit(tenant);
                // Another waiter (of another tenant) may fit too.
                self.freed.notify_all();
                return Ok(self.slot(tenant));
            }
            state = match deadline {
                None => self.freed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.waiting.retain(|w| w.ticket != ticket);
                        // Leaving may let a waiter behind this one through.
                        self.freed.notify_all();
                        return Err(Busy {
                            waited: started.elapsed(),
                        });
                    }
                    self.freed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    fn slot(&self, tenant: &str) -> Slot<'_> {
        Slot {
            slots: self,
            tenant: tenant.to_string(),
        }
    }

    /// Slots in use: in total, and by `tenant`.
    pub fn in_use(&self, tenant: &str) -> (u32, u32) {
        let s = self.lock();
        (s.running, s.by_tenant.get(tenant).copied().unwrap_or(0))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.running = state.running.saturating_sub(1);
        if let Some(n) = state.by_tenant.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_tenant.remove(&self.tenant);
            }
        }
        state.report();
        // Waking costs a system call even with nobody waiting: only when someone is.
        if !state.waiting.is_empty() {
            self.slots.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;

    fn slots(total: u32, per_tenant: u32, reserve: u32, wait_ms: u64) -> Arc<Slots> {
        Arc::new(Slots::new(SlotPolicy {
            total,
            per_tenant,
            inline_reserve: reserve,
            wait: Duration::from_millis(wait_ms),
        }))
    }

    #[test]
    fn a_tenant_never_holds_more_than_its_share() {
        let s = slots(8, 2, 1, 50);
        let _a = (
            s.take("a", RunClass::Background),
            s.take("a", RunClass::Background),
        );
        assert_eq!(
            s.take("a", RunClass::Interactive).err().map(|_| ()),
            Some(()),
            "a third slot for tenant a must wait, then give up"
        );
        assert!(
            s.take("b", RunClass::Interactive).is_ok(),
            "b is not held up"
        );
        assert_eq!(s.in_use("a"), (2, 2));
    }

    #[test]
    fn the_reserve_is_for_inline_runs_only() {
        let s = slots(3, 3, 1, 50);
        let _held = (
            s.take("a", RunClass::Interactive).unwrap(),
            s.take("b", RunClass::Background).unwrap(),
        );
        assert!(
            s.take("c", RunClass::Interactive).is_err(),
            "the last slot is reserved"
        );
        assert!(
            s.take("c", RunClass::Inline).is_ok(),
            "an inline run gets it"
        );
    }

    #[test]
    fn waiters_are_served_inline_first_and_busy_tenants_are_skipped() {
        let s = slots(2, 1, 0, 10_000);
        let a = s.take("a", RunClass::Background).unwrap();
        let b = s.take("b", RunClass::Background).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        // Queued in this order: a background run of a (a is at its cap), an interactive run
        // of c, an inline run of d.
        for (tenant, class) in [
            ("a", RunClass::Background),
            ("c", RunClass::Interactive),
            ("d", RunClass::Inline),
        ] {
            let (s2, order) = (s.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let slot = s2.take(tenant, class).unwrap();
                order.lock().unwrap().push(tenant);
                std::thread::sleep(Duration::from_millis(20));
                drop(slot);
            }));
            // Each is queued before the next arrives.
            while s.lock().waiting.len() < threads.len() {
                std::thread::yield_now();
            }
        }
        drop(b); // one slot free: d (inline) goes first
        while order.lock().unwrap().is_empty() {
            std::thread::yield_now();
        }
        drop(a);
        for t in threads {
            t.join().unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], "d", "{order:?}");
        assert!(order.contains(&"a") && order.contains(&"c"), "{order:?}");
    }
}
