//! The example modules end to end, as `stagecraft serve --demo` sets them up: built from
//! `examples/`, embedded in the host, published, bound, and set off by real record changes.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

async fn find(s: &Server, query: &str, name: &str) -> Value {
    let r = s
        .get(&format!("/v1/records?{query}&limit=500"), ADMIN_KEY)
        .await;
    r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not found"))
}

async fn messages(s: &Server, record: &str) -> Vec<Value> {
    s.get(&format!("/v1/messages?record={record}"), ADMIN_KEY)
        .await
        .body["messages"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_demo_seeds_the_working_examples() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let seeded = stagecraft::demo::seed(&s.state, "default")
        .await
        .unwrap()
        .expect("seeded");
    // Seven published; enrich-lead is left unbound (it needs an enrichment service: see
    // outhttp_enrich.rs).
    assert_eq!(seeded.modules, 7);
    assert!(
        stagecraft::demo::seed(&s.state, "default")
            .await
            .unwrap()
            .is_none(),
        "seeding twice is a no-op"
    );
    let modules = s.get("/v1/modules", ADMIN_KEY).await.body["modules"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(modules, 7);

    // lead-scoring (inline): the hot lead was scored, assigned and qualified as it was created.
    let ada = find(&s, "kind=lead&pipeline=leads", "Ada Lovelace").await;
    assert_eq!(ada["custom"]["score"], 80, "{ada}");
    assert_eq!(ada["owner"], "ann");
    assert_eq!(ada["stage"], "qualified");
    let bob = find(&s, "kind=lead&pipeline=leads", "Bob Student").await;
    assert_eq!(bob["custom"]["score"], -15);
    assert!(bob["owner"].is_null());
    eventually("ann's notification", 200, || async {
        let n = s.get("/v1/notifications?user=ann", ADMIN_KEY).await;
        (n.body["notifications"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;

    // partner-commission and onboarding (background) on the won deal.
    let deal = find(&s, "kind=deal", "Acme rollout").await;
    let id = deal["id"].as_str().unwrap().to_string();
    let deal = eventually("commission and onboarding", 200, || async {
        let d = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body;
        (d["custom"]["commission"].is_number() && d["custom"]["onboarding_step"] == "welcome")
            .then_some(d)
    })
    .await;
    assert_eq!(
        deal["custom"]["commission"], 2740.0,
        "5% of 10k + 7% of 32k: {deal}"
    );
    let msgs = messages(&s, &id).await;
    let keys: Vec<&str> = msgs
        .iter()
        .filter_map(|m| m["idempotency_key"].as_str())
        .collect();
    assert!(
        keys.contains(&format!("commission/{id}").as_str()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("onboarding/welcome/{id}").as_str()),
        "{keys:?}"
    );
    let welcome = msgs
        .iter()
        .find(|m| m["idempotency_key"] == format!("onboarding/welcome/{id}"))
        .unwrap();
    assert_eq!(welcome["to"], "grace@acme.example");
    assert_eq!(
        welcome["status"], "queued",
        "no SMTP relay configured: it waits, visibly"
    );
    let partner_mail = msgs.iter().find(|m| m["to"] == "partners@globex.example");
    assert!(partner_mail.is_some(), "{msgs:?}");

    // Onboarding's follow-ups and renewal reminders are durable timers on the deal.
    let timers = s.state.store.timers("default").unwrap();
    let on_deal: Vec<_> = timers.iter().filter(|t| t.record == id).collect();
    assert!(
        on_deal.len() >= 2 + 3,
        "2 onboarding follow-ups + 3 renewal reminders: {on_deal:?}"
    );

    // Reopening the deal cancels onboarding (tied to "won"); winning it again pays nothing twice.
    let r = s
        .post(
            &format!("/v1/records/{id}/stage"),
            ADMIN_KEY,
            json!({"stage": "negotiation"}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{:?}", r.body);
    let r = s
        .post(
            &format!("/v1/records/{id}/stage"),
            ADMIN_KEY,
            json!({"stage": "won"}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK);
    eventually("the second commission run", 200, || async {
        let runs = s
            .runs(ADMIN_KEY, &format!("record={id}&module=partner-commission"))
            .await;
        (runs.len() == 2).then_some(())
    })
    .await;
    let accounting: Vec<_> = messages(&s, &id)
        .await
        .into_iter()
        .filter(|m| m["idempotency_key"] == format!("commission/{id}"))
        .collect();
    assert_eq!(accounting.len(), 1, "a re-run never pays twice");

    // sla-escalation: a ticket left in "new" past its deadline is escalated; one picked up in
    // time is not.
    let b = s.get("/v1/bindings?pipeline=support", ADMIN_KEY).await.body["bindings"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The quick ticket is picked up under an hour's deadline, so no load can make it late;
    // then the deadline drops to one second for the late one.
    let sla = |seconds: u64| json!({"config": {"response_seconds": seconds, "on_call": "dana", "webhook_url": "http://127.0.0.1:9/on-call"}});
    let r = s
        .patch(&format!("/v1/bindings/{b}"), ADMIN_KEY, sla(3600))
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{:?}", r.body);
    let quick = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "pipeline": "support", "name": "Quick ticket"}),
        )
        .await;
    let qid = quick["id"].as_str().unwrap();
    s.post(
        &format!("/v1/records/{qid}/stage"),
        ADMIN_KEY,
        json!({"stage": "in_progress"}),
    )
    .await;
    let r = s
        .patch(&format!("/v1/bindings/{b}"), ADMIN_KEY, sla(1))
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{:?}", r.body);
    let late = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "pipeline": "support", "name": "Late ticket"}),
        )
        .await;
    let lid = late["id"].as_str().unwrap().to_string();
    let escalated = eventually("the escalation", 600, || async {
        let r = s.get(&format!("/v1/records/{lid}"), ADMIN_KEY).await.body;
        (r["stage"] == "escalated").then_some(r)
    })
    .await;
    assert_eq!(escalated["owner"], "dana");
    let hooks = messages(&s, &lid).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["channel"], "webhook");
    // The quick one is not: once its run on `created` is done and no follow-up of it is
    // pending (leaving "new" cancelled it, or it was dropped when due because the ticket had
    // left the stage), nothing is left that could move it.
    let quick_runs = eventually("the quick ticket's automation is done", 400, || async {
        let runs = s
            .runs(ADMIN_KEY, &format!("record={qid}&module=sla-escalation"))
            .await;
        let pending = s
            .state
            .store
            .timers("default")
            .unwrap()
            .iter()
            .any(|t| t.record == qid);
        (!runs.is_empty() && !pending).then_some(runs)
    })
    .await;
    assert!(
        quick_runs.iter().all(|r| r["event_kind"] != "scheduled"),
        "{quick_runs:?}"
    );
    assert_eq!(
        s.get(&format!("/v1/records/{qid}"), ADMIN_KEY).await.body["stage"],
        "in_progress"
    );

    // Every example run so far succeeded.
    let failed: Vec<Value> = s
        .runs(ADMIN_KEY, "limit=200")
        .await
        .into_iter()
        .filter(|r| r["outcome"]["kind"] != "ok")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}
