//! What a rule may create (host API 0.2): new records ([`NewRecord`]) and tasks
//! ([`NewTask`]), built with small typed builders. Comments need no type: see
//! [`Ctx::comment`](crate::Ctx::comment).
//!
//! Each needs its grant on the binding (`create:lead` … `create:deal`, `create:task`,
//! `complete:task`, `comment`); without it the call is [`HostError::Denied`] naming the grant
//! and the run fails. Bounds (title 255 bytes, description and comment body 16 KiB, 16 tags,
//! due at most 366 days ahead) are `stagecraft-rules`' own, checked by the host and by
//! [`MockHost`](crate::testing::MockHost) alike.
//!
//! [`HostError::Denied`]: crate::HostError::Denied

use serde::Serialize;
use serde_json::{Map, Value};

use crate::types::RecordKind;
pub use stagecraft_rules::task::Priority;

/// A record to create with [`Ctx::create_record`](crate::Ctx::create_record).
///
/// ```
/// use stagecraft_sdk::NewRecord;
/// let company = NewRecord::company("Analytical Engines Ltd");
/// let deal = NewRecord::deal("deals", "Engine No. 2")
///     .field("amount", &250_000)
///     .field("currency", "GBP")
///     .link_company("rec_company");
/// assert_eq!(deal.fields["currency"], "GBP");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecord {
    /// Lead, contact, company or deal.
    pub kind: RecordKind,
    /// Person's or company's name, or the deal's title.
    pub name: String,
    /// Leads and deals: the pipeline (required for them; contacts and companies have none).
    pub pipeline: Option<String>,
    /// The starting stage; `None`: the pipeline's first.
    pub stage: Option<String>,
    /// Other fields, core and custom, by name.
    pub fields: Map<String, Value>,
}

impl NewRecord {
    fn new(kind: RecordKind, pipeline: Option<String>, name: impl Into<String>) -> Self {
        NewRecord {
            kind,
            name: name.into(),
            pipeline,
            stage: None,
            fields: Map::new(),
        }
    }

    /// A lead in `pipeline`.
    pub fn lead(pipeline: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(RecordKind::Lead, Some(pipeline.into()), name)
    }

    /// A deal in `pipeline`.
    pub fn deal(pipeline: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(RecordKind::Deal, Some(pipeline.into()), title)
    }

    /// A contact (a person).
    pub fn contact(name: impl Into<String>) -> Self {
        Self::new(RecordKind::Contact, None, name)
    }

    /// A company.
    pub fn company(name: impl Into<String>) -> Self {
        Self::new(RecordKind::Company, None, name)
    }

    /// Starts in `stage` instead of the pipeline's first.
    pub fn stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// Sets a field (core or custom) to `value`. A value that cannot be serialized becomes
    /// `null`.
    pub fn field<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.fields.insert(name.to_string(), value);
        self
    }

    /// Links to a company record (contacts, leads, deals).
    pub fn link_company(self, id: &str) -> Self {
        self.field("company", id)
    }

    /// Links to a contact record (leads, deals).
    pub fn link_contact(self, id: &str) -> Self {
        self.field("contact", id)
    }
}

/// A task to create with [`Ctx::create_task`](crate::Ctx::create_task).
///
/// ```
/// use stagecraft_sdk::{NewTask, Priority};
/// let task = NewTask::new("rec_1", "Call within 24 h")
///     .due_in(24 * 3600)
///     .assignee("u-ada")
///     .priority(Priority::High)
///     .tag("call");
/// assert_eq!(task.due_in_seconds, Some(86_400));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The record it belongs to.
    pub record: String,
    /// 1-255 bytes, not blank.
    pub title: String,
    /// At most 16 KiB.
    pub description: Option<String>,
    /// Falls due this many seconds after the event; `None`: never overdue.
    pub due_in_seconds: Option<u64>,
    /// Low, normal (the default) or high.
    pub priority: Priority,
    /// The CRM user it is assigned to.
    pub assignee: Option<String>,
    /// Slugs task triggers can filter on.
    pub tags: Vec<String>,
}

impl NewTask {
    /// A normal-priority task on `record`, unassigned, without a due time.
    pub fn new(record: impl Into<String>, title: impl Into<String>) -> Self {
        NewTask {
            record: record.into(),
            title: title.into(),
            description: None,
            due_in_seconds: None,
            priority: Priority::Normal,
            assignee: None,
            tags: Vec::new(),
        }
    }

    /// Adds a description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Falls due `seconds` after the event.
    pub fn due_in(mut self, seconds: u64) -> Self {
        self.due_in_seconds = Some(seconds);
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Assigns it to a CRM user.
    pub fn assignee(mut self, user: impl Into<String>) -> Self {
        self.assignee = Some(user.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
}
