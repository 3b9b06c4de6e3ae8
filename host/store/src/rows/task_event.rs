//! The task a task event carries, as the journal's event row v2 stores it: without what
//! the event itself already says (its record, its time, the run that caused it), and with
//! ids as [`IdRow`]s. Every such field is a choice between "the event's" and a value of its
//! own, so a task reads back exactly whatever it holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stagecraft_model::{Actor, Cause, Task, TaskStatus};

use super::run::PriorityRow;
use super::{IdRow, RowError, Ts};

/// A time: the event's own, or another (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum TimeRow {
    Event,
    At(Ts),
}

impl TimeRow {
    fn of(t: &DateTime<Utc>, at: DateTime<Utc>) -> TimeRow {
        if *t == at {
            TimeRow::Event
        } else {
            TimeRow::At(t.into())
        }
    }

    fn get(self, at: DateTime<Utc>) -> Result<DateTime<Utc>, RowError> {
        match self {
            TimeRow::Event => Ok(at),
            TimeRow::At(t) => t.get(),
        }
    }
}

/// Who made or completed a task (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ActorRow {
    Key {
        key: IdRow,
        user: Option<String>,
    },
    Run {
        binding: IdRow,
        run: IdRow,
    },
    /// The run that caused the event (its cause's binding and run).
    Cause,
}

impl ActorRow {
    fn of(a: &Actor, cause: Option<&Cause>) -> ActorRow {
        match a {
            Actor::Run { binding, run }
                if cause.is_some_and(|c| &c.binding == binding && &c.run == run) =>
            {
                ActorRow::Cause
            }
            Actor::Run { binding, run } => ActorRow::Run {
                binding: binding.into(),
                run: run.into(),
            },
            Actor::Key { key, user } => ActorRow::Key {
                key: key.into(),
                user: user.clone(),
            },
        }
    }

    fn get(self, cause: Option<&Cause>) -> Result<Actor, RowError> {
        Ok(match self {
            ActorRow::Key { key, user } => Actor::Key {
                key: key.into(),
                user,
            },
            ActorRow::Run { binding, run } => Actor::Run {
                binding: binding.into(),
                run: run.into(),
            },
            ActorRow::Cause => {
                let c = cause.ok_or_else(|| {
                    RowError::Invalid("a task made by its event's cause, with no cause".into())
                })?;
                Actor::Run {
                    binding: c.binding.clone(),
                    run: c.run.clone(),
                }
            }
        })
    }
}

/// A task event's task (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskEventRow {
    id: IdRow,
    /// None: the event's record.
    record: Option<IdRow>,
    done: bool,
    assignee: Option<String>,
    due_at: Option<Ts>,
    title: String,
    description: Option<String>,
    priority: PriorityRow,
    tags: Vec<String>,
    created_by: ActorRow,
    completed_by: Option<ActorRow>,
    completed_at: Option<TimeRow>,
    version: u64,
    created_at: TimeRow,
    updated_at: TimeRow,
}

/// What an event's task is read against: the event's record, time and cause.
pub(crate) struct Context<'a> {
    pub record: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub cause: Option<&'a Cause>,
}

impl TaskEventRow {
    pub(crate) fn new(t: &Task, cx: &Context<'_>) -> TaskEventRow {
        TaskEventRow {
            id: IdRow::from(&t.id),
            record: (cx.record != Some(t.record.as_str())).then(|| IdRow::from(&t.record)),
            done: t.status == TaskStatus::Done,
            assignee: t.assignee.clone(),
            due_at: t.due_at.as_ref().map(Ts::from),
            title: t.title.clone(),
            description: t.description.clone(),
            priority: t.priority.into(),
            tags: t.tags.clone(),
            created_by: ActorRow::of(&t.created_by, cx.cause),
            completed_by: t.completed_by.as_ref().map(|a| ActorRow::of(a, cx.cause)),
            completed_at: t.completed_at.as_ref().map(|c| TimeRow::of(c, cx.at)),
            version: t.version,
            created_at: TimeRow::of(&t.created_at, cx.at),
            updated_at: TimeRow::of(&t.updated_at, cx.at),
        }
    }

    pub(crate) fn task(self, cx: &Context<'_>) -> Result<Task, RowError> {
        Ok(Task {
            id: self.id.into(),
            record: match self.record {
                Some(r) => r.into(),
                None => cx.record.unwrap_or_default().to_string(),
            },
            title: self.title,
            description: self.description,
            due_at: self.due_at.map(Ts::get).transpose()?,
            priority: self.priority.into(),
            assignee: self.assignee,
            tags: self.tags,
            status: if self.done {
                TaskStatus::Done
            } else {
                TaskStatus::Open
            },
            created_by: self.created_by.get(cx.cause)?,
            completed_by: self.completed_by.map(|a| a.get(cx.cause)).transpose()?,
            completed_at: self.completed_at.map(|t| t.get(cx.at)).transpose()?,
            version: self.version,
            created_at: self.created_at.get(cx.at)?,
            updated_at: self.updated_at.get(cx.at)?,
        })
    }
}
