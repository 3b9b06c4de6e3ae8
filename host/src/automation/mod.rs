//! Automation: events on records run the modules admins enabled on the record's pipeline, and
//! the effects land atomically.
//!
//! One loop, [`Automation::cascade`], handles every event in a changeset: bindings that match
//! run now (inline), get a job (background) or a timer (delayed trigger); the effects of a run
//! go into the same changeset and their events go through the same loop. The changeset then
//! commits in one transaction — the triggering change, every run record, effect, message,
//! timer and job — or not at all.

pub mod dry_run;
mod effects;
mod guard;
mod overdue;
mod queue;
pub mod source;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::crm::CrmError;
use crate::model::id::new_id;
use crate::model::{Binding, Event, Job, Mode, Outcome, Record, RunRecord, Timer, TimerKind};
use crate::sandbox::{RunClass, RunInput, Sandbox};
use crate::store::{Changeset, FollowUpCaps, RecordWrite, Store, StoreError};

#[derive(Debug, Clone)]
pub struct AutomationConfig {
    /// How many runs deep a cascade may go.
    pub max_depth: u32,
    /// Runs one record may trigger per minute before it is locked out until the next minute.
    pub runs_per_minute: u32,
    /// How often the scheduler looks for due timers.
    pub tick: Duration,
    /// Follow-ups (`schedule.after`) one binding may have pending on one record; a run that
    /// would go past it ends `timer_limit`.
    pub follow_ups_per_record: u32,
    /// Follow-ups one tenant may have pending in all; a run that would go past it ends
    /// `timer_limit`.
    pub follow_ups_per_tenant: u32,
    /// Tasks per record, open tasks per tenant, comments per record: an API request past
    /// one is 409 `limit_exceeded`, a run's commit past one is refused the same way.
    pub tasks: crate::store::TaskCaps,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            max_depth: 8,
            runs_per_minute: 120,
            tick: Duration::from_millis(100),
            follow_ups_per_record: 100,
            follow_ups_per_tenant: 100_000,
            tasks: crate::store::TaskCaps::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    /// An inline binding refused the change; nothing but its run record was stored.
    #[error("{message}")]
    Rejected { run: String, message: String },
    /// An inline run found no run slot in time; nothing was stored. Try again shortly.
    #[error("{message}")]
    Busy { message: String },
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// The task running the change panicked or was cancelled: the server's fault, not the
    /// request's.
    #[error("automation task failed: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for AutomationError {
    fn from(e: tokio::task::JoinError) -> Self {
        AutomationError::Task(e.to_string())
    }
}

impl From<StoreError> for AutomationError {
    fn from(e: StoreError) -> Self {
        AutomationError::Crm(e.into())
    }
}

pub struct Automation {
    store: Store,
    sandbox: Arc<Sandbox>,
    config: AutomationConfig,
    guard: guard::RateGuard,
    wake: Notify,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Derived from the event and the binding: the same run always has the same id, which makes
/// committing it twice impossible. Sorts by the event's time.
pub fn run_id(event: &str, binding: &str) -> String {
    let tail = event.split('_').nth(1).unwrap_or(event);
    let h = hex::encode(Sha256::digest(binding.as_bytes()));
    format!("run_{tail}_{}", &h[..10])
}

/// The id of the event a run (by its id, see [`run_id`]) handled.
pub fn event_of_run(run: &str) -> Option<String> {
    let tail = run.strip_prefix("run_")?.split('_').next()?;
    Some(format!("evt_{tail}"))
}

/// Why a cascade stopped.
enum Halt {
    /// An inline run failed: the change is rejected.
    Rejected(Box<RunRecord>),
    /// A record changed under a run (or storage failed): nothing commits; try again.
    Store(StoreError),
    /// An inline run found no run slot in time: nothing commits; the caller may try again.
    Busy(String),
}

impl Automation {
    pub fn new(store: Store, sandbox: Arc<Sandbox>, config: AutomationConfig) -> Arc<Automation> {
        let (stop, _) = tokio::sync::watch::channel(false);
        Arc::new(Automation {
            guard: guard::RateGuard::new(config.runs_per_minute),
            store,
            sandbox,
            config,
            wake: Notify::new(),
            stop,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Commits a change made through the API, running inline automation first, and returns
    /// what was committed (so a response can show the records as this change left them). On
    /// rejection only the failed run's record is stored.
    pub async fn submit(self: &Arc<Self>, cs: Changeset) -> Result<Changeset, AutomationError> {
        if cs.is_empty() {
            return Ok(cs);
        }
        let this = self.clone();
        // The request's span follows the change into the blocking cascade.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| this.submit_blocking(cs))).await?
    }

    /// [`Automation::submit`] on the calling thread, which it blocks (inline runs, the
    /// commit): for callers that already run off the async threads, such as the API's
    /// automation pool.
    pub fn submit_blocking(&self, mut cs: Changeset) -> Result<Changeset, AutomationError> {
        if cs.is_empty() {
            return Ok(cs);
        }
        let now = Utc::now();
        let run = match self.cascade(&mut cs, 0, now, RunClass::Inline) {
            Ok(()) => None,
            Err(Halt::Store(e)) => return Err(e.into()),
            Err(Halt::Busy(message)) => return Err(AutomationError::Busy { message }),
            Err(Halt::Rejected(run)) => Some(run),
        };
        if let Some(run) = run {
            let message = run.outcome.describe();
            let id = run.id.clone();
            let mut failed = Changeset::new(&cs.tenant);
            let mut run = *run;
            run.unjournaled_event = unjournaled(&cs, &run.event);
            failed.runs.push(run);
            if let Err(e) = self.store.commit(&failed) {
                tracing::warn!(error = %e, "could not store a rejected run's record");
            }
            return Err(AutomationError::Rejected { run: id, message });
        }
        self.store.commit(&cs)?;
        if !cs.jobs.is_empty() {
            self.wake.notify_one();
        }
        Ok(cs)
    }

    /// Handles `cs.events[from..]`, including the events that runs add while it goes. Its
    /// inline runs take run slots as `class`: inline for an API change, background when the
    /// cascade follows a background job.
    fn cascade(
        &self,
        cs: &mut Changeset,
        from: usize,
        now: DateTime<Utc>,
        class: RunClass,
    ) -> Result<(), Halt> {
        let bindings = match self.store.bindings(&cs.tenant) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read bindings; automation skipped");
                return Ok(());
            }
        };
        let mut i = from;
        while i < cs.events.len() {
            let event = cs.events[i].clone();
            i += 1;
            let span = tracing::info_span!("event", event_id = %event.id, kind = event.kind.name());
            let _entered = span.enter();
            for b in matching(&bindings, &event) {
                let Some(trigger) = b.trigger_for(&event) else {
                    continue;
                };
                if let Some(delay) = trigger.delay_seconds() {
                    if let Some(record) = &event.record {
                        cs.timers.push(Timer {
                            id: new_id("tmr"),
                            due: event.occurred_at + chrono::Duration::seconds(delay as i64),
                            binding: b.id.clone(),
                            record: record.clone(),
                            stage: event.snapshot.as_ref().and_then(|r| r.stage.clone()),
                            kind: TimerKind::Delayed {
                                event: event.id.clone(),
                            },
                            depth: event.depth(),
                        });
                    }
                    continue;
                }
                match b.mode {
                    Mode::Background => cs.jobs.push(Job {
                        id: new_id("job"),
                        tenant: cs.tenant.clone(),
                        event: event.id.clone(),
                        binding: Some(b.id.clone()),
                    }),
                    Mode::Inline => {
                        let run = self
                            .execute(cs, &event, b, now, class)
                            .map_err(Halt::Store)?;
                        if let Outcome::Busy { message } = &run.outcome {
                            return Err(Halt::Busy(message.clone()));
                        }
                        if run.outcome.is_ok() || skipped(&run.outcome) {
                            cs.runs.push(run);
                        } else {
                            return Err(Halt::Rejected(Box::new(run)));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `binding` on `event` against the store plus `cs`'s pending writes; on success
    /// its effects (and their events) are added to `cs`. Returns the run record (not yet
    /// added to `cs`), or a version conflict when a record it wrote changed meanwhile.
    fn execute(
        &self,
        cs: &mut Changeset,
        event: &Event,
        binding: &Binding,
        now: DateTime<Utc>,
        class: RunClass,
    ) -> Result<RunRecord, StoreError> {
        let id = run_id(&event.id, &binding.id);
        let span = tracing::info_span!(
            "run",
            run = %id,
            event_id = %event.id,
            binding = %binding.id,
            module = %binding.module,
            version = binding.version
        );
        let _entered = span.enter();
        let mut run = RunRecord {
            id: id.clone(),
            event: event.id.clone(),
            event_kind: event.kind.name().to_string(),
            record: event.record.clone(),
            binding: binding.id.clone(),
            module: binding.module.clone(),
            version: binding.version,
            mode: binding.mode,
            depth: event.depth(),
            outcome: Outcome::Ok,
            effects: Vec::new(),
            discarded: Vec::new(),
            logs: Vec::new(),
            host_calls: Vec::new(),
            http: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
            duration_us: 0,
            started_at: now,
            unjournaled_event: None,
        };
        if let Some(message) = pruned(event) {
            run.outcome = Outcome::EventPruned { message };
            return Ok(run);
        }
        if event.depth() >= self.config.max_depth {
            run.outcome = Outcome::CascadeLimit {
                depth: self.config.max_depth,
            };
            return Ok(run);
        }
        if let Some(record) = &event.record {
            if let Err(message) = self.guard.admit(&cs.tenant, record, now) {
                run.outcome = Outcome::RateLimited { message };
                return Ok(run);
            }
        }
        let module = self
            .store
            .module_version(&cs.tenant, &binding.module, binding.version)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                v.ok_or_else(|| {
                    format!(
                        "module {:?} version {} no longer exists",
                        binding.module, binding.version
                    )
                })
            })
            .and_then(|v| self.sandbox.load(&v.hash).map_err(|e| e.to_string()));
        let module = match module {
            Ok(m) => m,
            Err(message) => {
                run.outcome = Outcome::Trap { message };
                return Ok(run);
            }
        };
        // The run sees the change in progress: each record's last write in `cs`.
        let mut pending: Vec<Record> = Vec::new();
        let mut deleted: Vec<String> = Vec::new();
        for w in &cs.records {
            let id = match w {
                RecordWrite::Put { record, .. } => &record.id,
                RecordWrite::Delete { id, .. } => id,
            };
            if pending.iter().any(|r| &r.id == id) || deleted.contains(id) {
                continue;
            }
            match cs.pending(id) {
                Some(Some(r)) => pending.push(r.clone()),
                _ => deleted.push(id.clone()),
            }
        }
        let report = self.sandbox.run(
            &module,
            RunInput {
                tenant: &cs.tenant,
                class,
                source: source::StoreSource::for_tenant(&self.store, &cs.tenant),
                event,
                run_key: id.clone(),
                config: binding.config.to_string(),
                grants: binding.grants.clone(),
                pending,
                deleted,
                recorded_http: None,
            },
        );
        run.outcome = report.outcome.clone();
        run.logs = report.logs.clone();
        run.host_calls = report.host_calls.clone();
        run.http = report.http.clone();
        run.fuel_used = report.fuel_used;
        run.peak_memory = report.peak_memory;
        run.duration_us = report.duration_us;
        tracing::debug!(
            outcome = report.outcome.name(),
            fuel = report.fuel_used,
            duration_us = report.duration_us,
            effects = report.effects.len(),
            "module ran"
        );
        if report.outcome.is_ok() {
            if let Some(message) = self.follow_ups_exceeded(cs, binding, &report)? {
                run.outcome = Outcome::TimerLimit { message };
                run.discarded = report.effects;
                return Ok(run);
            }
        }
        if report.outcome.is_ok() {
            match effects::apply(&self.store, cs, event, binding, &id, &report, now) {
                Ok(()) => run.effects = report.effects,
                Err(effects::ApplyError::Stale(what)) => return Err(StoreError::Stale(what)),
                Err(effects::ApplyError::Store(e)) => return Err(StoreError::Refused(e)),
            }
        } else {
            run.discarded = report.effects;
        }
        Ok(run)
    }

    fn follow_up_caps(&self) -> FollowUpCaps {
        FollowUpCaps {
            per_record: i64::from(self.config.follow_ups_per_record),
            per_tenant: i64::from(self.config.follow_ups_per_tenant),
        }
    }

    /// What a run's follow-ups would exceed: pending ones (stored, plus those `cs` adds
    /// already) and the run's own, per binding and record and per tenant. The commit checks
    /// the same again in its transaction (`Changeset::follow_up_caps`).
    fn follow_ups_exceeded(
        &self,
        cs: &mut Changeset,
        binding: &Binding,
        report: &crate::sandbox::RunReport,
    ) -> Result<Option<String>, StoreError> {
        let caps = self.follow_up_caps();
        let mut added: Vec<&str> = Vec::new();
        for e in &report.effects {
            if let crate::model::Effect::Schedule { record, .. } = e {
                added.push(record);
            }
        }
        if added.is_empty() {
            return Ok(None);
        }
        cs.follow_up_caps = Some(caps);
        let queued = |record: Option<&str>| {
            cs.timers
                .iter()
                .filter(|t| matches!(t.kind, TimerKind::FollowUp { .. }))
                .filter(|t| record.is_none_or(|r| t.binding == binding.id && t.record == r))
                .count() as i64
        };
        let mut all_new = queued(None);
        let mut tenant = None;
        for record in added
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (pair, all) = self
                .store
                .pending_follow_ups(&cs.tenant, &binding.id, record)?;
            tenant = Some(all);
            let mine = added.iter().filter(|r| **r == record).count() as i64;
            let pair = pair + queued(Some(record)) + mine;
            if let Some(m) = caps.exceeded(&binding.id, record, pair, 0) {
                return Ok(Some(m));
            }
        }
        all_new += added.len() as i64 + tenant.unwrap_or(0);
        Ok(caps.exceeded(&binding.id, "", 0, all_new))
    }

    /// Starts the background workers and the scheduler.
    pub fn start(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if !tasks.is_empty() {
            return;
        }
        tasks.push(tokio::spawn(queue::run_jobs(
            self.clone(),
            self.stop.subscribe(),
        )));
        tasks.push(tokio::spawn(worker::run_scheduler(
            self.clone(),
            self.stop.subscribe(),
        )));
    }

    /// Stops the workers after the run in progress, if any, has committed.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        self.wake.notify_waiters();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The event `id` of a changeset that will not commit, for the run record that explains why.
fn unjournaled(cs: &Changeset, id: &str) -> Option<Box<Event>> {
    cs.events.iter().find(|e| e.id == id).cloned().map(Box::new)
}

/// Why a run cannot see its event's record: the event names a record but carries no
/// snapshot of it, because retention stripped it before the run came. Every event about a
/// record is journaled with its snapshot (a `deleted` one with the record as it was).
pub fn pruned(event: &Event) -> Option<String> {
    let record = event.record.as_ref()?;
    event.snapshot.is_none().then(|| {
        format!(
            "event {} about record {record} lost its record snapshot to retention before this run",
            event.id
        )
    })
}

/// Runs that did not execute (and so cannot reject a change).
fn skipped(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::CascadeLimit { .. } | Outcome::RateLimited { .. }
    )
}

/// The enabled bindings that `event` triggers, in order: same pipeline as the event's
/// record (inbound events without a record: any pipeline), a matching trigger, and not a
/// binding already in the event's causal chain (a module never re-triggers itself).
/// Scheduled events are delivered only to the binding that asked for them, by job.
pub fn matching<'a>(bindings: &'a [Binding], event: &Event) -> Vec<&'a Binding> {
    if matches!(event.kind, crate::model::EventKind::Scheduled { .. }) {
        return Vec::new();
    }
    let pipeline = event.snapshot.as_ref().and_then(|r| r.pipeline.as_deref());
    let chain: &[String] = event.cause.as_ref().map_or(&[], |c| &c.chain);
    let mut out: Vec<&Binding> = bindings
        .iter()
        .filter(|b| b.enabled)
        .filter(|b| match pipeline {
            Some(p) => b.pipeline == p,
            None => event.record.is_none(),
        })
        .filter(|b| !chain.contains(&b.id))
        .filter(|b| b.trigger_for(event).is_some())
        .collect();
    out.sort_by_key(|b| (b.order, b.id.clone()));
    out
}
