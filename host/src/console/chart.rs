//! Charts as server-rendered SVG: hourly stacked bars, lines with gaps, and sparklines, with
//! localised axes and a text alternative (an SVG title and description, and a data table the
//! page puts next to it). No script: colours come from CSS classes in console.css (the
//! console's CSP allows no inline styles), and each bar carries a native tooltip.

use std::fmt::Write;

use chrono::{DateTime, Duration, Timelike, Utc};

use super::i18n::Lang;

/// The drawing's size (the page scales it to its width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// One series: its CSS class (which also colours its legend swatch), its label, and one
/// value per hour (`None`: no value that hour, a gap in a line).
pub struct Series {
    pub class: String,
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// How values are written on the axis and in tooltips.
#[derive(Clone, Copy, PartialEq)]
pub enum Unit {
    /// Whole numbers (runs, messages, fuel).
    Count,
    /// Milliseconds with decimals.
    Millis,
}

impl Unit {
    pub fn format(self, lang: Lang, v: f64) -> String {
        match self {
            Unit::Count => lang.number(v.max(0.0).round() as u64),
            Unit::Millis => {
                let places = if v >= 100.0 {
                    0
                } else if v >= 10.0 {
                    1
                } else {
                    2
                };
                format!("{} ms", lang.decimal(v, places))
            }
        }
    }
}

/// The hours a chart spans: `[since, until)`, one slot per hour.
pub struct Hours {
    pub since: DateTime<Utc>,
    pub count: usize,
}

impl Hours {
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Hours {
        let count = ((until - since).num_hours().max(1)) as usize;
        Hours { since, count }
    }

    pub fn at(&self, i: usize) -> DateTime<Utc> {
        self.since + Duration::hours(i as i64)
    }

    /// The slot of an hour inside the span.
    pub fn index(&self, t: DateTime<Utc>) -> Option<usize> {
        let i = (t - self.since).num_hours();
        (0..self.count as i64).contains(&i).then_some(i as usize)
    }

    /// A slot's label for tooltips and tables: `11/23 14:00`.
    pub fn label(&self, lang: Lang, i: usize) -> String {
        let t = self.at(i);
        format!("{} {:02}:00", lang.day_month(&t), t.hour())
    }
}

/// A chart's id (its element ids derive from it) and texts: the title and description that
/// are its text alternative, and what it says when there is nothing to draw.
pub struct Labels<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub desc: &'a str,
    pub empty: &'a str,
}

/// Escapes text for SVG/HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v - 1e-9 {
            return m * p;
        }
    }
    10.0 * p
}

/// The y axis: round steps from zero to the first one at or above `max` (at most six).
fn y_ticks(max: f64, unit: Unit) -> Vec<f64> {
    let mut step = nice(max / 5.0);
    if unit == Unit::Count {
        step = step.max(1.0).ceil();
    }
    let n = ((max / step - 1e-9).ceil() as u32).clamp(1, 6);
    (0..=n).map(|i| step * f64::from(i)).collect()
}

/// Hours between x-axis labels, so that at most eight show.
fn x_step(count: usize) -> usize {
    for s in [1, 2, 3, 6, 12, 24, 48, 72, 168, 336] {
        if count / s <= 8 {
            return s;
        }
    }
    720
}

struct Frame {
    top: f64,
    slot: f64,
    plot_h: f64,
}

impl Frame {
    fn y(&self, v: f64) -> f64 {
        TOP + self.plot_h * (1.0 - (v / self.top).min(1.0))
    }

    fn x(&self, i: usize) -> f64 {
        LEFT + self.slot * i as f64
    }
}

/// The opening tag with the text alternative, the grid, and both axes' labels.
fn frame(out: &mut String, l: &Labels, hours: &Hours, lang: Lang, max: f64, unit: Unit) -> Frame {
    let id = l.id;
    let ticks = y_ticks(max, unit);
    let top = ticks.last().copied().unwrap_or(1.0);
    let f = Frame {
        top,
        slot: (WIDTH - LEFT - RIGHT) / hours.count as f64,
        plot_h: HEIGHT - TOP - BOTTOM,
    };
    let _ = write!(
        out,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(l.title),
        esc(l.desc)
    );
    for t in &ticks {
        let y = f.y(*t);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&unit.format(lang, *t))
        );
    }
    let step = x_step(hours.count);
    for i in 0..hours.count {
        let t = hours.at(i);
        // Labels on round hours (midnight for day steps), in UTC like every console time.
        let on = if step >= 24 {
            t.hour() == 0 && (t.timestamp() / 86_400).rem_euclid((step / 24) as i64) == 0
        } else {
            (t.hour() as usize).is_multiple_of(step)
        };
        if !on {
            continue;
        }
        let text = if step >= 24 || t.hour() == 0 {
            lang.day_month(&t)
        } else {
            format!("{:02}:00", t.hour())
        };
        let x = f.x(i);
        let _ = write!(
            out,
            r#"<line class="tickmark" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 4.0,
            HEIGHT - BOTTOM + 17.0,
            esc(&text)
        );
    }
    let _ = write!(
        out,
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}"/>"#,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
    f
}

fn empty_note(out: &mut String, note: &str) {
    let _ = write!(
        out,
        r#"<text class="empty" x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        esc(note)
    );
}

/// Bars per hour, the series stacked in order (first at the bottom).
pub fn stacked(l: &Labels, hours: &Hours, series: &[Series], lang: Lang, unit: Unit) -> String {
    let totals: Vec<f64> = (0..hours.count)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().flatten().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    let mut out = String::new();
    let f = frame(&mut out, l, hours, lang, max, unit);
    let width = (f.slot * 0.8).max(0.6);
    for (i, total) in totals.iter().enumerate() {
        if *total <= 0.0 {
            continue;
        }
        let mut tip = hours.label(lang, i);
        let mut base = 0.0;
        let mut rects = String::new();
        for s in series {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (y0, y1) = (f.y(base), f.y(base + v));
            let _ = write!(
                rects,
                r#"<rect class="{}" x="{:.2}" y="{y1:.2}" width="{width:.2}" height="{:.2}"/>"#,
                esc(&s.class),
                f.x(i) + (f.slot - width) / 2.0,
                (y0 - y1).max(0.5)
            );
            let _ = write!(tip, " · {} {}", s.label, unit.format(lang, v));
            base += v;
        }
        let _ = write!(out, "<g><title>{}</title>{rects}</g>", esc(&tip));
    }
    if max <= 0.0 {
        empty_note(&mut out, l.empty);
    }
    out.push_str("</svg>");
    out
}

/// Bars per hour, the series side by side (for measures that do not add up).
pub fn grouped(l: &Labels, hours: &Hours, series: &[Series], lang: Lang, unit: Unit) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied().flatten())
        .fold(0.0, f64::max);
    let mut out = String::new();
    let f = frame(&mut out, l, hours, lang, max, unit);
    let n = series.len().max(1) as f64;
    let width = (f.slot * 0.8 / n).max(0.5);
    for i in 0..hours.count {
        let values: Vec<f64> = series
            .iter()
            .map(|s| s.values.get(i).copied().flatten().unwrap_or(0.0))
            .collect();
        if values.iter().all(|v| *v <= 0.0) {
            continue;
        }
        let mut tip = hours.label(lang, i);
        let mut rects = String::new();
        for (k, (s, v)) in series.iter().zip(&values).enumerate() {
            let _ = write!(tip, " · {} {}", s.label, unit.format(lang, *v));
            if *v <= 0.0 {
                continue;
            }
            let y = f.y(*v);
            let _ = write!(
                rects,
                r#"<rect class="{}" x="{:.2}" y="{y:.2}" width="{width:.2}" height="{:.2}"/>"#,
                esc(&s.class),
                f.x(i) + f.slot * 0.1 + width * k as f64,
                (f.y(0.0) - y).max(0.5)
            );
        }
        let _ = write!(out, "<g><title>{}</title>{rects}</g>", esc(&tip));
    }
    if max <= 0.0 {
        empty_note(&mut out, l.empty);
    }
    out.push_str("</svg>");
    out
}

/// One line per series; hours without a value break the line.
pub fn lines(l: &Labels, hours: &Hours, series: &[Series], lang: Lang, unit: Unit) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied().flatten())
        .fold(0.0, f64::max);
    let any = series.iter().any(|s| s.values.iter().any(Option::is_some));
    let mut out = String::new();
    let f = frame(&mut out, l, hours, lang, max, unit);
    for s in series {
        let mut run: Vec<(f64, f64, usize, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64, usize, f64)>, out: &mut String| {
            if run.is_empty() {
                return;
            }
            let points: Vec<String> = run
                .iter()
                .map(|(x, y, ..)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = write!(
                out,
                r#"<polyline class="line {}" points="{}"/>"#,
                esc(&s.class),
                points.join(" ")
            );
            for (x, y, i, v) in run.iter() {
                let _ = write!(
                    out,
                    r#"<circle class="dot {}" cx="{x:.1}" cy="{y:.1}" r="3"><title>{}</title></circle>"#,
                    esc(&s.class),
                    esc(&format!(
                        "{} · {} {}",
                        hours.label(lang, *i),
                        s.label,
                        unit.format(lang, *v)
                    ))
                );
            }
            run.clear();
        };
        for i in 0..hours.count {
            match s.values.get(i).copied().flatten() {
                Some(v) => run.push((f.x(i) + f.slot / 2.0, f.y(v), i, v)),
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    if !any {
        empty_note(&mut out, l.empty);
    }
    out.push_str("</svg>");
    out
}

/// A small bar per hour (good runs over failed ones), for a table cell; `label` is its text
/// alternative.
pub fn sparkline(label: &str, hours: &Hours, ok: &[u64], failed: &[u64]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 26.0;
    let max = (0..hours.count)
        .map(|i| ok.get(i).copied().unwrap_or(0) + failed.get(i).copied().unwrap_or(0))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = W / hours.count as f64;
    let width = (slot * 0.75).max(0.5);
    let mut out = format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><line class="axis" x1="0" x2="{W}" y1="{}" y2="{}"/>"#,
        esc(label),
        H - 0.5,
        H - 0.5
    );
    for i in 0..hours.count {
        let (good, bad) = (
            ok.get(i).copied().unwrap_or(0) as f64,
            failed.get(i).copied().unwrap_or(0) as f64,
        );
        let x = slot * i as f64 + (slot - width) / 2.0;
        let good_h = (H - 1.0) * good / max;
        let bad_h = (H - 1.0) * bad / max;
        if good > 0.0 {
            let _ = write!(
                out,
                r#"<rect class="o-ok" x="{x:.2}" y="{:.2}" width="{width:.2}" height="{:.2}"/>"#,
                H - 1.0 - good_h,
                good_h.max(0.8)
            );
        }
        if bad > 0.0 {
            let _ = write!(
                out,
                r#"<rect class="o-failed" x="{x:.2}" y="{:.2}" width="{width:.2}" height="{:.2}"/>"#,
                H - 1.0 - good_h - bad_h,
                bad_h.max(0.8)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hours(n: usize) -> Hours {
        let since = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Hours::new(since, since + Duration::hours(n as i64))
    }

    #[test]
    fn axes_are_round_and_localised() {
        assert_eq!(y_ticks(7.0, Unit::Count), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(y_ticks(1234.0, Unit::Count), [0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(y_ticks(0.0, Unit::Count), [0.0, 1.0]);
        assert!((y_ticks(0.3, Unit::Millis).last().unwrap() - 0.3).abs() < 1e-9);
        let h = hours(24);
        let s = Series {
            class: "o-ok".into(),
            label: "ok".into(),
            values: (0..24).map(|i| Some(f64::from(i) * 100.0)).collect(),
        };
        let l = Labels {
            id: "c",
            title: "Runs",
            desc: "About runs",
            empty: "none",
        };
        let svg = stacked(&l, &h, &[s], Lang::Pl, Unit::Count);
        assert!(
            svg.contains(">2\u{a0}500<"),
            "Polish grouping on the y axis: {svg}"
        );
        assert!(svg.contains(">23.11<"), "the date at midnight");
        assert!(svg.contains(">06:00<") && svg.contains(">18:00<"), "{svg}");
        assert!(svg.contains(r#"<title id="c-t">Runs</title><desc id="c-d">About runs</desc>"#));
        assert!(
            svg.contains("<title>23.11 05:00 · ok 500</title>"),
            "tooltips"
        );
        assert!(!svg.contains("none</text>"), "not empty");
    }

    #[test]
    fn week_axes_label_days_and_lines_break_at_gaps() {
        let h = hours(24 * 7);
        let values = (0..24 * 7)
            .map(|i| if i % 10 == 3 { None } else { Some(1.5) })
            .collect();
        let l = Labels {
            id: "d",
            title: "Duration",
            desc: "p95",
            empty: "no runs",
        };
        let svg = lines(
            &l,
            &h,
            &[Series {
                class: "l-p95".into(),
                label: "p95".into(),
                values,
            }],
            Lang::En,
            Unit::Millis,
        );
        assert!(svg.contains(">11/24<") && svg.contains(">11/29<"), "{svg}");
        assert!(!svg.contains(">06:00<"), "no hours on a week");
        assert!(svg.matches("<polyline").count() > 10, "gaps break the line");
        assert!(svg.contains("1.50 ms"), "{svg}");
        let empty = lines(&l, &h, &[], Lang::En, Unit::Count);
        assert!(empty.contains(">no runs</text>"));
    }

    #[test]
    fn text_is_escaped() {
        let h = hours(2);
        let l = Labels {
            id: "x",
            title: "<script>",
            desc: "a & b",
            empty: "",
        };
        let svg = stacked(
            &l,
            &h,
            &[Series {
                class: "o-\"x".into(),
                label: "<b>".into(),
                values: vec![Some(1.0), None],
            }],
            Lang::En,
            Unit::Count,
        );
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("a &amp; b"));
        let spark = sparkline("3 runs", &h, &[2, 0], &[1, 0]);
        assert!(spark.contains(r#"aria-label="3 runs""#));
        assert_eq!(spark.matches("<rect").count(), 2);
        let bars = grouped(
            &l,
            &h,
            &[
                Series {
                    class: "l-queued".into(),
                    label: "queued".into(),
                    values: vec![Some(2.0), Some(0.0)],
                },
                Series {
                    class: "l-sent".into(),
                    label: "sent".into(),
                    values: vec![Some(1.0), Some(0.0)],
                },
            ],
            Lang::En,
            Unit::Count,
        );
        assert_eq!(
            bars.matches("<rect").count(),
            2,
            "side by side, empty hours skipped"
        );
        assert!(
            bars.contains("<title>11/23 00:00 · queued 2 · sent 1</title>"),
            "{bars}"
        );
    }
}
