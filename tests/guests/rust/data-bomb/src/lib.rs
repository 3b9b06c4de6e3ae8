//! Hostile: what a module can make the host store or send back. `config.attack` picks one:
//! - `deep`: writes a custom field nested `config.levels` deep (errors propagate);
//! - `huge-error`: returns an error of `config.bytes` bytes;
//! - `snowball`: schedules `config.count` follow-ups of `config.after` seconds on every
//!   event, its follow-ups included (each does the same);
//! - `big-effects`: writes a 60,000-byte value `config.count` times;
//! - `noisy`: makes `config.count` refused host calls whose errors quote a huge field name.
use serde_json::{json, Value};
use stagecraft_sdk::prelude::*;

struct DataBomb;

fn nested(levels: u64) -> Value {
    let mut v = json!(0);
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

impl Rule for DataBomb {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config = ctx.config_value();
        let n = |k: &str, d: u64| config[k].as_u64().unwrap_or(d);
        let id = event.record()?.id.clone();
        match config["attack"].as_str().unwrap_or_default() {
            "deep" => {
                ctx.set_field(&id, "deep", &nested(n("levels", 127)))?;
            }
            "huge-error" => return Err("x".repeat(n("bytes", 50 * 1024 * 1024) as usize)),
            "snowball" => {
                for i in 0..n("count", 300) {
                    ctx.schedule_after(n("after", 0), &json!({"i": i}))?;
                }
            }
            "big-effects" => {
                let big = "y".repeat(60_000);
                for _ in 0..n("count", 40) {
                    ctx.set_field(&id, "big", &big)?;
                }
            }
            "noisy" => {
                let name = "/".repeat(100_000);
                for _ in 0..n("count", 900) {
                    let _ = ctx.set_field(&id, &name, &1);
                }
            }
            other => return Err(format!("unknown attack {other:?}")),
        }
        Ok(())
    }
}

export_rule!(DataBomb);
