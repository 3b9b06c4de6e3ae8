//! A well-behaved rule: re-reads the event's record and moves it to the configured stage
//! (`{"target": "…"}`, default `contacted`) if it is still in `new`.
use stagecraft_sdk::prelude::*;

struct Mover;

impl Rule for Mover {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        let record = ctx.get(&id).map_err(|e| e.to_string())?;
        let config: serde_json::Value = ctx.config_value();
        let target = config["target"].as_str().unwrap_or("contacted").to_string();
        println!("mover saw {} in {:?}", record.id, record.stage);
        if record.stage.as_deref() == Some("new") {
            ctx.move_to(&id, &target).map_err(|e| e.to_string())?;
            ctx.info(&format!("moved {id} to {target}"));
        }
        Ok(())
    }
}

export_rule!(Mover);
