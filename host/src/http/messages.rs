//! The outbox and delivery settings: `/v1/messages` (with attempts, and retry of dead
//! letters), `/v1/channels` (where each channel delivers), `/v1/notifications` (in-app).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::{Channel, ChannelConfig, MessageStatus, Notification, OutboxMessage, Role};
use crate::store::MessageFilter;

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
    /// 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<OutboxMessage>,
}

/// The outbox, oldest first.
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
    let messages = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.messages(tenant, &filter, limit)
        })
        .await?;
    Ok(Json(MessageList { messages }))
}

/// One message with every delivery attempt (time, status code or error).
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "automation", params(("id" = String, Path, pattern = "^msg_[0-9a-z]+$")),
    responses((status = 200, body = OutboxMessage), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OutboxMessage>, ApiError> {
    caller.require(Role::Developer)?;
    let found = state
        .on_store(&caller.tenant, {
            let id = id.clone();
            move |store, tenant| store.message(tenant, &id)
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("message {id:?}")))
}

/// Puts a dead letter back in the queue (its retry window starts again).
#[utoipa::path(post, path = "/v1/messages/{id}/retry", tag = "automation", params(("id" = String, Path, pattern = "^msg_[0-9a-z]+$")),
    responses((status = 200, body = OutboxMessage), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OutboxMessage>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(
        state
            .on_store(&caller.tenant, move |store, tenant| {
                store.retry_message(tenant, &id)
            })
            .await?,
    ))
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
#[utoipa::path(put, path = "/v1/channels", tag = "automation", request_body = ChannelConfig,
    responses((status = 200, body = Channels), (status = 422, body = ErrorBody)))]
async fn put_channels(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChannelConfig>,
) -> Result<Json<Channels>, ApiError> {
    caller.require(Role::Admin)?;
    if let Some(e) = &body.email {
        if e.host.trim().is_empty() || e.port == 0 {
            return Err(ApiError::invalid("email: host and port are required"));
        }
        if e.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ApiError::invalid(format!(
                "email: from {:?} is not an address",
                e.from
            )));
        }
    }
    if let Some(s) = &body.sms {
        match reqwest::Url::parse(&s.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(ApiError::invalid(format!(
                    "sms: {:?} is not an http(s) URL",
                    s.url
                )))
            }
        }
    }
    let (saved, webhook_secret) = state
        .on_store(&caller.tenant, move |store, tenant| {
            Ok::<_, crate::store::StoreError>((
                store.put_channels(tenant, &body)?,
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
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<Notification>,
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
    let notifications = state
        .on_store(&caller.tenant, move |store, tenant| {
            store.notifications(tenant, &q.user, 500)
        })
        .await?;
    Ok(Json(NotificationList { notifications }))
}
