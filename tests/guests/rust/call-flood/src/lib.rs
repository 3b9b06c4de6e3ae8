//! Hostile: floods the host with calls.
use stagecraft_sdk::prelude::*;

struct Flood;

impl Rule for Flood {
    fn handle(ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
        for i in 0..10_000_000u64 {
            ctx.debug(&format!("call {i}"));
        }
        Ok(())
    }
}

export_rule!(Flood);
