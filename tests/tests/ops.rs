//! Operating modules: replaying a candidate version on real past events, per-module and
//! per-binding stats from rollups, Prometheus metrics, request ids and JSON logs, retention.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// Binds `scoring` version 1 (threshold 50) inline on leads, created and size updates.
async fn scoring(s: &Server) -> String {
    assert_eq!(s.upload_guest(ADMIN_KEY, "scoring", "scorer").await, 1);
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "scoring", "version": 1, "mode": "inline",
               "triggers": [{"on": "created"}],
               "grants": {"fields": ["score"], "channels": ["notify"]}}),
    )
    .await
}

/// Creates a lead; `size` None makes the scoring module fail (and reject the lead).
async fn lead(s: &Server, name: &str, size: Option<i64>) -> Option<String> {
    let mut body = json!({"kind": "lead", "name": name});
    if let Some(n) = size {
        body["custom"] = json!({"size": n});
    }
    let r = s.post("/v1/records", ADMIN_KEY, body).await;
    match size {
        Some(_) => {
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            Some(r.body["id"].as_str().unwrap().to_string())
        }
        None => {
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
            None
        }
    }
}

/// Everything replay must leave alone, as the API shows it, once the background work the
/// scoring module set off has settled: its `notify` messages are delivered by the outbox
/// worker (queued, then sending, then sent with an attempt), which on a busy machine can
/// still be going on when the replay starts. A snapshot taken before then would see them
/// change underneath the replay.
async fn world(s: &Server) -> Vec<Value> {
    eventually("the outbox to settle", 1200, || async {
        let r = s.get("/v1/messages?limit=500", ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let messages = r.body["messages"].as_array()?.clone();
        messages.iter().all(|m| m["status"] == "sent").then_some(())
    })
    .await;
    let mut out = Vec::new();
    for path in [
        "/v1/records?limit=200",
        "/v1/messages",
        "/v1/runs?limit=200",
        "/v1/events?limit=500",
    ] {
        let r = s.get(path, ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        out.push(r.body);
    }
    out
}

fn effect_types(effects: &Value) -> Vec<&str> {
    effects
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn replay_shows_exactly_the_events_whose_outcome_changed() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let b = scoring(&s).await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);

    // Scores 10, 55, 65, 80; one lead without a size is rejected by the module.
    let small = lead(&s, "small", Some(100)).await.unwrap();
    let mid = lead(&s, "mid", Some(550)).await.unwrap();
    let upper = lead(&s, "upper", Some(650)).await.unwrap();
    let big = lead(&s, "big", Some(800)).await.unwrap();
    lead(&s, "nosize", None).await;
    for id in [&mid, &upper, &big] {
        let r = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
        assert_eq!(r.body["stage"], "qualified", "v1 qualified {id}");
    }
    let r = s.get(&format!("/v1/records/{small}"), ADMIN_KEY).await;
    assert_eq!(r.body["stage"], "new");

    // Version 2 raises the threshold to 70; it is uploaded, not enabled.
    assert_eq!(
        s.upload_guest(ADMIN_KEY, "scoring", "scorer-strict").await,
        2
    );
    let before = world(&s).await;
    let messages_before = before[1]["messages"].as_array().unwrap().len();
    assert_eq!(messages_before, 3);

    let dev = s.key(ADMIN_KEY, "developer").await;
    let r = s
        .post(
            "/v1/modules/scoring/versions/2/replay",
            &dev,
            json!({"binding": b, "since": since}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let rep = r.body;
    assert_eq!(rep["status"], "done");
    assert_eq!(rep["total"], 5);
    assert_eq!(rep["done"], 5);
    let sum = &rep["summary"];
    assert_eq!(sum["replayed"], 5, "{sum}");
    assert_eq!(sum["same"], 3, "{sum}");
    assert_eq!(sum["different"], 2, "{sum}");
    assert_eq!(sum["new_failures"], json!({}));
    assert_eq!(sum["fixed"], 0);
    assert!(sum["fuel"]["original"].as_u64().unwrap() > 0);
    assert!(sum["fuel"]["candidate"].as_u64().unwrap() > 0);

    // Exactly the leads scoring 55 and 65, with both effect lists side by side.
    let diffs = rep["differences"].as_array().unwrap();
    let records: Vec<&str> = diffs
        .iter()
        .map(|d| d["record"].as_str().unwrap())
        .collect();
    assert_eq!(records, vec![mid.as_str(), upper.as_str()]);
    for d in diffs {
        assert_eq!(d["event_kind"], "created");
        assert_eq!(d["original"]["version"], 1);
        assert_eq!(d["candidate"]["version"], 2);
        assert_eq!(d["original"]["outcome"]["kind"], "ok");
        assert_eq!(d["candidate"]["outcome"]["kind"], "ok");
        assert_eq!(
            effect_types(&d["original"]["effects"]),
            vec!["set_field", "move_stage", "queue_message"]
        );
        assert_eq!(effect_types(&d["candidate"]["effects"]), vec!["set_field"]);
        assert_eq!(d["original"]["effects"][0], d["candidate"]["effects"][0]);
        // The original side is what the run really committed.
        let run = s
            .get(
                &format!("/v1/runs/{}", d["run"].as_str().unwrap()),
                ADMIN_KEY,
            )
            .await;
        assert_eq!(run.body["effects"], d["original"]["effects"]);
        assert_eq!(run.body["event"], d["event"]);
    }

    // Nothing in the store changed and no message was queued.
    assert_eq!(world(&s).await, before);

    // The enabled version replayed on itself reproduces every effect exactly, message ids
    // included (determinism), and "last" picks the newest runs.
    let r = s
        .post(
            "/v1/modules/scoring/versions/1/replay",
            &dev,
            json!({"binding": b, "last": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["total"], 3);
    assert_eq!(r.body["summary"]["same"], 3, "{:?}", r.body);
    assert_eq!(r.body["differences"], json!([]));

    // By pipeline: every binding of this module on it.
    let r = s
        .post(
            "/v1/modules/scoring/versions/2/replay",
            &dev,
            json!({"pipeline": "leads", "last": 100}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["bindings"], json!([b]));
    assert_eq!(r.body["summary"]["different"], 2);

    // A replay can be read back by id, by its own tenant's keys.
    let id = r.body["id"].as_str().unwrap();
    let again = s.get(&format!("/v1/replays/{id}"), &dev).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, r.body);
    assert_eq!(world(&s).await, before);
}

#[tokio::test]
async fn large_replays_run_in_the_background_with_progress() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let b = scoring(&s).await;
    for i in 0..60 {
        // Every fourth lead scores 60: qualified by v1, not by v2.
        let size = if i % 4 == 0 { 600 } else { 90 };
        lead(&s, &format!("lead {i}"), Some(size)).await;
    }
    assert_eq!(
        s.upload_guest(ADMIN_KEY, "scoring", "scorer-strict").await,
        2
    );
    let before = world(&s).await;
    let r = s
        .post(
            "/v1/modules/scoring/versions/2/replay",
            ADMIN_KEY,
            json!({"binding": b, "last": 1000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["total"], 60);
    let id = r.body["id"].as_str().unwrap().to_string();
    let done = eventually("the replay finishes", 1200, || {
        let s = &s;
        let id = id.clone();
        async move {
            let r = s.get(&format!("/v1/replays/{id}"), ADMIN_KEY).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.body["done"].as_u64().unwrap() <= 60);
            (r.body["status"] == "done").then_some(r.body)
        }
    })
    .await;
    assert_eq!(done["done"], 60);
    assert_eq!(done["summary"]["replayed"], 60);
    assert_eq!(done["summary"]["different"], 15);
    assert_eq!(done["summary"]["same"], 45);
    assert_eq!(done["differences"].as_array().unwrap().len(), 15);
    assert_eq!(world(&s).await, before);
}

#[tokio::test]
async fn replay_refuses_bad_requests_clearly() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let b = scoring(&s).await;
    let path = "/v1/modules/scoring/versions/1/replay";
    for (body, status, code, names) in [
        (json!({"last": 5}), 422, "invalid", "binding"),
        (
            json!({"binding": b, "pipeline": "leads", "last": 5}),
            422,
            "invalid",
            "not both",
        ),
        (json!({"binding": b}), 422, "invalid", "window"),
        (json!({"binding": b, "last": 0}), 422, "invalid", "last"),
        (json!({"binding": b, "last": 5001}), 422, "invalid", "last"),
        (
            json!({"binding": b, "last": 5, "since": "2024-01-01T00:00:00Z"}),
            422,
            "invalid",
            "not both",
        ),
        (
            json!({"binding": b, "since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}),
            422,
            "invalid",
            "before",
        ),
        (
            json!({"binding": "bnd_nope", "last": 5}),
            404,
            "not_found",
            "bnd_nope",
        ),
        (
            json!({"pipeline": "deals", "last": 5}),
            422,
            "invalid",
            "no binding on pipeline",
        ),
        (
            json!({"binding": b, "last": 5, "extra": 1}),
            400,
            "",
            "extra",
        ),
    ] {
        let r = s.post(path, ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {:?}", r.body);
        if !code.is_empty() {
            assert_eq!(r.code(), code, "{body}: {:?}", r.body);
        }
        assert!(r.message().contains(names), "{body}: {}", r.message());
    }
    let r = s
        .post(
            "/v1/modules/scoring/versions/9/replay",
            ADMIN_KEY,
            json!({"binding": b, "last": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let agent = s.key(ADMIN_KEY, "agent").await;
    let r = s.post(path, &agent, json!({"binding": b, "last": 5})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s.get("/v1/replays/rpl_nope", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    // An empty window is a finished replay of nothing.
    let r = s
        .post(path, ADMIN_KEY, json!({"binding": b, "last": 5}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["total"], 0);
    let mine = r.body["id"].as_str().unwrap().to_string();

    // Another tenant sees none of it: not the replay, not the binding, not the stats.
    let other = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    let other = other.body["admin_key"].as_str().unwrap().to_string();
    assert_eq!(s.upload_guest(&other, "scoring", "scorer").await, 1);
    for r in [
        s.get(&format!("/v1/replays/{mine}"), &other).await,
        s.post(path, &other, json!({"binding": b, "last": 5})).await,
        s.get(&format!("/v1/bindings/{b}/stats"), &other).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    }
    let st = s.get("/v1/modules/scoring/stats", &other).await;
    assert_eq!(st.status, StatusCode::OK);
    assert_eq!(st.body["runs"], 0, "the other tenant's module has no runs");
}

/// The true `q` quantile of `sorted` (rank ⌈q·n⌉).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test]
async fn stats_match_the_run_history() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let inline = scoring(&s).await;
    let background = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "scoring", "version": 1, "mode": "background",
                   "triggers": [{"on": "stage_changed"}],
                   "grants": {"fields": ["score"], "channels": ["notify"]}}),
        )
        .await;
    let mut qualified = 0;
    for i in 0..24i64 {
        let size = match i % 6 {
            0 => None,
            k => Some(k * 150),
        };
        if lead(&s, &format!("lead {i}"), size).await.is_some() && size >= Some(500) {
            qualified += 1;
        }
    }
    // Each qualified lead's stage change ran the background binding once.
    eventually("background runs", 400, || async {
        let n = s
            .runs(ADMIN_KEY, &format!("binding={background}"))
            .await
            .len();
        (n == qualified).then_some(())
    })
    .await;

    for (path, runs) in [
        (
            format!("/v1/bindings/{inline}/stats"),
            s.runs(ADMIN_KEY, &format!("binding={inline}&limit=200"))
                .await,
        ),
        (
            "/v1/modules/scoring/stats".to_string(),
            s.runs(ADMIN_KEY, "module=scoring&limit=200").await,
        ),
    ] {
        let st = s.get(&path, ADMIN_KEY).await;
        assert_eq!(st.status, StatusCode::OK, "{path}: {:?}", st.body);
        let st = st.body;
        assert_eq!(st["runs"], runs.len(), "{path}");
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        let (mut fuel, mut messages) = (0u64, 0u64);
        let mut durations = Vec::new();
        let mut fuels = Vec::new();
        let mut memory = Vec::new();
        for r in &runs {
            *outcomes
                .entry(r["outcome"]["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
            fuel += r["fuel_used"].as_u64().unwrap();
            fuels.push(r["fuel_used"].as_u64().unwrap());
            durations.push(r["duration_us"].as_u64().unwrap());
            memory.push(r["peak_memory"].as_u64().unwrap());
            messages += effect_types(&r["effects"])
                .iter()
                .filter(|t| **t == "queue_message")
                .count() as u64;
        }
        assert_eq!(st["outcomes"], json!(outcomes), "{path}");
        assert_eq!(st["fuel_total"], fuel, "{path}");
        assert_eq!(st["messages_queued"], messages, "{path}");
        for (name, mut values) in [
            ("duration_us", durations),
            ("fuel", fuels),
            ("peak_memory", memory),
        ] {
            values.sort();
            assert_eq!(st[name]["max"], *values.last().unwrap(), "{path} {name}");
            for (p, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                let truth = quantile(&values, q);
                let got = st[name][p].as_u64().unwrap();
                // Bucket precision: never below the truth, at most 2^(1/8) above it.
                assert!(
                    got >= truth && (got as f64) <= truth as f64 * 1.0906 + 1.0,
                    "{path} {name} {p}: {got} vs {truth}"
                );
            }
        }
        let series = st["series"].as_array().unwrap();
        assert!(!series.is_empty());
        let total: u64 = series.iter().map(|h| h["runs"].as_u64().unwrap()).sum();
        assert_eq!(total, runs.len() as u64);
    }

    // Background runs replay exactly too: the candidate sees the event's snapshot, which is
    // what the background run read (nothing changed the records in between).
    let r = s
        .post(
            "/v1/modules/scoring/versions/1/replay",
            ADMIN_KEY,
            json!({"binding": background, "last": 100}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["summary"]["replayed"], qualified, "{:?}", r.body);
    assert_eq!(r.body["summary"]["same"], qualified, "{:?}", r.body);

    // Windows without runs are empty, not errors; bad windows and unknown names are refused.
    let r = s
        .get(
            "/v1/modules/scoring/stats?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z",
            ADMIN_KEY,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["runs"], 0);
    assert_eq!(r.body["series"], json!([]));
    for (path, status, names) in [
        (
            "/v1/modules/scoring/stats?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z",
            400,
            "before",
        ),
        (
            "/v1/modules/scoring/stats?since=2020-01-01T00:00:00Z&until=2021-01-01T00:00:00Z",
            400,
            "hours",
        ),
        ("/v1/modules/nope/stats", 404, "nope"),
        ("/v1/bindings/bnd_nope/stats", 404, "bnd_nope"),
        ("/v1/modules/scoring/stats?sinse=x", 400, "sinse"),
    ] {
        let r = s.get(path, ADMIN_KEY).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {:?}", r.body);
        assert!(r.message().contains(names), "{path}: {}", r.message());
    }
    let agent = s.key(ADMIN_KEY, "agent").await;
    let r = s.get("/v1/modules/scoring/stats", &agent).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn stats_count_messages_sent_and_dead_per_binding() {
    // A webhook receiver that refuses every delivery: a 4xx is a dead letter at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { (axum::http::StatusCode::BAD_REQUEST, "no") }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.delivery.tick = Duration::from_millis(25);
    config.delivery.allow_internal_destinations = true;
    let s = Server::start_with(config).await;
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/channels",
            Some(ADMIN_KEY),
            Some(json!({"webhook": {"allowed_hosts": ["*"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let notify = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
                   "triggers": [{"on": "created"}], "config": {"channel": "notify", "to": "ann"},
                   "grants": {"channels": ["notify"]}}),
        )
        .await;
    let webhook = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
                   "triggers": [{"on": "created"}], "config": {"channel": "webhook", "to": hook},
                   "grants": {"channels": ["webhook"]}}),
        )
        .await;
    for i in 0..3 {
        s.record(ADMIN_KEY, json!({"kind": "lead", "name": format!("L{i}")}))
            .await;
    }
    eventually("every message delivered or dead", 400, || async {
        let r = s.get("/v1/messages?status=queued", ADMIN_KEY).await;
        let q = r.body["messages"].as_array().unwrap().len();
        let r = s.get("/v1/messages?status=sending", ADMIN_KEY).await;
        let sending = r.body["messages"].as_array().unwrap().len();
        (q + sending == 0).then_some(())
    })
    .await;
    for (path, queued, sent, dead) in [
        (format!("/v1/bindings/{notify}/stats"), 3, 3, 0),
        (format!("/v1/bindings/{webhook}/stats"), 3, 0, 3),
        ("/v1/modules/effector/stats".to_string(), 6, 3, 3),
    ] {
        let st = s.get(&path, ADMIN_KEY).await.body;
        assert_eq!(st["messages_queued"], queued, "{path}: {st}");
        assert_eq!(st["messages_sent"], sent, "{path}: {st}");
        assert_eq!(st["messages_dead"], dead, "{path}: {st}");
        let series = st["series"].as_array().unwrap();
        let sum = |k: &str| series.iter().map(|h| h[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(
            (sum("messages_sent"), sum("messages_dead")),
            (sent, dead),
            "{path}"
        );
        assert!(series.iter().all(|h| h["fuel"]["p95"].is_u64()), "{path}");
    }
}

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn scrape(s: &Server) -> prometheus_parse::Scrape {
    let resp = s
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

#[tokio::test]
async fn metrics_parse_and_move_with_requests_and_runs() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    scoring(&s).await;
    lead(&s, "warm-up", Some(100)).await;
    let before = scrape(&s).await;
    let route = [
        ("route", "/v1/records"),
        ("method", "POST"),
        ("status", "201"),
    ];
    let created = sample(&before, "stagecraft_http_requests_total", &route);
    let ok_runs = sample(&before, "stagecraft_runs_total", &[("outcome", "ok")]);
    let failed = sample(
        &before,
        "stagecraft_runs_total",
        &[("outcome", "guest_error")],
    );
    assert!(
        created >= 1.0 && ok_runs >= 1.0,
        "counters exist after traffic"
    );

    lead(&s, "a", Some(600)).await;
    lead(&s, "b", Some(100)).await;
    lead(&s, "c", None).await;
    let after = scrape(&s).await;
    // Other tests share this process's recorder: counters only ever move up.
    assert!(sample(&after, "stagecraft_http_requests_total", &route) >= created + 2.0);
    assert!(sample(&after, "stagecraft_runs_total", &[("outcome", "ok")]) >= ok_runs + 2.0);
    assert!(
        sample(
            &after,
            "stagecraft_runs_total",
            &[("outcome", "guest_error")]
        ) >= failed + 1.0
    );
    let names: std::collections::BTreeSet<&str> =
        after.samples.iter().map(|s| s.metric.as_str()).collect();
    for histogram in [
        "stagecraft_http_request_duration_seconds",
        "stagecraft_run_duration_seconds",
        "stagecraft_run_fuel",
    ] {
        let h = after
            .samples
            .iter()
            .find(|s| s.metric == histogram)
            .unwrap();
        let prometheus_parse::Value::Histogram(buckets) = &h.value else {
            panic!("{histogram} is not a histogram: {:?}", h.value);
        };
        assert!(buckets.len() > 5, "{histogram}: {buckets:?}");
    }
    for want in [
        "stagecraft_outbox_depth",
        "stagecraft_module_compiles_total",
        "stagecraft_module_loads_total",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    // The notify message of lead "a" waits in the outbox until delivered.
    assert!(sample(&after, "stagecraft_outbox_depth", &[]) >= 0.0);
}

#[tokio::test]
async fn requests_carry_an_id_echoed_in_the_response() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let resp = s
        .request(reqwest::Method::GET, "/v1/records")
        .bearer_auth(ADMIN_KEY)
        .header("x-request-id", "req-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc.123");
    // Minted when absent or unacceptable; errors carry one too.
    let mut seen = Vec::new();
    for header in [None, Some("has spaces in it")] {
        let mut req = s.request(reqwest::Method::GET, "/v1/nope");
        if let Some(h) = header {
            req = req.header("x-request-id", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 26, "a ULID: {id}");
        seen.push(id);
    }
    assert_ne!(seen[0], seen[1]);
}

#[tokio::test]
async fn json_logs_carry_request_event_and_run_spans() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = temp_dir();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn,stagecraft=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = out.next_line().await {
            if let Some(a) = line.strip_prefix("listening on ") {
                return a.to_string();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err.next_line().await {
            let _ = tx.send(line);
        }
    });
    let c = reqwest::Client::new();
    let base = format!("http://{addr}");
    let up = c
        .post(format!("{base}/v1/modules/scoring/versions"))
        .bearer_auth(ADMIN_KEY)
        .body(stagecraft_tests::guest("scorer"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), StatusCode::CREATED);
    let bind = c
        .post(format!("{base}/v1/bindings"))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"pipeline": "leads", "module": "scoring", "version": 1, "mode": "inline",
                      "triggers": [{"on": "created"}], "grants": {"fields": ["score"]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bind.status(), StatusCode::CREATED);
    let created = c
        .post(format!("{base}/v1/records"))
        .bearer_auth(ADMIN_KEY)
        .header("x-request-id", "json-log-test-1")
        .json(&json!({"kind": "lead", "name": "Ada", "custom": {"size": 100}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["x-request-id"], "json-log-test-1");

    // The run's log line is JSON and nests request → event → run, carrying the ids.
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = rx.recv().await {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                panic!("a log line that is not JSON: {line}");
            };
            if v["fields"]["message"] == "module ran" {
                return v;
            }
        }
        panic!("no run log line");
    })
    .await
    .unwrap();
    let spans = line["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["request", "event", "run"], "{line}");
    assert_eq!(spans[0]["request_id"], "json-log-test-1");
    assert!(spans[1]["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(spans[2]["event_id"], spans[1]["event_id"]);
    assert_eq!(line["fields"]["outcome"], "ok");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn pruning_removes_old_history_and_keeps_recent_under_concurrent_writes() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let b = scoring(&s).await;
    let mut old = Vec::new();
    for i in 0..10 {
        old.push(lead(&s, &format!("old {i}"), Some(600)).await.unwrap());
    }
    // The old leads' notifications are delivered (notify is in-process).
    let sent = eventually("old messages delivered", 400, || async {
        let r = s.get("/v1/messages?status=sent", ADMIN_KEY).await;
        let m = r.body["messages"].as_array().cloned().unwrap_or_default();
        (m.len() == 10).then_some(m)
    })
    .await;
    let old_runs = s.runs(ADMIN_KEY, &format!("binding={b}&limit=200")).await;
    assert_eq!(old_runs.len(), 10);
    let stamp = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    // The cutoff: just after everything old happened.
    let cutoff = sent
        .iter()
        .map(|m| stamp(&m["sent_at"]))
        .chain(old_runs.iter().map(|r| stamp(&r["started_at"])))
        .max()
        .unwrap()
        + chrono::Duration::milliseconds(1);
    eventually("the clock passes the cutoff", 100, || async {
        (chrono::Utc::now() > cutoff).then_some(())
    })
    .await;

    // New writes go on while retention prunes, in batches of 3.
    let writer = {
        let base = s.base.clone();
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut ids = Vec::new();
            for i in 0..20 {
                let r = c
                    .post(format!("{base}/v1/records"))
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({"kind": "lead", "name": format!("new {i}"), "custom": {"size": 600}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                let v: Value = r.json().await.unwrap();
                ids.push(v["id"].as_str().unwrap().to_string());
            }
            ids
        })
    };
    let store = s.state.store.clone();
    let pruned = tokio::task::spawn_blocking(move || store.prune(cutoff, 3))
        .await
        .unwrap()
        .unwrap();
    let new = writer.await.unwrap();
    assert_eq!(pruned.runs, 10);
    assert_eq!(pruned.messages, 10);
    // Each old lead's created event, and the events its run's move caused.
    assert!(pruned.snapshots >= 10, "{pruned:?}");

    // Old runs are gone, new ones kept; the binding's run index agrees (replay sees 20).
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}&limit=200")).await;
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| stamp(&r["started_at"]) >= cutoff));
    for r in &old_runs {
        let gone = s
            .get(
                &format!("/v1/runs/{}", r["id"].as_str().unwrap()),
                ADMIN_KEY,
            )
            .await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }
    let rep = s
        .post(
            "/v1/modules/scoring/versions/1/replay",
            ADMIN_KEY,
            json!({"binding": b, "last": 100}),
        )
        .await;
    assert_eq!(rep.body["total"], 20, "{:?}", rep.body);

    // Nothing else was lost: every record, every event (old ones without their snapshot),
    // every message not yet old; stats still count every run.
    for id in old.iter().chain(new.iter()) {
        let r = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::OK, "{id}");
        let evs = s.get(&format!("/v1/events?record={id}"), ADMIN_KEY).await;
        let evs = evs.body["events"].as_array().unwrap().clone();
        assert!(!evs.is_empty());
        let is_old = old.contains(id);
        for e in evs {
            assert_eq!(e["snapshot"].is_null(), is_old, "{id}: {e}");
        }
    }
    let msgs = s.get("/v1/messages", ADMIN_KEY).await;
    let msgs = msgs.body["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 20);
    assert!(msgs
        .iter()
        .all(|m| new.contains(&m["record"].as_str().unwrap().to_string())));
    let st = s.get(&format!("/v1/bindings/{b}/stats"), ADMIN_KEY).await;
    assert_eq!(st.body["runs"], 30, "rollups outlive the runs they count");

    // A second pass finds nothing more.
    let store = s.state.store.clone();
    let again = tokio::task::spawn_blocking(move || store.prune(cutoff, 3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, stagecraft::store::Pruned::default());
}

#[tokio::test]
async fn the_retention_worker_prunes_in_the_background() {
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.retention.max_age = Duration::from_millis(1);
    config.retention.every = Duration::from_millis(50);
    let s = Server::start_with(config).await;
    let b = scoring(&s).await;
    let id = lead(&s, "soon old", Some(100)).await.unwrap();
    eventually("the worker prunes the run", 400, || async {
        s.runs(ADMIN_KEY, &format!("binding={b}"))
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let r = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK, "records are never pruned");
    let st = s.get(&format!("/v1/bindings/{b}/stats"), ADMIN_KEY).await;
    assert_eq!(st.body["runs"], 1);
}
