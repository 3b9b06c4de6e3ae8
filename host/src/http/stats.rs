//! Run statistics: `GET /v1/modules/{name}/stats` and `GET /v1/bindings/{id}/stats`, read
//! from the hourly rollups kept as runs commit (never a scan of the run history).

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::ApiQuery;
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::stats::{hour_of, Stats};
use crate::model::Role;
use crate::store::Scope;

/// The longest window one call covers, in hours (93 days).
const MAX_HOURS: i64 = 93 * 24;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(module_stats))
        .routes(routes!(binding_stats))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Start (default: 24 hours before `until`); rounded down to the hour.
    pub since: Option<DateTime<Utc>>,
    /// End (default: now); rounded up to the hour.
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    fn hours(&self) -> Result<(i64, i64), ApiError> {
        let until = self.until.unwrap_or_else(Utc::now);
        let until_hour = hour_of(until) + i64::from(until.timestamp().rem_euclid(3600) != 0);
        let since_hour = match self.since {
            Some(s) => hour_of(s),
            None => until_hour - 24,
        };
        if since_hour >= until_hour {
            return Err(ApiError::bad_request(
                "invalid_query",
                "\"since\" must be before \"until\"",
            ));
        }
        if until_hour - since_hour > MAX_HOURS {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("the window may span at most {MAX_HOURS} hours"),
            ));
        }
        Ok((since_hour, until_hour))
    }
}

fn stats(
    state: &AppState,
    tenant: &str,
    scope: Scope,
    name: &str,
    w: &Window,
) -> Result<Stats, ApiError> {
    let (since, until) = w.hours()?;
    let hours = state.store.rollups(tenant, scope, name, since, until)?;
    Ok(Stats::from_rollups(since, until, &hours))
}

/// A module's runs (every version, every binding) over a window: outcomes, p50/p95/p99 of
/// duration, fuel and peak memory (log buckets: at most ~9% above the true value), messages
/// queued, sent and dead, and an hourly series.
#[utoipa::path(get, path = "/v1/modules/{name}/stats", tag = "modules",
    params(("name" = String, Path), Window),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn module_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(w): ApiQuery<Window>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Role::Developer)?;
    if state.store.module(&caller.tenant, &name)?.is_none() {
        return Err(ApiError::not_found(format!("module {name:?}")));
    }
    Ok(Json(stats(
        &state,
        &caller.tenant,
        Scope::Module,
        &name,
        &w,
    )?))
}

/// A binding's runs over a window (as for a module).
#[utoipa::path(get, path = "/v1/bindings/{id}/stats", tag = "automation",
    params(("id" = String, Path), Window),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn binding_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(w): ApiQuery<Window>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Role::Developer)?;
    if state.store.binding(&caller.tenant, &id)?.is_none() {
        return Err(ApiError::not_found(format!("binding {id:?}")));
    }
    Ok(Json(stats(
        &state,
        &caller.tenant,
        Scope::Binding,
        &id,
        &w,
    )?))
}
