//! [`Store`], the typed facade: the handle every part of the host shares, written once over
//! `Arc<dyn Backend>`. Writes go through [`Store::commit`]; the typed reads are in `reads`;
//! taking due work is leasing, with this store's holder id.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use stagecraft_model::{Binding, OutboxMessage, Pipeline};

use crate::backend::Backend;
use crate::cache::Cache;
use crate::change::{Changeset, Committed, Op};
use crate::query::{DueMessage, DueTimer, LeaseRequest, Leased, PruneRequest, Pruned, Queue};
use crate::query::{QueuedJob, Read, Row};
use crate::{Result, StoreError};

/// How long a job stays leased to this host unless it finishes first. A job runs within its
/// deadline once it has a run slot, but may wait for one; the host's own leases come back
/// to it, so the bound only matters to other holders.
pub const JOB_LEASE: Duration = Duration::from_secs(600);
/// How long a due timer stays leased while it is being fired.
pub const TIMER_LEASE: Duration = Duration::from_secs(60);
/// How long a claimed message stays leased: longer than any attempt (at most 60 s, plus
/// waiting for its permits).
pub const MESSAGE_LEASE: Duration = Duration::from_secs(600);

/// How long each kind of due work stays leased to the host that took it. With many hosts on
/// one database this is also how long a host's work waits after the host died before
/// another host takes it over (`serve --lease-seconds`). A lease shorter than the work it
/// covers lets another host start the same work meanwhile: a run still commits once (its
/// id is its (event, binding) id), but a message may then be delivered twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    pub job: Duration,
    pub timer: Duration,
    pub message: Duration,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            job: JOB_LEASE,
            timer: TIMER_LEASE,
            message: MESSAGE_LEASE,
        }
    }
}

impl Leases {
    /// The same bound for every kind of work.
    pub fn all(d: Duration) -> Leases {
        Leases {
            job: d,
            timer: d,
            message: d,
        }
    }
}

/// The handle every part of the host shares. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Arc<dyn Backend>,
    /// Who this host is when it takes due work.
    holder: Arc<str>,
    leases: Leases,
    pub(crate) bindings: Arc<Cache<Vec<Binding>>>,
    pub(crate) pipelines: Arc<Cache<Pipeline>>,
}

impl Store {
    /// Opens (or creates) the sled data dir `dir`: the embedded default.
    pub fn open(dir: &Path) -> Result<Store> {
        Ok(Store::new(Arc::new(crate::sled::SledBackend::open(dir)?)))
    }

    /// [`Store::open`] with sled's page cache at `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Store> {
        let backend = crate::sled::SledBackend::open_with_cache(dir, cache_bytes)?;
        Ok(Store::new(Arc::new(backend)))
    }

    /// A store over any backend.
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store {
            backend,
            holder: stagecraft_model::id::new_id("host").into(),
            leases: Leases::default(),
            bindings: Arc::default(),
            pipelines: Arc::default(),
        }
    }

    /// This store with other lease bounds (see [`Leases`]).
    pub fn with_leases(mut self, leases: Leases) -> Store {
        self.leases = leases;
        self
    }

    /// Writes everything to disk; called on shutdown.
    pub fn flush(&self) -> Result<()> {
        self.backend.flush()
    }

    /// Commits a changeset all or nothing (see [`Changeset`] and [`Op`]) and returns what
    /// its ops produced.
    pub fn commit(&self, cs: &Changeset) -> Result<Committed> {
        let span = tracing::debug_span!(
            "commit",
            tenant = %cs.tenant,
            events = cs.events.len(),
            runs = cs.runs.len(),
            messages = cs.messages.len(),
            ops = cs.ops.len()
        );
        let _entered = span.enter();
        let done = self
            .backend
            .commit(&[cs])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Backend("the commit reported nothing".into())));
        // Whether it committed or not, what it would have written is not cached any more.
        self.invalidate(cs);
        let committed = done?;
        tracing::debug!("committed");
        crate::metrics::runs_committed(&cs.runs);
        Ok(committed)
    }

    fn invalidate(&self, cs: &Changeset) {
        for op in &cs.ops {
            match op {
                Op::PutBinding { .. } | Op::DeleteBinding { .. } => {
                    self.bindings.invalidate(&cs.tenant)
                }
                Op::PutPipeline { pipeline, .. } => self
                    .pipelines
                    .invalidate(&pipeline_key(&cs.tenant, &pipeline.id)),
                Op::DeletePipeline { id } => {
                    self.pipelines.invalidate(&pipeline_key(&cs.tenant, id))
                }
                Op::CreateTenant { pipelines, .. } => {
                    for p in pipelines {
                        self.pipelines.invalidate(&pipeline_key(&cs.tenant, &p.id))
                    }
                }
                _ => {}
            }
        }
    }

    /// The tenant's webhook signing secret, created on first use. Read on every webhook
    /// attempt, so only the first call pays for a (durable) commit.
    pub fn webhook_secret(&self, tenant: &str) -> Result<String> {
        let read = Read::WebhookSecret {
            tenant: tenant.to_string(),
        };
        if let Some(Row::Secret(s)) = self.backend.read(&read)? {
            return Ok(s);
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("whsec_{}", hex::encode(bytes));
        self.commit(&Changeset::op(tenant, Op::InitWebhookSecret { secret }))?
            .secret()
    }

    fn lease(
        &self,
        queue: Queue,
        now: DateTime<Utc>,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Leased>> {
        self.backend.lease(&LeaseRequest {
            queue,
            holder: self.holder.to_string(),
            now,
            ttl,
            limit,
        })
    }

    /// Takes the oldest queued jobs of `tenant` for this host, at most `limit` (its own
    /// jobs in flight among them: they are leased to it already), each as stored: a job that
    /// cannot be decoded comes back as the reason, so the worker can record it and move on.
    /// Finished with `Op::FinishJob`.
    pub fn lease_jobs(&self, tenant: &str, limit: usize) -> Result<Vec<QueuedJob>> {
        let queue = Queue::Jobs {
            tenant: tenant.to_string(),
        };
        Ok(self
            .lease(queue, Utc::now(), self.leases.job, limit)?
            .into_iter()
            .filter_map(|l| match l {
                Leased::Job(j) => Some(j),
                _ => None,
            })
            .collect())
    }

    /// Takes the timers due at `now` for this host, oldest first, at most `limit`. Finished
    /// with `Op::FireTimer`.
    pub fn lease_timers(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<DueTimer>> {
        Ok(self
            .lease(Queue::Timers, now, self.leases.timer, limit)?
            .into_iter()
            .filter_map(|l| match l {
                Leased::Timer(t) => Some(t),
                _ => None,
            })
            .collect())
    }

    /// Claims a due message for one attempt: it becomes `sending`. None when it is no longer
    /// queued (a stale due entry, which goes). Finished with `Op::FinishMessage` (or
    /// `Op::DeferMessage`).
    pub fn claim_message(&self, due: &DueMessage) -> Result<Option<OutboxMessage>> {
        let queue = Queue::Message(due.clone());
        Ok(self
            .lease(queue, Utc::now(), self.leases.message, 1)?
            .into_iter()
            .find_map(|l| match l {
                Leased::Message(m) => Some(m),
                _ => None,
            }))
    }

    /// When this host starts, before its workers: messages its previous run left
    /// mid-attempt go back to the queue (each is delivered at most once more, with the same
    /// id and idempotency key). Returns how many.
    pub fn requeue_interrupted(&self) -> Result<u64> {
        Ok(self.backend.recover()?.messages)
    }

    /// Prunes run history, journal snapshots and delivered messages older than `cutoff`,
    /// `batch` values per transaction. What stays: the journal's events themselves (without
    /// their snapshot), hourly rollups, idempotency keys, and everything not yet delivered.
    pub fn prune(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<Pruned> {
        self.backend.prune(&PruneRequest {
            cutoff,
            batch: batch.max(1),
        })
    }
}

pub(crate) fn pipeline_key(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}
