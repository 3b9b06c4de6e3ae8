//! `/v1/events`: the journal, read-only here.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::ApiQuery;
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::Event;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only this record's events.
    pub record: Option<String>,
    /// Cursor: the last event id of the previous page.
    pub after: Option<String>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    pub next: Option<String>,
}

/// The event journal, oldest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    let events = match &q.record {
        Some(r) => state
            .store
            .record_events(&caller.tenant, r, q.after.as_deref(), limit)?,
        None => state
            .store
            .events(&caller.tenant, q.after.as_deref(), limit)?,
    };
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(EventList { events, next }))
}
