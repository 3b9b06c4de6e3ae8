//! Every read the host makes, as data: point reads ([`Read`] → [`Row`]), lists with cursors
//! ([`List`] + [`PageRequest`] → [`Page`]), taking due work ([`LeaseRequest`] →
//! [`Leased`]) and retention ([`PruneRequest`] → [`Pruned`]). Every variant that reads a
//! tenant's data names the tenant; the few that do not (keys by hash, tenants, the queues,
//! retention) are cross-tenant by nature.

use chrono::{DateTime, Utc};
use stagecraft_model::stats::Rollup;

use crate::quota::ModuleUsage;
pub use stagecraft_model::RecordFilter;
use stagecraft_model::{
    ApiKey, Binding, Channel, ChannelConfig, Event, Job, MessageStatus, Module, ModuleVersion,
    Notification, OutboxMessage, Pipeline, Record, RunRecord, Tenant, Timer,
};
use stagecraft_model::{Comment, Task, TaskStatus};

/// One value read back. Which variant a [`Read`] or [`List`] answers with is fixed by the
/// variant asked (see each); the facade turns rows back into the model's types.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Tenant(Tenant),
    /// With its `hash` filled in (the hash is its address, not part of the stored value).
    Key(ApiKey),
    Pipeline(Pipeline),
    Record(Record),
    /// Boxed: an event carries its record's snapshot, the largest row by far.
    Event(Box<Event>),
    Binding(Binding),
    Module(Module),
    ModuleVersion(ModuleVersion),
    Run(RunRecord),
    Message(OutboxMessage),
    Timer(Timer),
    Job(QueuedJob),
    Notification(Notification),
    Channels(ChannelConfig),
    Secret(String),
    Rollup {
        hour: i64,
        rollup: Rollup,
    },
    BindingRun {
        started_ms: i64,
        run: String,
    },
    FollowUps {
        pair: i64,
        all: i64,
    },
    Count(u64),
    ModuleUsage(ModuleUsage),
    Due(DueMessage),
    /// A tenant id ([`List::JobTenants`]).
    Name(String),
    Task(Task),
    Comment(Comment),
    /// One entry of a record's timeline ([`List::Timeline`]).
    Timeline(TimelineItem),
}

/// One entry of a record's timeline: an event of its journal, a comment or a task (at the
/// time it was created, as it is now). Entries sort by the time their id carries (every id
/// is a ULID of its time), then by id.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineItem {
    Event(Box<Event>),
    Comment(Comment),
    Task(Task),
}

impl TimelineItem {
    /// The entry's id (the timeline's cursor is the last id of a page).
    pub fn id(&self) -> &str {
        match self {
            TimelineItem::Event(e) => &e.id,
            TimelineItem::Comment(c) => &c.id,
            TimelineItem::Task(t) => &t.id,
        }
    }
}

/// Where an id sorts on a timeline: by the ULID after its prefix, then by the whole id.
pub fn timeline_order(id: &str) -> (&str, &str) {
    (id.split_once('_').map_or(id, |(_, u)| u), id)
}

/// Which tasks [`List::Tasks`] returns.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only this CRM user's.
    pub assignee: Option<String>,
    /// Only open (or done) ones.
    pub status: Option<TaskStatus>,
    /// Only the ones overdue at this time (open, due at or before it), by due time.
    pub overdue_at: Option<DateTime<Utc>>,
}

/// How a task sorts in [`List::Tasks`] without `overdue_at`, as its cursor: open ones
/// first, then done ones, each oldest first (`"0/{id}"`, `"1/{id}"`).
pub fn task_status_cursor(task: &Task) -> String {
    let s = if task.status == TaskStatus::Open {
        0
    } else {
        1
    };
    format!("{s}/{}", task.id)
}

/// How an overdue task sorts in [`List::Tasks`] with `overdue_at`, as its cursor: by due
/// time, then id (`"{due_ms:016}/{id}"`).
pub fn task_due_cursor(task: &Task) -> Option<String> {
    task.due_at
        .map(|d| format!("{:016}/{}", d.timestamp_millis().max(0), task.id))
}

/// A point read. Answers None when there is nothing there.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Record {
        tenant: String,
        id: String,
    },
    Event {
        tenant: String,
        id: String,
    },
    Run {
        tenant: String,
        id: String,
    },
    Message {
        tenant: String,
        id: String,
    },
    Binding {
        tenant: String,
        id: String,
    },
    Pipeline {
        tenant: String,
        id: String,
    },
    Module {
        tenant: String,
        name: String,
    },
    ModuleVersion {
        tenant: String,
        module: String,
        version: u32,
    },
    /// The key whose secret hashes to `hash` (any tenant: how a request finds its tenant).
    KeyByHash {
        hash: String,
    },
    Channels {
        tenant: String,
    },
    WebhookSecret {
        tenant: String,
    },
    /// [`Row::FollowUps`]: follow-ups pending for `binding` on `record`, and in the tenant.
    FollowUps {
        tenant: String,
        binding: String,
        record: String,
    },
    /// [`Row::ModuleUsage`]: what the tenant's modules take, with the stored versions of
    /// `module` (0 for a module with none).
    ModuleUsage {
        tenant: String,
        module: String,
    },
    /// [`Row::Count`]: stored versions, in any tenant, whose content hash is `hash` (their
    /// files are shared by hash).
    ModuleFileUses {
        hash: String,
    },
    /// [`Row::Task`].
    Task {
        tenant: String,
        id: String,
    },
    /// [`Row::Count`]: jobs queued in every tenant.
    QueuedJobs,
    /// [`Row::Count`]: messages waiting for a delivery attempt, in every tenant.
    OutboxDepth,
}

/// Filters for the run history.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunFilter {
    pub record: Option<String>,
    pub binding: Option<String>,
    pub module: Option<String>,
    pub outcome: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub channel: Option<Channel>,
    pub record: Option<String>,
}

/// Whose runs a rollup counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Module,
    Binding,
}

/// A list. Paged ones take a cursor (`PageRequest::after`: the last id of the page before;
/// for runs, the run to continue *before*) and stop at the request's limit and budgets;
/// complete ones (tenants, keys, pipelines, bindings, modules, versions, timers) return
/// everything in one page.
#[derive(Debug, Clone, PartialEq)]
pub enum List {
    /// [`Row::Tenant`]s, complete.
    Tenants,
    /// [`Row::Key`]s of a tenant, complete.
    Keys { tenant: String },
    /// [`Row::Pipeline`]s by id, complete.
    Pipelines { tenant: String },
    /// [`Row::Binding`]s by id, complete.
    Bindings { tenant: String },
    /// [`Row::Module`]s with at least one stored version, by name, complete. (A module
    /// whose versions were all deleted keeps counting its version numbers up, unlisted.)
    Modules { tenant: String },
    /// [`Row::ModuleVersion`]s of a module, oldest first, complete.
    ModuleVersions { tenant: String, module: String },
    /// [`Row::Record`]s matching `filter` (and `text`: a name containing it or exactly this
    /// email, case-insensitively) in creation order; paged by record id.
    Records {
        tenant: String,
        filter: RecordFilter,
        text: Option<String>,
    },
    /// The tenant's journal, [`Row::Event`]s oldest first; paged by event id.
    Events { tenant: String },
    /// A record's [`Row::Event`]s, oldest first; paged by event id.
    RecordEvents { tenant: String, record: String },
    /// [`Row::Run`]s matching `filter`, newest first; the cursor is the run to go on
    /// before.
    Runs { tenant: String, filter: RunFilter },
    /// [`Row::Message`]s matching `filter`, oldest first (ids sort by time); paged by id.
    Messages {
        tenant: String,
        filter: MessageFilter,
    },
    /// A user's [`Row::Notification`]s, oldest first; paged by id.
    Notifications { tenant: String, user: String },
    /// The tenant's pending [`Row::Timer`]s by due time, complete.
    Timers { tenant: String },
    /// The tenant's queued [`Row::Job`]s, oldest first, at most `limit` (no cursor: the
    /// queue is read from its front).
    Jobs { tenant: String },
    /// [`Row::Rollup`]s of `name` for hours in `[since_hour, until_hour)`, complete.
    Rollups {
        tenant: String,
        scope: Scope,
        name: String,
        since_hour: i64,
        until_hour: i64,
    },
    /// [`Row::BindingRun`]s: ids of a binding's runs that started in `[since, until)`,
    /// oldest first; with `last`, only the newest `last` of them. At most `limit`.
    BindingRuns {
        tenant: String,
        binding: String,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        last: Option<usize>,
    },
    /// A record's [`Row::Task`]s, oldest first; paged by task id.
    RecordTasks { tenant: String, record: String },
    /// [`Row::Task`]s matching `filter`: with `overdue_at`, by due time (cursor
    /// [`task_due_cursor`]); else open ones first, then done ones, each oldest first (cursor
    /// [`task_status_cursor`]). Indexed by assignee, status and due time: a page never scans
    /// tasks it does not return.
    Tasks { tenant: String, filter: TaskFilter },
    /// A record's [`Row::Comment`]s, oldest first; paged by comment id.
    RecordComments { tenant: String, record: String },
    /// A record's timeline ([`Row::Timeline`]): its events, comments and tasks in one time
    /// order ([`timeline_order`]); paged by entry id.
    Timeline { tenant: String, record: String },
    /// Tenants with queued jobs ([`Row::Name`]), in id order starting after the cursor and
    /// wrapping around once (round-robin), at most `limit`.
    JobTenants,
    /// Entries of the outbox's due index ([`Row::Due`]) due by `until`, in due order,
    /// starting after the cursor (a [`DueMessage::key`]) or else at `since` (else the
    /// start), looking at `limit` entries at most; `next` is where to go on, None at the
    /// end.
    DueMessages {
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    },
}

/// The budgets of one list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// JSON bytes of items on one page (at least one item is always returned).
    pub page_bytes: usize,
    /// Stored values one request looks at.
    pub scan_items: usize,
    /// Stored bytes one request looks at.
    pub scan_bytes: usize,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits {
            page_bytes: 4 * 1024 * 1024,
            scan_items: 20_000,
            scan_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where a page starts and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The cursor a page before returned as `next`.
    pub after: Option<String>,
    pub limit: usize,
    pub limits: ListLimits,
}

impl PageRequest {
    /// Everything, for the complete lists.
    pub fn all() -> PageRequest {
        PageRequest {
            after: None,
            limit: usize::MAX,
            limits: ListLimits::default(),
        }
    }

    pub fn new(after: Option<&str>, limit: usize, limits: &ListLimits) -> PageRequest {
        PageRequest {
            after: after.map(str::to_string),
            limit,
            limits: *limits,
        }
    }
}

/// One page of a list, in list order. Every list is complete, or says where it stopped: a
/// page ends at its item limit, at its byte budget (large values must not make a 300 MB
/// response), or when its scan budget runs out (a rare filter over a long history must not
/// stall a request) — and then `next` is the cursor to go on from, even when the page found
/// nothing yet. `next` is None only when nothing follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back (as `after` or `before`, as the list says) for what follows; None when
    /// nothing does.
    pub next: Option<String>,
}

/// A queued job as stored: where it is, and the job (or why it cannot be read).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    /// The backend's name for it (sled: its key).
    pub key: String,
    pub tenant: String,
    pub id: String,
    pub job: std::result::Result<Job, String>,
}

/// A timer that came due, with what firing it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DueTimer {
    /// The backend's name for it (sled: its key in the due-time index).
    pub key: String,
    pub tenant: String,
    pub timer: Timer,
}

/// An entry of the outbox's due index: a queued message whose next attempt is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMessage {
    /// The backend's name for the entry (sled: its key).
    pub key: String,
    pub tenant: String,
    pub id: String,
}

/// Which due work a [`LeaseRequest`] takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Queue {
    /// The tenant's queued jobs, oldest first. Done: `Op::FinishJob`.
    Jobs { tenant: String },
    /// Timers due at the request's `now`, across tenants, by due time. Done:
    /// `Op::FireTimer`.
    Timers,
    /// This message (picked from [`List::DueMessages`]), if it is still queued and due
    /// there: it becomes `sending`. Done: `Op::FinishMessage` or `Op::DeferMessage`.
    Message(DueMessage),
}

/// Takes due work for a holder. Two holders never hold the same item at once: what another
/// holder leased and has neither finished nor let expire is skipped. A holder's own live
/// leases on jobs and timers come back to it (renewed); a message is taken once per
/// attempt. An item whose lease expired is taken over. See [`crate::Backend::lease`] for
/// what a lease is in each backend.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRequest {
    pub queue: Queue,
    /// Who takes it: one id per worker that may run concurrently with others (a host).
    pub holder: String,
    pub now: DateTime<Utc>,
    /// How long the lease lasts unless finished first.
    pub ttl: std::time::Duration,
    pub limit: usize,
}

/// An item taken by [`crate::Backend::lease`].
#[derive(Debug, Clone, PartialEq)]
pub enum Leased {
    Job(QueuedJob),
    Timer(DueTimer),
    /// The message, now `sending`.
    Message(OutboxMessage),
}

/// What [`crate::Backend::recover`] took back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Messages caught mid-attempt, queued again.
    pub messages: u64,
}

/// Retention: removes run history, journal snapshots and delivered messages older than
/// `cutoff`, `batch` values per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRequest {
    pub cutoff: DateTime<Utc>,
    pub batch: usize,
}

/// What one prune pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub snapshots: u64,
    pub messages: u64,
    /// Values retention could not read and left alone (each is logged with its key).
    pub unreadable: u64,
}
