//! The proof of many hosts on one PostgreSQL (#18): three real `serve` processes on one
//! throwaway database, sixteen clients spreading creates and stage moves over all three
//! while a background binding fires on each (queuing a webhook to a loopback sink that
//! counts deliveries by message id, and scheduling a follow-up that queues another). One
//! host is SIGKILLed mid-load; the other two carry on and take its work over once its
//! leases run out (`--lease-seconds`). Afterwards: every acknowledged write is there, every
//! (event, binding) ran once, every timer fired once, and no message reached the sink more
//! than twice (the one extra delivery a crash mid-attempt may cause).
//!
//! A follow-up is tied to the stage its record is in when the scheduling run commits, and
//! a later move out of that stage cancels it (documented in the SDK's `schedule_after` and
//! ARCHITECTURE.md). Clients move each lead right after creating it, so when a lead's
//! `created` run commits before its last move, its follow-up is cancelled by that move
//! unless it came due first: the proof reads which stage each follow-up was scheduled in
//! from the journal (the snapshot of the run's `seen` update) and expects exactly one
//! follow-up for every record still in that stage, at most one (fired in that stage) for
//! the others, and counts the cancelled ones.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{json, Value};
use stagecraft_tests::hosts::{spawn, Host};
use stagecraft_tests::postgres::TempDatabase;
use stagecraft_tests::{eventually, temp_dir, ADMIN_KEY};

const CLIENTS: usize = 16;
/// Leads each client creates (each then moved twice).
const ROUNDS: usize = 6;
/// Acknowledged writes (of 16 × 6 × 3) before the third host is killed.
const KILL_AFTER: usize = 100;
/// The hosts' lease bound: how long the dead host's work waits before another takes it.
const LEASE_SECONDS: &str = "10";

/// Deliveries the sink received, by `stagecraft-message-id`.
type Seen = Arc<Mutex<HashMap<String, usize>>>;

async fn sink() -> (Seen, String) {
    let seen: Seen = Arc::default();
    let counts = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let counts = counts.clone();
            async move {
                let id = headers
                    .get("stagecraft-message-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                *counts.lock().unwrap().entry(id).or_default() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

/// A lead a client created, and the last stage a move of it was acknowledged in. After a
/// move that got no answer (its host died) the stage is either; `settled` is false then.
struct Acked {
    id: String,
    stage: &'static str,
    next: Option<&'static str>,
    settled: bool,
}

/// The hosts a client may use: their addresses, and whether the third is gone.
struct Cluster {
    bases: Vec<String>,
    killed: AtomicBool,
    acked: AtomicUsize,
}

impl Cluster {
    /// The host for the k-th request: round robin, skipping the killed one.
    fn pick(&self, k: usize) -> &str {
        let i = k % self.bases.len();
        if i == 2 && self.killed.load(Ordering::SeqCst) {
            return &self.bases[k % 2];
        }
        &self.bases[i]
    }
}

/// POSTs `body`; the JSON when the host acknowledged it (2xx), else None (no answer, or
/// refused: either way nothing the client may count on).
async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Option<Value> {
    let resp = http
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

async fn client(n: usize, cluster: Arc<Cluster>) -> Vec<Acked> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut mine = Vec::new();
    for round in 0..ROUNDS {
        let k = n + round * CLIENTS;
        let created = post(
            &http,
            cluster.pick(k),
            "/v1/records",
            json!({"kind": "lead", "name": format!("c{n} r{round}")}),
        )
        .await;
        let Some(created) = created else { continue };
        cluster.acked.fetch_add(1, Ordering::SeqCst);
        let mut lead = Acked {
            id: created["id"].as_str().unwrap().to_string(),
            stage: "new",
            next: None,
            settled: true,
        };
        for (step, stage) in ["contacted", "qualified"].into_iter().enumerate() {
            let path = format!("/v1/records/{}/stage", lead.id);
            let moved = post(
                &http,
                cluster.pick(k + step + 1),
                &path,
                json!({"stage": stage}),
            )
            .await;
            if moved.is_none() {
                lead.next = Some(stage);
                lead.settled = false;
                break;
            }
            cluster.acked.fetch_add(1, Ordering::SeqCst);
            lead.stage = stage;
        }
        mine.push(lead);
    }
    mine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_lose_nothing_and_do_nothing_twice_when_one_is_killed() {
    let Some(db) = TempDatabase::create() else {
        return;
    };
    let url = db.url();
    let (seen, hook) = sink().await;
    let dirs = [temp_dir(), temp_dir(), temp_dir()];
    let exe = env!("CARGO_BIN_EXE_stagecraft-server");
    let args = ["--allow-internal-destinations"];
    let env = [("STAGECRAFT_LEASE_SECONDS", LEASE_SECONDS)];

    // The first host creates the tenant; the binding and its module go in through it.
    let a = spawn(exe, dirs[0].path(), &url, &args, &env).await;
    a.upload("relay", "relay").await;
    let (status, body) = a
        .try_call(
            reqwest::Method::PUT,
            "/v1/channels",
            ADMIN_KEY,
            Some(json!({"webhook": {"allowed_hosts": ["*"]}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    a.post(
        "/v1/bindings",
        json!({"pipeline": "leads", "module": "relay", "version": 1, "mode": "background",
               "triggers": [{"on": "created"}, {"on": "stage_changed"}],
               "config": {"to": hook, "after": 1},
               "grants": {"fields": ["seen", "followed"], "channels": ["webhook"]}}),
    )
    .await;
    let (b, c) = tokio::join!(
        spawn(exe, dirs[1].path(), &url, &args, &env),
        spawn(exe, dirs[2].path(), &url, &args, &env)
    );
    let mut hosts = vec![a, b, c];

    let cluster = Arc::new(Cluster {
        bases: hosts.iter().map(|h| h.base.clone()).collect(),
        killed: AtomicBool::new(false),
        acked: AtomicUsize::new(0),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(n, cluster.clone())))
        .collect();

    // Mid-load: the third host dies without a chance to finish anything.
    eventually("writes acknowledged before the kill", 6_000, || async {
        (cluster.acked.load(Ordering::SeqCst) >= KILL_AFTER).then_some(())
    })
    .await;
    cluster.killed.store(true, Ordering::SeqCst);
    hosts[2].child.kill().await.expect("SIGKILL the third host");
    let acked_at_kill = cluster.acked.load(Ordering::SeqCst);
    let killed_at = std::time::Instant::now();
    // What was leased when it died (by any host; the dead host's share waits for its
    // leases to run out).
    let held = db.count(
        "SELECT (SELECT count(*) FROM jobs WHERE holder IS NOT NULL) \
              + (SELECT count(*) FROM timers WHERE holder IS NOT NULL) \
              + (SELECT count(*) FROM messages WHERE status = 'sending')",
    );

    let mut leads = Vec::new();
    for c in clients {
        leads.extend(c.await.unwrap());
    }
    let total = cluster.acked.load(Ordering::SeqCst);
    assert!(
        total > acked_at_kill,
        "the other two hosts carried on after the kill ({acked_at_kill} then {total})"
    );
    eprintln!(
        "{} leads, {total} writes acknowledged, {acked_at_kill} before the kill",
        leads.len()
    );

    // Every acknowledged write is there, on both hosts that are left.
    for lead in &leads {
        for h in &hosts[..2] {
            let r = h.get(&format!("/v1/records/{}", lead.id)).await;
            let stage = r["stage"].as_str().unwrap();
            if lead.settled {
                assert_eq!(stage, lead.stage, "{}: {r}", lead.id);
            } else {
                assert!(
                    stage == lead.stage || Some(stage) == lead.next,
                    "{}: {stage}, acknowledged {} (then maybe {:?})",
                    lead.id,
                    lead.stage,
                    lead.next
                );
            }
        }
    }

    // The two hosts finish everything, the dead host's leased work included once its
    // leases ran out: no job, timer or undelivered message is left.
    settle(&db, &hosts[0]).await;
    eprintln!(
        "{held} items were leased at the kill; everything was done {:?} after it",
        killed_at.elapsed()
    );

    // Every (event, binding) has exactly one run, and every run went through.
    let twice = db.count(
        "SELECT count(*) FROM (SELECT value->>'event' FROM runs \
         GROUP BY tenant, value->>'binding', value->>'event' HAVING count(*) > 1) d",
    );
    assert_eq!(twice, 0, "events that ran twice");
    let missed = db.count(
        "SELECT count(*) FROM events e WHERE e.value->>'type' IN ('created', 'stage_changed') \
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.tenant = e.tenant \
                         AND r.value->>'event' = e.id)",
    );
    assert_eq!(missed, 0, "events that never ran");
    let failed = db.strings(
        "SELECT id || ' ' || outcome || ' ' || coalesce(value->'outcome'->>'message', '') \
         FROM runs WHERE outcome <> 'ok'",
    );
    assert!(failed.is_empty(), "runs that failed: {failed:#?}");

    // The `created` run of every record committed once (its `seen` update is in the
    // journal once), scheduling one follow-up in the stage the record was in then.
    let records = db.count("SELECT count(*) FROM records");
    assert!(records >= leads.len() as i64);
    let seen_once = db.count(&format!(
        "SELECT count(*) FROM (SELECT e.record FROM events e WHERE {SEEN_UPDATE} \
         GROUP BY e.record HAVING count(*) = 1) d"
    ));
    assert_eq!(
        seen_once, records,
        "records whose created run marked them once"
    );
    // Every timer fired once: one follow-up for each record still in the stage its
    // follow-up was scheduled in. A record that left that stage later has one only if the
    // follow-up fired first (it came due before the move, in that stage), else none: the
    // move cancelled it, as documented.
    let (due, left) = (db.count(&follow_ups(true)), db.count(&follow_ups(false)));
    assert_eq!(due + left, records);
    let fired_first = db.count(&format!(
        "{} AND EXISTS (SELECT 1 FROM runs f WHERE f.record = r.id \
                        AND f.value->>'event_kind' = 'scheduled')",
        follow_ups(false)
    ));
    let fired = db.count(
        "SELECT count(*) FROM runs WHERE value->>'event_kind' = 'scheduled' AND outcome = 'ok'",
    );
    assert_eq!(
        fired,
        due + fired_first,
        "one follow-up per record still in its follow-up's stage, and per record that left \
         it after the follow-up fired"
    );
    let not_once = db.count(
        "SELECT count(*) FROM (SELECT record FROM runs WHERE value->>'event_kind' = 'scheduled' \
         GROUP BY record HAVING count(*) <> 1) d",
    );
    assert_eq!(not_once, 0, "records whose follow-up fired more than once");
    // Each follow-up fired while its record was in the stage it was tied to (its event's
    // snapshot, read when the timer fired).
    let elsewhere = db.strings(&format!(
        "SELECT f.id FROM runs f JOIN events x ON x.id = f.value->>'event' \
         JOIN events e ON e.record = f.record AND {SEEN_UPDATE} \
         WHERE f.value->>'event_kind' = 'scheduled' \
         AND x.value->'snapshot'->>'stage' IS DISTINCT FROM e.value->'snapshot'->>'stage'"
    ));
    assert!(
        elsewhere.is_empty(),
        "follow-ups that fired outside their stage: {elsewhere:?}"
    );
    // And every record that left its follow-up's stage shows the move that did.
    let unexplained = db.strings(&format!(
        "SELECT r.id FROM records r JOIN events s ON s.record = r.id \
         AND {} WHERE s.value->'snapshot'->>'stage' <> r.stage AND NOT EXISTS ( \
            SELECT 1 FROM events m WHERE m.record = r.id AND m.value->>'type' = 'stage_changed' \
            AND m.value->>'from' = s.value->'snapshot'->>'stage' \
            AND (m.value->'snapshot'->>'version')::bigint \
                > (s.value->'snapshot'->>'version')::bigint)",
        SEEN_UPDATE.replace("e.", "s.")
    ));
    assert!(
        unexplained.is_empty(),
        "records that left their follow-up's stage with no move out of it: {unexplained:?}"
    );
    let cancelled = left - fired_first;

    // Every run queued one message; each reached the sink once, or twice when the dead
    // host was mid-attempt (the documented extra delivery), and nothing else arrived.
    let runs = db.count("SELECT count(*) FROM runs");
    let messages = db.strings("SELECT id FROM messages");
    assert_eq!(messages.len() as i64, runs, "one message per run");
    let seen = seen.lock().unwrap().clone();
    let mut twice = Vec::new();
    for id in &messages {
        match seen.get(id).copied().unwrap_or(0) {
            1 => {}
            2 => twice.push(id.clone()),
            n => panic!("message {id} was delivered {n} times"),
        }
    }
    assert_eq!(seen.len(), messages.len(), "deliveries of unknown messages");
    // Only what the dead host had mid-attempt may come twice: at most its delivery
    // concurrency (16).
    assert!(twice.len() <= 16, "delivered twice: {twice:?}");
    eprintln!(
        "{records} records ({fired} followed up, {fired_first} of them before a move out of \
         the follow-up's stage; {cancelled} follow-ups cancelled by such a move), {runs} runs, \
         {} messages, {} delivered twice",
        messages.len(),
        twice.len()
    );
    drop(hosts);
}

/// The journal event of a `created` run's `seen` update (`e`): its snapshot is the record
/// as that run committed it, in the stage its follow-up was tied to.
const SEEN_UPDATE: &str = "e.value->>'type' = 'updated' AND e.value->'fields' ? 'seen'";

/// Counts the records (`r`) still in the stage their follow-up was scheduled in
/// (`still_in_stage`: it must fire), or that left it later (false: it fired first, or the
/// move cancelled it).
fn follow_ups(still_in_stage: bool) -> String {
    let op = if still_in_stage { "=" } else { "<>" };
    format!(
        "SELECT count(*) FROM records r WHERE EXISTS (SELECT 1 FROM events e \
         WHERE e.record = r.id AND {SEEN_UPDATE} AND e.value->'snapshot'->>'stage' {op} r.stage)"
    )
}

/// Waits (bounded) until nothing is left to do: every job run, every timer fired, every
/// message sent, every record whose follow-up is due followed up. One statement, so one
/// snapshot: a timer turning into a job between two counts cannot look like nothing left.
async fn settle(db: &TempDatabase, alive: &Host) {
    let sql = format!(
        "SELECT (SELECT count(*) FROM jobs) || ' jobs, ' \
         || (SELECT count(*) FROM timers) || ' timers, ' \
         || (SELECT count(*) FROM messages WHERE status <> 'sent') || ' unsent messages, ' \
         || (SELECT count(*) FROM records WHERE value->'custom'->>'seen' IS NULL) \
         || ' records not marked seen, ' \
         || (SELECT count(*) FROM records r WHERE r.value->'custom'->>'followed' IS NULL \
             AND EXISTS (SELECT 1 FROM events e WHERE e.record = r.id AND {SEEN_UPDATE} \
                         AND e.value->'snapshot'->>'stage' = r.stage)) \
         || ' records not followed up in their follow-up''s stage'"
    );
    let mut last = String::new();
    for _ in 0..900 {
        let now = db.strings(&sql).concat();
        if now.split(", ").all(|part| part.starts_with("0 ")) {
            return;
        }
        last = now;
        // The hosts that are left still answer meanwhile.
        let _ = alive.get("/v1/records?limit=1").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("work left after 180 s: {last}\n{}", evidence(db));
}

/// What the database holds about each record left unmarked or not followed up: the
/// record, its journal
/// events, its runs (with their outcome), and any job, timer or message left for it.
fn evidence(db: &TempDatabase) -> String {
    let mut out = String::new();
    let lost = db.strings(&format!(
        "SELECT r.id FROM records r WHERE r.value->'custom'->>'seen' IS NULL \
         OR (r.value->'custom'->>'followed' IS NULL AND EXISTS (SELECT 1 FROM events e \
             WHERE e.record = r.id AND {SEEN_UPDATE} AND e.value->'snapshot'->>'stage' = r.stage)) \
         ORDER BY r.id"
    ));
    for id in lost.iter().take(5) {
        let q = |sql: &str| db.strings(&sql.replace("$R", &format!("'{id}'")));
        out.push_str(&format!(
            "record {id}:\n  row: {:?}\n  events: {:#?}\n  runs: {:#?}\n  jobs: {:#?}\n  timers: {:#?}\n  messages: {:#?}\n",
            q("SELECT version || ' ' || coalesce(stage, '-') || ' ' || (value->'custom')::text \
               FROM records WHERE id = $R"),
            q("SELECT id || ' ' || occurred_ms || ' ' || (value - 'snapshot')::text \
               FROM events WHERE record = $R ORDER BY id"),
            q("SELECT id || ' ' || outcome || ' ' || started_ms || ' ' || (value->>'event') || ' ' \
               || (value->>'event_kind') || ' ' || (value->'outcome')::text || ' effects ' \
               || (value->'effects')::text || ' logs ' || (value->'logs')::text \
               FROM runs WHERE record = $R ORDER BY started_ms"),
            q("SELECT id || ' ' || coalesce(holder, '-') || ' ' || value::text FROM jobs \
               WHERE value->>'event' IN (SELECT id FROM events WHERE record = $R)"),
            q("SELECT id || ' ' || due_ms || ' ' || coalesce(stage, '-') || ' ' \
               || coalesce(holder, '-') FROM timers WHERE record = $R"),
            q("SELECT id || ' ' || status || ' ' || run FROM messages WHERE record = $R"),
        ));
    }
    out
}
