//! A data dir written by version 1 of the storage (JSON values under sled key families, as
//! main had it at 4cc38bc) still opens and reads back whole, row for row. Storage v2 (issue
//! 17) changes the encoding and migrates in place; this is the test that guards it.
//!
//! The fixture, `tests/fixtures/v1-data.tar.gz`, was made by [`generate_v1_fixture`] (ignored:
//! run by hand, see tests/fixtures/README.md) against the real server and API. It holds the
//! data dir (`data/db`, sled; `data/modules`, the components' `.wasm` without their compiled
//! `.cwasm`, which the sandbox recompiles) and `expected.json`: everything the store returned
//! right after writing it, read through the store's own reads by [`dump`].

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Map, Value};
use stagecraft::model::{Channel, Job, MessageStatus};
use stagecraft::store::{Changeset, ListLimits, MessageFilter, Op, RunFilter, Scope, Store};
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// The CRM users whose notifications the fixture's dump reads.
const USERS: [&str; 3] = ["ann", "bob", "dana"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1-data.tar.gz")
}

fn page<T>(mut next: impl FnMut(Option<String>) -> (Vec<T>, Option<String>)) -> Vec<T> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let (items, n) = next(after);
        all.extend(items);
        match n {
            Some(c) => after = Some(c),
            None => return all,
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// Everything the store holds, read through its reads, as JSON (one object per tenant plus
/// the cross-tenant counts). Reads only: it writes nothing.
fn dump(store: &Store) -> Value {
    let lim = ListLimits::default();
    let mut out = Map::new();
    let tenants = store.tenants().unwrap();
    out.insert("tenants".into(), to_json(&tenants));
    for t in &tenants {
        let t = t.id.as_str();
        let mut d = Map::new();
        let keys: Vec<Value> = store
            .keys(t)
            .unwrap()
            .iter()
            .map(|k| {
                // The hash is the key's address, not part of its stored value.
                let mut by_hash = store.key_by_hash(&k.hash).unwrap().unwrap();
                by_hash.hash = k.hash.clone();
                assert_eq!(&by_hash, k);
                json!({"key": k, "hash": k.hash})
            })
            .collect();
        d.insert("keys".into(), Value::Array(keys));
        let pipelines = store.pipelines(t).unwrap();
        for p in &pipelines {
            assert_eq!(store.pipeline(t, &p.id).unwrap().as_ref(), Some(p));
        }
        d.insert("pipelines".into(), to_json(&pipelines));

        let records = page(|after| {
            let p = store
                .records(t, &Default::default(), after.as_deref(), 7, &lim)
                .unwrap();
            (p.records, p.next)
        });
        let mut journals = Map::new();
        for r in &records {
            assert_eq!(store.record(t, &r.id).unwrap().as_ref(), Some(r));
            let events: Vec<String> = page(|after| {
                let p = store
                    .record_events(t, &r.id, after.as_deref(), 3, &lim)
                    .unwrap();
                (p.items.into_iter().map(|e| e.id).collect(), p.next)
            });
            journals.insert(r.id.clone(), to_json(&events));
        }
        d.insert("records".into(), to_json(&records));
        d.insert("record_events".into(), Value::Object(journals));
        let events = page(|after| {
            let p = store.events(t, after.as_deref(), 11, &lim).unwrap();
            (p.items, p.next)
        });
        for e in &events {
            assert_eq!(store.event(t, &e.id).unwrap().as_ref(), Some(e));
        }
        d.insert("events".into(), to_json(&events));

        let bindings = store.bindings(t).unwrap();
        let mut binding_runs = Map::new();
        let mut rollups = Map::new();
        for b in bindings.iter() {
            assert_eq!(store.binding(t, &b.id).unwrap().as_ref(), Some(b));
            let ids = store
                .binding_runs(t, &b.id, None, None, None, 10_000)
                .unwrap();
            binding_runs.insert(b.id.clone(), to_json(&ids));
            let r = store
                .rollups(t, Scope::Binding, &b.id, 0, 999_999_999)
                .unwrap();
            rollups.insert(format!("b/{}", b.id), to_json(&r));
        }
        d.insert("bindings".into(), to_json(bindings.as_ref()));
        d.insert("binding_runs".into(), Value::Object(binding_runs));
        let modules = store.modules(t).unwrap();
        let mut versions = Map::new();
        for m in &modules {
            assert_eq!(store.module(t, &m.name).unwrap().as_ref(), Some(m));
            let vs = store.module_versions(t, &m.name).unwrap();
            for v in &vs {
                let one = store.module_version(t, &m.name, v.version).unwrap();
                assert_eq!(one.as_ref(), Some(v));
            }
            versions.insert(m.name.clone(), to_json(&vs));
            let r = store
                .rollups(t, Scope::Module, &m.name, 0, 999_999_999)
                .unwrap();
            rollups.insert(format!("m/{}", m.name), to_json(&r));
        }
        d.insert("modules".into(), to_json(&modules));
        d.insert("module_versions".into(), Value::Object(versions));
        d.insert("rollups".into(), Value::Object(rollups));

        let runs = page(|before| {
            let p = store
                .runs(t, &RunFilter::default(), before.as_deref(), 5, &lim)
                .unwrap();
            (p.items, p.next)
        });
        for r in &runs {
            assert_eq!(store.run(t, &r.id).unwrap().as_ref(), Some(r));
        }
        d.insert("runs".into(), to_json(&runs));
        let messages = page(|after| {
            let p = store
                .messages(t, &MessageFilter::default(), after.as_deref(), 4, &lim)
                .unwrap();
            (p.items, p.next)
        });
        for m in &messages {
            assert_eq!(store.message(t, &m.id).unwrap().as_ref(), Some(m));
        }
        d.insert("messages".into(), to_json(&messages));
        let timers = store.timers(t).unwrap();
        let mut follow_ups = Map::new();
        for tm in &timers {
            let (pair, all) = store
                .pending_follow_ups(t, &tm.binding, &tm.record)
                .unwrap();
            follow_ups.insert(format!("{}/{}", tm.binding, tm.record), json!([pair, all]));
        }
        d.insert("timers".into(), to_json(&timers));
        d.insert("follow_ups".into(), Value::Object(follow_ups));
        let jobs: Vec<Value> = store
            .tenant_jobs(t, 10_000)
            .unwrap()
            .into_iter()
            .map(|q| json!({"id": q.id, "tenant": q.tenant, "job": q.job.ok()}))
            .collect();
        d.insert("jobs".into(), Value::Array(jobs));
        let mut notifications = Map::new();
        for u in USERS {
            let n = page(|after| {
                let p = store
                    .notifications(t, u, after.as_deref(), 2, &lim)
                    .unwrap();
                (p.items, p.next)
            });
            notifications.insert(u.to_string(), to_json(&n));
        }
        d.insert("notifications".into(), Value::Object(notifications));
        d.insert("channels".into(), to_json(&store.channels(t).unwrap()));
        out.insert(format!("tenant/{t}"), Value::Object(d));
    }
    // Only `default` sent webhooks, so only it has a secret (reading one creates it).
    out.insert(
        "webhook_secret/default".into(),
        json!(store.webhook_secret("default").unwrap()),
    );
    out.insert("queued_jobs".into(), json!(store.queued_jobs().unwrap()));
    out.insert("outbox_depth".into(), json!(store.outbox_depth().unwrap()));
    Value::Object(out)
}

/// A webhook receiver on loopback that accepts everything.
async fn receiver() -> String {
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn ok(r: stagecraft_tests::Response, status: StatusCode) -> Value {
    assert_eq!(r.status, status, "{:?}", r.body);
    r.body
}

/// Writes the fixture: drives a real server through the API (two tenants, keys, pipelines,
/// records of every kind with custom fields and links, bindings of three modules, runs of
/// several outcomes, messages sent, dead and queued, notifications, timers of both kinds),
/// stops it cleanly, then uses the store directly for what only a crash or a later moment
/// leaves behind (a message claimed mid-attempt, a dead letter put back, a queued job, a
/// retention pass), dumps it and packs it. Run by hand:
/// `cargo test -p stagecraft-tests --test stored_v1 -- --ignored generate_v1_fixture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/fixtures/v1-data.tar.gz; see tests/fixtures/README.md"]
async fn generate_v1_fixture() {
    let tmp = temp_dir();
    let data = tmp.path().join("data");
    let hook = receiver().await;
    let hook_host = hook
        .trim_start_matches("http://")
        .trim_end_matches("/hook")
        .to_string();
    let mut config = stagecraft::config::Config::new(&data);
    config.delivery.allow_internal_destinations = true;
    config.delivery.base_backoff = Duration::from_millis(100);
    config.delivery.retry_window = Duration::from_secs(2);
    config.delivery.tick = Duration::from_millis(25);
    let s = Server::start_with(config).await;
    let k = ADMIN_KEY;

    // Before the retention cutoff: companies (no pipeline, no automation) whose journal
    // snapshots the retention pass below strips.
    let globex = s
        .record(
            k,
            json!({"kind": "company", "name": "Globex Partners", "email": "partners@globex.example",
                   "custom": {"industry": "logistics", "employees": 1200, "tags": ["partner", "emea"]}}),
        )
        .await;
    let acme_co = s
        .record(
            k,
            json!({"kind": "company", "name": "Acme Corp", "phone": "+44 20 7946 0000",
                   "custom": {"address": {"city": "Zürich", "zip": "8001"}, "vip": true}}),
        )
        .await;
    // The cutoff lies strictly after what came before it and strictly before what follows.
    let before: chrono::DateTime<Utc> = acme_co["updated_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("the company's updated_at");
    let cutoff = clock_past(before).await;
    clock_past(cutoff).await;

    // Keys: one of each role, one revoked.
    let dev = s.key(k, "developer").await;
    let r = s
        .post(
            "/v1/keys",
            k,
            json!({"role": "agent", "name": "Ann's key", "user": "ann"}),
        )
        .await;
    let agent = ok(r, StatusCode::CREATED).await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .post(
            "/v1/keys",
            k,
            json!({"role": "developer", "name": "old laptop"}),
        )
        .await;
    let old = id(&ok(r, StatusCode::CREATED).await);
    ok(
        s.delete(&format!("/v1/keys/{old}"), k).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    // Pipelines: a custom one, and one changed after creation (version 2).
    let stages = |ids: &[(&str, &str)]| {
        Value::Array(
            ids.iter()
                .map(|(id, sem)| json!({"id": id, "name": id.to_uppercase(), "semantic": sem}))
                .collect(),
        )
    };
    let r = s
        .post(
            "/v1/pipelines",
            k,
            json!({"id": "hooks", "name": "Hooks", "kind": "lead",
                   "stages": stages(&[("new", "open"), ("working", "open"), ("done", "won"), ("dropped", "lost")])}),
        )
        .await;
    ok(r, StatusCode::CREATED).await;
    let r = s
        .post(
            "/v1/pipelines",
            k,
            json!({"id": "renewals", "name": "Renewals", "kind": "deal",
                   "stages": stages(&[("due", "open"), ("renewed", "won"), ("churned", "lost")])}),
        )
        .await;
    ok(r, StatusCode::CREATED).await;
    let r = s
        .patch(
            "/v1/pipelines/renewals",
            k,
            json!({"name": "Renewals 2026", "version": 1,
                   "stages": stages(&[("due", "open"), ("talking", "open"), ("renewed", "won"), ("churned", "lost")])}),
        )
        .await;
    ok(r, StatusCode::OK).await;

    // Channels: webhooks to the receiver only; email and SMS unset (their messages wait).
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/channels",
            Some(k),
            Some(json!({"webhook": {"allowed_hosts": [hook_host]}})),
        )
        .await;
    ok(r, StatusCode::OK).await;

    // Modules: effector twice (same bytes: one file, two versions), follower, panicker.
    assert_eq!(s.upload_guest(&dev, "effector", "effector").await, 1);
    assert_eq!(s.upload_guest(&dev, "effector", "effector").await, 2);
    s.upload_guest(&dev, "follower", "follower").await;
    s.upload_guest(&dev, "panicker", "panicker").await;
    // A third version, deleted again: the numbers keep counting.
    assert_eq!(s.upload_guest(&dev, "effector", "effector").await, 3);
    ok(
        s.delete("/v1/modules/effector/versions/3", k).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    let bind = |pipeline: &str,
                module: &str,
                version: u32,
                mode: &str,
                triggers: Value,
                config: Value,
                grants: Value| {
        json!({"pipeline": pipeline, "module": module, "version": version, "mode": mode,
               "triggers": triggers, "config": config, "grants": grants})
    };
    // hooks: a webhook to the receiver on every create (sent); one to a host the channel does
    // not allow when a lead is done (dead); an email once per tenant (idempotency key,
    // queued) and one on every stage change (queued).
    s.bind(
        k,
        bind("hooks", "effector", 1, "inline", json!([{"on": "created"}]),
            json!({"field": "touched", "value": {"by": "effector", "at": [1, 2, 3]}, "channel": "webhook", "to": hook}),
            json!({"fields": ["touched"], "channels": ["webhook"]})),
    )
    .await;
    s.bind(
        k,
        bind(
            "hooks",
            "effector",
            2,
            "background",
            json!([{"on": "entered_stage", "stage": "done"}]),
            json!({"channel": "webhook", "to": "http://127.0.0.1:9/blocked"}),
            json!({"channels": ["webhook"]}),
        ),
    )
    .await;
    s.bind(
        k,
        bind(
            "hooks",
            "effector",
            2,
            "background",
            json!([{"on": "created"}]),
            json!({"channel": "email", "to": "welcome@example.com", "key": "welcome-once"}),
            json!({"channels": ["email"]}),
        ),
    )
    .await;
    s.bind(
        k,
        bind(
            "hooks",
            "effector",
            1,
            "background",
            json!([{"on": "stage_changed"}]),
            json!({"channel": "email", "to": "sales@example.com"}),
            json!({"channels": ["email"]}),
        ),
    )
    .await;
    // leads: a follow-up a day after each create (timers, follow-up counters); a
    // notification for ann when notes change.
    let follow = s
        .bind(
            k,
            bind(
                "leads",
                "follower",
                1,
                "background",
                json!([{"on": "created"}]),
                json!({"after": 86400}),
                json!({"fields": ["followed_up"], "channels": ["email"]}),
            ),
        )
        .await;
    let notify = s
        .bind(
            k,
            bind(
                "leads",
                "effector",
                1,
                "background",
                json!([{"on": "updated", "fields": ["notes"]}]),
                json!({"channel": "notify", "to": "ann"}),
                json!({"channels": ["notify"]}),
            ),
        )
        .await;
    // deals: a write without its grant (denied); a run two days after a deal is won (a
    // delayed timer, tied to the stage).
    s.bind(
        k,
        bind(
            "deals",
            "effector",
            1,
            "background",
            json!([{"on": "created"}]),
            json!({"field": "secret", "value": 1}),
            json!({}),
        ),
    )
    .await;
    s.bind(
        k,
        bind(
            "deals",
            "effector",
            2,
            "background",
            json!([{"on": "entered_stage", "stage": "won", "delay_seconds": 172800}]),
            json!({"field": "onboarded", "value": true}),
            json!({"fields": ["onboarded"]}),
        ),
    )
    .await;
    // renewals: a module that panics; an inline one that refuses price changes (the change
    // is rejected and only its run record stays, with the event it never journaled).
    s.bind(
        k,
        bind(
            "renewals",
            "panicker",
            1,
            "background",
            json!([{"on": "created"}]),
            json!({}),
            json!({}),
        ),
    )
    .await;
    s.bind(
        k,
        bind(
            "renewals",
            "effector",
            1,
            "inline",
            json!([{"on": "updated", "fields": ["price"]}]),
            json!({"fail": true}),
            json!({}),
        ),
    )
    .await;

    // Records of every kind, with links and custom fields of every JSON type.
    let grace = s
        .record(
            k,
            json!({"kind": "contact", "name": "Grace Hopper", "email": "grace@acme.example",
                   "company": id(&acme_co), "owner": "bob",
                   "custom": {"languages": ["COBOL", "FLOW-MATIC"], "rank": "rear admiral", "nil": null}}),
        )
        .await;
    let mut leads = Vec::new();
    for (i, name) in ["Ada Lovelace", "Alan Turing", "Edsger Dijkstra"]
        .iter()
        .enumerate()
    {
        let lead = s
            .record(
                k,
                json!({"kind": "lead", "pipeline": "leads", "name": name, "email": format!("lead{i}@example.com"),
                       "company": id(&globex),
                       "custom": {"score": i * 10, "source": "referral", "ratio": 0.25 + i as f64}}),
            )
            .await;
        leads.push(id(&lead));
    }
    let mut hooked = Vec::new();
    for name in ["Printer on fire", "Löwe 🦁 im Büro", "Quiet ticket"] {
        let lead = s
            .record(
                k,
                json!({"kind": "lead", "pipeline": "hooks", "name": name, "email": "it@acme.example"}),
            )
            .await;
        hooked.push(id(&lead));
    }
    let deal = s
        .record(
            k,
            json!({"kind": "deal", "name": "Acme rollout", "amount": 42000.5, "currency": "EUR",
                   "stage": "negotiation", "owner": "ann", "contact": id(&grace), "company": id(&acme_co),
                   "custom": {"partner": id(&globex), "contract_end": "2027-03-31"}}),
        )
        .await;
    let renewal = s
        .record(
            k,
            json!({"kind": "deal", "pipeline": "renewals", "name": "Globex renewal", "amount": 9000,
                   "currency": "USD", "company": id(&globex), "custom": {"price": 9000}}),
        )
        .await;

    // Changes: stage moves, an update that notifies, one refused inline, a conversion, an
    // inbound event, a deletion.
    let mv = |rec: &str, stage: &str| {
        let (rec, stage) = (rec.to_string(), stage.to_string());
        let s = &s;
        async move {
            let r = s
                .post(
                    &format!("/v1/records/{rec}/stage"),
                    k,
                    json!({"stage": stage}),
                )
                .await;
            ok(r, StatusCode::OK).await
        }
    };
    mv(&hooked[0], "working").await;
    mv(&hooked[0], "done").await;
    mv(&hooked[1], "done").await;
    mv(&id(&deal), "won").await;
    mv(&leads[1], "contacted").await;
    let r = s
        .patch(
            &format!("/v1/records/{}", leads[0]),
            &agent,
            json!({"custom": {"notes": "met at the conference", "score": null}}),
        )
        .await;
    ok(r, StatusCode::OK).await;
    let r = s
        .patch(
            &format!("/v1/records/{}", id(&renewal)),
            k,
            json!({"custom": {"price": 12000}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = s
        .post(
            &format!("/v1/records/{}/convert", leads[2]),
            k,
            json!({"contact": true, "deal": "Dijkstra consulting", "amount": 1500, "currency": "EUR"}),
        )
        .await;
    ok(r, StatusCode::CREATED).await;
    let r = s
        .post(
            "/v1/events",
            k,
            json!({"name": "signup", "record": leads[1], "payload": {"plan": "pro", "seats": 12}}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    ok(
        s.delete(&format!("/v1/records/{}", hooked[2]), k).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    // A second tenant with a little of its own.
    let r = s
        .post("/v1/tenants", k, json!({"id": "acme", "name": "Acme Inc"}))
        .await;
    let acme_key = ok(r, StatusCode::CREATED).await["admin_key"]
        .as_str()
        .unwrap()
        .to_string();
    let other = s
        .record(
            &acme_key,
            json!({"kind": "lead", "name": "Someone else's lead", "owner": "dana",
                   "custom": {"score": 99}}),
        )
        .await;
    mv_tenant(&s, &acme_key, &id(&other), "qualified").await;

    // Let background work and delivery settle: no jobs left, every webhook sent or dead.
    let store = s.state.store.clone();
    eventually("background work settles", 1200, || {
        let store = store.clone();
        async move {
            let jobs = store.queued_jobs().unwrap();
            let msgs = store
                .messages(
                    "default",
                    &MessageFilter::default(),
                    None,
                    1000,
                    &ListLimits::default(),
                )
                .unwrap()
                .items;
            let settled = msgs
                .iter()
                .filter(|m| m.channel == Channel::Webhook)
                .all(|m| matches!(m.status, MessageStatus::Sent | MessageStatus::Dead));
            let notified = !store
                .notifications("default", "ann", None, 10, &ListLimits::default())
                .unwrap()
                .items
                .is_empty();
            (jobs == 0 && settled && notified).then_some(())
        }
    })
    .await;
    drop(store);
    let _ = (follow, notify);
    s.stop().await;

    // What only a crash or a later moment leaves: a message claimed mid-attempt, a dead
    // letter put back by an admin, a job still queued, a retention pass.
    let store = Store::open(&data.join("db")).unwrap();
    let lim = ListLimits::default();
    let msgs = store
        .messages("default", &MessageFilter::default(), None, 1000, &lim)
        .unwrap()
        .items;
    let dead = msgs
        .iter()
        .find(|m| m.status == MessageStatus::Dead)
        .expect("a dead letter");
    let retry = Op::RetryMessage {
        id: dead.id.clone(),
    };
    store.commit(&Changeset::op("default", retry)).unwrap();
    let email = msgs
        .iter()
        .find(|m| m.status == MessageStatus::Queued && m.channel == Channel::Email)
        .expect("a queued email");
    let later = Utc::now() + chrono::Duration::days(1);
    let (due, _) = store
        .due_after(None, later, 10_000, |_, key| key.ends_with(&email.id))
        .unwrap();
    assert_eq!(due.len(), 1);
    assert!(store.claim_message(&due[0]).unwrap().is_some());
    let event = store
        .events("default", None, 1, &lim)
        .unwrap()
        .items
        .remove(0);
    let mut cs = Changeset::new("default");
    cs.jobs.push(Job {
        id: stagecraft::model::id::new_id("job"),
        tenant: "default".into(),
        event: event.id.clone(),
        binding: None,
    });
    store.commit(&cs).unwrap();
    let pruned = store.prune(cutoff, 16).unwrap();
    assert!(pruned.snapshots >= 2, "{pruned:?}");
    let expected = dump(&store);
    store.flush().unwrap();
    drop(store);

    std::fs::write(
        tmp.path().join("expected.json"),
        serde_json::to_vec_pretty(&expected).unwrap(),
    )
    .unwrap();
    let out = fixture();
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(
            "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
             --exclude='*.cwasm' -C \"$1\" -cf - data expected.json | gzip -9n > \"$2\"",
        )
        .arg("sh")
        .arg(tmp.path())
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    println!(
        "wrote {} ({} bytes)",
        out.display(),
        std::fs::metadata(&out).unwrap().len()
    );
}

async fn mv_tenant(s: &Server, key: &str, rec: &str, stage: &str) {
    let r = s
        .post(
            &format!("/v1/records/{rec}/stage"),
            key,
            json!({"stage": stage}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// Unpacks the fixture into a fresh temp dir: `data/` and `expected.json`.
/// Waits (bounded: 10 s) until the clock reads later than `t`, and returns that reading.
async fn clock_past(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    for _ in 0..10_000 {
        let now = Utc::now();
        if now > t {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the clock never passed {t}");
}

fn unpack() -> (tempfile::TempDir, Value) {
    let tmp = temp_dir();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(fixture())
        .arg("-C")
        .arg(tmp.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {}", fixture().display());
    let expected =
        serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json")).unwrap()).unwrap();
    (tmp, expected)
}

/// The dump as today's model reads a v1 row: fields the model gained since v1 appear with
/// the default an old row gets (a module version's `artifact_size`, 0 until the server
/// sizes it from the artifact file at start-up).
fn with_fields_added_since_v1(expected: &mut Value) {
    for (section, tenant) in expected.as_object_mut().unwrap() {
        if !section.starts_with("tenant/") {
            continue;
        }
        let Some(modules) = tenant
            .pointer_mut("/module_versions")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for versions in modules.values_mut() {
            for v in versions.as_array_mut().unwrap() {
                let v = v.as_object_mut().unwrap();
                v.entry("artifact_size").or_insert(Value::from(0));
            }
        }
    }
}

/// Names of what `v` holds at `path` (`/tenant/default/runs`), for the coverage checks.
fn values<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    v.pointer(path)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{path} is in the dump"))
}

fn set_of(items: &[Value], pointer: &str) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|i| i.pointer(pointer).and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_fixture_covers_every_kind_of_row() {
    let (_tmp, expected) = unpack();
    let d = "/tenant~1default";
    let tenants = set_of(values(&expected, "/tenants"), "/id");
    assert_eq!(tenants, ["acme", "default"].map(String::from).into());
    let kinds = set_of(values(&expected, &format!("{d}/records")), "/kind");
    assert_eq!(kinds.len(), 4, "lead, contact, company, deal: {kinds:?}");
    let outcomes = set_of(values(&expected, &format!("{d}/runs")), "/outcome/kind");
    for o in ["ok", "guest_error", "panic", "denied"] {
        assert!(outcomes.contains(o), "{o} in {outcomes:?}");
    }
    let runs = values(&expected, &format!("{d}/runs"));
    assert!(runs.iter().any(|r| r["unjournaled_event"].is_object()));
    let statuses = set_of(values(&expected, &format!("{d}/messages")), "/status");
    assert_eq!(
        statuses,
        ["dead", "queued", "sending", "sent"]
            .map(String::from)
            .into()
    );
    let timers = set_of(values(&expected, &format!("{d}/timers")), "/type");
    assert_eq!(timers, ["delayed", "follow_up"].map(String::from).into());
    assert!(!values(&expected, &format!("{d}/jobs")).is_empty());
    assert!(!values(&expected, &format!("{d}/notifications/ann")).is_empty());
    let events = values(&expected, &format!("{d}/events"));
    assert!(
        events.iter().any(|e| e["snapshot"].is_null()),
        "pruned snapshots"
    );
    assert!(events.iter().any(|e| e["snapshot"].is_object()));
    let versions = values(&expected, &format!("{d}/module_versions/effector"));
    assert_eq!(versions.len(), 2, "version 3 was deleted");
    let rollups = expected
        .pointer(&format!("{d}/rollups/m~1effector"))
        .unwrap();
    assert!(!rollups.as_array().unwrap().is_empty());
    let follow_ups = expected.pointer(&format!("{d}/follow_ups")).unwrap();
    assert!(!follow_ups.as_object().unwrap().is_empty());
    assert!(expected["webhook_secret/default"].is_string());
}

/// The store, as it is now, reads the fixture back exactly as the code that wrote it did.
#[test]
fn a_v1_data_dir_reads_back_row_for_row() {
    let (tmp, mut expected) = unpack();
    with_fields_added_since_v1(&mut expected);
    let store = Store::open(&tmp.path().join("data/db")).unwrap();
    let got = dump(&store);
    for (section, want) in expected.as_object().unwrap() {
        let have = &got[section];
        if let (Some(want), Some(have)) = (want.as_object(), have.as_object()) {
            for (k, w) in want {
                assert_eq!(&have[k], w, "{section}/{k}");
            }
        }
        assert_eq!(have, want, "{section}");
    }
    assert_eq!(got, expected);
}

/// A server starts on the fixture, heals what a crash left (the claimed message goes back to
/// the queue), serves it, and runs its modules (recompiled from the stored `.wasm`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_serves_a_v1_data_dir() {
    let (tmp, expected) = unpack();
    let s = Server::start(&tmp.path().join("data")).await;
    let d = &expected["tenant/default"];
    let sending = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["status"] == "sending")
        .unwrap();
    let r = s
        .get(&format!("/v1/messages/{}", id(sending)), ADMIN_KEY)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["status"], "queued",
        "requeued at start: {:?}",
        r.body
    );
    let records = s.get("/v1/records?limit=500", ADMIN_KEY).await;
    assert_eq!(
        records.body["records"].as_array().unwrap().len(),
        d["records"].as_array().unwrap().len()
    );
    let lead = d["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pipeline"] == "hooks")
        .unwrap();
    let r = s
        .dry_run(ADMIN_KEY, "effector", 2, json!({"record": lead["id"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["outcome"]["kind"], "ok", "{:?}", r.body);
    s.stop().await;
}

/// Families whose values storage v2 keeps as rows (counters and index entries keep their
/// bytes).
const ROW_FAMILIES: [&str; 19] = [
    "tenant/", "key/", "pipe/", "rec/", "evt/", "bind/", "mod/", "modv/", "run/", "out/", "timer/",
    "job/", "chan/", "notif/", "roll/", "rtim/", "whsec/", "idem/", "retm/",
];

/// The first byte of every storage v2 row.
const ROW_TAG: u8 = 0xC2;

/// The data tree of a database no store holds open (waits, bounded, for a dropped store's
/// handle to let go of sled's lock).
fn raw_db(db: &Path) -> sled::Db {
    for _ in 0..1200 {
        match sled::open(db) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed locked for 30 s", db.display())
}

/// Every value of the row families, by key.
fn row_values(db: &sled::Db) -> Vec<(String, Vec<u8>)> {
    let data = db.open_tree("data").unwrap();
    ROW_FAMILIES
        .iter()
        .flat_map(|f| data.scan_prefix(f).map(|kv| kv.unwrap()))
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), v.to_vec()))
        .collect()
}

fn format_of(db: &sled::Db) -> Option<i64> {
    let v = db.open_tree("data").unwrap().get("meta/format").unwrap()?;
    Some(i64::from_be_bytes(v.as_ref().try_into().unwrap()))
}

/// Opens the store on `db`, checks it reads back `expected` whole, and closes it.
fn open_and_compare(db: &Path, expected: &Value) {
    let store = Store::open(db).unwrap();
    let got = dump(&store);
    for (section, want) in expected.as_object().unwrap() {
        assert_eq!(&got[section], want, "{section}");
    }
    drop(store);
}

/// After the migration: the current format (3) recorded, every row family's value a row,
/// no markers left.
fn assert_migrated(db: &sled::Db, keys: &BTreeSet<String>) {
    assert_eq!(format_of(db), Some(3));
    let after = row_values(db);
    let stored: BTreeSet<String> = after.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(&stored, keys, "the same keys before and after");
    for (k, v) in &after {
        assert_eq!(v.first(), Some(&ROW_TAG), "{k} is a storage row");
    }
    let data = db.open_tree("data").unwrap();
    assert_eq!(data.scan_prefix("meta/rows/").count(), 0, "markers removed");
}

/// Opening a v1 data dir migrates every row in place, records the current format, and
/// reads back row for row; opening it again rewrites nothing.
#[test]
fn a_v1_data_dir_is_migrated_in_place_once() {
    let (tmp, mut expected) = unpack();
    with_fields_added_since_v1(&mut expected);
    let db = tmp.path().join("data/db");
    let before = row_values(&raw_db(&db));
    for f in ROW_FAMILIES {
        let n = before.iter().filter(|(k, _)| k.starts_with(f)).count();
        assert!(n > 0, "the fixture has values under {f}");
    }
    assert!(before.iter().all(|(_, v)| v.first() != Some(&ROW_TAG)));
    assert_eq!(format_of(&raw_db(&db)), None, "v1 records no format");
    let keys: BTreeSet<String> = before.iter().map(|(k, _)| k.clone()).collect();

    open_and_compare(&db, &expected);
    let migrated = row_values(&raw_db(&db));
    assert_migrated(&raw_db(&db), &keys);
    let json: usize = before.iter().map(|(_, v)| v.len()).sum();
    let rows: usize = migrated.iter().map(|(_, v)| v.len()).sum();
    eprintln!("row families: {json} bytes as v1 JSON, {rows} bytes as rows");
    assert!(
        rows * 2 < json,
        "rows ({rows} B) are less than half the JSON ({json} B)"
    );

    open_and_compare(&db, &expected);
    assert_eq!(
        row_values(&raw_db(&db)),
        migrated,
        "a second open rewrites nothing"
    );
}

/// A migration that stopped partway (some families done and marked, one half converted,
/// the rest untouched) resumes on the next open and ends where an uninterrupted one does.
#[test]
fn an_interrupted_migration_resumes() {
    let (done, _) = unpack();
    let done_db = done.path().join("data/db");
    drop(Store::open(&done_db).unwrap());
    let converted: Vec<(String, Vec<u8>)> = row_values(&raw_db(&done_db));

    let (tmp, mut expected) = unpack();
    with_fields_added_since_v1(&mut expected);
    let db = tmp.path().join("data/db");
    let keys: BTreeSet<String> = row_values(&raw_db(&db))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    {
        // What a migration killed while converting `evt/` leaves: the families before it
        // converted and marked, half of `evt/` converted, nothing after it, no format.
        let raw = raw_db(&db);
        let data = raw.open_tree("data").unwrap();
        for f in ["tenant/", "key/", "pipe/", "rec/"] {
            for (k, v) in converted.iter().filter(|(k, _)| k.starts_with(f)) {
                data.insert(k, &v[..]).unwrap();
            }
            data.insert(format!("meta/rows/{f}"), &1i64.to_be_bytes()[..])
                .unwrap();
        }
        let events: Vec<_> = converted
            .iter()
            .filter(|(k, _)| k.starts_with("evt/"))
            .collect();
        assert!(events.len() >= 2, "the fixture has events to split");
        for (k, v) in &events[..events.len() / 2] {
            data.insert(k, &v[..]).unwrap();
        }
        raw.flush().unwrap();
        let mixed = row_values(&raw);
        assert!(mixed
            .iter()
            .any(|(k, v)| k.starts_with("evt/") && v[0] == ROW_TAG));
        assert!(mixed
            .iter()
            .any(|(k, v)| k.starts_with("evt/") && v[0] != ROW_TAG));
    }

    open_and_compare(&db, &expected);
    assert_migrated(&raw_db(&db), &keys);
    assert_eq!(
        row_values(&raw_db(&db)),
        converted,
        "the resumed migration stored what an uninterrupted one did"
    );
}

/// A data dir of a newer storage format than this binary knows is refused with a message
/// that says so, and left untouched.
#[test]
fn a_newer_format_is_refused_untouched() {
    let (tmp, _) = unpack();
    let db = tmp.path().join("data/db");
    let before = {
        let raw = raw_db(&db);
        raw.open_tree("data")
            .unwrap()
            .insert("meta/format", &4i64.to_be_bytes()[..])
            .unwrap();
        raw.flush().unwrap();
        row_values(&raw)
    };
    let err = Store::open(&db).err().expect("a newer format is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("newer Stagecraft (storage format 4)") && msg.contains("up to 3"),
        "{msg}"
    );
    let raw = raw_db(&db);
    assert_eq!(row_values(&raw), before, "nothing was migrated");
    assert_eq!(format_of(&raw), Some(4));
}
