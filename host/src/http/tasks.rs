//! `/v1/tasks` and `/v1/records/{id}/tasks`: create, update, complete and list tasks.
//! Reads for every role; writes for agents and admins, acting as the key's person (its CRM
//! user). Every write goes through automation like a record change (its `task_created` /
//! `task_completed` event can trigger bindings) and commits as one changeset.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::records::if_match;
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::crm::tasks::{self, NewTask};
use crate::model::{Role, Task, TaskStatus};
use crate::store::TaskFilter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list_on_record))
        .routes(routes!(list))
        .routes(routes!(get, patch))
        .routes(routes!(complete))
}

const WRITERS: &[Role] = &[Role::Agent, Role::Admin];

/// Page size from a query: 1-500, 50 by default.
pub(super) fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    Ok(limit)
}

/// A cursor handed back by a list: at most 100 bytes of letters, digits, `_`, `-` and `/`.
pub(super) fn cursor(after: Option<String>) -> Result<Option<String>, ApiError> {
    if let Some(a) = &after {
        let ok = !a.is_empty()
            && a.len() <= 100
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/'));
        if !ok {
            return Err(ApiError::bad_request(
                "invalid_query",
                "the cursor must be the `next` value of the page before",
            ));
        }
    }
    Ok(after)
}

#[derive(Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Cursor for the next page (as `after`); absent on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Cursor: the `next` value of the previous page.
    pub after: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// Creates a task on a record, assigned to `assignee` (default: the key's CRM user); the
/// key's person is its creator. Its `task_created` event runs the bindings it triggers.
#[utoipa::path(post, path = "/v1/records/{id}/tasks", tag = "tasks",
    params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")), request_body = NewTask,
    responses((status = 201, body = Task), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`limit_exceeded`: the record has as many tasks as it may (1,000), or the tenant as many open tasks (100,000)"),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(record): ApiPath<String>,
    ApiJson(body): ApiJson<NewTask>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    caller.require_one_of(WRITERS)?;
    let now = Utc::now();
    let by = tasks::actor(&caller.key_id, caller.user.as_deref());
    let caps = state.config.automation.tasks;
    let (task, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            tasks::create(store, tenant, &record, body, by, caps, now)
        })
        .await?;
    state.submit(&caller.tenant, cs).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

/// A record's tasks, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/records/{id}/tasks", tag = "tasks",
    params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$"), PageQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_on_record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(record): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let (limit, after) = (page_size(q.limit)?, cursor(q.after)?);
    let lists = state.config.lists;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            crate::crm::records::get(store, tenant, &record)?;
            Ok::<_, crate::crm::CrmError>(store.record_tasks(
                tenant,
                &record,
                after.as_deref(),
                limit,
                &lists,
            )?)
        })
        .await?;
    Ok(Json(TaskList {
        tasks: page.items,
        next: page.next,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TasksQuery {
    /// Only this CRM user's tasks.
    #[param(max_length = 200)]
    pub assignee: Option<String>,
    /// Only the tasks of the key's own CRM user (a key without one is refused).
    pub mine: Option<bool>,
    /// `open` or `done`.
    pub status: Option<TaskStatus>,
    /// Only open tasks past their due time, by due time.
    pub overdue: Option<bool>,
    /// Cursor: the `next` value of the previous page.
    pub after: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// Lists tasks: by assignee (or `mine`), by status, or the overdue ones (by due time).
/// Without `overdue`, open tasks come first, then done ones, each oldest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(TasksQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let (limit, after) = (page_size(q.limit)?, cursor(q.after)?);
    let assignee = match (q.assignee, q.mine.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give assignee or mine=true, not both",
            ))
        }
        (Some(a), false) => {
            stagecraft_rules::task::check_assignee(&a)
                .map_err(|e| ApiError::bad_request("invalid_query", e))?;
            Some(a)
        }
        (None, true) => Some(caller.user.clone().ok_or_else(|| {
            ApiError::invalid("mine=true needs a key with a CRM user; this key has none")
        })?),
        (None, false) => None,
    };
    let overdue = q.overdue.unwrap_or(false);
    if overdue && q.status == Some(TaskStatus::Done) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "overdue tasks are open; status=done and overdue=true never match",
        ));
    }
    let filter = TaskFilter {
        assignee,
        status: q.status,
        overdue_at: overdue.then(Utc::now),
    };
    let lists = state.config.lists;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.tasks(tenant, &filter, after.as_deref(), limit, &lists)
        })
        .await?;
    Ok(Json(TaskList {
        tasks: page.items,
        next: page.next,
    }))
}

/// One task.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, pattern = "^tsk_[0-9a-z]{26}$")),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(
        state
            .on_store(&caller.tenant, move |store, tenant| {
                tasks::get(store, tenant, &id)
            })
            .await?,
    ))
}

/// Changes a task's title, description, due time, priority, assignee or tags (null clears
/// the optional ones). Send `version` or `If-Match` to fail with 409 if someone else
/// changed it. A moved due time moves its overdue timer.
#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, pattern = "^tsk_[0-9a-z]{26}$")),
    request_body(content = Object, example = json!({"due_at": "2026-06-02T09:00:00Z", "assignee": "bob"})),
    responses((status = 200, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Task>, ApiError> {
    caller.require_one_of(WRITERS)?;
    let (expected, now) = (if_match(&headers)?, Utc::now());
    let (task, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            tasks::update(store, tenant, &id, body, expected, now)
        })
        .await?;
    state.submit(&caller.tenant, cs).await?;
    Ok(Json(task))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    /// Optimistic concurrency, as for PATCH.
    #[schema(minimum = 1)]
    pub version: Option<u64>,
}

/// Marks an open task done, by the key's person; cancels its overdue timer. Its
/// `task_completed` event runs the bindings it triggers. A done task is 409 `refused`.
#[utoipa::path(post, path = "/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = String, Path, pattern = "^tsk_[0-9a-z]{26}$")),
    request_body(content = Completion, description = "Optional: an empty body completes the task at any version."),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Task>, ApiError> {
    caller.require_one_of(WRITERS)?;
    // The body is optional: empty, or a JSON object with `version`.
    let body: Completion = if body.iter().all(u8::is_ascii_whitespace) {
        Completion::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() {
                "malformed_json"
            } else if e.to_string().contains("unknown field") {
                "unknown_field"
            } else {
                "invalid_body"
            };
            ApiError::bad_request(code, e.to_string())
        })?
    };
    let (expected, now) = (body.version.or(if_match(&headers)?), Utc::now());
    let by = tasks::actor(&caller.key_id, caller.user.as_deref());
    let (task, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            tasks::complete(store, tenant, &id, by, expected, now)
        })
        .await?;
    state.submit(&caller.tenant, cs).await?;
    Ok(Json(task))
}
