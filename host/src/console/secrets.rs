//! The tenant's secrets page (admins): the names and when each was set, a form to set one
//! (a new name, or a new value for an existing one) and a button to delete one. A value goes
//! one way, to `PUT /v1/secrets/{name}`: no page ever shows it, not even after a refused
//! form.

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::api::enc;
use super::i18n;
use super::page::{self, Page};
use super::{Console, Out, Posted};
use crate::secrets::SecretName;

#[derive(Deserialize)]
struct SecretList {
    secrets: Vec<SecretName>,
}

#[derive(Template)]
#[template(path = "console/secrets.html")]
struct SecretsPage<'a> {
    page: &'a Page,
    secrets: Vec<SecretName>,
}

pub async fn list(c: Console) -> Out {
    let list: SecretList = c.ok(c.api.get("/v1/secrets").await)?;
    let page = c.page("secrets", c.page.t("secrets-title"));
    Ok(page::render(&SecretsPage {
        page: &page,
        secrets: list.secrets,
    }))
}

#[derive(Deserialize)]
pub struct SetForm {
    name: String,
    value: String,
}

pub async fn set(Posted(c, f): Posted<SetForm>) -> Response {
    let name = f.name.trim().to_string();
    let value = zeroize::Zeroizing::new(f.value);
    let body = json!({ "value": value.as_str() });
    let path = format!("/v1/secrets/{}", enc(&name));
    match c.api.json(Method::PUT, &path, &body).await {
        Ok(_) => {
            let text = i18n::text(c.page.lang, "flash-secret-set", &[("name", name)]);
            c.redirect_with("/console/secrets", false, text)
        }
        // The API's own words, shown on the page again; never the value.
        Err(e) => c.redirect_with(
            "/console/secrets",
            true,
            format!("{}: {}", e.code, e.message),
        ),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {}

pub async fn delete(Path(name): Path<String>, Posted(c, _): Posted<DeleteForm>) -> Response {
    let path = format!("/v1/secrets/{}", enc(&name));
    match c
        .api
        .json(Method::DELETE, &path, &serde_json::Value::Null)
        .await
    {
        Ok(_) => {
            let text = i18n::text(c.page.lang, "flash-secret-deleted", &[("name", name)]);
            c.redirect_with("/console/secrets", false, text)
        }
        Err(e) => c.failure(&e),
    }
}
