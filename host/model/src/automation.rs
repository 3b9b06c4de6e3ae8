//! The durable records automation keeps: runs, outbox messages, timers and queued jobs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::binding::Mode;
use super::delivery::Attempt;
use super::event::Event;
use super::outbound::HttpExchange;
use super::run::{Channel, Effect, HostCall, LogLine, Outcome};

/// The history of one binding handling one event. Its id is derived from the event and the
/// binding, so a second commit of the same run is refused: that is what makes background
/// processing exactly-once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RunRecord {
    pub id: String,
    pub event: String,
    /// The event's kind, e.g. `stage_changed`.
    pub event_kind: String,
    pub record: Option<String>,
    pub binding: String,
    pub module: String,
    pub version: u32,
    pub mode: Mode,
    /// How deep in a cascade this run was (user changes start at 0).
    pub depth: u32,
    pub outcome: Outcome,
    /// Effects applied (empty unless the outcome is ok).
    pub effects: Vec<Effect>,
    /// Effects the module asked for but that were discarded because the run failed.
    pub discarded: Vec<Effect>,
    pub logs: Vec<LogLine>,
    pub host_calls: Vec<HostCall>,
    /// The HTTP calls the run made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpExchange>,
    pub fuel_used: u64,
    pub peak_memory: u64,
    pub duration_us: u64,
    pub started_at: DateTime<Utc>,
    /// The event itself when the change it belongs to was rejected (by this run or another
    /// inline run) and so never reached the journal; replay runs on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unjournaled_event: Option<Box<Event>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for a delivery worker (or for a channel to be configured).
    Queued,
    Sending,
    Sent,
    /// Gave up after the retry window; can be retried by an admin.
    Dead,
}

/// A message in the durable outbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct OutboxMessage {
    pub id: String,
    pub channel: Channel,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub idempotency_key: Option<String>,
    pub record: Option<String>,
    pub run: String,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    /// Every delivery attempt, oldest first.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due (queued messages).
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
}

/// What a timer does when it comes due.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimerKind {
    /// A module's `schedule.after`: the binding runs again with a `scheduled` event.
    FollowUp {
        #[schema(value_type = Object)]
        payload: Value,
    },
    /// A trigger's delay: the binding runs on the original event.
    Delayed { event: String },
    /// A task's due time: a `task_overdue` event for every binding, unless the task was
    /// completed (or its due time moved) first, which cancels the timer. Its `binding` is
    /// empty and its `stage` None: it outlives stage moves, not its record.
    TaskOverdue { task: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Timer {
    pub id: String,
    pub due: DateTime<Utc>,
    pub binding: String,
    pub record: String,
    /// Cancelled when the record leaves this stage.
    pub stage: Option<String>,
    #[serde(flatten)]
    pub kind: TimerKind,
    /// How deep the cascade that scheduled it was.
    pub depth: u32,
}

/// Work for the background workers: run the bindings for `event` (only `binding`, when set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    pub event: String,
    pub binding: Option<String>,
}
