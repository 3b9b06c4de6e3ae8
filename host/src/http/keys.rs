//! Tenants (server operators) and API keys (tenant admins).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::crm::tenants;
use crate::model::{ApiKey, Role, Tenant};
use crate::store::{Changeset, Op};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "acme", "name": "Acme Inc."}))]
pub struct NewTenant {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: String,
    #[schema(min_length = 1, pattern = "\\S")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    /// The new tenant's first admin key. Shown once.
    pub admin_key: String,
}

/// Creates a tenant with default pipelines and its first admin key (server operators only).
#[utoipa::path(post, path = "/v1/tenants", tag = "access", request_body = NewTenant,
    responses((status = 201, body = CreatedTenant), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    if !caller.operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "creating tenants needs a server-operator key",
        ));
    }
    let (tenant, _, secret) = state
        .on_store(&caller.tenant, move |store, _| {
            tenants::create_tenant(store, &body.id, &body.name)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            tenant,
            admin_key: secret,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "agent", "name": "Ann's phone", "user": "ann"}))]
pub struct NewKey {
    pub role: Role,
    /// What the key is for, e.g. "zapier integration".
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// The CRM user the key acts for, e.g. "ann" (an agent's own key).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub user: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <key>`. Shown once; only its hash is kept.
    pub secret: String,
}

/// Mints an API key for the caller's tenant.
#[utoipa::path(post, path = "/v1/keys", tag = "access", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    caller.require(Role::Admin)?;
    let (key, secret) = state
        .on_store(&caller.tenant, move |store, tenant| {
            tenants::mint_key(store, tenant, body.role, &body.name, body.user)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })))
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
}

/// Lists the tenant's keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "access", responses((status = 200, body = KeyList)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    caller.require(Role::Admin)?;
    let keys = state
        .on_store(&caller.tenant, |store, tenant| store.keys(tenant))
        .await?;
    Ok(Json(KeyList { keys }))
}

/// Revokes a key by id.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "access",
    params(("id" = String, Path, pattern = "^key_[0-9a-z]{26}$")), responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let revoked = state
        .on_store(&caller.tenant, {
            let id = id.clone();
            move |store, tenant| {
                let op = Op::RevokeKey { id: id.clone() };
                store.commit(&Changeset::op(tenant, op))?.revoked()
            }
        })
        .await?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("key {id:?}")))
    }
}
