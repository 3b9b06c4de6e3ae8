//! Runs (filtered by module, binding, outcome, record) with a page per run, and the outbox
//! (state, attempts, retrying a dead letter).

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;

use super::api::enc;
use super::board::{Messages, Runs};
use super::i18n;
use super::modules::Report;
use super::page::{self, Page};
use super::{Console, Out, Posted};
use crate::delivery::{MessageView, WaitReason};
use crate::model::{MessageStatus, RunRecord};

#[derive(Deserialize, Default)]
pub struct RunFilter {
    #[serde(default)]
    module: String,
    #[serde(default)]
    binding: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    record: String,
    /// The API's cursor: older runs than this one.
    #[serde(default)]
    before: String,
}

/// Outcome names for the filter.
const OUTCOMES: [&str; 19] = crate::model::Outcome::NAMES;

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage<'a> {
    page: &'a Page,
    runs: Vec<RunRecord>,
    filter: RunFilter,
    outcomes: &'a [&'a str],
    /// The link to the next (older) page, when the API has one.
    older: Option<String>,
}

pub async fn list(c: Console, Query(f): Query<RunFilter>) -> Out {
    let mut filters = String::new();
    for (k, v) in [
        ("module", &f.module),
        ("binding", &f.binding),
        ("outcome", &f.outcome),
        ("record", &f.record),
    ] {
        if !v.trim().is_empty() {
            filters.push_str(&format!("&{k}={}", enc(v.trim())));
        }
    }
    let mut query = format!("limit=200{filters}");
    if !f.before.trim().is_empty() {
        query.push_str(&format!("&before={}", enc(f.before.trim())));
    }
    let runs: Runs = c.ok(c.api.get(&format!("/v1/runs?{query}")).await)?;
    let older = runs
        .next
        .map(|n| format!("/console/runs?before={}{filters}", enc(&n)));
    let page = c.page("runs", c.page.t("runs-title"));
    Ok(page::render(&RunsPage {
        page: &page,
        runs: runs.runs,
        filter: f,
        outcomes: &OUTCOMES,
        older,
    }))
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage<'a> {
    page: &'a Page,
    run: &'a RunRecord,
    report: Report,
    discarded: String,
    /// The HTTP calls the run made, as its record keeps them.
    http: Vec<HttpRow>,
}

/// One recorded HTTP call as the run page shows it. The URL is the module's own: a secret
/// appears only as its placeholder.
struct HttpRow {
    method: String,
    url: String,
    status: Option<u16>,
    error: Option<String>,
    started_ms: u64,
    duration_ms: u64,
    /// The start of the response body as recorded.
    excerpt: String,
    /// The body was cut to fit the run record.
    cut: bool,
    replayed: bool,
}

/// Characters of a response body the run page shows.
const EXCERPT: usize = 300;

fn http_rows(run: &RunRecord) -> Vec<HttpRow> {
    run.http
        .iter()
        .map(|x| {
            let mut excerpt: String = x.response_body.chars().take(EXCERPT).collect();
            if x.response_body.chars().nth(EXCERPT).is_some() {
                excerpt.push('…');
            }
            HttpRow {
                method: x.method.clone(),
                url: x.url.clone(),
                status: x.status,
                error: x.error.clone(),
                started_ms: x.started_ms,
                duration_ms: x.duration_ms,
                excerpt,
                cut: x.response_body_cut,
                replayed: x.replayed,
            }
        })
        .collect()
}

pub async fn detail(c: Console, Path(id): Path<String>) -> Out {
    let run: RunRecord = c.ok(c.api.get(&format!("/v1/runs/{}", enc(&id))).await)?;
    let page = c.page("runs", c.page.t1("run-title", "module", &run.module));
    let report = Report {
        outcome: run.outcome.clone(),
        effects: run.effects.clone(),
        logs: run.logs.clone(),
        host_calls: run.host_calls.clone(),
        fuel_used: run.fuel_used,
        peak_memory: run.peak_memory,
        duration_us: run.duration_us,
    };
    Ok(page::render(&RunPage {
        page: &page,
        run: &run,
        report,
        discarded: page::json(&run.discarded),
        http: http_rows(&run),
    }))
}

#[derive(Deserialize, Default)]
pub struct MessageFilter {
    #[serde(default)]
    status: String,
    /// The API's cursor: messages after this one.
    #[serde(default)]
    after: String,
}

#[derive(Template)]
#[template(path = "console/messages.html")]
struct MessagesPage<'a> {
    page: &'a Page,
    messages: Vec<MessageView>,
    status: String,
    statuses: [MessageStatus; 4],
    /// The link to the next page, when the API has one.
    more: Option<String>,
}

impl MessagesPage<'_> {
    fn is_dead(&self, m: &MessageView) -> bool {
        m.status == MessageStatus::Dead
    }

    /// Why a queued message waits, in the page's language.
    fn waiting(&self, m: &MessageView) -> Option<String> {
        Some(match m.waiting.as_ref()?.reason {
            WaitReason::ChannelNotConfigured => {
                self.page
                    .t1("waiting-not-configured", "channel", m.channel.as_str())
            }
            WaitReason::RetryScheduled => self.page.t("waiting-retry"),
            WaitReason::Due => self.page.t("waiting-due"),
        })
    }

    /// A next-attempt time means something unless the channel waits for its settings.
    fn shows_next(&self, m: &MessageView) -> bool {
        m.waiting
            .as_ref()
            .is_none_or(|w| w.reason != WaitReason::ChannelNotConfigured)
    }

    fn code(&self, s: &MessageStatus) -> String {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

pub async fn messages(c: Console, Query(f): Query<MessageFilter>) -> Out {
    let mut filters = String::new();
    if !f.status.is_empty() {
        filters.push_str(&format!("&status={}", enc(&f.status)));
    }
    let mut path = format!("/v1/messages?limit=500{filters}");
    if !f.after.is_empty() {
        path.push_str(&format!("&after={}", enc(&f.after)));
    }
    let list: Messages = c.ok(c.api.get(&path).await)?;
    let more = list
        .next
        .map(|n| format!("/console/messages?after={}{filters}", enc(&n)));
    let page = c.page("messages", c.page.t("messages-title"));
    Ok(page::render(&MessagesPage {
        page: &page,
        messages: list.messages,
        status: f.status,
        statuses: [
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Dead,
        ],
        more,
    }))
}

#[derive(Deserialize)]
pub struct RetryForm {}

pub async fn retry(Path(id): Path<String>, Posted(c, _): Posted<RetryForm>) -> Response {
    match c
        .api
        .json(
            Method::POST,
            &format!("/v1/messages/{}/retry", enc(&id)),
            &serde_json::Value::Null,
        )
        .await
    {
        Ok(_) => {
            let text = i18n::text(c.page.lang, "flash-retried", &[]);
            c.redirect_with("/console/messages", false, text)
        }
        Err(e) => c.failure(&e),
    }
}
