//! The journal's event row (with the record snapshot it carries).

use serde::{Deserialize, Serialize};
use stagecraft_model::{Cause, Event, EventKind, Record};

use super::{stored_row, JsonText, RecordRow, RowError, TaskRow, Ts};

/// What happened (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum KindRow {
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
    Scheduled {
        payload: JsonText,
    },
    Inbound {
        name: String,
        payload: JsonText,
    },
    TaskCreated(TaskRow),
    TaskCompleted(TaskRow),
    TaskOverdue(TaskRow),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CauseRow {
    run: String,
    binding: String,
    chain: Vec<String>,
    depth: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventRow {
    id: String,
    tenant: String,
    record: Option<String>,
    kind: KindRow,
    occurred_at: Ts,
    cause: Option<CauseRow>,
    snapshot: Option<RecordRow>,
}

stored_row!(EventRow => "event", 1);

impl From<&EventKind> for KindRow {
    fn from(k: &EventKind) -> KindRow {
        match k {
            EventKind::Created => KindRow::Created,
            EventKind::Updated { fields } => KindRow::Updated {
                fields: fields.clone(),
            },
            EventKind::StageChanged { from, to } => KindRow::StageChanged {
                from: from.clone(),
                to: to.clone(),
            },
            EventKind::Assigned { from, to } => KindRow::Assigned {
                from: from.clone(),
                to: to.clone(),
            },
            EventKind::Deleted => KindRow::Deleted,
            EventKind::Scheduled { payload } => KindRow::Scheduled {
                payload: JsonText::of(payload),
            },
            EventKind::Inbound { name, payload } => KindRow::Inbound {
                name: name.clone(),
                payload: JsonText::of(payload),
            },
            EventKind::TaskCreated { task } => KindRow::TaskCreated(task.as_ref().into()),
            EventKind::TaskCompleted { task } => KindRow::TaskCompleted(task.as_ref().into()),
            EventKind::TaskOverdue { task } => KindRow::TaskOverdue(task.as_ref().into()),
        }
    }
}

impl TryFrom<KindRow> for EventKind {
    type Error = RowError;

    fn try_from(k: KindRow) -> Result<EventKind, RowError> {
        Ok(match k {
            KindRow::Created => EventKind::Created,
            KindRow::Updated { fields } => EventKind::Updated { fields },
            KindRow::StageChanged { from, to } => EventKind::StageChanged { from, to },
            KindRow::Assigned { from, to } => EventKind::Assigned { from, to },
            KindRow::Deleted => EventKind::Deleted,
            KindRow::Scheduled { payload } => EventKind::Scheduled {
                payload: payload.parse()?,
            },
            KindRow::Inbound { name, payload } => EventKind::Inbound {
                name,
                payload: payload.parse()?,
            },
            KindRow::TaskCreated(task) => EventKind::TaskCreated {
                task: Box::new(task.try_into()?),
            },
            KindRow::TaskCompleted(task) => EventKind::TaskCompleted {
                task: Box::new(task.try_into()?),
            },
            KindRow::TaskOverdue(task) => EventKind::TaskOverdue {
                task: Box::new(task.try_into()?),
            },
        })
    }
}

impl From<&Event> for EventRow {
    fn from(e: &Event) -> EventRow {
        EventRow {
            id: e.id.clone(),
            tenant: e.tenant.clone(),
            record: e.record.clone(),
            kind: (&e.kind).into(),
            occurred_at: (&e.occurred_at).into(),
            cause: e.cause.as_ref().map(|c| CauseRow {
                run: c.run.clone(),
                binding: c.binding.clone(),
                chain: c.chain.clone(),
                depth: c.depth,
            }),
            snapshot: e.snapshot.as_ref().map(RecordRow::from),
        }
    }
}

impl TryFrom<EventRow> for Event {
    type Error = RowError;

    fn try_from(e: EventRow) -> Result<Event, RowError> {
        Ok(Event {
            id: e.id,
            tenant: e.tenant,
            record: e.record,
            kind: e.kind.try_into()?,
            occurred_at: e.occurred_at.get()?,
            cause: e.cause.map(|c| Cause {
                run: c.run,
                binding: c.binding,
                chain: c.chain,
                depth: c.depth,
            }),
            snapshot: e.snapshot.map(Record::try_from).transpose()?,
        })
    }
}

/// The size of `v` as postcard writes it.
pub(crate) fn size<T: Serialize + ?Sized>(v: &T) -> usize {
    postcard::to_allocvec(v).map_or(0, |b| b.len())
}

impl EventRow {
    /// How this row's bytes split between its fields (the disk bench's breakdown).
    pub(crate) fn breakdown(&self) -> Vec<(&'static str, usize)> {
        let mut out = vec![
            ("id", size(&self.id)),
            ("tenant", size(&self.tenant)),
            ("record", size(&self.record)),
            ("kind", size(&self.kind)),
            ("occurred_at", size(&self.occurred_at)),
            ("cause", size(&self.cause)),
        ];
        match &self.snapshot {
            Some(s) => {
                out.push(("snapshot tag", 1));
                out.extend(s.breakdown());
            }
            None => out.push(("snapshot tag", 1)),
        }
        out
    }
}
