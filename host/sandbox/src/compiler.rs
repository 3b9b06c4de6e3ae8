//! The compile pool: every Wasm compile in the process runs here, on a few dedicated threads
//! at lowered priority, never on a thread that serves requests.
//!
//! One compile can take a minute of CPU and a gigabyte of memory (a Python component takes
//! ~10 s and ~400 MB), so compiles are few at a time (`CompileLimits::concurrent`, default
//! 1), and wasmtime's parallel compilation runs on this pool's own rayon threads
//! (`CompileLimits::threads`, default half the cores) instead of rayon's global pool of one
//! thread per core. Waiting compiles are queued per tenant and taken round robin, so a busy
//! tenant waits behind itself; a tenant over its queue share, or a full queue, is refused at
//! once with the time to retry. Recompiles on a run's path (a module whose artifact is gone)
//! go before uploads: somebody's automation is waiting for them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the compile pool is sized.
#[derive(Debug, Clone)]
pub struct CompileLimits {
    /// Compiles that run at once.
    pub concurrent: usize,
    /// Threads wasmtime may spread one compile's functions over (shared by the compiles that
    /// run at once).
    pub threads: usize,
    /// Compiles one tenant may have waiting or running; more are refused (429).
    pub queued_per_tenant: usize,
    /// Compiles waiting in all, across tenants (each holds its upload's bytes).
    pub queued_total: usize,
    /// Nice value of the compile threads (Linux; 0 leaves them as they are).
    pub nice: i32,
}

impl Default for CompileLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CompileLimits {
            concurrent: 1,
            threads: (cores / 2).max(1),
            queued_per_tenant: 2,
            queued_total: 16,
            nice: 10,
        }
    }
}

/// What the pool holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Recompiles a run waits for.
    pub urgent: usize,
    /// Uploads waiting for their turn.
    pub waiting: usize,
    /// Compiles running.
    pub running: usize,
}

/// Why a compile was not queued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Busy {
    #[error("this tenant already has {queued} module compiles waiting or running (the limit is {max}); retry in {}s", retry_after.as_secs())]
    Tenant {
        queued: usize,
        max: usize,
        retry_after: Duration,
    },
    #[error("{queued} module compiles are already waiting (the limit is {max}); retry in {}s", retry_after.as_secs())]
    Full {
        queued: usize,
        max: usize,
        retry_after: Duration,
    },
    #[error("the server is shutting down")]
    Closed,
}

/// A compile; what it returns is run after the pool has counted the compile as done (so a
/// caller told "done" may queue its next compile at once).
type Job = Box<dyn FnOnce() -> Finish + Send>;
type Finish = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    /// Recompiles a run waits for: before any upload.
    urgent: VecDeque<Job>,
    /// Uploads, per tenant.
    lanes: HashMap<String, VecDeque<Job>>,
    /// Tenants with queued uploads, in turn order.
    turns: VecDeque<String>,
    /// Per tenant: uploads waiting or running.
    pending: HashMap<String, usize>,
    waiting: usize,
    running: usize,
    /// Recent compile time, seconds (moving average), for `Retry-After`.
    average: f64,
    closed: bool,
}

impl Queue {
    /// The next job and the tenant it counts against, urgent first, then tenants in turn.
    fn next(&mut self) -> Option<(Option<String>, Job)> {
        if let Some(job) = self.urgent.pop_front() {
            return Some((None, job));
        }
        let tenant = self.turns.pop_front()?;
        let lane = self.lanes.get_mut(&tenant)?;
        let job = lane.pop_front()?;
        if lane.is_empty() {
            self.lanes.remove(&tenant);
        } else {
            self.turns.push_back(tenant.clone());
        }
        self.waiting -= 1;
        Some((Some(tenant), job))
    }

    /// A compile of `tenant`'s no longer counts against its share.
    fn release(&mut self, tenant: &str) {
        if let Some(n) = self.pending.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(tenant);
            }
        }
    }

    fn retry_after(&self, ahead: usize) -> Duration {
        Duration::from_secs(
            (self.average * ahead.max(1) as f64)
                .ceil()
                .clamp(1.0, 600.0) as u64,
        )
    }
}

/// A tenant's place in the compile queue ([`Compiler::reserve`]); given back if dropped
/// without being submitted.
pub struct Ticket {
    shared: Arc<Shared>,
    tenant: String,
    queued: bool,
}

impl Ticket {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.queued {
            let mut q = self.shared.lock();
            q.waiting -= 1;
            q.release(&self.tenant);
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    limits: CompileLimits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Compiler {
    shared: Arc<Shared>,
}

impl Compiler {
    /// Starts the pool's threads.
    pub fn new(limits: CompileLimits) -> std::io::Result<Compiler> {
        let nice = limits.nice;
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(limits.threads.max(1))
            .thread_name(|i| format!("compile-{i}"))
            .start_handler(move |_| lower_priority(nice))
            .build()
            .map_err(std::io::Error::other)?;
        let rayon = Arc::new(rayon);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                average: 5.0,
                ..Queue::default()
            }),
            ready: Condvar::new(),
            limits,
        });
        for i in 0..shared.limits.concurrent.max(1) {
            let (shared, rayon) = (shared.clone(), rayon.clone());
            std::thread::Builder::new()
                .name(format!("compile-queue-{i}"))
                .spawn(move || work(&shared, &rayon))?;
        }
        Ok(Compiler { shared })
    }

    pub fn limits(&self) -> &CompileLimits {
        &self.shared.limits
    }

    pub fn queued(&self) -> Queued {
        let q = self.shared.lock();
        Queued {
            urgent: q.urgent.len(),
            waiting: q.waiting,
            running: q.running,
        }
    }

    /// Takes a place in `tenant`'s share of the queue, before the upload's bytes are even
    /// read (so the bytes of waiting uploads are bounded too). Refused when the tenant
    /// already has `queued_per_tenant` compiles waiting or running, or the queue is full.
    pub fn reserve(&self, tenant: &str) -> Result<Ticket, Busy> {
        let limits = &self.shared.limits;
        let mut q = self.shared.lock();
        if q.closed {
            return Err(Busy::Closed);
        }
        let mine = q.pending.get(tenant).copied().unwrap_or(0);
        if mine >= limits.queued_per_tenant {
            return Err(Busy::Tenant {
                queued: mine,
                max: limits.queued_per_tenant,
                retry_after: q.retry_after(mine),
            });
        }
        if q.waiting >= limits.queued_total {
            return Err(Busy::Full {
                queued: q.waiting,
                max: limits.queued_total,
                retry_after: q.retry_after(q.waiting / limits.concurrent.max(1)),
            });
        }
        *q.pending.entry(tenant.to_string()).or_default() += 1;
        q.waiting += 1;
        Ok(Ticket {
            shared: self.shared.clone(),
            tenant: tenant.to_string(),
            queued: false,
        })
    }

    /// Queues `job` in its ticket's lane; it runs on a compile thread when its turn comes,
    /// and `done` gets its result there once the compile no longer counts against the
    /// tenant.
    pub fn submit<T: Send + 'static>(
        &self,
        mut ticket: Ticket,
        job: impl FnOnce() -> T + Send + 'static,
        done: impl FnOnce(T) + Send + 'static,
    ) -> Result<(), Busy> {
        let mut q = self.shared.lock();
        if q.closed {
            drop(q);
            return Err(Busy::Closed);
        }
        ticket.queued = true;
        let tenant = ticket.tenant.clone();
        let lane = q.lanes.entry(tenant.clone()).or_default();
        lane.push_back(Box::new(move || {
            let out = job();
            Box::new(move || done(out)) as Finish
        }));
        if lane.len() == 1 {
            q.turns.push_back(tenant);
        }
        drop(q);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Runs `job` on a compile thread ahead of every queued upload and waits for its result
    /// (for a caller that is already on a blocking thread). `None` if the pool has shut down.
    pub fn run_urgent<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut q = self.shared.lock();
            if q.closed {
                return None;
            }
            q.urgent.push_back(Box::new(move || {
                let out = job();
                Box::new(move || {
                    let _ = tx.send(out);
                }) as Finish
            }));
        }
        self.shared.ready.notify_one();
        rx.recv().ok()
    }
}

impl Drop for Compiler {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.closed = true;
        // Dropping queued jobs drops their result senders: their callers hear "closed".
        q.urgent.clear();
        q.lanes.clear();
        drop(q);
        self.shared.ready.notify_all();
    }
}

/// A compile-queue thread: takes the next job in turn and runs it on the compile threads.
fn work(shared: &Shared, rayon: &rayon::ThreadPool) {
    lower_priority(shared.limits.nice);
    loop {
        let (tenant, job) = {
            let mut q = shared.lock();
            loop {
                if q.closed {
                    return;
                }
                if let Some(next) = q.next() {
                    q.running += 1;
                    break next;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let started = Instant::now();
        // A panicking compile must not take the pool down with it.
        let finish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rayon.install(job)));
        let took = started.elapsed().as_secs_f64();
        trim();
        let mut q = shared.lock();
        q.running -= 1;
        q.average = 0.7 * q.average + 0.3 * took;
        if let Some(t) = tenant {
            q.release(&t);
        }
        drop(q);
        if let Ok(finish) = finish {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(finish));
        }
    }
}

/// Lowers the calling thread's scheduling priority by `nice`, so that under contention the
/// threads serving requests and runs get the CPU first. On Linux a nice value belongs to the
/// thread; elsewhere this does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours;
    // PRIO_PROCESS with a thread id changes only that thread's nice value (Linux keeps it
    // per thread), and raising it needs no privilege. A failure leaves the priority as it
    // was, which is harmless.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn lower_priority(_nice: i32) {}

/// Hands the memory a compile freed back to the system. glibc keeps freed memory in its
/// arenas; after compiling the JavaScript fixture the process stayed at 356 MB resident, and
/// at 127 MB with this (Python: 400 MB, and 173 MB). It costs a walk over the free lists,
/// milliseconds, once per compile.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only releases free heap pages; it takes no pointer of ours and is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn pool(per_tenant: usize, total: usize) -> Compiler {
        Compiler::new(CompileLimits {
            concurrent: 1,
            threads: 1,
            queued_per_tenant: per_tenant,
            queued_total: total,
            nice: 0,
        })
        .expect("pool")
    }

    fn queue<T: Send + 'static>(
        c: &Compiler,
        tenant: &str,
        job: impl FnOnce() -> T + Send + 'static,
        done: impl FnOnce(T) + Send + 'static,
    ) -> Result<(), Busy> {
        c.submit(c.reserve(tenant)?, job, done)
    }

    /// Occupies the pool's one compile slot (in `tenant`'s lane) until the sender is used.
    fn occupy(c: &Compiler, tenant: &str) -> mpsc::Sender<()> {
        let (release, wait) = mpsc::channel::<()>();
        let (started, has_started) = mpsc::channel();
        queue(
            c,
            tenant,
            move || {
                let _ = started.send(());
                let _ = wait.recv();
            },
            |_| {},
        )
        .expect("queued");
        has_started.recv().expect("the blocker runs");
        release
    }

    #[test]
    fn tenants_take_turns_and_recompiles_go_first() {
        let c = Arc::new(pool(8, 16));
        let release = occupy(&c, "x");
        let (tx, rx) = mpsc::channel();
        for (tenant, n) in [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("b", 2)] {
            let tx = tx.clone();
            queue(
                &c,
                tenant,
                move || format!("{tenant}{n}"),
                move |s| tx.send(s).expect("send"),
            )
            .expect("queued");
        }
        let urgent = {
            let (c, tx) = (c.clone(), tx.clone());
            std::thread::spawn(move || c.run_urgent(move || tx.send("run".into()).expect("send")))
        };
        while c.queued().urgent == 0 {
            std::thread::yield_now();
        }
        assert_eq!(
            c.queued(),
            Queued {
                urgent: 1,
                waiting: 6,
                running: 1
            }
        );
        release.send(()).expect("release");
        let order: Vec<String> = (0..7).map(|_| rx.recv().expect("ran")).collect();
        assert_eq!(order, ["run", "a1", "b1", "c1", "a2", "b2", "a3"]);
        assert_eq!(urgent.join().expect("joined"), Some(()));
    }

    #[test]
    fn a_tenant_over_its_share_or_a_full_queue_is_refused_by_name() {
        let c = pool(2, 2);
        let release = occupy(&c, "a");
        queue(&c, "a", || {}, |_| {}).expect("a's second");
        match queue(&c, "a", || {}, |_| {}) {
            Err(Busy::Tenant {
                queued: 2,
                max: 2,
                retry_after,
            }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        queue(&c, "b", || {}, |_| {}).expect("b has its own share");
        let e = queue(&c, "c", || {}, |_| {}).expect_err("two are waiting");
        assert!(
            matches!(
                e,
                Busy::Full {
                    queued: 2,
                    max: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("the limit is 2"), "{e}");
        release.send(()).expect("release");
        // Once the queue drains, the shares are free again.
        for _ in 0..10_000 {
            if c.queued().running == 0 && c.queued().waiting == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        queue(&c, "a", || {}, |_| {}).expect("a again");
        queue(&c, "a", || {}, |_| {}).expect("a again");
    }

    #[test]
    fn a_panicking_compile_does_not_stop_the_pool() {
        let c = pool(2, 2);
        queue(&c, "a", || panic!("compiler bug"), |()| {}).expect("queued");
        let (tx, rx) = mpsc::channel();
        queue(&c, "a", || (), move |()| tx.send(()).expect("send")).expect("queued");
        rx.recv().expect("the next compile still runs");
    }

    #[test]
    fn a_place_never_used_is_given_back() {
        let c = pool(1, 1);
        let ticket = c.reserve("a").expect("a place");
        assert!(matches!(c.reserve("a"), Err(Busy::Tenant { .. })));
        assert!(matches!(c.reserve("b"), Err(Busy::Full { .. })));
        drop(ticket);
        assert_eq!(c.queued().waiting, 0);
        let (tx, rx) = mpsc::channel();
        queue(&c, "a", || 7, move |n| tx.send(n).expect("send")).expect("queued");
        assert_eq!(rx.recv().expect("ran"), 7);
    }
}
