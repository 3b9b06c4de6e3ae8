//! A module built against host API 0.1 (`guest-sdk/wit-0.1`, the frozen 0.1 contract) with
//! plain wit-bindgen, as modules were before 0.2: it imports `stagecraft:automation/…@0.1.0`
//! and proves the host still links and runs such modules unchanged. It re-reads the event's
//! record, moves it to the configured stage (`{"target": "…"}`) if it is in `new`, sets
//! `v01 = true` and logs what it did.

wit_bindgen::generate!({
    world: "rule",
    path: "../../../../guest-sdk/wit-0.1",
});

use stagecraft::automation::{config, fields, log, records, stages};

struct V01;

impl Guest for V01 {
    fn handle(event: stagecraft::automation::types::Event) -> Result<(), String> {
        let Some(record) = event.record else {
            return Ok(());
        };
        let record = records::get(&record.id).map_err(|e| format!("{e:?}"))?;
        let config: serde_json::Value = serde_json::from_str(&config::get()).unwrap_or_default();
        let target = config["target"].as_str().unwrap_or("contacted").to_string();
        if record.stage.as_deref() == Some("new") {
            stages::move_to(&record.id, &target).map_err(|e| format!("{e:?}"))?;
        }
        fields::set(&record.id, "v01", "true").map_err(|e| format!("{e:?}"))?;
        log::write(
            log::Level::Info,
            &format!("0.1 module moved {} to {target}", record.id),
        );
        Ok(())
    }
}

export!(V01);
