//! Rows of the automation queues: timers and jobs.

use serde::{Deserialize, Serialize};
use stagecraft_model::{Job, Timer, TimerKind};

use super::{stored_row, JsonText, RowError, Ts};

/// What a timer does when it fires (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TimerKindRow {
    FollowUp { payload: JsonText },
    Delayed { event: String },
    TaskOverdue { task: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TimerRow {
    id: String,
    due: Ts,
    binding: String,
    record: String,
    stage: Option<String>,
    kind: TimerKindRow,
    depth: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRow {
    id: String,
    tenant: String,
    event: String,
    binding: Option<String>,
}

stored_row!(
    TimerRow => "timer", 1;
    JobRow => "job", 1;
);

impl From<&Timer> for TimerRow {
    fn from(t: &Timer) -> TimerRow {
        TimerRow {
            id: t.id.clone(),
            due: (&t.due).into(),
            binding: t.binding.clone(),
            record: t.record.clone(),
            stage: t.stage.clone(),
            kind: match &t.kind {
                TimerKind::FollowUp { payload } => TimerKindRow::FollowUp {
                    payload: JsonText::of(payload),
                },
                TimerKind::Delayed { event } => TimerKindRow::Delayed {
                    event: event.clone(),
                },
                TimerKind::TaskOverdue { task } => TimerKindRow::TaskOverdue { task: task.clone() },
            },
            depth: t.depth,
        }
    }
}

impl TryFrom<TimerRow> for Timer {
    type Error = RowError;

    fn try_from(t: TimerRow) -> Result<Timer, RowError> {
        Ok(Timer {
            id: t.id,
            due: t.due.get()?,
            binding: t.binding,
            record: t.record,
            stage: t.stage,
            kind: match t.kind {
                TimerKindRow::FollowUp { payload } => TimerKind::FollowUp {
                    payload: payload.parse()?,
                },
                TimerKindRow::Delayed { event } => TimerKind::Delayed { event },
                TimerKindRow::TaskOverdue { task } => TimerKind::TaskOverdue { task },
            },
            depth: t.depth,
        })
    }
}

impl From<&Job> for JobRow {
    fn from(j: &Job) -> JobRow {
        JobRow {
            id: j.id.clone(),
            tenant: j.tenant.clone(),
            event: j.event.clone(),
            binding: j.binding.clone(),
        }
    }
}

impl TryFrom<JobRow> for Job {
    type Error = RowError;

    fn try_from(j: JobRow) -> Result<Job, RowError> {
        Ok(Job {
            id: j.id,
            tenant: j.tenant,
            event: j.event,
            binding: j.binding,
        })
    }
}
