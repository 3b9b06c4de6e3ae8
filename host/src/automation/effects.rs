//! Turning a successful run's report into changeset entries: record writes with the events
//! they cause (marked with the run as their cause), outbox messages, follow-up timers, and
//! host API 0.2's creations: new records (whose `created` events start their own cascade,
//! under the loop guard and depth cap like any event a run causes), tasks with their
//! `task_created` / `task_completed` events, and comments — all in the run's changeset, so
//! they commit atomically with everything else it did.

use chrono::{DateTime, Utc};

use crate::crm::records::{event as journal_event, stage_write};
use crate::model::{
    Actor, Binding, Cause, Comment, Effect, Event, EventKind, MessageStatus, OutboxMessage, Record,
    Task, TaskStatus, Timer, TimerKind,
};
use crate::sandbox::RunReport;
use crate::store::{Changeset, Op, Store, TaskCaps};

/// Why effects could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// A record changed (or vanished) after the module read it: run it again on fresh state.
    Stale(String),
    Store(String),
}

/// Adds a successful run's effects to `cs`, all or nothing: on error `cs` is as before.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    store: &Store,
    cs: &mut Changeset,
    event: &Event,
    binding: &Binding,
    run: &str,
    report: &RunReport,
    now: DateTime<Utc>,
    caps: TaskCaps,
) -> Result<(), ApplyError> {
    let marks = (
        cs.records.len(),
        cs.events.len(),
        cs.messages.len(),
        cs.timers.len(),
        cs.ops.len(),
    );
    let out = apply_all(store, cs, event, binding, run, report, now, caps);
    if out.is_err() {
        cs.records.truncate(marks.0);
        cs.events.truncate(marks.1);
        cs.messages.truncate(marks.2);
        cs.timers.truncate(marks.3);
        cs.ops.truncate(marks.4);
    }
    out
}

fn store_failed(e: crate::store::StoreError) -> ApplyError {
    ApplyError::Store(e.to_string())
}

/// The record as `cs` leaves it, else as stored.
fn current_record(store: &Store, cs: &Changeset, id: &str) -> Result<Record, ApplyError> {
    match cs.pending(id) {
        Some(Some(r)) => Ok(r.clone()),
        Some(None) => Err(ApplyError::Stale(format!(
            "record {id:?} was deleted while the module ran"
        ))),
        None => store
            .record(&cs.tenant, id)
            .map_err(store_failed)?
            .ok_or_else(|| {
                ApplyError::Stale(format!("record {id:?} was deleted while the module ran"))
            }),
    }
}

/// The task as `cs` leaves it (created or completed earlier in this change), else as
/// stored; `true` when this change completes it already.
fn current_task(
    store: &Store,
    cs: &Changeset,
    id: &str,
) -> Result<(Option<Task>, bool), ApplyError> {
    let mut completed = false;
    for op in cs.ops.iter().rev() {
        match op {
            Op::CompleteTask { id: done, .. } if done == id => completed = true,
            Op::CreateTask { task, .. } | Op::UpdateTask { task, .. } if task.id == id => {
                return Ok((Some(task.clone()), completed))
            }
            _ => {}
        }
    }
    Ok((store.task(&cs.tenant, id).map_err(store_failed)?, completed))
}

/// A record `records.create` described (the sandbox checked its fields with the shared
/// rules; they are set the same way here).
fn new_record(
    id: &str,
    kind: crate::model::RecordKind,
    name: &str,
    pipeline: &Option<String>,
    stage: &Option<String>,
    fields: &serde_json::Map<String, serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<Record, ApplyError> {
    let mut r = Record {
        id: id.to_string(),
        kind,
        name: String::new(),
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: None,
        company: None,
        contact: None,
        pipeline: pipeline.clone(),
        stage: stage.clone(),
        custom: serde_json::Map::new(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    r.set_field("name", serde_json::Value::String(name.to_string()))
        .map_err(ApplyError::Store)?;
    for (field, value) in fields {
        r.set_field(field, value.clone())
            .map_err(ApplyError::Store)?;
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
fn apply_all(
    store: &Store,
    cs: &mut Changeset,
    event: &Event,
    binding: &Binding,
    run: &str,
    report: &RunReport,
    now: DateTime<Utc>,
    caps: TaskCaps,
) -> Result<(), ApplyError> {
    let mut chain = event
        .cause
        .as_ref()
        .map(|c| c.chain.clone())
        .unwrap_or_default();
    chain.push(binding.id.clone());
    let cause = Cause {
        run: run.to_string(),
        binding: binding.id.clone(),
        chain,
        depth: event.depth() + 1,
    };
    for changed in &report.records {
        let gone = || {
            ApplyError::Stale(format!(
                "record {:?} was deleted while the module ran",
                changed.id
            ))
        };
        let old = match cs.pending(&changed.id) {
            Some(Some(r)) => r.clone(),
            Some(None) => return Err(gone()),
            None => store
                .record(&cs.tenant, &changed.id)
                .map_err(|e| ApplyError::Store(e.to_string()))?
                .ok_or_else(gone)?,
        };
        // The module's copy still carries the version it read: anything newer means someone
        // else changed the record meanwhile, and writing the copy would lose their change.
        if old.version != changed.version {
            return Err(ApplyError::Stale(format!(
                "record {:?} changed while the module ran (read version {}, now {})",
                changed.id, changed.version, old.version
            )));
        }
        let mut new = changed.clone();
        new.version = old.version + 1;
        new.updated_at = now;
        stage_write(cs, Some(&old), Some(new), now, Some(cause.clone()));
    }
    for e in &report.effects {
        match e {
            Effect::QueueMessage {
                id,
                channel,
                to,
                subject,
                body,
                idempotency_key,
                record,
            } => cs.messages.push(OutboxMessage {
                id: id.clone(),
                channel: *channel,
                to: to.clone(),
                subject: subject.clone(),
                body: body.clone(),
                idempotency_key: idempotency_key.clone(),
                record: record.clone(),
                run: run.to_string(),
                status: MessageStatus::Queued,
                created_at: now,
                attempts: Vec::new(),
                next_attempt_at: Some(now),
                sent_at: None,
            }),
            Effect::Schedule {
                id,
                record,
                seconds,
                payload,
            } => {
                let stage = match cs.pending(record) {
                    Some(r) => r.and_then(|r| r.stage.clone()),
                    None => store
                        .record(&cs.tenant, record)
                        .map_err(|e| ApplyError::Store(e.to_string()))?
                        .and_then(|r| r.stage),
                };
                cs.timers.push(Timer {
                    id: id.clone(),
                    due: event.occurred_at + chrono::Duration::seconds(*seconds as i64),
                    binding: binding.id.clone(),
                    record: record.clone(),
                    stage,
                    kind: TimerKind::FollowUp {
                        payload: payload.clone(),
                    },
                    depth: event.depth(),
                });
            }
            Effect::MoveStage { .. } | Effect::SetField { .. } => {}
            Effect::CreateRecord {
                id,
                kind,
                name,
                pipeline,
                stage,
                fields,
            } => {
                let r = new_record(id, *kind, name, pipeline, stage, fields, now)?;
                // Its `created` event carries the run as its cause: the cascade takes it up
                // one level deeper, under the loop guard and the depth cap.
                stage_write(cs, None, Some(r), now, Some(cause.clone()));
            }
            Effect::CreateTask {
                id,
                record,
                title,
                description,
                due_at,
                priority,
                assignee,
                tags,
            } => {
                let rec = current_record(store, cs, record)?;
                let task = Task {
                    id: id.clone(),
                    record: record.clone(),
                    title: title.clone(),
                    description: description.clone(),
                    due_at: *due_at,
                    priority: *priority,
                    assignee: assignee.clone(),
                    tags: tags.clone(),
                    status: TaskStatus::Open,
                    created_by: by(binding, run),
                    completed_by: None,
                    completed_at: None,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                let kind = EventKind::TaskCreated {
                    task: Box::new(task.clone()),
                };
                let e = journal_event(&cs.tenant, kind, Some(&rec), now, Some(cause.clone()));
                cs.events.push(e);
                cs.ops.push(Op::CreateTask { task, caps });
            }
            Effect::CompleteTask { task, record } => {
                let (found, completed) = current_task(store, cs, task)?;
                if completed {
                    continue; // an earlier run of this change completed it
                }
                let Some(old) = found else {
                    return Err(ApplyError::Stale(format!(
                        "task {task:?} was deleted while the module ran"
                    )));
                };
                let mut done = old.clone();
                if !done.complete(by(binding, run), now) {
                    return Err(ApplyError::Stale(format!(
                        "task {task:?} was completed while the module ran"
                    )));
                }
                done.version = old.version + 1;
                let rec = current_record(store, cs, record)?;
                let kind = EventKind::TaskCompleted {
                    task: Box::new(done),
                };
                let e = journal_event(&cs.tenant, kind, Some(&rec), now, Some(cause.clone()));
                cs.events.push(e);
                // A task created in this same change is completed after its create op.
                let created_here = cs
                    .ops
                    .iter()
                    .any(|op| matches!(op, Op::CreateTask { task: t, .. } if &t.id == task));
                cs.ops.push(Op::CompleteTask {
                    id: task.clone(),
                    by: by(binding, run),
                    at: now,
                    expected: (!created_here).then_some(old.version),
                });
            }
            Effect::Comment { id, record, body } => {
                current_record(store, cs, record)?;
                cs.ops.push(Op::AddComment {
                    comment: Comment {
                        id: id.clone(),
                        record: record.clone(),
                        body: body.clone(),
                        author: by(binding, run),
                        created_at: now,
                    },
                    caps,
                });
            }
        }
    }
    Ok(())
}

/// Who a run's task or comment is by.
fn by(binding: &Binding, run: &str) -> Actor {
    Actor::Run {
        binding: binding.id.clone(),
        run: run.to_string(),
    }
}
