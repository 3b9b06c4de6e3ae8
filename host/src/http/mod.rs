//! The HTTP API: axum routes, authentication, the error shape, and the OpenAPI document
//! generated from the same route definitions (so the two cannot drift).

mod auth;
mod bindings;
mod error;
mod events;
mod extract;
mod keys;
mod messages;
mod modules;
mod openapi;
mod pipelines;
mod pool;
mod records;
mod replays;
mod runs;
mod secrets;
mod shape;
mod stats;
mod tasks;
mod timeline;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::Caller;
pub(crate) use auth::{caller_for_key_hash, Preauthenticated};
pub use error::{ApiError, ErrorBody};
pub use pool::{Busy, Pool, PoolConfig};
pub use shape::MAX_URI_BYTES;

use crate::automation::Automation;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::sandbox::Sandbox;
use crate::store::Store;

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub sandbox: Arc<Sandbox>,
    pub automation: Arc<Automation>,
    pub delivery: Arc<Delivery>,
    pub config: Arc<Config>,
    /// Replays of this process (in memory: they commit nothing).
    pub replays: Arc<crate::replay::Replays>,
    /// Where handlers do their store work: off the async threads, fair between tenants.
    pub pool: Pool,
    /// Where requests run automation (inline cascades, dry-runs): off the async threads, a
    /// tenant holding at most its share of the blocking threads that wait for run slots.
    pub automation_pool: Pool,
    /// Tenants' secrets (write-only through the API; the sandbox fills them in).
    pub secrets: Arc<crate::secrets::Vault>,
    /// The PostgreSQL database every host shares, when this host runs on one: console
    /// sessions and replay results are kept there, so any host answers for them.
    pub shared_db: Option<Arc<stagecraft_store_pg::PgBackend>>,
}

impl AppState {
    /// Runs `f(store, tenant)` in the store pool on behalf of `tenant`: every handler's store
    /// reads (and its writes that do not go through automation) go this way, so the async
    /// threads never scan.
    pub async fn on_store<T, E>(
        &self,
        tenant: &str,
        f: impl FnOnce(&Store, &str) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let store = self.store.clone();
        let owner = tenant.to_string();
        self.pool.run(tenant, move || f(&store, &owner)).await
    }

    /// Commits a change made by `tenant`'s request, inline automation first, in the
    /// automation pool (see [`crate::automation::Automation::submit_blocking`]).
    pub async fn submit(
        &self,
        tenant: &str,
        cs: crate::store::Changeset,
    ) -> Result<crate::store::Changeset, ApiError> {
        let automation = self.automation.clone();
        self.automation_pool
            .run(tenant, move || automation.submit_blocking(cs))
            .await
    }
}

/// The API routes with their OpenAPI description.
fn routes(module_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(keys::routes())
        .merge(pipelines::routes())
        .merge(records::routes())
        .merge(events::routes())
        .merge(bindings::routes())
        .merge(runs::routes())
        .merge(messages::routes())
        .merge(modules::routes(module_bytes))
        .merge(replays::routes())
        .merge(stats::routes())
        .merge(secrets::routes())
        .merge(tasks::routes())
        .merge(timeline::routes())
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = routes(crate::sandbox::Limits::default().module_bytes)
        .split_for_parts()
        .1;
    openapi::complete(&mut doc);
    doc
}

/// The whole application router over `state`: the API plus the admin console, which calls
/// the API router in-process.
pub fn app(state: AppState) -> Router {
    let api = api_app(state.clone());
    api.clone()
        .merge(crate::console::router(state, api))
        .layer(axum::middleware::from_fn(shape::limit_uri))
}

/// The API alone (what the console dispatches to).
fn api_app(state: AppState) -> Router {
    let (api, mut doc) = routes(state.config.limits.module_bytes).split_for_parts();
    openapi::complete(&mut doc);
    let doc = Arc::new(doc);
    let body_limit = state.config.max_body_bytes;
    crate::telemetry::install();
    api.route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(crate::telemetry::metrics_endpoint),
        )
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(shape::ensure_json_errors))
        .layer(axum::middleware::from_fn(crate::telemetry::track))
        .with_state(state)
}

/// Starts background automation, delivery and retention, serves `app(state)` on `listener`
/// until `shutdown` resolves, then stops them and flushes the store.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = state.store.clone();
    let automation = state.automation.clone();
    let delivery = state.delivery.clone();
    let retention =
        crate::retention::Retention::start(store.clone(), state.config.retention.clone());
    let grace = state.config.shutdown_grace;
    automation.start();
    delivery.start();
    // Shutdown is bounded whatever requests and runs do: in-flight requests get `grace` to
    // finish, then the workers get `grace` to stop.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let served = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled.send(());
    });
    let served = tokio::select! {
        r = served => r,
        _ = async {
            if on_signal.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "requests still in flight after the shutdown grace; stopping anyway");
            Ok(())
        }
    };
    let stopped = tokio::time::timeout(grace, async {
        automation.stop().await;
        delivery.stop().await;
        retention.stop().await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!(?grace, "background work still running after the shutdown grace; its jobs run again after a restart");
    }
    store.flush()?;
    served?;
    Ok(())
}
