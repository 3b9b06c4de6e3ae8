//! Replay in the console: start one from a module version's page (a binding and a window),
//! follow its progress (the page refreshes itself while it runs, no script needed), read the
//! events where the candidate differs — the effects the enabled version committed next to
//! the ones the candidate would have made, with the record's name and a link — and switch the
//! binding to the candidate from there (a version switch; the binding page then offers the
//! one-click rollback).

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::Path;
use axum::http::Method;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{enc, ApiFailure};
use super::i18n::{self, Lang};
use super::page::{self, Page};
use super::{Console, Out, Posted};
use crate::model::{Binding, Effect, Outcome, Pipeline, Record};

/// Differing events shown on one page (the API keeps them all).
const SHOWN: usize = 100;

/// How far back a replay from the console looks.
pub const WINDOWS: [&str; 6] = [
    "last:50",
    "last:500",
    "last:5000",
    "hours:24",
    "hours:168",
    "hours:720",
];

/// One option of the replay form's window menu.
pub struct WindowChoice {
    pub code: &'static str,
    pub label: String,
    pub selected: bool,
}

/// The window menu, the last 500 runs preselected.
pub fn window_choices(lang: Lang) -> Vec<WindowChoice> {
    WINDOWS
        .into_iter()
        .map(|code| WindowChoice {
            code,
            label: window_label(lang, code),
            selected: code == "last:500",
        })
        .collect()
}

/// A window choice in words.
fn window_label(lang: Lang, code: &str) -> String {
    match code.split_once(':') {
        Some(("last", n)) => i18n::text(
            lang,
            "replay-window-last",
            &[("count", lang.number(n.parse().unwrap_or(0)))],
        ),
        Some(("hours", "24")) => i18n::text(lang, "window-24h", &[]),
        Some(("hours", "168")) => i18n::text(lang, "window-7d", &[]),
        _ => i18n::text(lang, "window-30d", &[]),
    }
}

/// The replay request for a window choice.
fn window_body(binding: &str, window: &str) -> Result<Value, String> {
    match window.split_once(':') {
        Some(("last", n)) => {
            let n: u64 = n.parse().map_err(|_| window.to_string())?;
            Ok(json!({"binding": binding, "last": n}))
        }
        Some(("hours", h)) => {
            let h: i64 = h.parse().map_err(|_| window.to_string())?;
            let since =
                (Utc::now() - Duration::hours(h)).to_rfc3339_opts(SecondsFormat::Secs, true);
            Ok(json!({"binding": binding, "since": since}))
        }
        _ => Err(window.to_string()),
    }
}

#[derive(Deserialize)]
pub struct StartForm {
    version: u32,
    binding: String,
    window: String,
}

/// Starts a replay through the API and follows it on its page; a refusal (no such binding,
/// a window too large, too many replays running) comes back on the module page.
pub async fn start(Path(name): Path<String>, Posted(c, f): Posted<StartForm>) -> Out {
    let body = match window_body(&f.binding, &f.window) {
        Ok(b) => b,
        Err(w) => {
            let failure = ApiFailure {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid".into(),
                message: format!("unknown window {w:?}"),
            };
            return super::modules::with_replay_error(&c, &name, failure).await;
        }
    };
    let path = format!("/v1/modules/{}/versions/{}/replay", enc(&name), f.version);
    match c.api.json(Method::POST, &path, &body).await {
        Ok(v) => {
            let id = v["id"].as_str().unwrap_or_default();
            Ok(axum::response::IntoResponse::into_response(
                axum::response::Redirect::to(&format!("/console/replays/{}", enc(id))),
            ))
        }
        Err(e) => super::modules::with_replay_error(&c, &name, e).await,
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
struct Compared {
    original: u64,
    candidate: u64,
}

#[derive(Deserialize, Default)]
struct Summary {
    replayed: u64,
    same: u64,
    different: u64,
    new_failures: BTreeMap<String, u64>,
    fixed: u64,
    skipped: BTreeMap<String, u64>,
    fuel: Compared,
    duration_us: Compared,
}

#[derive(Deserialize)]
struct SideView {
    version: u32,
    outcome: Outcome,
    effects: Vec<Effect>,
    #[serde(default)]
    discarded: Vec<Effect>,
}

#[derive(Deserialize)]
struct DiffView {
    run: String,
    event_kind: String,
    record: Option<String>,
    binding: String,
    original: SideView,
    candidate: SideView,
}

#[derive(Deserialize)]
struct ReplayView {
    id: String,
    module: String,
    version: u32,
    bindings: Vec<String>,
    status: String,
    total: u64,
    done: u64,
    summary: Summary,
    differences: Vec<DiffView>,
    error: Option<String>,
    created_at: DateTime<Utc>,
}

/// One effect in a column, and whether the other side has it too.
struct EffectLine {
    text: String,
    differs: bool,
}

struct SideRow {
    class: &'static str,
    heading: String,
    /// Marks an effect only this side has: − for the committed side, + for the candidate.
    mark: &'static str,
    outcome: String,
    ok: bool,
    message: Option<String>,
    effects: Vec<EffectLine>,
    discarded: usize,
}

struct DiffRow {
    record: Option<String>,
    record_name: Option<String>,
    event_kind: String,
    run: String,
    pipeline: String,
    /// The committed side, then the candidate's.
    sides: [SideRow; 2],
}

/// A binding the candidate could be switched on.
struct Target {
    binding: Binding,
    pipeline: String,
    /// The switch button's words.
    label: String,
}

#[derive(Template)]
#[template(path = "console/replay.html")]
struct ReplayPage<'a> {
    page: &'a Page,
    r: &'a ReplayView,
    running: bool,
    percent: u64,
    rows: Vec<DiffRow>,
    more: usize,
    targets: Vec<Target>,
    /// "120 of 500 runs".
    progress: String,
    new_failures: String,
    skipped: String,
    fuel: String,
    duration: String,
}

fn seconds(s: u64) -> String {
    match s {
        s if s > 0 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// An effect in words; `names` gives records' names, `subject` is the event's record.
fn describe(
    lang: Lang,
    e: &Effect,
    subject: Option<&str>,
    names: &BTreeMap<String, String>,
) -> String {
    let other = |record: &str| {
        if Some(record) == subject {
            String::new()
        } else {
            format!(
                " ({})",
                names.get(record).map(String::as_str).unwrap_or(record)
            )
        }
    };
    match e {
        Effect::MoveStage { record, from, to } => format!(
            "{}{}",
            i18n::text(
                lang,
                "effect-move",
                &[("from", from.clone()), ("to", to.clone())]
            ),
            other(record)
        ),
        Effect::SetField {
            record,
            field,
            value,
        } => format!(
            "{}{}",
            i18n::text(
                lang,
                "effect-set",
                &[("field", field.clone()), ("value", value.to_string())]
            ),
            other(record)
        ),
        Effect::QueueMessage {
            channel,
            to,
            subject: s,
            ..
        } => i18n::text(
            lang,
            "effect-message",
            &[
                ("channel", channel.as_str().to_string()),
                ("to", to.clone()),
                ("subject", s.clone()),
            ],
        ),
        Effect::Schedule {
            record, seconds: s, ..
        } => format!(
            "{}{}",
            i18n::text(lang, "effect-schedule", &[("after", seconds(*s))]),
            other(record)
        ),
        // Host API 0.2 effects: symbols rather than words, the same in every language.
        Effect::CreateRecord { kind, name, .. } => format!("+ {} {name}", kind.as_str()),
        Effect::CreateTask { record, title, .. } => format!("+ ☐ {title}{}", other(record)),
        Effect::CompleteTask { task, record } => format!("☑ {task}{}", other(record)),
        Effect::Comment { record, body, .. } => format!("💬 {body}{}", other(record)),
    }
}

fn side(
    page: &Page,
    candidate: bool,
    s: &SideView,
    other: &SideView,
    subject: Option<&str>,
    names: &BTreeMap<String, String>,
) -> SideRow {
    let (class, key, mark) = if candidate {
        ("candidate", "replay-candidate", "+")
    } else {
        ("original", "replay-committed", "−")
    };
    SideRow {
        class,
        heading: page.t1(key, "version", s.version),
        mark,
        outcome: s.outcome.name().to_string(),
        ok: s.outcome.is_ok(),
        message: page.outcome_message(&s.outcome),
        effects: s
            .effects
            .iter()
            .map(|e| EffectLine {
                text: describe(page.lang, e, subject, names),
                differs: !other.effects.contains(e),
            })
            .collect(),
        discarded: s.discarded.len(),
    }
}

fn counts(lang: Lang, m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, n)| format!("{k} {}", lang.number(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn compared(lang: Lang, c: Compared, unit: impl Fn(u64) -> String) -> String {
    let change = if c.original == 0 {
        String::new()
    } else {
        let d = c.candidate as f64 / c.original as f64 - 1.0;
        let sign = if d > 0.0 { "+" } else { "" };
        format!(" ({sign}{})", lang.percent(d))
    };
    format!("{} → {}{change}", unit(c.original), unit(c.candidate))
}

#[derive(Deserialize)]
struct Pipelines {
    pipelines: Vec<Pipeline>,
}

/// `/console/replays/{id}`: progress while it runs, then the summary and the differences.
pub async fn detail(c: Console, Path(id): Path<String>) -> Out {
    let r: ReplayView = c.ok(c.api.get(&format!("/v1/replays/{}", enc(&id))).await)?;
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let pipeline_name = |id: &str| {
        pipelines
            .pipelines
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let lang = c.page.lang;
    let shown = &r.differences[..r.differences.len().min(SHOWN)];
    let ids: BTreeSet<String> = shown
        .iter()
        .flat_map(|d| {
            d.record.iter().cloned().chain(
                d.original
                    .effects
                    .iter()
                    .chain(&d.candidate.effects)
                    .filter_map(|e| match e {
                        Effect::QueueMessage { .. } | Effect::CreateRecord { .. } => None,
                        other => other.record().map(str::to_string),
                    }),
            )
        })
        .collect();
    let api = &c.api;
    let found = join_all(ids.iter().map(|rid| async move {
        let rec: Result<Record, _> = api.get(&format!("/v1/records/{}", enc(rid))).await;
        rec.ok().map(|r| (r.id, r.name))
    }))
    .await;
    let names: BTreeMap<String, String> = found.into_iter().flatten().collect();
    let bindings = join_all(r.bindings.iter().map(|b| async move {
        let got: Result<Binding, _> = api.get(&format!("/v1/bindings/{}", enc(b))).await;
        got.ok()
    }))
    .await;
    let bindings: Vec<Binding> = bindings.into_iter().flatten().collect();
    let page = c.page(
        "modules",
        i18n::text(
            lang,
            "replay-title",
            &[
                ("module", r.module.clone()),
                ("version", r.version.to_string()),
            ],
        ),
    );
    let rows = shown
        .iter()
        .map(|d| DiffRow {
            record: d.record.clone(),
            record_name: d.record.as_ref().and_then(|id| names.get(id).cloned()),
            event_kind: d.event_kind.clone(),
            run: d.run.clone(),
            pipeline: bindings
                .iter()
                .find(|b| b.id == d.binding)
                .map(|b| pipeline_name(&b.pipeline))
                .unwrap_or_else(|| d.binding.clone()),
            sides: [
                side(
                    &page,
                    false,
                    &d.original,
                    &d.candidate,
                    d.record.as_deref(),
                    &names,
                ),
                side(
                    &page,
                    true,
                    &d.candidate,
                    &d.original,
                    d.record.as_deref(),
                    &names,
                ),
            ],
        })
        .collect();
    let running = r.status == "running";
    let mut page = page;
    if running {
        page.refresh = Some(2);
    }
    let targets = bindings
        .iter()
        .map(|b| Target {
            pipeline: pipeline_name(&b.pipeline),
            label: i18n::text(
                lang,
                "replay-enable",
                &[
                    ("version", r.version.to_string()),
                    ("pipeline", pipeline_name(&b.pipeline)),
                ],
            ),
            binding: b.clone(),
        })
        .collect();
    let view = ReplayPage {
        page: &page,
        running,
        percent: (r.done * 100).checked_div(r.total).unwrap_or(100),
        more: r.differences.len().saturating_sub(SHOWN),
        rows,
        targets,
        progress: i18n::text(
            lang,
            "replay-progress",
            &[
                ("done", lang.number(r.done)),
                ("total", lang.number(r.total)),
            ],
        ),
        new_failures: counts(lang, &r.summary.new_failures),
        skipped: counts(lang, &r.summary.skipped),
        fuel: compared(lang, r.summary.fuel, |v| lang.number(v)),
        duration: compared(lang, r.summary.duration_us, |v| {
            super::chart::Unit::Millis.format(lang, v as f64 / 1000.0)
        }),
        r: &r,
    };
    Ok(page::render(&view))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn effects_read_as_sentences_naming_other_records() {
        let names = BTreeMap::from([("rec_2".to_string(), "Acme".to_string())]);
        let e = Effect::SetField {
            record: "rec_2".into(),
            field: "score".into(),
            value: json!(80),
        };
        assert_eq!(
            describe(Lang::En, &e, Some("rec_1"), &names),
            "Set score = 80 (Acme)"
        );
        let e = Effect::Schedule {
            id: "t".into(),
            record: "rec_1".into(),
            seconds: 172_800,
            payload: json!({}),
        };
        assert_eq!(
            describe(Lang::En, &e, Some("rec_1"), &names),
            "Follow-up in 2 d"
        );
        assert_eq!(seconds(90), "90 s");
        assert!(window_body("b", "hours:24").unwrap()["since"].is_string());
        assert_eq!(window_body("b", "last:50").unwrap()["last"], 50);
        assert!(window_body("b", "forever").is_err());
    }
}
