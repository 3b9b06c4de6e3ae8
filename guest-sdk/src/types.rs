//! Plain-Rust values a rule works with: records, events, messages, errors.
//!
//! The WIT contract carries JSON as text (custom fields, payloads) and uses generated types
//! that are awkward to build and match on. This module gives rule authors ordinary, serde-able
//! Rust types instead; the private `convert` module translates between the two at the Wasm
//! boundary, so a rule never touches the generated bindings.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What kind of CRM record a [`Record`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A prospect not yet qualified.
    Lead,
    /// A person.
    Contact,
    /// An organisation.
    Company,
    /// A sales opportunity.
    Deal,
}

impl RecordKind {
    /// The lowercase name used in the WIT contract and in JSON (`"lead"`, `"deal"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Lead => "lead",
            RecordKind::Contact => "contact",
            RecordKind::Company => "company",
            RecordKind::Deal => "deal",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CRM record as the module sees it (the tenant's own data only).
///
/// Core fields are typed; everything else lives in [`Record::custom`]. Timestamps are
/// RFC 3339 text, exactly as the host sent them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record id.
    pub id: String,
    /// Lead, contact, company or deal.
    pub kind: RecordKind,
    /// Person's or company's name, or the deal's title.
    pub name: String,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Deal amount.
    pub amount: Option<f64>,
    /// ISO 4217 currency of [`Record::amount`].
    pub currency: Option<String>,
    /// Owning user.
    pub owner: Option<String>,
    /// Linked company record id.
    pub company: Option<String>,
    /// Linked contact record id (deals).
    pub contact: Option<String>,
    /// Pipeline the record is in.
    pub pipeline: Option<String>,
    /// Stage of [`Record::pipeline`] the record is in.
    pub stage: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: Map<String, Value>,
    /// Optimistic-concurrency version, bumped by every committed change.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl Record {
    /// A custom field deserialized into `T`; `None` when it is absent or does not fit `T`.
    ///
    /// ```
    /// # use stagecraft_sdk::testing;
    /// let mut lead = testing::lead("l1", "Ada", "sales", "new");
    /// lead.custom.insert("score".into(), serde_json::json!(42));
    /// assert_eq!(lead.custom_field::<u32>("score"), Some(42));
    /// assert_eq!(lead.custom_field::<String>("score"), None);
    /// assert_eq!(lead.custom_field::<u32>("missing"), None);
    /// ```
    pub fn custom_field<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.custom.get(name).and_then(|v| T::deserialize(v).ok())
    }

    /// The raw JSON of a custom field.
    pub fn custom_value(&self, name: &str) -> Option<&Value> {
        self.custom.get(name)
    }

    /// Whether the record is currently in `stage`.
    pub fn in_stage(&self, stage: &str) -> bool {
        self.stage.as_deref() == Some(stage)
    }
}

/// What happened to trigger this run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The record was created.
    Created,
    /// Fields of the record changed.
    Updated {
        /// Names of the fields that changed.
        fields: Vec<String>,
    },
    /// The record moved between stages.
    StageChanged {
        /// Stage it left.
        from: String,
        /// Stage it entered.
        to: String,
    },
    /// The record's owner changed.
    Assigned {
        /// Previous owner.
        from: Option<String>,
        /// New owner.
        to: Option<String>,
    },
    /// The record was deleted ([`Event::record`] is the record right before).
    Deleted,
    /// A follow-up this module scheduled with [`Ctx::schedule_after`](crate::Ctx::schedule_after)
    /// came due.
    Scheduled {
        /// The payload given when scheduling.
        payload: Value,
    },
    /// An inbound event (e.g. a webhook) routed to this binding.
    Inbound {
        /// Event name.
        name: String,
        /// Event body.
        payload: Value,
    },
}

impl EventKind {
    /// The kind's name as in the WIT contract: `"created"`, `"stage-changed"`, ...
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated { .. } => "updated",
            EventKind::StageChanged { .. } => "stage-changed",
            EventKind::Assigned { .. } => "assigned",
            EventKind::Deleted => "deleted",
            EventKind::Scheduled { .. } => "scheduled",
            EventKind::Inbound { .. } => "inbound",
        }
    }
}

/// One event; a run handles exactly one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event id.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// The record as it was right after the change (right before, for `deleted`).
    pub record: Option<Record>,
    /// RFC 3339. The module's clocks read this time.
    pub occurred_at: String,
}

impl Event {
    /// The event's record, or an error message suitable for returning from a rule.
    ///
    /// ```
    /// # use stagecraft_sdk::prelude::*;
    /// fn handle(_ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
    ///     let record = event.record()?;
    ///     # let _ = record;
    ///     Ok(())
    /// }
    /// ```
    pub fn record(&self) -> Result<&Record, String> {
        self.record
            .as_ref()
            .ok_or_else(|| format!("event {} ({}) carries no record", self.id, self.kind.name()))
    }

    /// The stage entered, for a `stage-changed` event.
    pub fn entered_stage(&self) -> Option<&str> {
        match &self.kind {
            EventKind::StageChanged { to, .. } => Some(to),
            _ => None,
        }
    }

    /// The stage left, for a `stage-changed` event.
    pub fn left_stage(&self) -> Option<&str> {
        match &self.kind {
            EventKind::StageChanged { from, .. } => Some(from),
            _ => None,
        }
    }

    /// Whether this is a `created` event.
    pub fn is_created(&self) -> bool {
        matches!(self.kind, EventKind::Created)
    }

    /// Whether this is an `updated` event that changed `field`.
    pub fn changed(&self, field: &str) -> bool {
        matches!(&self.kind, EventKind::Updated { fields } if fields.iter().any(|f| f == field))
    }

    /// The name of an `inbound` event.
    pub fn inbound_name(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Inbound { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The JSON payload of a `scheduled` or `inbound` event.
    pub fn payload(&self) -> Option<&Value> {
        match &self.kind {
            EventKind::Scheduled { payload } | EventKind::Inbound { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// The payload of a `scheduled` or `inbound` event deserialized into `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, String> {
        let payload = self
            .payload()
            .ok_or_else(|| format!("{} event {} has no payload", self.kind.name(), self.id))?;
        T::deserialize(payload).map_err(|e| format!("event {} payload: {e}", self.id))
    }
}

/// Why a host call was refused; the string says what and why.
///
/// Converts into `String` so `?` works inside [`Rule::handle`](crate::Rule::handle).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", content = "message", rename_all = "snake_case")]
pub enum HostError {
    /// The record (or other object) does not exist for this tenant.
    NotFound(String),
    /// The binding is not granted this operation, or the move is not allowed (a stage
    /// outside the record's pipeline, a backward move without the grant). A denial fails the
    /// whole run even if the rule handles the error: the run ends `denied` and nothing it did
    /// applies (the SDK's `MockHost` does the same).
    Denied(String),
    /// The arguments were rejected (bad JSON, unknown stage, ...).
    Invalid(String),
    /// A quota or rate limit was hit.
    Limit(String),
}

impl HostError {
    /// The host's explanation, without the category.
    pub fn message(&self) -> &str {
        match self {
            HostError::NotFound(m)
            | HostError::Denied(m)
            | HostError::Invalid(m)
            | HostError::Limit(m) => m,
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let category = match self {
            HostError::NotFound(_) => "not found",
            HostError::Denied(_) => "denied",
            HostError::Invalid(_) => "invalid",
            HostError::Limit(_) => "limit",
        };
        write!(f, "{category}: {}", self.message())
    }
}

impl std::error::Error for HostError {}

impl From<HostError> for String {
    fn from(e: HostError) -> String {
        e.to_string()
    }
}

/// How a [`Message`] is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `to` is an email address.
    Email,
    /// `to` is a phone number.
    Sms,
    /// `to` is a URL; `body` is POSTed.
    Webhook,
    /// `to` is a CRM user; an in-app notification.
    Notify,
}

/// An outbound message. It leaves only if the run succeeds.
///
/// ```
/// # use stagecraft_sdk::prelude::*;
/// let msg = Message::email("ada@example.com", "Welcome", "Hi Ada!").idempotency_key("welcome-l1");
/// assert_eq!(msg.channel, Channel::Email);
/// assert_eq!(msg.idempotency_key.as_deref(), Some("welcome-l1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Delivery channel.
    pub channel: Channel,
    /// Address, phone number, URL or user, depending on the channel.
    pub to: String,
    /// Subject (ignored by channels without one).
    pub subject: String,
    /// Body.
    pub body: String,
    /// The same key within a tenant is delivered once.
    pub idempotency_key: Option<String>,
}

impl Message {
    /// A message on any channel.
    pub fn new(
        channel: Channel,
        to: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Message {
            channel,
            to: to.into(),
            subject: subject.into(),
            body: body.into(),
            idempotency_key: None,
        }
    }

    /// An email.
    pub fn email(
        to: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self::new(Channel::Email, to, subject, body)
    }

    /// A text message (no subject).
    pub fn sms(to: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(Channel::Sms, to, "", body)
    }

    /// A webhook call: `body` is POSTed to the URL `to` (no subject).
    pub fn webhook(url: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(Channel::Webhook, url, "", body)
    }

    /// An in-app notification to a CRM user.
    pub fn notify(
        user: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self::new(Channel::Notify, user, subject, body)
    }

    /// Deliver at most once per tenant for this key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd but handled.
    Warn,
    /// Something failed.
    Error,
}

/// Which records [`Ctx::find`](crate::Ctx::find) returns; `None` fields match anything.
///
/// ```
/// # use stagecraft_sdk::prelude::*;
/// let f = Filter::default().of_kind(RecordKind::Deal).in_pipeline("sales").in_stage("won");
/// assert_eq!(f.stage.as_deref(), Some("won"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only records of this kind.
    pub kind: Option<RecordKind>,
    /// Only records in this pipeline.
    pub pipeline: Option<String>,
    /// Only records in this stage.
    pub stage: Option<String>,
    /// Only records owned by this user.
    pub owner: Option<String>,
}

impl Filter {
    /// Restrict to a record kind.
    pub fn of_kind(mut self, kind: RecordKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Restrict to a pipeline.
    pub fn in_pipeline(mut self, pipeline: impl Into<String>) -> Self {
        self.pipeline = Some(pipeline.into());
        self
    }

    /// Restrict to a stage.
    pub fn in_stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// Restrict to an owner.
    pub fn owned_by(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Whether `record` passes this filter.
    pub fn matches(&self, record: &Record) -> bool {
        fn ok(want: &Option<String>, have: &Option<String>) -> bool {
            want.is_none() || want == have
        }
        self.kind.is_none_or(|k| k == record.kind)
            && ok(&self.pipeline, &record.pipeline)
            && ok(&self.stage, &record.stage)
            && ok(&self.owner, &record.owner)
    }
}
