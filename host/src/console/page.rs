//! What every console page shares: the page context (language, CSRF token, role, tenant,
//! flash, the language switch), rendering, the error page and the embedded stylesheet.

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::api::enc;
use super::i18n::{self, Lang};
use super::session::Flash;
use crate::model::{MessageStatus, Mode, Outcome, Role};

/// A value a template hands over through any number of references (askama borrows
/// arguments, and loop variables are references already).
pub trait Val<T> {
    fn val(&self) -> T;
}

macro_rules! plain_val {
    ($($t:ty),*) => {$(
        impl Val<$t> for $t {
            fn val(&self) -> $t {
                *self
            }
        }
    )*};
}
plain_val!(u64, f64, DateTime<Utc>, MessageStatus, Mode);

impl<T, X: Val<T> + ?Sized> Val<T> for &X {
    fn val(&self) -> T {
        (**self).val()
    }
}

/// The context every page template gets as `page`.
#[derive(Clone)]
pub struct Page {
    pub lang: Lang,
    pub title: String,
    pub csrf: String,
    /// None on the sign-in page.
    pub role: Option<Role>,
    pub tenant: String,
    pub key_name: String,
    pub flash: Option<Flash>,
    /// This page's path and query (the language switch comes back here).
    pub path: String,
    /// The navigation area this page belongs to.
    pub nav: &'static str,
    /// Reload the page after this many seconds (a replay in progress; no script needed).
    pub refresh: Option<u32>,
}

/// One entry of the language switch.
pub struct LangLink {
    pub code: &'static str,
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

impl Page {
    /// The sign-in page's context (no session yet).
    pub fn anonymous(lang: Lang, path: &str, title: String) -> Page {
        Page {
            lang,
            title,
            csrf: String::new(),
            role: None,
            tenant: String::new(),
            key_name: String::new(),
            flash: None,
            path: path.to_string(),
            nav: "",
            refresh: None,
        }
    }

    pub fn t(&self, key: &str) -> String {
        i18n::text(self.lang, key, &[])
    }

    /// A message with one argument.
    pub fn t1(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        i18n::text(self.lang, key, &[(name, value.to_string())])
    }

    pub fn num(&self, n: impl Val<u64>) -> String {
        self.lang.number(n.val())
    }

    pub fn amount(&self, v: impl Val<f64>) -> String {
        self.lang.amount(v.val())
    }

    pub fn date(&self, t: impl Val<DateTime<Utc>>) -> String {
        self.lang.datetime(&t.val())
    }

    /// Microseconds as milliseconds with the locale's separators.
    pub fn ms(&self, us: impl Val<u64>) -> String {
        let us = us.val();
        let whole = self.lang.number(us / 1000);
        let sep = if self.lang == Lang::En { "." } else { "," };
        format!("{whole}{sep}{:03} ms", us % 1000)
    }

    /// A binding mode in words.
    pub fn mode(&self, m: impl Val<Mode>) -> String {
        match m.val() {
            Mode::Inline => self.t("mode-inline"),
            Mode::Background => self.t("mode-background"),
        }
    }

    /// A record kind (`lead`, `contact`, `company`, `deal`) in words.
    pub fn kind_name(&self, kind: &str) -> String {
        self.t(&format!("kind-{kind}"))
    }

    /// A message state in words.
    pub fn status(&self, s: impl Val<MessageStatus>) -> String {
        let key = match s.val() {
            MessageStatus::Queued => "status-queued",
            MessageStatus::Sending => "status-sending",
            MessageStatus::Sent => "status-sent",
            MessageStatus::Dead => "status-dead",
        };
        self.t(key)
    }

    /// Pretty JSON for display.
    pub fn json<T: serde::Serialize>(&self, v: &T) -> String {
        json(v)
    }

    /// The message an outcome carries, if any.
    pub fn outcome_message(&self, o: &Outcome) -> Option<String> {
        match o {
            Outcome::Exit { code } => Some(code.to_string()),
            Outcome::CascadeLimit { depth } => Some(depth.to_string()),
            other => other.message().map(str::to_string),
        }
    }

    pub fn signed_in(&self) -> bool {
        self.role.is_some()
    }

    /// Developers and admins: modules, bindings (read), runs, messages.
    pub fn can_develop(&self) -> bool {
        self.role.is_some_and(|r| r >= Role::Developer)
    }

    pub fn can_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// Agents and admins change records (the API's rule).
    pub fn can_move(&self) -> bool {
        matches!(self.role, Some(Role::Agent | Role::Admin))
    }

    pub fn role_name(&self) -> String {
        match self.role {
            Some(r) => self.t(&format!("role-{}", r.as_str())),
            None => String::new(),
        }
    }

    pub fn langs(&self) -> Vec<LangLink> {
        i18n::ALL
            .into_iter()
            .map(|l| LangLink {
                code: l.code(),
                name: l.native_name(),
                href: format!("/console/lang?lang={}&back={}", l.code(), enc(&self.path)),
                current: l == self.lang,
            })
            .collect()
    }

    pub fn is_nav(&self, area: &str) -> bool {
        self.nav == area
    }
}

/// Pretty JSON for display.
pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Renders a template as an HTML response with `status`.
pub fn render_status(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("page failed to render: {e}"),
            )
                .into_response()
        }
    }
}

pub fn render(t: &impl Template) -> Response {
    render_status(StatusCode::OK, t)
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage<'a> {
    pub page: &'a Page,
    pub status: u16,
    pub code: &'a str,
    pub message: &'a str,
}

/// A bare error page for requests refused before a session is known (cross-site, bad token).
pub fn plain_error(lang: Lang, message: &str) -> String {
    let page = Page::anonymous(lang, "/console/", i18n::text(lang, "error-title", &[]));
    ErrorPage {
        page: &page,
        status: 403,
        code: "forbidden",
        message,
    }
    .render()
    .unwrap_or_else(|_| message.to_string())
}

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../templates/console/console.css"),
    )
        .into_response()
}

/// The board's optional drag-and-drop (the board works without it).
pub async fn board_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../templates/console/board.js"),
    )
        .into_response()
}
