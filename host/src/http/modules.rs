//! `/v1/modules`: upload (validated, compiled, cached), inspect, delete, dry-run.
//! Uploads and dry-runs are for developers and admins.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{body_too_large, ApiJson};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::automation::dry_run::{self as sandbox_run, DryRunInput};
use crate::crm::records::event;
use crate::model::id::is_valid_slug;
use crate::model::{Event, EventKind, Grants, Module, ModuleVersion, Role};
use crate::registry::{self, PublishError};
use crate::sandbox::{RunReport, UploadError};

const AUTHORS: &[Role] = &[Role::Developer, Role::Admin];

pub fn routes(module_bytes: usize) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(module_bytes + 1024));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_module))
        .routes(routes!(get_version, delete_version))
        .routes(routes!(dry_run))
        .merge(uploads)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_valid_slug(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "module name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        )))
    }
}

fn upload_error(e: UploadError) -> ApiError {
    let code = match &e {
        UploadError::TooLarge { .. } => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "module_too_large",
                e.to_string(),
            )
        }
        UploadError::ForbiddenImport { .. } => "forbidden_import",
        UploadError::Empty => "empty_module",
        UploadError::ConfigSchema(_) => "invalid_config_schema",
        _ => "invalid_module",
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
}

/// Uploads a new version: the raw component bytes as the body. It is validated (a component of
/// the `rule` world importing only allowed interfaces), compiled, cached, and stored
/// immutably. A rejected upload leaves no trace.
#[utoipa::path(post, path = "/v1/modules/{name}/versions", tag = "modules",
    params(("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = ModuleVersion), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleVersion>), ApiError> {
    caller.require_one_of(AUTHORS)?;
    check_name(&name)?;
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "module_too_large",
                format!(
                    "the module is larger than the upload limit of {} bytes",
                    state.sandbox.limits().module_bytes
                ),
            )
        } else {
            body_too_large()
        }
    })?;
    let (store, sandbox, tenant, key) = (
        state.store.clone(),
        state.sandbox.clone(),
        caller.tenant.clone(),
        caller.key_id.clone(),
    );
    let v = tokio::task::spawn_blocking(move || {
        registry::publish(&store, &sandbox, &tenant, &name, &bytes, &key)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        PublishError::Upload(u) => upload_error(u),
        PublishError::Sandbox(e) => ApiError::internal(e),
        PublishError::Store(s) => s.into(),
    })?;
    Ok((StatusCode::CREATED, Json(v)))
}

#[derive(Serialize, ToSchema)]
pub struct ModuleList {
    pub modules: Vec<Module>,
}

/// The tenant's modules.
#[utoipa::path(get, path = "/v1/modules", tag = "modules", responses((status = 200, body = ModuleList)))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<ModuleList>, ApiError> {
    Ok(Json(ModuleList {
        modules: state.store.modules(&caller.tenant)?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ModuleDetail {
    #[serde(flatten)]
    pub module: Module,
    pub versions: Vec<ModuleVersion>,
}

/// A module with its versions.
#[utoipa::path(get, path = "/v1/modules/{name}", tag = "modules", params(("name" = String, Path)),
    responses((status = 200, body = ModuleDetail), (status = 404, body = ErrorBody)))]
async fn get_module(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ModuleDetail>, ApiError> {
    let module = state
        .store
        .module(&caller.tenant, &name)?
        .ok_or_else(|| ApiError::not_found(format!("module {name:?}")))?;
    let versions = state.store.module_versions(&caller.tenant, &name)?;
    Ok(Json(ModuleDetail { module, versions }))
}

fn version_of(
    state: &AppState,
    tenant: &str,
    name: &str,
    n: u32,
) -> Result<ModuleVersion, ApiError> {
    state
        .store
        .module_version(tenant, name, n)?
        .ok_or_else(|| ApiError::not_found(format!("module {name:?} version {n}")))
}

/// One version.
#[utoipa::path(get, path = "/v1/modules/{name}/versions/{n}", tag = "modules",
    params(("name" = String, Path), ("n" = u32, Path)),
    responses((status = 200, body = ModuleVersion), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, n)): Path<(String, u32)>,
) -> Result<Json<ModuleVersion>, ApiError> {
    Ok(Json(version_of(&state, &caller.tenant, &name, n)?))
}

/// Deletes a version that no binding enables.
#[utoipa::path(delete, path = "/v1/modules/{name}/versions/{n}", tag = "modules",
    params(("name" = String, Path), ("n" = u32, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, n)): Path<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    caller.require_one_of(AUTHORS)?;
    state
        .store
        .delete_module_version(&caller.tenant, &name, n)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    /// Run on this past journal event, exactly as it happened (record snapshot and time).
    pub event: Option<String>,
    /// Or: run on this record now, with a synthetic event.
    pub record: Option<String>,
    /// The synthetic event (default `{"type": "created"}`).
    #[schema(value_type = Object)]
    pub kind: Option<EventKind>,
    /// When the synthetic event happened (default now).
    pub occurred_at: Option<DateTime<Utc>>,
    /// The binding config the module reads (default `{}`).
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// What the module may do (default: everything, so you see every effect it tries).
    pub grants: Option<Grants>,
}

#[derive(Serialize, ToSchema)]
pub struct DryRunResult {
    pub event: Event,
    #[serde(flatten)]
    pub report: RunReport,
}

/// Runs a version against the tenant's real records and returns what it would do. Commits
/// nothing and sends nothing.
#[utoipa::path(post, path = "/v1/modules/{name}/versions/{n}/dry-run", tag = "modules",
    params(("name" = String, Path), ("n" = u32, Path)), request_body = DryRun,
    responses((status = 200, body = DryRunResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn dry_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, n)): Path<(String, u32)>,
    ApiJson(body): ApiJson<DryRun>,
) -> Result<Json<DryRunResult>, ApiError> {
    caller.require_one_of(AUTHORS)?;
    let version = version_of(&state, &caller.tenant, &name, n)?;
    let event = match (&body.event, &body.record) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give either \"event\" or \"record\", not both",
            ))
        }
        (Some(id), None) => state
            .store
            .event(&caller.tenant, id)?
            .ok_or_else(|| ApiError::not_found(format!("event {id:?}")))?,
        (None, record) => {
            let snapshot = match record {
                Some(id) => Some(crate::crm::records::get(&state.store, &caller.tenant, id)?),
                None => None,
            };
            let kind = body.kind.clone().unwrap_or(EventKind::Created);
            if snapshot.is_none() && !matches!(kind, EventKind::Inbound { .. }) {
                return Err(ApiError::invalid(
                    "a dry-run needs \"event\" (a journal event id) or \"record\" (unless the event is inbound)",
                ));
            }
            let at = body.occurred_at.unwrap_or_else(Utc::now);
            event(&caller.tenant, kind, snapshot.as_ref(), at, None)
        }
    };
    let config = body
        .config
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !config.is_object() {
        return Err(ApiError::invalid("\"config\" must be a JSON object"));
    }
    let grants = body.grants.unwrap_or_else(Grants::all);
    let sandbox = state.sandbox.clone();
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let ev = event.clone();
    let as_of_event = body.event.is_some();
    let report = tokio::task::spawn_blocking(move || {
        sandbox_run::dry_run(
            &sandbox,
            &store,
            &version.hash,
            DryRunInput {
                tenant: &tenant,
                event: &ev,
                run_key: format!("dry-run/{}/{}", ev.id, version.hash),
                config: config.to_string(),
                grants,
                as_of_event,
            },
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(DryRunResult { event, report }))
}
