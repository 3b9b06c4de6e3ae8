//! Events: the journal entry every change appends, and the input automation reacts to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::record::Record;
use super::task::Task;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Updated {
        fields: Vec<String>,
    },
    StageChanged {
        from: String,
        to: String,
    },
    Assigned {
        from: Option<String>,
        to: Option<String>,
    },
    Deleted,
    /// A follow-up a module scheduled, or a delayed trigger, coming due.
    Scheduled {
        #[schema(value_type = Object)]
        payload: Value,
    },
    /// Posted by an integration (`POST /v1/events`).
    Inbound {
        name: String,
        #[schema(value_type = Object)]
        payload: Value,
    },
    /// A task was created on the record (the task as created).
    TaskCreated {
        task: Box<Task>,
    },
    /// A task of the record was completed (the task as completed).
    TaskCompleted {
        task: Box<Task>,
    },
    /// An open task of the record reached its due time (fired by its durable timer).
    TaskOverdue {
        task: Box<Task>,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated { .. } => "updated",
            EventKind::StageChanged { .. } => "stage_changed",
            EventKind::Assigned { .. } => "assigned",
            EventKind::Deleted => "deleted",
            EventKind::Scheduled { .. } => "scheduled",
            EventKind::Inbound { .. } => "inbound",
            EventKind::TaskCreated { .. } => "task_created",
            EventKind::TaskCompleted { .. } => "task_completed",
            EventKind::TaskOverdue { .. } => "task_overdue",
        }
    }

    /// The task a task event is about.
    pub fn task(&self) -> Option<&Task> {
        match self {
            EventKind::TaskCreated { task }
            | EventKind::TaskCompleted { task }
            | EventKind::TaskOverdue { task } => Some(task),
            _ => None,
        }
    }
}

/// Inbound event names kept for task events, as modules see them (`task_created`,
/// `task_completed`, `task_overdue`, and any other `task_` name a later version may add): an
/// integration cannot post them, so a module can trust an inbound `task_*` event. One copy,
/// shared with the SDK's `MockHost`.
pub use stagecraft_rules::event::reserved_inbound;

/// Why an event happened when automation caused it: the run, and the chain of bindings that
/// led here (for the loop guard).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Cause {
    pub run: String,
    pub binding: String,
    /// Bindings that ran in this causal chain, oldest first (the loop guard reads it).
    pub chain: Vec<String>,
    /// How many runs deep this event is; user changes are depth 0.
    pub depth: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Event {
    pub id: String,
    pub tenant: String,
    pub record: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
    pub occurred_at: DateTime<Utc>,
    /// Present when a module's run caused the event.
    pub cause: Option<Cause>,
    /// The record as it was right after the change (right before, for `deleted`).
    pub snapshot: Option<Record>,
}

impl Event {
    pub fn depth(&self) -> u32 {
        self.cause.as_ref().map_or(0, |c| c.depth)
    }
}

impl EventKind {
    /// The events a change from `old` to `new` causes, in the order automation sees them:
    /// created / deleted, else stage change, assignment, then the other changed fields.
    pub fn for_change(old: Option<&Record>, new: Option<&Record>) -> Vec<EventKind> {
        match (old, new) {
            (None, Some(_)) => vec![EventKind::Created],
            (Some(_), None) => vec![EventKind::Deleted],
            (Some(o), Some(n)) => {
                let mut out = Vec::new();
                if let (Some(from), Some(to)) = (&o.stage, &n.stage) {
                    if from != to || o.pipeline != n.pipeline {
                        out.push(EventKind::StageChanged {
                            from: from.clone(),
                            to: to.clone(),
                        });
                    }
                }
                if o.owner != n.owner {
                    out.push(EventKind::Assigned {
                        from: o.owner.clone(),
                        to: n.owner.clone(),
                    });
                }
                let fields: Vec<String> = o
                    .changed_fields(n)
                    .into_iter()
                    .filter(|f| f != "owner")
                    .collect();
                if !fields.is_empty() {
                    out.push(EventKind::Updated { fields });
                }
                out
            }
            (None, None) => Vec::new(),
        }
    }
}
