//! Task events as a module receives them. The host delivers `task_created`,
//! `task_completed` and `task_overdue` as inbound events of those names whose payload is the
//! task (so `event-kind` needs no new case and modules built against host API 0.1 receive
//! them unchanged); the names are reserved, so no webhook can post one. [`Event::task`]
//! reads one back, typed.

use serde::{Deserialize, Serialize};

use crate::create::Priority;
use crate::types::{Event, EventKind};

/// What happened to the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskChange {
    Created,
    Completed,
    /// It reached its due time while open.
    Overdue,
}

/// The task a task event is about, as it was right after the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventTask {
    /// What happened to it (from the event's name, not the payload).
    #[serde(skip_deserializing, default = "created")]
    pub change: TaskChange,
    pub id: String,
    /// The record it belongs to (also the event's record).
    pub record: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// RFC 3339, when it has one.
    #[serde(default)]
    pub due_at: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `open` or `done`.
    pub status: String,
}

fn created() -> TaskChange {
    TaskChange::Created
}

impl EventTask {
    /// Whether it carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

impl Event {
    /// The task of a `task_created`, `task_completed` or `task_overdue` event (None for
    /// any other event).
    ///
    /// ```
    /// # use stagecraft_sdk::prelude::*;
    /// fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
    ///     if let Some(task) = event.task() {
    ///         if task.change == TaskChange::Completed && task.title.starts_with("Call") {
    ///             ctx.comment(&task.record, "the call is done")?;
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn task(&self) -> Option<EventTask> {
        let EventKind::Inbound { name, payload } = &self.kind else {
            return None;
        };
        let change = match name.as_str() {
            "task_created" => TaskChange::Created,
            "task_completed" => TaskChange::Completed,
            "task_overdue" => TaskChange::Overdue,
            _ => return None,
        };
        let mut task = EventTask::deserialize(payload).ok()?;
        task.change = change;
        Some(task)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_task_event_reads_back_typed_and_other_events_do_not() {
        let payload = serde_json::json!({
            "id": "tsk_1", "record": "rec_1", "title": "Call Ada", "description": null,
            "due_at": "2026-06-01T09:00:00Z", "priority": "high", "assignee": "ann",
            "tags": ["call"], "status": "done", "created_by": {"type": "run"}, "version": 2
        });
        let event = |name: &str| Event {
            id: "evt_1".into(),
            kind: EventKind::Inbound {
                name: name.into(),
                payload: payload.clone(),
            },
            record: None,
            occurred_at: "2026-06-01T09:00:00Z".into(),
        };
        let t = event("task_completed").task().unwrap();
        assert_eq!(t.change, TaskChange::Completed);
        assert_eq!((t.title.as_str(), t.priority), ("Call Ada", Priority::High));
        assert!(t.has_tag("call"));
        assert_eq!(
            event("task_overdue").task().unwrap().change,
            TaskChange::Overdue
        );
        assert_eq!(event("webhook").task(), None);
    }
}
