//! Bindings per pipeline: enable, disable, order, mode, triggers, config and grants (JSON
//! checked before it is sent), and switching a binding to another module version (a rollback
//! is a switch). Only admins get the controls; the API refuses everyone else regardless.

use askama::Template;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{enc, ApiFailure};
use super::i18n;
use super::page::{self, Page};
use super::{Console, Out, Posted};
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

/// What the create form held (re-shown after a refusal).
#[derive(Deserialize, Clone)]
pub struct NewForm {
    pipeline: String,
    module: String,
    version: String,
    mode: String,
    order: String,
    triggers: String,
    config: String,
    grants: String,
    enabled: Option<String>,
}

impl Default for NewForm {
    fn default() -> Self {
        NewForm {
            pipeline: String::new(),
            module: String::new(),
            version: "1".into(),
            mode: "background".into(),
            order: "0".into(),
            triggers: r#"[{"on": "stage_changed"}]"#.into(),
            config: "{}".into(),
            grants: r#"{"fields": [], "channels": [], "backward": false}"#.into(),
            enabled: Some("on".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/bindings.html")]
struct BindingsPage<'a> {
    page: &'a Page,
    groups: Vec<Group>,
    modules: Vec<Module>,
    form: NewForm,
    error: Option<ApiFailure>,
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

async fn bindings_page(c: &Console, form: NewForm, error: Option<ApiFailure>) -> Out {
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
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &BindingsPage {
            page: &page,
            groups,
            modules: modules.modules,
            form,
            error,
        },
    ))
}

pub async fn list(c: Console) -> Out {
    bindings_page(&c, NewForm::default(), None).await
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

fn new_body(c: &Console, f: &NewForm) -> Result<Value, ApiFailure> {
    Ok(json!({
        "pipeline": f.pipeline,
        "module": f.module,
        "version": parse_int(c, "version", &f.version)?,
        "mode": f.mode,
        "order": parse_int(c, "order", &f.order)?,
        "triggers": parse_json(c, "triggers", &f.triggers)?,
        "config": parse_json(c, "config", &f.config)?,
        "grants": parse_json(c, "grants", &f.grants)?,
        "enabled": f.enabled.is_some(),
    }))
}

pub async fn create(Posted(c, f): Posted<NewForm>) -> Out {
    let result = match new_body(&c, &f) {
        Ok(body) => c.api.json(Method::POST, "/v1/bindings", &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(b) => {
            let text = i18n::text(c.page.lang, "flash-binding-created", &[]);
            let id = b["id"].as_str().unwrap_or_default();
            Ok(c.redirect_with(&format!("/console/bindings/{}", enc(id)), false, text))
        }
        Err(e) => bindings_page(&c, f, Some(e)).await,
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

/// What the edit form holds.
#[derive(Deserialize, Clone)]
pub struct EditForm {
    version: String,
    mode: String,
    order: String,
    triggers: String,
    config: String,
    grants: String,
    enabled: Option<String>,
    revision: u64,
}

#[derive(Template)]
#[template(path = "console/binding.html")]
struct BindingPage<'a> {
    page: &'a Page,
    binding: Binding,
    versions: Vec<ModuleVersion>,
    form: EditForm,
    error: Option<ApiFailure>,
}

async fn binding_page(
    c: &Console,
    id: &str,
    form: Option<EditForm>,
    error: Option<ApiFailure>,
) -> Out {
    let binding: Binding = c.ok(c.api.get(&format!("/v1/bindings/{}", enc(id))).await)?;
    let module: ModuleDetail = c.ok(c
        .api
        .get(&format!("/v1/modules/{}", enc(&binding.module)))
        .await)?;
    let form = form.unwrap_or_else(|| EditForm {
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
    });
    let page = c.page(
        "bindings",
        c.page.t1("binding-title", "module", &binding.module),
    );
    let mut versions = module.versions;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &BindingPage {
            page: &page,
            binding,
            versions,
            form,
            error,
        },
    ))
}

pub async fn edit(c: Console, Path(id): Path<String>) -> Out {
    binding_page(&c, &id, None, None).await
}

fn patch_body(c: &Console, f: &EditForm) -> Result<Value, ApiFailure> {
    Ok(json!({
        "version": parse_int(c, "version", &f.version)?,
        "mode": f.mode,
        "order": parse_int(c, "order", &f.order)?,
        "triggers": parse_json(c, "triggers", &f.triggers)?,
        "config": parse_json(c, "config", &f.config)?,
        "grants": parse_json(c, "grants", &f.grants)?,
        "enabled": f.enabled.is_some(),
        "revision": f.revision,
    }))
}

pub async fn update(Path(id): Path<String>, Posted(c, f): Posted<EditForm>) -> Out {
    let result = match patch_body(&c, &f) {
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
        Err(e) => binding_page(&c, &id, Some(f), Some(e)).await,
    }
}
