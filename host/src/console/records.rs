//! Records as a searchable list: name or email (the API's `q=`), kind, pipeline, stage and
//! owner, a page at a time with the API's cursor. Creating and editing: `record_form`.

use askama::Template;
use axum::extract::Query;
use serde::Deserialize;

use super::api::enc;
use super::page::{self, Page};
use super::{Console, Out};
use crate::model::{Pipeline, Record};

#[derive(Deserialize)]
pub(super) struct RecordList {
    pub records: Vec<Record>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Pipelines {
    pub pipelines: Vec<Pipeline>,
}

/// Rows on one list page.
const PAGE: usize = 100;

#[derive(Deserialize, Default, Clone)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    after: String,
}

impl Search {
    /// The API query (without the cursor) for these filters.
    fn query(&self) -> String {
        let mut q = String::new();
        for (k, v) in [
            ("q", &self.q),
            ("kind", &self.kind),
            ("pipeline", &self.pipeline),
            ("stage", &self.stage),
            ("owner", &self.owner),
        ] {
            if !v.trim().is_empty() {
                q.push_str(&format!("&{k}={}", enc(v.trim())));
            }
        }
        q
    }
}

struct Row {
    record: Record,
    place: String,
}

#[derive(Template)]
#[template(path = "console/records.html")]
struct RecordsPage<'a> {
    page: &'a Page,
    search: Search,
    pipelines: Vec<Pipeline>,
    kinds: [&'static str; 4],
    rows: Vec<Row>,
    next: Option<String>,
}

fn place(pipelines: &[Pipeline], r: &Record) -> String {
    let Some(p) = r
        .pipeline
        .as_ref()
        .and_then(|id| pipelines.iter().find(|p| &p.id == id))
    else {
        return String::new();
    };
    let stage = r
        .stage
        .as_ref()
        .map(|s| {
            p.stages
                .iter()
                .find(|st| &st.id == s)
                .map(|st| st.name.clone())
                .unwrap_or_else(|| s.clone())
        })
        .unwrap_or_default();
    format!("{} · {stage}", p.name)
}

/// `/console/records`: search and filters, through the API.
pub async fn list(c: Console, Query(s): Query<Search>) -> Out {
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let mut path = format!("/v1/records?limit={PAGE}{}", s.query());
    if !s.after.is_empty() {
        path.push_str(&format!("&after={}", enc(&s.after)));
    }
    let list: RecordList = c.ok(c.api.get(&path).await)?;
    let page = c.page("records", c.page.t("records-title"));
    let rows = list
        .records
        .into_iter()
        .map(|r| Row {
            place: place(&pipelines.pipelines, &r),
            record: r,
        })
        .collect();
    let next = list
        .next
        .map(|n| format!("/console/records?after={}{}", enc(&n), s.query()));
    Ok(page::render(&RecordsPage {
        page: &page,
        search: s,
        pipelines: pipelines.pipelines,
        kinds: ["lead", "contact", "company", "deal"],
        rows,
        next,
    }))
}
