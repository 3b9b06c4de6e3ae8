//! The journal's event row, version 2: the compact form the sled backend writes.
//!
//! Against version 1 ([`super::EventRow`], still read, and what PostgreSQL stores):
//! - the event's id and tenant are the key's (`evt/{tenant}/{id}`) and are not repeated,
//!   unless they differ from it;
//! - ids are [`IdRow`]s (16 bytes for a ULID instead of 30 characters);
//! - the record snapshot is a list of field changes ([`FieldRow`]): to a blank record made
//!   from the event itself ([`SnapRow::Own`]), or to the snapshot of an earlier event of the
//!   same record ([`SnapRow::Delta`]), which the sled backend resolves (`sled::journal`).
//!   Changes are only written when applying them gives back exactly the snapshot's row
//!   ([`changes`] checks it); otherwise the snapshot is stored whole ([`SnapRow::Full`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use stagecraft_model::{Cause, Event, EventKind, Record, RecordKind};

use super::event::KindRow;
use super::record::KindRow as RecordKindRow;
use super::task_event::{Context, TaskEventRow};
use super::{encode, stored_row, IdRow, JsonText, RecordRow, RowError, Ts};

/// One field of a snapshot that differs from its base (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum FieldRow {
    Id(IdRow),
    Kind(RecordKindRow),
    Name(String),
    Email(Option<String>),
    Pipeline(Option<String>),
    Stage(Option<String>),
    Owner(Option<String>),
    Phone(Option<String>),
    Amount(Option<f64>),
    Currency(Option<String>),
    Company(Option<String>),
    Contact(Option<String>),
    /// All custom fields, as JSON text.
    Custom(JsonText),
    /// One custom field set (added at the end when new).
    CustomSet(String, JsonText),
    CustomRemove(String),
    Version(u64),
    CreatedAt(Ts),
    UpdatedAt(Ts),
    /// The event's own time.
    CreatedAtEvent,
    UpdatedAtEvent,
}

/// How an event row holds its record snapshot (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum SnapRow {
    None,
    /// Changes to [`blank`]: needs nothing else to read.
    Own(Vec<FieldRow>),
    /// Changes to the snapshot of event `base` (same tenant, same record), which is itself
    /// `depth - 1` steps from a snapshot that needs no other.
    Delta {
        base: IdRow,
        depth: u8,
        changes: Vec<FieldRow>,
    },
    /// The snapshot whole.
    Full(Box<RecordRow>),
}

/// What happened: a task event's task without what the event says (see `task_event`),
/// any other kind as event row v1 stores it (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum JournalKindRow {
    Other(KindRow),
    TaskCreated(TaskEventRow),
    TaskCompleted(TaskEventRow),
    TaskOverdue(TaskEventRow),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CauseRow {
    run: IdRow,
    binding: IdRow,
    /// The chain, without its last binding when that is `binding` (`ends_with_binding`).
    chain: Vec<IdRow>,
    ends_with_binding: bool,
    depth: u32,
}

impl From<&Cause> for CauseRow {
    fn from(c: &Cause) -> CauseRow {
        let ends_with_binding = c.chain.last() == Some(&c.binding);
        let kept = c.chain.len() - usize::from(ends_with_binding);
        CauseRow {
            run: IdRow::from(&c.run),
            binding: IdRow::from(&c.binding),
            chain: c.chain[..kept].iter().map(IdRow::from).collect(),
            ends_with_binding,
            depth: c.depth,
        }
    }
}

impl From<CauseRow> for Cause {
    fn from(c: CauseRow) -> Cause {
        let binding: String = c.binding.into();
        let mut chain: Vec<String> = c.chain.into_iter().map(String::from).collect();
        if c.ends_with_binding {
            chain.push(binding.clone());
        }
        Cause {
            run: c.run.into(),
            binding,
            chain,
            depth: c.depth,
        }
    }
}

/// When an event happened (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum OccurredRow {
    At(Ts),
    /// In the millisecond its id carries (a ULID's time): the nanoseconds past it.
    InIdMs(u32),
}

impl OccurredRow {
    fn of(at: &DateTime<Utc>, id: &str) -> OccurredRow {
        let ms = at.timestamp_millis();
        let within = at.timestamp_subsec_nanos() % 1_000_000;
        if stagecraft_model::id::time_of(id) == Some(ms) {
            let row = OccurredRow::InIdMs(within);
            if row.get(id).ok().as_ref() == Some(at) {
                return row;
            }
        }
        OccurredRow::At(at.into())
    }

    fn get(self, id: &str) -> Result<DateTime<Utc>, RowError> {
        match self {
            OccurredRow::At(t) => t.get(),
            OccurredRow::InIdMs(within) => {
                let ms = stagecraft_model::id::time_of(id)
                    .ok_or_else(|| RowError::Invalid(format!("event id {id} carries no time")))?;
                let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000)
                    .map_err(|e| RowError::Invalid(e.to_string()))?;
                DateTime::from_timestamp(ms.div_euclid(1000), nanos + within).ok_or_else(|| {
                    RowError::Invalid(format!("event time {ms} ms + {within} ns out of range"))
                })
            }
        }
    }
}

/// An event as the sled backend stores it (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JournalRow {
    /// None: the key's id.
    id: Option<IdRow>,
    /// None: the key's tenant.
    tenant: Option<String>,
    record: Option<IdRow>,
    kind: JournalKindRow,
    occurred_at: OccurredRow,
    cause: Option<CauseRow>,
    pub snapshot: SnapRow,
}

stored_row!(JournalRow => "event", 2);

/// The record a snapshot's changes start from when they need no other event: the event's
/// record id, everything else empty, both timestamps the event's.
pub(crate) fn blank(record: Option<&str>, at: DateTime<Utc>) -> Record {
    Record {
        id: record.unwrap_or_default().to_string(),
        kind: RecordKind::Lead,
        name: String::new(),
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: None,
        company: None,
        contact: None,
        pipeline: None,
        stage: None,
        custom: Map::new(),
        version: 0,
        created_at: at,
        updated_at: at,
    }
}

fn row_bytes(r: &Record) -> Option<Vec<u8>> {
    encode(&RecordRow::from(r)).ok()
}

fn custom_changes(base: &Record, new: &Record) -> Vec<FieldRow> {
    if JsonText::of(&base.custom) == JsonText::of(&new.custom) {
        return Vec::new();
    }
    let mut out: Vec<FieldRow> = base
        .custom
        .keys()
        .filter(|k| !new.custom.contains_key(*k))
        .map(|k| FieldRow::CustomRemove(k.clone()))
        .collect();
    for (k, v) in &new.custom {
        if base.custom.get(k) != Some(v) {
            out.push(FieldRow::CustomSet(k.clone(), JsonText::of(v)));
        }
    }
    out
}

/// The changes that turn `base` into `new` (`at`: the event's time), or None when no list
/// of changes reads back exactly as `new`'s row.
pub(crate) fn changes(base: &Record, new: &Record, at: DateTime<Utc>) -> Option<Vec<FieldRow>> {
    let mut out = Vec::new();
    if base.id != new.id {
        out.push(FieldRow::Id(IdRow::from(&new.id)));
    }
    if base.kind != new.kind {
        out.push(FieldRow::Kind(new.kind.into()));
    }
    if base.name != new.name {
        out.push(FieldRow::Name(new.name.clone()));
    }
    let opt = |b: &Option<String>, n: &Option<String>, f: fn(Option<String>) -> FieldRow| {
        (b != n).then(|| f(n.clone()))
    };
    out.extend(opt(&base.email, &new.email, FieldRow::Email));
    out.extend(opt(&base.pipeline, &new.pipeline, FieldRow::Pipeline));
    out.extend(opt(&base.stage, &new.stage, FieldRow::Stage));
    out.extend(opt(&base.owner, &new.owner, FieldRow::Owner));
    out.extend(opt(&base.phone, &new.phone, FieldRow::Phone));
    if base.amount.map(f64::to_bits) != new.amount.map(f64::to_bits) {
        out.push(FieldRow::Amount(new.amount));
    }
    out.extend(opt(&base.currency, &new.currency, FieldRow::Currency));
    out.extend(opt(&base.company, &new.company, FieldRow::Company));
    out.extend(opt(&base.contact, &new.contact, FieldRow::Contact));
    let custom_at = out.len();
    out.extend(custom_changes(base, new));
    if base.version != new.version {
        out.push(FieldRow::Version(new.version));
    }
    if base.created_at != new.created_at {
        out.push(if new.created_at == at {
            FieldRow::CreatedAtEvent
        } else {
            FieldRow::CreatedAt((&new.created_at).into())
        });
    }
    if base.updated_at != new.updated_at {
        out.push(if new.updated_at == at {
            FieldRow::UpdatedAtEvent
        } else {
            FieldRow::UpdatedAt((&new.updated_at).into())
        });
    }
    let want = row_bytes(new)?;
    let reads_back = |changes: &[FieldRow]| {
        apply(base.clone(), changes, at)
            .ok()
            .and_then(|r| row_bytes(&r))
            .is_some_and(|b| b == want)
    };
    if reads_back(&out) {
        return Some(out);
    }
    // Custom fields whose order the per-field changes do not keep: all of them, as text.
    out.retain(|c| {
        !matches!(
            c,
            FieldRow::CustomSet(..) | FieldRow::CustomRemove(_) | FieldRow::Custom(_)
        )
    });
    out.insert(custom_at, FieldRow::Custom(JsonText::of(&new.custom)));
    reads_back(&out).then_some(out)
}

/// `base` with `changes` applied (`at`: the event's time).
pub(crate) fn apply(
    mut r: Record,
    changes: &[FieldRow],
    at: DateTime<Utc>,
) -> Result<Record, RowError> {
    for c in changes {
        match c {
            FieldRow::Id(id) => r.id = id.text(),
            FieldRow::Kind(k) => r.kind = (*k).into(),
            FieldRow::Name(v) => r.name = v.clone(),
            FieldRow::Email(v) => r.email = v.clone(),
            FieldRow::Pipeline(v) => r.pipeline = v.clone(),
            FieldRow::Stage(v) => r.stage = v.clone(),
            FieldRow::Owner(v) => r.owner = v.clone(),
            FieldRow::Phone(v) => r.phone = v.clone(),
            FieldRow::Amount(v) => r.amount = *v,
            FieldRow::Currency(v) => r.currency = v.clone(),
            FieldRow::Company(v) => r.company = v.clone(),
            FieldRow::Contact(v) => r.contact = v.clone(),
            FieldRow::Custom(v) => r.custom = v.parse()?,
            FieldRow::CustomSet(k, v) => {
                r.custom.insert(k.clone(), v.parse()?);
            }
            FieldRow::CustomRemove(k) => {
                r.custom.remove(k);
            }
            FieldRow::Version(v) => r.version = *v,
            FieldRow::CreatedAt(t) => r.created_at = t.get()?,
            FieldRow::UpdatedAt(t) => r.updated_at = t.get()?,
            FieldRow::CreatedAtEvent => r.created_at = at,
            FieldRow::UpdatedAtEvent => r.updated_at = at,
        }
    }
    Ok(r)
}

/// The snapshot of `e` as a row needing no other event: its changes to [`blank`], or the
/// whole record when they would not read back exactly.
pub(crate) fn own_snapshot(e: &Event) -> SnapRow {
    let Some(s) = &e.snapshot else {
        return SnapRow::None;
    };
    match changes(&blank(e.record.as_deref(), e.occurred_at), s, e.occurred_at) {
        Some(c) => SnapRow::Own(c),
        None => SnapRow::Full(Box::new(RecordRow::from(s))),
    }
}

impl JournalRow {
    /// `e` stored under `evt/{tenant}/{id}`, with its snapshot as `snapshot`.
    pub(crate) fn new(tenant: &str, id: &str, e: &Event, snapshot: SnapRow) -> JournalRow {
        let cx = Context {
            record: e.record.as_deref(),
            at: e.occurred_at,
            cause: e.cause.as_ref(),
        };
        let kind = match &e.kind {
            EventKind::TaskCreated { task } => {
                JournalKindRow::TaskCreated(TaskEventRow::new(task, &cx))
            }
            EventKind::TaskCompleted { task } => {
                JournalKindRow::TaskCompleted(TaskEventRow::new(task, &cx))
            }
            EventKind::TaskOverdue { task } => {
                JournalKindRow::TaskOverdue(TaskEventRow::new(task, &cx))
            }
            other => JournalKindRow::Other(other.into()),
        };
        JournalRow {
            id: (e.id != id).then(|| IdRow::from(&e.id)),
            tenant: (e.tenant != tenant).then(|| e.tenant.clone()),
            record: e.record.as_ref().map(IdRow::from),
            kind,
            occurred_at: OccurredRow::of(&e.occurred_at, &e.id),
            cause: e.cause.as_ref().map(CauseRow::from),
            snapshot,
        }
    }

    /// The event stored under `evt/{tenant}/{id}`, without its snapshot (the caller
    /// resolves [`JournalRow::snapshot`]).
    pub(crate) fn event(self, tenant: &str, id: &str) -> Result<(Event, SnapRow), RowError> {
        let record = self.record.map(String::from);
        let id = self.id.map_or_else(|| id.to_string(), String::from);
        let occurred_at = self.occurred_at.get(&id)?;
        let cause = self.cause.map(Cause::from);
        let cx = Context {
            record: record.as_deref(),
            at: occurred_at,
            cause: cause.as_ref(),
        };
        let kind = match self.kind {
            JournalKindRow::Other(k) => k.try_into()?,
            JournalKindRow::TaskCreated(t) => EventKind::TaskCreated {
                task: Box::new(t.task(&cx)?),
            },
            JournalKindRow::TaskCompleted(t) => EventKind::TaskCompleted {
                task: Box::new(t.task(&cx)?),
            },
            JournalKindRow::TaskOverdue(t) => EventKind::TaskOverdue {
                task: Box::new(t.task(&cx)?),
            },
        };
        let event = Event {
            id,
            tenant: self.tenant.unwrap_or_else(|| tenant.to_string()),
            record,
            kind,
            occurred_at,
            cause,
            snapshot: None,
        };
        Ok((event, self.snapshot))
    }

    /// How this row's bytes split between its fields (the disk bench's breakdown).
    pub(crate) fn breakdown(&self) -> Vec<(&'static str, usize)> {
        use super::event::size;
        let snapshot = match &self.snapshot {
            SnapRow::None => "snapshot (none)",
            SnapRow::Own(_) => "snapshot (own)",
            SnapRow::Delta { .. } => "snapshot (delta)",
            SnapRow::Full(_) => "snapshot (full)",
        };
        vec![
            ("id", size(&self.id)),
            ("tenant", size(&self.tenant)),
            ("record", size(&self.record)),
            ("kind", size(&self.kind)),
            ("occurred_at", size(&self.occurred_at)),
            ("cause", size(&self.cause)),
            (snapshot, size(&self.snapshot)),
        ]
    }
}
