//! Modules: the list, a module's versions, uploading a new version (the API's validation
//! error shown as it says it), and dry-running a version against a chosen record.

use askama::Template;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{enc, ApiFailure};
use super::page::{self, Page};
use super::{Console, ConsoleState, Out, Posted};
use crate::model::{Effect, HostCall, LogLine, Module, ModuleVersion, Outcome, Record};

#[derive(Deserialize)]
struct ModuleList {
    modules: Vec<Module>,
}

#[derive(Deserialize)]
struct ModuleDetail {
    name: String,
    latest: u32,
    versions: Vec<ModuleVersion>,
}

#[derive(Deserialize)]
struct Records {
    records: Vec<Record>,
}

/// What a dry run reports (the API's answer, minus the event).
#[derive(Deserialize)]
pub(super) struct Report {
    pub outcome: Outcome,
    pub effects: Vec<Effect>,
    pub logs: Vec<LogLine>,
    pub host_calls: Vec<HostCall>,
    pub fuel_used: u64,
    pub peak_memory: u64,
    pub duration_us: u64,
}

#[derive(Template)]
#[template(path = "console/modules.html")]
struct ModulesPage<'a> {
    page: &'a Page,
    modules: Vec<Module>,
    error: Option<ApiFailure>,
    name: String,
}

async fn modules_page(c: &Console, error: Option<ApiFailure>, name: String) -> Out {
    let list: ModuleList = c.ok(c.api.get("/v1/modules").await)?;
    let page = c.page("modules", c.page.t("modules-title"));
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &ModulesPage {
            page: &page,
            modules: list.modules,
            error,
            name,
        },
    ))
}

pub async fn list(c: Console) -> Out {
    modules_page(&c, None, String::new()).await
}

/// A multipart upload: `csrf`, `name`, and the component as `file`.
pub async fn upload(c: Console, State(st): State<ConsoleState>, mut form: Multipart) -> Out {
    let (mut csrf, mut name, mut bytes) = (String::new(), String::new(), Bytes::new());
    let read = async {
        while let Some(field) = form.next_field().await? {
            match field.name().unwrap_or("") {
                "csrf" => csrf = field.text().await?,
                "name" => name = field.text().await?.trim().to_string(),
                "file" => bytes = field.bytes().await?,
                _ => {}
            }
        }
        Ok::<(), MultipartError>(())
    };
    if let Err(e) = read.await {
        if e.status() != StatusCode::PAYLOAD_TOO_LARGE {
            return Err((e.status(), e.body_text()).into_response().into());
        }
        // Too large to pass on to the API: say so the way the API would.
        let failure = ApiFailure {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "module_too_large".into(),
            message: crate::console::i18n::text(
                c.page.lang,
                "error-upload-too-large",
                &[("limit", c.page.lang.number(st.module_bytes as u64))],
            ),
        };
        return modules_page(&c, Some(failure), String::new()).await;
    }
    c.check_csrf(&csrf)?;
    let path = format!("/v1/modules/{}/versions", enc(&name));
    match c
        .api
        .send(Method::POST, &path, Some("application/wasm"), bytes)
        .await
    {
        Ok(answer) => {
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            let text = crate::console::i18n::text(
                c.page.lang,
                "flash-uploaded",
                &[
                    ("name", name.clone()),
                    ("version", v["version"].to_string()),
                ],
            );
            Ok(c.redirect_with(&format!("/console/modules/{}", enc(&name)), false, text))
        }
        Err(e) => modules_page(&c, Some(e), name).await,
    }
}

#[derive(Template)]
#[template(path = "console/module.html")]
struct ModulePage<'a> {
    page: &'a Page,
    name: String,
    latest: u32,
    versions: Vec<ModuleVersion>,
    records: Vec<Record>,
    chosen_version: u32,
    chosen_record: String,
    config: String,
    result: Option<Report>,
    error: Option<ApiFailure>,
}

struct DryRunInput {
    version: u32,
    record: String,
    config: String,
}

async fn module_page(
    c: &Console,
    name: &str,
    input: Option<DryRunInput>,
    result: Option<Report>,
    error: Option<ApiFailure>,
) -> Out {
    let detail: ModuleDetail = c.ok(c.api.get(&format!("/v1/modules/{}", enc(name))).await)?;
    let records: Records = c.ok(c.api.get("/v1/records?limit=200").await)?;
    let page = c.page("modules", c.page.t1("module-title", "name", &detail.name));
    let input = input.unwrap_or(DryRunInput {
        version: detail.latest,
        record: String::new(),
        config: "{}".into(),
    });
    let mut versions = detail.versions;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &ModulePage {
            page: &page,
            name: detail.name,
            latest: detail.latest,
            versions,
            records: records.records,
            chosen_version: input.version,
            chosen_record: input.record,
            config: input.config,
            result,
            error,
        },
    ))
}

pub async fn detail(c: Console, Path(name): Path<String>) -> Out {
    module_page(&c, &name, None, None, None).await
}

#[derive(Deserialize)]
pub struct DryRunForm {
    version: u32,
    record: String,
    #[serde(default)]
    config: String,
}

/// Dry-runs a version on a record (a synthetic `created` event, as the API defaults) and
/// shows the effects it would make; nothing is committed.
pub async fn dry_run(Path(name): Path<String>, Posted(c, f): Posted<DryRunForm>) -> Out {
    let input = DryRunInput {
        version: f.version,
        record: f.record.clone(),
        config: f.config.clone(),
    };
    let config_text = if f.config.trim().is_empty() {
        "{}"
    } else {
        f.config.trim()
    };
    let config: Value = match serde_json::from_str(config_text) {
        Ok(v) => v,
        Err(e) => {
            let failure = ApiFailure {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_json".into(),
                message: crate::console::i18n::text(
                    c.page.lang,
                    "error-config-json",
                    &[("message", e.to_string())],
                ),
            };
            return module_page(&c, &name, Some(input), None, Some(failure)).await;
        }
    };
    let body = json!({"record": f.record, "config": config});
    let path = format!("/v1/modules/{}/versions/{}/dry-run", enc(&name), f.version);
    match c.api.json(Method::POST, &path, &body).await {
        Ok(v) => match serde_json::from_value::<Report>(v) {
            Ok(report) => module_page(&c, &name, Some(input), Some(report), None).await,
            Err(e) => Err(c
                .failure(&ApiFailure {
                    status: StatusCode::BAD_GATEWAY,
                    code: "internal".into(),
                    message: e.to_string(),
                })
                .into()),
        },
        Err(e) => module_page(&c, &name, Some(input), None, Some(e)).await,
    }
}
