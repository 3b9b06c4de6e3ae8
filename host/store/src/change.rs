//! Every write the host makes, as data: a [`Changeset`] of record writes, the journal events
//! they cause and what automation adds (run records, outbox messages, timers, jobs), plus
//! [`Op`]s for everything else that changes stored state (pipelines, bindings, module
//! versions, tenants, keys, channel settings, the delivery and scheduling bookkeeping). A
//! backend commits a changeset all or nothing; what its ops produced comes back as
//! [`Committed`].

use stagecraft_model::{
    Actor, ApiKey, Binding, ChannelConfig, Comment, Event, Job, ModuleVersion, Notification,
    OutboxMessage, Pipeline, Record, RunRecord, Task, Tenant, Timer,
};

use crate::query::{DueMessage, DueTimer};
use crate::quota::ModuleQuota;
use crate::{Result, StoreError};

#[derive(Debug, Clone)]
pub enum RecordWrite {
    /// Create (`expected` None: the id must be free) or replace the record at `expected`
    /// version.
    Put {
        record: Box<Record>,
        expected: Option<u64>,
    },
    Delete {
        id: String,
        expected: u64,
    },
}

/// Whether a commit waits for the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the commit returns: whatever the caller acknowledges survives a crash.
    #[default]
    Durable,
    /// Atomic, and on disk soon (sled: within its 200 ms flush interval). Only for
    /// bookkeeping whose loss in a crash the restart repairs by itself: a finished job that
    /// reappears finds its run committed and is skipped; a lost deferral leaves a message
    /// queued, as a restart would anyway. Saves a disk flush per background job and message.
    Lazy,
}

/// How many follow-ups may be pending (the host's `AutomationConfig` sets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpCaps {
    /// For one binding on one record.
    pub per_record: i64,
    /// In one tenant.
    pub per_tenant: i64,
}

impl FollowUpCaps {
    /// What is exceeded when a binding would have `pair` follow-ups pending on a record and
    /// the tenant `all`; None when both are within the caps.
    pub fn exceeded(&self, binding: &str, record: &str, pair: i64, all: i64) -> Option<String> {
        if pair > self.per_record {
            return Some(format!(
                "binding {binding} would have {pair} follow-ups pending on record {record}; the limit is {}",
                self.per_record
            ));
        }
        if all > self.per_tenant {
            return Some(format!(
                "the tenant would have {all} follow-ups pending; the limit is {}",
                self.per_tenant
            ));
        }
        None
    }
}

/// How many tasks and comments a tenant may keep (the host's config sets them); past one,
/// the op fails with [`StoreError::Limit`] naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCaps {
    /// Tasks on one record, open or done.
    pub tasks_per_record: u64,
    /// Open tasks in one tenant.
    pub open_tasks_per_tenant: u64,
    /// Comments on one record.
    pub comments_per_record: u64,
}

impl Default for TaskCaps {
    fn default() -> Self {
        TaskCaps {
            tasks_per_record: 1_000,
            open_tasks_per_tenant: 100_000,
            comments_per_record: 10_000,
        }
    }
}

impl TaskCaps {
    /// The refusal when a record would hold `n` tasks.
    pub fn tasks_on_record(&self, record: &str, n: u64) -> Option<StoreError> {
        (n > self.tasks_per_record).then(|| {
            StoreError::Limit(format!(
                "record {record:?} would have {n} tasks; the limit is {} per record",
                self.tasks_per_record
            ))
        })
    }

    /// The refusal when the tenant would have `n` open tasks.
    pub fn open_tasks(&self, n: u64) -> Option<StoreError> {
        (n > self.open_tasks_per_tenant).then(|| {
            StoreError::Limit(format!(
                "the tenant would have {n} open tasks; the limit is {}",
                self.open_tasks_per_tenant
            ))
        })
    }

    /// The refusal when a record would hold `n` comments.
    pub fn comments_on_record(&self, record: &str, n: u64) -> Option<StoreError> {
        (n > self.comments_per_record).then(|| {
            StoreError::Limit(format!(
                "record {record:?} would have {n} comments; the limit is {} per record",
                self.comments_per_record
            ))
        })
    }
}

/// A write that is not a record change, in the changeset's tenant. Each is checked and
/// applied by the backend inside the changeset's transaction, so its rule holds however many
/// writers race (version checks, stage occupancy, use counts).
// Built once per commit, never stored in bulk: a fire's event is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Op {
    /// A new tenant (the changeset's tenant is its id) with its first key and starting
    /// pipelines. `AlreadyExists` when the tenant does.
    CreateTenant {
        tenant: Tenant,
        key: ApiKey,
        pipelines: Vec<Pipeline>,
    },
    /// Stores a key (its `hash` is its address). `NotFound` when its tenant does not exist.
    PutKey {
        key: ApiKey,
    },
    /// Revokes the tenant's key with this public id: [`Applied::Revoked`], false when the
    /// tenant has no such key.
    RevokeKey {
        id: String,
    },
    /// Creates (`expected` None) or replaces a pipeline at version `expected`. Refuses to
    /// drop a stage that records still sit in.
    PutPipeline {
        pipeline: Pipeline,
        expected: Option<u64>,
    },
    /// Deletes a pipeline no record sits in.
    DeletePipeline {
        id: String,
    },
    /// Creates (`expected` None) or replaces a binding at revision `expected`; its module
    /// version and pipeline must exist. Keeps the versions' use counts.
    PutBinding {
        binding: Binding,
        expected: Option<u64>,
    },
    DeleteBinding {
        id: String,
    },
    /// Records the next version of `version.module` (creating the module on first upload)
    /// if the tenant's modules have room for it under `quota` (`OverQuota` otherwise, naming
    /// the limit): the backend numbers it (`version.version` is ignored) and returns it as
    /// [`Applied::ModuleVersion`]. The tenant's usage moves with it.
    AddModuleVersion {
        version: ModuleVersion,
        quota: ModuleQuota,
    },
    /// Deletes a version no binding uses, giving its room back to the tenant:
    /// [`Applied::FilesFreed`] carries its content hash when no stored version (of any
    /// tenant) has those bytes any more, so its files may go.
    DeleteModuleVersion {
        module: String,
        version: u32,
    },
    /// Records the compiled artifact's size of a version stored before sizes were kept
    /// (`artifact_size` 0), moving the tenant's usage by it. Nothing happens when the version
    /// is gone or has a size already.
    SizeModuleVersion {
        module: String,
        version: u32,
        artifact_size: u64,
    },
    /// Replaces the tenant's channel settings; write-only secrets left out keep their value
    /// when the destination did not change. The settings kept: [`Applied::Channels`].
    PutChannels {
        config: ChannelConfig,
    },
    /// Stores the tenant's webhook signing secret unless it has one: [`Applied::Secret`] is
    /// the one it has now.
    InitWebhookSecret {
        secret: String,
    },
    PutNotification {
        notification: Notification,
    },
    /// Leaves a due message queued but due again at `at` (its channel has no setting yet, or
    /// its destination is busy).
    DeferMessage {
        due: DueMessage,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Stores a message after a delivery attempt (which ends its lease): queued again
    /// (due at `next_attempt_at`), sent or dead. Counts sent and dead ones in the rollups of
    /// the run that queued it.
    FinishMessage {
        message: OutboxMessage,
    },
    /// Puts a dead letter back in the queue: [`Applied::Message`]. `NotFound`, or `Refused`
    /// when it is not dead.
    RetryMessage {
        id: String,
    },
    /// Turns a due timer into what it does: the job (and, for follow-ups, the journal event
    /// it runs on). [`Applied::Fired`] is false, and nothing is written, when the timer was
    /// cancelled or fired meanwhile.
    FireTimer {
        timer: DueTimer,
        event: Option<Event>,
        job: Option<Job>,
    },
    /// A job whose run committed (or whose failure was recorded) leaves the queue.
    FinishJob {
        id: String,
    },
    /// A new task (its `version` 1). Its record must exist (records of the same changeset
    /// count): `NotFound` otherwise; `AlreadyExists` when the id is taken; [`StoreError::Limit`]
    /// past `caps`. An open task with a due time gets its overdue timer
    /// ([`Task::overdue_timer`]).
    CreateTask {
        task: Task,
        caps: TaskCaps,
    },
    /// Replaces a task at version `expected` (`VersionConflict` otherwise, `NotFound` when
    /// there is none); its record cannot change. Its overdue timer follows its due time and
    /// status: cancelled, or moved to the new due time.
    UpdateTask {
        task: Task,
        expected: u64,
    },
    /// Marks an open task done by `by` at `at` (at version `expected`, when given), cancels
    /// its overdue timer and returns it as [`Applied::Task`]. `NotFound`, `VersionConflict`,
    /// or `Refused` when it is done already.
    CompleteTask {
        id: String,
        by: Actor,
        at: chrono::DateTime<chrono::Utc>,
        expected: Option<u64>,
    },
    /// A comment on its record's timeline. The record must exist (`NotFound`); at most
    /// `caps.comments_per_record` per record ([`StoreError::Limit`]).
    AddComment {
        comment: Comment,
        caps: TaskCaps,
    },
    /// Keeps a module's component under its content hash for every host, in the same
    /// transaction as the `AddModuleVersion` beside it (a version is never visible without
    /// its bytes). PostgreSQL stores it once per tenant; sled does nothing (its one host
    /// keeps the component in its data dir).
    KeepModuleBytes {
        hash: String,
        bytes: std::sync::Arc<[u8]>,
    },
    /// Stores a module and its versions under their own numbers, as another store had them
    /// (`stagecraft migrate`); no quota applies. `AlreadyExists` when the module is there.
    /// PostgreSQL only: sled refuses it (a data dir is never a copy's target).
    ImportModule {
        module: stagecraft_model::Module,
        versions: Vec<ModuleVersion>,
    },
}

impl Op {
    /// Bookkeeping a restart repairs (see [`Durability::Lazy`]).
    fn lazy(&self) -> bool {
        matches!(self, Op::FinishJob { .. } | Op::DeferMessage { .. })
    }
}

/// What one op produced, in the order of the changeset's ops.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Done,
    Revoked(bool),
    ModuleVersion(ModuleVersion),
    Channels(ChannelConfig),
    Secret(String),
    Message(OutboxMessage),
    Fired(bool),
    /// The content hash whose files no stored version needs any more, if any.
    FilesFreed(Option<String>),
    /// The task as [`Op::CompleteTask`] left it.
    Task(Box<Task>),
}

/// What a committed changeset's ops produced, one per op.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    pub ops: Vec<Applied>,
}

impl Committed {
    fn find<T>(&self, what: &str, f: impl Fn(&Applied) -> Option<T>) -> Result<T> {
        self.ops
            .iter()
            .find_map(f)
            .ok_or_else(|| StoreError::Backend(format!("the commit did not report {what}")))
    }

    /// [`Applied::Revoked`] of the changeset's `RevokeKey`.
    pub fn revoked(&self) -> Result<bool> {
        self.find("a revoked key", |a| match a {
            Applied::Revoked(r) => Some(*r),
            _ => None,
        })
    }

    /// [`Applied::ModuleVersion`] of its `AddModuleVersion`.
    pub fn module_version(&self) -> Result<ModuleVersion> {
        self.find("a module version", |a| match a {
            Applied::ModuleVersion(v) => Some(v.clone()),
            _ => None,
        })
    }

    /// [`Applied::Channels`] of its `PutChannels`.
    pub fn channels(&self) -> Result<ChannelConfig> {
        self.find("channel settings", |a| match a {
            Applied::Channels(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// [`Applied::Secret`] of its `InitWebhookSecret`.
    pub fn secret(&self) -> Result<String> {
        self.find("a webhook secret", |a| match a {
            Applied::Secret(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// [`Applied::Message`] of its `RetryMessage`.
    pub fn message(&self) -> Result<OutboxMessage> {
        self.find("a message", |a| match a {
            Applied::Message(m) => Some(m.clone()),
            _ => None,
        })
    }

    /// [`Applied::FilesFreed`] of its `DeleteModuleVersion`.
    pub fn files_freed(&self) -> Result<Option<String>> {
        self.find("freed module files", |a| match a {
            Applied::FilesFreed(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// [`Applied::Task`] of its `CompleteTask`.
    pub fn task(&self) -> Result<Task> {
        self.find("a completed task", |a| match a {
            Applied::Task(t) => Some(t.as_ref().clone()),
            _ => None,
        })
    }

    /// [`Applied::Fired`] of its `FireTimer`.
    pub fn fired(&self) -> Result<bool> {
        self.find("a fired timer", |a| match a {
            Applied::Fired(f) => Some(*f),
            _ => None,
        })
    }
}

/// Everything one change (a request and its inline automation, a background run, or one of
/// the [`Op`]s) writes in one tenant, applied all or nothing.
#[derive(Debug, Clone, Default)]
pub struct Changeset {
    pub tenant: String,
    pub records: Vec<RecordWrite>,
    pub events: Vec<Event>,
    /// A run id is committed once; a second commit of it fails with `AlreadyDone`.
    pub runs: Vec<RunRecord>,
    /// Messages whose idempotency key the tenant already used are dropped.
    pub messages: Vec<OutboxMessage>,
    pub timers: Vec<Timer>,
    pub jobs: Vec<Job>,
    /// When set, the commit fails (`Stale`: run again on fresh state) if its follow-ups
    /// would take a binding's pending follow-ups on a record, or the tenant's, past these.
    /// Automation checks the same before it commits; this makes it exact under concurrency.
    pub follow_up_caps: Option<FollowUpCaps>,
    /// Applied after the record content, in order.
    pub ops: Vec<Op>,
    pub durability: Durability,
}

impl Changeset {
    pub fn new(tenant: &str) -> Changeset {
        Changeset {
            tenant: tenant.to_string(),
            ..Default::default()
        }
    }

    /// A changeset of one op (lazy when the op is bookkeeping a restart repairs).
    pub fn op(tenant: &str, op: Op) -> Changeset {
        let durability = if op.lazy() {
            Durability::Lazy
        } else {
            Durability::Durable
        };
        Changeset {
            tenant: tenant.to_string(),
            ops: vec![op],
            durability,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.events.is_empty()
            && self.runs.is_empty()
            && self.messages.is_empty()
            && self.timers.is_empty()
            && self.jobs.is_empty()
            && self.ops.is_empty()
    }

    /// The record as this changeset leaves it: its last write, if any.
    pub fn pending(&self, id: &str) -> Option<Option<&Record>> {
        self.records.iter().rev().find_map(|w| match w {
            RecordWrite::Put { record, .. } if record.id == id => Some(Some(record.as_ref())),
            RecordWrite::Delete { id: d, .. } if d == id => Some(None),
            _ => None,
        })
    }
}
