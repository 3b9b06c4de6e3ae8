//! The rule interface: the [`Rule`] trait authors implement, the [`Ctx`] they act through,
//! and the [`Host`] seam underneath.
//!
//! [`Host`] is deliberately small, object-safe and JSON-as-text, mirroring the WIT imports
//! one to one. Two implementations exist: [`WitHost`](crate::WitHost) calls the real host
//! from inside a Wasm component, and [`MockHost`](crate::testing::MockHost) simulates it
//! natively for unit tests. [`Ctx`] wraps either one with the typed, serde-aware API, so the
//! same rule code runs unchanged in both.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::create::{NewRecord, NewTask};
use crate::types::{Event, Filter, HostError, Level, Message, Record};

/// What a rule may ask of its host. One method per WIT import.
///
/// Rule authors normally use [`Ctx`] instead; implement this only to stand in for the host
/// (the SDK ships [`MockHost`](crate::testing::MockHost) for tests).
pub trait Host {
    /// A record by id. Sees committed state plus this run's own pending writes.
    fn get(&mut self, id: &str) -> Result<Record, HostError>;
    /// At most `limit` records matching `filter` (the host caps `limit` at 100).
    fn find(&mut self, filter: &Filter, limit: u32) -> Result<Vec<Record>, HostError>;
    /// Moves a record to another stage of its pipeline.
    fn move_to(&mut self, id: &str, stage: &str) -> Result<(), HostError>;
    /// Sets a field to the JSON text `json` (`null` clears it).
    fn set_field(&mut self, id: &str, name: &str, json: &str) -> Result<(), HostError>;
    /// Queues a message; returns its id.
    fn queue(&mut self, msg: &Message) -> Result<String, HostError>;
    /// Schedules a `scheduled(payload)` event for the event's record; returns its id.
    fn schedule_after(&mut self, seconds: u64, payload_json: &str) -> Result<String, HostError>;
    /// Writes a line to the run's log.
    fn log(&mut self, level: Level, msg: &str);
    /// The binding's configuration as JSON text (`{}` when none).
    fn config(&mut self) -> String;

    /// Creates a record (host API 0.2); returns its id. The default refuses: a host that
    /// predates 0.2.
    fn create_record(&mut self, record: &NewRecord) -> Result<String, HostError> {
        Err(before_0_2("records.create", record.kind.as_str()))
    }
    /// Creates a task (host API 0.2); returns its id.
    fn create_task(&mut self, task: &NewTask) -> Result<String, HostError> {
        Err(before_0_2("tasks.create", &task.title))
    }
    /// Marks an open task done (host API 0.2).
    fn complete_task(&mut self, id: &str) -> Result<(), HostError> {
        Err(before_0_2("tasks.complete", id))
    }
    /// Adds a comment to a record's timeline (host API 0.2); returns its id.
    fn comment(&mut self, record: &str, body: &str) -> Result<String, HostError> {
        let _ = body;
        Err(before_0_2("timeline.comment", record))
    }
}

fn before_0_2(call: &str, target: &str) -> HostError {
    HostError::Denied(format!(
        "{call} ({target}): this host implements stagecraft:automation 0.1, which has no {call}"
    ))
}

/// A rule's handle on the host for one run.
///
/// All writes are pending until the run returns `Ok`; if it returns `Err`, none apply.
pub struct Ctx<'a> {
    host: &'a mut dyn Host,
}

impl<'a> Ctx<'a> {
    /// A context over any [`Host`].
    pub fn new(host: &'a mut dyn Host) -> Self {
        Ctx { host }
    }

    /// The underlying host, for calls the typed API does not cover.
    pub fn host(&mut self) -> &mut dyn Host {
        self.host
    }

    /// A record by id; reads see this run's own pending writes.
    pub fn get(&mut self, id: &str) -> Result<Record, HostError> {
        self.host.get(id)
    }

    /// At most `limit` records matching `filter` (capped at 100 by the host).
    pub fn find(&mut self, filter: &Filter, limit: u32) -> Result<Vec<Record>, HostError> {
        self.host.find(filter, limit)
    }

    /// Moves a record to `stage` (forward only, unless the binding grants backward moves).
    pub fn move_to(&mut self, id: &str, stage: &str) -> Result<(), HostError> {
        self.host.move_to(id, stage)
    }

    /// Sets a field the binding is granted. Core fields (`owner`, `email`, ...) are set by
    /// name; any other name is a custom field. Fails with [`HostError::Invalid`] if `value`
    /// cannot be serialized to JSON.
    pub fn set_field<T: Serialize + ?Sized>(
        &mut self,
        id: &str,
        name: &str,
        value: &T,
    ) -> Result<(), HostError> {
        let json = to_json("field value", value)?;
        self.host.set_field(id, name, &json)
    }

    /// Clears a field (sets it to JSON `null`).
    pub fn clear_field(&mut self, id: &str, name: &str) -> Result<(), HostError> {
        self.host.set_field(id, name, "null")
    }

    /// Queues a message; it is sent only if the run succeeds. Returns the message id.
    pub fn queue(&mut self, msg: Message) -> Result<String, HostError> {
        self.host.queue(&msg)
    }

    /// Runs this binding again after `seconds` with a `scheduled` event carrying `payload`,
    /// for the event's record. Cancelled if the record leaves the stage it is in when the
    /// run ends. Returns the schedule id.
    pub fn schedule_after<T: Serialize + ?Sized>(
        &mut self,
        seconds: u64,
        payload: &T,
    ) -> Result<String, HostError> {
        let json = to_json("schedule payload", payload)?;
        self.host.schedule_after(seconds, &json)
    }

    /// Creates a record; later calls of the run can read it and link to it, but not change
    /// it. Needs the binding's `create:<kind>` grant. Returns the new record's id.
    pub fn create_record(&mut self, record: NewRecord) -> Result<String, HostError> {
        self.host.create_record(&record)
    }

    /// Creates a task on a record (the run is its creator). Needs `create:task`. Returns the
    /// task's id.
    pub fn create_task(&mut self, task: NewTask) -> Result<String, HostError> {
        self.host.create_task(&task)
    }

    /// Marks an open task done; a task already done stays as it is. Needs `complete:task`.
    pub fn complete_task(&mut self, id: &str) -> Result<(), HostError> {
        self.host.complete_task(id)
    }

    /// Adds a comment to a record's timeline (the run is its author). Needs `comment`.
    /// Returns the comment's id.
    pub fn comment(&mut self, record: &str, body: impl AsRef<str>) -> Result<String, HostError> {
        self.host.comment(record, body.as_ref())
    }

    /// Writes a line to the run's log.
    pub fn log(&mut self, level: Level, msg: impl AsRef<str>) {
        self.host.log(level, msg.as_ref());
    }

    /// Logs at [`Level::Debug`].
    pub fn debug(&mut self, msg: impl AsRef<str>) {
        self.log(Level::Debug, msg);
    }

    /// Logs at [`Level::Info`].
    pub fn info(&mut self, msg: impl AsRef<str>) {
        self.log(Level::Info, msg);
    }

    /// Logs at [`Level::Warn`].
    pub fn warn(&mut self, msg: impl AsRef<str>) {
        self.log(Level::Warn, msg);
    }

    /// Logs at [`Level::Error`].
    pub fn error(&mut self, msg: impl AsRef<str>) {
        self.log(Level::Error, msg);
    }

    /// The binding's configuration deserialized into `T`.
    ///
    /// An unset binding config is `{}`, so a `T` whose fields all have serde defaults always
    /// loads. The error says what is wrong, e.g.
    /// `binding config: missing field `template``.
    pub fn config<T: DeserializeOwned>(&mut self) -> Result<T, String> {
        let text = self.host.config();
        let value = parse_config(&text)?;
        T::deserialize(value).map_err(|e| format!("binding config: {e}"))
    }

    /// The binding's configuration as JSON: an object (`{}` when unset), or `null` if the
    /// host sent something that is not valid JSON.
    pub fn config_value(&mut self) -> Value {
        parse_config(&self.host.config()).unwrap_or(Value::Null)
    }
}

fn parse_config(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| format!("binding config is not valid JSON: {e}"))
}

fn to_json<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<String, HostError> {
    serde_json::to_string(value)
        .map_err(|e| HostError::Invalid(format!("{what} is not JSON-serializable: {e}")))
}

/// An automation rule: handles one event per run.
///
/// Return `Ok(())` to commit the run's effects, `Err(message)` to fail the run with nothing
/// applied (an inline binding rejects the triggering change with `message`). [`HostError`]
/// converts into `String`, so `?` works on every [`Ctx`] call.
///
/// Export it from a `cdylib` crate with [`export_rule!`](crate::export_rule).
pub trait Rule {
    /// Handles one event.
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String>;
}

/// Runs rule `R` on `event` against any [`Host`].
pub fn run<R: Rule>(host: &mut dyn Host, event: &Event) -> Result<(), String> {
    let mut ctx = Ctx::new(host);
    R::handle(&mut ctx, event)
}
