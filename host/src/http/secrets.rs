//! `/v1/secrets`: the tenant's secrets, write-only (admins). Set, list names, delete; no
//! route returns a value (see `crate::secrets`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::model::Role;
use crate::secrets::{SecretError, SecretName};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(set, delete))
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> ApiError {
        match e {
            SecretError::Disabled => {
                ApiError::new(StatusCode::CONFLICT, "secrets_disabled", e.to_string())
            }
            SecretError::Invalid(m) => ApiError::invalid(m),
            SecretError::NotFound(name) => ApiError::not_found(format!("secret {name:?}")),
            SecretError::Io(_) => ApiError::internal(e),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// Names only: a secret's value is never returned.
    pub secrets: Vec<SecretName>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"value": "sk_live_4f9a1c"}))]
pub struct SecretValue {
    /// 1 to 4096 bytes, no control characters.
    #[schema(min_length = 1, max_length = 4096)]
    pub value: String,
}

/// The tenant's secrets, by name (never their values).
#[utoipa::path(get, path = "/v1/secrets", tag = "automation",
    responses((status = 200, body = SecretList), (status = 403, body = ErrorBody)))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<SecretList>, ApiError> {
    caller.require(Role::Admin)?;
    let vault = state.secrets.clone();
    let tenant = caller.tenant.clone();
    let secrets = state
        .pool
        .run(&caller.tenant, move || vault.names(&tenant))
        .await?;
    Ok(Json(SecretList { secrets }))
}

/// Sets a secret (replacing one of the same name). Modules use it as `{{secret:NAME}}` in
/// the header or query value their binding's `grants.http` names for it, of a request the
/// grant allows; they never see the value.
#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "automation",
    params(("name" = String, Path, pattern = "^[A-Z][A-Z0-9_]{0,63}$")),
    request_body = SecretValue,
    responses((status = 204), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SecretValue>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let vault = state.secrets.clone();
    let tenant = caller.tenant.clone();
    let value = zeroize::Zeroizing::new(body.value);
    state
        .pool
        .run(&caller.tenant, move || vault.set(&tenant, &name, &value))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a secret; requests that use it then fail `secret_missing`.
#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "automation",
    params(("name" = String, Path, pattern = "^[A-Z][A-Z0-9_]{0,63}$")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let vault = state.secrets.clone();
    let tenant = caller.tenant.clone();
    state
        .pool
        .run(&caller.tenant, move || vault.delete(&tenant, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
