//! Reads the clock and random bytes and writes both into fields: the host makes both
//! deterministic (event time, seeded from the event id).
use stagecraft_sdk::prelude::*;

struct ClockRandom;

impl Rule for ClockRandom {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as u64;
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        let random = u64::from_le_bytes(bytes);
        let id = event.record()?.id.clone();
        ctx.set_field(&id, "seen_at_ms", &now)
            .map_err(|e| e.to_string())?;
        ctx.set_field(&id, "lucky", &random.to_string())
            .map_err(|e| e.to_string())?;
        ctx.info(&format!("clock {now} random {random}"));
        println!(
            "hash-seeded map: {:?}",
            std::collections::HashMap::from([(1, 2), (3, 4), (5, 6)])
                .keys()
                .collect::<Vec<_>>()
        );
        Ok(())
    }
}

export_rule!(ClockRandom);
