//! Host-side bindings generated from the contract in `guest-sdk/wit`, and conversions between
//! the domain types and the generated WIT types.

use serde_json::Value;

use crate::model::{self, Event, EventKind, Record, RecordKind};

mod generated {
    wasmtime::component::bindgen!({
        world: "rule",
        path: "../../guest-sdk/wit",
        imports: { default: trappable },
    });
}
pub use generated::*;

pub use generated::stagecraft::automation::types as t;

pub fn kind_to_wit(k: RecordKind) -> t::RecordKind {
    match k {
        RecordKind::Lead => t::RecordKind::Lead,
        RecordKind::Contact => t::RecordKind::Contact,
        RecordKind::Company => t::RecordKind::Company,
        RecordKind::Deal => t::RecordKind::Deal,
    }
}

pub fn kind_from_wit(k: t::RecordKind) -> RecordKind {
    match k {
        t::RecordKind::Lead => RecordKind::Lead,
        t::RecordKind::Contact => RecordKind::Contact,
        t::RecordKind::Company => RecordKind::Company,
        t::RecordKind::Deal => RecordKind::Deal,
    }
}

pub fn record_to_wit(r: &Record) -> t::CrmRecord {
    t::CrmRecord {
        id: r.id.clone(),
        kind: kind_to_wit(r.kind),
        name: r.name.clone(),
        email: r.email.clone(),
        phone: r.phone.clone(),
        amount: r.amount,
        currency: r.currency.clone(),
        owner: r.owner.clone(),
        company: r.company.clone(),
        contact: r.contact.clone(),
        pipeline: r.pipeline.clone(),
        stage: r.stage.clone(),
        custom: Value::Object(r.custom.clone()).to_string(),
        version: r.version,
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

pub fn event_to_wit(e: &Event) -> t::Event {
    let kind = match &e.kind {
        EventKind::Created => t::EventKind::Created,
        EventKind::Updated { fields } => t::EventKind::Updated(fields.clone()),
        EventKind::StageChanged { from, to } => t::EventKind::StageChanged(t::StageChange {
            from_stage: from.clone(),
            to_stage: to.clone(),
        }),
        EventKind::Assigned { from, to } => t::EventKind::Assigned(t::Assignment {
            previous: from.clone(),
            current: to.clone(),
        }),
        EventKind::Deleted => t::EventKind::Deleted,
        EventKind::Scheduled { payload } => t::EventKind::Scheduled(payload.to_string()),
        EventKind::Inbound { name, payload } => t::EventKind::Inbound(t::InboundEvent {
            name: name.clone(),
            payload: payload.to_string(),
        }),
        // Task events reach modules as inbound events named after their kind, with the task
        // as the payload: `event-kind` gains no case, so modules built against 0.1 (whose
        // `event-kind` has none either) link and receive them unchanged. The names are
        // reserved: `POST /v1/events` refuses them.
        EventKind::TaskCreated { task }
        | EventKind::TaskCompleted { task }
        | EventKind::TaskOverdue { task } => t::EventKind::Inbound(t::InboundEvent {
            name: e.kind.name().to_string(),
            payload: serde_json::to_string(task).unwrap_or_default(),
        }),
    };
    t::Event {
        id: e.id.clone(),
        kind,
        record: e.snapshot.as_ref().map(record_to_wit),
        occurred_at: e.occurred_at.to_rfc3339(),
    }
}

pub fn channel_from_wit(c: generated::stagecraft::automation::messages::Channel) -> model::Channel {
    use generated::stagecraft::automation::messages::Channel as C;
    match c {
        C::Email => model::Channel::Email,
        C::Sms => model::Channel::Sms,
        C::Webhook => model::Channel::Webhook,
        C::Notify => model::Channel::Notify,
    }
}
