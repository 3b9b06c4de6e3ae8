//! `/v1/records`: CRUD, stage moves and lead conversion. Reads for every role; writes for
//! agents and admins.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::crm::records::{self, Conversion, NewRecord};
use crate::model::{Record, RecordKind, Role};
use crate::store::{Changeset, RecordFilter};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, patch, delete))
        .routes(routes!(move_stage))
        .routes(routes!(convert))
}

const WRITERS: &[Role] = &[Role::Agent, Role::Admin];

/// Commits a changeset made by a request, with inline automation.
async fn apply(state: &AppState, cs: Changeset) -> Result<Changeset, ApiError> {
    let tenant = cs.tenant.clone();
    state.submit(&tenant, cs).await
}

/// The record as this request (and its inline automation) left it.
fn after(committed: &Changeset, record: Record) -> Record {
    match committed.pending(&record.id) {
        Some(Some(r)) => r.clone(),
        _ => record,
    }
}

/// `If-Match: 3` or `If-Match: "3"` as an expected version.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse().map(Some).map_err(|_| {
        ApiError::bad_request(
            "invalid_header",
            format!("If-Match must carry the record's version number, not {text:?}"),
        )
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub kind: Option<RecordKind>,
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub pipeline: Option<String>,
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub stage: Option<String>,
    #[param(max_length = 200)]
    pub owner: Option<String>,
    /// Text search, 1-200 characters: records whose name contains it or whose email is
    /// exactly it (both case-insensitive). A page may hold fewer than `limit` records (or
    /// none) and still carry a `next` cursor: each page scans a bounded number of records.
    pub q: Option<String>,
    /// Cursor: the `next` value of the previous page.
    #[param(pattern = "^rec_[0-9a-z]{26}$")]
    pub after: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordList {
    pub records: Vec<Record>,
    /// Cursor for the next page (as `after`); absent on the last page. A page may end
    /// before `limit` (4 MiB of records, or a filter that scanned its budget) and still
    /// have a `next`.
    pub next: Option<String>,
}

/// Lists records, filtered (kind, pipeline, stage, owner, text search `q`), in creation
/// order, a page at a time.
#[utoipa::path(get, path = "/v1/records", tag = "records", params(ListQuery),
    responses((status = 200, body = RecordList), (status = 400, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RecordList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    let text = q.q.as_deref().map(str::trim);
    if text.is_some_and(|t| t.is_empty() || t.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q must be 1-200 characters",
        ));
    }
    let filter = RecordFilter {
        kind: q.kind,
        pipeline: q.pipeline,
        stage: q.stage,
        owner: q.owner,
    };
    let lists = state.config.lists;
    let after = q.after;
    let text = text.map(str::to_string);
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.search_records(
                tenant,
                &filter,
                text.as_deref(),
                after.as_deref(),
                limit,
                &lists,
            )
        })
        .await?;
    Ok(Json(RecordList {
        records: page.records,
        next: page.next,
    }))
}

/// Creates a record; leads and deals start in their pipeline's first stage unless `stage` says.
#[utoipa::path(post, path = "/v1/records", tag = "records", request_body = NewRecord,
    responses((status = 201, body = Record), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewRecord>,
) -> Result<(StatusCode, Json<Record>), ApiError> {
    caller.require_one_of(WRITERS)?;
    let now = Utc::now();
    let (record, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            records::create(store, tenant, body, now)
        })
        .await?;
    let committed = apply(&state, cs).await?;
    Ok((StatusCode::CREATED, Json(after(&committed, record))))
}

/// One record.
#[utoipa::path(get, path = "/v1/records/{id}", tag = "records", params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")),
    responses((status = 200, body = Record), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Record>, ApiError> {
    Ok(Json(
        state
            .on_store(&caller.tenant, move |store, tenant| {
                records::get(store, tenant, &id)
            })
            .await?,
    ))
}

/// Changes fields. Core fields by name (null clears), `custom` merged key by key (null
/// removes a key). Send `version` or `If-Match` to fail with 409 if someone else changed it.
#[utoipa::path(patch, path = "/v1/records/{id}", tag = "records", params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")),
    request_body(content = Object, example = json!({"email": "ada@analytical.example",
        "custom": {"size": 2500, "source": null}})),
    responses((status = 200, body = Record), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Record>, ApiError> {
    caller.require_one_of(WRITERS)?;
    let (expected, now) = (if_match(&headers)?, Utc::now());
    let (record, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            records::patch(store, tenant, &id, body, expected, now)
        })
        .await?;
    let committed = apply(&state, cs).await?;
    Ok(Json(after(&committed, record)))
}

/// Deletes a record.
#[utoipa::path(delete, path = "/v1/records/{id}", tag = "records", params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require_one_of(WRITERS)?;
    let (expected, now) = (if_match(&headers)?, Utc::now());
    let cs = state
        .on_store(&caller.tenant, move |store, tenant| {
            records::delete(store, tenant, &id, expected, now)
        })
        .await?;
    apply(&state, cs).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stage": "contacted"}))]
pub struct StageMove {
    /// A stage of the record's pipeline.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub stage: String,
    /// Optimistic concurrency, as for PATCH.
    #[schema(minimum = 1)]
    pub version: Option<u64>,
}

/// Moves a lead or deal to another stage of its pipeline.
#[utoipa::path(post, path = "/v1/records/{id}/stage", tag = "records", params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")),
    request_body = StageMove,
    responses((status = 200, body = Record), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn move_stage(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StageMove>,
) -> Result<Json<Record>, ApiError> {
    caller.require_one_of(WRITERS)?;
    let (expected, now) = (body.version.or(if_match(&headers)?), Utc::now());
    let (record, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            records::move_stage(store, tenant, &id, &body.stage, expected, now)
        })
        .await?;
    let committed = apply(&state, cs).await?;
    Ok(Json(after(&committed, record)))
}

#[derive(Serialize, ToSchema)]
pub struct Converted {
    /// The lead (now in its won stage) first, then the records created from it.
    pub records: Vec<Record>,
}

/// Converts a lead into a contact, company and/or deal (Bitrix24-style).
#[utoipa::path(post, path = "/v1/records/{id}/convert", tag = "records", params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")),
    request_body = Conversion,
    responses((status = 201, body = Converted), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn convert(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Conversion>,
) -> Result<(StatusCode, Json<Converted>), ApiError> {
    caller.require_one_of(WRITERS)?;
    let now = Utc::now();
    let (created, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            records::convert(store, tenant, &id, body, now)
        })
        .await?;
    let committed = apply(&state, cs).await?;
    let records = created.into_iter().map(|r| after(&committed, r)).collect();
    Ok((StatusCode::CREATED, Json(Converted { records })))
}
