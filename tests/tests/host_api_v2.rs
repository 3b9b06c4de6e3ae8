//! Host API 0.2 through the real sandbox: a Rust component built against 0.2 (the `parity`
//! guest) creates records, tasks and comments and completes tasks; a dry run over HTTP shows
//! the effects, each call is denied by name without its grant, and a run that creates without
//! end stops at its cap with `create_limit`. A component built against the frozen 0.1
//! contract (`v01-mover`) runs next to it, unchanged.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{guest, json, temp_dir, Response, Server, ADMIN_KEY};

fn outcome(r: &Response) -> &str {
    r.body["outcome"]["kind"].as_str().unwrap_or_default()
}

fn types(r: &Response) -> Vec<&str> {
    r.body["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

/// The run's `op i: …` verdicts.
fn verdicts(r: &Response) -> Vec<String> {
    r.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("op "))
        .map(str::to_string)
        .collect()
}

/// Whether the component's imports name `stagecraft:automation/records@{version}`.
fn imports(wasm: &[u8], version: &str) -> bool {
    let needle = format!("stagecraft:automation/records@{version}");
    wasm.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn server() -> (tempfile::TempDir, Server, String, String) {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    assert_eq!(
        s.upload(&dev, "parity", guest("parity")).await.status,
        StatusCode::CREATED
    );
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    (dir, s, dev, id)
}

async fn run(s: &Server, dev: &str, lead: &str, ops: Value, actions: Value) -> Response {
    let r = s
        .dry_run(
            dev,
            "parity",
            1,
            json!({"record": lead, "config": {"ops": ops},
                   "grants": {"fields": ["*"], "actions": actions}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r
}

fn all_actions() -> Value {
    json!([
        "create:lead",
        "create:contact",
        "create:company",
        "create:deal",
        "create:task",
        "complete:task",
        "comment"
    ])
}

#[tokio::test]
async fn a_0_1_module_runs_unchanged_next_to_a_0_2_one() {
    let (_dir, s, dev, lead) = server().await;
    let v01 = guest("v01-mover");
    assert!(imports(&v01, "0.1.0") && !imports(&v01, "0.2"));
    assert!(imports(&guest("parity"), "0.2.0"));
    let r = s.upload(&dev, "old", v01).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // Dry runs of both on the same server.
    let old = s
        .dry_run(
            &dev,
            "old",
            1,
            json!({"record": lead, "config": {"target": "contacted"}}),
        )
        .await;
    assert_eq!(outcome(&old), "ok", "{:?}", old.body);
    assert_eq!(types(&old), ["move_stage", "set_field"]);
    let new = run(
        &s,
        &dev,
        &lead,
        json!([{"comment": "hello"}]),
        all_actions(),
    )
    .await;
    assert_eq!(outcome(&new), "ok", "{:?}", new.body);
    assert_eq!(types(&new), ["comment"]);

    // And the 0.1 module's effects commit through a real binding.
    let b = s
        .post(
            "/v1/bindings",
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "old", "version": 1, "mode": "inline",
                   "triggers": [{"on": "created"}], "config": {"target": "contacted"},
                   "grants": {"fields": ["v01"]}}),
        )
        .await;
    assert_eq!(b.status, StatusCode::CREATED, "{:?}", b.body);
    let made = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Grace"}))
        .await;
    assert_eq!(made["stage"], "contacted", "{made}");
    assert_eq!(made["custom"]["v01"], true, "{made}");
    s.stop().await;
}

#[tokio::test]
async fn dry_run_shows_created_records_tasks_and_comments() {
    let (_dir, s, dev, lead) = server().await;
    let ops = json!([
        {"create": "company", "name": "Engines Ltd"},
        {"create": "contact", "name": "Ada", "fields": {"email": "ada@example.com", "company": "$last"}},
        {"create": "deal", "name": "Engine No. 2", "pipeline": "deals",
         "fields": {"contact": "$last", "amount": 250000, "currency": "GBP"}},
        {"task": "Call within 24 h", "due_in": 86400, "assignee": "u-ada", "tags": ["call"]},
        {"complete": "$last"},
        {"complete": "$last"},
        {"comment": "converted"}
    ]);
    let r = run(&s, &dev, &lead, ops, all_actions()).await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    assert!(
        verdicts(&r).iter().all(|v| v.ends_with(": ok")),
        "{:?}",
        verdicts(&r)
    );
    // Completing a task twice completes it once.
    assert_eq!(
        types(&r),
        [
            "create_record",
            "create_record",
            "create_record",
            "create_task",
            "complete_task",
            "comment"
        ]
    );
    let e = r.body["effects"].as_array().unwrap();
    let (company, contact) = (&e[0]["id"], &e[1]["id"]);
    assert_eq!(e[1]["fields"]["company"], *company);
    assert_eq!(e[2]["kind"], "deal");
    assert_eq!(e[2]["pipeline"], "deals");
    assert!(
        e[2]["stage"].is_string(),
        "the pipeline's first stage: {}",
        e[2]
    );
    assert_eq!(e[2]["fields"]["contact"], *contact);
    assert_eq!(e[3]["record"], lead.as_str());
    assert_eq!(e[3]["priority"], "normal");
    assert_eq!(e[3]["tags"], json!(["call"]));
    assert!(e[3]["due_at"].is_string(), "{}", e[3]);
    assert_eq!(e[4]["task"], e[3]["id"]);
    assert_eq!(e[5]["body"], "converted");
    let calls: Vec<&str> = r.body["host_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    for call in [
        "records.create",
        "tasks.create",
        "tasks.complete",
        "timeline.comment",
    ] {
        assert!(calls.contains(&call), "{calls:?}");
    }

    s.stop().await;
}

#[tokio::test]
async fn without_its_grant_each_call_is_denied_by_name() {
    let (_dir, s, dev, lead) = server().await;
    let cases = [
        (
            json!({"create": "deal", "pipeline": "deals"}),
            "create:deal",
        ),
        (
            json!({"create": "lead", "pipeline": "leads"}),
            "create:lead",
        ),
        (json!({"create": "contact"}), "create:contact"),
        (json!({"create": "company"}), "create:company"),
        (json!({"task": "Call"}), "create:task"),
        (json!({"comment": "hi"}), "comment"),
    ];
    for (op, grant) in cases {
        let others: Vec<Value> = all_actions()
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| *a != grant)
            .cloned()
            .collect();
        let r = run(&s, &dev, &lead, json!([op]), json!(others)).await;
        assert_eq!(outcome(&r), "denied", "{op}: {:?}", r.body);
        let message = r.body["outcome"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{grant:?} grant")), "{message}");
        // Granted, the same call is fine.
        let ok = run(&s, &dev, &lead, json!([op]), all_actions()).await;
        assert_eq!(outcome(&ok), "ok", "{op}: {:?}", ok.body);
    }
    // Completing needs its own grant, even for a task the run just created.
    let r = run(
        &s,
        &dev,
        &lead,
        json!([{"task": "Call"}, {"complete": "$last"}]),
        json!(["create:task"]),
    )
    .await;
    assert_eq!(outcome(&r), "denied");
    assert!(r.body["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("\"complete:task\" grant"));
    // A binding's default grants allow none of them.
    let r = s
        .dry_run(
            &dev,
            "parity",
            1,
            json!({"record": lead, "config": {"ops": [{"comment": "hi"}]},
                   "grants": {"fields": ["*"]}}),
        )
        .await;
    assert_eq!(outcome(&r), "denied", "{:?}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn a_run_that_creates_without_end_stops_at_its_cap() {
    let (_dir, s, dev, lead) = server().await;
    for (op, what) in [
        (
            json!({"create": "company", "times": 10000}),
            "more than 25 records created in one run",
        ),
        (
            json!({"task": "t", "times": 10000}),
            "more than 50 tasks created or completed in one run",
        ),
        (
            json!({"comment": "c", "times": 10000}),
            "more than 25 comments in one run",
        ),
    ] {
        let r = run(&s, &dev, &lead, json!([op]), all_actions()).await;
        assert_eq!(outcome(&r), "create_limit", "{:?}", r.body["outcome"]);
        assert_eq!(r.body["outcome"]["message"], what);
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_creates_are_refused_by_the_shared_rules() {
    let (_dir, s, dev, lead) = server().await;
    let company = s
        .record(ADMIN_KEY, json!({"kind": "company", "name": "Acme"}))
        .await;
    let ops = json!([
        {"create": "deal", "pipeline": null},
        {"create": "deal", "pipeline": "leads"},
        {"create": "deal", "pipeline": "mars"},
        {"create": "deal", "pipeline": "deals", "stage": "mars"},
        {"create": "contact", "fields": {"email": "nope"}},
        {"create": "contact", "fields": {"contact": company["id"]}},
        {"create": "deal", "pipeline": "deals", "fields": {"contact": company["id"]}},
        {"create": "company", "fields": {"name": "twice"}},
        {"task": "x".repeat(256)},
        {"task": "t", "due_in": 366 * 86400 + 1},
        {"task": "t", "record": "rec_nope"},
        {"complete": "tsk_nope"},
        {"comment": " "}
    ]);
    let r = run(&s, &dev, &lead, ops, all_actions()).await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    let got: Vec<String> = verdicts(&r)
        .iter()
        .map(|v| v.split(": ").nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        [
            "invalid",
            "invalid",
            "not-found",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "invalid",
            "not-found",
            "not-found",
            "invalid"
        ]
    );
    assert!(types(&r).is_empty(), "{:?}", r.body["effects"]);
    // Now that they are stored, a binding can be granted them by name.
    let b = s
        .post(
            "/v1/bindings",
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "parity", "version": 1,
                   "triggers": [{"on": "created"}], "grants": {"actions": ["create:task"]}}),
        )
        .await;
    assert_eq!(b.status, StatusCode::CREATED, "{:?}", b.body);
    assert_eq!(b.body["grants"]["actions"], json!(["create:task"]));
    s.stop().await;
}

/// The lead-to-deal example (examples/lead-to-deal, as the host embeds it) converts a
/// qualified lead, and reuses the contact (by email) and company (by name) that exist instead
/// of duplicating them.
#[tokio::test]
async fn lead_to_deal_converts_once_without_duplicates() {
    let (_dir, s, dev, _) = server().await;
    let example = stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "lead-to-deal")
        .map(|(_, b)| b.to_vec())
        .unwrap();
    let r = s.upload(&dev, "lead-to-deal", example).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada", "email": "ada@example.com", "owner": "ann",
                   "custom": {"company_name": "Engines Ltd"}}),
        )
        .await;
    let id = lead["id"].as_str().unwrap();
    let convert = || async {
        let r = s
            .dry_run(
                &dev,
                "lead-to-deal",
                1,
                json!({"record": id,
                       "kind": {"type": "stage_changed", "from": "new", "to": "qualified"},
                       "grants": {"fields": ["converted_deal"], "actions": all_actions()}}),
            )
            .await;
        assert_eq!(outcome(&r), "ok", "{:?}", r.body);
        r
    };
    let first = convert().await;
    assert_eq!(
        types(&first),
        [
            "create_record",
            "create_record",
            "create_record",
            "create_task",
            "set_field",
            "comment"
        ]
    );
    let e = first.body["effects"].as_array().unwrap();
    assert_eq!(e[0]["kind"], "company");
    assert_eq!(e[1]["fields"]["email"], "ada@example.com");
    assert_eq!(e[1]["fields"]["company"], e[0]["id"]);
    assert_eq!(e[2]["fields"]["contact"], e[1]["id"]);
    assert_eq!(e[3]["assignee"], "ann");
    assert_eq!(e[3]["record"], e[2]["id"]);

    // The contact and company exist: only the deal (and its task) is new.
    let company = s
        .record(ADMIN_KEY, json!({"kind": "company", "name": "Engines Ltd"}))
        .await;
    let contact = s
        .record(
            ADMIN_KEY,
            json!({"kind": "contact", "name": "Ada L.", "email": "ada@example.com"}),
        )
        .await;
    let second = convert().await;
    let e = second.body["effects"].as_array().unwrap();
    assert_eq!(types(&second)[0], "create_record");
    assert_eq!(types(&second)[1], "create_task");
    assert_eq!(e[0]["kind"], "deal");
    assert_eq!(e[0]["fields"]["contact"], contact["id"]);
    assert_eq!(e[0]["fields"]["company"], company["id"]);

    // Once converted, it is left alone.
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            ADMIN_KEY,
            json!({"version": lead["version"], "custom": {"converted_deal": "rec_x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let third = convert().await;
    assert!(types(&third).is_empty(), "{:?}", third.body["effects"]);
    s.stop().await;
}
