//! `/v1/modules`: upload (validated, compiled, cached), inspect, delete, dry-run.
//! Uploads and dry-runs are for developers and admins.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{body_too_large, ApiJson, ApiPath};
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::automation::dry_run::{self as sandbox_run, DryRunInput};
use crate::crm::records::event;
use crate::model::id::is_valid_slug;
use crate::model::{Event, EventKind, Grants, Module, ModuleVersion, Outcome, Role};
use crate::registry::{self, PublishError};
use crate::sandbox::{Busy, RunClass, RunReport, UploadError};

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
            "module name {name:?} must be {}",
            stagecraft_rules::field::SLUG_RULE
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
        UploadError::Busy(busy) => {
            return match busy {
                Busy::Tenant { retry_after, .. } | Busy::Full { retry_after, .. } => {
                    let secs = u32::try_from(retry_after.as_secs().max(1)).unwrap_or(u32::MAX);
                    ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "compile_queue_full",
                        e.to_string(),
                    )
                    .retry_after(secs)
                }
                Busy::Closed => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
                .retry_after(5),
            }
        }
        UploadError::OverLimit { .. } => "module_over_limit",
        UploadError::ForbiddenImport { .. } => "forbidden_import",
        UploadError::ForbiddenExport { .. } => "forbidden_export",
        UploadError::Empty => "empty_module",
        UploadError::ConfigSchema(_) => "invalid_config_schema",
        _ => "invalid_module",
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
}

/// Uploads a new version: the raw component bytes as the body. Its structure is checked
/// against the upload limits at once (`module_over_limit` names the limit, the count found
/// and the maximum); it is then compiled on the compile pool in the tenant's turn (a tenant
/// with too many compiles waiting gets `429 compile_queue_full` with `Retry-After`),
/// validated (a component of the `rule` world importing only allowed interfaces), cached,
/// and stored immutably. A rejected upload leaves no trace. A tenant's modules have a quota
/// (modules, versions per module, bytes of components and artifacts): an upload past it is
/// `409 module_quota_exceeded`, naming the limit; deleting versions no binding uses makes
/// room.
#[utoipa::path(post, path = "/v1/modules/{name}/versions", tag = "modules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")),
    request_body(content = WasmComponent, content_type = "application/wasm"),
    responses((status = 201, body = ModuleVersion), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`compile_queue_full`: the tenant has its share of compiles waiting or running. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
        (status = 503, body = ErrorBody, description = "`unavailable`: the server is shutting down; `storage_unavailable`: the disk is full. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    request: Request,
) -> Result<(StatusCode, Json<ModuleVersion>), ApiError> {
    caller.require_one_of(AUTHORS)?;
    check_name(&name)?;
    // A place in the tenant's compile share first: a tenant over it is refused before its
    // bytes are read, so waiting uploads hold bounded memory.
    let ticket = state
        .sandbox
        .compiler()
        .reserve(&caller.tenant)
        .map_err(|b| upload_error(UploadError::Busy(b)))?;
    let bytes = Bytes::from_request(request, &state).await.map_err(|r| {
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
    let v = registry::publish_async(
        &state.store,
        &state.sandbox,
        ticket,
        state.config.modules,
        &name,
        bytes,
        &caller.key_id,
    )
    .await
    .map_err(|e| match e {
        PublishError::Upload(u) => upload_error(u),
        PublishError::Sandbox(e) => ApiError::internal(e),
        PublishError::Store(s) => s.into(),
        PublishError::OverQuota(m) => {
            ApiError::new(StatusCode::CONFLICT, "module_quota_exceeded", m)
        }
        PublishError::Interrupted => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    })?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// The body of an upload: the component file's bytes as built, not JSON.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct WasmComponent(#[allow(dead_code)] Vec<u8>);

#[derive(Serialize, ToSchema)]
pub struct ModuleList {
    pub modules: Vec<Module>,
}

/// The tenant's modules that have stored versions (a module whose versions were all
/// deleted is not listed; its name keeps counting versions up).
#[utoipa::path(get, path = "/v1/modules", tag = "modules", responses((status = 200, body = ModuleList)))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<ModuleList>, ApiError> {
    let modules = state
        .on_store(&caller.tenant, |store, tenant| store.modules(tenant))
        .await?;
    Ok(Json(ModuleList { modules }))
}

#[derive(Serialize, ToSchema)]
pub struct ModuleDetail {
    #[serde(flatten)]
    pub module: Module,
    pub versions: Vec<ModuleVersion>,
}

/// A module with its versions.
#[utoipa::path(get, path = "/v1/modules/{name}", tag = "modules", params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")),
    responses((status = 200, body = ModuleDetail), (status = 404, body = ErrorBody)))]
async fn get_module(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ModuleDetail>, ApiError> {
    let detail = state
        .on_store(&caller.tenant, move |store, tenant| {
            let module = store
                .module(tenant, &name)?
                .ok_or_else(|| ApiError::not_found(format!("module {name:?}")))?;
            let versions = store.module_versions(tenant, &name)?;
            Ok::<_, ApiError>(ModuleDetail { module, versions })
        })
        .await?;
    Ok(Json(detail))
}

async fn version_of(
    state: &AppState,
    tenant: &str,
    name: String,
    n: u32,
) -> Result<ModuleVersion, ApiError> {
    state
        .on_store(tenant, move |store, tenant| {
            store
                .module_version(tenant, &name, n)?
                .ok_or_else(|| ApiError::not_found(format!("module {name:?} version {n}")))
        })
        .await
}

/// One version.
#[utoipa::path(get, path = "/v1/modules/{name}/versions/{n}", tag = "modules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), ("n" = u32, Path, minimum = 1)),
    responses((status = 200, body = ModuleVersion), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, n)): ApiPath<(String, u32)>,
) -> Result<Json<ModuleVersion>, ApiError> {
    Ok(Json(version_of(&state, &caller.tenant, name, n).await?))
}

/// Deletes a version that no binding enables, giving its room back to the tenant's module
/// quota (its files go once no stored version has the same bytes).
#[utoipa::path(delete, path = "/v1/modules/{name}/versions/{n}", tag = "modules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), ("n" = u32, Path, minimum = 1)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, n)): ApiPath<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    caller.require_one_of(AUTHORS)?;
    let sandbox = state.sandbox.clone();
    state
        .on_store(&caller.tenant, move |store, tenant| {
            registry::delete_version(store, &sandbox, tenant, &name, n)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"record": "rec_01j9z3k7q8m2n4p6r8t0v2x4z6", "config": {"threshold": 60}}))]
pub struct DryRun {
    /// Run on this past journal event, exactly as it happened (record snapshot and time).
    #[schema(pattern = "^evt_[0-9a-z]+$")]
    pub event: Option<String>,
    /// Or: run on this record now, with a synthetic event.
    #[schema(pattern = "^rec_[0-9a-z]{26}$")]
    pub record: Option<String>,
    /// The synthetic event (default `{"type": "created"}`).
    #[schema(value_type = Option<EventKind>)]
    pub kind: Option<EventKind>,
    /// When the synthetic event happened (default now).
    pub occurred_at: Option<DateTime<Utc>>,
    /// The binding config the module reads: a JSON object (default `{}`).
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// What the module may do (default: everything but HTTP, so you see every effect it
    /// tries).
    pub grants: Option<Grants>,
    /// Let the module's HTTP calls (within `grants.http`) really go out. By default they are
    /// answered from what this module's run on `event` received (same request, same answer,
    /// in order) and nothing is sent; a request that run did not make fails
    /// `replay_unmatched`.
    #[serde(default)]
    pub live: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DryRunResult {
    pub event: Event,
    #[serde(flatten)]
    pub report: RunReport,
}

/// What `module`'s latest run on `event` (by any of its bindings) received over HTTP; empty
/// when it has none.
fn recorded_http(
    store: &crate::store::Store,
    tenant: &str,
    event: &str,
    module: &str,
) -> Result<Vec<crate::model::HttpExchange>, crate::store::StoreError> {
    let mut latest: Option<crate::model::RunRecord> = None;
    for b in store
        .bindings(tenant)?
        .iter()
        .filter(|b| b.module == module)
    {
        if let Some(run) = store.run(tenant, &crate::automation::run_id(event, &b.id))? {
            if latest
                .as_ref()
                .is_none_or(|l| l.started_at < run.started_at)
            {
                latest = Some(run);
            }
        }
    }
    Ok(latest.map(|r| r.http).unwrap_or_default())
}

/// Runs a version against the tenant's real records and returns what it would do. Commits
/// nothing and sends nothing.
#[utoipa::path(post, path = "/v1/modules/{name}/versions/{n}/dry-run", tag = "modules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), ("n" = u32, Path, minimum = 1)), request_body = DryRun,
    responses((status = 200, body = DryRunResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`busy`: no run slot came free in time; `store_busy`, `storage_unavailable`. `Retry-After` says when to try again.", headers(("Retry-After" = u32, description = "Seconds to wait before trying again")))))]
async fn dry_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, n)): ApiPath<(String, u32)>,
    ApiJson(body): ApiJson<DryRun>,
) -> Result<Json<DryRunResult>, ApiError> {
    caller.require_one_of(AUTHORS)?;
    let name_of = name.clone();
    let version = version_of(&state, &caller.tenant, name, n).await?;
    let event = match (body.event.clone(), body.record.clone()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give either \"event\" or \"record\", not both",
            ))
        }
        (Some(id), None) => {
            state
                .on_store(&caller.tenant, move |store, tenant| {
                    store
                        .event(tenant, &id)?
                        .ok_or_else(|| ApiError::not_found(format!("event {id:?}")))
                })
                .await?
        }
        (None, record) => {
            let snapshot = match record {
                Some(id) => Some(
                    state
                        .on_store(&caller.tenant, move |store, tenant| {
                            crate::crm::records::get(store, tenant, &id)
                        })
                        .await?,
                ),
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
    stagecraft_rules::value::check("\"config\"", &config)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if let EventKind::Scheduled { payload } | EventKind::Inbound { payload, .. } = &event.kind {
        stagecraft_rules::value::check("the event's payload", payload)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let grants = body.grants.unwrap_or_else(Grants::all);
    grants
        .http
        .validate()
        .map_err(|e| ApiError::invalid(format!("grants.http: {e}")))?;
    let recorded_http = if body.live {
        None
    } else {
        let (event_id, module) = (event.id.clone(), name_of.clone());
        Some(
            state
                .on_store(&caller.tenant, move |store, tenant| {
                    recorded_http(store, tenant, &event_id, &module)
                })
                .await?,
        )
    };
    let sandbox = state.sandbox.clone();
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let ev = event.clone();
    let as_of_event = body.event.is_some();
    let report = state
        .automation_pool
        .run(&caller.tenant, move || {
            sandbox_run::dry_run(
                &sandbox,
                &store,
                &version.hash,
                DryRunInput {
                    tenant: &tenant,
                    class: RunClass::Interactive,
                    event: &ev,
                    run_key: format!("dry-run/{}/{}", ev.id, version.hash),
                    config: config.to_string(),
                    grants,
                    as_of_event,
                    recorded_http,
                },
            )
            .map_err(ApiError::internal)
        })
        .await?;
    if let Outcome::Busy { message } = &report.outcome {
        return Err(ApiError::busy(format!(
            "the dry-run did not start: {message}"
        )));
    }
    Ok(Json(DryRunResult { event, report }))
}
