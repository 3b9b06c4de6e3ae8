//! `/v1/runs`: the run history.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::ApiQuery;
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::{Role, RunRecord};
use crate::store::RunFilter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub record: Option<String>,
    pub binding: Option<String>,
    pub module: Option<String>,
    /// An outcome name: `ok`, `guest_error`, `trap`, `denied`, …
    pub outcome: Option<String>,
    /// Cursor: the last run id of the previous page (pages go newest first).
    pub before: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunRecord>,
    /// Cursor for older runs (as `before`); absent only when no older run is left to look
    /// at. A page ends early at 4 MiB of runs, and a filter stops after scanning 20,000 runs:
    /// then it may carry fewer runs than `limit`, even none, and still a `next`.
    pub next: Option<String>,
}

/// The run history, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "automation", params(RunQuery),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Json<RunList>, ApiError> {
    caller.require(Role::Developer)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 200",
        ));
    }
    let filter = RunFilter {
        record: q.record,
        binding: q.binding,
        module: q.module,
        outcome: q.outcome,
    };
    let page = state.store.runs(
        &caller.tenant,
        &filter,
        q.before.as_deref(),
        limit,
        &state.config.lists,
    )?;
    Ok(Json(RunList {
        runs: page.items,
        next: page.next,
    }))
}

/// One run: its event, binding, module version, outcome, host calls, effects and logs.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "automation", params(("id" = String, Path)),
    responses((status = 200, body = RunRecord), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    caller.require(Role::Developer)?;
    state
        .store
        .run(&caller.tenant, &id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("run {id:?}")))
}
