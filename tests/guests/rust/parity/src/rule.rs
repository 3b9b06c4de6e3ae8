//! Makes the calls its config lists and logs how each one ended, carrying on past errors:
//! `{"ops": [{"move": "qualified"}, {"set": "score", "value": 70}, …]}` on the event's
//! record. The same source runs natively on the SDK's `MockHost` (tests/tests/parity.rs
//! includes this file) and as a component on the real host, so the two can be compared.

use stagecraft_sdk::prelude::*;

pub struct Parity;

fn verdict(r: Result<(), HostError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(HostError::NotFound(_)) => "not-found",
        Err(HostError::Denied(_)) => "denied",
        Err(HostError::Invalid(_)) => "invalid",
        Err(HostError::Limit(_)) => "limit",
    }
}

impl Rule for Parity {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        let config = ctx.config_value();
        let ops = config["ops"].as_array().cloned().unwrap_or_default();
        for (i, op) in ops.iter().enumerate() {
            let result = if let Some(stage) = op["move"].as_str() {
                ctx.move_to(&id, stage)
            } else if let Some(field) = op["set"].as_str() {
                ctx.set_field(&id, field, &op["value"])
            } else {
                return Err(format!("op {i} is neither a move nor a set: {op}"));
            };
            ctx.info(format!("op {i}: {}", verdict(result)));
        }
        Ok(())
    }
}
