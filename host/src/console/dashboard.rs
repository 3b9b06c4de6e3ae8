//! The dashboard, the console's home page for developers and admins: every enabled binding
//! with its runs in the last 24 hours and 7 days, error rate, p50/p95 duration and a
//! sparkline of runs per hour, bindings with failures first — all from the stats API.

use askama::Template;
use axum::response::{IntoResponse, Redirect};
use futures_util::future::join_all;
use serde::Deserialize;

use super::activity::{fetch, ms};
use super::api::enc;
use super::chart::{self, Unit};
use super::i18n;
use super::page::{self, Page};
use super::{Console, Out};
use crate::model::{Binding, Pipeline};

/// One enabled binding on the dashboard.
struct Row {
    binding: Binding,
    pipeline: String,
    runs_day: u64,
    runs_week: u64,
    failed_day: u64,
    failed_week: u64,
    rate: String,
    p50: String,
    p95: String,
    spark: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage<'a> {
    page: &'a Page,
    rows: Vec<Row>,
    disabled: u64,
    runs_day: u64,
    failing: u64,
}

impl DashboardPage<'_> {
    fn mode(&self, b: &Binding) -> String {
        self.page.mode(b.mode)
    }
}

#[derive(Deserialize)]
struct Bindings {
    bindings: Vec<Binding>,
}

#[derive(Deserialize)]
struct Pipelines {
    pipelines: Vec<Pipeline>,
}

/// `/console/`: the dashboard for developers and admins; agents, who see no automation,
/// go to the board.
pub async fn home(c: Console) -> Out {
    if !c.page.can_develop() {
        return Ok(Redirect::to("/console/board").into_response());
    }
    let all: Bindings = c.ok(c.api.get("/v1/bindings").await)?;
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let (enabled, disabled): (Vec<Binding>, Vec<Binding>) =
        all.bindings.into_iter().partition(|b| b.enabled);
    let lang = c.page.lang;
    let fetches = enabled.iter().map(|b| {
        let path = format!("/v1/bindings/{}/stats", enc(&b.id));
        let api = &c.api;
        async move {
            let day = fetch(api, &path, 24).await;
            let week = fetch(api, &path, 24 * 7).await;
            (day, week)
        }
    });
    let stats = join_all(fetches).await;
    let mut rows = Vec::new();
    for (b, (day, week)) in enabled.into_iter().zip(stats) {
        let (day, week) = (c.ok(day)?, c.ok(week)?);
        let hours = day.hours();
        let mut ok = vec![0u64; hours.count];
        let mut failed = vec![0u64; hours.count];
        for h in &day.series {
            if let Some(i) = hours.index(h.hour) {
                let good = h.outcomes.get("ok").copied().unwrap_or(0);
                ok[i] = good;
                failed[i] = h.runs - good;
            }
        }
        let label = i18n::text(
            lang,
            "spark-label",
            &[
                ("runs", lang.number(day.runs)),
                ("failed", lang.number(day.failed())),
            ],
        );
        rows.push(Row {
            pipeline: pipelines
                .pipelines
                .iter()
                .find(|p| p.id == b.pipeline)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| b.pipeline.clone()),
            runs_day: day.runs,
            runs_week: week.runs,
            failed_day: day.failed(),
            failed_week: week.failed(),
            rate: if day.runs == 0 {
                "—".into()
            } else {
                lang.percent(day.failed() as f64 / day.runs as f64)
            },
            p50: if day.runs == 0 {
                "—".into()
            } else {
                Unit::Millis.format(lang, ms(day.duration_us.p50))
            },
            p95: if day.runs == 0 {
                "—".into()
            } else {
                Unit::Millis.format(lang, ms(day.duration_us.p95))
            },
            spark: chart::sparkline(&label, &hours, &ok, &failed),
            binding: b,
        });
    }
    // Failing bindings first (most failures in the last day, then the week), then by module.
    rows.sort_by(|a, b| {
        (b.failed_day, b.failed_week)
            .cmp(&(a.failed_day, a.failed_week))
            .then_with(|| a.binding.module.cmp(&b.binding.module))
            .then_with(|| a.pipeline.cmp(&b.pipeline))
    });
    let page = c.page("dashboard", c.page.t("dashboard-title"));
    let view = DashboardPage {
        page: &page,
        runs_day: rows.iter().map(|r| r.runs_day).sum(),
        failing: rows.iter().filter(|r| r.failed_day > 0).count() as u64,
        rows,
        disabled: disabled.len() as u64,
    };
    Ok(page::render(&view))
}
