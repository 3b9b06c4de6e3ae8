//! Background work: the job worker (runs queued bindings, exactly once per event and
//! binding) and the scheduler (turns due timers into jobs). Both resume from sled after a
//! restart: jobs and timers are durable, and a run id is committed at most once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::{run_id, Automation};
use crate::crm::records::event;
use crate::model::id::new_id;
use crate::model::{Binding, Event, EventKind, Job, Outcome, RunRecord, TimerKind};
use crate::store::{Changeset, DueTimer, StoreError};

pub async fn run_jobs(a: Arc<Automation>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let jobs = match a.store.jobs(64) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the job queue");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = a.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for job in jobs {
            if *stop.borrow() {
                return;
            }
            let a2 = a.clone();
            let id = job.id.clone();
            let done = tokio::task::spawn_blocking(move || a2.process(&job)).await;
            if let Err(e) = done {
                // A bug, not a guest outcome: drop the job rather than spin on it.
                tracing::error!(error = %e, job = %id, "job task panicked; dropping the job");
                if let Err(e) = a.store.delete_job(&id) {
                    tracing::error!(error = %e, job = %id, "cannot delete the job");
                }
            }
        }
    }
}

pub async fn run_scheduler(a: Arc<Automation>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(a.config.tick) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let due = match a.store.due_timers(Utc::now(), 256) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read timers");
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
            return self.store.fire_timer(due, None, None);
        }
        let (event, event_id) = match &t.kind {
            TimerKind::Delayed { event } => (None, event.clone()),
            TimerKind::FollowUp { payload } => {
                let Some(record) = record else {
                    return self.store.fire_timer(due, None, None);
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
        self.store.fire_timer(due, event.as_ref(), Some(&job))
    }

    /// Runs one job to a committed run record, retrying on write conflicts with concurrent
    /// changes. Safe to repeat: a run already committed is skipped.
    pub(super) fn process(&self, job: &Job) {
        let span = tracing::info_span!("event", event_id = %job.event, job = %job.id);
        let _entered = span.enter();
        let mut failure = None;
        for _ in 0..8 {
            match self.try_process(job) {
                Ok(()) | Err(StoreError::AlreadyDone(_)) => {
                    failure = None;
                    break;
                }
                Err(e @ (StoreError::VersionConflict { .. } | StoreError::Stale(_))) => {
                    tracing::debug!(error = %e, job = %job.id, "conflict; running again on fresh state");
                    failure = Some(e);
                }
                Err(e) => {
                    tracing::error!(error = %e, job = %job.id, "job failed");
                    failure = Some(e);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if let Some(e) = failure {
            // Never vanish without a trace: the run's record says why it did not apply. If
            // even that cannot be stored, the job stays queued for the next round.
            if let Err(e2) = self.record_failure(job, &e) {
                tracing::error!(error = %e2, job = %job.id, "cannot record a failed run; keeping the job");
                return;
            }
        }
        if let Err(e) = self.store.delete_job(&job.id) {
            tracing::error!(error = %e, job = %job.id, "cannot delete finished job");
        }
    }

    fn record_failure(&self, job: &Job, error: &StoreError) -> Result<(), StoreError> {
        let (Some(binding_id), Some(ev)) =
            (&job.binding, self.store.event(&job.tenant, &job.event)?)
        else {
            return Ok(());
        };
        let Some(binding) = self.store.binding(&job.tenant, binding_id)? else {
            return Ok(());
        };
        let mut cs = Changeset::new(&job.tenant);
        cs.runs.push(crate::model::RunRecord {
            id: run_id(&ev.id, &binding.id),
            event: ev.id.clone(),
            event_kind: ev.kind.name().to_string(),
            record: ev.record.clone(),
            binding: binding.id.clone(),
            module: binding.module.clone(),
            version: binding.version,
            mode: binding.mode,
            depth: ev.depth(),
            outcome: Outcome::Trap {
                message: format!(
                    "the run's effects could not be committed after 8 attempts: {error}"
                ),
            },
            effects: Vec::new(),
            discarded: Vec::new(),
            logs: Vec::new(),
            host_calls: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
            duration_us: 0,
            started_at: Utc::now(),
            unjournaled_event: None,
        });
        match self.store.commit(&cs) {
            Ok(()) | Err(StoreError::AlreadyDone(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn try_process(&self, job: &Job) -> Result<(), StoreError> {
        let Some(binding_id) = &job.binding else {
            return Ok(());
        };
        let Some(ev) = self.store.event(&job.tenant, &job.event)? else {
            return Ok(());
        };
        let Some(binding) = self.store.binding(&job.tenant, binding_id)? else {
            return Ok(());
        };
        if !binding.enabled {
            return Ok(());
        }
        if self
            .store
            .run(&job.tenant, &run_id(&ev.id, &binding.id))?
            .is_some()
        {
            return Ok(());
        }
        self.run_and_commit(&job.tenant, &ev, &binding).map(|_| ())
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
        let mut run = self.execute(&mut cs, ev, binding, now)?;
        if run.outcome.is_ok() {
            let halt = match self.cascade(&mut cs, 0, now) {
                Ok(()) => None,
                Err(super::Halt::Store(e)) => return Err(e),
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
