// The scoring rule shared by `scorer` and `scorer-strict`; each crate sets `THRESHOLD`.

use stagecraft_sdk::prelude::*;

struct Scorer;

impl Rule for Scorer {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let lead = event.record()?;
        let id = lead.id.clone();
        let Some(size) = lead.custom_field::<i64>("size") else {
            return Err(format!("lead {id} has no size to score"));
        };
        let score = size / 10;
        ctx.set_field(&id, "score", &score)?;
        if score >= THRESHOLD {
            ctx.move_to(&id, "qualified")?;
            let body = format!("lead {id} scored {score}");
            ctx.queue(Message::new(Channel::Notify, "sales", "hot lead", &body))?;
        }
        Ok(())
    }
}

export_rule!(Scorer);
