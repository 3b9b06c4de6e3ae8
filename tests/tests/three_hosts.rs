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
        "SELECT count(*) FROM (SELECT event FROM runs \
         GROUP BY tenant, binding, event HAVING count(*) > 1) d",
    );
    assert_eq!(twice, 0, "events that ran twice");
    let missed = db.count(
        "SELECT count(*) FROM events e WHERE e.kind IN ('created', 'stage_changed') \
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.tenant = e.tenant AND r.event = e.id)",
    );
    assert_eq!(missed, 0, "events that never ran");
    // (A stored run is its storage row: its outcome's message comes from the API.)
    let mut failed = Vec::new();
    for id in db.strings("SELECT id FROM runs WHERE outcome <> 'ok'") {
        let run = hosts[0].get(&format!("/v1/runs/{id}")).await;
        failed.push(format!("{id} {}", run["outcome"]));
    }
    assert!(failed.is_empty(), "runs that failed: {failed:#?}");

    // Stored values are storage rows, so what each record's journal says is read through
    // the API (records and their events), as a user would.
    let records = db.strings("SELECT id FROM records ORDER BY id");
    assert!(records.len() >= leads.len());
    let mut journals = Vec::with_capacity(records.len());
    for id in &records {
        journals.push(Journal::read(&hosts[0], id).await);
    }
    // Follow-up runs by record: the scheduled event each ran on.
    let mut follow_ups: HashMap<String, Vec<String>> = HashMap::new();
    for row in db.strings(
        "SELECT record || ' ' || event FROM runs WHERE event_kind = 'scheduled' AND outcome = 'ok'",
    ) {
        let (record, event) = row.split_once(' ').unwrap();
        follow_ups
            .entry(record.to_string())
            .or_default()
            .push(event.to_string());
    }
    let (mut due, mut fired_first, mut cancelled) = (0, 0, 0);
    for j in &journals {
        // The `created` run of every record committed once (its `seen` update is in the
        // journal once), scheduling one follow-up in the stage the record was in then.
        let tied = j.tied();
        let fired = follow_ups.get(&j.id).map_or(&[][..], |v| v.as_slice());
        assert!(
            fired.len() <= 1,
            "{}: its follow-up fired {} times",
            j.id,
            fired.len()
        );
        // Each follow-up fired while its record was in the stage it was tied to (its
        // event's snapshot, taken when the timer fired).
        for event in fired {
            assert_eq!(
                j.stage_at(event),
                Some(tied.0.as_str()),
                "{}: its follow-up fired outside its stage",
                j.id
            );
        }
        if j.stage == tied.0 {
            // Still in the follow-up's stage: it must have fired, and marked the record.
            assert_eq!(fired.len(), 1, "{}: not followed up in its stage", j.id);
            assert!(j.followed, "{}: followed up but not marked", j.id);
            due += 1;
        } else {
            // It left that stage later: the move out of it cancelled the follow-up (as
            // documented), unless the follow-up came due first. Either way the journal
            // shows that move.
            assert!(
                j.moved_out_after(&tied),
                "{}: left its follow-up's stage {:?} with no move out of it",
                j.id,
                tied.0
            );
            if fired.is_empty() {
                cancelled += 1;
            } else {
                fired_first += 1;
            }
        }
    }
    let fired = due + fired_first;

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
    let records = records.len();
    eprintln!(
        "{records} records ({fired} followed up, {fired_first} of them before a move out of \
         the follow-up's stage; {cancelled} follow-ups cancelled by such a move), {runs} runs, \
         {} messages, {} delivered twice",
        messages.len(),
        twice.len()
    );
    drop(hosts);
}

/// One record as the API answers it: its stage, whether its follow-up marked it, and its
/// journal (oldest first).
struct Journal {
    id: String,
    stage: String,
    followed: bool,
    events: Vec<Value>,
}

impl Journal {
    async fn read(host: &Host, id: &str) -> Journal {
        let record = host.get(&format!("/v1/records/{id}")).await;
        let page = host.get(&format!("/v1/events?record={id}&limit=500")).await;
        assert!(page["next"].is_null(), "{id}: more than one page of events");
        Journal {
            id: id.to_string(),
            stage: record["stage"].as_str().unwrap_or("-").to_string(),
            followed: record["custom"].get("followed").is_some(),
            events: page["events"].as_array().unwrap().clone(),
        }
    }

    /// The stage and version the record was in when its `created` run committed its
    /// `seen` update: where its follow-up was tied. Exactly one such update.
    fn tied(&self) -> (String, i64) {
        let seen: Vec<&Value> = self
            .events
            .iter()
            .filter(|e| e["type"] == "updated" && names(&e["fields"]).any(|f| f == "seen"))
            .collect();
        assert_eq!(
            seen.len(),
            1,
            "{}: its created run marked it {} times: {:#?}",
            self.id,
            seen.len(),
            self.events
        );
        let snapshot = &seen[0]["snapshot"];
        (
            snapshot["stage"].as_str().unwrap_or("-").to_string(),
            snapshot["version"].as_i64().unwrap(),
        )
    }

    /// The stage of the record in event `id`'s snapshot.
    fn stage_at(&self, id: &str) -> Option<&str> {
        self.events
            .iter()
            .find(|e| e["id"] == id)
            .and_then(|e| e["snapshot"]["stage"].as_str())
    }

    /// Whether a later `stage_changed` moved the record out of `tied`'s stage.
    fn moved_out_after(&self, (stage, version): &(String, i64)) -> bool {
        self.events.iter().any(|e| {
            e["type"] == "stage_changed"
                && e["from"].as_str() == Some(stage.as_str())
                && e["snapshot"]["version"].as_i64().unwrap_or(0) > *version
        })
    }
}

/// The field names an `updated` event lists (an array of names, or an object by name).
fn names(fields: &Value) -> Box<dyn Iterator<Item = &str> + '_> {
    match fields {
        Value::Array(a) => Box::new(a.iter().filter_map(Value::as_str)),
        Value::Object(o) => Box::new(o.keys().map(String::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

/// Waits (bounded) until nothing is left to do: every job run, every timer fired, every
/// message sent, every record marked by its `created` run. One statement, so one snapshot:
/// a timer turning into a job between two counts cannot look like nothing left. (A stored
/// record is its storage row, which keeps its custom fields as their JSON text: the key's
/// bytes are there once the field is set.)
async fn settle(db: &TempDatabase, alive: &Host) {
    let sql = "SELECT (SELECT count(*) FROM jobs) || ' jobs, ' \
         || (SELECT count(*) FROM timers) || ' timers, ' \
         || (SELECT count(*) FROM messages WHERE status <> 'sent') || ' unsent messages, ' \
         || (SELECT count(*) FROM records \
             WHERE position(convert_to('\"seen\":', 'UTF8') IN value) = 0) \
         || ' records not marked seen'";
    let mut last = String::new();
    for _ in 0..900 {
        let now = db.strings(sql).concat();
        if now.split(", ").all(|part| part.starts_with("0 ")) {
            return;
        }
        last = now;
        // The hosts that are left still answer meanwhile.
        let _ = alive.get("/v1/records?limit=1").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "work left after 180 s: {last}\n{}",
        evidence(db, alive).await
    );
}

/// What is known about each record left unmarked: the record and its journal (from the
/// API), its runs (with their outcome), and any job, timer or message left for it.
async fn evidence(db: &TempDatabase, host: &Host) -> String {
    let mut out = String::new();
    let lost = db.strings(
        "SELECT id FROM records WHERE position(convert_to('\"seen\":', 'UTF8') IN value) = 0 \
         ORDER BY id",
    );
    for id in lost.iter().take(5) {
        let q = |sql: &str| db.strings(&sql.replace("$R", &format!("'{id}'")));
        let record = host.get(&format!("/v1/records/{id}")).await;
        let events = host.get(&format!("/v1/events?record={id}&limit=500")).await;
        let mut runs = Vec::new();
        for run in q("SELECT id FROM runs WHERE record = $R ORDER BY started_ms") {
            runs.push(host.get(&format!("/v1/runs/{run}")).await);
        }
        out.push_str(&format!(
            "record {id}:\n  row: {record}\n  events: {events:#}\n  runs: {runs:#?}\n  jobs: {:#?}\n  timers: {:#?}\n  messages: {:#?}\n",
            q("SELECT id || ' ' || coalesce(holder, '-') FROM jobs"),
            q("SELECT id || ' ' || due_ms || ' ' || coalesce(stage, '-') || ' ' \
               || coalesce(holder, '-') FROM timers WHERE record = $R"),
            q("SELECT id || ' ' || status || ' ' || run FROM messages WHERE record = $R"),
        ));
    }
    out
}
