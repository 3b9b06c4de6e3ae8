//! How automation is doing, from the stats API (rollups, never the run history): fetching a
//! module's or binding's stats over a window, and the charts and headline numbers of the
//! module and binding pages (the dashboard builds on the same fetch).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;

use super::api::{enc, Api, ApiFailure};
use super::chart::{self, Hours, Series, Unit};
use super::i18n::{self, Lang};
use super::page::Page;

/// Percentiles as the stats API reports them.
#[derive(Deserialize, Clone, Copy, Default)]
pub struct Dist {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

/// The stats API's answer (`GET /v1/{modules|bindings}/…/stats`).
#[derive(Deserialize)]
pub struct StatsView {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub runs: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub duration_us: Dist,
    pub fuel: Dist,
    pub fuel_total: u64,
    pub messages_queued: u64,
    #[serde(default)]
    pub messages_sent: u64,
    #[serde(default)]
    pub messages_dead: u64,
    pub series: Vec<HourView>,
}

#[derive(Deserialize)]
pub struct HourView {
    pub hour: DateTime<Utc>,
    pub runs: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub duration_us: Dist,
    #[serde(default)]
    pub fuel: Dist,
    pub messages_queued: u64,
    #[serde(default)]
    pub messages_sent: u64,
    #[serde(default)]
    pub messages_dead: u64,
}

impl StatsView {
    pub fn failed(&self) -> u64 {
        self.runs - self.outcomes.get("ok").copied().unwrap_or(0)
    }

    pub fn hours(&self) -> Hours {
        Hours::new(self.since, self.until)
    }
}

/// The stats of `path` (a stats route) over the last `hours` hours.
pub async fn fetch(api: &Api, path: &str, hours: i64) -> Result<StatsView, ApiFailure> {
    let since = (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true);
    api.get(&format!("{path}?since={}", enc(&since))).await
}

/// The windows a chart page offers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Day,
    Week,
    Month,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Day, Window::Week, Window::Month];

    pub fn parse(s: Option<&str>) -> Window {
        match s {
            Some("24h") => Window::Day,
            Some("30d") => Window::Month,
            _ => Window::Week,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    pub fn hours(self) -> i64 {
        match self {
            Window::Day => 24,
            Window::Week => 24 * 7,
            Window::Month => 24 * 30,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Window::Day => "window-24h",
            Window::Week => "window-7d",
            Window::Month => "window-30d",
        }
    }
}

/// A link of the window switch.
pub struct WindowLink {
    pub label: String,
    pub href: String,
    pub current: bool,
}

/// A chart, its legend and the data behind it (the text alternative as a table).
pub struct ChartView {
    pub id: String,
    pub title: String,
    pub svg: String,
    pub legend: Vec<(String, String)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The activity section of a module or binding page.
pub struct Activity {
    pub windows: Vec<WindowLink>,
    pub window_label: String,
    pub headline: Vec<(String, String)>,
    pub charts: Vec<ChartView>,
}

/// The CSS class of an outcome's colour.
fn outcome_class(name: &str) -> String {
    format!("o-{}", name.replace('_', "-"))
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Outcomes in chart order: `ok` at the bottom, the rest by name.
fn outcome_order(s: &StatsView) -> Vec<String> {
    let mut names: Vec<String> = s.outcomes.keys().cloned().collect();
    names.sort_by_key(|n| (n != "ok", n.clone()));
    names
}

fn chart_view(
    id: String,
    title: String,
    svg: String,
    hours: &Hours,
    lang: Lang,
    unit: Unit,
    series: &[Series],
) -> ChartView {
    let mut rows = Vec::new();
    for i in 0..hours.count {
        if series
            .iter()
            .all(|s| s.values.get(i).copied().flatten().unwrap_or(0.0) == 0.0)
        {
            continue;
        }
        let mut row = vec![hours.label(lang, i)];
        for s in series {
            row.push(match s.values.get(i).copied().flatten() {
                Some(v) => unit.format(lang, v),
                None => "—".into(),
            });
        }
        rows.push(row);
    }
    ChartView {
        id,
        title,
        svg,
        legend: series
            .iter()
            .map(|s| (s.class.clone(), s.label.clone()))
            .collect(),
        columns: series.iter().map(|s| s.label.clone()).collect(),
        rows,
    }
}

/// The four charts (runs by outcome, duration, fuel, messages) of `s`.
pub fn charts(page: &Page, s: &StatsView, prefix: &str, window: &str) -> Vec<ChartView> {
    let lang = page.lang;
    let hours = s.hours();
    let slots = |f: &dyn Fn(&HourView) -> Option<f64>| -> Vec<Option<f64>> {
        let mut v = vec![None; hours.count];
        for h in &s.series {
            if let Some(i) = hours.index(h.hour) {
                v[i] = f(h);
            }
        }
        v
    };
    let empty = page.t("chart-empty");
    let mut out = Vec::new();
    let arg = |k: &str, v: String| (k.to_string(), v);
    let text = |key: &str, args: Vec<(String, String)>| {
        let args: Vec<(&str, String)> = args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        i18n::text(lang, key, &args)
    };

    // Runs per hour, stacked by outcome.
    let runs: Vec<Series> = outcome_order(s)
        .into_iter()
        .map(|name| Series {
            class: outcome_class(&name),
            values: slots(&|h| h.outcomes.get(&name).map(|n| *n as f64)),
            label: name,
        })
        .collect();
    let busiest = s.series.iter().max_by_key(|h| h.runs);
    let title = page.t("chart-runs");
    let desc = text(
        "chart-runs-desc",
        vec![
            arg("window", window.to_string()),
            arg("runs", lang.number(s.runs)),
            arg("failed", lang.number(s.failed())),
            arg("peak", lang.number(busiest.map_or(0, |h| h.runs))),
            arg(
                "peak_at",
                busiest
                    .and_then(|h| hours.index(h.hour))
                    .map(|i| hours.label(lang, i))
                    .unwrap_or_else(|| "—".into()),
            ),
        ],
    );
    let id = format!("{prefix}-runs");
    let svg = chart::stacked(
        &chart::Labels {
            id: &id,
            title: &title,
            desc: &desc,
            empty: &empty,
        },
        &hours,
        &runs,
        lang,
        Unit::Count,
    );
    out.push(chart_view(id, title, svg, &hours, lang, Unit::Count, &runs));

    // Duration percentiles per hour.
    let dur: Vec<Series> = [("p50", "l-p50"), ("p95", "l-p95"), ("p99", "l-p99")]
        .into_iter()
        .map(|(p, class)| Series {
            class: class.into(),
            label: p.into(),
            values: slots(&|h| {
                (h.runs > 0).then(|| {
                    ms(match p {
                        "p50" => h.duration_us.p50,
                        "p95" => h.duration_us.p95,
                        _ => h.duration_us.p99,
                    })
                })
            }),
        })
        .collect();
    let title = page.t("chart-duration");
    let desc = text(
        "chart-duration-desc",
        vec![
            arg("window", window.to_string()),
            arg("p50", Unit::Millis.format(lang, ms(s.duration_us.p50))),
            arg("p95", Unit::Millis.format(lang, ms(s.duration_us.p95))),
            arg("p99", Unit::Millis.format(lang, ms(s.duration_us.p99))),
        ],
    );
    let id = format!("{prefix}-duration");
    let svg = chart::lines(
        &chart::Labels {
            id: &id,
            title: &title,
            desc: &desc,
            empty: &empty,
        },
        &hours,
        &dur,
        lang,
        Unit::Millis,
    );
    out.push(chart_view(id, title, svg, &hours, lang, Unit::Millis, &dur));

    // Fuel per run.
    let fuel: Vec<Series> = [("p50", "l-p50"), ("p95", "l-p95")]
        .into_iter()
        .map(|(p, class)| Series {
            class: class.into(),
            label: p.into(),
            values: slots(&|h| {
                (h.runs > 0).then_some(if p == "p50" { h.fuel.p50 } else { h.fuel.p95 } as f64)
            }),
        })
        .collect();
    let title = page.t("chart-fuel");
    let desc = text(
        "chart-fuel-desc",
        vec![
            arg("window", window.to_string()),
            arg("total", lang.number(s.fuel_total)),
            arg("p50", lang.number(s.fuel.p50)),
            arg("p95", lang.number(s.fuel.p95)),
        ],
    );
    let id = format!("{prefix}-fuel");
    let svg = chart::lines(
        &chart::Labels {
            id: &id,
            title: &title,
            desc: &desc,
            empty: &empty,
        },
        &hours,
        &fuel,
        lang,
        Unit::Count,
    );
    out.push(chart_view(id, title, svg, &hours, lang, Unit::Count, &fuel));

    // Messages queued, sent and dead per hour, side by side.
    let count = |f: &dyn Fn(&HourView) -> u64| slots(&|h| Some(f(h) as f64));
    let msgs = vec![
        Series {
            class: "l-queued".into(),
            label: page.t("status-queued"),
            values: count(&|h| h.messages_queued),
        },
        Series {
            class: "l-sent".into(),
            label: page.t("status-sent"),
            values: count(&|h| h.messages_sent),
        },
        Series {
            class: "l-dead".into(),
            label: page.t("status-dead"),
            values: count(&|h| h.messages_dead),
        },
    ];
    let title = page.t("chart-messages");
    let desc = text(
        "chart-messages-desc",
        vec![
            arg("window", window.to_string()),
            arg("queued", lang.number(s.messages_queued)),
            arg("sent", lang.number(s.messages_sent)),
            arg("dead", lang.number(s.messages_dead)),
        ],
    );
    let id = format!("{prefix}-messages");
    let none = page.t("chart-no-messages");
    let svg = chart::grouped(
        &chart::Labels {
            id: &id,
            title: &title,
            desc: &desc,
            empty: &none,
        },
        &hours,
        &msgs,
        lang,
        Unit::Count,
    );
    out.push(chart_view(id, title, svg, &hours, lang, Unit::Count, &msgs));
    out
}

/// The activity section for a page at `path` (its window switch links back there).
pub fn activity(page: &Page, s: &StatsView, window: Window, path: &str, prefix: &str) -> Activity {
    let lang = page.lang;
    let window_label = page.t(window.key());
    let rate = if s.runs == 0 {
        "—".to_string()
    } else {
        lang.percent(s.failed() as f64 / s.runs as f64)
    };
    let headline = vec![
        (page.t("stat-runs"), lang.number(s.runs)),
        (page.t("stat-error-rate"), rate),
        (
            page.t("stat-duration-p50-p95"),
            format!(
                "{} / {}",
                Unit::Millis.format(lang, ms(s.duration_us.p50)),
                Unit::Millis.format(lang, ms(s.duration_us.p95))
            ),
        ),
        (page.t("stat-fuel-total"), lang.number(s.fuel_total)),
        (
            page.t("stat-messages"),
            i18n::text(
                lang,
                "stat-messages-value",
                &[
                    ("queued", lang.number(s.messages_queued)),
                    ("sent", lang.number(s.messages_sent)),
                    ("dead", lang.number(s.messages_dead)),
                ],
            ),
        ),
    ];
    Activity {
        windows: Window::ALL
            .into_iter()
            .map(|w| WindowLink {
                label: page.t(w.key()),
                href: format!("{path}?window={}#activity", w.code()),
                current: w == window,
            })
            .collect(),
        charts: charts(page, s, prefix, &window_label),
        window_label,
        headline,
    }
}
