//! Signing in with an API key (turned into a session cookie), signing out, and the language
//! switch.

use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::page::{self, Page};
use super::session::{self, COOKIE_NAME, LANG_COOKIE, LOGIN_COOKIE};
use super::{i18n, lang_of, safe_back, ConsoleState, Posted};
use crate::crm::tenants::hash_secret;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    page: &'a Page,
    token: &'a str,
    error: Option<String>,
}

fn login_page(headers: &HeaderMap, status: StatusCode, error: Option<String>) -> Response {
    let lang = lang_of(headers);
    let token = session::random_token();
    let page = Page::anonymous(
        lang,
        "/console/login",
        i18n::text(lang, "sign-in-title", &[]),
    );
    let mut resp = page::render_status(
        status,
        &LoginPage {
            page: &page,
            token: &token,
            error,
        },
    );
    if let Ok(v) = session::set_cookie(LOGIN_COOKIE, &token, Duration::from_secs(3600)).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn form(State(st): State<ConsoleState>, headers: HeaderMap) -> Response {
    let signed_in =
        session::cookie(&headers, COOKIE_NAME).is_some_and(|id| st.sessions.get(&id).is_some());
    if signed_in {
        return Redirect::to("/console/").into_response();
    }
    login_page(&headers, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    key: String,
    csrf: String,
}

pub async fn submit(
    State(st): State<ConsoleState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers);
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !session::same_origin(&headers)
        || expected.is_empty()
        || !session::same_token(&f.csrf, &expected)
    {
        return (
            StatusCode::FORBIDDEN,
            axum::response::Html(page::plain_error(
                lang,
                &i18n::text(lang, "error-csrf", &[]),
            )),
        )
            .into_response();
    }
    let hash = hash_secret(f.key.trim());
    let tenant = match crate::http::caller_for_key_hash(&st.store, &hash) {
        Ok(Some((caller, _))) => caller.tenant,
        Ok(None) => {
            return login_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                Some(i18n::text(lang, "error-bad-key", &[])),
            )
        }
        Err(e) => return login_page(&headers, StatusCode::INTERNAL_SERVER_ERROR, Some(e.message)),
    };
    let Some(id) = st.sessions.create(&tenant, hash) else {
        return login_page(
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the sign-in could not be stored; try again".into()),
        );
    };
    let mut resp = Redirect::to("/console/").into_response();
    for c in [
        session::set_cookie(COOKIE_NAME, &id, st.sessions.ttl()),
        session::set_cookie(LOGIN_COOKIE, "", Duration::ZERO),
    ] {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(Posted(c, _): Posted<Empty>) -> Response {
    c.sessions.remove(&c.session_id);
    let mut resp = Redirect::to("/console/login").into_response();
    if let Ok(v) = session::set_cookie(COOKIE_NAME, "", Duration::ZERO).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct LangQuery {
    lang: String,
    back: Option<String>,
}

/// Remembers the chosen language in a cookie and goes back to the page it was chosen on.
pub async fn switch_lang(Query(q): Query<LangQuery>) -> Response {
    let back = safe_back(q.back.as_deref(), "/console/");
    let mut resp = Redirect::to(&back).into_response();
    if let Some(lang) = i18n::Lang::from_code(&q.lang) {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age={}",
            lang.code(),
            365 * 24 * 3600
        );
        if let Ok(v) = cookie.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
