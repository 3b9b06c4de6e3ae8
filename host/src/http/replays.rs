//! Replay routes: `POST /v1/modules/{name}/versions/{n}/replay` compares a candidate version
//! with what really happened; `GET /v1/replays/{id}` follows a large one. Developers and
//! admins.
//!
//! With many hosts on PostgreSQL, a replay is stored in the database when it starts, every
//! [`PUBLISH_EVERY`] while it runs and when it ends, so `GET /v1/replays/{id}` answers on
//! any host (this host's own replays are answered from memory, up to date).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use stagecraft_store_pg::PgBackend;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::Role;
use crate::replay::{self, Replay, ReplayError, ReplayRequest};

const AUTHORS: &[Role] = &[Role::Developer, Role::Admin];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(get))
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::NotFound(w) => ApiError::not_found(w),
            ReplayError::Invalid(m) => ApiError::invalid(m),
            ReplayError::TooLarge => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "window_too_large",
                e.to_string(),
            ),
            ReplayError::Store(s) => s.into(),
        }
    }
}

/// How long a client told `429 replays_busy` should wait before asking again.
const REPLAY_RETRY_SECONDS: u32 = 5;

/// Replays version `n` on the past events a binding (or every binding of a pipeline running
/// this module) handled in a window, as a dry run, and compares its outcome and effects with
/// what the enabled version committed. Commits nothing, sends nothing. Up to 50 runs the
/// finished replay comes back (200); larger windows run in the background (202; follow
/// `GET /v1/replays/{id}`).
#[utoipa::path(post, path = "/v1/modules/{name}/versions/{n}/replay", tag = "modules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), ("n" = u32, Path, minimum = 1)), request_body = ReplayRequest,
    responses((status = 200, body = Replay), (status = 202, body = Replay),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`replays_busy`: the tenant's share of replays is running. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, n)): ApiPath<(String, u32)>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Result<(StatusCode, Json<Replay>), ApiError> {
    caller.require_one_of(AUTHORS)?;
    let plan = state
        .on_store(&caller.tenant, move |store, tenant| {
            let candidate = store
                .module_version(tenant, &name, n)?
                .ok_or_else(|| ApiError::not_found(format!("module {name:?} version {n}")))?;
            Ok::<_, ApiError>(replay::plan(store, tenant, &candidate, &req)?)
        })
        .await?;
    let inline = plan.replay.total as usize <= replay::INLINE_EVENTS;
    let shared = state.replays.add(plan.replay.clone()).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "replays_busy",
            format!(
                "replays are busy: at most {} run at once, at most {} per tenant; try again when one has finished",
                replay::RUNNING,
                replay::RUNNING_PER_TENANT
            ),
        )
        // A replay takes seconds (up to 50 runs in the request) to minutes (in the
        // background): asking again every second would only add load.
        .retry_after(REPLAY_RETRY_SECONDS)
    })?;
    let (store, sandbox, job) = (state.store.clone(), state.sandbox.clone(), shared.clone());
    let db = state.shared_db.clone();
    let task = tokio::task::spawn_blocking(move || {
        if let Some(db) = &db {
            publish(db, &job);
        }
        replay::execute(&store, &sandbox, plan, &job);
        if let Some(db) = &db {
            publish(db, &job);
        }
    });
    if let (Some(db), false) = (state.shared_db.clone(), inline) {
        tokio::spawn(publish_progress(db, shared.clone()));
    }
    if inline {
        task.await.map_err(ApiError::internal)?;
        let done = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
        return Ok((StatusCode::OK, Json(done)));
    }
    let now = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((StatusCode::ACCEPTED, Json(now)))
}

/// How often a running replay's progress is stored for the other hosts.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Stores the replay as it is now for every host. Blocking. A failure is logged: the
/// replay still runs and this host still answers for it.
fn publish(db: &PgBackend, job: &Mutex<Replay>) {
    let now = job.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let stored = serde_json::to_value(&now)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            db.put_replay(&now.tenant, &now.id, now.created_at.timestamp_millis(), &v)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = stored {
        tracing::warn!(replay = %now.id, error = %e, "cannot store a replay for the other hosts");
    }
}

/// Stores a background replay's progress every [`PUBLISH_EVERY`] until it ends (its end is
/// stored by the task that ran it).
async fn publish_progress(db: Arc<PgBackend>, job: Arc<Mutex<Replay>>) {
    loop {
        tokio::time::sleep(PUBLISH_EVERY).await;
        let running =
            job.lock().unwrap_or_else(|p| p.into_inner()).status == replay::ReplayStatus::Running;
        if !running {
            return;
        }
        let (db, job) = (db.clone(), job.clone());
        let _ = tokio::task::spawn_blocking(move || publish(&db, &job)).await;
    }
}

/// A replay: its progress, and once done its summary and differences.
#[utoipa::path(get, path = "/v1/replays/{id}", tag = "modules", params(("id" = String, Path, pattern = "^rpl_[0-9a-z]{26}$")),
    responses((status = 200, body = Replay), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_one_of(AUTHORS)?;
    if let Some(r) = state.replays.get(&caller.tenant, &id) {
        return Ok(Json(serde_json::to_value(r).map_err(ApiError::internal)?));
    }
    // Started through another host?
    let Some(db) = state.shared_db.clone() else {
        return Err(ApiError::not_found(format!("replay {id:?}")));
    };
    let stored = state
        .on_store(&caller.tenant, move |_, tenant| {
            db.replay(tenant, &id).map(|r| (r, id))
        })
        .await?;
    match stored {
        (Some(v), _) => Ok(Json(v)),
        (None, id) => Err(ApiError::not_found(format!("replay {id:?}"))),
    }
}
