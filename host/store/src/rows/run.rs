//! The run record row: outcome, effects, log, host calls and HTTP exchanges of one run.
//! Its first fields are the run's owner and head (what run filters and rollups read).

use serde::{Deserialize, Serialize};
use stagecraft_model::outbound::HeaderLine;
use stagecraft_model::{
    Effect, Event, HostCall, HttpExchange, LogLine, Outcome, Priority, RunRecord,
};

use super::binding::ModeRow;
use super::outbox::ChannelRow;
use super::record::KindRow;
use super::{opt_ts, stored_row, ts_opt, EventRow, JsonText, RowError, Ts};

/// How a run ended (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum OutcomeRow {
    Ok,
    GuestError(String),
    Panic(String),
    Trap(String),
    FuelExhausted,
    Timeout,
    MemoryLimit,
    HostCallLimit,
    MessageLimit(String),
    Denied(String),
    Exit(i32),
    CascadeLimit(u32),
    RateLimited(String),
    Busy(String),
    TimerLimit(String),
    EffectLimit(String),
    EventPruned(String),
    CreateLimit(String),
    NetworkTimeout(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum PriorityRow {
    Low,
    Normal,
    High,
}

/// An effect a run asked for (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum EffectRow {
    MoveStage {
        record: String,
        from: String,
        to: String,
    },
    SetField {
        record: String,
        field: String,
        value: JsonText,
    },
    QueueMessage {
        id: String,
        channel: ChannelRow,
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
        payload: JsonText,
    },
    CreateRecord {
        id: String,
        kind: KindRow,
        name: String,
        pipeline: Option<String>,
        stage: Option<String>,
        fields: JsonText,
    },
    CreateTask {
        id: String,
        record: String,
        title: String,
        description: Option<String>,
        due_at: Option<Ts>,
        priority: PriorityRow,
        assignee: Option<String>,
        tags: Vec<String>,
    },
    CompleteTask {
        task: String,
        record: String,
    },
    Comment {
        id: String,
        record: String,
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LogLineRow {
    level: String,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HostCallRow {
    call: String,
    target: String,
    error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HeaderRow {
    name: String,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ExchangeRow {
    method: String,
    url: String,
    request_headers: Vec<HeaderRow>,
    request_bytes: u64,
    request_digest: String,
    status: Option<u16>,
    response_headers: Vec<HeaderRow>,
    response_body: String,
    response_bytes: u64,
    response_complete: bool,
    error: Option<String>,
    replayed: bool,
    started_ms: u64,
    duration_ms: u64,
    response_body_cut: bool,
}

/// A run record. The first four fields are [`RunHeadRow`] (the first two [`RunOwnerRow`]):
/// keep them first, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunRow {
    module: String,
    binding: String,
    record: Option<String>,
    outcome: OutcomeRow,
    id: String,
    event: String,
    event_kind: String,
    version: u32,
    mode: ModeRow,
    depth: u32,
    effects: Vec<EffectRow>,
    discarded: Vec<EffectRow>,
    logs: Vec<LogLineRow>,
    host_calls: Vec<HostCallRow>,
    http: Vec<ExchangeRow>,
    fuel_used: u64,
    peak_memory: u64,
    duration_us: u64,
    started_at: Ts,
    unjournaled_event: Option<Box<EventRow>>,
}

/// The leading fields of a [`RunRow`]: what a run filter looks at.
#[derive(Debug, Deserialize)]
pub(crate) struct RunHeadRow {
    pub module: String,
    pub binding: String,
    pub record: Option<String>,
    pub outcome: OutcomeRow,
}

/// The first two fields of a [`RunRow`]: whose run it is.
#[derive(Debug, Deserialize)]
pub(crate) struct RunOwnerRow {
    pub module: String,
    pub binding: String,
}

stored_row!(RunRow => "run record", 1);

impl OutcomeRow {
    /// The outcome's name, as the model spells it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            OutcomeRow::Ok => "ok",
            OutcomeRow::GuestError(_) => "guest_error",
            OutcomeRow::Panic(_) => "panic",
            OutcomeRow::Trap(_) => "trap",
            OutcomeRow::FuelExhausted => "fuel_exhausted",
            OutcomeRow::Timeout => "timeout",
            OutcomeRow::MemoryLimit => "memory_limit",
            OutcomeRow::HostCallLimit => "host_call_limit",
            OutcomeRow::MessageLimit(_) => "message_limit",
            OutcomeRow::Denied(_) => "denied",
            OutcomeRow::Exit(_) => "exit",
            OutcomeRow::CascadeLimit(_) => "cascade_limit",
            OutcomeRow::RateLimited(_) => "rate_limited",
            OutcomeRow::Busy(_) => "busy",
            OutcomeRow::TimerLimit(_) => "timer_limit",
            OutcomeRow::EffectLimit(_) => "effect_limit",
            OutcomeRow::EventPruned(_) => "event_pruned",
            OutcomeRow::CreateLimit(_) => "create_limit",
            OutcomeRow::NetworkTimeout(_) => "network_timeout",
        }
    }
}

impl From<&Outcome> for OutcomeRow {
    fn from(o: &Outcome) -> OutcomeRow {
        match o.clone() {
            Outcome::Ok => OutcomeRow::Ok,
            Outcome::GuestError { message } => OutcomeRow::GuestError(message),
            Outcome::Panic { message } => OutcomeRow::Panic(message),
            Outcome::Trap { message } => OutcomeRow::Trap(message),
            Outcome::FuelExhausted => OutcomeRow::FuelExhausted,
            Outcome::Timeout => OutcomeRow::Timeout,
            Outcome::MemoryLimit => OutcomeRow::MemoryLimit,
            Outcome::HostCallLimit => OutcomeRow::HostCallLimit,
            Outcome::MessageLimit { message } => OutcomeRow::MessageLimit(message),
            Outcome::Denied { message } => OutcomeRow::Denied(message),
            Outcome::Exit { code } => OutcomeRow::Exit(code),
            Outcome::CascadeLimit { depth } => OutcomeRow::CascadeLimit(depth),
            Outcome::RateLimited { message } => OutcomeRow::RateLimited(message),
            Outcome::Busy { message } => OutcomeRow::Busy(message),
            Outcome::TimerLimit { message } => OutcomeRow::TimerLimit(message),
            Outcome::EffectLimit { message } => OutcomeRow::EffectLimit(message),
            Outcome::EventPruned { message } => OutcomeRow::EventPruned(message),
            Outcome::CreateLimit { message } => OutcomeRow::CreateLimit(message),
            Outcome::NetworkTimeout { message } => OutcomeRow::NetworkTimeout(message),
        }
    }
}

impl From<OutcomeRow> for Outcome {
    fn from(o: OutcomeRow) -> Outcome {
        match o {
            OutcomeRow::Ok => Outcome::Ok,
            OutcomeRow::GuestError(message) => Outcome::GuestError { message },
            OutcomeRow::Panic(message) => Outcome::Panic { message },
            OutcomeRow::Trap(message) => Outcome::Trap { message },
            OutcomeRow::FuelExhausted => Outcome::FuelExhausted,
            OutcomeRow::Timeout => Outcome::Timeout,
            OutcomeRow::MemoryLimit => Outcome::MemoryLimit,
            OutcomeRow::HostCallLimit => Outcome::HostCallLimit,
            OutcomeRow::MessageLimit(message) => Outcome::MessageLimit { message },
            OutcomeRow::Denied(message) => Outcome::Denied { message },
            OutcomeRow::Exit(code) => Outcome::Exit { code },
            OutcomeRow::CascadeLimit(depth) => Outcome::CascadeLimit { depth },
            OutcomeRow::RateLimited(message) => Outcome::RateLimited { message },
            OutcomeRow::Busy(message) => Outcome::Busy { message },
            OutcomeRow::TimerLimit(message) => Outcome::TimerLimit { message },
            OutcomeRow::EffectLimit(message) => Outcome::EffectLimit { message },
            OutcomeRow::EventPruned(message) => Outcome::EventPruned { message },
            OutcomeRow::CreateLimit(message) => Outcome::CreateLimit { message },
            OutcomeRow::NetworkTimeout(message) => Outcome::NetworkTimeout { message },
        }
    }
}

impl From<Priority> for PriorityRow {
    fn from(p: Priority) -> PriorityRow {
        match p {
            Priority::Low => PriorityRow::Low,
            Priority::Normal => PriorityRow::Normal,
            Priority::High => PriorityRow::High,
        }
    }
}

impl From<PriorityRow> for Priority {
    fn from(p: PriorityRow) -> Priority {
        match p {
            PriorityRow::Low => Priority::Low,
            PriorityRow::Normal => Priority::Normal,
            PriorityRow::High => Priority::High,
        }
    }
}

impl From<&Effect> for EffectRow {
    fn from(e: &Effect) -> EffectRow {
        match e.clone() {
            Effect::MoveStage { record, from, to } => EffectRow::MoveStage { record, from, to },
            Effect::SetField {
                record,
                field,
                value,
            } => EffectRow::SetField {
                record,
                field,
                value: JsonText::of(&value),
            },
            Effect::QueueMessage {
                id,
                channel,
                to,
                subject,
                body,
                idempotency_key,
                record,
            } => EffectRow::QueueMessage {
                id,
                channel: channel.into(),
                to,
                subject,
                body,
                idempotency_key,
                record,
            },
            Effect::Schedule {
                id,
                record,
                seconds,
                payload,
            } => EffectRow::Schedule {
                id,
                record,
                seconds,
                payload: JsonText::of(&payload),
            },
            Effect::CreateRecord {
                id,
                kind,
                name,
                pipeline,
                stage,
                fields,
            } => EffectRow::CreateRecord {
                id,
                kind: kind.into(),
                name,
                pipeline,
                stage,
                fields: JsonText::of(&fields),
            },
            Effect::CreateTask {
                id,
                record,
                title,
                description,
                due_at,
                priority,
                assignee,
                tags,
            } => EffectRow::CreateTask {
                id,
                record,
                title,
                description,
                due_at: ts_opt(&due_at),
                priority: priority.into(),
                assignee,
                tags,
            },
            Effect::CompleteTask { task, record } => EffectRow::CompleteTask { task, record },
            Effect::Comment { id, record, body } => EffectRow::Comment { id, record, body },
        }
    }
}

impl TryFrom<EffectRow> for Effect {
    type Error = RowError;

    fn try_from(e: EffectRow) -> Result<Effect, RowError> {
        Ok(match e {
            EffectRow::MoveStage { record, from, to } => Effect::MoveStage { record, from, to },
            EffectRow::SetField {
                record,
                field,
                value,
            } => Effect::SetField {
                record,
                field,
                value: value.parse()?,
            },
            EffectRow::QueueMessage {
                id,
                channel,
                to,
                subject,
                body,
                idempotency_key,
                record,
            } => Effect::QueueMessage {
                id,
                channel: channel.into(),
                to,
                subject,
                body,
                idempotency_key,
                record,
            },
            EffectRow::Schedule {
                id,
                record,
                seconds,
                payload,
            } => Effect::Schedule {
                id,
                record,
                seconds,
                payload: payload.parse()?,
            },
            EffectRow::CreateRecord {
                id,
                kind,
                name,
                pipeline,
                stage,
                fields,
            } => Effect::CreateRecord {
                id,
                kind: kind.into(),
                name,
                pipeline,
                stage,
                fields: fields.parse()?,
            },
            EffectRow::CreateTask {
                id,
                record,
                title,
                description,
                due_at,
                priority,
                assignee,
                tags,
            } => Effect::CreateTask {
                id,
                record,
                title,
                description,
                due_at: opt_ts(due_at)?,
                priority: priority.into(),
                assignee,
                tags,
            },
            EffectRow::CompleteTask { task, record } => Effect::CompleteTask { task, record },
            EffectRow::Comment { id, record, body } => Effect::Comment { id, record, body },
        })
    }
}

fn headers(h: &[HeaderLine]) -> Vec<HeaderRow> {
    h.iter()
        .map(|h| HeaderRow {
            name: h.name.clone(),
            value: h.value.clone(),
        })
        .collect()
}

fn header_lines(h: Vec<HeaderRow>) -> Vec<HeaderLine> {
    h.into_iter()
        .map(|h| HeaderLine {
            name: h.name,
            value: h.value,
        })
        .collect()
}

impl From<&HttpExchange> for ExchangeRow {
    fn from(x: &HttpExchange) -> ExchangeRow {
        ExchangeRow {
            method: x.method.clone(),
            url: x.url.clone(),
            request_headers: headers(&x.request_headers),
            request_bytes: x.request_bytes,
            request_digest: x.request_digest.clone(),
            status: x.status,
            response_headers: headers(&x.response_headers),
            response_body: x.response_body.clone(),
            response_bytes: x.response_bytes,
            response_complete: x.response_complete,
            error: x.error.clone(),
            replayed: x.replayed,
            started_ms: x.started_ms,
            duration_ms: x.duration_ms,
            response_body_cut: x.response_body_cut,
        }
    }
}

impl From<ExchangeRow> for HttpExchange {
    fn from(x: ExchangeRow) -> HttpExchange {
        HttpExchange {
            method: x.method,
            url: x.url,
            request_headers: header_lines(x.request_headers),
            request_bytes: x.request_bytes,
            request_digest: x.request_digest,
            status: x.status,
            response_headers: header_lines(x.response_headers),
            response_body: x.response_body,
            response_bytes: x.response_bytes,
            response_complete: x.response_complete,
            error: x.error,
            replayed: x.replayed,
            started_ms: x.started_ms,
            duration_ms: x.duration_ms,
            response_body_cut: x.response_body_cut,
        }
    }
}

impl From<&RunRecord> for RunRow {
    fn from(r: &RunRecord) -> RunRow {
        RunRow {
            module: r.module.clone(),
            binding: r.binding.clone(),
            record: r.record.clone(),
            outcome: (&r.outcome).into(),
            id: r.id.clone(),
            event: r.event.clone(),
            event_kind: r.event_kind.clone(),
            version: r.version,
            mode: r.mode.into(),
            depth: r.depth,
            effects: r.effects.iter().map(EffectRow::from).collect(),
            discarded: r.discarded.iter().map(EffectRow::from).collect(),
            logs: r
                .logs
                .iter()
                .map(|l| LogLineRow {
                    level: l.level.clone(),
                    message: l.message.clone(),
                })
                .collect(),
            host_calls: r
                .host_calls
                .iter()
                .map(|c| HostCallRow {
                    call: c.call.clone(),
                    target: c.target.clone(),
                    error: c.error.clone(),
                })
                .collect(),
            http: r.http.iter().map(ExchangeRow::from).collect(),
            fuel_used: r.fuel_used,
            peak_memory: r.peak_memory,
            duration_us: r.duration_us,
            started_at: (&r.started_at).into(),
            unjournaled_event: r
                .unjournaled_event
                .as_deref()
                .map(|e| Box::new(EventRow::from(e))),
        }
    }
}

fn effects(rows: Vec<EffectRow>) -> Result<Vec<Effect>, RowError> {
    rows.into_iter().map(Effect::try_from).collect()
}

impl TryFrom<RunRow> for RunRecord {
    type Error = RowError;

    fn try_from(r: RunRow) -> Result<RunRecord, RowError> {
        Ok(RunRecord {
            id: r.id,
            event: r.event,
            event_kind: r.event_kind,
            record: r.record,
            binding: r.binding,
            module: r.module,
            version: r.version,
            mode: r.mode.into(),
            depth: r.depth,
            outcome: r.outcome.into(),
            effects: effects(r.effects)?,
            discarded: effects(r.discarded)?,
            logs: r
                .logs
                .into_iter()
                .map(|l| LogLine {
                    level: l.level,
                    message: l.message,
                })
                .collect(),
            host_calls: r
                .host_calls
                .into_iter()
                .map(|c| HostCall {
                    call: c.call,
                    target: c.target,
                    error: c.error,
                })
                .collect(),
            http: r.http.into_iter().map(HttpExchange::from).collect(),
            fuel_used: r.fuel_used,
            peak_memory: r.peak_memory,
            duration_us: r.duration_us,
            started_at: r.started_at.get()?,
            unjournaled_event: r
                .unjournaled_event
                .map(|e| Event::try_from(*e).map(Box::new))
                .transpose()?,
        })
    }
}
