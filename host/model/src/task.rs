//! Tasks and comments: the work attached to a record ("call within 24 h") and the notes on
//! its timeline, with who made each, a person through the API or a module's run. Their
//! bounds (title, description, body, assignee, how far ahead a task falls due) are
//! `stagecraft_rules::task`, the copy the SDK's `MockHost` checks too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use stagecraft_rules::task::Priority;

/// Whether a task still needs doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
}

/// Who made a task or a comment (or completed a task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A person, through the API (or the console, the CLI) with this API key.
    Key {
        /// The key's id (never its secret).
        key: String,
        /// The key's CRM user, when it has one.
        user: Option<String>,
    },
    /// A module's run: the binding it ran for and the run's id (its run record).
    Run { binding: String, run: String },
}

/// A task on a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: String,
    /// The record it belongs to.
    pub record: String,
    /// 1-255 bytes, not blank.
    pub title: String,
    /// At most 16 KiB.
    pub description: Option<String>,
    /// When it falls due; a task without one is never overdue.
    pub due_at: Option<DateTime<Utc>>,
    #[schema(schema_with = crate::schema::priority)]
    pub priority: Priority,
    /// The CRM user it is assigned to (like a record's `owner`).
    pub assignee: Option<String>,
    /// Slugs a task trigger can filter on (at most 16).
    #[serde(default)]
    pub tags: Vec<String>,
    pub status: TaskStatus,
    pub created_by: Actor,
    /// Who completed it, when it is done.
    pub completed_by: Option<Actor>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Row version for optimistic concurrency.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// Checks what a task holds against the shared bounds (`stagecraft_rules::task`).
    pub fn validate(&self) -> Result<(), String> {
        stagecraft_rules::task::check_new(
            &self.title,
            self.description.as_deref(),
            self.assignee.as_deref(),
            None,
        )?;
        stagecraft_rules::task::check_tags(&self.tags)
    }

    /// Open and past its due time at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == TaskStatus::Open && self.due_at.is_some_and(|d| d <= now)
    }

    /// The durable timer that fires its `task_overdue` event: one per open task with a due
    /// time, at that time (none otherwise). Its id is derived from the task's, so the store
    /// finds it to cancel it when the task is completed or its due time moves.
    pub fn overdue_timer(&self) -> Option<crate::Timer> {
        let due = self.due_at.filter(|_| self.status == TaskStatus::Open)?;
        Some(crate::Timer {
            id: overdue_timer_id(&self.id),
            due,
            binding: String::new(),
            record: self.record.clone(),
            stage: None,
            kind: crate::TimerKind::TaskOverdue {
                task: self.id.clone(),
            },
            depth: 0,
        })
    }

    /// Marks it done by `by` at `at`; false (and unchanged) when it was done already.
    pub fn complete(&mut self, by: Actor, at: DateTime<Utc>) -> bool {
        if self.status == TaskStatus::Done {
            return false;
        }
        self.status = TaskStatus::Done;
        self.completed_by = Some(by);
        self.completed_at = Some(at);
        self.updated_at = at;
        true
    }
}

/// The id of a task's overdue timer (see [`Task::overdue_timer`]).
pub fn overdue_timer_id(task: &str) -> String {
    format!("tov_{}", task.strip_prefix("tsk_").unwrap_or(task))
}

/// A comment on a record's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Comment {
    pub id: String,
    pub record: String,
    /// 1 byte to 16 KiB, not blank.
    pub body: String,
    pub author: Actor,
    pub created_at: DateTime<Utc>,
}

impl Comment {
    /// Checks the body against the shared bound (`stagecraft_rules::task::check_body`).
    pub fn validate(&self) -> Result<(), String> {
        stagecraft_rules::task::check_body(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(due: Option<DateTime<Utc>>) -> Task {
        let t0 = Utc::now();
        Task {
            id: "tsk_1".into(),
            record: "rec_1".into(),
            title: "Call Ada".into(),
            description: None,
            due_at: due,
            priority: Priority::High,
            assignee: Some("u1".into()),
            tags: vec!["call".into()],
            status: TaskStatus::Open,
            created_by: Actor::Run {
                binding: "bnd_1".into(),
                run: "run_1".into(),
            },
            completed_by: None,
            completed_at: None,
            version: 1,
            created_at: t0,
            updated_at: t0,
        }
    }

    #[test]
    fn overdue_until_completed_and_completing_twice_changes_nothing() {
        let now = Utc::now();
        let mut t = task(Some(now - chrono::Duration::seconds(1)));
        assert!(t.validate().is_ok());
        assert!(t.is_overdue(now));
        assert!(!task(None).is_overdue(now));
        let by = Actor::Key {
            key: "key_1".into(),
            user: Some("u1".into()),
        };
        assert!(t.complete(by.clone(), now));
        assert!(!t.is_overdue(now));
        assert!(!t.complete(by, now));
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["status"], "done");
        assert_eq!(json["priority"], "high");
        assert_eq!(json["created_by"]["type"], "run");
        assert_eq!(serde_json::from_value::<Task>(json).unwrap(), t);
    }

    #[test]
    fn bounds_come_from_the_rules() {
        let mut t = task(None);
        t.title = "x".repeat(256);
        assert!(t.validate().unwrap_err().contains("255"));
        t.title = "ok".into();
        t.tags = vec!["no spaces".into()];
        assert!(t.validate().unwrap_err().contains("tag"));
        let c = Comment {
            id: "cmt_1".into(),
            record: "rec_1".into(),
            body: " ".into(),
            author: Actor::Run {
                binding: "b".into(),
                run: "r".into(),
            },
            created_at: Utc::now(),
        };
        assert!(c.validate().unwrap_err().contains("blank"));
    }
}
