//! Calls out over `wasi:http/outgoing-handler`, as the binding config says:
//! `{"calls": [{"method", "url", "headers": {name: value}, "body", "body_bytes"}],
//! "repeat": n, "echo_headers": bool, "field": name}`. Logs each answer (`call N: status S
//! body B`) or error (`call N: error E`) and carries on: a refused call is the module's to
//! handle. With `"field"`, writes the last JSON answer's `value` to that field of the event's
//! record. With `"echo_headers"`, logs the headers of each request as the module holds them.
use stagecraft_sdk::prelude::*;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

struct Caller;

struct Call {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn call(ctx: &mut Ctx<'_>, c: &Call, echo: bool) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = c.url.split_once("://").ok_or("the URL has no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (k, v) in &c.headers {
        fields
            .append(k, v.as_bytes())
            .map_err(|e| format!("header {k}: {e:?}"))?;
    }
    if echo {
        for (k, v) in fields.entries() {
            ctx.info(format!("header {k}: {}", String::from_utf8_lossy(&v)));
        }
    }
    let req = OutgoingRequest::new(fields);
    let method = match c.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        other => Method::Other(other.to_string()),
    };
    req.set_method(&method).map_err(|_| "bad method")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    req.set_scheme(Some(&scheme)).map_err(|_| "bad scheme")?;
    req.set_authority(Some(authority)).map_err(|_| "bad authority")?;
    req.set_path_with_query(Some(path)).map_err(|_| "bad path")?;
    let body = req.body().map_err(|_| "no body")?;
    // Sent first, written after: a body larger than the host buffers flows as it is read.
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    {
        let out = body.write().map_err(|_| "no body stream")?;
        for chunk in c.body.chunks(4096) {
            if let Err(e) = out.blocking_write_and_flush(chunk) {
                ctx.warn(format!("writing the body stopped: {e:?}"));
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
    let resp = loop {
        match pending.get() {
            Some(r) => break r,
            None => pending.subscribe().block(),
        }
    };
    let resp = resp
        .map_err(|_| "the response was taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.consume().map_err(|_| "no response body")?;
    let stream = body.stream().map_err(|_| "no response stream")?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
    }
    Ok((status, data))
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
