//! `/v1/records/{id}/comments` and `/v1/records/{id}/timeline`: comments on a record, and
//! its timeline — journal events, comments and tasks in one time order, a page at a time.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::tasks::{cursor, page_size, PageQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::crm::tasks::{self, NewComment};
use crate::crm::CrmError;
use crate::model::{Comment, Event, Role, Task};
use crate::store::TimelineItem;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_comment, comments))
        .routes(routes!(timeline))
}

const WRITERS: &[Role] = &[Role::Agent, Role::Admin];

/// Comments a record's timeline as the key's person.
#[utoipa::path(post, path = "/v1/records/{id}/comments", tag = "tasks",
    params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$")), request_body = NewComment,
    responses((status = 201, body = Comment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`limit_exceeded`: the record has as many comments as it may (10,000)"),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: automation had no run slot or worker in time, and nothing was changed; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn add_comment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(record): ApiPath<String>,
    ApiJson(body): ApiJson<NewComment>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    caller.require_one_of(WRITERS)?;
    let now = Utc::now();
    let by = tasks::actor(&caller.key_id, caller.user.as_deref());
    let caps = state.config.automation.tasks;
    let (comment, cs) = state
        .on_store(&caller.tenant, move |store, tenant| {
            tasks::comment(store, tenant, &record, body, by, caps, now)
        })
        .await?;
    state.submit(&caller.tenant, cs).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

#[derive(Serialize, ToSchema)]
pub struct CommentList {
    pub comments: Vec<Comment>,
    /// Cursor for the next page (as `after`); absent on the last page.
    pub next: Option<String>,
}

/// A record's comments, oldest first.
#[utoipa::path(get, path = "/v1/records/{id}/comments", tag = "tasks",
    params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$"), PageQuery),
    responses((status = 200, body = CommentList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn comments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(record): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<CommentList>, ApiError> {
    let (limit, after) = (page_size(q.limit)?, cursor(q.after)?);
    let lists = state.config.lists;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            crate::crm::records::get(store, tenant, &record)?;
            Ok::<_, CrmError>(store.record_comments(
                tenant,
                &record,
                after.as_deref(),
                limit,
                &lists,
            )?)
        })
        .await?;
    Ok(Json(CommentList {
        comments: page.items,
        next: page.next,
    }))
}

/// One entry of a record's timeline.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineEntry {
    /// A journal event of the record (`created`, `stage_changed`, `task_completed`, …).
    Event {
        event: Box<Event>,
    },
    Comment {
        comment: Comment,
    },
    /// A task, where it was created, as it is now.
    Task {
        task: Task,
    },
}

impl From<TimelineItem> for TimelineEntry {
    fn from(i: TimelineItem) -> Self {
        match i {
            TimelineItem::Event(event) => TimelineEntry::Event { event },
            TimelineItem::Comment(comment) => TimelineEntry::Comment { comment },
            TimelineItem::Task(task) => TimelineEntry::Task { task },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Timeline {
    pub entries: Vec<TimelineEntry>,
    /// Cursor for the next page (as `cursor`); absent on the last page. A page ends at
    /// `limit` entries or 4 MiB.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// A record's timeline: its journal events, comments and tasks in one time order, oldest
/// first, a page at a time.
#[utoipa::path(get, path = "/v1/records/{id}/timeline", tag = "tasks",
    params(("id" = String, Path, pattern = "^rec_[0-9a-z]{26}$"), TimelineQuery),
    responses((status = 200, body = Timeline), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(record): ApiPath<String>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let (limit, after) = (page_size(q.limit)?, cursor(q.cursor)?);
    let lists = state.config.lists;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            crate::crm::records::get(store, tenant, &record)?;
            Ok::<_, CrmError>(store.timeline(tenant, &record, after.as_deref(), limit, &lists)?)
        })
        .await?;
    Ok(Json(Timeline {
        entries: page.items.into_iter().map(TimelineEntry::from).collect(),
        next: page.next,
    }))
}
