//! sla-escalation: escalates a record (typically a support-style lead) that sits in an open
//! stage longer than the response SLA.
//!
//! On any non-scheduled event where the record is in one of `open_stages`, the rule schedules
//! a follow-up `response_seconds` after the event, payload `{"sla": "response", "stage": S}`.
//! The host cancels it if the record leaves S in time, so no bookkeeping is needed. When the
//! follow-up comes due the rule re-reads the record; if it is still in an open stage it
//! breaches: set `owner` to `on_call` (when configured), set custom field `sla_breached_at` to
//! the event's time, move it to `escalated_stage`, and POST
//! `{"record", "name", "stage", "breached_at", "owner", "escalated_to"}` to `webhook_url`
//! (idempotency key `sla/{record}/{stage}`); with `comment` on, it also says so on the
//! record's timeline (host API 0.2). If it has left the open stages, it only logs.
//!
//! Config (every key optional; defaults shown except for `on_call` and `webhook_url`):
//! ```json
//! {"response_seconds": 14400, "open_stages": ["new"], "escalated_stage": "escalated",
//!  "on_call": "u_oncall", "webhook_url": "https://oncall.example/hooks/stagecraft",
//!  "comment": false}
//! ```
//! Bind to: `created` and `stage_changed` (or `entered_stage` for each open stage).
//! Grants needed: fields `sla_breached_at` and `owner` (`owner` only with `on_call`); channel
//! `webhook` (only with `webhook_url`); backward moves only if `escalated_stage` comes before
//! an open stage in the pipeline; `comment` when `comment` is on.

use serde::{Deserialize, Serialize};
use serde_json::json;
use stagecraft_sdk::prelude::*;

/// The custom field set to the breach time.
pub const BREACHED_AT: &str = "sla_breached_at";
/// The `sla` of the follow-ups this rule schedules.
pub const RESPONSE: &str = "response";
/// The host's limit on a follow-up's delay.
pub const MAX_DELAY_SECONDS: u64 = 366 * 24 * 3600;

/// The response SLA and what a breach does. Every key is optional.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a record may stay in an open stage, in seconds (default 4 hours).
    #[config(minimum = 1, maximum = 31622400)]
    pub response_seconds: u64,
    /// Stages where the SLA clock runs.
    pub open_stages: Vec<String>,
    /// Where breaching records go.
    pub escalated_stage: String,
    /// User to reassign breaching records to (unchanged when unset).
    pub on_call: Option<String>,
    /// The on-call endpoint to POST breaches to (no call when unset).
    pub webhook_url: Option<String>,
    /// Comment on the escalated record's timeline (needs the `comment` grant).
    pub comment: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            response_seconds: 4 * 3600,
            open_stages: vec!["new".into()],
            escalated_stage: "escalated".into(),
            on_call: None,
            webhook_url: None,
            comment: false,
        }
    }
}

impl Config {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_DELAY_SECONDS).contains(&self.response_seconds) {
            return Err(format!(
                "binding config: `response_seconds` must be 1-{MAX_DELAY_SECONDS}, not {}",
                self.response_seconds
            ));
        }
        if self.open_stages.is_empty() {
            return Err(
                "binding config: `open_stages` is empty, so nothing would ever be escalated".into(),
            );
        }
        if self.escalated_stage.trim().is_empty() {
            return Err("binding config: `escalated_stage` is empty".into());
        }
        if self.open_stages.contains(&self.escalated_stage) {
            return Err(format!(
                "binding config: `escalated_stage` {:?} is also in `open_stages`",
                self.escalated_stage
            ));
        }
        Ok(())
    }

    /// The open stage `record` is in, if any.
    pub fn open_stage<'r>(&self, record: &'r Record) -> Option<&'r str> {
        record
            .stage
            .as_deref()
            .filter(|s| self.open_stages.iter().any(|o| o == s))
    }
}

/// The payload of an SLA follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    pub sla: String,
    pub stage: String,
}

/// The comment left on an escalated record's timeline.
pub fn breach_comment(stage: &str, breached_at: &str, config: &Config) -> String {
    let mut text = format!(
        "Response SLA breached: still in {stage:?} at {breached_at}, {}s after it started. \
         Escalated to {:?}",
        config.response_seconds, config.escalated_stage
    );
    if let Some(on_call) = config.on_call.as_deref().filter(|u| !u.trim().is_empty()) {
        text.push_str(&format!(" and reassigned to {on_call}"));
    }
    text.push('.');
    text
}

/// The JSON body POSTed to the on-call webhook.
pub fn breach_body(
    record: &Record,
    stage: &str,
    breached_at: &str,
    config: &Config,
) -> serde_json::Value {
    json!({
        "record": record.id,
        "name": record.name,
        "stage": stage,
        "breached_at": breached_at,
        "owner": config.on_call.as_ref().or(record.owner.as_ref()),
        "escalated_to": config.escalated_stage,
    })
}

pub struct SlaEscalation;

impl SlaEscalation {
    /// Starts the SLA clock if the record is in an open stage.
    fn start(ctx: &mut Ctx<'_>, config: &Config, id: &str) -> Result<(), String> {
        let record = ctx.get(id)?;
        let Some(stage) = config.open_stage(&record) else {
            ctx.debug(format!(
                "{id} is in {:?}, not an open stage; no SLA clock",
                record.stage
            ));
            return Ok(());
        };
        let due = Due {
            sla: RESPONSE.into(),
            stage: stage.to_string(),
        };
        ctx.schedule_after(config.response_seconds, &due)?;
        ctx.info(format!(
            "{id}: {}s response SLA started in {stage:?}",
            config.response_seconds
        ));
        Ok(())
    }

    /// The SLA came due: escalate if the record is still open.
    fn check(ctx: &mut Ctx<'_>, config: &Config, event: &Event, id: &str) -> Result<(), String> {
        match event.payload_as::<Due>() {
            Ok(due) if due.sla == RESPONSE => {}
            Ok(due) => {
                ctx.warn(format!(
                    "ignoring a follow-up for unknown SLA {:?}",
                    due.sla
                ));
                return Ok(());
            }
            Err(e) => {
                ctx.warn(format!(
                    "ignoring a follow-up that is not an SLA check: {e}"
                ));
                return Ok(());
            }
        }
        let record = match ctx.get(id) {
            Ok(r) => r,
            Err(HostError::NotFound(_)) => {
                ctx.info(format!("{id} is gone; SLA check dropped"));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(stage) = config.open_stage(&record).map(str::to_string) else {
            ctx.info(format!(
                "{id}: answered in time (now in {:?}); nothing to do",
                record.stage
            ));
            return Ok(());
        };
        let breached_at = event.occurred_at.as_str();
        if let Some(on_call) = config.on_call.as_deref().filter(|u| !u.trim().is_empty()) {
            if record.owner.as_deref() != Some(on_call) {
                ctx.set_field(id, "owner", on_call)?;
            }
        }
        ctx.set_field(id, BREACHED_AT, breached_at)?;
        ctx.move_to(id, &config.escalated_stage)?;
        match config
            .webhook_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => {
                let body = breach_body(&record, &stage, breached_at, config);
                ctx.queue(
                    Message::webhook(url, body.to_string())
                        .idempotency_key(format!("sla/{id}/{stage}")),
                )?;
            }
            None => ctx.warn("no webhook_url configured; on-call not called"),
        }
        if config.comment {
            ctx.comment(id, breach_comment(&stage, breached_at, config))?;
        }
        ctx.warn(format!(
            "{id}: response SLA breached in {stage:?} at {breached_at}; escalated to {:?}",
            config.escalated_stage
        ));
        Ok(())
    }
}

impl Rule for SlaEscalation {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config: Config = ctx.config()?;
        config.validate()?;
        if matches!(event.kind, EventKind::Deleted) {
            return Ok(());
        }
        let Some(record) = &event.record else {
            ctx.debug(format!(
                "{} event {} has no record; nothing to do",
                event.kind.name(),
                event.id
            ));
            return Ok(());
        };
        match event.kind {
            EventKind::Scheduled { .. } => Self::check(ctx, &config, event, &record.id),
            _ => Self::start(ctx, &config, &record.id),
        }
    }
}

stagecraft_sdk::export_rule!(SlaEscalation);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use stagecraft_sdk::testing::{self, Effect, MockHost};

    const STAGES: &[&str] = &["new", "triage", "escalated", "in_progress", "resolved"];

    fn ticket(stage: &str) -> Record {
        let mut r = testing::lead("t1", "Printer on fire", "support", stage);
        r.owner = Some("u_agent".into());
        r
    }

    fn host(config: &str) -> MockHost {
        MockHost::new()
            .with_config(config)
            .with_pipeline("support", STAGES)
    }

    fn due(stage: &str, at: &str) -> Event {
        let mut e = Event::scheduled(ticket(stage), json!({"sla": "response", "stage": stage}));
        e.occurred_at = at.into();
        e
    }

    const FULL: &str = r#"{"on_call": "u_oncall", "webhook_url": "https://oncall.example/hook"}"#;

    #[test]
    fn new_records_start_the_clock() -> Result<(), String> {
        let mut host = host("{}");
        host.run::<SlaEscalation>(&Event::created(ticket("new")))?;
        assert_eq!(
            host.effects,
            vec![Effect::Schedule {
                seconds: 14_400,
                payload: json!({"sla": "response", "stage": "new"})
            }]
        );
        Ok(())
    }

    #[test]
    fn each_open_stage_gets_its_own_clock() -> Result<(), String> {
        let mut host = host(r#"{"open_stages": ["new", "triage"], "response_seconds": 900}"#);
        host.run::<SlaEscalation>(&Event::stage_changed(ticket("new"), "new", "triage"))?;
        assert_eq!(
            host.effects,
            vec![Effect::Schedule {
                seconds: 900,
                payload: json!({"sla": "response", "stage": "triage"})
            }]
        );
        Ok(())
    }

    #[test]
    fn closed_stages_start_nothing() -> Result<(), String> {
        let mut host = host("{}");
        host.run::<SlaEscalation>(&Event::stage_changed(ticket("new"), "new", "in_progress"))?;
        host.run::<SlaEscalation>(&Event::created(testing::company("c1", "Acme")))?;
        host.run::<SlaEscalation>(&Event::deleted(ticket("new")))?;
        host.run::<SlaEscalation>(&Event::inbound("ping", json!({}), None))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    #[test]
    fn a_breach_escalates_reassigns_and_calls_on_call() -> Result<(), String> {
        let mut host = host(FULL);
        host.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        let t1 = host.record("t1").ok_or("no t1")?;
        assert!(t1.in_stage("escalated"));
        assert_eq!(t1.owner.as_deref(), Some("u_oncall"));
        assert_eq!(
            t1.custom_field::<String>(BREACHED_AT).as_deref(),
            Some("2025-01-01T04:00:00Z")
        );

        let sent = host.queued();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].channel, Channel::Webhook);
        assert_eq!(sent[0].to, "https://oncall.example/hook");
        assert_eq!(sent[0].idempotency_key.as_deref(), Some("sla/t1/new"));
        let body: Value = serde_json::from_str(&sent[0].body).map_err(|e| e.to_string())?;
        assert_eq!(
            body,
            json!({"record": "t1", "name": "Printer on fire", "stage": "new",
                   "breached_at": "2025-01-01T04:00:00Z", "owner": "u_oncall", "escalated_to": "escalated"})
        );
        Ok(())
    }

    #[test]
    fn a_breach_is_commented_on_the_ticket() -> Result<(), String> {
        let config = r#"{"on_call": "u_oncall", "response_seconds": 900, "comment": true}"#;
        let mut host = host(config).with_grant("comment");
        host.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        let comments: Vec<(&str, &str)> = host
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Comment { record, body, .. } => Some((record.as_str(), body.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            comments,
            [(
                "t1",
                "Response SLA breached: still in \"new\" at 2025-01-01T04:00:00Z, 900s after \
                 it started. Escalated to \"escalated\" and reassigned to u_oncall."
            )]
        );
        // Answered in time: no comment.
        let mut answered = self::host(config)
            .with_grant("comment")
            .with_record(ticket("in_progress"));
        answered.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        assert!(answered.effects.is_empty());
        Ok(())
    }

    #[test]
    fn the_comment_needs_its_grant_and_nothing_applies_without() {
        let mut host = host(r#"{"on_call": "u_oncall", "comment": true}"#);
        let err = host
            .run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))
            .unwrap_err();
        assert!(err.contains("\"comment\""), "{err}");
        assert!(host.effects.is_empty());
        assert!(host.record("t1").is_some_and(|r| r.in_stage("new")));
    }

    #[test]
    fn the_key_names_the_stage_it_was_stuck_in() -> Result<(), String> {
        let mut host =
            host(r#"{"open_stages": ["new", "triage"], "webhook_url": "https://h.example"}"#);
        host.run::<SlaEscalation>(&due("triage", "2025-01-01T04:00:00Z"))?;
        assert_eq!(
            host.queued()[0].idempotency_key.as_deref(),
            Some("sla/t1/triage")
        );
        assert_eq!(
            host.record("t1").and_then(|r| r.owner.clone()).as_deref(),
            Some("u_agent"),
            "no on_call: owner kept"
        );
        Ok(())
    }

    #[test]
    fn answered_in_time_does_nothing() -> Result<(), String> {
        let mut host = host(FULL).with_record(ticket("in_progress"));
        host.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        assert!(host.effects.is_empty());
        assert!(host
            .logs
            .iter()
            .any(|(l, m)| *l == Level::Info && m.contains("answered in time")));
        Ok(())
    }

    #[test]
    fn a_second_timer_after_escalation_does_nothing() -> Result<(), String> {
        let mut host = host(FULL);
        host.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        let before = host.effects.len();
        host.run::<SlaEscalation>(&due("new", "2025-01-01T05:00:00Z"))?;
        assert_eq!(host.effects.len(), before);
        Ok(())
    }

    #[test]
    fn without_on_call_or_webhook_it_still_escalates() -> Result<(), String> {
        let mut host = host("{}");
        host.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        assert_eq!(
            host.effects,
            vec![
                Effect::SetField {
                    record: "t1".into(),
                    name: BREACHED_AT.into(),
                    value: json!("2025-01-01T04:00:00Z")
                },
                Effect::MoveStage {
                    record: "t1".into(),
                    stage: "escalated".into()
                },
            ]
        );
        assert!(host
            .logs
            .iter()
            .any(|(l, m)| *l == Level::Warn && m.contains("no webhook_url")));
        Ok(())
    }

    #[test]
    fn already_on_call_owner_is_not_rewritten() -> Result<(), String> {
        let mut mine = ticket("new");
        mine.owner = Some("u_oncall".into());
        let mut host = host(FULL).with_record(mine);
        host.run::<SlaEscalation>(&due("new", "2025-01-01T04:00:00Z"))?;
        assert!(!host
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SetField { name, .. } if name == "owner")));
        Ok(())
    }

    #[test]
    fn an_escalated_stage_behind_an_open_one_needs_the_backward_grant() {
        // `waiting` comes after `escalated`: without the grant the move is denied and the
        // whole run (owner, field, webhook) is rolled back.
        let mut host = MockHost::new()
            .with_config(r#"{"open_stages": ["waiting"], "on_call": "u_oncall", "webhook_url": "https://h.example"}"#)
            .with_pipeline("support", &["new", "escalated", "waiting"]);
        let err = host
            .run::<SlaEscalation>(&due("waiting", "2025-01-01T04:00:00Z"))
            .unwrap_err();
        assert!(err.starts_with("denied"), "{err}");
        assert!(host.effects.is_empty());
        assert_eq!(
            host.record("t1").and_then(|r| r.owner.clone()).as_deref(),
            Some("u_agent")
        );
    }

    #[test]
    fn foreign_follow_ups_are_ignored() -> Result<(), String> {
        let mut host = host(FULL);
        host.run::<SlaEscalation>(&Event::scheduled(
            ticket("new"),
            json!({"sla": "resolution", "stage": "new"}),
        ))?;
        host.run::<SlaEscalation>(&Event::scheduled(ticket("new"), json!("hello")))?;
        assert!(host.effects.is_empty());
        assert_eq!(
            host.logs.iter().filter(|(l, _)| *l == Level::Warn).count(),
            2
        );
        Ok(())
    }

    #[test]
    fn a_vanished_record_is_dropped() -> Result<(), String> {
        let mut host = host(FULL);
        stagecraft_sdk::rule::run::<SlaEscalation>(&mut host, &due("new", "2025-01-01T04:00:00Z"))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    #[test]
    fn bad_config_names_the_problem() {
        for (config, needle) in [
            (r#"{"response_secs": 60}"#, "response_secs"),
            (r#"{"response_seconds": 0}"#, "response_seconds"),
            (r#"{"response_seconds": 40000000}"#, "response_seconds"),
            (r#"{"open_stages": []}"#, "open_stages"),
            (r#"{"escalated_stage": " "}"#, "escalated_stage"),
            (
                r#"{"open_stages": ["new", "escalated"]}"#,
                "also in `open_stages`",
            ),
            (r#"{"on_call": 7}"#, "invalid type"),
        ] {
            let mut host = host(config);
            let err = host
                .run::<SlaEscalation>(&Event::created(ticket("new")))
                .unwrap_err();
            assert!(err.contains(needle), "{config}: {err}");
            assert!(host.effects.is_empty());
        }
    }
}
