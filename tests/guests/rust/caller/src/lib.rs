//! Calls out over `wasi:http/outgoing-handler` through the SDK's `http` helper, as the
//! binding config says:
//! `{"calls": [{"method", "url", "headers": {name: value}, "body", "body_bytes"}],
//! "repeat": n, "echo_headers": bool, "field": name}`. Logs each answer (`call N: status S
//! body B`) or error (`call N: error E`, E the helper's named error: `denied: …`,
//! `address_refused`, `request_timeout`, …) and carries on: a refused call is the module's to
//! handle. With `"field"`, writes the last JSON answer's `value` to that field of the event's
//! record. With `"echo_headers"`, logs the headers of each request as the module holds them.
use stagecraft_sdk::http;
use stagecraft_sdk::prelude::*;

struct Caller;

struct Call {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One call through the SDK's helper (`stagecraft_sdk::http`, over `wasi:http`).
fn call(ctx: &mut Ctx<'_>, c: &Call, echo: bool) -> Result<(u16, Vec<u8>), String> {
    let mut req = http::request(&c.method, c.url.clone()).body(c.body.clone());
    for (k, v) in &c.headers {
        req = req.header(k.clone(), v.clone());
    }
    if echo {
        for (k, v) in req.headers() {
            ctx.info(format!("header {k}: {v}"));
        }
    }
    let answer = req.send().map_err(|e| e.to_string())?;
    Ok((answer.status, answer.body))
}

impl Rule for Caller {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config = ctx.config_value();
        let repeat = config["repeat"].as_u64().unwrap_or(1);
        let echo = config["echo_headers"].as_bool().unwrap_or(false);
        let calls: Vec<Call> = config["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| Call {
                method: c["method"].as_str().unwrap_or("GET").to_string(),
                url: c["url"].as_str().unwrap_or_default().to_string(),
                headers: c["headers"]
                    .as_object()
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                body: match c["body_bytes"].as_u64() {
                    Some(n) => vec![b'x'; n as usize],
                    None => c["body"].as_str().unwrap_or_default().as_bytes().to_vec(),
                },
            })
            .collect();
        let mut last = None;
        let mut n = 0;
        for _ in 0..repeat {
            for c in &calls {
                n += 1;
                match call(ctx, c, echo) {
                    Ok((status, body)) => {
                        let text = String::from_utf8_lossy(&body);
                        let shown: String = text.chars().take(200).collect();
                        ctx.info(format!("call {n}: status {status} body {shown}"));
                        last = serde_json::from_slice::<serde_json::Value>(&body).ok();
                    }
                    Err(e) => ctx.warn(format!("call {n}: error {e}")),
                }
            }
        }
        if let (Some(field), Some(answer)) = (config["field"].as_str(), last) {
            let id = event.record()?.id.clone();
            ctx.set_field(&id, field, &answer["value"])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

export_rule!(Caller);
