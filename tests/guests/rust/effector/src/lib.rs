//! Does what its config says, for testing grants and cascades:
//! `{"stage": "…", "field": "…", "value": …, "channel": "email", "to": "…", "key": "…",
//! "fail": true, "work": 1000000}`.
use serde_json::Value;
use stagecraft_sdk::prelude::*;

struct Effector;

impl Rule for Effector {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        let config = ctx.config_value();
        if let Some(field) = config["field"].as_str() {
            ctx.set_field(&id, field, &config["value"])?;
        }
        if let Some(channel) = config["channel"].as_str() {
            let channel = match channel {
                "email" => Channel::Email,
                "sms" => Channel::Sms,
                "webhook" => Channel::Webhook,
                _ => Channel::Notify,
            };
            let to = config["to"].as_str().unwrap_or("owner@example.com");
            let mut msg = Message::new(channel, to, "hello", &format!("about {id}"));
            if let Some(k) = config["key"].as_str() {
                msg = msg.idempotency_key(k);
            }
            ctx.queue(msg)?;
        }
        if let Some(stage) = config["stage"].as_str() {
            ctx.move_to(&id, stage)?;
        }
        // `work`: burn this many rounds of arithmetic after the effects are asked for (keeps
        // background work in flight, and holds the run open between its writes and commit).
        let mut acc: u64 = 1;
        for i in 0..config["work"].as_u64().unwrap_or(0) {
            acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        std::hint::black_box(acc);
        if config["fail"] == Value::Bool(true) {
            return Err("configured to fail".into());
        }
        Ok(())
    }
}

export_rule!(Effector);
