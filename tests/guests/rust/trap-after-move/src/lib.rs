//! Moves the record's stage, then traps: nothing may apply.
use stagecraft_sdk::prelude::*;

struct TrapAfterMove;

impl Rule for TrapAfterMove {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        ctx.move_to(&id, "qualified").map_err(|e| e.to_string())?;
        ctx.set_field(&id, "touched", &true)
            .map_err(|e| e.to_string())?;
        core::arch::wasm32::unreachable()
    }
}

export_rule!(TrapAfterMove);
