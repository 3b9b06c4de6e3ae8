//! The record row, and its head: the fields a record filter looks at, a prefix of the row.

use serde::{Deserialize, Serialize};
use stagecraft_model::{Record, RecordKind};

use super::{stored_row, JsonText, RowError, Ts};

/// Record kinds as small integers (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum KindRow {
    Lead,
    Contact,
    Company,
    Deal,
}

impl From<RecordKind> for KindRow {
    fn from(k: RecordKind) -> KindRow {
        match k {
            RecordKind::Lead => KindRow::Lead,
            RecordKind::Contact => KindRow::Contact,
            RecordKind::Company => KindRow::Company,
            RecordKind::Deal => KindRow::Deal,
        }
    }
}

impl From<KindRow> for RecordKind {
    fn from(k: KindRow) -> RecordKind {
        match k {
            KindRow::Lead => RecordKind::Lead,
            KindRow::Contact => RecordKind::Contact,
            KindRow::Company => RecordKind::Company,
            KindRow::Deal => RecordKind::Deal,
        }
    }
}

/// A record. The first seven fields are [`RecordHeadRow`]: keep them first, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordRow {
    id: String,
    kind: KindRow,
    name: String,
    email: Option<String>,
    pipeline: Option<String>,
    stage: Option<String>,
    owner: Option<String>,
    phone: Option<String>,
    amount: Option<f64>,
    currency: Option<String>,
    company: Option<String>,
    contact: Option<String>,
    custom: JsonText,
    version: u64,
    created_at: Ts,
    updated_at: Ts,
}

/// The leading fields of a [`RecordRow`].
#[derive(Debug, Deserialize)]
pub(crate) struct RecordHeadRow {
    /// Decoded to reach the fields after it (postcard is positional), never read.
    pub _id: String,
    pub kind: KindRow,
    pub name: String,
    pub email: Option<String>,
    pub pipeline: Option<String>,
    pub stage: Option<String>,
    pub owner: Option<String>,
}

stored_row!(RecordRow => "record", 1);

impl From<&Record> for RecordRow {
    fn from(r: &Record) -> RecordRow {
        RecordRow {
            id: r.id.clone(),
            kind: r.kind.into(),
            name: r.name.clone(),
            email: r.email.clone(),
            pipeline: r.pipeline.clone(),
            stage: r.stage.clone(),
            owner: r.owner.clone(),
            phone: r.phone.clone(),
            amount: r.amount,
            currency: r.currency.clone(),
            company: r.company.clone(),
            contact: r.contact.clone(),
            custom: JsonText::of(&r.custom),
            version: r.version,
            created_at: (&r.created_at).into(),
            updated_at: (&r.updated_at).into(),
        }
    }
}

impl RecordRow {
    /// How a snapshot's bytes split between its fields (the disk bench's breakdown).
    pub(crate) fn breakdown(&self) -> Vec<(&'static str, usize)> {
        use super::event::size;
        let all = size(self);
        let id = size(&self.id);
        let custom = size(&self.custom);
        let times = size(&self.created_at) + size(&self.updated_at);
        vec![
            ("snapshot id", id),
            ("snapshot custom", custom),
            ("snapshot timestamps", times),
            ("snapshot other", all - id - custom - times),
        ]
    }
}

impl TryFrom<RecordRow> for Record {
    type Error = RowError;

    fn try_from(r: RecordRow) -> Result<Record, RowError> {
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
            custom: r.custom.parse()?,
            version: r.version,
            created_at: r.created_at.get()?,
            updated_at: r.updated_at.get()?,
        })
    }
}
