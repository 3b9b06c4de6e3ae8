//! `/v1/bindings`: which module version runs on which pipeline (admins).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::crm::bindings::{self, BindingPatch, NewBinding};
use crate::model::{Binding, Role};
use crate::store::{Changeset, Op};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BindingQuery {
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub pipeline: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BindingList {
    pub bindings: Vec<Binding>,
}

/// The tenant's bindings, by pipeline and order.
#[utoipa::path(get, path = "/v1/bindings", tag = "automation", params(BindingQuery),
    responses((status = 200, body = BindingList)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<BindingQuery>,
) -> Result<Json<BindingList>, ApiError> {
    caller.require(Role::Developer)?;
    let mut all = state
        .on_store(&caller.tenant, |store, tenant| store.bindings(tenant))
        .await?
        .as_ref()
        .clone();
    if let Some(p) = q.pipeline {
        all.retain(|b| b.pipeline == p);
    }
    Ok(Json(BindingList { bindings: all }))
}

/// Enables a module version on a pipeline.
#[utoipa::path(post, path = "/v1/bindings", tag = "automation", request_body = NewBinding,
    responses((status = 201, body = Binding), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewBinding>,
) -> Result<(StatusCode, Json<Binding>), ApiError> {
    caller.require(Role::Admin)?;
    let created = state
        .on_store(&caller.tenant, move |store, tenant| {
            bindings::create(store, tenant, body)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One binding.
#[utoipa::path(get, path = "/v1/bindings/{id}", tag = "automation", params(("id" = String, Path, pattern = "^bnd_[0-9a-z]{26}$")),
    responses((status = 200, body = Binding), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Binding>, ApiError> {
    caller.require(Role::Developer)?;
    let found = state
        .on_store(&caller.tenant, {
            let id = id.clone();
            move |store, tenant| store.binding(tenant, &id)
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("binding {id:?}")))
}

/// Changes a binding; `version` switches the module version (rollback is a switch).
#[utoipa::path(patch, path = "/v1/bindings/{id}", tag = "automation", params(("id" = String, Path, pattern = "^bnd_[0-9a-z]{26}$")),
    request_body = BindingPatch,
    responses((status = 200, body = Binding), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<BindingPatch>,
) -> Result<Json<Binding>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(
        state
            .on_store(&caller.tenant, move |store, tenant| {
                bindings::update(store, tenant, &id, body)
            })
            .await?,
    ))
}

/// Removes a binding.
#[utoipa::path(delete, path = "/v1/bindings/{id}", tag = "automation", params(("id" = String, Path, pattern = "^bnd_[0-9a-z]{26}$")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    state
        .on_store(&caller.tenant, move |store, tenant| {
            let op = Op::DeleteBinding { id: id.clone() };
            store.commit(&Changeset::op(tenant, op))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
