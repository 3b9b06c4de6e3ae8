//! Bindings: which module version runs on which pipeline, on which events, how, and with
//! which grants and config.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::event::{Event, EventKind};
use super::run::Grants;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Runs inside the triggering request; an error rejects the change (422).
    Inline,
    /// The change commits first; workers run the binding from the durable queue.
    Background,
}

/// What a binding listens for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "on", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    Created {
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    /// Any update, or only when one of `fields` changed.
    Updated {
        #[serde(default)]
        #[schema(schema_with = crate::schema::field_names)]
        fields: Vec<String>,
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    /// The record entered `stage` (moved there, or was created there).
    EnteredStage {
        #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
        stage: String,
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    StageChanged {
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    Assigned {
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    Deleted {
        /// Never delayed: the record is gone by then.
        #[serde(default)]
        #[schema(maximum = 0)]
        delay_seconds: Option<u64>,
    },
    /// An inbound event posted with this name.
    Inbound {
        #[schema(min_length = 1, max_length = 100)]
        name: String,
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    /// A task of the record was completed; only tasks whose title starts with
    /// `title_prefix` and that carry `tag`, when given. The module sees an inbound event
    /// named `task_completed` with the task as its payload.
    TaskCompleted {
        #[serde(default)]
        #[schema(max_length = 255)]
        title_prefix: Option<String>,
        #[serde(default)]
        #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
        tag: Option<String>,
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
    /// An open task of the record reached its due time (filtered as `task_completed`);
    /// the module sees an inbound event named `task_overdue`.
    TaskOverdue {
        #[serde(default)]
        #[schema(max_length = 255)]
        title_prefix: Option<String>,
        #[serde(default)]
        #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
        tag: Option<String>,
        /// Run this many seconds after the event (at most 366 days).
        #[serde(default)]
        #[schema(maximum = 31_622_400)]
        delay_seconds: Option<u64>,
    },
}

/// Whether `task` passes a task trigger's filter.
fn task_matches(task: &crate::Task, title_prefix: &Option<String>, tag: &Option<String>) -> bool {
    title_prefix
        .as_ref()
        .is_none_or(|p| task.title.starts_with(p.as_str()))
        && tag.as_ref().is_none_or(|t| task.tags.contains(t))
}

impl Trigger {
    /// Run this long after the event (Bitrix24's "in 2 days"), cancelled if the record
    /// leaves the stage it was in.
    pub fn delay_seconds(&self) -> Option<u64> {
        match self {
            Trigger::Created { delay_seconds }
            | Trigger::Updated { delay_seconds, .. }
            | Trigger::EnteredStage { delay_seconds, .. }
            | Trigger::StageChanged { delay_seconds }
            | Trigger::Assigned { delay_seconds }
            | Trigger::Deleted { delay_seconds }
            | Trigger::Inbound { delay_seconds, .. }
            | Trigger::TaskCompleted { delay_seconds, .. }
            | Trigger::TaskOverdue { delay_seconds, .. } => delay_seconds.filter(|d| *d > 0),
        }
    }

    pub fn matches(&self, event: &Event) -> bool {
        match (self, &event.kind) {
            (Trigger::Created { .. }, EventKind::Created) => true,
            (Trigger::Updated { fields: want, .. }, EventKind::Updated { fields }) => {
                want.is_empty() || want.iter().any(|w| fields.contains(w))
            }
            (Trigger::EnteredStage { stage, .. }, EventKind::StageChanged { to, .. }) => {
                to == stage
            }
            (Trigger::EnteredStage { stage, .. }, EventKind::Created) => event
                .snapshot
                .as_ref()
                .and_then(|r| r.stage.as_ref())
                .is_some_and(|s| s == stage),
            (Trigger::StageChanged { .. }, EventKind::StageChanged { .. }) => true,
            (Trigger::Assigned { .. }, EventKind::Assigned { .. }) => true,
            (Trigger::Deleted { .. }, EventKind::Deleted) => true,
            (Trigger::Inbound { name: want, .. }, EventKind::Inbound { name, .. }) => want == name,
            (
                Trigger::TaskCompleted {
                    title_prefix, tag, ..
                },
                EventKind::TaskCompleted { task },
            )
            | (
                Trigger::TaskOverdue {
                    title_prefix, tag, ..
                },
                EventKind::TaskOverdue { task },
            ) => task_matches(task, title_prefix, tag),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Binding {
    pub id: String,
    pub pipeline: String,
    pub module: String,
    /// The module version that runs. Switching it is the rollback.
    pub version: u32,
    pub triggers: Vec<Trigger>,
    pub mode: Mode,
    /// Lower runs first among a pipeline's bindings for the same event.
    pub order: i32,
    #[schema(value_type = Object)]
    pub config: Value,
    pub grants: Grants,
    pub enabled: bool,
    /// Row version for optimistic concurrency.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Binding {
    /// The first trigger that matches `event`, if any.
    pub fn trigger_for(&self, event: &Event) -> Option<&Trigger> {
        self.triggers.iter().find(|t| t.matches(event))
    }
}
