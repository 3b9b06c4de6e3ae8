//! Outbound HTTP for modules: `wasi:http/outgoing-handler`, through our own `send_request`.
//!
//! wasmtime-wasi-http implements the interface (requests, headers, bodies as streams); every
//! request a module hands to `outgoing-handler.handle` comes to [`Hooks::send_request`]
//! before anything leaves the host. There it must be within the run's request limit and its
//! binding's [`HttpGrant`]; then ([`send`]) its host passes the [`AddressGuard`] the host
//! hands in (the same one webhooks pass: DNS answers checked, redirects never followed),
//! its body and its response are bounded, and the whole call is bounded by the per-request
//! timeout and the run's deadline. A refused or failed call fails inside the run with an
//! `error-code` the module can handle and a named line in the run log (`not_granted: …`).
//! Every call is kept in the run record ([`Journal`]).

pub mod secrets;
mod send;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stagecraft_model::outbound::{HttpExchange, HttpGrant};
use stagecraft_model::LogLine;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::limits::HttpLimits;

/// A boxed lookup of the addresses a destination may be reached at.
pub type Lookup = Pin<Box<dyn Future<Output = Result<Vec<SocketAddr>, String>> + Send>>;

/// The host's destination policy, handed to the sandbox ([`crate::Sandbox::set_address_guard`]):
/// the same guard webhooks pass, so there is one copy of the rule.
pub trait AddressGuard: Send + Sync + 'static {
    /// The addresses `host` (a name, or an IP literal as URLs write it) may be connected to
    /// on `port`, or why not, in the guard's words. Connections go only to these.
    fn lookup(&self, host: String, port: u16) -> Lookup;
}

/// What every run's HTTP calls share: the guard and one HTTP client resolving through it.
pub struct Outbound {
    guard: Arc<dyn AddressGuard>,
    client: reqwest::Client,
}

impl Outbound {
    pub fn new(guard: Arc<dyn AddressGuard>) -> Result<Outbound, String> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(send::Resolver(guard.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // No connection outlives its request: each call is checked and connected anew.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Outbound { guard, client })
    }
}

/// What one run's calls noted: log lines and exchanges, filled in by tasks that finish
/// after the hook returned.
#[derive(Default)]
pub struct Journal(Mutex<Entries>);

#[derive(Default)]
struct Entries {
    notes: Vec<LogLine>,
    exchanges: Vec<HttpExchange>,
    finished: Vec<bool>,
    /// Requests refused past the limit and not recorded one by one.
    unrecorded: u32,
}

impl Journal {
    fn note(&self, message: String) {
        if let Ok(mut e) = self.0.lock() {
            e.notes.push(LogLine {
                level: "host".into(),
                message,
            });
        }
    }

    /// Starts an exchange; until [`Journal::finish`], it stands as cut off by the deadline.
    fn start(&self, mut x: HttpExchange) -> usize {
        x.error = Some("timeout: the run's deadline passed before the call finished".into());
        match self.0.lock() {
            Ok(mut e) => {
                e.exchanges.push(x);
                e.finished.push(false);
                e.exchanges.len() - 1
            }
            Err(_) => usize::MAX,
        }
    }

    fn finish(&self, at: usize, x: HttpExchange) {
        if let Ok(mut e) = self.0.lock() {
            if let Some(slot) = e.exchanges.get_mut(at) {
                *slot = x;
                e.finished[at] = true;
            }
        }
    }

    /// The log lines and exchanges so far, in order; `elapsed_ms` (the run's length) ends
    /// the calls still open, cut by the run's deadline or (`budget`) by an inline run's
    /// budget for waiting.
    pub fn take(&self, elapsed_ms: u64, budget: bool) -> (Vec<LogLine>, Vec<HttpExchange>) {
        let why = if budget {
            "network_timeout: the inline run's time for waiting on the network ran out"
        } else {
            "timeout: the run's deadline passed while it waited"
        };
        let Ok(mut e) = self.0.lock() else {
            return (Vec::new(), Vec::new());
        };
        let mut notes = std::mem::take(&mut e.notes);
        let finished = std::mem::take(&mut e.finished);
        let mut exchanges = std::mem::take(&mut e.exchanges);
        for (x, done) in exchanges.iter_mut().zip(finished) {
            if !done {
                x.duration_ms = elapsed_ms.saturating_sub(x.started_ms);
                if budget {
                    x.error = Some(why.to_string());
                }
                notes.push(LogLine {
                    level: "host".into(),
                    message: format!("http {} {}: {why}", x.method, x.url),
                });
            }
        }
        if e.unrecorded > 0 {
            notes.push(LogLine {
                level: "host".into(),
                message: format!(
                    "{} more HTTP requests were refused (request_limit) and are not recorded one by one",
                    e.unrecorded
                ),
            });
        }
        (notes, exchanges)
    }
}

/// Where a run's granted requests are answered from.
#[derive(Clone)]
pub enum Answers {
    /// Sent out for real.
    Live,
    /// From what a past run received: the first unused recorded exchange with the same
    /// request (method, URL as written, body), in order; anything else fails
    /// `replay_unmatched`. Nothing is sent.
    Recorded(Arc<Recorded>),
}

/// A past run's exchanges, each answering at most once.
pub struct Recorded(Mutex<Vec<(HttpExchange, bool)>>);

impl Recorded {
    pub fn new(exchanges: Vec<HttpExchange>) -> Recorded {
        Recorded(Mutex::new(
            exchanges
                .into_iter()
                .filter(|x| x.status.is_some() || !x.request_digest.is_empty())
                .map(|x| (x, false))
                .collect(),
        ))
    }

    /// The first unused exchange made with this request.
    fn take(&self, digest: &str) -> Option<HttpExchange> {
        let mut all = self.0.lock().ok()?;
        let (x, used) = all
            .iter_mut()
            .find(|(x, used)| !*used && x.request_digest == digest)?;
        *used = true;
        Some(x.clone())
    }
}

/// The `wasi:http` hooks of one run.
pub struct Hooks {
    journal: Arc<Journal>,
    grant: HttpGrant,
    limits: HttpLimits,
    /// Per request: the class's timeout.
    request_timeout: Duration,
    started: Instant,
    outbound: Option<Arc<Outbound>>,
    secrets: Arc<secrets::Secrets>,
    answers: Answers,
    made: u32,
}

/// What a run's hooks are built from.
pub struct HooksInput {
    pub journal: Arc<Journal>,
    pub grant: HttpGrant,
    pub limits: HttpLimits,
    pub request_timeout: Duration,
    pub outbound: Option<Arc<Outbound>>,
    /// Whose run it is, and where its secrets come from.
    pub tenant: String,
    pub secrets: Option<Arc<dyn secrets::SecretSource>>,
    pub answers: Answers,
}

impl Hooks {
    pub fn new(i: HooksInput) -> Hooks {
        Hooks {
            journal: i.journal,
            grant: i.grant.clone(),
            limits: i.limits,
            request_timeout: i.request_timeout,
            started: Instant::now(),
            outbound: i.outbound,
            secrets: Arc::new(secrets::Secrets {
                tenant: i.tenant,
                granted: i.grant.secrets.clone(),
                source: i.secrets,
            }),
            answers: i.answers,
            made: 0,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Refuses a request before it starts: noted, recorded, and `error` for the module.
    fn refuse(&self, mut x: HttpExchange, name: &str, why: String, error: Error) -> Response {
        let message = format!("{name}: {why}");
        self.journal
            .note(format!("http {} {}: {message}", x.method, x.url));
        x.error = Some(message);
        let at = self.journal.start(x.clone());
        self.journal.finish(at, x);
        Err(error)
    }
}

type Response = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for Hooks {
    fn set_host_header(&mut self) -> bool {
        // The client sets `host` from the URL it sends to; a module's own would disagree.
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Response> + Send> {
        let x = HttpExchange {
            method: request.method().to_string(),
            url: request.uri().to_string(),
            request_headers: send::recorded(request.headers(), send::RECORDED_REQUEST),
            started_ms: self.elapsed_ms(),
            ..Default::default()
        };
        self.made = self.made.saturating_add(1);
        if self.made > self.limits.requests {
            if self.made > self.limits.requests + 1 {
                if let Ok(mut e) = self.journal.0.lock() {
                    e.unrecorded += 1;
                }
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
            let why = format!(
                "a run may make at most {} HTTP requests",
                self.limits.requests
            );
            let r = self.refuse(x, "request_limit", why, Error::HttpRequestDenied);
            return Box::new(async move { r });
        }
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or_default().to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16();
        if let Err(miss) = self.grant.permits(&scheme, &host, port) {
            let r = self.refuse(x, "not_granted", miss.to_string(), Error::HttpRequestDenied);
            return Box::new(async move { r });
        }
        let outbound = match (&self.answers, self.outbound.clone()) {
            (Answers::Recorded(r), _) => send::Via::Recorded(r.clone()),
            (Answers::Live, Some(o)) => send::Via::Live(o),
            (Answers::Live, None) => {
                let why =
                    "this server has no address guard configured, so it makes no calls".into();
                let r = self.refuse(x, "address_refused", why, Error::DestinationIpProhibited);
                return Box::new(async move { r });
            }
        };
        // Not cut to the deadline: a call still going then ends the run `timeout` (`wait`).
        let call = send::Call {
            via: outbound,
            journal: self.journal.clone(),
            at: self.journal.start(x.clone()),
            exchange: x,
            host,
            port: port.unwrap_or(if scheme == "http" { 80 } else { 443 }),
            timeout: self.request_timeout,
            limits: self.limits.clone(),
            started: Instant::now(),
            secrets: self.secrets.clone(),
        };
        Box::new(send::send(call, request))
    }
}
