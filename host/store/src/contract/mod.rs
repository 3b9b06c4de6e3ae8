//! The backend contract: what every [`Backend`] must guarantee, as executable properties.
//! Written against the trait alone (never the facade, never a backend's insides), so the
//! PostgreSQL backend runs exactly the same suite as sled: one function per property, each
//! taking an [`Open`] that opens the same, initially empty, storage every time it is called
//! (a property reopens it to check what survives). A failed property panics, naming what
//! broke.
//!
//! - [`commit`]: atomic commits, version conflicts, stage occupancy, exactly-once runs,
//!   idempotency keys, timers that follow stages and follow-up caps, the ops' own rules,
//!   durability across a reopen.
//! - [`lists`]: every list, its order, filters and cursor, tenant isolation, and the byte
//!   budget.
//! - [`indexes`]: every index and cursor: each filter and combination returns exactly the
//!   matching rows in order across pages, cursors resume while writes land, entries follow
//!   changes and vanish on delete and retention, tenants never cross.
//! - [`lease`]: taking due jobs, timers and messages: two holders never hold the same
//!   item, an expired lease is taken over, what a holder that died held is taken again.
//! - [`retention`]: what pruning removes and what it keeps.
//! - [`reads`]: what a reader sees while commits are in flight.
//! - [`modules`]: the module quota and use counts.
//! - [`concurrent`]: many threads committing at once each get their own answer.
//! - [`tasks`]: tasks and comments commit with the changeset, task versions, their lists
//!   and the timeline with cursors, overdue lists and timers, the task and comment caps.
//!
//! A new backend runs all of it with one line in a test file of its own, given a harness
//! `fn(fn(Open<'_>))` that makes fresh, empty storage, calls the property with an [`Open`]
//! on it, and cleans up:
//!
//! ```ignore
//! fn on_postgres(property: fn(stagecraft_store::contract::Open<'_>)) {
//!     let db = TempDatabase::new();
//!     property(&|| Arc::new(PgBackend::connect(db.url()).expect("connects")));
//! }
//! stagecraft_store::backend_contract!(on_postgres);
//! ```
//!
//! That is one `#[test]` per property (`commit::runs_commit_exactly_once`, …), so a failure
//! names its rule and the others still run. [`run_all`] runs the same list in one call, and
//! [`PROPERTIES`] is the list.

pub mod commit;
pub mod concurrent;
pub mod indexes;
pub mod lease;
pub mod lists;
pub mod modules;
pub mod reads;
pub mod retention;
pub mod tasks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map};
use stagecraft_model::{
    id::id_at, ApiKey, Binding, Channel, Event, EventKind, Grants, Job, MessageStatus, Mode,
    ModuleVersion, OutboxMessage, Outcome, Pipeline, PipelineKind, Record, RecordKind, Role,
    RunRecord, Stage, StageSemantic, Tenant, Timer, TimerKind, Trigger,
};

use crate::{Backend, Changeset, Committed, List, Op, PageRequest, Read, RecordWrite, Result, Row};

/// Every property, with its name (`group::property`), in suite order.
pub const PROPERTIES: &[(&str, Property)] = crate::__contract_properties!(@list);

/// One property of the contract: runs on the storage its [`Open`] opens, panics if broken.
pub type Property = fn(Open<'_>);

/// Runs every property, each through `on` (see the module doc), naming each on stderr as it
/// starts; the first that fails panics with what broke.
pub fn run_all(on: impl Fn(Property)) {
    for (name, property) in PROPERTIES {
        eprintln!("backend contract: {name}");
        on(*property);
    }
}

/// One `#[test]` per contract property, each run through the harness `$on`, a
/// `fn(fn(Open<'_>))` in scope where the macro is used (see [`contract`](crate::contract)).
#[macro_export]
macro_rules! backend_contract {
    ($on:ident) => {
        $crate::__contract_properties!(@tests $on);
    };
}

/// The list of properties, once: expanded into the tests of [`backend_contract!`] and into
/// [`PROPERTIES`].
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_properties {
    ($($mode:tt)*) => {
        $crate::__contract_expand! { [$($mode)*]
            commit {
                commits_are_all_or_nothing
                version_conflicts_reject_the_changeset
                stage_occupancy_guards_pipelines
                runs_commit_exactly_once
                idempotency_keys_drop_repeats
                timers_follow_their_stage
                ops_keep_their_rules
                acknowledged_commits_survive_a_reopen
            }
            lists {
                every_list_pages_in_order
                pages_keep_their_budgets
            }
            indexes {
                every_filter_answers_exactly_in_order
                cursors_resume_while_writes_land
                index_entries_follow_every_change
            }
            lease {
                two_holders_never_hold_the_same_job
                two_holders_never_hold_the_same_timer
                a_message_is_claimed_once
                what_a_dead_holder_held_is_taken_again
            }
            retention {
                retention_removes_only_what_is_old
            }
            reads {
                readers_never_see_part_of_a_commit
            }
            modules {
                module_quotas_hold
                module_quotas_hold_under_concurrency
            }
            concurrent {
                concurrent_committers_get_their_own_results
            }
            tasks {
                tasks_commit_with_the_run
                task_updates_check_versions
                task_lists_page_in_order
                overdue_tasks_list_by_due_time
                task_caps_hold
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_expand {
    ([@tests $on:ident] $($group:ident { $($name:ident)* })*) => {
        $(
            mod $group {
                $(
                    #[test]
                    fn $name() {
                        super::$on($crate::contract::$group::$name);
                    }
                )*
            }
        )*
    };
    ([@list] $($group:ident { $($name:ident)* })*) => {
        &[$($(
            (
                concat!(stringify!($group), "::", stringify!($name)),
                $crate::contract::$group::$name as fn($crate::contract::Open<'_>),
            ),
        )*)*]
    };
}

/// Opens the storage under test: a new handle on the same storage on every call. Drop every
/// handle before opening again (sled allows one at a time).
pub type Open<'a> = &'a dyn Fn() -> Arc<dyn Backend>;

/// The tenant the properties write in; [`OTHER`] checks that nothing crosses over.
pub const TENANT: &str = "acme";
pub const OTHER: &str = "globex";

/// A fixed base time: ids and times of a property are `at(ms)` after it.
pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_748_736_000_000 + ms).expect("a valid time")
}

/// The result of committing one changeset.
pub fn commit1(b: &dyn Backend, cs: &Changeset) -> Result<Committed> {
    b.commit(&[cs]).pop().expect("one result per changeset")
}

/// Commits and insists it worked.
pub fn ok(b: &dyn Backend, cs: &Changeset) -> Committed {
    commit1(b, cs).unwrap_or_else(|e| panic!("commit failed: {e}"))
}

pub fn op(b: &dyn Backend, tenant: &str, op: Op) -> Result<Committed> {
    commit1(b, &Changeset::op(tenant, op))
}

/// A tenant with its admin key and the `sales` pipeline (stages `new`, `won`, `lost`).
pub fn tenant(b: &dyn Backend, id: &str) {
    let op = Op::CreateTenant {
        tenant: Tenant {
            id: id.into(),
            name: format!("Tenant {id}"),
            created_at: at(0),
        },
        key: key(id, &format!("hash-{id}")),
        pipelines: vec![pipeline("sales", &["new", "won", "lost"])],
    };
    commit1(b, &Changeset::op(id, op)).expect("tenant created");
}

pub fn key(tenant: &str, hash: &str) -> ApiKey {
    ApiKey {
        id: format!("key_{hash}"),
        tenant: tenant.into(),
        role: Role::Admin,
        name: format!("key {hash}"),
        operator: false,
        user: None,
        created_at: at(0),
        hash: hash.into(),
    }
}

pub fn pipeline(id: &str, stages: &[&str]) -> Pipeline {
    Pipeline {
        id: id.into(),
        name: id.to_uppercase(),
        kind: PipelineKind::Lead,
        stages: stages
            .iter()
            .map(|s| Stage {
                id: (*s).into(),
                name: s.to_uppercase(),
                semantic: StageSemantic::Open,
            })
            .collect(),
        version: 1,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// A lead in the `sales` pipeline (`stage` None: no pipeline at all), version 1.
pub fn record(id: &str, stage: Option<&str>) -> Record {
    Record {
        id: id.into(),
        kind: RecordKind::Lead,
        name: format!("Lead {id}"),
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: None,
        company: None,
        contact: None,
        pipeline: stage.map(|_| "sales".into()),
        stage: stage.map(str::to_string),
        custom: Map::new(),
        version: 1,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// Writes `r` expecting version `expected` (None: a create).
pub fn put(r: &Record, expected: Option<u64>) -> RecordWrite {
    RecordWrite::Put {
        record: Box::new(r.clone()),
        expected,
    }
}

/// `r` one version on, in `stage`.
pub fn moved(r: &Record, stage: &str) -> Record {
    let mut n = r.clone();
    n.stage = Some(stage.into());
    n.version += 1;
    n
}

pub fn event(id: &str, record: Option<&str>, ms: i64) -> Event {
    Event {
        id: id.into(),
        tenant: TENANT.into(),
        record: record.map(str::to_string),
        kind: EventKind::Created,
        occurred_at: at(ms),
        cause: None,
        snapshot: record.map(|r| self::record(r, None)),
    }
}

/// An event id of time `ms`: ids sort by time, as the host's do.
pub fn event_id(ms: i64, n: u128) -> String {
    id_at("evt", at(ms).timestamp_millis(), n)
}

pub fn run_id(ms: i64, n: u128) -> String {
    id_at("run", at(ms).timestamp_millis(), n)
}

pub fn message_id(ms: i64, n: u128) -> String {
    id_at("msg", at(ms).timestamp_millis(), n)
}

pub fn run(id: &str, record: Option<&str>, binding: &str, module: &str, ms: i64) -> RunRecord {
    RunRecord {
        id: id.into(),
        event: event_id(ms, 0),
        event_kind: "created".into(),
        record: record.map(str::to_string),
        binding: binding.into(),
        module: module.into(),
        version: 1,
        mode: Mode::Background,
        depth: 0,
        outcome: Outcome::Ok,
        effects: Vec::new(),
        discarded: Vec::new(),
        logs: Vec::new(),
        host_calls: Vec::new(),
        http: Vec::new(),
        fuel_used: 100,
        peak_memory: 65536,
        duration_us: 10,
        started_at: at(ms),
        unjournaled_event: None,
    }
}

pub fn message(id: &str, run: &str, key: Option<&str>, ms: i64) -> OutboxMessage {
    OutboxMessage {
        id: id.into(),
        channel: Channel::Email,
        to: "someone@example.com".into(),
        subject: "hello".into(),
        body: "hi".into(),
        idempotency_key: key.map(str::to_string),
        record: None,
        run: run.into(),
        status: MessageStatus::Queued,
        created_at: at(ms),
        attempts: Vec::new(),
        next_attempt_at: Some(at(ms)),
        sent_at: None,
    }
}

/// A timer on `record`, due at `ms`: a follow-up of `binding`, or a delayed trigger.
pub fn timer(id: &str, record: &str, stage: Option<&str>, ms: i64, follow_up: bool) -> Timer {
    Timer {
        id: id.into(),
        due: at(ms),
        binding: "bnd_1".into(),
        record: record.into(),
        stage: stage.map(str::to_string),
        kind: if follow_up {
            TimerKind::FollowUp {
                payload: json!({"step": 1}),
            }
        } else {
            TimerKind::Delayed {
                event: event_id(0, 1),
            }
        },
        depth: 0,
    }
}

pub fn job(tenant: &str, id: &str) -> Job {
    Job {
        id: id.into(),
        tenant: tenant.into(),
        event: event_id(0, 1),
        binding: None,
    }
}

pub fn version(module: &str) -> ModuleVersion {
    ModuleVersion {
        module: module.into(),
        version: 0,
        hash: format!("hash-of-{module}"),
        size: 100,
        artifact_size: 0,
        language: None,
        imports: Vec::new(),
        config_schema: None,
        uploaded_by: "key_test".into(),
        uploaded_at: at(0),
    }
}

pub fn binding(id: &str, module: &str, version: u32) -> Binding {
    Binding {
        id: id.into(),
        pipeline: "sales".into(),
        module: module.into(),
        version,
        triggers: vec![Trigger::Created {
            delay_seconds: None,
        }],
        mode: Mode::Background,
        order: 0,
        config: json!({}),
        grants: Grants::default(),
        enabled: true,
        revision: 1,
        created_at: at(0),
        updated_at: at(0),
    }
}

pub fn read(b: &dyn Backend, r: Read) -> Option<Row> {
    b.read(&r).unwrap_or_else(|e| panic!("{r:?}: {e}"))
}

pub fn get_record(b: &dyn Backend, tenant: &str, id: &str) -> Option<Record> {
    match read(
        b,
        Read::Record {
            tenant: tenant.into(),
            id: id.into(),
        },
    ) {
        Some(Row::Record(r)) => Some(r),
        None => None,
        other => panic!("a record read answered {other:?}"),
    }
}

/// Every row of `list`, following its cursor `limit` at a time; also returns how many
/// pages that took.
pub fn walk(b: &dyn Backend, list: &List, limit: usize) -> (Vec<Row>, usize) {
    let mut rows = Vec::new();
    let mut req = PageRequest {
        after: None,
        limit,
        limits: Default::default(),
    };
    for pages in 1..10_000 {
        let page = b
            .list(list, &req)
            .unwrap_or_else(|e| panic!("{list:?}: {e}"));
        rows.extend(page.items);
        match page.next {
            Some(next) => req.after = Some(next),
            None => return (rows, pages),
        }
    }
    panic!("{list:?} never ended");
}

/// Every row of a complete list.
pub fn all(b: &dyn Backend, list: List) -> Vec<Row> {
    let page = b
        .list(&list, &PageRequest::all())
        .unwrap_or_else(|e| panic!("{list:?}: {e}"));
    assert_eq!(page.next, None, "{list:?} is complete");
    page.items
}

/// The ids of rows that carry one.
pub fn ids(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| match r {
            Row::Record(x) => x.id.clone(),
            Row::Event(x) => x.id.clone(),
            Row::Run(x) => x.id.clone(),
            Row::Message(x) => x.id.clone(),
            Row::Timer(x) => x.id.clone(),
            Row::Job(x) => x.id.clone(),
            Row::Notification(x) => x.id.clone(),
            Row::Binding(x) => x.id.clone(),
            Row::Pipeline(x) => x.id.clone(),
            Row::Tenant(x) => x.id.clone(),
            Row::Key(x) => x.id.clone(),
            Row::Module(x) => x.name.clone(),
            Row::ModuleVersion(x) => x.version.to_string(),
            Row::BindingRun { run, .. } => run.clone(),
            Row::Due(d) => d.id.clone(),
            Row::Name(n) => n.clone(),
            other => panic!("no id in {other:?}"),
        })
        .collect()
}
