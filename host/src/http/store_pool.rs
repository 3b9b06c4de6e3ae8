//! Store work off the async threads. Every handler's store reads (and the small writes that do
//! not go through automation) run here: on tokio's blocking pool, at most `workers` at once,
//! with waiting requests served round-robin by tenant so a tenant's scans queue behind each
//! other, not in front of another tenant's. The async threads only accept, route and wait,
//! so `/healthz` and every other cheap request stay fast however many long scans are asked
//! for; a request that cannot get a worker within `max_wait` is refused with 503
//! `store_busy` and `Retry-After`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::ApiError;

#[derive(Debug, Clone)]
pub struct StorePoolConfig {
    /// Store operations running at once (default: the machine's cores).
    pub workers: usize,
    /// The longest a request waits for a worker before it is refused (503 `store_busy`).
    pub max_wait: Duration,
    /// Requests of one tenant that may wait at once; more are refused at once.
    pub max_waiting_per_tenant: usize,
}

impl Default for StorePoolConfig {
    fn default() -> Self {
        StorePoolConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_wait: Duration::from_secs(10),
            max_waiting_per_tenant: 256,
        }
    }
}

/// Why a request got no worker.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Busy {
    #[error("the server is busy with this tenant's earlier requests; waited {0:?} for a turn")]
    Waited(Duration),
    #[error("{0} of this tenant's requests are already waiting for the store")]
    QueueFull(usize),
}

impl From<Busy> for ApiError {
    fn from(b: Busy) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_busy", b.to_string()).retry_after(1)
    }
}

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct StorePool {
    shared: Arc<Shared>,
}

struct Shared {
    config: StorePoolConfig,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    running: usize,
    /// Each tenant's waiting requests, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with waiting requests, in the order they get the next free worker.
    turns: VecDeque<String>,
}

/// A worker slot; given to the next waiting tenant when dropped.
pub struct Permit {
    shared: Arc<Shared>,
}

impl StorePool {
    pub fn new(config: StorePoolConfig) -> StorePool {
        StorePool {
            shared: Arc::new(Shared {
                config: StorePoolConfig {
                    workers: config.workers.max(1),
                    ..config
                },
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    pub fn config(&self) -> &StorePoolConfig {
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
        let permit = self.acquire(tenant).await?;
        let span = tracing::Span::current();
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(f)
        })
        .await;
        match done {
            Ok(result) => result.map_err(Into::into),
            Err(e) => Err(ApiError::internal(format!("store task failed: {e}"))),
        }
    }

    /// Waits for a worker: at once if one is free and nobody waits, else in `tenant`'s line.
    pub async fn acquire(&self, tenant: &str) -> Result<Permit, Busy> {
        let rx = {
            let mut q = self.lock();
            if q.running < self.shared.config.workers && q.turns.is_empty() {
                q.running += 1;
                return Ok(self.permit());
            }
            let line = q.waiting.entry(tenant.to_string()).or_default();
            line.retain(|tx| !tx.is_closed());
            if line.len() >= self.shared.config.max_waiting_per_tenant {
                return Err(Busy::QueueFull(line.len()));
            }
            let (tx, rx) = oneshot::channel();
            line.push_back(tx);
            if !q.turns.iter().any(|t| t == tenant) {
                q.turns.push_back(tenant.to_string());
            }
            rx
        };
        let max_wait = self.shared.config.max_wait;
        let mut rx = rx;
        match tokio::time::timeout(max_wait, &mut rx).await {
            Ok(Ok(())) => Ok(self.permit()),
            Ok(Err(_)) => Err(Busy::Waited(max_wait)),
            Err(_) => {
                // A worker may have been handed over just as the wait ran out: keep it.
                rx.close();
                if rx.try_recv().is_ok() {
                    return Ok(self.permit());
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

    fn permit(&self) -> Permit {
        Permit {
            shared: self.shared.clone(),
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
    /// Hands the worker to the first waiting request of the tenant whose turn it is, and
    /// puts that tenant at the back of the line.
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        while let Some(tenant) = q.turns.pop_front() {
            let mut handed = false;
            let mut empty = true;
            if let Some(line) = q.waiting.get_mut(&tenant) {
                while let Some(tx) = line.pop_front() {
                    if tx.send(()).is_ok() {
                        handed = true;
                        break;
                    }
                }
                empty = line.is_empty();
            }
            if empty {
                q.waiting.remove(&tenant);
            } else {
                q.turns.push_back(tenant);
            }
            if handed {
                return;
            }
        }
        q.running = q.running.saturating_sub(1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pool(workers: usize, max_wait: Duration) -> StorePool {
        StorePool::new(StorePoolConfig {
            workers,
            max_wait,
            max_waiting_per_tenant: 8,
        })
    }

    /// Waits until `n` requests wait in the pool.
    async fn until_waiting(p: &StorePool, n: usize) {
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
        let api = ApiError::from(e);
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
