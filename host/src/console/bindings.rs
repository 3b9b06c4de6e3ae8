//! Bindings per pipeline: enable, disable, order, mode, triggers, config and grants, and
//! switching a binding to another module version (a rollback is a switch, one click from the
//! binding page after a switch). The config is a form drawn from the version's JSON Schema
//! when it declares one (`config_form`), with the JSON text area as the fallback; JSON is
//! checked before it is sent. A binding's page also charts its activity. Only admins get the
//! controls; the API refuses everyone else regardless.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::activity::{self, Activity, Window};
use super::api::{enc, ApiFailure};
use super::config_form::{self, ConfigForm};
use super::i18n;
use super::page::{self, Page};
use super::{form_of, Console, Out, Posted};
use crate::model::{Binding, Module, ModuleVersion, Pipeline};

#[derive(Deserialize)]
struct Bindings {
    bindings: Vec<Binding>,
}

#[derive(Deserialize)]
struct Pipelines {
    pipelines: Vec<Pipeline>,
}

#[derive(Deserialize)]
struct Modules {
    modules: Vec<Module>,
}

#[derive(Deserialize)]
struct ModuleDetail {
    versions: Vec<ModuleVersion>,
}

struct Group {
    pipeline: Pipeline,
    bindings: Vec<Binding>,
}

#[derive(Template)]
#[template(path = "console/bindings.html")]
struct BindingsPage<'a> {
    page: &'a Page,
    groups: Vec<Group>,
    modules: Vec<Module>,
}

impl BindingsPage<'_> {
    fn is_inline(&self, b: &Binding) -> bool {
        b.mode == crate::model::Mode::Inline
    }

    fn triggers(&self, b: &Binding) -> String {
        b.triggers
            .iter()
            .map(|t| serde_json::to_string(t).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub async fn list(c: Console) -> Out {
    let all: Bindings = c.ok(c.api.get("/v1/bindings").await)?;
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let modules: Modules = c.ok(c.api.get("/v1/modules").await)?;
    let groups = pipelines
        .pipelines
        .into_iter()
        .map(|p| {
            let mut bindings: Vec<Binding> = all
                .bindings
                .iter()
                .filter(|b| b.pipeline == p.id)
                .cloned()
                .collect();
            bindings.sort_by_key(|b| b.order);
            Group {
                pipeline: p,
                bindings,
            }
        })
        .collect();
    let page = c.page("bindings", c.page.t("bindings-title"));
    Ok(page::render(&BindingsPage {
        page: &page,
        groups,
        modules: modules.modules,
    }))
}

/// Parses a JSON form field; the error names the field and what is wrong with it.
fn parse_json(c: &Console, field: &str, text: &str) -> Result<Value, ApiFailure> {
    serde_json::from_str(text).map_err(|e| ApiFailure {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_json".into(),
        message: i18n::text(
            c.page.lang,
            "error-field-json",
            &[("field", field.to_string()), ("message", e.to_string())],
        ),
    })
}

fn parse_int(c: &Console, field: &str, text: &str) -> Result<i64, ApiFailure> {
    text.trim().parse().map_err(|_| ApiFailure {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid".into(),
        message: i18n::text(
            c.page.lang,
            "error-field-number",
            &[("field", field.to_string())],
        ),
    })
}

/// The version's config schema, if it declares one (None also when the version is unknown:
/// the API says so when the form is sent).
async fn schema_of(c: &Console, module: &str, version: &str) -> Option<Value> {
    let v: u32 = version.trim().parse().ok()?;
    let mv: ModuleVersion = c
        .api
        .get(&format!("/v1/modules/{}/versions/{v}", enc(module)))
        .await
        .ok()?;
    mv.config_schema
}

/// The config section of a binding form: the schema's form (if any) and the JSON text.
struct ConfigSection {
    form: Option<ConfigForm>,
    json: String,
    /// `form` or `json`: which one the save uses.
    source: String,
}

impl ConfigSection {
    fn new(schema: Option<&Value>, config: &Value) -> ConfigSection {
        let form = schema.and_then(|s| ConfigForm::build(s, config));
        ConfigSection {
            source: if form.is_some() { "form" } else { "json" }.into(),
            form,
            json: page::json(config),
        }
    }

    /// The section as it was sent, with the API's (or our) errors placed on its inputs.
    fn resent(
        schema: Option<&Value>,
        fields: &[(String, String)],
        error: Option<&ApiFailure>,
    ) -> ConfigSection {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let json = get("config");
        let base: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        let mut form = schema.and_then(|s| ConfigForm::build(s, &base));
        let source = if form.is_some() && get("config_source") != "json" {
            "form"
        } else {
            "json"
        };
        if let Some(f) = &mut form {
            if source == "form" {
                f.refill(fields);
            }
            if let Some(e) = error {
                f.place_errors(&e.message);
            }
        }
        ConfigSection {
            form,
            json,
            source: source.into(),
        }
    }
}

/// The config a binding form sends: from the schema's form, or the JSON text.
async fn config_of(
    c: &Console,
    schema: Option<&Value>,
    fields: &[(String, String)],
    json_text: &str,
    base: &Value,
    source: Option<&str>,
) -> Result<Value, ApiFailure> {
    let form = schema.and_then(|s| ConfigForm::build(s, base));
    match form {
        Some(f) if source != Some("json") => {
            config_form::read(&f, fields, base).map_err(|errors| ApiFailure {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_json".into(),
                message: errors
                    .iter()
                    .map(|(name, e)| {
                        format!(
                            "\"config\" at \"{}\": {}",
                            name.trim_start_matches("cfg"),
                            i18n::text(c.page.lang, "error-input-json", &[("message", e.clone())])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
        _ => parse_json(c, "config", json_text),
    }
}

/// What the new-binding form holds (re-shown after a refusal).
#[derive(Deserialize, Clone)]
pub struct NewForm {
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    module: String,
    #[serde(default = "one")]
    version: String,
    #[serde(default = "background")]
    mode: String,
    #[serde(default = "zero")]
    order: String,
    #[serde(default = "stage_changed")]
    triggers: String,
    #[serde(default = "empty_object")]
    config: String,
    #[serde(default = "no_grants")]
    grants: String,
    enabled: Option<String>,
    config_source: Option<String>,
}

fn one() -> String {
    "1".into()
}
fn background() -> String {
    "background".into()
}
fn zero() -> String {
    "0".into()
}
fn stage_changed() -> String {
    r#"[{"on": "stage_changed"}]"#.into()
}
fn empty_object() -> String {
    "{}".into()
}
fn no_grants() -> String {
    r#"{"fields": [], "channels": [], "backward": false}"#.into()
}

#[derive(Template)]
#[template(path = "console/binding_new.html")]
struct NewBindingPage<'a> {
    page: &'a Page,
    pipelines: Vec<Pipeline>,
    modules: Vec<Module>,
    form: NewForm,
    cform: Option<ConfigForm>,
    config_json: String,
    config_source: String,
    error: Option<ApiFailure>,
}

async fn new_page(
    c: &Console,
    form: NewForm,
    config: ConfigSection,
    error: Option<ApiFailure>,
) -> Out {
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let modules: Modules = c.ok(c.api.get("/v1/modules").await)?;
    let page = c.page("bindings", c.page.t("new-binding"));
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &NewBindingPage {
            page: &page,
            pipelines: pipelines.pipelines,
            modules: modules.modules,
            form,
            cform: config.form,
            config_json: config.json,
            config_source: config.source,
            error,
        },
    ))
}

/// `/console/bindings/new?pipeline=…&module=…&version=…`: the full form, with the config
/// form of that version's schema.
pub async fn new_form(c: Console, Query(f): Query<NewForm>) -> Out {
    let schema = schema_of(&c, &f.module, &f.version).await;
    let config = ConfigSection::new(schema.as_ref(), &json!({}));
    let mut f = f;
    f.enabled = Some("on".into());
    new_page(&c, f, config, None).await
}

pub async fn create(Posted(c, fields): Posted<Vec<(String, String)>>) -> Out {
    let f: NewForm = form_of(&fields)?;
    let schema = schema_of(&c, &f.module, &f.version).await;
    let body = async {
        let config = config_of(
            &c,
            schema.as_ref(),
            &fields,
            &f.config,
            &json!({}),
            f.config_source.as_deref(),
        )
        .await?;
        Ok::<Value, ApiFailure>(json!({
            "pipeline": f.pipeline,
            "module": f.module,
            "version": parse_int(&c, "version", &f.version)?,
            "mode": f.mode,
            "order": parse_int(&c, "order", &f.order)?,
            "triggers": parse_json(&c, "triggers", &f.triggers)?,
            "config": config,
            "grants": parse_json(&c, "grants", &f.grants)?,
            "enabled": f.enabled.is_some(),
        }))
    }
    .await;
    let result = match body {
        Ok(body) => c.api.json(Method::POST, "/v1/bindings", &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(b) => {
            let text = i18n::text(c.page.lang, "flash-binding-created", &[]);
            let id = b["id"].as_str().unwrap_or_default();
            Ok(c.redirect_with(&format!("/console/bindings/{}", enc(id)), false, text))
        }
        Err(e) => {
            let config = ConfigSection::resent(schema.as_ref(), &fields, Some(&e));
            new_page(&c, f, config, Some(e)).await
        }
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    enabled: bool,
    revision: Option<u64>,
}

/// Enables or disables a binding.
pub async fn set_enabled(Path(id): Path<String>, Posted(c, f): Posted<EnabledForm>) -> Response {
    let body = json!({"enabled": f.enabled, "revision": f.revision});
    let key = if f.enabled {
        "flash-enabled"
    } else {
        "flash-disabled"
    };
    match c
        .api
        .json(Method::PATCH, &format!("/v1/bindings/{}", enc(&id)), &body)
        .await
    {
        Ok(b) => {
            let text = i18n::text(
                c.page.lang,
                key,
                &[(
                    "module",
                    b["module"].as_str().unwrap_or_default().to_string(),
                )],
            );
            c.redirect_with("/console/bindings", false, text)
        }
        Err(e) => c.failure(&e),
    }
}

#[derive(Deserialize)]
pub struct SwitchForm {
    version: u32,
    revision: Option<u64>,
    /// The version it ran before, offered as the rollback.
    from: Option<u32>,
}

/// Switches a binding to another version (the candidate after a replay, or the rollback),
/// then shows the binding with a one-click switch back.
pub async fn switch(Path(id): Path<String>, Posted(c, f): Posted<SwitchForm>) -> Response {
    let body = json!({"version": f.version, "revision": f.revision});
    let here = format!("/console/bindings/{}", enc(&id));
    match c
        .api
        .json(Method::PATCH, &here.replacen("/console", "/v1", 1), &body)
        .await
    {
        Ok(b) => {
            let text = i18n::text(
                c.page.lang,
                "flash-switched",
                &[
                    (
                        "module",
                        b["module"].as_str().unwrap_or_default().to_string(),
                    ),
                    ("version", f.version.to_string()),
                ],
            );
            let to = match f.from {
                Some(v) if v != f.version => format!("{here}?previous={v}"),
                _ => here,
            };
            c.redirect_with(&to, false, text)
        }
        Err(e) => c.failure(&e),
    }
}

/// What the edit form holds.
#[derive(Deserialize, Clone)]
pub struct EditForm {
    version: String,
    mode: String,
    order: String,
    triggers: String,
    #[serde(default)]
    config: String,
    grants: String,
    enabled: Option<String>,
    revision: u64,
    config_source: Option<String>,
}

#[derive(Template)]
#[template(path = "console/binding.html")]
struct BindingPage<'a> {
    page: &'a Page,
    binding: Binding,
    pipeline: String,
    versions: Vec<ModuleVersion>,
    form: EditForm,
    cform: Option<ConfigForm>,
    config_json: String,
    config_source: String,
    error: Option<ApiFailure>,
    activity: Option<Activity>,
    /// The version it ran before a switch: the one-click rollback.
    previous: Option<u32>,
}

#[derive(Deserialize, Default)]
pub struct BindingQuery {
    window: Option<String>,
    previous: Option<u32>,
}

async fn binding_page(
    c: &Console,
    id: &str,
    q: BindingQuery,
    form: Option<(EditForm, ConfigSection)>,
    error: Option<ApiFailure>,
) -> Out {
    let binding: Binding = c.ok(c.api.get(&format!("/v1/bindings/{}", enc(id))).await)?;
    let module: ModuleDetail = c.ok(c
        .api
        .get(&format!("/v1/modules/{}", enc(&binding.module)))
        .await)?;
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let window = Window::parse(q.window.as_deref());
    let path = format!("/v1/bindings/{}/stats", enc(id));
    let stats = c.ok(activity::fetch(&c.api, &path, window.hours()).await)?;
    let (form, config) = form.unwrap_or_else(|| {
        let schema = module
            .versions
            .iter()
            .find(|v| v.version == binding.version)
            .and_then(|v| v.config_schema.as_ref());
        (
            EditForm {
                version: binding.version.to_string(),
                mode: match binding.mode {
                    crate::model::Mode::Inline => "inline".into(),
                    crate::model::Mode::Background => "background".into(),
                },
                order: binding.order.to_string(),
                triggers: page::json(&binding.triggers),
                config: page::json(&binding.config),
                grants: page::json(&binding.grants),
                enabled: binding.enabled.then(|| "on".to_string()),
                revision: binding.revision,
                config_source: None,
            },
            ConfigSection::new(schema, &binding.config),
        )
    });
    let page = c.page(
        "bindings",
        c.page.t1("binding-title", "module", &binding.module),
    );
    let here = format!("/console/bindings/{}", enc(id));
    let activity = activity::activity(&page, &stats, window, &here, "binding");
    let mut versions = module.versions;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &BindingPage {
            page: &page,
            pipeline: pipelines
                .pipelines
                .iter()
                .find(|p| p.id == binding.pipeline)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| binding.pipeline.clone()),
            previous: q
                .previous
                .filter(|p| *p != binding.version && versions.iter().any(|v| v.version == *p)),
            binding,
            versions,
            form,
            cform: config.form,
            config_json: config.json,
            config_source: config.source,
            error,
            activity: Some(activity),
        },
    ))
}

pub async fn edit(c: Console, Path(id): Path<String>, Query(q): Query<BindingQuery>) -> Out {
    binding_page(&c, &id, q, None, None).await
}

pub async fn update(
    Path(id): Path<String>,
    Posted(c, fields): Posted<Vec<(String, String)>>,
) -> Out {
    let f: EditForm = form_of(&fields)?;
    let current: Binding = c.ok(c.api.get(&format!("/v1/bindings/{}", enc(&id))).await)?;
    let schema = schema_of(&c, &current.module, &f.version).await;
    let body = async {
        let config = config_of(
            &c,
            schema.as_ref(),
            &fields,
            &f.config,
            &current.config,
            f.config_source.as_deref(),
        )
        .await?;
        Ok::<Value, ApiFailure>(json!({
            "version": parse_int(&c, "version", &f.version)?,
            "mode": f.mode,
            "order": parse_int(&c, "order", &f.order)?,
            "triggers": parse_json(&c, "triggers", &f.triggers)?,
            "config": config,
            "grants": parse_json(&c, "grants", &f.grants)?,
            "enabled": f.enabled.is_some(),
            "revision": f.revision,
        }))
    }
    .await;
    let result = match body {
        Ok(body) => {
            c.api
                .json(Method::PATCH, &format!("/v1/bindings/{}", enc(&id)), &body)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            let text = i18n::text(c.page.lang, "flash-binding-saved", &[]);
            Ok(c.redirect_with(&format!("/console/bindings/{}", enc(&id)), false, text))
        }
        Err(e) => {
            let config = ConfigSection::resent(schema.as_ref(), &fields, Some(&e));
            binding_page(&c, &id, BindingQuery::default(), Some((f, config)), Some(e)).await
        }
    }
}
