//! Hostile: queues a message far larger than allowed.
use stagecraft_sdk::prelude::*;

struct Big;

impl Rule for Big {
    fn handle(ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
        let body = "spam ".repeat(400_000);
        ctx.queue(Message::email("victim@example.com", "hello", &body))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

export_rule!(Big);
