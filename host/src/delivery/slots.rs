//! Attempt slots. An attempt holds three permits until it ends: one of the server's
//! (`concurrency`), one of its tenant's (`per_tenant`) and one of the destination's within
//! that tenant (`per_destination`). All three are taken without waiting, before the message
//! is claimed. The tenant's share is what keeps one tenant's slow receivers from holding every
//! slot; keying destinations by tenant keeps a tenant from filling the slots of a host that
//! other tenants also deliver to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Slots {
    global: Arc<Semaphore>,
    per_tenant: usize,
    per_destination: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// By (tenant, destination).
    destinations: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
}

/// The permits one attempt holds; dropping it frees them.
pub struct Held {
    _global: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
    _destination: OwnedSemaphorePermit,
}

impl Slots {
    /// Each limit is at least 1.
    pub fn new(concurrency: usize, per_tenant: usize, per_destination: usize) -> Slots {
        Slots {
            global: Arc::new(Semaphore::new(concurrency.max(1))),
            per_tenant: per_tenant.max(1),
            per_destination: per_destination.max(1),
            tenants: Mutex::new(HashMap::new()),
            destinations: Mutex::new(HashMap::new()),
        }
    }

    /// Server slots free now.
    pub fn global_free(&self) -> usize {
        self.global.available_permits()
    }

    /// How many more attempts `tenant` may start now.
    pub fn tenant_free(&self, tenant: &str) -> usize {
        let map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.get(tenant)
            .map_or(self.per_tenant, |s| s.available_permits())
    }

    /// One of the tenant's slots, if it has one free.
    pub fn tenant(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(tenant.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        sem.try_acquire_owned().ok()
    }

    /// The other two permits for an attempt whose tenant permit is in hand: the
    /// destination's first, then the server's. When either is busy, nothing is kept (the
    /// tenant permit goes back too) and the error says which.
    pub fn attempt(
        &self,
        tenant: OwnedSemaphorePermit,
        tenant_id: &str,
        destination: &str,
    ) -> Result<Held, Busy> {
        let sem = {
            let mut map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((tenant_id.to_string(), destination.to_string()))
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
                .clone()
        };
        let Ok(destination) = sem.try_acquire_owned() else {
            return Err(Busy::Destination);
        };
        let Ok(global) = self.global.clone().try_acquire_owned() else {
            return Err(Busy::Server);
        };
        Ok(Held {
            _global: global,
            _tenant: tenant,
            _destination: destination,
        })
    }

    /// Forgets tenants and destinations with nothing in flight, so the maps hold only what
    /// is in use however many destinations tenants name.
    pub fn prune(&self) {
        // A semaphore with a permit out is shared with that permit.
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| Arc::strong_count(s) > 1);
        self.destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| Arc::strong_count(s) > 1);
    }
}

/// Which permit an attempt could not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Its destination (within its tenant) has every slot in use.
    Destination,
    /// The server has every slot in use.
    Server,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_holds_no_more_than_its_share_and_idle_entries_are_forgotten() {
        let slots = Slots::new(4, 2, 1);
        let a1 = slots.tenant("a").unwrap();
        let held_a1 = slots.attempt(a1, "a", "x").unwrap();
        let a2 = slots.tenant("a").unwrap();
        // Same destination within the tenant: busy, and the tenant permit goes back.
        assert_eq!(slots.attempt(a2, "a", "x").err(), Some(Busy::Destination));
        assert_eq!(slots.tenant_free("a"), 1);
        let a2 = slots.tenant("a").unwrap();
        let held_a2 = slots.attempt(a2, "a", "y").unwrap();
        assert!(slots.tenant("a").is_none(), "the tenant's share is used up");
        // Another tenant still has its own share and its own slots at the same destination.
        let b = slots.tenant("b").unwrap();
        let held_b = slots.attempt(b, "b", "x").unwrap();
        assert_eq!(slots.global_free(), 1);
        drop((held_a1, held_a2, held_b));
        slots.prune();
        assert!(slots.tenants.lock().unwrap().is_empty());
        assert!(slots.destinations.lock().unwrap().is_empty());
        assert_eq!(slots.tenant_free("a"), 2);
        assert_eq!(slots.global_free(), 4);
    }
}
