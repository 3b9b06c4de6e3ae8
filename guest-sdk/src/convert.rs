//! Conversions between the typed values in [`crate::types`] and the generated WIT types.
//!
//! This is the only place that knows how the contract encodes things: custom fields and
//! payloads travel as JSON text, kinds and channels as WIT enums. Decoding host data never
//! panics: malformed JSON from the host becomes an `Err(String)` naming the field.

use serde_json::{Map, Value};

use crate::bindings::stagecraft::automation::{log, messages, records, tasks, types as wit};
use crate::create::{NewRecord, NewTask, Priority};
use crate::types::{
    Channel, Event, EventKind, Filter, HostError, Level, Message, Record, RecordKind,
};

/// Parses JSON object text (the `custom` field); empty text counts as `{}`.
pub(crate) fn parse_object(what: &str, text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "{what}: expected a JSON object, got {}",
            json_type(&other)
        )),
        Err(e) => Err(format!("{what}: invalid JSON: {e}")),
    }
}

/// Parses arbitrary JSON text (payloads); empty text counts as `null`.
pub(crate) fn parse_value(what: &str, text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| format!("{what}: invalid JSON: {e}"))
}

/// A short name of a JSON value's type, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl From<wit::RecordKind> for RecordKind {
    fn from(k: wit::RecordKind) -> Self {
        match k {
            wit::RecordKind::Lead => RecordKind::Lead,
            wit::RecordKind::Contact => RecordKind::Contact,
            wit::RecordKind::Company => RecordKind::Company,
            wit::RecordKind::Deal => RecordKind::Deal,
        }
    }
}

impl From<RecordKind> for wit::RecordKind {
    fn from(k: RecordKind) -> Self {
        match k {
            RecordKind::Lead => wit::RecordKind::Lead,
            RecordKind::Contact => wit::RecordKind::Contact,
            RecordKind::Company => wit::RecordKind::Company,
            RecordKind::Deal => wit::RecordKind::Deal,
        }
    }
}

impl TryFrom<wit::CrmRecord> for Record {
    type Error = String;

    /// Fails only when `custom` is not a JSON object.
    fn try_from(r: wit::CrmRecord) -> Result<Self, String> {
        let custom = parse_object(&format!("record {} custom fields", r.id), &r.custom)?;
        Ok(Record {
            id: r.id,
            kind: r.kind.into(),
            name: r.name,
            email: r.email,
            phone: r.phone,
            amount: r.amount,
            currency: r.currency,
            owner: r.owner,
            company: r.company,
            contact: r.contact,
            pipeline: r.pipeline,
            stage: r.stage,
            custom,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl From<Record> for wit::CrmRecord {
    fn from(r: Record) -> Self {
        wit::CrmRecord {
            custom: Value::Object(r.custom).to_string(),
            id: r.id,
            kind: r.kind.into(),
            name: r.name,
            email: r.email,
            phone: r.phone,
            amount: r.amount,
            currency: r.currency,
            owner: r.owner,
            company: r.company,
            contact: r.contact,
            pipeline: r.pipeline,
            stage: r.stage,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl TryFrom<wit::EventKind> for EventKind {
    type Error = String;

    /// Fails only when a payload is not valid JSON.
    fn try_from(k: wit::EventKind) -> Result<Self, String> {
        Ok(match k {
            wit::EventKind::Created => EventKind::Created,
            wit::EventKind::Updated(fields) => EventKind::Updated { fields },
            wit::EventKind::StageChanged(c) => EventKind::StageChanged {
                from: c.from_stage,
                to: c.to_stage,
            },
            wit::EventKind::Assigned(a) => EventKind::Assigned {
                from: a.previous,
                to: a.current,
            },
            wit::EventKind::Deleted => EventKind::Deleted,
            wit::EventKind::Scheduled(p) => EventKind::Scheduled {
                payload: parse_value("scheduled payload", &p)?,
            },
            wit::EventKind::Inbound(i) => EventKind::Inbound {
                payload: parse_value(&format!("inbound event {} payload", i.name), &i.payload)?,
                name: i.name,
            },
        })
    }
}

impl From<EventKind> for wit::EventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Created => wit::EventKind::Created,
            EventKind::Updated { fields } => wit::EventKind::Updated(fields),
            EventKind::StageChanged { from, to } => {
                wit::EventKind::StageChanged(wit::StageChange {
                    from_stage: from,
                    to_stage: to,
                })
            }
            EventKind::Assigned { from, to } => wit::EventKind::Assigned(wit::Assignment {
                previous: from,
                current: to,
            }),
            EventKind::Deleted => wit::EventKind::Deleted,
            EventKind::Scheduled { payload } => wit::EventKind::Scheduled(payload.to_string()),
            EventKind::Inbound { name, payload } => wit::EventKind::Inbound(wit::InboundEvent {
                name,
                payload: payload.to_string(),
            }),
        }
    }
}

impl TryFrom<wit::Event> for Event {
    type Error = String;

    /// Fails when the record's custom fields or the payload are not valid JSON.
    fn try_from(e: wit::Event) -> Result<Self, String> {
        Ok(Event {
            kind: e.kind.try_into()?,
            record: e.record.map(Record::try_from).transpose()?,
            id: e.id,
            occurred_at: e.occurred_at,
        })
    }
}

impl From<Event> for wit::Event {
    fn from(e: Event) -> Self {
        wit::Event {
            id: e.id,
            kind: e.kind.into(),
            record: e.record.map(Into::into),
            occurred_at: e.occurred_at,
        }
    }
}

impl From<wit::HostError> for HostError {
    fn from(e: wit::HostError) -> Self {
        match e {
            wit::HostError::NotFound(m) => HostError::NotFound(m),
            wit::HostError::Denied(m) => HostError::Denied(m),
            wit::HostError::Invalid(m) => HostError::Invalid(m),
            wit::HostError::Limit(m) => HostError::Limit(m),
        }
    }
}

impl From<HostError> for wit::HostError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::NotFound(m) => wit::HostError::NotFound(m),
            HostError::Denied(m) => wit::HostError::Denied(m),
            HostError::Invalid(m) => wit::HostError::Invalid(m),
            HostError::Limit(m) => wit::HostError::Limit(m),
        }
    }
}

impl From<Channel> for messages::Channel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Email => messages::Channel::Email,
            Channel::Sms => messages::Channel::Sms,
            Channel::Webhook => messages::Channel::Webhook,
            Channel::Notify => messages::Channel::Notify,
        }
    }
}

impl From<messages::Channel> for Channel {
    fn from(c: messages::Channel) -> Self {
        match c {
            messages::Channel::Email => Channel::Email,
            messages::Channel::Sms => Channel::Sms,
            messages::Channel::Webhook => Channel::Webhook,
            messages::Channel::Notify => Channel::Notify,
        }
    }
}

impl From<&Message> for messages::Message {
    fn from(m: &Message) -> Self {
        messages::Message {
            channel: m.channel.into(),
            to: m.to.clone(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            idempotency_key: m.idempotency_key.clone(),
        }
    }
}

impl From<messages::Message> for Message {
    fn from(m: messages::Message) -> Self {
        Message {
            channel: m.channel.into(),
            to: m.to,
            subject: m.subject,
            body: m.body,
            idempotency_key: m.idempotency_key,
        }
    }
}

impl From<Level> for log::Level {
    fn from(l: Level) -> Self {
        match l {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        }
    }
}

impl From<log::Level> for Level {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        }
    }
}

impl From<&Filter> for records::Filter {
    fn from(f: &Filter) -> Self {
        records::Filter {
            kind: f.kind.map(Into::into),
            pipeline: f.pipeline.clone(),
            stage: f.stage.clone(),
            owner: f.owner.clone(),
        }
    }
}

impl From<records::Filter> for Filter {
    fn from(f: records::Filter) -> Self {
        Filter {
            kind: f.kind.map(Into::into),
            pipeline: f.pipeline,
            stage: f.stage,
            owner: f.owner,
        }
    }
}

impl From<&NewRecord> for records::NewRecord {
    fn from(r: &NewRecord) -> Self {
        records::NewRecord {
            kind: r.kind.into(),
            name: r.name.clone(),
            pipeline: r.pipeline.clone(),
            stage: r.stage.clone(),
            fields: Value::Object(r.fields.clone()).to_string(),
        }
    }
}

impl From<Priority> for tasks::Priority {
    fn from(p: Priority) -> Self {
        match p {
            Priority::Low => tasks::Priority::Low,
            Priority::Normal => tasks::Priority::Normal,
            Priority::High => tasks::Priority::High,
        }
    }
}

impl From<&NewTask> for tasks::NewTask {
    fn from(t: &NewTask) -> Self {
        tasks::NewTask {
            record: t.record.clone(),
            title: t.title.clone(),
            description: t.description.clone(),
            due_in_seconds: t.due_in_seconds,
            priority: t.priority.into(),
            assignee: t.assignee.clone(),
            tags: t.tags.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing;

    fn wit_record(custom: &str) -> wit::CrmRecord {
        let mut r: wit::CrmRecord = testing::lead("l1", "Ada", "sales", "new").into();
        r.custom = custom.to_string();
        r
    }

    #[test]
    fn record_round_trips() {
        let mut rec = testing::deal("d1", "Big deal", "sales", "proposal", 1200.5);
        rec.custom.insert("score".into(), json!(7));
        rec.custom.insert("tags".into(), json!(["a", "b"]));
        let wire: wit::CrmRecord = rec.clone().into();
        assert_eq!(wire.custom, r#"{"score":7,"tags":["a","b"]}"#);
        assert!(matches!(wire.kind, wit::RecordKind::Deal));
        assert_eq!(Record::try_from(wire), Ok(rec));
    }

    #[test]
    fn empty_custom_is_an_empty_object() {
        let rec = Record::try_from(wit_record("")).map_err(|e| e.to_string());
        assert_eq!(rec.map(|r| r.custom.len()), Ok(0));
        let rec = Record::try_from(wit_record("{}"));
        assert_eq!(rec.map(|r| r.custom.len()), Ok(0));
    }

    #[test]
    fn bad_custom_json_is_an_error_not_a_panic() {
        let err = Record::try_from(wit_record("{not json")).err();
        let err = err.unwrap_or_default();
        assert!(
            err.contains("record l1 custom fields: invalid JSON"),
            "{err}"
        );

        let err = Record::try_from(wit_record("[1,2]"))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("expected a JSON object, got an array"),
            "{err}"
        );
    }

    #[test]
    fn event_round_trips_every_kind() {
        let lead = testing::lead("l1", "Ada", "sales", "new");
        let events = [
            Event::created(lead.clone()),
            Event::updated(lead.clone(), &["email", "phone"]),
            Event::stage_changed(lead.clone(), "new", "contacted"),
            Event::assigned(lead.clone(), None, Some("u2")),
            Event::deleted(lead.clone()),
            Event::scheduled(lead.clone(), json!({"step": 2})),
            Event::inbound("form.submitted", json!({"a": [1, null]}), None),
        ];
        for event in events {
            let wire: wit::Event = event.clone().into();
            assert_eq!(Event::try_from(wire), Ok(event));
        }
    }

    #[test]
    fn bad_payload_json_is_an_error() {
        let wire = wit::Event {
            id: "e1".into(),
            kind: wit::EventKind::Scheduled("{oops".into()),
            record: None,
            occurred_at: testing::EPOCH.into(),
        };
        let err = Event::try_from(wire).err().unwrap_or_default();
        assert!(err.starts_with("scheduled payload: invalid JSON"), "{err}");

        let wire = wit::Event {
            id: "e2".into(),
            kind: wit::EventKind::Inbound(wit::InboundEvent {
                name: "hook".into(),
                payload: "nope".into(),
            }),
            record: None,
            occurred_at: testing::EPOCH.into(),
        };
        let err = Event::try_from(wire).err().unwrap_or_default();
        assert!(
            err.starts_with("inbound event hook payload: invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn small_enums_and_messages_convert() {
        for e in [
            HostError::NotFound("a".into()),
            HostError::Denied("b".into()),
            HostError::Invalid("c".into()),
            HostError::Limit("d".into()),
        ] {
            assert_eq!(HostError::from(wit::HostError::from(e.clone())), e);
        }
        for l in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
            assert_eq!(Level::from(log::Level::from(l)), l);
        }
        for m in [
            Message::email("a@b.c", "s", "b").idempotency_key("k"),
            Message::sms("+1", "b"),
            Message::webhook("https://x", "{}"),
            Message::notify("u1", "s", "b"),
        ] {
            assert_eq!(Message::from(messages::Message::from(&m)), m);
        }
        let f = Filter::default()
            .of_kind(RecordKind::Company)
            .in_pipeline("p")
            .in_stage("s")
            .owned_by("o");
        assert_eq!(Filter::from(records::Filter::from(&f)), f);
    }
}
