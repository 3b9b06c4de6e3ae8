//! Pipelines as a board (a column per stage, a card per record with its amount, owner and a
//! chosen custom field, a move form on each card; search and owner filters) and the record
//! page (fields, stage history, the runs and messages that concern it).

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::api::enc;
use super::page::{self, Page};
use super::{Console, Out, Posted};
use crate::delivery::MessageView;
use crate::model::record::is_custom_field_name;
use crate::model::{Pipeline, Record, RunRecord};

#[derive(Deserialize)]
struct Pipelines {
    pipelines: Vec<Pipeline>,
}

#[derive(Deserialize)]
struct Records {
    records: Vec<Record>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Runs {
    pub runs: Vec<RunRecord>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Messages {
    pub messages: Vec<MessageView>,
    #[serde(default)]
    pub next: Option<String>,
}

/// The most cards a board shows (the API's largest page).
const BOARD_LIMIT: usize = 500;

struct Column<'a> {
    id: &'a str,
    name: &'a str,
    semantic: String,
    cards: Vec<&'a Record>,
}

#[derive(Template)]
#[template(path = "console/board.html")]
struct BoardPage<'a> {
    page: &'a Page,
    pipelines: &'a [Pipeline],
    pipeline: Option<&'a Pipeline>,
    columns: Vec<Column<'a>>,
    unplaced: Vec<&'a Record>,
    /// More records than one board shows.
    truncated: bool,
    filter: BoardQuery,
    /// The custom field shown on each card.
    card_field: Option<String>,
    /// Custom fields the board's records have (the card field's choices).
    custom_keys: Vec<String>,
}

impl BoardPage<'_> {
    /// The card field's value on a record, for display.
    fn card_value(&self, r: &Record) -> Option<String> {
        let v = r.custom.get(self.card_field.as_deref()?)?;
        Some(match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(u) => self.page.num(u),
                None => n.to_string(),
            },
            other => other.to_string(),
        })
    }

    fn is_card_field(&self, k: &str) -> bool {
        self.card_field.as_deref() == Some(k)
    }
}

/// `/console/board`: the first pipeline's board (or a page saying there are none).
pub async fn first(c: Console) -> Out {
    let list: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    if let Some(p) = list.pipelines.first() {
        return Ok(Redirect::to(&format!("/console/pipelines/{}", enc(&p.id))).into_response());
    }
    let page = c.page("board", c.page.t("board-title"));
    Ok(page::render(&BoardPage {
        page: &page,
        pipelines: &[],
        pipeline: None,
        columns: Vec::new(),
        unplaced: Vec::new(),
        truncated: false,
        filter: BoardQuery::default(),
        card_field: None,
        custom_keys: Vec::new(),
    }))
}

/// The board's filters, and the custom field its cards show.
#[derive(Deserialize, Default)]
pub struct BoardQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    owner: String,
    /// A custom field name, or `-` for none; remembered in a cookie.
    field: Option<String>,
}

/// The cookie remembering which custom field board cards show.
const CARD_FIELD_COOKIE: &str = "sc_card_field";

pub async fn board(
    c: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(f): Query<BoardQuery>,
) -> Out {
    let list: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let pipeline: Pipeline = c.ok(c.api.get(&format!("/v1/pipelines/{}", enc(&id))).await)?;
    let mut path = format!("/v1/records?pipeline={}&limit={BOARD_LIMIT}", enc(&id));
    for (k, v) in [("q", &f.q), ("owner", &f.owner)] {
        if !v.trim().is_empty() {
            path.push_str(&format!("&{k}={}", enc(v.trim())));
        }
    }
    let records: Records = c.ok(c.api.get(&path).await)?;
    // The field chosen now (and remembered), else the one remembered; `-` shows none.
    let chosen = f
        .field
        .clone()
        .filter(|v| v == "-" || is_custom_field_name(v));
    let card_field = chosen
        .clone()
        .or_else(|| super::session::cookie(&headers, CARD_FIELD_COOKIE))
        .filter(|v| v != "-" && is_custom_field_name(v));
    let mut custom_keys: Vec<String> = records
        .records
        .iter()
        .flat_map(|r| r.custom.keys().cloned())
        .collect();
    if let Some(k) = &card_field {
        custom_keys.push(k.clone());
    }
    custom_keys.sort();
    custom_keys.dedup();
    let mut columns: Vec<Column> = pipeline
        .stages
        .iter()
        .map(|s| Column {
            id: &s.id,
            name: &s.name,
            semantic: format!("{:?}", s.semantic).to_lowercase(),
            cards: Vec::new(),
        })
        .collect();
    let mut unplaced = Vec::new();
    for r in &records.records {
        match columns
            .iter_mut()
            .find(|col| Some(col.id) == r.stage.as_deref())
        {
            Some(col) => col.cards.push(r),
            None => unplaced.push(r),
        }
    }
    let page = c.page("board", c.page.t1("board-of", "pipeline", &pipeline.name));
    let mut resp = page::render(&BoardPage {
        page: &page,
        pipelines: &list.pipelines,
        pipeline: Some(&pipeline),
        columns,
        unplaced,
        truncated: records.next.is_some(),
        filter: f,
        card_field,
        custom_keys,
    });
    if let Some(v) = chosen {
        let cookie = super::session::set_cookie(
            CARD_FIELD_COOKIE,
            &v,
            std::time::Duration::from_secs(365 * 24 * 3600),
        );
        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
            resp.headers_mut()
                .append(axum::http::header::SET_COOKIE, value);
        }
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct MoveForm {
    stage: String,
    version: Option<u64>,
    back: Option<String>,
}

/// Moves a record through the API's stage move (so inline automation runs, and a rejection
/// comes back with the module's message, shown on the page it was moved from).
pub async fn move_stage(Path(id): Path<String>, Posted(c, f): Posted<MoveForm>) -> Response {
    let back = super::safe_back(f.back.as_deref(), &format!("/console/records/{}", enc(&id)));
    let body = match f.version {
        Some(v) => json!({"stage": f.stage, "version": v}),
        None => json!({"stage": f.stage}),
    };
    match c
        .api
        .json(
            Method::POST,
            &format!("/v1/records/{}/stage", enc(&id)),
            &body,
        )
        .await
    {
        Ok(v) => {
            let name = v["name"].as_str().unwrap_or(&id).to_string();
            let stage = v["stage"].as_str().unwrap_or(&f.stage).to_string();
            let text = crate::console::i18n::text(
                c.page.lang,
                "flash-moved",
                &[("name", name), ("stage", stage)],
            );
            c.redirect_with(&back, false, text)
        }
        Err(e) => {
            let text = crate::console::i18n::text(
                c.page.lang,
                "flash-move-refused",
                &[("message", e.message.clone())],
            );
            c.redirect_with(&back, true, text)
        }
    }
}

#[derive(Template)]
#[template(path = "console/record.html")]
struct RecordPage<'a> {
    page: &'a Page,
    record: &'a Record,
    pipeline: Option<&'a Pipeline>,
    custom: String,
    timeline: super::tasks::Timeline,
    /// Whether this is a later page of the timeline (a link back to the first).
    later_page: bool,
    runs: Option<Vec<RunRecord>>,
    messages: Option<Vec<MessageView>>,
}

impl RecordPage<'_> {
    fn stage_name(&self, id: &str) -> String {
        self.pipeline
            .and_then(|p| p.stages.iter().find(|s| s.id == id))
            .map(|s| s.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

/// The record page's query: which page of its timeline.
#[derive(serde::Deserialize)]
pub struct RecordQuery {
    pub timeline: Option<String>,
}

pub async fn record(
    c: Console,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<RecordQuery>,
) -> Out {
    let record: Record = c.ok(c.api.get(&format!("/v1/records/{}", enc(&id))).await)?;
    let pipeline: Option<Pipeline> = match &record.pipeline {
        Some(p) => Some(c.ok(c.api.get(&format!("/v1/pipelines/{}", enc(p))).await)?),
        None => None,
    };
    let (runs, messages) = if c.page.can_develop() {
        let runs: Runs = c.ok(c
            .api
            .get(&format!("/v1/runs?record={}&limit=200", enc(&id)))
            .await)?;
        let msgs: Messages = c.ok(c
            .api
            .get(&format!("/v1/messages?record={}&limit=500", enc(&id)))
            .await)?;
        (Some(runs.runs), Some(msgs.messages))
    } else {
        (None, None)
    };
    let page = c.page("board", record.name.clone());
    let stage_name = |s: &str| {
        pipeline
            .as_ref()
            .and_then(|p| p.stages.iter().find(|st| st.id == s))
            .map(|st| st.name.clone())
            .unwrap_or_else(|| s.to_string())
    };
    let timeline =
        super::tasks::timeline(&c, &page, &id, q.timeline.as_deref(), &stage_name).await?;
    let view = RecordPage {
        page: &page,
        record: &record,
        pipeline: pipeline.as_ref(),
        custom: page::json(&record.custom),
        timeline,
        later_page: q.timeline.is_some(),
        runs,
        messages,
    };
    Ok(page::render(&view))
}
