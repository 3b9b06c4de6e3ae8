//! The task and comment rows (host API 0.2): what a task and a timeline comment are on disk,
//! apart from their API shapes, with who made or completed them.

use serde::{Deserialize, Serialize};
use stagecraft_model::{Actor, Comment, Task, TaskStatus};

use super::run::PriorityRow;
use super::{opt_ts, stored_row, ts_opt, RowError, Ts};

/// Task statuses as small integers (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum StatusRow {
    Open,
    Done,
}

/// Who made or completed something (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ActorRow {
    Key { key: String, user: Option<String> },
    Run { binding: String, run: String },
}

impl From<&Actor> for ActorRow {
    fn from(a: &Actor) -> ActorRow {
        match a {
            Actor::Key { key, user } => ActorRow::Key {
                key: key.clone(),
                user: user.clone(),
            },
            Actor::Run { binding, run } => ActorRow::Run {
                binding: binding.clone(),
                run: run.clone(),
            },
        }
    }
}

impl From<ActorRow> for Actor {
    fn from(a: ActorRow) -> Actor {
        match a {
            ActorRow::Key { key, user } => Actor::Key { key, user },
            ActorRow::Run { binding, run } => Actor::Run { binding, run },
        }
    }
}

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskRow {
    id: String,
    record: String,
    status: StatusRow,
    assignee: Option<String>,
    due_at: Option<Ts>,
    title: String,
    description: Option<String>,
    priority: PriorityRow,
    tags: Vec<String>,
    created_by: ActorRow,
    completed_by: Option<ActorRow>,
    completed_at: Option<Ts>,
    version: u64,
    created_at: Ts,
    updated_at: Ts,
}

/// A comment on a record's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommentRow {
    id: String,
    record: String,
    body: String,
    author: ActorRow,
    created_at: Ts,
}

stored_row!(
    TaskRow => "task", 1;
    CommentRow => "comment", 1;
);

impl From<&Task> for TaskRow {
    fn from(t: &Task) -> TaskRow {
        TaskRow {
            id: t.id.clone(),
            record: t.record.clone(),
            status: match t.status {
                TaskStatus::Open => StatusRow::Open,
                TaskStatus::Done => StatusRow::Done,
            },
            assignee: t.assignee.clone(),
            due_at: ts_opt(&t.due_at),
            title: t.title.clone(),
            description: t.description.clone(),
            priority: t.priority.into(),
            tags: t.tags.clone(),
            created_by: (&t.created_by).into(),
            completed_by: t.completed_by.as_ref().map(ActorRow::from),
            completed_at: ts_opt(&t.completed_at),
            version: t.version,
            created_at: (&t.created_at).into(),
            updated_at: (&t.updated_at).into(),
        }
    }
}

impl TryFrom<TaskRow> for Task {
    type Error = RowError;

    fn try_from(t: TaskRow) -> Result<Task, RowError> {
        Ok(Task {
            id: t.id,
            record: t.record,
            title: t.title,
            description: t.description,
            due_at: opt_ts(t.due_at)?,
            priority: t.priority.into(),
            assignee: t.assignee,
            tags: t.tags,
            status: match t.status {
                StatusRow::Open => TaskStatus::Open,
                StatusRow::Done => TaskStatus::Done,
            },
            created_by: t.created_by.into(),
            completed_by: t.completed_by.map(Actor::from),
            completed_at: opt_ts(t.completed_at)?,
            version: t.version,
            created_at: t.created_at.get()?,
            updated_at: t.updated_at.get()?,
        })
    }
}

impl From<&Comment> for CommentRow {
    fn from(c: &Comment) -> CommentRow {
        CommentRow {
            id: c.id.clone(),
            record: c.record.clone(),
            body: c.body.clone(),
            author: (&c.author).into(),
            created_at: (&c.created_at).into(),
        }
    }
}

impl TryFrom<CommentRow> for Comment {
    type Error = RowError;

    fn try_from(c: CommentRow) -> Result<Comment, RowError> {
        Ok(Comment {
            id: c.id,
            record: c.record,
            body: c.body,
            author: c.author.into(),
            created_at: c.created_at.get()?,
        })
    }
}
