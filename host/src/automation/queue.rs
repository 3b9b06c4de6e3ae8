//! The job loop: takes queued background jobs fairly across tenants and runs a few at once.
//!
//! Jobs are queued per tenant (`job/{tenant}/{id}`). Each pass visits the tenants that have
//! jobs round-robin, starting after the one served last, and starts each tenant's oldest job
//! not yet in flight, so one tenant's backlog never delays another tenant's next job by more
//! than a pass. At most [`LANES`] jobs run at once (their runs then queue for run slots as
//! background work), at most [`PER_TENANT`] of one tenant.
//!
//! A job that cannot run is recorded as a failed run and leaves the queue (see
//! `Automation::process`). Only when even that cannot be stored (storage failing) does the
//! job stay; it then rests before it is tried again, and reading the queue backs off
//! exponentially while storage keeps failing, so a broken disk is not hammered or logged
//! twice a second.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Automation;
use crate::store::QueuedJob;

/// Jobs in flight at once.
pub const LANES: usize = 4;
/// Jobs of one tenant in flight at once.
pub const PER_TENANT: usize = 2;
/// How often an idle worker looks at the queue without being woken.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The longest rest after repeated storage failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Exponential back-off while storage fails: the base delay (0.5 s for the job loop), then
/// twice that, four times, … up to [`MAX_BACKOFF`]. The scheduler uses it too.
pub(super) struct Backoff {
    base: Duration,
    failures: u32,
    what: &'static str,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(IDLE_POLL, "the job queue")
    }
}

impl Backoff {
    /// Back-off from `base`, for the loop reading `what` (named when it recovers).
    pub(super) fn new(base: Duration, what: &'static str) -> Backoff {
        Backoff {
            base,
            failures: 0,
            what,
        }
    }

    pub(super) fn delay(&self) -> Duration {
        if self.failures == 0 {
            return self.base;
        }
        self.base
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF)
    }

    /// Counts a failure; true when it should be logged (the first, then every doubling).
    pub(super) fn fail(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.failures.is_power_of_two()
    }

    pub(super) fn ok(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "{} is readable again", self.what);
        }
        self.failures = 0;
    }
}

/// What the loop knows about jobs in flight and jobs resting after a failure.
#[derive(Default)]
struct Flight {
    keys: HashSet<String>,
    by_tenant: HashMap<String, usize>,
    resting: HashMap<String, Instant>,
}

impl Flight {
    fn count(&self, tenant: &str) -> usize {
        self.by_tenant.get(tenant).copied().unwrap_or(0)
    }

    fn start(&mut self, q: &QueuedJob) {
        self.keys.insert(q.key.clone());
        *self.by_tenant.entry(q.tenant.clone()).or_default() += 1;
    }

    fn finish(&mut self, key: &str, tenant: &str, left_queue: bool, rest: Duration) {
        self.keys.remove(key);
        if let Some(n) = self.by_tenant.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_tenant.remove(tenant);
            }
        }
        if !left_queue {
            self.resting.insert(key.to_string(), Instant::now() + rest);
        }
    }

    fn ready(&mut self, q: &QueuedJob) -> bool {
        if self.keys.contains(&q.key) {
            return false;
        }
        match self.resting.get(&q.key) {
            Some(until) if *until > Instant::now() => false,
            Some(_) => {
                self.resting.remove(&q.key);
                true
            }
            None => true,
        }
    }
}

pub async fn run_jobs(a: Arc<Automation>, mut stop: watch::Receiver<bool>) {
    let mut tasks: JoinSet<(String, String, bool)> = JoinSet::new();
    let mut flight = Flight::default();
    let mut backoff = Backoff::default();
    let mut last: Option<String> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        match fill(&a, &mut tasks, &mut flight, &mut last) {
            Ok(()) => backoff.ok(),
            Err(e) => {
                if backoff.fail() {
                    tracing::error!(error = %e, retry_in = ?backoff.delay(), "cannot read the job queue");
                }
            }
        }
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((key, tenant, left_queue)) = done {
                    if !left_queue && backoff.fail() {
                        tracing::warn!(job = %key, retry_in = ?backoff.delay(), "a job stays queued: storage is failing");
                    }
                    flight.finish(&key, &tenant, left_queue, backoff.delay());
                }
            }
            _ = a.wake.notified() => {}
            _ = tokio::time::sleep(backoff.delay()) => {}
            _ = stop.changed() => {}
        }
    }
    // Runs in flight finish (each is bounded by its deadline) and commit.
    while tasks.join_next().await.is_some() {}
}

/// Starts jobs until the lanes are full or no tenant has a job that may start.
fn fill(
    a: &Arc<Automation>,
    tasks: &mut JoinSet<(String, String, bool)>,
    flight: &mut Flight,
    last: &mut Option<String>,
) -> Result<(), crate::store::StoreError> {
    while tasks.len() < LANES {
        let tenants = a.store.job_tenants(last.as_deref(), 256)?;
        let mut started = false;
        for tenant in tenants {
            if tasks.len() >= LANES {
                break;
            }
            let held = flight.count(&tenant);
            if held >= PER_TENANT {
                continue;
            }
            // Enough to find one not in flight and not resting (this host's own jobs in
            // flight come back leased to it; another host's are skipped).
            let queued = a
                .store
                .lease_jobs(&tenant, held + 1 + flight.resting.len())?;
            let Some(q) = queued.into_iter().find(|q| flight.ready(q)) else {
                continue;
            };
            flight.start(&q);
            *last = Some(tenant);
            let a2 = a.clone();
            tasks.spawn_blocking(move || {
                let left = a2.process(&q);
                (q.key, q.tenant, left)
            });
            started = true;
        }
        if !started {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_back_off_exponentially_and_log_once_per_doubling() {
        let mut b = Backoff::default();
        assert_eq!(b.delay(), IDLE_POLL);
        let mut logged = 0;
        let mut delays = Vec::new();
        for _ in 0..100 {
            logged += usize::from(b.fail());
            delays.push(b.delay());
        }
        assert_eq!(delays[0], Duration::from_secs(1));
        assert_eq!(delays[1], Duration::from_secs(2));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(delays[99], MAX_BACKOFF);
        assert_eq!(logged, 7, "100 failures are logged 7 times, not 100");
        b.ok();
        assert_eq!(b.delay(), IDLE_POLL);
    }
}
