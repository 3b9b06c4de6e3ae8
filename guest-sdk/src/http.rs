//! Outbound HTTP from a rule: a small typed helper over the standard
//! `wasi:http/outgoing-handler`, which the host grants per binding (`grants.http`).
//!
//! ```no_run
//! use stagecraft_sdk::http::{self, HttpError};
//!
//! # fn f() -> Result<(), HttpError> {
//! let answer = http::get("https://enrich.example.com/v1/companies?domain=acme.io")
//!     .header("authorization", "Bearer {{secret:ENRICH_KEY}}")
//!     .header("accept", "application/json")
//!     .send()?;
//! if answer.status == 200 {
//!     let company: serde_json::Value = answer.json()?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A secret is written as its placeholder, `{{secret:NAME}}`, in the header value or the
//! query value its grant names; the host puts the value there as the request leaves, and the
//! rule only ever holds the placeholder. A call the host refuses or that fails comes back as
//! an [`HttpError`] named after the host's `error-code`; the run log says exactly why.
//!
//! Natively (`cargo test`) there is no network: requests are answered by the answers a test
//! gives [`MockHost::with_http`](crate::testing::MockHost::with_http), the first unused one
//! for the same method and URL, in order, as the server answers a replay from a recorded run;
//! any other request fails [`HttpError::Denied`].

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A request being built; [`Request::send`] sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// `GET url`.
pub fn get(url: impl Into<String>) -> Request {
    request("GET", url)
}

/// `POST url`.
pub fn post(url: impl Into<String>) -> Request {
    request("POST", url)
}

/// Any method (`PUT`, `PATCH`, `DELETE`, …).
pub fn request(method: &str, url: impl Into<String>) -> Request {
    Request {
        method: method.to_ascii_uppercase(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Request {
    /// Adds a header (a secret goes in as `{{secret:NAME}}`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// `value` as a JSON body, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Request, HttpError> {
        let body = serde_json::to_vec(value).map_err(|e| HttpError::Invalid(e.to_string()))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers as the rule wrote them (placeholders and all).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        transport::send(self)
    }
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and `body` (for [`MockHost::with_http`](crate::testing::MockHost::with_http)).
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Invalid(e.to_string()))
    }
}

/// Why a call failed, named after the host's `error-code` (the run log names the exact
/// cause: `not_granted`, `request_limit`, `secret_misplaced`, `replay_unmatched`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// `http-request-denied`: outside the binding's grant, past the run's request limit, a
    /// secret not granted or placed where its grant does not allow, or (replays and
    /// dry-runs) a request the recorded run did not make.
    Denied(String),
    /// `destination-ip-prohibited`: the address guard refused the destination.
    AddressRefused,
    /// `http-request-body-size`: the request body is over the host's limit.
    RequestTooLarge,
    /// `http-response-body-size`: the response body is over the host's limit.
    ResponseTooLarge,
    /// `http-response-timeout`: no whole response within the per-request timeout.
    Timeout,
    /// `connection-refused`: the destination could not be reached.
    ConnectFailed,
    /// `http-response-incomplete`: the response broke off (or a replay's recorded answer
    /// was not kept whole).
    Incomplete,
    /// The URL cannot be sent (no scheme or host, or the host said `http-request-uri-invalid`).
    InvalidUrl(String),
    /// A body that is not what was expected (JSON that does not parse).
    Invalid(String),
    /// Any other `error-code`, as the host gave it.
    Other(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(why) => write!(f, "denied: {why}"),
            HttpError::AddressRefused => f.write_str("address_refused"),
            HttpError::RequestTooLarge => f.write_str("request_too_large"),
            HttpError::ResponseTooLarge => f.write_str("response_too_large"),
            HttpError::Timeout => f.write_str("request_timeout"),
            HttpError::ConnectFailed => f.write_str("connect_failed"),
            HttpError::Incomplete => f.write_str("response_incomplete"),
            HttpError::InvalidUrl(why) => write!(f, "invalid_url: {why}"),
            HttpError::Invalid(why) => write!(f, "invalid: {why}"),
            HttpError::Other(what) => write!(f, "http error: {what}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for String {
    fn from(e: HttpError) -> String {
        e.to_string()
    }
}

/// The canned answers of a native test run, and the requests it sent.
#[derive(Debug, Clone, Default)]
pub struct Stubs {
    answers: Vec<(String, String, Result<Response, HttpError>, bool)>,
    /// Every request sent, in order.
    pub sent: Vec<Request>,
}

impl Stubs {
    pub(crate) fn add(&mut self, method: &str, url: &str, answer: Result<Response, HttpError>) {
        self.answers
            .push((method.to_ascii_uppercase(), url.to_string(), answer, false));
    }

    /// The first unused answer to this request, as the server answers from a recording.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    fn answer(&mut self, r: &Request) -> Result<Response, HttpError> {
        self.sent.push(r.clone());
        match self
            .answers
            .iter_mut()
            .find(|(m, u, _, used)| !*used && *m == r.method && *u == r.url)
        {
            Some((_, _, answer, used)) => {
                *used = true;
                answer.clone()
            }
            None => Err(HttpError::Denied(format!(
                "replay_unmatched: no answer left for {} {} (MockHost::with_http)",
                r.method, r.url
            ))),
        }
    }
}

/// Natively: the stubs of the [`MockHost`](crate::testing::MockHost) running a rule.
#[cfg(not(target_arch = "wasm32"))]
mod transport {
    use std::cell::RefCell;

    use super::{HttpError, Request, Response, Stubs};

    thread_local! {
        static STUBS: RefCell<Option<Stubs>> = const { RefCell::new(None) };
    }

    pub fn send(r: Request) -> Result<Response, HttpError> {
        STUBS.with(|s| match s.borrow_mut().as_mut() {
            Some(stubs) => stubs.answer(&r),
            None => Err(HttpError::Denied(
                "no host: outside a component, HTTP is answered only under MockHost".into(),
            )),
        })
    }

    /// Runs `f` with `stubs` answering this thread's requests; gives them back after.
    pub fn with_stubs<R>(stubs: &mut Stubs, f: impl FnOnce() -> R) -> R {
        STUBS.with(|s| *s.borrow_mut() = Some(std::mem::take(stubs)));
        let out = f();
        STUBS.with(|s| *stubs = s.borrow_mut().take().unwrap_or_default());
        out
    }
}

pub(crate) use transport::with_stubs;

/// In a component: `wasi:http/outgoing-handler`.
#[cfg(target_arch = "wasm32")]
mod transport {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    use super::{HttpError, Request, Response};

    use super::Stubs;

    /// In a component the host answers; a MockHost's stubs are not used.
    pub fn with_stubs<R>(_stubs: &mut Stubs, f: impl FnOnce() -> R) -> R {
        f()
    }

    fn named(e: ErrorCode) -> HttpError {
        match e {
            ErrorCode::HttpRequestDenied => {
                HttpError::Denied("the host refused the request (the run log says why)".into())
            }
            ErrorCode::DestinationIpProhibited => HttpError::AddressRefused,
            ErrorCode::HttpRequestBodySize(_) => HttpError::RequestTooLarge,
            ErrorCode::HttpResponseBodySize(_) => HttpError::ResponseTooLarge,
            ErrorCode::HttpResponseTimeout => HttpError::Timeout,
            ErrorCode::ConnectionRefused => HttpError::ConnectFailed,
            ErrorCode::HttpResponseIncomplete => HttpError::Incomplete,
            ErrorCode::HttpRequestUriInvalid => {
                HttpError::InvalidUrl("the host could not send to this URL".into())
            }
            other => HttpError::Other(format!("{other:?}")),
        }
    }

    pub fn send(r: Request) -> Result<Response, HttpError> {
        let bad = |why: &str| HttpError::InvalidUrl(format!("{}: {why}", r.url));
        let (scheme, rest) = r.url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (authority, path) = match (authority.split_once('?'), path) {
            (Some((a, q)), "/") => (a, format!("/?{q}")),
            _ => (authority, path.to_string()),
        };
        let fields = Fields::new();
        for (k, v) in &r.headers {
            fields
                .append(k, v.as_bytes())
                .map_err(|e| HttpError::Invalid(format!("header {k}: {e:?}")))?;
        }
        let req = OutgoingRequest::new(fields);
        let method = match r.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        req.set_method(&method)
            .map_err(|_| HttpError::Invalid(format!("method {}", r.method)))?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        req.set_scheme(Some(&scheme))
            .map_err(|_| bad("the scheme"))?;
        req.set_authority(Some(authority))
            .map_err(|_| bad("the host"))?;
        req.set_path_with_query(Some(&path))
            .map_err(|_| bad("the path"))?;
        let body = req.body().map_err(|_| HttpError::Other("no body".into()))?;
        // Handed over first, written after: a body larger than the host buffers flows as it
        // is read (and one over the limit stops at the limit).
        let pending = outgoing_handler::handle(req, None).map_err(named)?;
        if let Ok(out) = body.write() {
            for chunk in r.body.chunks(4096) {
                if out.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
        }
        let _ = OutgoingBody::finish(body, None);
        let resp = loop {
            match pending.get() {
                Some(answer) => break answer,
                None => pending.subscribe().block(),
            }
        };
        let resp = resp
            .map_err(|_| HttpError::Other("the response was taken twice".into()))?
            .map_err(named)?;
        let status = resp.status();
        let headers = resp
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let body = resp
            .consume()
            .map_err(|_| HttpError::Other("no response body".into()))?;
        let stream = body
            .stream()
            .map_err(|_| HttpError::Other("no response stream".into()))?;
        let mut data = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(_) => return Err(HttpError::Incomplete),
            }
        }
        Ok(Response {
            status,
            headers,
            body: data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_answer_each_request_once_in_order_and_refuse_the_rest() {
        let mut stubs = Stubs::default();
        stubs.add(
            "get",
            "https://a.example.com/x",
            Ok(Response::new(200, "one")),
        );
        stubs.add("GET", "https://a.example.com/x", Err(HttpError::Timeout));
        let got = with_stubs(&mut stubs, || {
            let r = || get("https://a.example.com/x").send();
            (r(), r(), r(), post("https://a.example.com/x").send())
        });
        assert_eq!(got.0.map(|r| r.text()), Ok("one".to_string()));
        assert_eq!(got.1, Err(HttpError::Timeout));
        assert!(matches!(&got.2, Err(HttpError::Denied(m)) if m.starts_with("replay_unmatched")));
        assert!(matches!(got.3, Err(HttpError::Denied(_))));
        assert_eq!(stubs.sent.len(), 4);
        assert!(matches!(
            get("https://a.example.com/x").send(),
            Err(HttpError::Denied(_))
        ));
    }
}
