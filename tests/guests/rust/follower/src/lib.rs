//! On `created`: schedules a follow-up after `config.after` seconds. On the follow-up:
//! records it on the record and queues an email.
use serde_json::json;
use stagecraft_sdk::prelude::*;

struct Follower;

impl Rule for Follower {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        match &event.kind {
            EventKind::Scheduled { payload } => {
                ctx.set_field(&id, "followed_up", &payload["step"])?;
                ctx.queue(Message::email(
                    "lead@example.com",
                    "Checking in",
                    "Any questions?",
                ))?;
            }
            _ => {
                let after = ctx.config_value()["after"].as_u64().unwrap_or(1);
                ctx.schedule_after(after, &json!({"step": 1}))?;
            }
        }
        Ok(())
    }
}

export_rule!(Follower);
