//! A task's overdue timer coming due: the `task_overdue` journal event (with the task as it
//! is and its record's snapshot) and a job naming no binding, written with the timer's
//! removal in one commit; the worker then fans that job out into one job (or delayed timer)
//! per binding the event triggers, in one commit of its own (a repeat makes runs that are
//! already committed, which exactly-once run ids skip). The store cancels the timer when
//! the task is completed or its due time moves; this checks again, so a timer that raced
//! with either fires nothing.

use sha2::Digest;

use super::{matching, Automation};
use crate::crm::records::event;
use crate::model::id::new_id;
use crate::model::{Event, EventKind, Job, Record, TaskStatus, Timer, TimerKind};
use crate::store::{Changeset, DueTimer, Store, StoreError};

/// The event id of a task's overdue event: a ULID of its due time, the same for the same
/// timer (so firing it twice could never journal it twice).
pub fn overdue_event_id(due: &DueTimer) -> String {
    let digest = sha2::Sha256::digest(format!("{}#{}", due.timer.id, due.timer.due).as_bytes());
    let mut random = [0u8; 16];
    random.copy_from_slice(&digest[..16]);
    crate::model::id::id_at(
        "evt",
        due.timer.due.timestamp_millis(),
        u128::from_be_bytes(random),
    )
}

/// What firing `task`'s overdue timer writes: nothing when the record or the task is gone,
/// the task is done, or it falls due at another time now.
pub fn fire(
    store: &Store,
    due: &DueTimer,
    task: &str,
    record: Option<Record>,
) -> Result<(Option<Event>, Option<Job>), StoreError> {
    let Some(record) = record else {
        return Ok((None, None));
    };
    let task = match store.task(&due.tenant, task)? {
        Some(t) if t.status == TaskStatus::Open && t.due_at == Some(due.timer.due) => t,
        _ => return Ok((None, None)),
    };
    let mut e = event(
        &due.tenant,
        EventKind::TaskOverdue {
            task: Box::new(task),
        },
        Some(&record),
        due.timer.due,
        None,
    );
    e.id = overdue_event_id(due);
    let job = Job {
        id: crate::model::id::new_id("job"),
        tenant: due.tenant.clone(),
        event: e.id.clone(),
        binding: None,
    };
    Ok((Some(e), Some(job)))
}

impl Automation {
    /// Turns a job naming no binding, for a task event, into a job per binding the event
    /// triggers (a delayed trigger into its timer; inline bindings run in the background, as
    /// there is no request to refuse). False when the job is not one of those.
    pub(super) fn fan_out(&self, job: &Job) -> Result<bool, StoreError> {
        let Some(ev) = self.store.event(&job.tenant, &job.event)? else {
            return Ok(false);
        };
        if ev.kind.task().is_none() {
            return Ok(false);
        }
        let bindings = self.store.bindings(&job.tenant)?;
        let mut cs = Changeset::new(&job.tenant);
        for b in matching(&bindings, &ev) {
            let Some(trigger) = b.trigger_for(&ev) else {
                continue;
            };
            match (trigger.delay_seconds(), &ev.record) {
                (Some(delay), Some(record)) => cs.timers.push(Timer {
                    id: new_id("tmr"),
                    due: ev.occurred_at + chrono::Duration::seconds(delay as i64),
                    binding: b.id.clone(),
                    record: record.clone(),
                    stage: ev.snapshot.as_ref().and_then(|r| r.stage.clone()),
                    kind: TimerKind::Delayed {
                        event: ev.id.clone(),
                    },
                    depth: ev.depth(),
                }),
                _ => cs.jobs.push(Job {
                    id: new_id("job"),
                    tenant: job.tenant.clone(),
                    event: ev.id.clone(),
                    binding: Some(b.id.clone()),
                }),
            }
        }
        if !cs.is_empty() {
            self.store.commit(&cs)?;
            self.wake.notify_one();
        }
        Ok(true)
    }
}
