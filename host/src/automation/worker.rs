//! Background work: running one queued job (its binding, exactly once per event and
//! binding; `queue` decides which jobs run when) and the scheduler (turns due timers into
//! jobs). Both resume from sled after a
//! restart: jobs and timers are durable, and a run id is committed at most once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::{run_id, Automation};
use crate::crm::records::event;
use crate::model::id::new_id;
use crate::model::{Binding, Event, EventKind, Job, Mode, Outcome, RunRecord, TimerKind};
use crate::sandbox::RunClass;
use crate::store::{Changeset, DueTimer, Op, QueuedJob, StoreError};

pub async fn run_scheduler(a: Arc<Automation>, mut stop: watch::Receiver<bool>) {
    let mut backoff = super::queue::Backoff::new(a.config.tick, "the timer index");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff.delay()) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let due = match a.store.lease_timers(Utc::now(), 256) {
            Ok(d) => {
                backoff.ok();
                d
            }
            Err(e) => {
                // A failing store (a full disk) is read again later and later, and logged
                // once per doubling of the wait, not every tick.
                if backoff.fail() {
                    tracing::error!(error = %e, retry_in = ?backoff.delay(), "cannot read timers");
                }
                continue;
            }
        };
        let mut fired = false;
        let now = Utc::now();
        for t in due {
            crate::telemetry::scheduler_lag(now - t.timer.due);
            match a.fire(&t) {
                Ok(f) => fired |= f,
                Err(e) => tracing::error!(error = %e, timer = %t.timer.id, "cannot fire timer"),
            }
        }
        if fired {
            a.wake.notify_one();
        }
    }
}

/// Why a job did not run to a committed run.
enum Failed {
    /// It cannot run: recorded as a failed run, and the job leaves the queue.
    Record(String),
    /// Storage is unavailable (a full disk): the job stays queued for later.
    Postpone(String),
}

/// How one attempt at a job ended without a storage error.
enum Step {
    /// Ran and committed, or there was nothing to do (already run, binding gone or off).
    Done,
    /// It can never run: the job is recorded as a failed run saying why.
    Lost(String),
}

/// The id of the event a follow-up timer turns into: the timer's own id with `evt_` (a
/// ULID of its due time, see the sandbox's host API), so it is deterministic and sorts by
/// time. Timers stored by older versions carry 24 hex characters instead; their events get a
/// ULID of the due time derived from that id, for the same two reasons.
pub fn follow_up_event_id(timer: &str, due: chrono::DateTime<Utc>) -> String {
    let tail = timer.trim_start_matches("tmr_");
    if crate::model::id::time_of(timer).is_some() {
        return format!("evt_{tail}");
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(tail.as_bytes());
    let mut random = [0u8; 16];
    random.copy_from_slice(&digest[..16]);
    crate::model::id::id_at("evt", due.timestamp_millis(), u128::from_be_bytes(random))
}

impl Automation {
    fn fire(&self, due: &DueTimer) -> Result<bool, StoreError> {
        let t = &due.timer;
        // Belt and braces: a timer whose record left its stage never fires.
        let record = self.store.record(&due.tenant, &t.record)?;
        let in_stage = match (&t.stage, &record) {
            (Some(s), Some(r)) => r.stage.as_ref() == Some(s),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if !in_stage {
            return self.fire_timer(due, None, None);
        }
        let (event, event_id) = match &t.kind {
            TimerKind::TaskOverdue { task } => {
                let (event, job) = super::overdue::fire(&self.store, due, task, record)?;
                return self.fire_timer(due, event, job);
            }
            TimerKind::Delayed { event } => (None, event.clone()),
            TimerKind::FollowUp { payload } => {
                let Some(record) = record else {
                    return self.fire_timer(due, None, None);
                };
                let mut e = event(
                    &due.tenant,
                    EventKind::Scheduled {
                        payload: payload.clone(),
                    },
                    Some(&record),
                    t.due,
                    None,
                );
                // The follow-up belongs to the chain of the run that scheduled it.
                e.id = follow_up_event_id(&t.id, t.due);
                e.cause = Some(crate::model::Cause {
                    run: String::new(),
                    binding: t.binding.clone(),
                    chain: Vec::new(),
                    depth: t.depth,
                });
                let id = e.id.clone();
                (Some(e), id)
            }
        };
        let job = Job {
            id: new_id("job"),
            tenant: due.tenant.clone(),
            event: event_id,
            binding: Some(t.binding.clone()),
        };
        self.fire_timer(due, event, Some(job))
    }

    /// Turns a due timer into its job (and event) in one commit. False when the timer was
    /// cancelled or fired meanwhile.
    fn fire_timer(
        &self,
        due: &DueTimer,
        event: Option<Event>,
        job: Option<Job>,
    ) -> Result<bool, StoreError> {
        let op = Op::FireTimer {
            timer: due.clone(),
            event,
            job,
        };
        self.store.commit(&Changeset::op(&due.tenant, op))?.fired()
    }

    /// Runs one queued job to a committed run record, retrying on write conflicts with
    /// concurrent changes. Safe to repeat: a run already committed is skipped. A job that
    /// cannot run (unreadable job, event or binding; a storage error that repeats) is
    /// recorded as a failed run and leaves the queue like any other. True when the job left
    /// the queue; false only when not even its failure could be stored.
    pub(super) fn process(&self, queued: &QueuedJob) -> bool {
        let span = tracing::info_span!("job", job = %queued.id, tenant = %queued.tenant);
        let _entered = span.enter();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &queued.job {
                Ok(job) => self.attempt(job),
                Err(e) => Err(Failed::Record(format!(
                    "the queued job cannot be read: {e}"
                ))),
            }))
            .unwrap_or_else(|_| {
                Err(Failed::Record(
                    "the job's task panicked (a bug); the job was dropped".into(),
                ))
            });
        if let Err(Failed::Postpone(why)) = &outcome {
            // A full or failing disk is not the run's fault, and it heals: the job stays
            // queued (the queue rests before it tries again) instead of ending as a failed
            // run the moment the disk is back.
            tracing::warn!(job = %queued.id, error = %why, "storage unavailable; keeping the job");
            return false;
        }
        if let Err(Failed::Record(why)) = outcome {
            // Never vanish without a trace: the run's record says why it did not apply. If
            // even that cannot be stored, the job stays queued for a later round.
            tracing::error!(job = %queued.id, error = %why, "job failed; recording a failed run");
            if let Err(e) = self.record_failure(queued, &why) {
                tracing::error!(error = %e, job = %queued.id, "cannot record a failed run; keeping the job");
                return false;
            }
        }
        let done = Op::FinishJob {
            id: queued.id.clone(),
        };
        if let Err(e) = self.store.commit(&Changeset::op(&queued.tenant, done)) {
            tracing::error!(error = %e, job = %queued.id, "cannot delete finished job");
            return false;
        }
        true
    }

    /// Up to 8 attempts; corrupt data is not retried (it will not heal by itself), and
    /// unavailable storage postpones the job.
    fn attempt(&self, job: &Job) -> Result<(), Failed> {
        let span = tracing::info_span!("event", event_id = %job.event);
        let _entered = span.enter();
        let mut failure = None;
        for _ in 0..8 {
            match self.try_process(job) {
                Ok(Step::Done) | Err(StoreError::AlreadyDone(_)) => return Ok(()),
                Ok(Step::Lost(why)) => return Err(Failed::Record(why)),
                Err(e @ (StoreError::VersionConflict { .. } | StoreError::Stale(_))) => {
                    tracing::debug!(error = %e, "conflict; running again on fresh state");
                    failure = Some(format!(
                        "the run's effects could not be committed after 8 attempts: {e}"
                    ));
                }
                Err(e @ StoreError::Corrupt { .. }) => {
                    return Err(Failed::Record(format!("the job cannot run: {e}")));
                }
                Err(e @ StoreError::Unavailable(_)) => return Err(Failed::Postpone(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "job attempt failed");
                    failure = Some(format!("the job failed 8 times: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Err(Failed::Record(failure.unwrap_or_default()))
    }

    /// Stores a failed run for a job that could not run, with whatever can still be read:
    /// the tenant and ids always, the event's kind and record and the binding's module when
    /// they are readable.
    fn record_failure(&self, queued: &QueuedJob, why: &str) -> Result<(), StoreError> {
        let job = queued.job.as_ref().ok();
        let event_id = job.map(|j| j.event.clone()).unwrap_or_default();
        let binding_id = job.and_then(|j| j.binding.clone()).unwrap_or_default();
        let ev = match job {
            Some(j) => self.store.event(&queued.tenant, &j.event).ok().flatten(),
            None => None,
        };
        let binding = match binding_id.as_str() {
            "" => None,
            id => self.store.binding(&queued.tenant, id).ok().flatten(),
        };
        let id = match (event_id.as_str(), binding_id.as_str()) {
            ("", _) | (_, "") => format!(
                "run_{}_unreadable",
                queued.id.split('_').nth(1).unwrap_or(&queued.id)
            ),
            (e, b) => run_id(e, b),
        };
        let mut cs = Changeset::new(&queued.tenant);
        cs.runs.push(crate::model::RunRecord {
            id,
            event: event_id,
            event_kind: ev.as_ref().map_or("unknown", |e| e.kind.name()).to_string(),
            record: ev.as_ref().and_then(|e| e.record.clone()),
            binding: binding_id,
            module: binding
                .as_ref()
                .map(|b| b.module.clone())
                .unwrap_or_default(),
            version: binding.as_ref().map_or(0, |b| b.version),
            mode: binding.as_ref().map_or(Mode::Background, |b| b.mode),
            depth: ev.as_ref().map_or(0, |e| e.depth()),
            outcome: Outcome::Trap {
                message: why.to_string(),
            },
            effects: Vec::new(),
            discarded: Vec::new(),
            logs: Vec::new(),
            host_calls: Vec::new(),
            http: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
            duration_us: 0,
            started_at: Utc::now(),
            unjournaled_event: None,
        });
        match self.store.commit(&cs) {
            Ok(_) | Err(StoreError::AlreadyDone(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One attempt at a job. A binding deleted or disabled since the job was queued is a
    /// decision someone made: the job is skipped (logged). A missing journal event is not:
    /// events are never deleted, so the job's work was lost, and it is recorded as a failed
    /// run naming the event rather than ending as if there had been nothing to do.
    fn try_process(&self, job: &Job) -> Result<Step, StoreError> {
        let Some(binding_id) = &job.binding else {
            // A task's overdue event: one job for every binding it triggers.
            if self.fan_out(job)? {
                return Ok(Step::Done);
            }
            return Ok(Step::Lost(format!(
                "the job names no binding for event {}; nothing ran",
                job.event
            )));
        };
        let Some(ev) = self.store.event(&job.tenant, &job.event)? else {
            return Ok(Step::Lost(format!(
                "the journal event {} of this job is missing (lost data); the binding did not run",
                job.event
            )));
        };
        let Some(binding) = self.store.binding(&job.tenant, binding_id)? else {
            tracing::info!(job = %job.id, binding = %binding_id, "the job's binding was deleted; skipping the job");
            return Ok(Step::Done);
        };
        if !binding.enabled {
            tracing::info!(job = %job.id, binding = %binding_id, "the job's binding is disabled; skipping the job");
            return Ok(Step::Done);
        }
        if self
            .store
            .run(&job.tenant, &run_id(&ev.id, &binding.id))?
            .is_some()
        {
            return Ok(Step::Done);
        }
        self.run_and_commit(&job.tenant, &ev, &binding)
            .map(|_| Step::Done)
    }

    /// Runs `binding` on the journal event `ev` and commits the run with its effects (and
    /// the inline runs those effects set off) in one transaction: what a background job
    /// does once it has its event and binding. Returns the committed run record.
    pub fn run_and_commit(
        &self,
        tenant: &str,
        ev: &Event,
        binding: &Binding,
    ) -> Result<RunRecord, StoreError> {
        let now = Utc::now();
        let mut cs = Changeset::new(tenant);
        let mut run = self.execute(&mut cs, ev, binding, now, RunClass::Background)?;
        if run.outcome.is_ok() {
            let halt = match self.cascade(&mut cs, 0, now, RunClass::Background) {
                Ok(()) => None,
                Err(super::Halt::Store(e)) => return Err(e),
                // Background runs wait for their slot as long as it takes; should one ever
                // give up, the job runs again like after any other interruption.
                Err(super::Halt::Busy(m)) => return Err(StoreError::Stale(m)),
                Err(super::Halt::Rejected(r)) => Some(r),
            };
            if let Some(rejected) = halt {
                // An inline binding refused this run's effects: the run fails, nothing applies.
                let mut failed = Changeset::new(tenant);
                run.outcome = Outcome::GuestError {
                    message: format!(
                        "its effects were rejected by binding {}: {}",
                        rejected.binding,
                        rejected.outcome.describe()
                    ),
                };
                run.discarded = std::mem::take(&mut run.effects);
                let mut rejected = *rejected;
                rejected.unjournaled_event = super::unjournaled(&cs, &rejected.event);
                failed.runs.push(rejected);
                failed.runs.push(run.clone());
                self.store.commit(&failed)?;
                return Ok(run);
            }
        }
        cs.runs.insert(0, run);
        self.store.commit(&cs)?;
        if !cs.jobs.is_empty() {
            self.wake.notify_one();
        }
        Ok(cs.runs.swap_remove(0))
    }
}
