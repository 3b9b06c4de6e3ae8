//! Run statistics: `GET /v1/modules/{name}/stats` and `GET /v1/bindings/{id}/stats`, read
//! from the hourly rollups kept as runs commit (never a scan of the run history).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiPath, ApiQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::stats::{hour_of, Stats};
use crate::model::Role;
use crate::store::{Scope, Store, StoreError};

/// The longest window one call covers, in hours (93 days).
const MAX_HOURS: i64 = 93 * 24;

/// The latest `since`/`until`, 9999-12-31T23:00:00Z (Unix seconds): every hour up to it can
/// be rounded and shown. The earliest is the Unix epoch.
const LATEST: i64 = 253_402_297_200;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(module_stats))
        .routes(routes!(binding_stats))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// Start (default: 24 hours before `until`); rounded down to the hour. Between
    /// 1970-01-01T00:00:00Z and 9999-12-31T23:00:00Z, before `until`, at most 93 days before it.
    pub since: Option<DateTime<Utc>>,
    /// End (default: now); rounded up to the hour. Between 1970-01-01T00:00:00Z and
    /// 9999-12-31T23:00:00Z.
    pub until: Option<DateTime<Utc>>,
}

/// Refuses a time outside 1970-01-01T00:00:00Z ..= 9999-12-31T23:00:00Z, naming it.
fn in_range(name: &str, t: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match t {
        Some(t) if !(0..=LATEST).contains(&t.timestamp()) => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "{name:?} must be between 1970-01-01T00:00:00Z and 9999-12-31T23:00:00Z, not {}",
                t.to_rfc3339()
            ),
        )),
        _ => Ok(()),
    }
}

impl Window {
    fn hours(&self) -> Result<(i64, i64), ApiError> {
        in_range("since", self.since)?;
        in_range("until", self.until)?;
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

/// The stats of `name` over the window, or 404 when `exists` says it is not there.
async fn stats(
    state: &AppState,
    tenant: &str,
    scope: Scope,
    name: String,
    w: &Window,
    exists: fn(&Store, &str, &str) -> Result<bool, StoreError>,
) -> Result<Stats, ApiError> {
    let (since, until) = w.hours()?;
    state
        .on_store(tenant, move |store, tenant| {
            if !exists(store, tenant, &name)? {
                let what = match scope {
                    Scope::Module => "module",
                    Scope::Binding => "binding",
                };
                return Err(ApiError::not_found(format!("{what} {name:?}")));
            }
            let hours = store.rollups(tenant, scope, &name, since, until)?;
            Ok(Stats::from_rollups(since, until, &hours))
        })
        .await
}

/// A module's runs (every version, every binding) over a window: outcomes, p50/p95/p99 of
/// duration, fuel and peak memory (log buckets: at most ~9% above the true value), messages
/// queued, sent and dead, and an hourly series.
#[utoipa::path(get, path = "/v1/modules/{name}/stats", tag = "modules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), Window),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn module_stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(w): ApiQuery<Window>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Role::Developer)?;
    let exists = |s: &Store, t: &str, n: &str| Ok(s.module(t, n)?.is_some());
    Ok(Json(
        stats(&state, &caller.tenant, Scope::Module, name, &w, exists).await?,
    ))
}

/// A binding's runs over a window (as for a module).
#[utoipa::path(get, path = "/v1/bindings/{id}/stats", tag = "automation",
    params(("id" = String, Path, pattern = "^bnd_[0-9a-z]{26}$"), Window),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn binding_stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(w): ApiQuery<Window>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Role::Developer)?;
    let exists = |s: &Store, t: &str, n: &str| Ok(s.binding(t, n)?.is_some());
    Ok(Json(
        stats(&state, &caller.tenant, Scope::Binding, id, &w, exists).await?,
    ))
}
