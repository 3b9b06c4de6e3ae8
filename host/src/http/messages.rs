//! The outbox and delivery settings: `/v1/messages` (with attempts, and retry of dead
//! letters), `/v1/channels` (where each channel delivers), `/v1/notifications` (in-app).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::delivery::MessageView;
use crate::model::{Channel, ChannelConfig, MessageStatus, Notification, Role};
use crate::store::{Changeset, MessageFilter, Op};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(retry))
        .routes(routes!(get_channels, put_channels))
        .routes(routes!(notifications))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    pub status: Option<MessageStatus>,
    pub channel: Option<Channel>,
    #[param(pattern = "^rec_[0-9a-z]{26}$")]
    pub record: Option<String>,
    /// Cursor: the `next` of the previous page.
    pub after: Option<String>,
    /// 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    /// Cursor for the next page (as `after`); absent on the last page. A page ends early
    /// at 4 MiB of messages, and a filter stops after scanning 20,000 messages: then it may
    /// carry fewer than `limit`, even none, and still a `next`.
    pub next: Option<String>,
}

/// The outbox, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/messages", tag = "automation", params(MessageQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Result<Json<MessageList>, ApiError> {
    caller.require(Role::Developer)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    let filter = MessageFilter {
        status: q.status,
        channel: q.channel,
        record: q.record,
    };
    let lists = state.config.lists;
    let after = q.after;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.messages(tenant, &filter, after.as_deref(), limit, &lists)
        })
        .await?;
    let settings = state.delivery.settings(&caller.tenant);
    Ok(Json(MessageList {
        messages: page
            .items
            .into_iter()
            .map(|m| MessageView::new(m, &settings))
            .collect(),
        next: page.next,
    }))
}

/// One message with every delivery attempt (time, status code or short error — never the
/// reply's body) and, while queued, why it waits.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "automation", params(("id" = String, Path, pattern = "^msg_[0-9a-z]+$")),
    responses((status = 200, body = MessageView), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageView>, ApiError> {
    caller.require(Role::Developer)?;
    let found = state
        .on_store(&caller.tenant, {
            let id = id.clone();
            move |store, tenant| store.message(tenant, &id)
        })
        .await?;
    let m = found.ok_or_else(|| ApiError::not_found(format!("message {id:?}")))?;
    Ok(Json(MessageView::new(
        m,
        &state.delivery.settings(&caller.tenant),
    )))
}

/// Puts a dead letter back in the queue (its retry window starts again).
#[utoipa::path(post, path = "/v1/messages/{id}/retry", tag = "automation", params(("id" = String, Path, pattern = "^msg_[0-9a-z]+$")),
    responses((status = 200, body = MessageView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageView>, ApiError> {
    caller.require(Role::Admin)?;
    let m = state
        .on_store(&caller.tenant, move |store, tenant| {
            let op = Op::RetryMessage { id: id.clone() };
            store.commit(&Changeset::op(tenant, op))?.message()
        })
        .await?;
    Ok(Json(MessageView::new(
        m,
        &state.delivery.settings(&caller.tenant),
    )))
}

#[derive(Serialize, ToSchema)]
pub struct Channels {
    /// The tenant's own settings (secrets never returned).
    pub settings: ChannelConfig,
    /// Verify webhooks with it: `stagecraft-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    pub webhook_secret: String,
}

/// The tenant's delivery settings and webhook signing secret.
#[utoipa::path(get, path = "/v1/channels", tag = "automation", responses((status = 200, body = Channels)))]
async fn get_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Channels>, ApiError> {
    caller.require(Role::Admin)?;
    let (settings, webhook_secret) = state
        .on_store(&caller.tenant, |store, tenant| {
            Ok::<_, crate::store::StoreError>((
                store.channels(tenant)?.redacted(),
                store.webhook_secret(tenant)?,
            ))
        })
        .await?;
    Ok(Json(Channels {
        settings,
        webhook_secret,
    }))
}

/// Sets where the tenant's email, webhook and SMS messages go. Omitted secrets keep their value.
/// A destination written as an internal address (an IP literal, `localhost`) is refused unless
/// the server allows internal destinations; names are checked when they are resolved.
#[utoipa::path(put, path = "/v1/channels", tag = "automation", request_body = ChannelConfig,
    responses((status = 200, body = Channels), (status = 422, body = ErrorBody)))]
async fn put_channels(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChannelConfig>,
) -> Result<Json<Channels>, ApiError> {
    caller.require(Role::Admin)?;
    crate::delivery::settings::validate(&body, state.delivery.guard())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let (saved, webhook_secret) = state
        .on_store(&caller.tenant, move |store, tenant| {
            Ok::<_, crate::store::StoreError>((
                store
                    .commit(&Changeset::op(tenant, Op::PutChannels { config: body }))?
                    .channels()?,
                store.webhook_secret(tenant)?,
            ))
        })
        .await?;
    Ok(Json(Channels {
        settings: saved.redacted(),
        webhook_secret,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    #[param(min_length = 1, max_length = 200)]
    pub user: String,
    /// Cursor: the `next` of the previous page.
    pub after: Option<String>,
    /// 1-500, default 100.
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<Notification>,
    /// Cursor for the next page (as `after`); absent on the last page.
    pub next: Option<String>,
}

/// In-app notifications for a user (what the `notify` channel delivers). Admins read anyone's;
/// other keys only those of the user they act for.
#[utoipa::path(get, path = "/v1/notifications", tag = "automation", params(NotificationQuery),
    responses((status = 200, body = NotificationList)))]
async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> Result<Json<NotificationList>, ApiError> {
    if caller.role != Role::Admin && caller.user.as_deref() != Some(q.user.as_str()) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this key may only read its own user's notifications, not {:?}'s",
                q.user
            ),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    let lists = state.config.lists;
    let page = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.notifications(tenant, &q.user, q.after.as_deref(), limit, &lists)
        })
        .await?;
    Ok(Json(NotificationList {
        notifications: page.items,
        next: page.next,
    }))
}
