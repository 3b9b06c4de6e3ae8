//! Modules: the list, a module's versions and activity charts, uploading a new version (the
//! API's validation error shown as it says it), dry-running a version against a chosen
//! record, and starting a replay of a version on a binding's past events.

use askama::Template;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::activity::{self, Activity, Window};
use super::api::{enc, ApiFailure};
use super::page::{self, Page};
use super::replay;
use super::{Console, ConsoleState, Out, Posted};
use crate::model::{
    Binding, Effect, HostCall, LogLine, Module, ModuleVersion, Outcome, Pipeline, Record,
};

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
    activity: Option<Activity>,
    /// The bindings running this module (replay's choice), with their pipelines' names.
    bindings: Vec<(Binding, String)>,
    windows: Vec<replay::WindowChoice>,
    replay_error: Option<ApiFailure>,
}

struct DryRunInput {
    version: u32,
    record: String,
    config: String,
}

/// What a module page shows besides the module itself.
#[derive(Default)]
struct Extras {
    input: Option<DryRunInput>,
    result: Option<Report>,
    error: Option<ApiFailure>,
    replay_error: Option<ApiFailure>,
    window: Option<String>,
}

#[derive(Deserialize)]
struct Bindings {
    bindings: Vec<Binding>,
}

#[derive(Deserialize)]
struct Pipelines {
    pipelines: Vec<Pipeline>,
}

async fn module_page(c: &Console, name: &str, x: Extras) -> Out {
    let detail: ModuleDetail = c.ok(c.api.get(&format!("/v1/modules/{}", enc(name))).await)?;
    let records: Records = c.ok(c.api.get("/v1/records?limit=200").await)?;
    let page = c.page("modules", c.page.t1("module-title", "name", &detail.name));
    let (activity, bindings) = if c.page.can_develop() {
        let window = Window::parse(x.window.as_deref());
        let path = format!("/v1/modules/{}/stats", enc(name));
        let stats = c.ok(activity::fetch(&c.api, &path, window.hours()).await)?;
        let here = format!("/console/modules/{}", enc(name));
        let all: Bindings = c.ok(c.api.get("/v1/bindings").await)?;
        let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
        let mine = all
            .bindings
            .into_iter()
            .filter(|b| b.module == detail.name)
            .map(|b| {
                let p = pipelines
                    .pipelines
                    .iter()
                    .find(|p| p.id == b.pipeline)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| b.pipeline.clone());
                (b, p)
            })
            .collect();
        (
            Some(activity::activity(&page, &stats, window, &here, "module")),
            mine,
        )
    } else {
        (None, Vec::new())
    };
    let input = x.input.unwrap_or(DryRunInput {
        version: detail.latest,
        record: String::new(),
        config: "{}".into(),
    });
    let mut versions = detail.versions;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let status = x
        .error
        .as_ref()
        .or(x.replay_error.as_ref())
        .map_or(StatusCode::OK, |e| e.status);
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
            result: x.result,
            error: x.error,
            activity,
            bindings,
            windows: replay::window_choices(page.lang),
            replay_error: x.replay_error,
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct ModuleQuery {
    window: Option<String>,
}

pub async fn detail(c: Console, Path(name): Path<String>, Query(q): Query<ModuleQuery>) -> Out {
    let x = Extras {
        window: q.window,
        ..Extras::default()
    };
    module_page(&c, &name, x).await
}

/// The module page with a replay the API refused, saying why.
pub(super) async fn with_replay_error(c: &Console, name: &str, e: ApiFailure) -> Out {
    let x = Extras {
        replay_error: Some(e),
        ..Extras::default()
    };
    module_page(c, name, x).await
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
            let x = Extras {
                input: Some(input),
                error: Some(failure),
                ..Extras::default()
            };
            return module_page(&c, &name, x).await;
        }
    };
    let body = json!({"record": f.record, "config": config});
    let path = format!("/v1/modules/{}/versions/{}/dry-run", enc(&name), f.version);
    match c.api.json(Method::POST, &path, &body).await {
        Ok(v) => match serde_json::from_value::<Report>(v) {
            Ok(report) => {
                let x = Extras {
                    input: Some(input),
                    result: Some(report),
                    ..Extras::default()
                };
                module_page(&c, &name, x).await
            }
            Err(e) => Err(c
                .failure(&ApiFailure {
                    status: StatusCode::BAD_GATEWAY,
                    code: "internal".into(),
                    message: e.to_string(),
                })
                .into()),
        },
        Err(e) => {
            let x = Extras {
                input: Some(input),
                error: Some(e),
                ..Extras::default()
            };
            module_page(&c, &name, x).await
        }
    }
}
