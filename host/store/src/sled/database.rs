//! The sled database behind a lock, so the store can reopen it when the disk heals.
//!
//! sled latches the first I/O error its log hits (a full disk, a failing device) and returns
//! it from every later write — and from reads that need to restructure a node — until the
//! database is reopened: space freed later does not help. So the store's handles live here.
//! The first I/O error marks the database failed; from then on every operation is refused at
//! once with [`StoreError::Unavailable`], and at most every [`RETRY`] one looks for space (a
//! small probe file) and, when there is some, drops sled and opens it again. Reopening
//! recovers exactly what reached the disk, which includes every write the store acknowledged
//! (a durable write returns once its group's flush did, see `group`).
//!
//! Reads are refused too, although sled would mostly still answer them: the failed handle
//! shows the writes that hit the failure as if they had happened, and they vanish with the
//! reopen. A decision read there and written after the reopen would act on something that
//! never was — the job worker, seeing a run that only the failed handle has, would delete the
//! job whose run is then lost. Refusing reads on a failed handle keeps every write based only
//! on what is on the disk. A scan stops at its first error (sled's own iterator yields a
//! latched error forever).

use std::fs::File;
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use sled::IVec;

use super::group::Group;
use super::tx::Tx;
use crate::{Result, StoreError};

/// sled's page cache unless configured: sled's own default, 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;
/// The least time between two attempts to reopen a failed database.
pub(crate) const RETRY: Duration = Duration::from_secs(2);
/// Free space a reopen wants first: two of sled's log segments.
const PROBE_BYTES: usize = 1 << 20;
/// How long a reopen waits for the failed handle's last users to let go of sled's file lock.
const RELEASE_WAIT: Duration = Duration::from_millis(500);
/// How long opening waits for a previous handle in this process to let go of sled's file
/// lock (sled's flusher thread drops its share up to a flush interval after the handle, and
/// later on a loaded machine). Another process holding the lock is refused after it.
const OPEN_WAIT: Duration = Duration::from_secs(10);

#[cfg(test)]
thread_local! {
    /// Scans opened by this thread: each copies the node it starts in, unlike a point read.
    pub(crate) static SCANS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Point reads made by this thread.
    pub(crate) static GETS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Called after every reopen, before anyone can read the reopened database (clears caches
/// that may hold what the failed handle showed but never reached the disk).
pub(crate) type OnReopen = Box<dyn Fn() + Send + Sync>;

pub(crate) struct Database {
    dir: PathBuf,
    /// sled's page cache, in bytes (kept for the reopen).
    cache_bytes: u64,
    state: RwLock<State>,
    on_reopen: OnReopen,
    /// Every write goes through the group commit (`group`).
    pub(super) group: Group,
}

struct State {
    /// None after a reopen that failed.
    live: Option<Live>,
    /// Counts reopens; an error seen on an older handle says nothing about the current one.
    generation: u64,
    failure: Option<Failure>,
    /// A reopen is under way (outside the lock).
    healing: bool,
}

impl State {
    /// The handle, unless the database is failed.
    fn current(&self) -> Result<Live> {
        match (&self.live, &self.failure) {
            (Some(live), None) => Ok(live.clone()),
            (_, Some(f)) => Err(f.error()),
            (None, None) => Err(StoreError::Unavailable("the store is closed".into())),
        }
    }
}

struct Failure {
    message: String,
    since: Instant,
    last_attempt: Instant,
}

/// One open database: clones of sled's handles, all from the same open.
#[derive(Clone)]
pub(super) struct Live {
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    pub(super) generation: u64,
}

impl Database {
    pub fn open(dir: &Path, cache_bytes: u64, on_reopen: OnReopen) -> Result<Database> {
        let (db, tree) = open_waiting(dir, cache_bytes, OPEN_WAIT).map_err(StoreError::from)?;
        Ok(Database {
            dir: dir.to_path_buf(),
            cache_bytes,
            state: RwLock::new(State {
                live: Some(Live {
                    db,
                    tree,
                    generation: 0,
                }),
                generation: 0,
                failure: None,
                healing: false,
            }),
            on_reopen,
            group: Group::default(),
        })
    }

    pub fn get(&self, key: &str) -> Result<Option<IVec>> {
        #[cfg(test)]
        GETS.with(|n| n.set(n.get() + 1));
        // The common case, a healthy handle: read under the lock without cloning the handle
        // (point reads are most of a list's cost, and `records.find` makes one per record).
        let quick = {
            let s = self.read();
            match (&s.live, &s.failure) {
                (Some(live), None) => Some((live.tree.get(key), live.generation)),
                _ => None,
            }
        };
        let (got, generation) = match quick {
            Some(quick) => quick,
            None => {
                let live = self.live()?;
                (live.tree.get(key), live.generation)
            }
        };
        // Handles go before an error is reported: a reopen waits for them.
        got.map_err(|e| self.failed(generation, e))
    }

    /// Keys and values in `range`, in key order (reversible).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Scan<'_> {
        self.scan_with(|tree| tree.range(range))
    }

    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Scan<'_> {
        self.scan_with(|tree| tree.scan_prefix(prefix))
    }

    fn scan_with(&self, open: impl FnOnce(&sled::Tree) -> sled::Iter) -> Scan<'_> {
        #[cfg(test)]
        SCANS.with(|n| n.set(n.get() + 1));
        match self.live() {
            Ok(live) => Scan {
                db: self,
                iter: Some(open(&live.tree)),
                generation: live.generation,
                error: None,
            },
            Err(e) => Scan {
                db: self,
                iter: None,
                generation: 0,
                error: Some(e),
            },
        }
    }

    /// Runs `f` as one atomic write, then (when `durable`) flushes it to disk, both on the
    /// same handle: an acknowledged write is on the disk that the next reopen reads. It
    /// shares its batch and flush with the writes waiting at the same time (`group`).
    pub fn transaction<R>(&self, durable: bool, f: impl Fn(&Tx<'_>) -> Result<R>) -> Result<R> {
        self.write_all(&[()], |_| durable, |tx, _| f(tx))
            .pop()
            .unwrap_or_else(|| Err(StoreError::Backend("the write reported nothing".into())))
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<()> {
        let live = self.live()?;
        let done = live.db.flush();
        let generation = live.generation;
        drop(live);
        done.map(|_| ()).map_err(|e| self.failed(generation, e))
    }

    /// The handle to use now; while the database is failed, a reopen when [`RETRY`] has
    /// passed since the last attempt, else the failure.
    pub(super) fn live(&self) -> Result<Live> {
        {
            let s = self.read();
            match &s.failure {
                None => return s.current(),
                Some(f) if s.healing || f.last_attempt.elapsed() < RETRY => return s.current(),
                Some(_) => {}
            }
        }
        self.heal()
    }

    /// Reopens the failed database if the disk has room again. One caller at a time, at most
    /// every [`RETRY`]; the others meanwhile get the failure.
    fn heal(&self) -> Result<Live> {
        {
            let mut s = self.write();
            let busy = s.healing;
            match s.failure.as_mut() {
                Some(f) if !busy && f.last_attempt.elapsed() >= RETRY => {
                    f.last_attempt = Instant::now();
                }
                _ => return s.current(),
            }
            s.healing = true;
        }
        let _healing = Healing(self);
        if let Err(e) = probe(&self.dir) {
            let mut s = self.write();
            if let Some(f) = s.failure.as_mut() {
                f.message = describe(&e);
            }
            return s.current();
        }
        // The old handle's last users let go of it (and of sled's file lock) soon: nobody
        // gets it any more.
        let old = self.write().live.take();
        drop(old);
        let opened = open_waiting(&self.dir, self.cache_bytes, RELEASE_WAIT);
        let mut s = self.write();
        match opened {
            Ok((db, tree)) => {
                s.generation += 1;
                let live = Live {
                    db,
                    tree,
                    generation: s.generation,
                };
                s.live = Some(live.clone());
                if let Some(f) = s.failure.take() {
                    tracing::info!(
                        failed_for_ms = f.since.elapsed().as_millis() as u64,
                        "storage reopened after a failure; serving again"
                    );
                }
                // Before anyone can read through the new handle: the lock is still held.
                (self.on_reopen)();
                Ok(live)
            }
            Err(e) => {
                tracing::debug!(error = %e, "storage still cannot be reopened");
                if let Some(f) = s.failure.as_mut() {
                    f.message = match &e {
                        sled::Error::Io(io) => describe(io),
                        other => format!("the store cannot be reopened: {other}"),
                    };
                }
                s.current()
            }
        }
    }

    /// `e` as the store reports it; an I/O error marks the database failed, unless it came
    /// from a handle that was replaced already (`generation`).
    pub(super) fn failed(&self, generation: u64, e: sled::Error) -> StoreError {
        let sled::Error::Io(io) = &e else {
            return StoreError::Engine(Box::new(e));
        };
        let message = describe(io);
        let mut s = self.write();
        if s.generation == generation && s.failure.is_none() {
            tracing::error!(
                error = %message,
                "storage failed; refusing reads and writes until it can be reopened"
            );
            let now = Instant::now();
            s.failure = Some(Failure {
                message: message.clone(),
                since: now,
                last_attempt: now,
            });
        }
        StoreError::Unavailable(message)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a reopen attempt however it ends.
struct Healing<'a>(&'a Database);

impl Drop for Healing<'_> {
    fn drop(&mut self) {
        self.0.write().healing = false;
    }
}

impl Failure {
    fn error(&self) -> StoreError {
        StoreError::Unavailable(self.message.clone())
    }
}

/// A scan that notes an I/O error and then ends: sled's own iterator yields the latched
/// error again on every call, forever.
pub(crate) struct Scan<'a> {
    db: &'a Database,
    iter: Option<sled::Iter>,
    generation: u64,
    error: Option<StoreError>,
}

impl Scan<'_> {
    fn step(&mut self, item: Option<sled::Result<(IVec, IVec)>>) -> Option<Result<(IVec, IVec)>> {
        if let Some(e) = self.error.take() {
            self.iter = None;
            return Some(Err(e));
        }
        match item? {
            Ok(kv) => Some(Ok(kv)),
            Err(e) => {
                self.iter = None;
                Some(Err(self.db.failed(self.generation, e)))
            }
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.iter.as_mut().and_then(|i| i.next());
        self.step(item)
    }
}

impl DoubleEndedIterator for Scan<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.iter.as_mut().and_then(|i| i.next_back());
        self.step(item)
    }
}

/// Whether `e` means there is no room: a full disk, a quota, a file-size limit.
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// What a person should read about an I/O error of the store.
pub(crate) fn describe(e: &io::Error) -> String {
    if is_full(e) {
        format!(
            "storage unavailable: the disk is full ({e}); it resumes by itself once space is freed"
        )
    } else {
        format!("storage unavailable: I/O error ({e}); it resumes once the store can be reopened")
    }
}

fn open_sled(dir: &Path, cache_bytes: u64) -> sled::Result<(sled::Db, sled::Tree)> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(200))
        .open()?;
    let tree = db.open_tree("data")?;
    Ok((db, tree))
}

/// Opens `dir`, waiting up to `wait` for an old handle's last users to release sled's file
/// lock (sled reports that as an `Other` I/O error naming the lock).
fn open_waiting(
    dir: &Path,
    cache_bytes: u64,
    wait: Duration,
) -> sled::Result<(sled::Db, sled::Tree)> {
    let deadline = Instant::now() + wait;
    loop {
        match open_sled(dir, cache_bytes) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Whether the disk takes [`PROBE_BYTES`] more (written, synced and removed again).
fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join("space-probe");
    let written = (|| {
        let mut f = File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..PROBE_BYTES / chunk.len() {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}
