//! The admin console: server-rendered pages under `/console` (askama templates and CSS
//! compiled into the binary), in four languages. It has no path to the store of its own:
//! every read and write is a request dispatched in-process to the API router as the
//! signed-in caller (`api`), so the API's roles, tenant isolation, validation and automation
//! apply unchanged, and its error messages are shown as they are.

mod activity;
mod api;
mod bindings;
mod board;
mod chart;
mod config_form;
mod dashboard;
pub mod i18n;
mod login;
mod modules;
mod page;
mod record_form;
mod records;
mod replay;
mod runs;
mod secrets;
pub mod session;
mod tasks;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::http::AppState;
use crate::store::Store;
use api::{Api, ApiFailure};
use i18n::Lang;
use page::Page;
use session::{Flash, Session, Sessions};

/// What every console handler shares.
#[derive(Clone)]
pub struct ConsoleState {
    api: Router,
    sessions: Arc<Sessions>,
    /// Only for resolving a session's key hash to its caller, exactly as bearer auth does.
    store: Store,
    /// The largest module the API accepts (to explain an upload too large to forward).
    module_bytes: usize,
}

/// The console's routes (merged into `http::app`). `api` is the API router the console
/// dispatches to.
pub fn router(state: AppState, api: Router) -> Router {
    let upload_limit = state.config.limits.module_bytes + 64 * 1024;
    let cs = ConsoleState {
        api,
        sessions: Arc::new(match &state.shared_db {
            Some(db) => Sessions::shared(state.config.console_session_ttl, db.clone()),
            None => Sessions::new(state.config.console_session_ttl),
        }),
        store: state.store.clone(),
        module_bytes: state.config.limits.module_bytes,
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(dashboard::home))
        .route("/console/board", get(board::first))
        .route("/console/static/console.css", get(page::css))
        .route("/console/static/board.js", get(page::board_js))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/lang", get(login::switch_lang))
        .route("/console/pipelines/{id}", get(board::board))
        .route(
            "/console/records",
            get(records::list).post(record_form::create),
        )
        .route("/console/records/new", get(record_form::new_form))
        .route("/console/records/{id}", get(board::record))
        .route(
            "/console/records/{id}/edit",
            get(record_form::edit_form).post(record_form::update),
        )
        .route("/console/records/{id}/stage", post(board::move_stage))
        .route("/console/records/{id}/comments", post(tasks::comment))
        .route("/console/records/{id}/tasks", post(tasks::add_task))
        .route("/console/tasks", get(tasks::mine))
        .route("/console/tasks/{id}/complete", post(tasks::complete))
        .route("/console/modules", get(modules::list))
        .route("/console/modules/upload", post(modules::upload))
        .route("/console/modules/{name}", get(modules::detail))
        .route("/console/modules/{name}/dry-run", post(modules::dry_run))
        .route("/console/modules/{name}/replay", post(replay::start))
        .route("/console/replays/{id}", get(replay::detail))
        .route(
            "/console/bindings",
            get(bindings::list).post(bindings::create),
        )
        .route(
            "/console/bindings/{id}",
            get(bindings::edit).post(bindings::update),
        )
        .route("/console/bindings/new", get(bindings::new_form))
        .route(
            "/console/bindings/{id}/enabled",
            post(bindings::set_enabled),
        )
        .route("/console/bindings/{id}/switch", post(bindings::switch))
        .route("/console/runs", get(runs::list))
        .route("/console/runs/{id}", get(runs::detail))
        .route("/console/messages", get(runs::messages))
        .route("/console/messages/{id}/retry", post(runs::retry))
        .route("/console/secrets", get(secrets::list).post(secrets::set))
        .route("/console/secrets/{name}/delete", post(secrets::delete))
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit))
        .layer(axum::middleware::map_response(protect))
        .with_state(cs)
}

/// Headers on every console response: no framing (clickjacking), scripts, styles and form
/// targets only from this origin, no referrer to other sites, pages never cached.
async fn protect(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    resp
}

/// The language for a request: the `sc_lang` cookie, else Accept-Language.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    session::cookie(headers, session::LANG_COOKIE)
        .and_then(|c| Lang::from_code(&c))
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

/// A signed-in request: its session, its caller's API handle, and the page context.
pub struct Console {
    pub api: Api,
    pub page: Page,
    session_id: String,
    session: Session,
    sessions: Arc<Sessions>,
}

/// A page that ends a handler early: an error page or a redirect (boxed: responses are large).
pub struct Stop(Box<Response>);

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Stop {
    fn from(r: Response) -> Stop {
        Stop(Box::new(r))
    }
}

type Out = Result<Response, Stop>;

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

fn forbidden(lang: Lang, why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::response::Html(page::plain_error(lang, &i18n::text(lang, why, &[]))),
    )
        .into_response()
}

impl FromRequestParts<ConsoleState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &ConsoleState) -> Result<Self, Response> {
        let lang = lang_of(&parts.headers);
        if parts.method == Method::POST && !session::same_origin(&parts.headers) {
            return Err(forbidden(lang, "error-cross-site"));
        }
        let Some(id) = session::cookie(&parts.headers, session::COOKIE_NAME) else {
            return Err(to_login());
        };
        let Some(session) = st.sessions.get(&id) else {
            return Err(to_login());
        };
        let (caller, key_name) =
            match crate::http::caller_for_key_hash(&st.store, &session.key_hash) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    st.sessions.remove(&id);
                    return Err(to_login());
                }
                Err(e) => {
                    return Err((StatusCode::INTERNAL_SERVER_ERROR, e.message).into_response());
                }
            };
        let path = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/console/".into())
        } else {
            // A page rendered by a POST (a refused form) links back to the page the form
            // was on, never to the POST-only action.
            referer_path(&parts.headers).unwrap_or_else(|| "/console/".into())
        };
        let page = Page {
            lang,
            csrf: session.csrf.clone(),
            role: Some(caller.role),
            tenant: caller.tenant.clone(),
            key_name,
            flash: if parts.method == Method::GET {
                st.sessions.take_flash(&id)
            } else {
                None
            },
            path,
            nav: "",
            title: String::new(),
            refresh: None,
        };
        Ok(Console {
            api: Api::new(st.api.clone(), caller),
            page,
            session_id: id,
            session,
            sessions: st.sessions.clone(),
        })
    }
}

impl Console {
    /// The page context for a page in area `nav` titled by catalogue key `title`.
    pub fn page(&self, nav: &'static str, title: String) -> Page {
        Page {
            nav,
            title,
            ..self.page.clone()
        }
    }

    /// Unwraps an API answer or turns the API's refusal into an error page.
    pub fn ok<T>(&self, r: Result<T, ApiFailure>) -> Result<T, Stop> {
        r.map_err(|f| self.failure(&f).into())
    }

    /// The error page for an API refusal, with the API's status, code and message.
    pub fn failure(&self, f: &ApiFailure) -> Response {
        let page = self.page("", self.page.t("error-title"));
        let status = if f.status.is_client_error() || f.status.is_server_error() {
            f.status
        } else {
            StatusCode::BAD_GATEWAY
        };
        page::render_status(
            status,
            &page::ErrorPage {
                page: &page,
                status: status.as_u16(),
                code: &f.code,
                message: &f.message,
            },
        )
    }

    /// Shows `text` on the next page, then redirects there (post/redirect/get).
    pub fn redirect_with(&self, to: &str, error: bool, text: String) -> Response {
        self.sessions
            .set_flash(&self.session_id, Flash { error, text });
        Redirect::to(to).into_response()
    }

    pub fn check_csrf(&self, token: &str) -> Result<(), Stop> {
        if session::same_token(token, &self.session.csrf) {
            Ok(())
        } else {
            Err(forbidden(self.page.lang, "error-csrf").into())
        }
    }
}

/// A signed-in POST with a urlencoded form whose `csrf` field matches the session's token.
pub struct Posted<T>(pub Console, pub T);

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, st: &ConsoleState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let console = Console::from_request_parts(&mut parts, st).await?;
        let bytes = axum::body::to_bytes(body, 1024 * 1024)
            .await
            .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response())?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())?;
        let token = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        console
            .check_csrf(token)
            .map_err(IntoResponse::into_response)?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the form is incomplete: {e}"),
            )
                .into_response()
        })?;
        Ok(Posted(console, form))
    }
}

/// A typed form out of a POST's fields (for handlers that also read fields by name).
pub fn form_of<T: DeserializeOwned>(fields: &[(String, String)]) -> Result<T, Stop> {
    let text = serde_urlencoded::to_string(fields)
        .map_err(|e| Stop::from((StatusCode::BAD_REQUEST, e.to_string()).into_response()))?;
    serde_urlencoded::from_str(&text).map_err(|e| {
        Stop::from(
            (
                StatusCode::BAD_REQUEST,
                format!("the form is incomplete: {e}"),
            )
                .into_response(),
        )
    })
}

/// The path of a same-origin `Referer` under /console.
fn referer_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let path = rest.strip_prefix(host)?;
    path.starts_with("/console")
        .then(|| safe_back(Some(path), "/console/"))
}

/// Only same-site paths under /console may be redirect targets, and only ones that can be
/// a `Location` header as they are: visible ASCII, no spaces or control characters (a
/// decoded `%0a` or `%00` would otherwise make the redirect itself fail).
pub fn safe_back(back: Option<&str>, default: &str) -> String {
    match back {
        Some(b)
            if b.starts_with("/console")
                && !b.starts_with("//")
                && !b.contains('\\')
                && b.bytes().all(|c| c.is_ascii_graphic()) =>
        {
            b.to_string()
        }
        _ => default.to_string(),
    }
}
