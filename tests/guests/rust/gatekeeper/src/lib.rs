//! An inline validator: leads need an email address from a company domain.
use stagecraft_sdk::prelude::*;

struct Gatekeeper;

impl Rule for Gatekeeper {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let record = event.record()?;
        match record.email.as_deref() {
            None => Err("leads need an email address".into()),
            Some(e) if e.ends_with("@gmail.com") => Err(format!("{e} is not a company address")),
            Some(_) => {
                ctx.set_field(&record.id, "vetted", &true)?;
                Ok(())
            }
        }
    }
}

export_rule!(Gatekeeper);
