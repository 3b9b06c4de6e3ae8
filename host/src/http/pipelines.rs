//! `/v1/pipelines`: read for every role, written by admins.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::crm::pipelines::{self, NewPipeline, PipelinePatch};
use crate::model::{Pipeline, Role};
use crate::store::{Changeset, Op};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

#[derive(Serialize, ToSchema)]
pub struct PipelineList {
    pub pipelines: Vec<Pipeline>,
}

/// Lists the tenant's pipelines.
#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines", responses((status = 200, body = PipelineList)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PipelineList>, ApiError> {
    let pipelines = state
        .on_store(&caller.tenant, |store, tenant| store.pipelines(tenant))
        .await?;
    Ok(Json(PipelineList { pipelines }))
}

/// Creates a pipeline.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", request_body = NewPipeline,
    responses((status = 201, body = Pipeline), (status = 422, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewPipeline>,
) -> Result<(StatusCode, Json<Pipeline>), ApiError> {
    caller.require(Role::Admin)?;
    let p = state
        .on_store(&caller.tenant, move |store, tenant| {
            pipelines::create(store, tenant, body)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// One pipeline.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")),
    responses((status = 200, body = Pipeline), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Pipeline>, ApiError> {
    let found = state
        .on_store(&caller.tenant, {
            let id = id.clone();
            move |store, tenant| store.pipeline(tenant, &id)
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("pipeline {id:?}")))
}

/// Renames a pipeline or replaces its stage list.
#[utoipa::path(patch, path = "/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")),
    request_body = PipelinePatch,
    responses((status = 200, body = Pipeline), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PipelinePatch>,
) -> Result<Json<Pipeline>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(
        state
            .on_store(&caller.tenant, move |store, tenant| {
                pipelines::update(store, tenant, &id, body)
            })
            .await?,
    ))
}

/// Deletes a pipeline that holds no records.
#[utoipa::path(delete, path = "/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    state
        .on_store(&caller.tenant, move |store, tenant| {
            let op = Op::DeletePipeline { id: id.clone() };
            store.commit(&Changeset::op(tenant, op))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
