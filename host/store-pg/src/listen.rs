//! Cross-host cache invalidation. Every host caches a tenant's bindings and pipelines
//! (the store facade forgets them when the backend's epoch moves). A write to `bindings`,
//! `pipelines` or `api_keys` through any host raises a notification (triggers of migration
//! 3, so every writer is covered, `stagecraft migrate` too), delivered when its transaction
//! commits; each host keeps one connection that LISTENs and moves the epoch when one
//! arrives. A change through one host is thereby forgotten on every host a few
//! milliseconds after it commits: within [`NOTIFY_BOUND`] (what the tests hold it to).
//!
//! The fallback when a notification may have been missed: while the listening connection
//! is down (lost, or not yet made) the epoch moves every second, as it did before there
//! were notifications, and once it is back the epoch moves again (what was missed while it
//! was away is forgotten). With it up, a slow tick ([`SAFETY_TICK`]) still moves the epoch,
//! in case the connection died silently.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Config, NoTls};

/// The channel the triggers notify.
pub const CHANNEL: &str = "stagecraft_cache";
/// A change through one host is forgotten on every other host within this (stated in
/// ARCHITECTURE.md and tested with real processes).
pub const NOTIFY_BOUND: Duration = Duration::from_secs(1);
/// With the listener up, the epoch still moves this often.
pub const SAFETY_TICK: Duration = Duration::from_secs(30);
/// How often the listener checks its connection (and its stop flag) between notifications.
const CHECK: Duration = Duration::from_secs(1);

/// What the listening thread shares with the backend.
#[derive(Default)]
pub struct Listener {
    /// Moves with every notification, and whenever the connection comes back.
    generation: AtomicU64,
    /// Whether the LISTEN connection is up.
    live: AtomicBool,
    stop: AtomicBool,
}

impl Listener {
    /// Starts the listening thread on its own connection to `config`.
    pub fn start(config: Config) -> Arc<Listener> {
        let l = Arc::new(Listener::default());
        let shared = l.clone();
        let spawned = std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || shared.run(&config));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the cache-invalidation listener; caches fall back to the one-second tick");
        }
        l
    }

    /// The epoch the store's caches follow (see the module doc).
    pub fn epoch(&self) -> u64 {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tick = if self.live.load(Ordering::Acquire) {
            secs / SAFETY_TICK.as_secs()
        } else {
            // Distinct from every tick value the live branch gives (one bit apart).
            secs | 1 << 40
        };
        self.generation.load(Ordering::Acquire) << 42 ^ tick
    }

    /// Whether the listening connection is up (for tests and the log).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Connects, listens, and moves the generation on every notification; reconnects (with
    /// back-off up to 10 s) when the connection goes.
    fn run(&self, config: &Config) {
        let mut backoff = Duration::from_millis(100);
        let mut logged = false;
        while !self.stop.load(Ordering::Acquire) {
            match self.listen(config) {
                Ok(()) => return,
                Err(e) => {
                    if self.live.swap(false, Ordering::AcqRel) || !logged {
                        tracing::warn!(error = %e, "the cache-invalidation listener lost its connection; caches fall back to the one-second tick until it is back");
                        logged = true;
                    }
                }
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !self.stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// One connection's life: Ok when told to stop, Err when the connection failed.
    fn listen(&self, config: &Config) -> Result<(), postgres::Error> {
        let mut client = config.connect(NoTls)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        // Whatever changed while no connection listened is forgotten now.
        self.bump();
        self.live.store(true, Ordering::Release);
        let mut checked = Instant::now();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let got = {
                let mut n = client.notifications();
                let mut it = n.timeout_iter(CHECK);
                it.next()?.is_some()
            };
            if got {
                self.bump();
            }
            if checked.elapsed() >= CHECK {
                // A dead socket shows only when something is sent.
                client.simple_query("SELECT 1")?;
                checked = Instant::now();
            }
        }
    }
}
