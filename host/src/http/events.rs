//! `/v1/events`: the journal, read-only here.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::Value;

use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::{Event, EventKind, Role};
use crate::store::Changeset;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, post_inbound))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "form_submitted", "payload": {"form": "contact-us", "message": "Call me back"}}))]
pub struct Inbound {
    /// What happened, e.g. `form_submitted`; bindings listen by name.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// The record it concerns, if any.
    #[schema(pattern = "^rec_[0-9a-z]{26}$")]
    pub record: Option<String>,
    /// Any JSON the modules read, at most 64 KiB (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// Posts an inbound event (form submitted, email received, …); bindings listening for its
/// name run on it.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = Inbound,
    responses((status = 201, body = Event), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn post_inbound(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Inbound>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    caller.require_one_of(&[Role::Agent, Role::Admin])?;
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::invalid("\"name\" must be 1-100 characters"));
    }
    if crate::model::event::reserved_inbound(&body.name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reserved_name",
            format!(
                "inbound event names starting with \"task_\" are reserved for task events; \
                 {:?} cannot be posted",
                body.name
            ),
        ));
    }
    let payload = body
        .payload
        .unwrap_or_else(|| Value::Object(Default::default()));
    stagecraft_rules::value::check("\"payload\"", &payload)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let snapshot = match body.record.clone() {
        Some(id) => Some(
            state
                .on_store(&caller.tenant, move |store, tenant| {
                    crate::crm::records::get(store, tenant, &id)
                })
                .await?,
        ),
        None => None,
    };
    let ev = crate::crm::records::event(
        &caller.tenant,
        EventKind::Inbound {
            name: body.name,
            payload,
        },
        snapshot.as_ref(),
        Utc::now(),
        None,
    );
    let mut cs = Changeset::new(&caller.tenant);
    cs.events.push(ev.clone());
    state.submit(&caller.tenant, cs).await?;
    Ok((StatusCode::CREATED, Json(ev)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this record's events.
    #[param(pattern = "^rec_[0-9a-z]{26}$")]
    pub record: Option<String>,
    /// Cursor: the last event id of the previous page.
    #[param(pattern = "^evt_[0-9a-z]+$")]
    pub after: Option<String>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    /// Cursor for the next page (as `after`); absent on the last page. A page ends early
    /// at 4 MiB of events.
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
    let lists = state.config.lists;
    let (record, after) = (q.record, q.after);
    let page = state
        .on_store(&caller.tenant, move |store, tenant| match &record {
            Some(r) => store.record_events(tenant, r, after.as_deref(), limit, &lists),
            None => store.events(tenant, after.as_deref(), limit, &lists),
        })
        .await?;
    Ok(Json(EventList {
        events: page.items,
        next: page.next,
    }))
}
