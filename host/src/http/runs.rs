//! `/v1/runs`: the run history.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiPath, ApiQuery};
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
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    #[param(pattern = "^rec_[0-9a-z]{26}$")]
    pub record: Option<String>,
    #[param(pattern = "^bnd_[0-9a-z]{26}$")]
    pub binding: Option<String>,
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub module: Option<String>,
    /// An outcome name: `ok`, `guest_error`, `trap`, `denied`, …
    #[param(pattern = "^[a-z_]+$")]
    pub outcome: Option<String>,
    /// Cursor: the last run id of the previous page (pages go newest first).
    #[param(pattern = "^run_[0-9a-z_]+$")]
    pub before: Option<String>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunRecord>,
    /// Cursor for older runs (as `before`); absent only when no older matching run is
    /// left. Filters read indexes, so a page holds `limit` matches unless 4 MiB of runs
    /// ended it first (then it carries fewer, and still a `next`).
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
    let lists = state.config.lists;
    let before = q.before;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.runs(tenant, &filter, before.as_deref(), limit, &lists)
        })
        .await?;
    Ok(Json(RunList {
        runs: page.items,
        next: page.next,
    }))
}

/// One run: its event, binding, module version, outcome, host calls, effects and logs.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "automation", params(("id" = String, Path, pattern = "^run_[0-9a-z_]+$")),
    responses((status = 200, body = RunRecord), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunRecord>, ApiError> {
    caller.require(Role::Developer)?;
    let found = state
        .on_store(&caller.tenant, {
            let id = id.clone();
            move |store, tenant| store.run(tenant, &id)
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("run {id:?}")))
}
