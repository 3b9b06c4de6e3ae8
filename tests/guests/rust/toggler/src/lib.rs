//! Keeps moving a record back where it came from: the loop guard must stop it.
use stagecraft_sdk::prelude::*;

struct Toggler;

impl Rule for Toggler {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        if let EventKind::StageChanged { from, .. } = &event.kind {
            let id = event.record()?.id.clone();
            ctx.move_to(&id, from)?;
        }
        Ok(())
    }
}

export_rule!(Toggler);
