//! Turning a successful run's report into changeset entries: record writes with the events
//! they cause (marked with the run as their cause), outbox messages and follow-up timers.

use chrono::{DateTime, Utc};

use crate::crm::records::stage_write;
use crate::model::{Binding, Cause, Effect, Event, MessageStatus, OutboxMessage, Timer, TimerKind};
use crate::sandbox::RunReport;
use crate::store::{Changeset, Store};

/// Why effects could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// A record changed (or vanished) after the module read it: run it again on fresh state.
    Stale(String),
    Store(String),
}

/// Adds a successful run's effects to `cs`, all or nothing: on error `cs` is as before.
pub fn apply(
    store: &Store,
    cs: &mut Changeset,
    event: &Event,
    binding: &Binding,
    run: &str,
    report: &RunReport,
    now: DateTime<Utc>,
) -> Result<(), ApplyError> {
    let marks = (
        cs.records.len(),
        cs.events.len(),
        cs.messages.len(),
        cs.timers.len(),
    );
    let out = apply_all(store, cs, event, binding, run, report, now);
    if out.is_err() {
        cs.records.truncate(marks.0);
        cs.events.truncate(marks.1);
        cs.messages.truncate(marks.2);
        cs.timers.truncate(marks.3);
    }
    out
}

fn apply_all(
    store: &Store,
    cs: &mut Changeset,
    event: &Event,
    binding: &Binding,
    run: &str,
    report: &RunReport,
    now: DateTime<Utc>,
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
            // Bindings cannot be granted these yet (`crm::bindings::validate`), so only dry
            // runs make them; refuse rather than drop them should one get here.
            Effect::CreateRecord { .. }
            | Effect::CreateTask { .. }
            | Effect::CompleteTask { .. }
            | Effect::Comment { .. } => {
                return Err(ApplyError::Store(format!(
                    "run {run}: records, tasks and comments made by modules are not stored yet"
                )))
            }
        }
    }
    Ok(())
}
