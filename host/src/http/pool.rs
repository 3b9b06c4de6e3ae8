//! Blocking work off the async threads, shared fairly between tenants. Requests hand their
//! blocking work (store reads and small writes; automation's inline cascades) to a pool: it
//! runs on tokio's blocking pool, at most `workers` at once and at most
//! `max_running_per_tenant` of one tenant, with waiting requests served round-robin by
//! tenant, so a tenant's work queues behind its own, never in front of another tenant's. The
//! async threads only accept, route and wait, so `/healthz` and every other cheap request
//! stay fast however much work is asked for; a request that cannot get a worker within
//! `max_wait` is refused with 503 (`store_busy`, or `busy` for automation) and
//! `Retry-After`. The server keeps two pools: one for the store, one for automation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::ApiError;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Operations running at once (the store's default: the machine's cores).
    pub workers: usize,
    /// Operations of one tenant running at once (default: `workers`, no cap of its own).
    pub max_running_per_tenant: usize,
    /// The longest a request waits for a worker before it is refused.
    pub max_wait: Duration,
    /// Requests of one tenant that may wait at once; more are refused at once.
    pub max_waiting_per_tenant: usize,
    /// The error code a refusal carries (`store_busy`, `busy`).
    pub busy_code: &'static str,
}

impl PoolConfig {
    /// The store's pool: one operation per core; a tenant may use them all when alone.
    pub fn store() -> PoolConfig {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig {
            workers,
            max_running_per_tenant: workers,
            max_wait: Duration::from_secs(10),
            max_waiting_per_tenant: 256,
            busy_code: "store_busy",
        }
    }

    /// Automation's pool for `limits`: inline cascades and dry-runs hold a blocking thread
    /// while they wait for a run slot and run, so a tenant may hold at most its share of run
    /// slots plus a little (for the commit), and the pool as a whole twice the slots.
    pub fn automation(limits: &crate::sandbox::Limits) -> PoolConfig {
        let slots = limits.concurrent_runs.max(1) as usize;
        let share = limits.slot_policy().per_tenant as usize;
        PoolConfig {
            workers: slots * 2,
            max_running_per_tenant: share + 2,
            max_wait: limits.slot_wait,
            max_waiting_per_tenant: 64,
            busy_code: "busy",
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig::store()
    }
}

/// Why a request got no worker.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Busy {
    #[error("the server is busy with this tenant's earlier requests; waited {0:?} for a turn")]
    Waited(Duration),
    #[error("{0} of this tenant's requests are already waiting")]
    QueueFull(usize),
}

impl Busy {
    fn into_api(self, code: &'static str) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, self.to_string()).retry_after(1)
    }
}

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    config: PoolConfig,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    running: usize,
    /// Operations running per tenant (tenants with none are absent).
    running_by: HashMap<String, usize>,
    /// Each tenant's waiting requests, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with waiting requests, in the order they get the next free worker.
    turns: VecDeque<String>,
}

impl Queue {
    fn start(&mut self, tenant: &str) {
        self.running += 1;
        *self.running_by.entry(tenant.to_string()).or_default() += 1;
    }

    fn finish(&mut self, tenant: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.running_by.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running_by.remove(tenant);
            }
        }
    }

    fn running_of(&self, tenant: &str) -> usize {
        self.running_by.get(tenant).copied().unwrap_or(0)
    }

    /// Hands free workers to waiting requests: tenants in turn, skipping those at their cap;
    /// each served tenant goes to the back of the line.
    fn dispatch(&mut self, config: &PoolConfig) {
        while self.running < config.workers {
            let Some(pos) = self
                .turns
                .iter()
                .position(|t| self.running_of(t) < config.max_running_per_tenant)
            else {
                return;
            };
            let Some(tenant) = self.turns.remove(pos) else {
                return;
            };
            let mut handed = false;
            let mut empty = true;
            if let Some(line) = self.waiting.get_mut(&tenant) {
                while let Some(tx) = line.pop_front() {
                    if tx.send(()).is_ok() {
                        handed = true;
                        break;
                    }
                }
                empty = line.is_empty();
            }
            if handed {
                self.start(&tenant);
            }
            if empty {
                self.waiting.remove(&tenant);
            } else {
                self.turns.push_back(tenant);
            }
        }
    }
}

/// A worker slot; given to the next waiting request whose turn it is when dropped.
pub struct Permit {
    shared: Arc<Shared>,
    tenant: String,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Pool {
        let workers = config.workers.max(1);
        Pool {
            shared: Arc::new(Shared {
                config: PoolConfig {
                    workers,
                    max_running_per_tenant: config.max_running_per_tenant.clamp(1, workers),
                    ..config
                },
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Runs `f` on the blocking pool once `tenant` has a worker. The worker stays taken until
    /// `f` returns, even if the request that asked for it is gone.
    pub async fn run<T, E>(
        &self,
        tenant: &str,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let permit = self
            .acquire(tenant)
            .await
            .map_err(|b| b.into_api(self.shared.config.busy_code))?;
        let span = tracing::Span::current();
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(f)
        })
        .await;
        match done {
            Ok(result) => result.map_err(Into::into),
            Err(e) => Err(ApiError::internal(format!("a blocking task failed: {e}"))),
        }
    }

    /// Waits for a worker: at once if one is free for `tenant` and nobody eligible waits,
    /// else in `tenant`'s line.
    pub async fn acquire(&self, tenant: &str) -> Result<Permit, Busy> {
        let config = &self.shared.config;
        let rx = {
            let mut q = self.lock();
            let eligible_waiting = q
                .turns
                .iter()
                .any(|t| q.running_of(t) < config.max_running_per_tenant);
            if q.running < config.workers
                && q.running_of(tenant) < config.max_running_per_tenant
                && !eligible_waiting
            {
                q.start(tenant);
                return Ok(self.permit(tenant));
            }
            let line = q.waiting.entry(tenant.to_string()).or_default();
            line.retain(|tx| !tx.is_closed());
            if line.len() >= config.max_waiting_per_tenant {
                return Err(Busy::QueueFull(line.len()));
            }
            let (tx, rx) = oneshot::channel();
            line.push_back(tx);
            if !q.turns.iter().any(|t| t == tenant) {
                q.turns.push_back(tenant.to_string());
            }
            q.dispatch(config);
            rx
        };
        let max_wait = config.max_wait;
        let mut rx = rx;
        match tokio::time::timeout(max_wait, &mut rx).await {
            Ok(Ok(())) => Ok(self.permit(tenant)),
            Ok(Err(_)) => Err(Busy::Waited(max_wait)),
            Err(_) => {
                // A worker may have been handed over just as the wait ran out: keep it.
                rx.close();
                if rx.try_recv().is_ok() {
                    return Ok(self.permit(tenant));
                }
                let mut q = self.lock();
                if let Some(line) = q.waiting.get_mut(tenant) {
                    line.retain(|tx| !tx.is_closed());
                    if line.is_empty() {
                        q.waiting.remove(tenant);
                        q.turns.retain(|t| t != tenant);
                    }
                }
                Err(Busy::Waited(max_wait))
            }
        }
    }

    /// How many operations run and how many requests wait (for tests and metrics).
    pub fn load(&self) -> (usize, usize) {
        let q = self.lock();
        (q.running, q.waiting.values().map(VecDeque::len).sum())
    }

    fn permit(&self, tenant: &str) -> Permit {
        Permit {
            shared: self.shared.clone(),
            tenant: tenant.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.finish(&self.tenant);
        q.dispatch(&self.shared.config);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pool(workers: usize, max_wait: Duration) -> Pool {
        Pool::new(PoolConfig {
            workers,
            max_running_per_tenant: workers,
            max_wait,
            max_waiting_per_tenant: 8,
            busy_code: "store_busy",
        })
    }

    /// Waits until `n` requests wait in the pool.
    async fn until_waiting(p: &Pool, n: usize) {
        for _ in 0..2000 {
            if p.load().1 == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never {n} waiting: {:?}", p.load());
    }

    #[tokio::test]
    async fn a_tenant_waits_behind_itself_not_in_front_of_others() {
        let p = pool(1, Duration::from_secs(60));
        let first = p.acquire("a").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (p2, order) = (p.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _w = p2.acquire("a").await.unwrap();
                order.lock().unwrap().push(format!("a{i}"));
            }));
            until_waiting(&p, i + 1).await;
        }
        let (p2, order2) = (p.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _w = p2.acquire("b").await.unwrap();
            order2.lock().unwrap().push("b".to_string());
        }));
        until_waiting(&p, 6).await;
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, ["a0", "b", "a1", "a2", "a3", "a4"]);
        assert_eq!(p.load(), (0, 0));
    }

    #[tokio::test]
    async fn a_wait_is_bounded_and_named() {
        let p = pool(1, Duration::from_millis(100));
        let held = p.acquire("a").await.unwrap();
        let e = p.acquire("b").await.err().unwrap();
        assert_eq!(e, Busy::Waited(Duration::from_millis(100)));
        let api = e.into_api("store_busy");
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code, "store_busy");
        assert_eq!(p.load(), (1, 0), "the refused request left no trace");
        drop(held);
        assert_eq!(p.load(), (0, 0));
        let _again = p.acquire("b").await.unwrap();
    }

    #[tokio::test]
    async fn a_tenants_line_is_bounded() {
        let p = pool(1, Duration::from_secs(60));
        let _held = p.acquire("a").await.unwrap();
        let mut waiting = Vec::new();
        for i in 0..8 {
            let p2 = p.clone();
            waiting.push(tokio::spawn(async move { p2.acquire("a").await.map(drop) }));
            until_waiting(&p, i + 1).await;
        }
        assert_eq!(p.acquire("a").await.err(), Some(Busy::QueueFull(8)));
        for w in waiting {
            w.abort();
        }
    }

    #[tokio::test]
    async fn a_tenant_at_its_cap_waits_while_another_tenant_runs() {
        let p = Pool::new(PoolConfig {
            workers: 3,
            max_running_per_tenant: 2,
            max_wait: Duration::from_secs(60),
            max_waiting_per_tenant: 8,
            busy_code: "busy",
        });
        let a1 = p.acquire("a").await.unwrap();
        let _a2 = p.acquire("a").await.unwrap();
        // A third of a's waits although a worker is free ...
        let p2 = p.clone();
        let a3 = tokio::spawn(async move { p2.acquire("a").await.map(drop) });
        until_waiting(&p, 1).await;
        assert_eq!(p.load(), (2, 1));
        // ... and b takes that worker at once, ahead of a's waiting request.
        let b = tokio::time::timeout(Duration::from_secs(5), p.acquire("b"))
            .await
            .expect("b is not held up by a's line")
            .unwrap();
        assert_eq!(p.load(), (3, 1));
        drop(b);
        assert_eq!(p.load(), (2, 1), "a is still at its cap");
        drop(a1);
        a3.await.unwrap().unwrap();
        assert_eq!(p.load(), (1, 0));
    }

    #[tokio::test]
    async fn work_runs_off_the_async_threads_and_frees_its_worker() {
        let p = pool(2, Duration::from_secs(60));
        let on = p
            .run("a", || {
                Ok::<_, ApiError>(std::thread::current().name().map(String::from))
            })
            .await
            .unwrap();
        assert_ne!(on, std::thread::current().name().map(String::from));
        assert_eq!(p.load(), (0, 0));
    }
}
