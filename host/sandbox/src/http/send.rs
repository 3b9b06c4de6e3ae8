//! Sending one granted request: the address guard, the body and response caps, the
//! per-request timeout, and the exchange the run record keeps. Runs as a task on the
//! runtime (wasmtime-wasi-http spawns it); the module waits for it through `wait`, so the
//! run's deadline bounds the wait even when this task is slower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use stagecraft_model::outbound::{HeaderLine, HttpExchange};
use wasmtime_wasi_http::{Error, WasiBody};

use super::secrets::{Secrets, Used};
use super::{AddressGuard, Journal, Outbound, Recorded, Response};
use crate::limits::HttpLimits;

/// Request headers a run record keeps (others may carry credentials).
pub const RECORDED_REQUEST: &[&str] = &["accept", "content-type", "content-length", "user-agent"];
/// Response headers a run record keeps.
pub const RECORDED_RESPONSE: &[&str] = &[
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "cache-control",
    "etag",
];

/// The allowlisted headers of `headers`, for the record.
pub fn recorded(headers: &HeaderMap, allowed: &[&str]) -> Vec<HeaderLine> {
    headers
        .iter()
        .filter(|(n, _)| allowed.contains(&n.as_str()))
        .map(|(n, v)| HeaderLine {
            name: n.as_str().to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect()
}

/// The guard as the client's resolver: names resolve only to addresses it admits.
pub struct Resolver(pub Arc<dyn AddressGuard>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.0.lookup(name.as_str().to_string(), 0);
        Box::pin(async move {
            let addrs = lookup
                .await
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Where a request goes.
pub enum Via {
    Live(Arc<Outbound>),
    Recorded(Arc<Recorded>),
}

/// One request on its way.
pub struct Call {
    pub via: Via,
    pub journal: Arc<Journal>,
    /// Its place in the journal.
    pub at: usize,
    pub exchange: HttpExchange,
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
    pub limits: HttpLimits,
    pub started: Instant,
    pub secrets: Arc<Secrets>,
}

/// A named failure: what the log and record say, and the `error-code` the module gets.
struct Failure {
    name: &'static str,
    why: String,
    code: Error,
}

fn fail(name: &'static str, why: impl Into<String>, code: Error) -> Failure {
    Failure {
        name,
        why: why.into(),
        code,
    }
}

/// Sends `request` as `call` says, records the exchange, and hands the response (its body
/// read whole, within the cap) to the module.
pub async fn send(call: Call, request: http::Request<WasiBody>) -> Response {
    let (journal, at, timeout, started) = (&call.journal, call.at, call.timeout, call.started);
    let mut x = call.exchange.clone();
    let result = match tokio::time::timeout(timeout, exchange_with(&call, request, &mut x)).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            "request_timeout",
            format!("no whole response within {} ms", timeout.as_millis()),
            Error::HttpResponseTimeout,
        )),
    };
    x.duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((parts, body)) => {
            journal.note(format!(
                "http {} {}: {} ({} bytes, {} ms)",
                x.method, x.url, parts.status, x.response_bytes, x.duration_ms
            ));
            journal.finish(at, x);
            let body: WasiBody = Full::new(body)
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed_unsync();
            let io: Box<dyn std::future::Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((http::Response::from_parts(parts, body), io))
        }
        Err(f) => {
            let message = format!("{}: {}", f.name, f.why);
            journal.note(format!("http {} {}: {message}", x.method, x.url));
            x.error = Some(message);
            journal.finish(at, x);
            Err(f.code)
        }
    }
}

async fn exchange_with(
    call: &Call,
    request: http::Request<WasiBody>,
    x: &mut HttpExchange,
) -> Result<(http::response::Parts, Bytes), Failure> {
    let limits = &call.limits;
    let outbound = match &call.via {
        Via::Live(o) => o,
        Via::Recorded(r) => return answer_recorded(r, call, request, x).await,
    };
    // The guard first, on its own: a refusal is named before any connection is tried (the
    // client's resolver checks names again as it connects, and IP literals never reach it).
    if let Err(why) = outbound.guard.lookup(call.host.clone(), call.port).await {
        return Err(fail("address_refused", why, Error::DestinationIpProhibited));
    }
    let (parts, sent) = read_body(request, limits).await?;
    x.request_bytes = sent.len() as u64;
    x.request_digest = digest(&x.method, &x.url, &sent);
    let mut url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| {
        fail(
            "request_failed",
            format!("the URL is not valid: {e}"),
            Error::HttpRequestUriInvalid,
        )
    })?;
    let mut headers = parts.headers;
    headers.remove(http::header::HOST);
    // Secrets go in last, into this copy only: the module's request (and the record) keep
    // the placeholders.
    let mut used = Used::default();
    let refused = |(name, why)| fail(name, why, Error::HttpRequestDenied);
    let to = url.clone();
    call.secrets
        .fill_url(&mut url, &mut used)
        .map_err(refused)?;
    call.secrets
        .fill_headers(&mut headers, &to, &mut used)
        .map_err(refused)?;
    let response = outbound
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(sent)
        .send()
        .await
        .map_err(|e| {
            let why = used.scrub_text(&causes(&e.without_url()));
            fail("connect_failed", why, Error::ConnectionRefused)
        })?;
    let status = response.status();
    let mut response_headers = response.headers().clone();
    let mut got = BytesMut::new();
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if got.len() + chunk.len() > limits.response_bytes {
                    x.status = Some(status.as_u16());
                    return Err(fail(
                        "response_too_large",
                        format!("the response body is over {} bytes", limits.response_bytes),
                        Error::HttpResponseBodySize(Some(limits.response_bytes as u64)),
                    ));
                }
                got.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(fail(
                    "response_failed",
                    format!("the response broke off: {e}"),
                    Error::HttpResponseIncomplete,
                ))
            }
        }
    }
    // A remote that echoes a secret back gives the module the placeholder instead.
    let got = if used.is_empty() {
        got.freeze()
    } else {
        used.scrub_headers(&mut response_headers);
        Bytes::from(used.scrub(&got))
    };
    x.status = Some(status.as_u16());
    x.response_headers = recorded(&response_headers, RECORDED_RESPONSE);
    x.response_bytes = got.len() as u64;
    let keep = got.len().min(limits.recorded_body_bytes);
    x.response_body = String::from_utf8_lossy(&got[..keep]).into_owned();
    x.response_complete = keep == got.len() && std::str::from_utf8(&got).is_ok();
    let mut builder = http::Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        *h = response_headers;
        h.remove(http::header::TRANSFER_ENCODING);
        h.insert(http::header::CONTENT_LENGTH, got.len().into());
    }
    let (parts, ()) = builder
        .body(())
        .map_err(|e| fail("response_failed", e.to_string(), Error::HttpProtocolError))?
        .into_parts();
    Ok((parts, got))
}

/// The request's body, whole, within the limit.
async fn read_body(
    request: http::Request<WasiBody>,
    limits: &HttpLimits,
) -> Result<(http::request::Parts, Bytes), Failure> {
    let (parts, mut body) = request.into_parts();
    let mut sent = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail("request_failed", format!("{e:?}"), e))?;
        if let Ok(data) = frame.into_data() {
            if sent.len() + data.len() > limits.request_bytes {
                return Err(fail(
                    "request_too_large",
                    format!("the request body is over {} bytes", limits.request_bytes),
                    Error::HttpRequestBodySize(Some(limits.request_bytes as u64)),
                ));
            }
            sent.extend_from_slice(&data);
        }
    }
    Ok((parts, sent.freeze()))
}

/// Answers from a recorded exchange of the same request; nothing is sent.
async fn answer_recorded(
    recorded: &Recorded,
    call: &Call,
    request: http::Request<WasiBody>,
    x: &mut HttpExchange,
) -> Result<(http::response::Parts, Bytes), Failure> {
    let (_, sent) = read_body(request, &call.limits).await?;
    x.request_bytes = sent.len() as u64;
    x.request_digest = digest(&x.method, &x.url, &sent);
    x.replayed = true;
    let Some(past) = recorded.take(&x.request_digest) else {
        return Err(fail(
            "replay_unmatched",
            format!(
                "the recorded run made no such request ({} {}, {} body bytes) that is not already answered; a dry-run with \"live\": true calls out",
                x.method, x.url, x.request_bytes
            ),
            Error::HttpRequestDenied,
        ));
    };
    if let Some(error) = past.error.clone() {
        return Err(fail("replayed_error", error, Error::ConnectionRefused));
    }
    let status = past.status.unwrap_or(200);
    if !past.response_complete {
        return Err(fail(
            "replay_incomplete",
            format!(
                "the recorded response ({} bytes) was not kept whole, so it cannot be answered again",
                past.response_bytes
            ),
            Error::HttpResponseIncomplete,
        ));
    }
    let body = Bytes::from(past.response_body.clone().into_bytes());
    x.status = Some(status);
    x.response_headers = past.response_headers.clone();
    x.response_bytes = body.len() as u64;
    x.response_body = past.response_body.clone();
    x.response_complete = true;
    let mut builder = http::Response::builder().status(status);
    for h in &past.response_headers {
        builder = builder.header(h.name.as_str(), h.value.as_str());
    }
    if let Some(h) = builder.headers_mut() {
        h.insert(http::header::CONTENT_LENGTH, body.len().into());
    }
    let (parts, ()) = builder
        .body(())
        .map_err(|e| fail("replay_incomplete", e.to_string(), Error::HttpProtocolError))?
        .into_parts();
    Ok((parts, body))
}

/// An error and its causes, in one line.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// What replay matches a request by: method, URL as the module wrote it, body.
pub fn digest(method: &str, url: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(url.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}
