//! The many-hosts proof's binding: every event it sees becomes one webhook to `config.to`
//! (so a sink can count deliveries by message id). On `created` it also marks the record
//! (`seen`) and schedules one follow-up after `config.after` seconds; the follow-up marks it
//! `followed` (each timer's firing is visible on its record).
use serde_json::json;
use stagecraft_sdk::prelude::*;

struct Relay;

impl Rule for Relay {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        let to = ctx.config_value()["to"]
            .as_str()
            .unwrap_or("http://127.0.0.1:9/hook")
            .to_string();
        let what = match &event.kind {
            EventKind::Created => {
                ctx.set_field(&id, "seen", &json!(true))?;
                let after = ctx.config_value()["after"].as_u64().unwrap_or(1);
                ctx.schedule_after(after, &json!({"step": 1}))?;
                "created"
            }
            EventKind::Scheduled { .. } => {
                ctx.set_field(&id, "followed", &json!(true))?;
                "followed"
            }
            EventKind::StageChanged { .. } => "moved",
            _ => "other",
        };
        ctx.queue(Message::new(Channel::Webhook, &to, what, &id))?;
        Ok(())
    }
}

export_rule!(Relay);
