//! Everything a tenant or a module can make has a size, whatever is accepted reads back, and
//! every list is complete or says where it stopped (issue 16). The hostile kinds "deep JSON"
//! and "huge error" run here, through the real API on real modules (follow_ups.rs has the
//! "timer snowball").

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft::config::Config;
use stagecraft::store::ListLimits;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// A value nested `levels` deep: `[[…[0]…]]`.
fn nested(levels: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn outcome(v: &Value) -> &str {
    v["outcome"]["kind"].as_str().unwrap_or_default()
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

async fn bomb(s: &Server) {
    s.upload_guest(ADMIN_KEY, "bomb", "data-bomb").await;
}

/// A list walked to its end: every item, and each page's item count and size.
struct Walk {
    items: Vec<Value>,
    pages: Vec<(usize, usize)>,
}

/// Every item of a list, following `next` (passed back as `cursor`) to the end.
async fn walk(s: &Server, path: &str, items: &str, cursor: &str) -> Walk {
    let mut out = Walk {
        items: Vec::new(),
        pages: Vec::new(),
    };
    let mut next = None::<String>;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &next {
            Some(c) => format!("{path}{sep}{cursor}={c}"),
            None => path.to_string(),
        };
        let r = s.get(&url, ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {:?}", r.body);
        let page = r.body[items].as_array().unwrap();
        out.pages.push((page.len(), size(&r.body)));
        out.items.extend(page.iter().cloned());
        next = r.body["next"].as_str().map(str::to_string);
        if next.is_none() {
            return out;
        }
        assert!(out.pages.len() < 500, "{url}: the cursor never ends");
    }
}

#[tokio::test]
async fn whatever_the_api_accepts_reads_back_and_the_rest_is_refused_by_name() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Deep"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let path = format!("/v1/records/{id}");

    // At the limit: accepted, and it reads back everywhere it is stored.
    let r = s
        .patch(&path, ADMIN_KEY, json!({"custom": {"deep": nested(32)}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.message());
    let made = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Born deep", "custom": {"deep": nested(32)}}),
        )
        .await;
    assert_eq!(depth(&made["custom"]["deep"]), 32);
    // A module run on it keeps a 31-level value in its run record (config is at 32).
    bomb(&s).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
            "triggers": [{"on": "updated", "fields": ["name"]}],
            "config": {"field": "echo", "value": nested(31)}, "grants": {"fields": ["*"]}}),
    )
    .await;
    let r = s.patch(&path, ADMIN_KEY, json!({"name": "Deeper"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = s.get(&path, ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(depth(&r.body["custom"]["deep"]), 32);
    assert_eq!(depth(&r.body["custom"]["echo"]), 31);
    for list in [
        format!("/v1/events?record={id}"),
        "/v1/events".to_string(),
        format!("/v1/runs?record={id}"),
    ] {
        let r = s.get(&list, ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::OK, "{list}: {:?}", r.body);
    }
    let runs = s.runs(ADMIN_KEY, &format!("record={id}")).await;
    assert_eq!(outcome(&runs[0]), "ok");
    let run = s
        .get(
            &format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(depth(&run.body["effects"][0]["value"]), 31);
    let version = r.body["version"].clone();

    // Past it: a 422 that names the limit, and nothing changes.
    for levels in [33, 125] {
        let r = s
            .patch(
                &path,
                ADMIN_KEY,
                json!({"custom": {"deep": nested(levels)}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{levels}");
        assert_eq!(r.code(), "invalid");
        assert!(
            r.message().contains(&format!("nests {levels} levels deep"))
                && r.message().contains("limit is 32"),
            "{}",
            r.message()
        );
        let r = s
            .post(
                "/v1/records",
                ADMIN_KEY,
                json!({"kind": "lead", "name": "x", "custom": {"deep": nested(levels)}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{levels}");
    }
    // Values and records have a size: 64 KiB a value, 256 KiB of custom fields.
    let r = s
        .patch(
            &path,
            ADMIN_KEY,
            json!({"custom": {"big": "x".repeat(70_000)}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("65536 bytes"), "{}", r.message());
    let r = s
        .patch(
            &path,
            ADMIN_KEY,
            json!({"custom": {"big": "x".repeat(900_000)}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.get(&path, ADMIN_KEY).await.body["version"], version);
    for i in 0..4 {
        let r = s
            .patch(
                &path,
                ADMIN_KEY,
                json!({"custom": {format!("f{i}"): "y".repeat(60_000)}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{i}: {}", r.message());
    }
    let r = s
        .patch(
            &path,
            ADMIN_KEY,
            json!({"custom": {"f4": "y".repeat(60_000)}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.message().contains("custom fields together"),
        "{}",
        r.message()
    );

    // Inbound payloads and binding configs obey the same rule.
    for payload in [json!({"a": nested(32)}), json!({"a": "z".repeat(70_000)})] {
        let r = s
            .post(
                "/v1/events",
                ADMIN_KEY,
                json!({"name": "ping", "record": id, "payload": payload}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.message().contains("\"payload\""), "{}", r.message());
    }
    let r = s
        .post(
            "/v1/bindings",
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "bomb", "version": 1,
                "triggers": [{"on": "created"}], "config": {"x": nested(32)}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.message().contains("\"config\" nests 33 levels"),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn hostile_deep_json_is_refused_by_name_and_what_a_module_stores_reads_back() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    bomb(&s).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Target"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();

    // 127 levels through fields.set: a named limit error, nothing to apply.
    let r = s
        .dry_run(
            ADMIN_KEY,
            "bomb",
            1,
            json!({"record": id, "config": {"attack": "deep", "levels": 127}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(outcome(&r.body), "guest_error", "{:?}", r.body["outcome"]);
    let error = r.body["host_calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call"] == "fields.set")
        .map(|c| c["error"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        error.starts_with("limit: ") && error.contains("levels"),
        "{error}"
    );
    assert!(r.body["effects"].as_array().unwrap().is_empty());

    // Inline, it rejects the change by name; the rest of the server reads on.
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "bomb", "version": 1, "mode": "inline",
            "triggers": [{"on": "updated", "fields": ["name"]}],
            "config": {"attack": "deep", "levels": 127}, "grants": {"fields": ["*"]}}),
    )
    .await;
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            ADMIN_KEY,
            json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "rejected_by_automation");
    assert!(r.message().contains("limit is 32"), "{}", r.message());

    // In the background at the limit: it applies, and the record, its events and the run
    // all read back.
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "bomb", "version": 1, "mode": "background",
            "triggers": [{"on": "created"}],
            "config": {"attack": "deep", "levels": 32}, "grants": {"fields": ["*"]}}),
    )
    .await;
    let other = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Background"}))
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    let run = eventually("the background run", 600, || async {
        s.runs(ADMIN_KEY, &format!("record={other}"))
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(outcome(&run), "ok", "{run}");
    let r = s.get(&format!("/v1/records/{other}"), ADMIN_KEY).await;
    assert_eq!(depth(&r.body["custom"]["deep"]), 32);
    for list in [
        format!("/v1/events?record={other}"),
        "/v1/events?limit=500".to_string(),
        "/v1/runs".to_string(),
    ] {
        assert_eq!(
            s.get(&list, ADMIN_KEY).await.status,
            StatusCode::OK,
            "{list}"
        );
    }
}

/// Signs in to the console and returns its session cookie.
async fn console_cookie(s: &Server) -> String {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = c
        .get(format!("{}/console/login", s.base))
        .send()
        .await
        .unwrap();
    let cookie_of = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_string())
            .unwrap()
    };
    let login = cookie_of(&form, "sc_login");
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let r = c
        .post(format!("{}/console/login", s.base))
        .header(reqwest::header::COOKIE, login)
        .form(&[("key", ADMIN_KEY), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    cookie_of(&r, "sc_session")
}

#[tokio::test]
async fn hostile_huge_errors_and_noisy_runs_have_bounded_reports() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    bomb(&s).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Target"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let huge = json!({"attack": "huge-error", "bytes": 50 * 1024 * 1024});

    // A 50 MB error: the outcome keeps 4 KiB and says what was cut.
    let r = s
        .dry_run(ADMIN_KEY, "bomb", 1, json!({"record": id, "config": huge}))
        .await;
    assert_eq!(outcome(&r.body), "guest_error", "{}", r.body["outcome"]);
    let message = r.body["outcome"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("[cut: the message was 52428800 bytes; 4096 are kept]"),
        "{}",
        &message[message.len().saturating_sub(200)..]
    );
    assert!(size(&r.body) < 64 * 1024, "{}", size(&r.body));

    // Inline: a small 422. In the background: small run records and run lists.
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "deals", "module": "bomb", "version": 1, "mode": "inline",
            "triggers": [{"on": "created"}], "config": huge}),
    )
    .await;
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "deal", "name": "Deal"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("[cut: "), "{}", r.message().len());
    assert!(size(&r.body) < 64 * 1024);
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "bomb", "version": 1, "mode": "background",
            "triggers": [{"on": "created"}], "config": huge}),
    )
    .await;
    for i in 0..5 {
        s.record(ADMIN_KEY, json!({"kind": "lead", "name": format!("L{i}")}))
            .await;
    }
    eventually("five background runs", 1200, || async {
        let runs = s.runs(ADMIN_KEY, "outcome=guest_error&limit=200").await;
        (runs.len() >= 6).then_some(())
    })
    .await;
    let r = s.get("/v1/runs?limit=5", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(size(&r.body) < 100 * 1024, "{}", size(&r.body));
    // The console's runs page shows them (it answered 500 on 250 MB of runs).
    let cookie = console_cookie(&s).await;
    let page = reqwest::Client::new()
        .get(format!("{}/console/runs", s.base))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("guest_error"));

    // 900 refused calls quoting a 100 KB field name: errors are clipped, and logs, host
    // calls and error keep 256 KiB in all, with a note.
    let r = s
        .dry_run(
            ADMIN_KEY,
            "bomb",
            1,
            json!({"record": id, "config": {"attack": "noisy", "count": 900}}),
        )
        .await;
    assert_eq!(outcome(&r.body), "ok", "{}", r.body["outcome"]);
    assert!(size(&r.body) < 300 * 1024, "{}", size(&r.body));
    let calls = r.body["host_calls"].as_array().unwrap();
    assert!(calls.len() < 900 && calls.len() > 100, "{}", calls.len());
    let last = r.body["logs"].as_array().unwrap().last().unwrap().clone();
    let note = last["message"].as_str().unwrap();
    assert!(
        note.contains("host calls") && note.contains("[cut: "),
        "{note}"
    );

    // 40 writes of 60 KB: more effects than a run may commit.
    let r = s
        .dry_run(
            ADMIN_KEY,
            "bomb",
            1,
            json!({"record": id, "config": {"attack": "big-effects", "count": 40}}),
        )
        .await;
    assert_eq!(outcome(&r.body), "effect_limit", "{}", r.body["outcome"]);
    // A dry run shows what the module asked for before it was stopped.
    assert!(r.body["effects"].as_array().unwrap().len() < 40);
    assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_list_is_complete_or_says_where_it_stopped() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.lists = ListLimits {
        page_bytes: 64 * 1024,
    };
    let s = Server::start_with(config).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
                "triggers": [{"on": "created"}], "config": {"channel": "notify", "to": "ann"},
                "grants": {"channels": ["notify"]}}),
        )
        .await;
    let mut leads = Vec::new();
    for i in 0..60 {
        let r = s
            .record(ADMIN_KEY, json!({"kind": "lead", "name": format!("L{i}")}))
            .await;
        leads.push(r["id"].as_str().unwrap().to_string());
    }

    // Runs of the oldest lead: behind 59 newer runs, yet on the first page (read from the
    // run index by record), which says nothing follows.
    let r = s
        .get(&format!("/v1/runs?record={}", leads[0]), ADMIN_KEY)
        .await;
    assert_eq!(r.body["runs"].as_array().unwrap().len(), 1, "{:?}", r.body);
    assert_eq!(r.body["runs"][0]["record"], leads[0].as_str());
    assert!(r.body["next"].is_null(), "{:?}", r.body);
    for query in [
        format!("binding={b}&limit=200"),
        "module=effector&outcome=ok&limit=7".to_string(),
    ] {
        let w = walk(&s, &format!("/v1/runs?{query}"), "runs", "before").await;
        assert_eq!(w.items.len(), 60, "{query}");
    }
    assert!(walk(&s, "/v1/runs?outcome=trap", "runs", "before")
        .await
        .items
        .is_empty());

    // The outbox and notifications page with cursors too.
    eventually("every message delivered", 1200, || async {
        let sent = walk(
            &s,
            "/v1/messages?status=sent&limit=500",
            "messages",
            "after",
        )
        .await;
        (sent.items.len() == 60).then_some(())
    })
    .await;
    let w = walk(
        &s,
        "/v1/notifications?user=ann&limit=10",
        "notifications",
        "after",
    )
    .await;
    assert_eq!((w.items.len(), w.pages.len()), (60, 6));
    let w = walk(&s, "/v1/messages?limit=10", "messages", "after").await;
    assert_eq!((w.items.len(), w.pages.len()), (60, 6));
    let w = walk(
        &s,
        &format!("/v1/messages?record={}", leads[59]),
        "messages",
        "after",
    )
    .await;
    assert_eq!(w.items.len(), 1);

    // A page ends at its byte budget (64 KiB here), with a cursor to the rest.
    let mut contacts = Vec::new();
    for i in 0..10 {
        let r = s
            .record(
                ADMIN_KEY,
                json!({"kind": "contact", "name": format!("C{i}"), "custom": {"blob": "z".repeat(20_000)}}),
            )
            .await;
        contacts.push(r["id"].as_str().unwrap().to_string());
    }
    let w = walk(&s, "/v1/records?kind=contact&limit=100", "records", "after").await;
    assert_eq!(w.items.len(), 10);
    assert!(
        w.pages.iter().all(|(_, bytes)| *bytes < 64 * 1024 + 25_000),
        "{:?}",
        w.pages
    );
    assert!(
        w.pages.iter().any(|(n, _)| (1..10).contains(n)),
        "{:?}",
        w.pages
    );
    let path = format!("/v1/records/{}", contacts[0]);
    for i in 0..5 {
        let r = s
            .patch(
                &path,
                ADMIN_KEY,
                json!({"custom": {"blob": format!("{i}").repeat(20_000)}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let w = walk(
        &s,
        &format!("/v1/events?record={}&limit=100", contacts[0]),
        "events",
        "after",
    )
    .await;
    assert_eq!(w.items.len(), 6);
    assert!(w.pages.len() >= 2, "{:?}", w.pages);
    let w = walk(&s, "/v1/events?limit=500", "events", "after").await;
    assert_eq!(w.items.len(), 60 + 10 + 5, "leads, contacts, patches");
    // A filter that matches nothing reads its (empty) index: one empty, final page.
    let w = walk(&s, "/v1/records?owner=nobody", "records", "after").await;
    assert!(w.items.is_empty());
    assert_eq!(w.pages.len(), 1);
    // A text search by name (no index: it looks at the rows, a bounded number a page, see
    // store::sled::page) finds every match through its cursors.
    let w = walk(&s, "/v1/records?q=L5&limit=3", "records", "after").await;
    assert_eq!(w.items.len(), 11, "L5 and L50..L59");
    assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
}

#[tokio::test]
async fn what_a_tenant_lists_whole_has_a_count() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    bomb(&s).await;
    let stages = json!([{"id": "open", "name": "Open", "semantic": "open"}]);
    // Two pipelines come with the tenant.
    for i in 2..100 {
        let r = s
            .post(
                "/v1/pipelines",
                ADMIN_KEY,
                json!({"id": format!("p{i}"), "name": format!("P{i}"), "kind": "lead", "stages": stages}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{i}: {:?}", r.body);
    }
    let r = s
        .post(
            "/v1/pipelines",
            ADMIN_KEY,
            json!({"id": "one-more", "name": "One more", "kind": "lead", "stages": stages}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.message().contains("at most 100 pipelines"),
        "{}",
        r.message()
    );

    let binding = json!({"pipeline": "leads", "module": "bomb", "version": 1,
        "triggers": [{"on": "inbound", "name": "never"}], "enabled": false});
    for _ in 0..200 {
        s.bind(ADMIN_KEY, binding.clone()).await;
    }
    let r = s.post("/v1/bindings", ADMIN_KEY, binding).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.message().contains("at most 200 bindings"),
        "{}",
        r.message()
    );
    let r = s.get("/v1/bindings", ADMIN_KEY).await;
    assert_eq!(r.body["bindings"].as_array().unwrap().len(), 200);

    // The bootstrap key is one of the 1,000 keys.
    let s = std::sync::Arc::new(s);
    for chunk in 0..111 {
        let mut minted = Vec::new();
        for i in 0..9 {
            let s = s.clone();
            minted.push(tokio::spawn(async move {
                s.post(
                    "/v1/keys",
                    ADMIN_KEY,
                    json!({"role": "agent", "name": format!("k{chunk}-{i}")}),
                )
                .await
                .status
            }));
        }
        for m in minted {
            assert_eq!(m.await.unwrap(), StatusCode::CREATED);
        }
    }
    let r = s
        .post(
            "/v1/keys",
            ADMIN_KEY,
            json!({"role": "agent", "name": "over"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.message().contains("at most 1000 API keys"),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn a_stored_run_keeps_a_short_history_while_a_dry_run_shows_more() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    bomb(&s).await;
    // 900 refused host calls, each quoting a 100 KB field name (clipped to 300 B).
    let noisy = json!({"attack": "noisy", "count": 900});
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "bomb", "version": 1, "mode": "background",
            "triggers": [{"on": "created"}], "config": noisy}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Noisy"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let run = eventually("the noisy background run", 1200, || async {
        s.runs(ADMIN_KEY, &format!("record={id}"))
            .await
            .into_iter()
            .next()
    })
    .await;
    let r = s
        .get(
            &format!("/v1/runs/{}", run["id"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let history = size(&r.body["logs"]) + size(&r.body["host_calls"]);
    assert!(
        history <= 4 * 1024 + 512,
        "a stored run keeps 4 KiB: {history}"
    );
    let calls = r.body["host_calls"].as_array().unwrap().len();
    assert!(calls > 0 && calls < 900, "{calls}");
    let note = r.body["logs"].as_array().unwrap().last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.starts_with("[not stored: the last ") && note.contains("host calls"),
        "{note}"
    );
    // The same run as a dry run still answers with the full report.
    let dry = s
        .dry_run(ADMIN_KEY, "bomb", 1, json!({"record": id, "config": noisy}))
        .await;
    assert!(dry.body["host_calls"].as_array().unwrap().len() > calls);
}
