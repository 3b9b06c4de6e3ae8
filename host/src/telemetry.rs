//! Telemetry: Prometheus metrics (through the `metrics` facade), the request id and the
//! request span every handler runs in, and the log format.
//!
//! Metric names live here so every part of the host records them the same way; `/metrics`
//! renders them in the Prometheus text format. They carry no tenant data: routes are the
//! matched templates (`/v1/records/{id}`), never raw paths.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
const FUEL: &[f64] = &[
    1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9, 3e9, 1e10,
];

tokio::task_local! {
    /// The id of the request this task serves (set by [`track`]).
    static CURRENT_REQUEST: String;
}

/// The id of the request being served, when called from its handler (not from a task it
/// spawned).
pub fn request_id() -> Option<String> {
    CURRENT_REQUEST.try_with(Clone::clone).ok()
}

/// Runs `f` as the request `id` (what [`track`] does for every request).
pub async fn with_request_id<F: std::future::Future>(id: String, f: F) -> F::Output {
    CURRENT_REQUEST.scope(id, f).await
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it). None if another
/// recorder was installed first, in which case `/metrics` says so.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("stagecraft_run_fuel".into()), FUEL));
            match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is unavailable");
                    None
                }
            }
        })
        .as_ref()
}

/// The Prometheus text exposition of every metric, with gauges read now.
pub fn render(store: &crate::store::Store) -> Option<String> {
    let handle = install()?;
    match store.outbox_depth() {
        Ok(n) => gauge!("stagecraft_outbox_depth").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "cannot count the outbox"),
    }
    handle.run_upkeep();
    Some(handle.render())
}

/// `GET /metrics`.
pub async fn metrics_endpoint(
    axum::extract::State(state): axum::extract::State<crate::http::AppState>,
) -> Response {
    // Counting the outbox scans the store: it waits its turn in the store pool like any
    // request (under a name no tenant can have), so a flood of scrapes cannot stall others.
    let store = state.store.clone();
    let rendered = state
        .pool
        .run("#metrics", move || {
            Ok::<_, crate::http::ApiError>(render(&store))
        })
        .await;
    match rendered {
        Ok(Some(text)) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(None) => crate::http::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder was installed in this process",
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// An incoming request id we accept as ours: 1-128 characters of `[A-Za-z0-9._:-]`.
fn acceptable_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    ok.then(|| s.to_string())
}

/// Middleware around every request: takes the caller's `x-request-id` (or mints a ULID),
/// runs the request in a `request` span carrying it, echoes it in the response, and counts
/// the request by route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(acceptable_id)
        .unwrap_or_else(|| ulid::Ulid::new().to_string().to_ascii_lowercase());
    let span = tracing::info_span!("request", method = %method, route = %route, request_id = %id);
    let mut resp = with_request_id(id.clone(), next.run(req).instrument(span.clone())).await;
    let status = resp.status().as_u16().to_string();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::debug!(status = %status, elapsed_us = elapsed.as_micros() as u64, "request done");
    });
    let labels = [("method", method), ("route", route), ("status", status)];
    counter!("stagecraft_http_requests_total", &labels).increment(1);
    histogram!("stagecraft_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// One delivery attempt and how it ended (`sent`, `retry`, `dead`).
pub fn delivery_attempt(channel: &str, result: &'static str) {
    counter!("stagecraft_delivery_attempts_total", "channel" => channel.to_string(), "result" => result)
        .increment(1);
}

/// How late the scheduler fired a timer.
pub fn scheduler_lag(lag: chrono::TimeDelta) {
    let secs = lag.num_milliseconds().max(0) as f64 / 1000.0;
    histogram!("stagecraft_scheduler_lag_seconds").record(secs);
    gauge!("stagecraft_scheduler_last_lag_seconds").set(secs);
}

/// How the server logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global log subscriber (stderr; `RUST_LOG` filters).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
