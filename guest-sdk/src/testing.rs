//! Native unit testing for rules: [`MockHost`], record builders and [`Event`] constructors.
//!
//! A rule compiled to Wasm can only run inside the Stagecraft host. This module lets authors
//! test the same rule code with plain `cargo test`: [`MockHost`] implements [`Host`] with
//! the host's semantics (read-your-writes, field validation, all-or-nothing runs) and
//! records what the rule did as a list of [`Effect`]s to assert on.
//!
//! ```
//! use serde_json::json;
//! use stagecraft_sdk::prelude::*;
//! use stagecraft_sdk::testing::{self, Effect, MockHost};
//!
//! struct Tag;
//! impl Rule for Tag {
//!     fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
//!         let id = &event.record()?.id;
//!         ctx.set_field(id, "vip", &true)?;
//!         Ok(())
//!     }
//! }
//!
//! let mut host = MockHost::new();
//! host.run::<Tag>(&Event::created(testing::lead("l1", "Ada", "sales", "new")))?;
//! assert_eq!(
//!     host.effects,
//!     vec![Effect::SetField { record: "l1".into(), name: "vip".into(), value: json!(true) }]
//! );
//! assert_eq!(host.record("l1").and_then(|r| r.custom_field::<bool>("vip")), Some(true));
//! # Ok::<(), String>(())
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

mod creates;

use std::collections::BTreeSet;

use stagecraft_rules::Action;

use crate::convert::parse_value;
use crate::create::{NewRecord, NewTask};
use crate::rule::{self, Host, Rule};
use crate::types::{Event, EventKind, Filter, HostError, Level, Message, Record, RecordKind};

/// The fixed timestamp used by the builders in this module.
pub const EPOCH: &str = "2025-01-01T00:00:00Z";

/// One thing a rule did that would commit (or be sent) if its run succeeds.
///
/// Log lines are not effects (they are written even when a run fails); see
/// [`MockHost::logs`].
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// [`Ctx::move_to`](crate::Ctx::move_to).
    MoveStage {
        /// Record id.
        record: String,
        /// Stage moved to.
        stage: String,
    },
    /// [`Ctx::set_field`](crate::Ctx::set_field) (`value` is `null` for a clear).
    SetField {
        /// Record id.
        record: String,
        /// Field name.
        name: String,
        /// New value.
        value: Value,
    },
    /// [`Ctx::queue`](crate::Ctx::queue).
    Queue(Message),
    /// [`Ctx::schedule_after`](crate::Ctx::schedule_after).
    Schedule {
        /// Delay.
        seconds: u64,
        /// Payload of the future `scheduled` event.
        payload: Value,
    },
    /// [`Ctx::create_record`](crate::Ctx::create_record): the record as created.
    CreateRecord {
        /// The new record's id.
        id: String,
        /// The record (also readable with [`MockHost::record`]).
        record: Record,
    },
    /// [`Ctx::create_task`](crate::Ctx::create_task).
    CreateTask {
        /// The task's id.
        id: String,
        /// What the rule asked for.
        task: NewTask,
    },
    /// [`Ctx::complete_task`](crate::Ctx::complete_task) of an open task.
    CompleteTask {
        /// The task's id.
        id: String,
    },
    /// [`Ctx::comment`](crate::Ctx::comment).
    Comment {
        /// The comment's id.
        id: String,
        /// The record commented on.
        record: String,
        /// What it says.
        body: String,
    },
}

/// A task as [`MockHost`] knows it: the record it belongs to, and whether it is done.
#[derive(Clone, Debug, PartialEq)]
pub struct MockTask {
    /// The record it belongs to.
    pub record: String,
    /// Done (completing it again changes nothing).
    pub done: bool,
}

/// A simulated host for native tests.
///
/// * Reads ([`Host::get`], [`Host::find`]) see the stored records plus all writes made so far,
///   like the real host's read-your-writes.
/// * [`Host::set_field`] validates like the host: core fields (`name`, `email`, `phone`,
///   `owner`, `company`, `contact`, and `amount`/`currency` on deals) are set in place, any
///   other valid name is a custom field (`null` removes it), and `id`, `kind`, `pipeline`,
///   `stage`, `version`, `custom`, `created_at`, `updated_at` are refused.
/// * [`Host::move_to`] sets the stage. If the pipeline was declared with
///   [`MockHost::with_pipeline`], the move is checked by the host's own stage rules
///   (`stagecraft-rules`): a record without a pipeline, a stage not in the pipeline, and a
///   backward move without [`MockHost::with_backward_grant`] are [`HostError::Denied`].
///   Undeclared pipelines accept any stage.
/// * Field values are checked by the host's own field rules (`stagecraft-rules`), the same
///   code the server runs. Values nested deeper than 32 levels or larger than 64 KiB of JSON
///   (field values and follow-up payloads), and custom fields over 256 KiB together, are
///   [`HostError::Limit`], as on the server.
/// * As on the server, a denied call fails the whole run, even when the rule handles the
///   error: [`MockHost::run`] then returns `Err("denied: …")`.
/// * [`MockHost::run`] is all-or-nothing: if the rule returns `Err` (or a call was denied),
///   the run's effects and record changes are rolled back (its log lines are kept).
///
/// * Host API 0.2 calls ([`Host::create_record`], [`Host::create_task`],
///   [`Host::complete_task`], [`Host::comment`]) are denied by name unless granted with
///   [`MockHost::with_grant`] (`"create:deal"`, `"create:task"`, `"complete:task"`,
///   `"comment"`, …), as on a binding, and checked by the host's own field and task rules.
///   Created records are readable and linkable by later calls but cannot be changed (as on
///   the server); [`MockHost::with_task`] declares tasks that exist before the run.
///
/// Not simulated: field and channel grants, quotas (including the per-run caps on created
/// records, tasks and comments), link checks of field writes, and record
/// `version`/`updated_at` bumps.
#[derive(Clone, Debug)]
pub struct MockHost {
    records: BTreeMap<String, Record>,
    pipelines: BTreeMap<String, Vec<String>>,
    config: String,
    next_id: u64,
    /// The binding's `backward` grant.
    backward: bool,
    /// The binding's create/complete/comment grants.
    grants: Vec<Action>,
    /// Records created by runs (they cannot be changed by later calls).
    created: BTreeSet<String>,
    /// Tasks, by id: declared with [`MockHost::with_task`] or created by runs.
    pub tasks: BTreeMap<String, MockTask>,
    /// The first denial of the current run: it fails the run, as on the server.
    denied: Option<String>,
    /// Everything the rule did, in call order, across all successful runs.
    pub effects: Vec<Effect>,
    /// Log lines written, in order, across all runs (including failed ones).
    pub logs: Vec<(Level, String)>,
    /// Answers to [`crate::http`] requests, and the requests sent (see [`MockHost::with_http`]).
    http: crate::http::Stubs,
}

impl Default for MockHost {
    fn default() -> Self {
        Self::new()
    }
}

impl MockHost {
    /// An empty host with config `{}`.
    pub fn new() -> Self {
        MockHost {
            records: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            config: "{}".into(),
            next_id: 1,
            backward: false,
            grants: Vec::new(),
            created: BTreeSet::new(),
            tasks: BTreeMap::new(),
            denied: None,
            effects: Vec::new(),
            logs: Vec::new(),
            http: crate::http::Stubs::default(),
        }
    }

    /// Answers one [`crate::http`] request: the first unused answer for the same method and
    /// URL (as the rule wrote it, placeholders and all), in order, each used once — the way
    /// the server answers a dry-run or replay from a recorded run. A request without an
    /// answer fails [`HttpError::Denied`](crate::http::HttpError::Denied)
    /// (`replay_unmatched`). Grants and secrets are not simulated: placeholders stay as
    /// written.
    pub fn with_http(
        mut self,
        method: &str,
        url: &str,
        answer: Result<crate::http::Response, crate::http::HttpError>,
    ) -> Self {
        self.http.add(method, url, answer);
        self
    }

    /// The [`crate::http`] requests rules sent, in order, across all runs.
    pub fn http_sent(&self) -> &[crate::http::Request] {
        &self.http.sent
    }

    /// Stores a record (replacing one with the same id).
    pub fn with_record(mut self, record: Record) -> Self {
        self.insert(record);
        self
    }

    /// Sets the binding's configuration, as raw JSON text (may be invalid, to test errors).
    pub fn with_config(mut self, json: impl Into<String>) -> Self {
        self.config = json.into();
        self
    }

    /// Sets the binding's configuration from a JSON value.
    pub fn with_config_value(self, value: Value) -> Self {
        self.with_config(value.to_string())
    }

    /// Grants backward stage moves, like a binding's `"backward": true`.
    pub fn with_backward_grant(mut self) -> Self {
        self.backward = true;
        self
    }

    /// Grants a create/complete/comment call by name, like a binding's `actions`:
    /// `"create:lead"`, `"create:contact"`, `"create:company"`, `"create:deal"`,
    /// `"create:task"`, `"complete:task"`, `"comment"`. Panics on any other name.
    pub fn with_grant(mut self, name: &str) -> Self {
        self.grants.push(creates::action(name));
        self
    }

    /// Declares a task that exists before the run (open, or done).
    pub fn with_task(
        mut self,
        id: impl Into<String>,
        record: impl Into<String>,
        done: bool,
    ) -> Self {
        self.tasks.insert(
            id.into(),
            MockTask {
                record: record.into(),
                done,
            },
        );
        self
    }

    /// Declares a pipeline's stages in order, enabling stage validation for its records.
    pub fn with_pipeline(mut self, id: impl Into<String>, stages: &[&str]) -> Self {
        self.pipelines
            .insert(id.into(), stages.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Stores a record (replacing one with the same id).
    pub fn insert(&mut self, record: Record) {
        self.records.insert(record.id.clone(), record);
    }

    /// A record's current state, including writes of past runs.
    pub fn record(&self, id: &str) -> Option<&Record> {
        self.records.get(id)
    }

    /// The messages queued so far.
    pub fn queued(&self) -> Vec<&Message> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Queue(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Runs rule `R` on `event`, like one run in the real host.
    ///
    /// The event's record is stored first if no record with its id exists (the real host
    /// always has it); for a `deleted` event it is removed instead. On `Err`, this run's
    /// effects and record changes are discarded. An inbound event with a name reserved for
    /// task events (`task_…`, `stagecraft_rules::event`) that is not a task event is refused
    /// before the rule runs, as the host never delivers one.
    pub fn run<R: Rule>(&mut self, event: &Event) -> Result<(), String> {
        // The host delivers inbound `task_*` events only as task events (and refuses those
        // names from integrations), so a test cannot make up one either.
        if let EventKind::Inbound { name, .. } = &event.kind {
            if stagecraft_rules::event::reserved_inbound(name) && event.task().is_none() {
                return Err(format!(
                    "inbound event names starting with \"task_\" are reserved for task \
                     events; {name:?} is not one (task_created, task_completed or \
                     task_overdue with the task as its payload)"
                ));
            }
        }
        if let Some(record) = &event.record {
            if matches!(event.kind, EventKind::Deleted) {
                self.records.remove(&record.id);
            } else if !self.records.contains_key(&record.id) {
                self.insert(record.clone());
            }
        }
        let records = self.records.clone();
        let (tasks, created) = (self.tasks.clone(), self.created.clone());
        // "Created by this run" is per run: a later run may change them.
        self.created.clear();
        let effects = self.effects.len();
        self.denied = None;
        let mut stubs = std::mem::take(&mut self.http);
        let mut result = crate::http::with_stubs(&mut stubs, || rule::run::<R>(self, event));
        self.http = stubs;
        if let Some(message) = self.denied.take() {
            result = Err(format!("denied: {message}"));
        }
        if result.is_err() {
            self.records = records;
            self.tasks = tasks;
            self.created = created;
            self.effects.truncate(effects);
        }
        result
    }

    fn stored(&mut self, id: &str) -> Result<&mut Record, HostError> {
        self.records
            .get_mut(id)
            .ok_or_else(|| HostError::NotFound(format!("record {id:?} not found")))
    }

    /// Records a denial (the run will fail) and returns the error for the rule.
    fn deny(&mut self, message: String) -> HostError {
        self.denied.get_or_insert_with(|| message.clone());
        HostError::Denied(message)
    }

    /// Records a run created cannot be changed by later calls (as on the server).
    fn not_created(&self, id: &str) -> Result<(), HostError> {
        if self.created.contains(id) {
            return Err(HostError::Invalid(format!(
                "record {id:?} was created by this run; give all its fields to records.create"
            )));
        }
        Ok(())
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}-{}", self.next_id);
        self.next_id += 1;
        id
    }
}

impl Host for MockHost {
    fn get(&mut self, id: &str) -> Result<Record, HostError> {
        self.stored(id).map(|r| r.clone())
    }

    fn find(&mut self, filter: &Filter, limit: u32) -> Result<Vec<Record>, HostError> {
        let limit = limit.min(100) as usize;
        Ok(self
            .records
            .values()
            .filter(|r| filter.matches(r))
            .take(limit)
            .cloned()
            .collect())
    }

    fn move_to(&mut self, id: &str, stage: &str) -> Result<(), HostError> {
        self.not_created(id)?;
        let backward = self.backward;
        let record = self
            .records
            .get(id)
            .ok_or_else(|| HostError::NotFound(format!("record {id:?} not found")))?;
        let pipeline = record.pipeline.clone();
        let declared = pipeline.as_ref().and_then(|p| self.pipelines.get(p));
        if pipeline.is_none() || declared.is_some() {
            let stages: Vec<&str> = declared
                .map(|s| s.iter().map(String::as_str).collect())
                .unwrap_or_default();
            let current = record.stage.as_deref().filter(|_| pipeline.is_some());
            let check = stagecraft_rules::check_move(
                id,
                record.kind.as_str(),
                pipeline.as_deref().unwrap_or_default(),
                &stages,
                current,
                stage,
                backward,
            );
            match check {
                Ok(stagecraft_rules::MoveCheck::Unchanged) => return Ok(()),
                Ok(stagecraft_rules::MoveCheck::Move) => {}
                Err(message) => return Err(self.deny(message)),
            }
        }
        if let Some(r) = self.records.get_mut(id) {
            r.stage = Some(stage.to_string());
        }
        self.effects.push(Effect::MoveStage {
            record: id.to_string(),
            stage: stage.to_string(),
        });
        Ok(())
    }

    fn set_field(&mut self, id: &str, name: &str, json: &str) -> Result<(), HostError> {
        let value =
            parse_value(&format!("value of field {name:?}"), json).map_err(HostError::Invalid)?;
        // The host's limits on stored values, from the same code: a limit, not a bad value.
        stagecraft_rules::value::check(&format!("the value of field {name:?}"), &value)
            .map_err(|e| HostError::Limit(e.to_string()))?;
        self.not_created(id)?;
        let record = self.stored(id)?;
        let mut updated = record.clone();
        apply_field(&mut updated, name, value.clone()).map_err(HostError::Invalid)?;
        stagecraft_rules::value::check_custom(&updated.custom)
            .map_err(|e| HostError::Limit(format!("record {id:?}: {e}")))?;
        *record = updated;
        self.effects.push(Effect::SetField {
            record: id.to_string(),
            name: name.to_string(),
            value,
        });
        Ok(())
    }

    fn queue(&mut self, msg: &Message) -> Result<String, HostError> {
        if msg.to.trim().is_empty() {
            return Err(HostError::Invalid("message has no recipient".into()));
        }
        self.effects.push(Effect::Queue(msg.clone()));
        Ok(self.fresh_id("msg"))
    }

    fn schedule_after(&mut self, seconds: u64, payload_json: &str) -> Result<String, HostError> {
        let payload = parse_value("schedule payload", payload_json).map_err(HostError::Invalid)?;
        stagecraft_rules::value::check("the follow-up payload", &payload)
            .map_err(|e| HostError::Limit(e.to_string()))?;
        self.effects.push(Effect::Schedule { seconds, payload });
        Ok(self.fresh_id("sched"))
    }

    fn log(&mut self, level: Level, msg: &str) {
        self.logs.push((level, msg.to_string()));
    }

    fn config(&mut self) -> String {
        self.config.clone()
    }

    fn create_record(&mut self, record: &NewRecord) -> Result<String, HostError> {
        self.mock_create_record(record)
    }

    fn create_task(&mut self, task: &NewTask) -> Result<String, HostError> {
        self.mock_create_task(task)
    }

    fn complete_task(&mut self, id: &str) -> Result<(), HostError> {
        self.mock_complete_task(id)
    }

    fn comment(&mut self, record: &str, body: &str) -> Result<String, HostError> {
        self.mock_comment(record, body)
    }
}

fn rules_kind(k: RecordKind) -> stagecraft_rules::Kind {
    match k {
        RecordKind::Lead => stagecraft_rules::Kind::Lead,
        RecordKind::Contact => stagecraft_rules::Kind::Contact,
        RecordKind::Company => stagecraft_rules::Kind::Company,
        RecordKind::Deal => stagecraft_rules::Kind::Deal,
    }
}

/// The host's field-writing rules ([`stagecraft_rules::field`], the very code the host runs),
/// minus the check that linked records exist.
fn apply_field(r: &mut Record, name: &str, value: Value) -> Result<(), String> {
    use stagecraft_rules::FieldWrite;
    let kind = rules_kind(r.kind);
    match stagecraft_rules::field::check(kind, name, value)? {
        FieldWrite::Name(v) => r.name = v,
        FieldWrite::Email(v) => r.email = v,
        FieldWrite::Phone(v) => r.phone = v,
        FieldWrite::Owner(v) => r.owner = v,
        FieldWrite::Company(v) => r.company = v,
        FieldWrite::Contact(v) => r.contact = v,
        FieldWrite::Amount(v) => r.amount = v,
        FieldWrite::Currency(v) => r.currency = v,
        FieldWrite::Custom(k, Some(v)) => {
            r.custom.insert(k, v);
        }
        FieldWrite::Custom(k, None) => {
            r.custom.remove(&k);
        }
    }
    stagecraft_rules::field::check_links(kind, r.company.as_deref(), r.contact.as_deref())
}

fn record(id: &str, kind: RecordKind, name: &str) -> Record {
    Record {
        id: id.into(),
        kind,
        name: name.into(),
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: None,
        company: None,
        contact: None,
        pipeline: None,
        stage: None,
        custom: Default::default(),
        version: 1,
        created_at: EPOCH.into(),
        updated_at: EPOCH.into(),
    }
}

/// A lead in `pipeline`/`stage`, version 1, timestamps [`EPOCH`].
pub fn lead(id: &str, name: &str, pipeline: &str, stage: &str) -> Record {
    Record {
        pipeline: Some(pipeline.into()),
        stage: Some(stage.into()),
        ..record(id, RecordKind::Lead, name)
    }
}

/// A deal worth `amount` in `pipeline`/`stage` (no currency), version 1.
pub fn deal(id: &str, title: &str, pipeline: &str, stage: &str, amount: f64) -> Record {
    Record {
        pipeline: Some(pipeline.into()),
        stage: Some(stage.into()),
        amount: Some(amount),
        ..record(id, RecordKind::Deal, title)
    }
}

/// A contact with an email address, version 1.
pub fn contact(id: &str, name: &str, email: &str) -> Record {
    Record {
        email: Some(email.into()),
        ..record(id, RecordKind::Contact, name)
    }
}

/// A company, version 1.
pub fn company(id: &str, name: &str) -> Record {
    record(id, RecordKind::Company, name)
}

/// Test constructors. Ids are `evt-<kind>-<record id>` (`evt-inbound-<name>` without a
/// record) and `occurred_at` is [`EPOCH`], so tests are deterministic.
impl Event {
    fn for_record(kind: EventKind, record: Option<Record>) -> Event {
        let subject = match &record {
            Some(r) => r.id.clone(),
            None => match &kind {
                EventKind::Inbound { name, .. } => name.clone(),
                _ => "none".into(),
            },
        };
        Event {
            id: format!("evt-{}-{subject}", kind.name()),
            kind,
            record,
            occurred_at: EPOCH.into(),
        }
    }

    /// A `created` event.
    pub fn created(record: Record) -> Event {
        Self::for_record(EventKind::Created, Some(record))
    }

    /// An `updated` event for the named fields (`record` is the state after the change).
    pub fn updated(record: Record, fields: &[&str]) -> Event {
        let fields = fields.iter().map(|f| f.to_string()).collect();
        Self::for_record(EventKind::Updated { fields }, Some(record))
    }

    /// A `stage-changed` event; the record's stage is set to `to`.
    pub fn stage_changed(mut record: Record, from: &str, to: &str) -> Event {
        record.stage = Some(to.into());
        let kind = EventKind::StageChanged {
            from: from.into(),
            to: to.into(),
        };
        Self::for_record(kind, Some(record))
    }

    /// An `assigned` event; the record's owner is set to `to`.
    pub fn assigned(mut record: Record, from: Option<&str>, to: Option<&str>) -> Event {
        record.owner = to.map(Into::into);
        let kind = EventKind::Assigned {
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        Self::for_record(kind, Some(record))
    }

    /// A `deleted` event (`record` is the state right before deletion).
    pub fn deleted(record: Record) -> Event {
        Self::for_record(EventKind::Deleted, Some(record))
    }

    /// A `scheduled` event: a follow-up with `payload` came due for `record`.
    pub fn scheduled(record: Record, payload: Value) -> Event {
        Self::for_record(EventKind::Scheduled { payload }, Some(record))
    }

    /// An `inbound` event, optionally about a record (pass a `Record` or `None`).
    pub fn inbound(name: &str, payload: Value, record: impl Into<Option<Record>>) -> Event {
        let kind = EventKind::Inbound {
            name: name.into(),
            payload,
        };
        Self::for_record(kind, record.into())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::prelude::*;

    /// The smoke-test rule: touch, move, notify.
    struct Touch;
    impl Rule for Touch {
        fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
            let id = event.record()?.id.clone();
            ctx.set_field(&id, "touched", &true)?;
            ctx.set_field(&id, "owner", "u7")?;
            ctx.move_to(&id, "contacted")?;
            // Read-your-writes: the pending changes are visible.
            let now = ctx.get(&id)?;
            ctx.info(format!(
                "{} touched={:?} owner={:?} stage={:?}",
                now.id,
                now.custom_field::<bool>("touched"),
                now.owner,
                now.stage
            ));
            ctx.queue(Message::notify("u7", "New lead", now.name.clone()))?;
            ctx.schedule_after(3600, &json!({"step": "follow-up"}))?;
            Ok(())
        }
    }

    #[test]
    fn reserved_inbound_names_are_refused_unless_a_task_event() -> Result<(), String> {
        let mut host = MockHost::new().with_grant("comment");
        let ada = || lead("l1", "Ada", "leads", "new");
        let refused = host
            .run::<Touch>(&Event::inbound("task_done", json!({}), ada()))
            .err()
            .ok_or("task_done ran")?;
        assert!(refused.contains("reserved for task events"), "{refused}");
        assert!(refused.contains("\"task_done\""), "{refused}");
        // A task name without a task as its payload is no task event either.
        let refused = host
            .run::<Touch>(&Event::inbound("task_completed", json!({"x": 1}), None))
            .err()
            .ok_or("a task_completed without a task ran")?;
        assert!(refused.contains("reserved for task events"), "{refused}");
        assert!(host.effects.is_empty(), "{:?}", host.effects);

        // A real task event runs.
        struct Done;
        impl Rule for Done {
            fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
                let task = event.task().ok_or("not a task event")?;
                ctx.comment(&task.record, format!("{} is done", task.title))?;
                Ok(())
            }
        }
        let task = json!({"id": "tsk_1", "record": "l1", "title": "Call Ada",
                          "priority": "high", "tags": ["call"], "status": "done"});
        host.run::<Done>(&Event::inbound("task_completed", task, ada()))?;
        assert_eq!(host.effects.len(), 1, "{:?}", host.effects);
        Ok(())
    }

    #[test]
    fn effects_and_read_your_writes() -> Result<(), String> {
        let mut host = MockHost::new();
        host.run::<Touch>(&Event::created(lead("l1", "Ada", "sales", "new")))?;
        assert_eq!(
            host.effects,
            vec![
                Effect::SetField {
                    record: "l1".into(),
                    name: "touched".into(),
                    value: json!(true)
                },
                Effect::SetField {
                    record: "l1".into(),
                    name: "owner".into(),
                    value: json!("u7")
                },
                Effect::MoveStage {
                    record: "l1".into(),
                    stage: "contacted".into()
                },
                Effect::Queue(Message::notify("u7", "New lead", "Ada")),
                Effect::Schedule {
                    seconds: 3600,
                    payload: json!({"step": "follow-up"})
                },
            ]
        );
        assert_eq!(
            host.logs,
            vec![(
                Level::Info,
                r#"l1 touched=Some(true) owner=Some("u7") stage=Some("contacted")"#.to_string()
            )]
        );
        let stored = host.record("l1").ok_or("l1 missing")?;
        assert!(stored.owner.as_deref() == Some("u7") && stored.in_stage("contacted"));
        assert!(
            !stored.custom.contains_key("owner"),
            "core field leaked into custom"
        );
        Ok(())
    }

    struct Fails;
    impl Rule for Fails {
        fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
            let id = &event.record()?.id;
            ctx.set_field(id, "touched", &true)?;
            ctx.warn("giving up");
            Err("nope".into())
        }
    }

    #[test]
    fn failed_run_rolls_back_but_keeps_logs() {
        let mut host = MockHost::new().with_record(lead("l1", "Ada", "sales", "new"));
        let result = host.run::<Fails>(&Event::created(lead("l1", "Ada", "sales", "new")));
        assert_eq!(result, Err("nope".to_string()));
        assert!(host.effects.is_empty());
        assert_eq!(host.record("l1").map(|r| r.custom.len()), Some(0));
        assert_eq!(host.logs, vec![(Level::Warn, "giving up".to_string())]);
    }

    #[test]
    fn host_errors_match_the_real_host() {
        let mut host = MockHost::new()
            .with_record(lead("l1", "Ada", "sales", "contacted"))
            .with_record(company("c1", "Acme"))
            .with_pipeline("sales", &["new", "contacted", "won"]);
        let mut ctx = Ctx::new(&mut host);
        assert!(matches!(ctx.get("zz"), Err(HostError::NotFound(_))));
        assert!(matches!(
            ctx.move_to("zz", "won"),
            Err(HostError::NotFound(_))
        ));
        assert!(matches!(
            ctx.move_to("c1", "won"),
            Err(HostError::Denied(_))
        ));
        assert!(matches!(
            ctx.move_to("l1", "lost"),
            Err(HostError::Denied(_))
        ));
        assert!(matches!(
            ctx.move_to("l1", "new"),
            Err(HostError::Denied(_))
        ));
        assert_eq!(ctx.move_to("l1", "won"), Ok(()));
        assert!(matches!(
            ctx.set_field("l1", "stage", "new"),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            ctx.set_field("l1", "owner", &5),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            ctx.set_field("l1", "amount", &5),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            ctx.set_field("l1", "email", "x"),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            ctx.set_field("l1", "bad name", &1),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            ctx.host().set_field("l1", "x", "{oops"),
            Err(HostError::Invalid(_))
        ));
        // `?` turns a host error into the rule's error message.
        let as_rule_error = || -> Result<(), String> { Err(HostError::Denied("no".into()))? };
        assert_eq!(as_rule_error(), Err("denied: no".to_string()));
    }

    #[test]
    fn clear_and_find() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_record(lead("l1", "Ada", "sales", "new"))
            .with_record(lead("l2", "Bob", "sales", "won"))
            .with_record(deal("d1", "Big", "deals", "new", 10.0));
        let mut ctx = Ctx::new(&mut host);
        ctx.set_field("l1", "score", &3)?;
        ctx.set_field("d1", "amount", &20.5)?;
        assert_eq!(ctx.get("d1")?.amount, Some(20.5));
        ctx.clear_field("l1", "score")?;
        assert_eq!(ctx.get("l1")?.custom_value("score"), None);
        let new = ctx.find(&Filter::default().in_stage("new"), 10)?;
        assert_eq!(
            new.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["d1", "l1"]
        );
        let leads = ctx.find(&Filter::default().of_kind(RecordKind::Lead), 1)?;
        assert_eq!(leads.len(), 1);
        assert!(ctx.find(&Filter::default(), 0)?.is_empty());
        Ok(())
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Cfg {
        #[serde(default)]
        delay: u64,
        template: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Defaults {
        delay: u64,
        notify: Option<String>,
    }

    #[test]
    fn config_parsing() {
        let mut host = MockHost::new().with_config_value(json!({"template": "hi"}));
        let mut ctx = Ctx::new(&mut host);
        assert_eq!(
            ctx.config::<Cfg>(),
            Ok(Cfg {
                delay: 0,
                template: "hi".into()
            })
        );
        assert_eq!(ctx.config_value(), json!({"template": "hi"}));

        for empty in ["{}", "", "  "] {
            let mut host = MockHost::new().with_config(empty);
            let mut ctx = Ctx::new(&mut host);
            assert_eq!(ctx.config::<Defaults>(), Ok(Defaults::default()));
            assert_eq!(ctx.config_value(), json!({}));
            let err = ctx.config::<Cfg>().err().unwrap_or_default();
            assert_eq!(err, "binding config: missing field `template`");
        }

        let mut host = MockHost::new().with_config(r#"{"template": 3}"#);
        let err = Ctx::new(&mut host)
            .config::<Cfg>()
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("binding config: invalid type: integer `3`"),
            "{err}"
        );

        let mut host = MockHost::new().with_config("{nope");
        let mut ctx = Ctx::new(&mut host);
        let err = ctx.config::<Defaults>().err().unwrap_or_default();
        assert!(err.starts_with("binding config is not valid JSON"), "{err}");
        assert_eq!(ctx.config_value(), Value::Null);
    }

    #[test]
    fn event_constructors_are_deterministic() {
        let e = Event::stage_changed(lead("l1", "Ada", "sales", "new"), "new", "won");
        assert_eq!(e.id, "evt-stage-changed-l1");
        assert_eq!(e.occurred_at, EPOCH);
        assert_eq!(e.entered_stage(), Some("won"));
        assert_eq!(e.left_stage(), Some("new"));
        assert_eq!(e.record().map(|r| r.stage.clone()), Ok(Some("won".into())));

        let e = Event::inbound("form", json!({"x": 1}), None);
        assert_eq!(e.id, "evt-inbound-form");
        assert_eq!(
            e.record(),
            Err("event evt-inbound-form (inbound) carries no record".into())
        );
        assert_eq!(e.inbound_name(), Some("form"));
        assert_eq!(e.payload(), Some(&json!({"x": 1})));

        #[derive(Deserialize)]
        struct Step {
            step: u32,
        }
        let e = Event::scheduled(lead("l1", "Ada", "s", "n"), json!({"step": 2}));
        assert_eq!(e.payload_as::<Step>().map(|s| s.step), Ok(2));
        assert!(Event::created(company("c", "C"))
            .payload_as::<Step>()
            .is_err());
        assert!(Event::updated(company("c", "C"), &["name"]).changed("name"));
    }

    #[test]
    fn deleted_event_removes_the_record() {
        struct Lookup;
        impl Rule for Lookup {
            fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
                ctx.get(&event.record()?.id)?;
                Ok(())
            }
        }
        let mut host = MockHost::new();
        let gone = Event::deleted(lead("l1", "Ada", "sales", "new"));
        let err = host.run::<Lookup>(&gone).err().unwrap_or_default();
        assert!(err.starts_with("not found:"), "{err}");
    }

    #[test]
    fn stored_values_have_the_hosts_depth_and_size_limits() {
        let mut host = MockHost::new().with_record(lead("l1", "Ada", "sales", "new"));
        let deep = stagecraft_rules::value::nested(stagecraft_rules::value::MAX_DEPTH);
        assert_eq!(host.set_field("l1", "ok", &deep.to_string()), Ok(()));
        let deeper = Value::Array(vec![deep]).to_string();
        match host.set_field("l1", "deep", &deeper) {
            Err(HostError::Limit(m)) => assert!(m.contains("limit is 32"), "{m}"),
            other => panic!("expected a limit, got {other:?}"),
        }
        match host.schedule_after(60, &deeper) {
            Err(HostError::Limit(m)) => assert!(m.contains("follow-up payload"), "{m}"),
            other => panic!("expected a limit, got {other:?}"),
        }
        let big = Value::String("x".repeat(60_000)).to_string();
        for i in 0..4 {
            assert_eq!(host.set_field("l1", &format!("f{i}"), &big), Ok(()));
        }
        match host.set_field("l1", "f4", &big) {
            Err(HostError::Limit(m)) => assert!(m.contains("custom fields together"), "{m}"),
            other => panic!("expected a limit, got {other:?}"),
        }
        assert!(host
            .record("l1")
            .is_some_and(|r| !r.custom.contains_key("f4")));
    }
}
