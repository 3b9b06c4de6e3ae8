//! [`PgBackend`]: the pool, the transaction runner every write goes through, and the
//! [`Backend`] impl that hands each operation to its module.

use std::time::Duration;

use postgres::{Config, IsolationLevel, Transaction};
use stagecraft_store::{
    Backend, Changeset, Committed, Durability, LeaseRequest, Leased, List, Page, PageRequest,
    PruneRequest, Pruned, Read, Recovered, Result, Row, StoreError,
};

use crate::blocking::off_runtime;
use crate::connect::{self, Conn, PgOptions, Pool, PoolError};
use crate::schema::{self, SchemaError};
use crate::sql::{db, fail_into, retryable, Fail, TxResult};

/// How often a transaction that lost a serialization race runs again before the commit
/// fails (`Unavailable`): each retry sees the winner's commit, so a rule it broke is
/// reported by the rule (a version conflict) long before this.
const RETRIES: u32 = 64;

/// The PostgreSQL backend: a bounded pool to one database that any number of hosts share.
pub struct PgBackend {
    /// Always Some until dropped (see `Drop`).
    pool: Option<Pool>,
    options: PgOptions,
    /// The LISTEN connection that moves the epoch (see [`crate::listen`]).
    listener: std::sync::Arc<crate::listen::Listener>,
    /// Changesets with runs this host committed: every [`crate::rollup::COMPACT_EVERY`]th
    /// compacts its tenant's rollup deltas.
    run_commits: std::sync::atomic::AtomicU64,
}

/// Closing a connection runs the client's own runtime too: the pool goes off the async
/// machinery when the backend does.
impl Drop for PgBackend {
    fn drop(&mut self) {
        self.listener.stop();
        if let Some(pool) = self.pool.take() {
            off_runtime(move || drop(pool));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl PgBackend {
    /// Connects to the database at `url` and migrates its schema.
    pub fn connect(url: &str, options: PgOptions) -> Result<PgBackend, OpenError> {
        let config = connect::config(Some(url))?
            .ok_or_else(|| PoolError::BadAddress("no address given".into()))?;
        PgBackend::open(config, options)
    }

    /// Connects to the database `config` names and migrates its schema.
    pub fn open(config: Config, options: PgOptions) -> Result<PgBackend, OpenError> {
        off_runtime(|| PgBackend::open_here(config, options))
    }

    fn open_here(config: Config, options: PgOptions) -> Result<PgBackend, OpenError> {
        let pool = connect::pool(config.clone(), &options)?;
        let backend = PgBackend {
            pool: Some(pool),
            options,
            listener: crate::listen::Listener::start(config),
            run_commits: Default::default(),
        };
        let mut conn = backend.conn().map_err(|e| PoolError::Exhausted {
            size: options.pool_size,
            wait: options.pool_wait,
            reason: e.to_string(),
        })?;
        schema::migrate(&mut conn)?;
        Ok(backend)
    }

    /// A connection from the pool, waiting at most the pool's wait.
    pub(crate) fn conn(&self) -> Result<Conn> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the PostgreSQL pool was closed".into()))?;
        pool.get().map_err(|e| {
            StoreError::Unavailable(
                PoolError::Exhausted {
                    size: self.options.pool_size,
                    wait: self.options.pool_wait,
                    reason: e.to_string(),
                }
                .to_string(),
            )
        })
    }

    /// Runs `f` as one SERIALIZABLE transaction, again when PostgreSQL reports a
    /// serialization failure (the rules read inside it then hold however many hosts write
    /// at once). A lazy commit does not wait for the WAL flush (see [`Durability::Lazy`]).
    pub(crate) fn transact<R>(
        &self,
        durability: Durability,
        mut f: impl FnMut(&mut Transaction<'_>) -> TxResult<R>,
    ) -> Result<R> {
        let mut conn = self.conn()?;
        for attempt in 0..RETRIES {
            let mut tx = conn
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()
                .map_err(db)?;
            if durability == Durability::Lazy {
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .map_err(db)?;
            }
            let err = match f(&mut tx) {
                Ok(r) => match tx.commit() {
                    Ok(()) => return Ok(r),
                    Err(e) => e,
                },
                Err(Fail::Db(e)) => e,
                Err(e @ Fail::Store(_)) => return Err(fail_into(e)),
            };
            if !retryable(&err) {
                return Err(db(err));
            }
            // Let the winner finish before trying again; spread out racing retries.
            std::thread::sleep(Duration::from_micros(
                200 * u64::from(attempt.min(20)) + u64::from(rand_jitter()),
            ));
        }
        Err(StoreError::Unavailable(format!(
            "the commit lost {RETRIES} serialization races in a row; try again"
        )))
    }

    /// Runs `f` in one READ COMMITTED transaction (leasing: `SKIP LOCKED` does the
    /// exclusion there).
    pub(crate) fn read_committed<R>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> TxResult<R>,
    ) -> Result<R> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db)?;
        let r = f(&mut tx).map_err(fail_into)?;
        tx.commit().map_err(db)?;
        Ok(r)
    }
}

/// A few hundred microseconds of jitter, from the clock (no need for a random source).
fn rand_jitter() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 500)
        .unwrap_or(0)
}

impl Backend for PgBackend {
    fn commit(&self, batch: &[&Changeset]) -> Vec<Result<Committed>> {
        off_runtime(|| {
            batch
                .iter()
                .map(|cs| {
                    let done = self.transact(cs.durability, |tx| crate::commit::commit(tx, cs));
                    if done.is_ok() && !cs.runs.is_empty() {
                        self.maybe_compact(&cs.tenant);
                    }
                    done
                })
                .collect()
        })
    }

    fn read(&self, r: &Read) -> Result<Option<Row>> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            crate::read::read(&mut conn, r).map_err(fail_into)
        })
    }

    fn list(&self, l: &List, page: &PageRequest) -> Result<Page<Row>> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            crate::list::list(&mut conn, l, page).map_err(fail_into)
        })
    }

    fn lease(&self, req: &LeaseRequest) -> Result<Vec<Leased>> {
        off_runtime(|| self.read_committed(|tx| crate::lease::lease(tx, req)))
    }

    /// Leases here expire by time (a `sending` message's too), so a host that died leaves
    /// nothing another host will not take over once the lease runs out.
    fn recover(&self) -> Result<Recovered> {
        Ok(Recovered::default())
    }

    fn prune(&self, req: &PruneRequest) -> Result<Pruned> {
        off_runtime(|| crate::retention::prune(self, req))
    }

    /// Every durable commit is on disk when it returns; a lazy one is within PostgreSQL's
    /// `wal_writer_delay`. Nothing to do.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Other hosts write the same database, so what this host's facade cached (bindings,
    /// pipelines) may be stale: the epoch moves when any host commits a change to them
    /// (LISTEN/NOTIFY: within [`crate::listen::NOTIFY_BOUND`]), and every second while the
    /// listening connection is down. See [`crate::listen`].
    fn epoch(&self) -> u64 {
        self.listener.epoch()
    }
}

impl PgBackend {
    /// After every [`crate::rollup::COMPACT_EVERY`]th commit with runs, folds the tenant's
    /// hot rollup deltas (outside the commit, which has its answer already; a failure
    /// leaves them for the next pass).
    fn maybe_compact(&self, tenant: &str) {
        use std::sync::atomic::Ordering;
        let n = self.run_commits.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(crate::rollup::COMPACT_EVERY) {
            return;
        }
        let folded = self.conn().and_then(|mut c| {
            crate::rollup::compact_tenant(&mut c, tenant, crate::rollup::COMPACT_AT)
                .map_err(fail_into)
        });
        if let Err(e) = folded {
            tracing::warn!(error = %e, "compacting rollups failed");
        }
    }

    /// Whether this host is listening for other hosts' changes (else its caches follow the
    /// one-second fallback tick).
    pub fn listening(&self) -> bool {
        self.listener.is_live()
    }
}
