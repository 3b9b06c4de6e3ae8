//! The host API a module calls: reads against committed state plus the run's own pending
//! writes, effects buffered (never applied here), grants and per-run caps enforced. The
//! calls 0.2 added (create, tasks, timeline) are in `creates`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stagecraft_rules::value;

use super::limits::Limits;
use super::wit::stagecraft::automation::{
    config, fields, log, messages, records, schedule, stages, types,
};
use super::wit::{channel_from_wit, kind_from_wit, record_to_wit, t};
use crate::model::{Effect, Grants, HostCall, LogLine, Outcome, Record, RecordFilter};
use crate::source::RecordSource;
use stagecraft_rules::MoveCheck;

mod creates;

type HostResult<T> = wasmtime::Result<Result<T, t::HostError>>;

/// Everything one run may see and everything it asked for.
pub struct HostApi {
    source: std::sync::Arc<dyn RecordSource>,
    event_record: Option<String>,
    /// When the event happened: the time part of message ids, and what follow-up delays
    /// count from.
    event_at: DateTime<Utc>,
    /// Makes ids of queued messages and follow-ups deterministic: same run → same ids.
    run_key: String,
    config: String,
    grants: Grants,
    limits: Limits,
    /// Uncommitted state the run must see (the triggering change, earlier runs' effects).
    base: BTreeMap<String, Record>,
    /// Records deleted by that uncommitted state: gone for this run, whatever the store says.
    deleted: std::collections::BTreeSet<String>,
    /// Records this run changed, as they are now (pending, uncommitted).
    pub overlay: BTreeMap<String, Record>,
    /// Records this run created (`records.create`): readable and linkable by later calls,
    /// never in `overlay` (their effect carries them whole).
    created: BTreeMap<String, Record>,
    /// Tasks this run created or completed, by id.
    run_tasks: BTreeMap<String, creates::RunTask>,
    records_created: u32,
    /// Tasks created plus tasks completed.
    tasks_written: u32,
    comments: u32,
    /// Committed records this run has read: a record is decoded from the store once per run,
    /// and the run sees one state of it throughout (commit still checks versions).
    read: std::cell::RefCell<BTreeMap<String, Option<Record>>>,
    pub effects: Vec<Effect>,
    pub logs: Vec<LogLine>,
    log_bytes: usize,
    pub calls: Vec<HostCall>,
    messages: u32,
    follow_ups: u32,
    /// Bytes of effects so far (see `Limits::effect_bytes`).
    effect_bytes: usize,
    seq: u32,
    /// The first refused effect; the run ends `denied` whatever the module does next.
    pub denied: Option<String>,
    /// A cap the module hit that ends the run (host calls, messages).
    pub tripped: Option<Outcome>,
}

/// The inputs of one run's host API.
pub struct HostApiInput {
    pub source: std::sync::Arc<dyn RecordSource>,
    pub event_record: Option<String>,
    pub event_at: DateTime<Utc>,
    pub run_key: String,
    pub config: String,
    pub grants: Grants,
    pub limits: Limits,
    pub pending: Vec<Record>,
    pub deleted: Vec<String>,
}

impl HostApi {
    pub fn new(input: HostApiInput) -> HostApi {
        HostApi {
            source: input.source,
            event_record: input.event_record,
            event_at: input.event_at,
            run_key: input.run_key,
            config: input.config,
            grants: input.grants,
            limits: input.limits,
            base: input
                .pending
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect(),
            deleted: input.deleted.into_iter().collect(),
            overlay: BTreeMap::new(),
            created: BTreeMap::new(),
            run_tasks: BTreeMap::new(),
            records_created: 0,
            tasks_written: 0,
            comments: 0,
            read: std::cell::RefCell::new(BTreeMap::new()),
            effects: Vec::new(),
            logs: Vec::new(),
            log_bytes: 0,
            calls: Vec::new(),
            messages: 0,
            follow_ups: 0,
            effect_bytes: 0,
            seq: 0,
            denied: None,
            tripped: None,
        }
    }

    /// Appends a line to the run log, within the log budget.
    pub fn log_line(&mut self, level: &str, message: &str) {
        if self.log_bytes >= self.limits.log_bytes {
            return;
        }
        self.log_bytes += message.len();
        let mut message = message.to_string();
        if self.log_bytes > self.limits.log_bytes {
            let keep = message
                .len()
                .saturating_sub(self.log_bytes - self.limits.log_bytes);
            let mut cut = keep;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" … [log truncated: the run's log budget is spent]");
        }
        self.logs.push(LogLine {
            level: level.to_string(),
            message,
        });
    }

    /// Counts a host call; past the budget the run ends with `host_call_limit`.
    fn begin(&mut self, call: &str, target: &str) -> wasmtime::Result<()> {
        if self.calls.len() as u64 >= u64::from(self.limits.host_calls) {
            self.tripped = Some(Outcome::HostCallLimit);
            return Err(wasmtime::Error::msg(format!(
                "host call limit: more than {} host calls",
                self.limits.host_calls
            )));
        }
        let target = clip(target, 200).to_string();
        self.calls.push(HostCall {
            call: call.to_string(),
            target,
            error: None,
        });
        Ok(())
    }

    fn fail<T>(&mut self, e: t::HostError) -> HostResult<T> {
        let text = match &e {
            t::HostError::NotFound(m) => format!("not-found: {}", clip(m, ERROR_KEPT)),
            t::HostError::Denied(m) => format!("denied: {}", clip(m, ERROR_KEPT)),
            t::HostError::Invalid(m) => format!("invalid: {}", clip(m, ERROR_KEPT)),
            t::HostError::Limit(m) => format!("limit: {}", clip(m, ERROR_KEPT)),
        };
        if let Some(c) = self.calls.last_mut() {
            c.error = Some(text);
        }
        Ok(Err(e))
    }

    /// Counts `bytes` more of effects; past the run's budget the run ends `effect_limit`.
    fn spend(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.effect_bytes += bytes;
        if self.effect_bytes > self.limits.effect_bytes {
            return Err(self.trip(Outcome::EffectLimit {
                message: format!(
                    "the run's effects add up to more than {} bytes",
                    self.limits.effect_bytes
                ),
            }));
        }
        Ok(())
    }

    fn deny<T>(&mut self, message: String) -> HostResult<T> {
        if self.denied.is_none() {
            self.denied = Some(message.clone());
        }
        self.fail(t::HostError::Denied(message))
    }

    fn trip(&mut self, outcome: Outcome) -> wasmtime::Error {
        let text = outcome.describe();
        self.tripped = Some(outcome);
        wasmtime::Error::msg(text)
    }

    fn read(&self, id: &str) -> wasmtime::Result<Option<Record>> {
        if let Some(r) = (self.overlay.get(id))
            .or_else(|| self.base.get(id))
            .or_else(|| self.created.get(id))
        {
            return Ok(Some(r.clone()));
        }
        if self.deleted.contains(id) {
            return Ok(None);
        }
        if let Some(r) = self.read.borrow().get(id) {
            return Ok(r.clone());
        }
        let r = self.source.record(id).map_err(|e| {
            wasmtime::Error::msg(format!("storage failure while reading {id:?}: {e}"))
        })?;
        self.read.borrow_mut().insert(id.to_string(), r.clone());
        Ok(r)
    }

    /// The run's next id: time-ordered (`at`, e.g. when a follow-up comes due) like every
    /// other id, and deterministic (its random part hashes the run key and a sequence
    /// number), so the same run reproduces the same ids.
    fn next_id(&mut self, prefix: &str, at: DateTime<Utc>) -> String {
        self.seq += 1;
        let digest = Sha256::digest(format!("{}#{}", self.run_key, self.seq).as_bytes());
        let mut random = [0u8; 16];
        random.copy_from_slice(&digest[..16]);
        crate::model::id::id_at(prefix, at.timestamp_millis(), u128::from_be_bytes(random))
    }

    /// Parses a JSON value a module wants stored and checks it against the shared limits
    /// (depth and size: `stagecraft_rules::value`). Refusals are `limit` errors naming it.
    fn parse_json(&self, what: &str, text: &str) -> Result<Value, t::HostError> {
        // Not even parsed when the text alone is far past the limit (whitespace allowed).
        if text.len() > 2 * value::MAX_VALUE_BYTES {
            return Err(t::HostError::Limit(format!(
                "{what} is {} bytes of JSON; the limit is {} bytes",
                text.len(),
                value::MAX_VALUE_BYTES
            )));
        }
        let v = serde_json::from_str(text).map_err(|e| {
            if e.to_string().contains("recursion limit") {
                t::HostError::Limit(format!(
                    "{what} nests more than 127 levels deep; the limit is {} levels of arrays and objects",
                    value::MAX_DEPTH
                ))
            } else {
                t::HostError::Invalid(format!("{what} is not valid JSON: {e}"))
            }
        })?;
        value::check(what, &v).map_err(|e| t::HostError::Limit(e.to_string()))?;
        Ok(v)
    }
}

/// Bytes of a host call's error kept in the run record (it may quote what the guest sent).
const ERROR_KEPT: usize = 300;

/// At most `max` bytes of `s`, cut on a character boundary (guest strings are arbitrary).
fn clip(s: &str, max: usize) -> &str {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

impl types::Host for HostApi {}

impl records::Host for HostApi {
    fn get(&mut self, id: String) -> HostResult<t::CrmRecord> {
        self.begin("records.get", &id)?;
        match self.read(&id)? {
            Some(r) => Ok(Ok(record_to_wit(&r))),
            None => self.fail(t::HostError::NotFound(format!("record {id:?}"))),
        }
    }

    fn find(&mut self, filter: records::Filter, limit: u32) -> HostResult<Vec<t::CrmRecord>> {
        self.begin("records.find", "")?;
        let limit = limit.clamp(1, self.limits.find_limit) as usize;
        let filter = RecordFilter {
            kind: filter.kind.map(kind_from_wit),
            pipeline: filter.pipeline,
            stage: filter.stage,
            owner: filter.owner,
        };
        let found = self
            .source
            .find(&filter, limit)
            .map_err(|e| wasmtime::Error::msg(format!("storage failure in find: {e}")))?;
        let mut out: Vec<Record> = Vec::new();
        for r in found {
            if self.deleted.contains(&r.id) && !self.overlay.contains_key(&r.id) {
                continue;
            }
            let current = (self.overlay.get(&r.id).or_else(|| self.base.get(&r.id)))
                .cloned()
                .unwrap_or(r);
            if filter.matches(&current) {
                out.push(current);
            }
        }
        for r in (self.overlay.values())
            .chain(self.base.values())
            .chain(self.created.values())
        {
            if out.len() >= limit {
                break;
            }
            if filter.matches(r) && !out.iter().any(|o| o.id == r.id) {
                out.push(r.clone());
            }
        }
        out.truncate(limit);
        Ok(Ok(out.iter().map(record_to_wit).collect()))
    }

    fn create(&mut self, spec: records::NewRecord) -> HostResult<String> {
        self.create_record(spec)
    }
}

/// What a call that would change a record this run created is told.
fn created_here(id: &str) -> t::HostError {
    t::HostError::Invalid(format!(
        "record {id:?} was created by this run; give all its fields to records.create"
    ))
}

impl stages::Host for HostApi {
    fn move_to(&mut self, id: String, stage: String) -> HostResult<()> {
        self.begin("stages.move-to", &format!("{id} → {stage}"))?;
        if self.created_here(&id) {
            return self.fail(created_here(&id));
        }
        let Some(mut r) = self.read(&id)? else {
            return self.fail(t::HostError::NotFound(format!("record {id:?}")));
        };
        let pipeline = match &r.pipeline {
            None => None,
            Some(pid) => match self
                .source
                .pipeline(pid)
                .map_err(|e| wasmtime::Error::msg(format!("storage failure: {e}")))?
            {
                Some(p) => Some(p),
                None => return self.deny(format!("pipeline {pid:?} no longer exists")),
            },
        };
        let stages: Vec<&str> = pipeline
            .iter()
            .flat_map(|p| p.stages.iter().map(|s| s.id.as_str()))
            .collect();
        let current = r.stage.clone().filter(|_| pipeline.is_some());
        let check = stagecraft_rules::check_move(
            &id,
            r.kind.as_str(),
            r.pipeline.as_deref().unwrap_or_default(),
            &stages,
            current.as_deref(),
            &stage,
            self.grants.backward,
        );
        let current = match check {
            Ok(MoveCheck::Unchanged) => return Ok(Ok(())),
            Ok(MoveCheck::Move) => current.unwrap_or_default(),
            Err(message) => return self.deny(message),
        };
        r.stage = Some(stage.clone());
        self.overlay.insert(id.clone(), r);
        self.effects.push(Effect::MoveStage {
            record: id,
            from: current,
            to: stage,
        });
        Ok(Ok(()))
    }
}

impl fields::Host for HostApi {
    fn set(&mut self, id: String, name: String, value: String) -> HostResult<()> {
        self.begin("fields.set", &format!("{id}.{name}"))?;
        if !self.grants.may_write(&name) {
            return self.deny(format!("field {name:?} is not granted to this binding"));
        }
        let text_len = value.len();
        let value = match self.parse_json(&format!("the value of field {name:?}"), &value) {
            Ok(v) => v,
            Err(e) => return self.fail(e),
        };
        if self.created_here(&id) {
            return self.fail(created_here(&id));
        }
        let Some(mut r) = self.read(&id)? else {
            return self.fail(t::HostError::NotFound(format!("record {id:?}")));
        };
        if let Err(m) = r.set_field(&name, value.clone()) {
            return self.fail(t::HostError::Invalid(m));
        }
        if let Err(m) = r.check_size() {
            return self.fail(t::HostError::Limit(m));
        }
        if name == "company" || name == "contact" {
            // Links resolve through the run's own view, so a record created earlier in the
            // same change (e.g. by a lead conversion) counts.
            for (field, target, kind) in r.links() {
                let problem = match self.read(target)? {
                    Some(t) if t.kind == kind => continue,
                    Some(t) => format!(
                        "field {field:?}: record {target:?} is a {}, not a {}",
                        t.kind.as_str(),
                        kind.as_str()
                    ),
                    None => format!("field {field:?}: record {target:?} does not exist"),
                };
                return self.fail(t::HostError::Invalid(problem));
            }
        }
        self.spend(text_len + name.len())?;
        self.overlay.insert(id.clone(), r);
        self.effects.push(Effect::SetField {
            record: id,
            field: name,
            value,
        });
        Ok(Ok(()))
    }
}

impl messages::Host for HostApi {
    fn queue(&mut self, m: messages::Message) -> HostResult<String> {
        let channel = channel_from_wit(m.channel);
        self.begin("messages.queue", &format!("{} {}", channel.as_str(), m.to))?;
        if !self.grants.may_send(channel) {
            return self.deny(format!(
                "channel {:?} is not granted to this binding",
                channel.as_str()
            ));
        }
        if self.messages >= self.limits.messages {
            return Err(self.trip(Outcome::MessageLimit {
                message: format!("more than {} messages in one run", self.limits.messages),
            }));
        }
        let size = m.to.len() + m.subject.len() + m.body.len();
        if size > self.limits.message_bytes {
            return Err(self.trip(Outcome::MessageLimit {
                message: format!(
                    "a {} message of {size} bytes exceeds the limit of {} bytes",
                    channel.as_str(),
                    self.limits.message_bytes
                ),
            }));
        }
        if m.to.trim().is_empty() {
            return self.fail(t::HostError::Invalid("a message needs a recipient".into()));
        }
        if let Some(k) = &m.idempotency_key {
            if k.is_empty() || k.len() > 200 {
                return self.fail(t::HostError::Invalid(
                    "an idempotency key must be 1-200 bytes".into(),
                ));
            }
        }
        self.spend(size)?;
        self.messages += 1;
        let id = self.next_id("msg", self.event_at);
        self.effects.push(Effect::QueueMessage {
            id: id.clone(),
            channel,
            to: m.to,
            subject: m.subject,
            body: m.body,
            idempotency_key: m.idempotency_key,
            record: self.event_record.clone(),
        });
        Ok(Ok(id))
    }
}

impl schedule::Host for HostApi {
    fn after(&mut self, seconds: u64, payload: String) -> HostResult<String> {
        self.begin("schedule.after", &format!("{seconds}s"))?;
        let Some(record) = self.event_record.clone() else {
            return self.fail(t::HostError::Invalid(
                "this event has no record to follow up on".into(),
            ));
        };
        if seconds > self.limits.max_delay.as_secs() {
            return self.fail(t::HostError::Invalid(format!(
                "a follow-up may be at most {} seconds away",
                self.limits.max_delay.as_secs()
            )));
        }
        if self.follow_ups >= self.limits.follow_ups {
            return Err(self.trip(Outcome::TimerLimit {
                message: format!("more than {} follow-ups in one run", self.limits.follow_ups),
            }));
        }
        let text_len = payload.len();
        let payload = match self.parse_json("the follow-up payload", &payload) {
            Ok(v) => v,
            Err(e) => return self.fail(e),
        };
        self.spend(text_len)?;
        self.follow_ups += 1;
        // Named after when it comes due, so the follow-up's event and run sort by time.
        let due = self.event_at + chrono::Duration::seconds(seconds as i64);
        let id = self.next_id("tmr", due);
        self.effects.push(Effect::Schedule {
            id: id.clone(),
            record,
            seconds,
            payload,
        });
        Ok(Ok(id))
    }
}

impl log::Host for HostApi {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.begin("log.write", "")?;
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.log_line(level, &message);
        Ok(())
    }
}

impl config::Host for HostApi {
    fn get(&mut self) -> wasmtime::Result<String> {
        self.begin("config.get", "")?;
        Ok(self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clipping_never_splits_a_character() {
        let euros = "€".repeat(100);
        assert_eq!(clip(&euros, 200).len(), 198);
        assert_eq!(clip("a → b", 3), "a ");
        assert_eq!(clip("short", 200), "short");
    }
}
