//! What a module run produces: its outcome, the effects it asked for, its log, its host calls.
//!
//! The sandbox fills these in; automation commits the effects and keeps the rest as the run
//! record, so both sides (and the API) share one vocabulary.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stagecraft_rules::Action;
use utoipa::ToSchema;

use crate::record::RecordKind;
use crate::task::Priority;

/// How a run ended. Every limit has its own named outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// `handle` returned Ok and nothing was denied: the effects may commit.
    Ok,
    /// `handle` returned Err with this message.
    GuestError { message: String },
    /// The guest panicked; the panic message from its stderr.
    Panic { message: String },
    /// The guest trapped (stack overflow, unreachable, out-of-bounds, …).
    Trap { message: String },
    /// The instruction budget ran out.
    FuelExhausted,
    /// The wall-clock deadline passed.
    Timeout,
    /// The guest tried to grow memory past the cap.
    MemoryLimit,
    /// The guest made more host calls than allowed.
    HostCallLimit,
    /// Too many messages, or one too large.
    MessageLimit { message: String },
    /// An effect was refused (ungranted field or channel, invalid or backward stage move).
    Denied { message: String },
    /// The guest called `exit`.
    Exit { code: i32 },
    /// Not run: the cascade was already as deep as allowed.
    CascadeLimit { depth: u32 },
    /// Not run: the record triggered too many runs in the last minute and is locked out.
    RateLimited { message: String },
    /// Not run: no run slot came free in time (the tenant's share, or all slots, were busy).
    Busy { message: String },
    /// Too many follow-ups: in one run, pending for the binding on the record, or pending
    /// in the tenant.
    TimerLimit { message: String },
    /// The run's effects (field values, messages, follow-up payloads) add up to more bytes
    /// than one run may commit.
    EffectLimit { message: String },
    /// Not run: the event's record snapshot is gone (retention pruned it before the run), so
    /// the module cannot see what the event was about.
    EventPruned { message: String },
    /// More records, tasks or comments created (or tasks completed) than one run may.
    CreateLimit { message: String },
    /// An inline run waited on the network longer than inline runs may in all (a person is
    /// waiting for the change it belongs to).
    NetworkTimeout { message: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::GuestError { .. } => "guest_error",
            Outcome::Panic { .. } => "panic",
            Outcome::Trap { .. } => "trap",
            Outcome::FuelExhausted => "fuel_exhausted",
            Outcome::Timeout => "timeout",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::HostCallLimit => "host_call_limit",
            Outcome::MessageLimit { .. } => "message_limit",
            Outcome::Denied { .. } => "denied",
            Outcome::Exit { .. } => "exit",
            Outcome::CascadeLimit { .. } => "cascade_limit",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::Busy { .. } => "busy",
            Outcome::TimerLimit { .. } => "timer_limit",
            Outcome::EffectLimit { .. } => "effect_limit",
            Outcome::EventPruned { .. } => "event_pruned",
            Outcome::CreateLimit { .. } => "create_limit",
            Outcome::NetworkTimeout { .. } => "network_timeout",
        }
    }

    /// Every outcome name, in declaration order (filters, documentation).
    pub const NAMES: [&'static str; 19] = [
        "ok",
        "guest_error",
        "panic",
        "trap",
        "fuel_exhausted",
        "timeout",
        "memory_limit",
        "host_call_limit",
        "message_limit",
        "denied",
        "exit",
        "cascade_limit",
        "rate_limited",
        "busy",
        "timer_limit",
        "effect_limit",
        "event_pruned",
        "create_limit",
        "network_timeout",
    ];

    /// The outcome with its message (if it carries one) cut to at most `max` bytes, with a
    /// note saying how long it was: a module's error text is its own, and a 50 MB one must
    /// not become a 50 MB response or run record.
    pub fn bounded(self, max: usize) -> Outcome {
        let cut = |message: String| clip_text(message, max, "the message");
        match self {
            Outcome::GuestError { message } => Outcome::GuestError {
                message: cut(message),
            },
            Outcome::Panic { message } => Outcome::Panic {
                message: cut(message),
            },
            Outcome::Trap { message } => Outcome::Trap {
                message: cut(message),
            },
            Outcome::MessageLimit { message } => Outcome::MessageLimit {
                message: cut(message),
            },
            Outcome::Denied { message } => Outcome::Denied {
                message: cut(message),
            },
            Outcome::RateLimited { message } => Outcome::RateLimited {
                message: cut(message),
            },
            Outcome::Busy { message } => Outcome::Busy {
                message: cut(message),
            },
            Outcome::TimerLimit { message } => Outcome::TimerLimit {
                message: cut(message),
            },
            Outcome::EffectLimit { message } => Outcome::EffectLimit {
                message: cut(message),
            },
            Outcome::EventPruned { message } => Outcome::EventPruned {
                message: cut(message),
            },
            Outcome::CreateLimit { message } => Outcome::CreateLimit {
                message: cut(message),
            },
            Outcome::NetworkTimeout { message } => Outcome::NetworkTimeout {
                message: cut(message),
            },
            other => other,
        }
    }

    /// The message the outcome carries, if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::GuestError { message }
            | Outcome::Panic { message }
            | Outcome::Trap { message }
            | Outcome::MessageLimit { message }
            | Outcome::Denied { message }
            | Outcome::RateLimited { message }
            | Outcome::Busy { message }
            | Outcome::TimerLimit { message }
            | Outcome::EffectLimit { message }
            | Outcome::EventPruned { message }
            | Outcome::CreateLimit { message }
            | Outcome::NetworkTimeout { message } => Some(message),
            Outcome::Ok
            | Outcome::FuelExhausted
            | Outcome::Timeout
            | Outcome::MemoryLimit
            | Outcome::HostCallLimit
            | Outcome::Exit { .. }
            | Outcome::CascadeLimit { .. } => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// A one-line description for people (and for inline rejections).
    pub fn describe(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::GuestError { message } => message.clone(),
            Outcome::Panic { message } => format!("the module panicked: {message}"),
            Outcome::Trap { message } => format!("the module trapped: {message}"),
            Outcome::FuelExhausted => "the module ran out of its instruction budget".into(),
            Outcome::Timeout => "the module ran past its deadline".into(),
            Outcome::MemoryLimit => "the module tried to use more memory than allowed".into(),
            Outcome::HostCallLimit => "the module made more host calls than allowed".into(),
            Outcome::MessageLimit { message } => message.clone(),
            Outcome::Denied { message } => format!("denied: {message}"),
            Outcome::Exit { code } => format!("the module exited with code {code}"),
            Outcome::CascadeLimit { depth } => {
                format!("not run: the cascade reached its depth limit of {depth}")
            }
            Outcome::RateLimited { message } => format!("not run: {message}"),
            Outcome::Busy { message } => format!("not run: {message}"),
            Outcome::TimerLimit { message } => message.clone(),
            Outcome::EffectLimit { message } => message.clone(),
            Outcome::EventPruned { message } => format!("not run: {message}"),
            Outcome::CreateLimit { message } => message.clone(),
            Outcome::NetworkTimeout { message } => message.clone(),
        }
    }
}

/// `text` cut to at most `max` bytes (on a character boundary) plus a note naming `what` was
/// cut and how long it was; unchanged when it fits.
pub fn clip_text(mut text: String, max: usize, what: &str) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!(
        " … [cut: {what} was {total} bytes; {max} are kept]"
    ));
    text
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Webhook,
    Notify,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Email,
        Channel::Sms,
        Channel::Webhook,
        Channel::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
            Channel::Notify => "notify",
        }
    }
}

/// A change a module asked for. Buffered during the run; applied only if it ends `ok`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    MoveStage {
        record: String,
        from: String,
        to: String,
    },
    SetField {
        record: String,
        field: String,
        #[schema(value_type = Object)]
        value: Value,
    },
    QueueMessage {
        id: String,
        channel: Channel,
        to: String,
        subject: String,
        body: String,
        idempotency_key: Option<String>,
        record: Option<String>,
    },
    Schedule {
        id: String,
        record: String,
        seconds: u64,
        #[schema(value_type = Object)]
        payload: Value,
    },
    /// A new record (`records.create`, host API 0.2). `fields` are checked by the shared
    /// field rules and its links resolve to existing records (or ones this run created).
    CreateRecord {
        id: String,
        kind: RecordKind,
        name: String,
        /// Leads and deals: the pipeline and the stage they start in.
        pipeline: Option<String>,
        stage: Option<String>,
        /// Other core fields (`email`, `owner`, `company`, `contact`, …) and custom fields.
        #[schema(value_type = Object)]
        fields: Map<String, Value>,
    },
    /// A new task on `record` (`tasks.create`); the run is its creator.
    CreateTask {
        id: String,
        record: String,
        title: String,
        description: Option<String>,
        /// The event's time plus the delay the module asked for.
        due_at: Option<DateTime<Utc>>,
        #[schema(schema_with = crate::schema::priority)]
        priority: Priority,
        assignee: Option<String>,
        tags: Vec<String>,
    },
    /// An open task marked done (`tasks.complete`); the run completed it.
    CompleteTask { task: String, record: String },
    /// A comment on `record`'s timeline (`timeline.comment`); the run is its author.
    Comment {
        id: String,
        record: String,
        body: String,
    },
}

impl Effect {
    /// The record the effect is about, when it has one (messages may not).
    pub fn record(&self) -> Option<&str> {
        match self {
            Effect::MoveStage { record, .. }
            | Effect::SetField { record, .. }
            | Effect::Schedule { record, .. }
            | Effect::CreateTask { record, .. }
            | Effect::CompleteTask { record, .. }
            | Effect::Comment { record, .. } => Some(record),
            Effect::CreateRecord { id, .. } => Some(id),
            Effect::QueueMessage { record, .. } => record.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LogLine {
    /// `debug`, `info`, `warn`, `error` from the log interface; `stdout` / `stderr` for
    /// captured output; `host` for what the host noticed (e.g. a refused socket).
    pub level: String,
    pub message: String,
}

/// One call the module made into the host, for the run record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct HostCall {
    /// e.g. `records.get`, `stages.move-to`.
    pub call: String,
    /// The main argument (record id, field name, channel …).
    pub target: String,
    /// The error returned to the module, if any.
    pub error: Option<String>,
}

/// What a binding lets its module do. The default grants nothing beyond forward stage moves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Field names the module may write (`owner` included); `"*"` for any.
    #[serde(default)]
    #[schema(schema_with = crate::schema::granted_fields)]
    pub fields: Vec<String>,
    /// Channels the module may queue messages on.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Whether the module may move records to an earlier stage.
    #[serde(default)]
    pub backward: bool,
    /// Where the module may call over HTTP (none by default).
    #[serde(default, skip_serializing_if = "crate::outbound::HttpGrant::is_empty")]
    pub http: crate::outbound::HttpGrant,
    /// What the module may create, complete or comment (host API 0.2): `create:deal`,
    /// `create:task`, `complete:task`, `comment`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = crate::schema::granted_actions)]
    pub actions: Vec<Action>,
}

impl Grants {
    /// Everything: what a dry-run without a binding uses.
    pub fn all() -> Grants {
        Grants {
            fields: vec!["*".into()],
            channels: Channel::ALL.to_vec(),
            backward: true,
            http: Default::default(),
            actions: Action::ALL.to_vec(),
        }
    }

    /// `Err` with the denial (naming the grant) unless `action` is granted.
    pub fn check(&self, action: Action) -> Result<(), String> {
        stagecraft_rules::grant::check(&self.actions, action)
    }

    pub fn may_write(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == "*" || f == field)
    }

    pub fn may_send(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_with_a_note() {
        let huge = Outcome::GuestError {
            message: "é".repeat(1000),
        }
        .bounded(101);
        let Outcome::GuestError { message } = &huge else {
            panic!("{huge:?}")
        };
        assert!(message.starts_with(&"é".repeat(50)));
        assert!(
            message.ends_with("[cut: the message was 2000 bytes; 101 are kept]"),
            "{message}"
        );
        let short = Outcome::Panic {
            message: "short".into(),
        };
        assert_eq!(short.clone().bounded(100), short);
        assert_eq!(Outcome::Timeout.bounded(1), Outcome::Timeout);
        for name in Outcome::NAMES {
            assert!(!name.is_empty());
        }
        assert_eq!(
            Outcome::EventPruned {
                message: "m".into()
            }
            .name(),
            Outcome::NAMES[16]
        );
        assert_eq!(
            Outcome::CreateLimit {
                message: "m".into()
            }
            .name(),
            Outcome::NAMES[17]
        );
    }

    #[test]
    fn actions_are_granted_by_name_and_absent_means_none() {
        let g: Grants = serde_json::from_value(serde_json::json!({
            "fields": ["score"], "actions": ["create:deal", "comment"]
        }))
        .unwrap();
        assert!(g.check(Action::Comment).is_ok());
        let denial = g.check(Action::CreateTask).unwrap_err();
        assert!(denial.contains("\"create:task\""), "{denial}");
        // Bindings stored before 0.2 have no `actions`: they grant none.
        let old: Grants = serde_json::from_value(serde_json::json!({"fields": []})).unwrap();
        assert!(old.actions.is_empty());
        assert!(Action::ALL.iter().all(|a| Grants::all().check(*a).is_ok()));
        let bad = serde_json::from_value::<Grants>(serde_json::json!({"actions": ["delete"]}));
        assert!(bad.unwrap_err().to_string().contains("unknown grant"));
    }
}
