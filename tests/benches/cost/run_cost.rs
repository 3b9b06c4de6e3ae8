//! Sections 1 and 2: what one run of lead-scoring costs, the same records and the same event,
//! (a) as native Rust, (b) in bare wasmtime, (c) in Stagecraft's sandbox and (d) committed;
//! then the Python and JavaScript ports through (c).

use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use lead_scoring::LeadScoring;
use stagecraft::automation::source::StoreSource;
use stagecraft::model::{Event, Grants, Record};
use stagecraft::sandbox::{Loaded, RunInput, RunReport};
use stagecraft_sdk::testing::MockHost;

use crate::bare::{self, Bare, Canned};
use crate::fixture::{self, World, CONFIG, TENANT};
use crate::sample::{fmt, row, Samples};

pub struct Scenario {
    pub world: World,
    pub lead: Record,
    pub busy: Record,
    pub event: Event,
    pub stages: Vec<String>,
}

impl Scenario {
    pub fn new() -> Scenario {
        let world = World::new();
        let (busy, _) = world.create(fixture::busy_lead());
        let (lead, event) = world.create(fixture::hot_lead("Ada Lovelace"));
        let stages = world
            .store
            .pipeline(TENANT, "leads")
            .expect("read pipeline")
            .expect("leads pipeline")
            .stages
            .into_iter()
            .map(|s| s.id)
            .collect();
        Scenario {
            world,
            lead,
            busy,
            event,
            stages,
        }
    }

    pub fn grants() -> Grants {
        serde_json::from_value(
            serde_json::json!({"fields": ["score", "owner"], "channels": ["notify"]}),
        )
        .expect("grants")
    }

    /// One sandboxed run of `module` on the scenario's event (nothing committed).
    pub fn run(&self, module: &Loaded, event: &Event) -> RunReport {
        self.world.sandbox.run(
            module,
            RunInput {
                tenant: TENANT,
                class: stagecraft::sandbox::RunClass::Background,
                source: StoreSource::for_tenant(&self.world.store, TENANT),
                event,
                run_key: format!("run_bench_{}", event.id),
                config: CONFIG.to_string(),
                grants: Scenario::grants(),
                pending: Vec::new(),
                deleted: Vec::new(),
                recorded_http: None,
            },
        )
    }
}

/// The scenario's records as the SDK's mock host holds them.
fn mock_host(s: &Scenario) -> (MockHost, stagecraft_sdk::Event) {
    let to_sdk = |r: &Record| -> stagecraft_sdk::Record {
        let mut x = stagecraft_sdk::testing::lead(
            &r.id,
            &r.name,
            r.pipeline.as_deref().unwrap_or_default(),
            r.stage.as_deref().unwrap_or_default(),
        );
        x.email = r.email.clone();
        x.owner = r.owner.clone();
        x.custom = r.custom.clone();
        x
    };
    let stages: Vec<&str> = s.stages.iter().map(String::as_str).collect();
    let host = MockHost::new()
        .with_record(to_sdk(&s.busy))
        .with_record(to_sdk(&s.lead))
        .with_config(CONFIG)
        .with_pipeline("leads", &stages);
    (host, stagecraft_sdk::Event::created(to_sdk(&s.lead)))
}

pub fn canned(s: &Scenario) -> (Canned, bare::Event) {
    let lead = bare::record(&s.lead);
    let event = bare::event(&s.event, lead.clone());
    (
        Canned {
            lead,
            busy: bare::record(&s.busy),
            config: CONFIG.to_string(),
        },
        event,
    )
}

fn check(r: &RunReport, what: &str) {
    assert!(
        r.outcome.is_ok() && r.effects.len() == 4,
        "{what}: expected an ok run with 4 effects, got {:?} / {:?}",
        r.outcome,
        r.effects
    );
}

pub fn section(n: usize) {
    println!(
        "\n## 1. Per-run cost of lead-scoring: same records, same event, {n} runs each, one thread"
    );
    let s = Scenario::new();
    let bytes = fixture::rust_component();
    let v = s.world.publish("lead-scoring", &bytes);
    let module = s.world.sandbox.load(&v.hash).expect("load");
    let warm = (n / 10).max(3);
    // For profiling one variant alone (e.g. `perf record … --only 1` with
    // STAGECRAFT_BENCH_VARIANT=c): the others run once.
    let variant = std::env::var("STAGECRAFT_BENCH_VARIANT").ok();
    let n_for = |v: &str| match &variant {
        Some(only) if only != v => 1,
        _ => n,
    };

    let (mock, sdk_event) = mock_host(&s);
    let a = Samples::time(n_for("a"), warm, |_| {
        let mut h = mock.clone();
        h.run::<LeadScoring>(&sdk_event).expect("native run");
        assert_eq!(h.effects.len(), 4);
        black_box(h);
    });

    let (canned, wit_event) = canned(&s);
    let bare_plain = Bare::new(&bytes, canned.clone(), false);
    let b = Samples::time(n_for("b"), warm, |_| {
        bare_plain.run(&wit_event).expect("bare run");
    });
    let bare_metered = Bare::new(&bytes, canned, true);
    let b2 = Samples::time(n_for("b'"), warm, |_| {
        bare_metered.run(&wit_event).expect("bare metered run");
    });

    let c = Samples::time(n_for("c"), warm, |_| {
        let r = s.run(&module, &s.event);
        check(&r, "sandbox");
    });

    // (d): the run and its commit (effects, run record, the queued note) in one durable
    // transaction, exactly as a background job does it. Each run needs a lead in the same
    // state as (c)'s: untimed, the previous lead is deleted and a fresh one created, so the
    // tenant always holds the same two leads and every run does the same work.
    let binding = s.world.bind(
        "lead-scoring",
        v.version,
        "background",
        serde_json::json!({"on": "created"}),
    );
    let mut current: Option<String> = None;
    let mut each = Vec::with_capacity(n);
    let mut wall = Duration::ZERO;
    for i in 0..n_for("d") + warm {
        if let Some(id) = current.take() {
            let cs =
                stagecraft::crm::records::delete(&s.world.store, TENANT, &id, None, Utc::now())
                    .expect("delete");
            s.world.store.commit(&cs).expect("commit delete");
        }
        let (lead, event) = s.world.create(fixture::hot_lead("Ada Lovelace"));
        current = Some(lead.id);
        let t = std::time::Instant::now();
        let run = s
            .world
            .automation
            .run_and_commit(TENANT, &event, &binding)
            .expect("run and commit");
        let took = t.elapsed();
        assert!(run.outcome.is_ok() && run.effects.len() == 4, "{run:?}");
        if i >= warm {
            each.push(took);
            wall += took;
        }
    }
    let d = Samples::from(each, wall);

    // (d) from 1 and from 8 committing threads side by side, the same number of runs each:
    // what the shared batch and flush (group commit) buys.
    let total = (n_for("d") / 5).max(8);
    let d_one = commits_concurrently(&s, &v, 1, total);
    let d_eight = commits_concurrently(&s, &v, 8, total / 8);
    let lone = lone_commits(&s, n_for("d").clamp(20, 2_000));

    println!("{}", row("(a) native Rust (SDK mock host)", &a));
    println!("{}", row("(b) bare wasmtime, pooling, trivial host", &b));
    println!("{}", row("(b') (b) + fuel and epoch deadline armed", &b2));
    println!("{}", row("(c) Stagecraft sandbox (limits, real store)", &c));
    println!("{}", row("(d) (c) + atomic durable commit", &d));
    println!("{}", row("(d) from 1 committing thread", &d_one));
    println!("{}", row("(d) from 8 committing threads", &d_eight));
    println!(
        "  (d) 8 threads / 1 thread: {:.2}x (target: at least 5x and 8,000 runs/s)",
        d_eight.per_sec() / d_one.per_sec()
    );
    println!("{}", row("lone durable commit (one record update)", &lone));
    let ratio = |x: &Samples, y: &Samples| y.per_sec() / x.per_sec();
    println!(
        "  ratios (cost, higher is slower): (c)/(b) {:.2}x   (d)/(b) {:.2}x   (c)/(a) {:.1}x   (b')/(b) {:.2}x   (c)/(b') {:.2}x",
        ratio(&c, &b),
        ratio(&d, &b),
        ratio(&c, &a),
        ratio(&b2, &b),
        ratio(&c, &b2)
    );
}

/// (d) from `threads` threads at once, each run in a tenant of its own holding the same two
/// leads as (c)'s, so every run does the same work and commits are independent: shows what
/// the shared batch and flush (group commit) does for committed runs per second. The tenants are
/// set up first, untimed; the version is recorded in each without compiling it again.
fn commits_concurrently(
    s: &Scenario,
    v: &stagecraft::model::ModuleVersion,
    threads: usize,
    per_thread: usize,
) -> Samples {
    let w = &s.world;
    let jobs: Vec<Vec<(Event, stagecraft::model::Binding)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let tenant = format!("bench-{threads}-{t}-{i}");
                            stagecraft::crm::tenants::create_tenant(&w.store, &tenant, "bench")
                                .expect("tenant");
                            let add = stagecraft::store::Op::AddModuleVersion {
                                version: v.clone(),
                                quota: stagecraft::store::ModuleQuota::default(),
                            };
                            w.store
                                .commit(&stagecraft::store::Changeset::op(&tenant, add))
                                .expect("version");
                            let binding = w.bind_in(
                                &tenant,
                                "lead-scoring",
                                1,
                                "background",
                                serde_json::json!({"on": "created"}),
                            );
                            w.create_in(&tenant, fixture::busy_lead());
                            let (_, event) =
                                w.create_in(&tenant, fixture::hot_lead("Ada Lovelace"));
                            (event, binding)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("setup thread"))
            .collect()
    });
    let start = std::time::Instant::now();
    let each: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|mine| {
                scope.spawn(move || {
                    mine.iter()
                        .map(|(event, binding)| {
                            let t = std::time::Instant::now();
                            let run = w
                                .automation
                                .run_and_commit(&event.tenant, event, binding)
                                .expect("run and commit");
                            assert!(run.outcome.is_ok() && run.effects.len() == 4, "{run:?}");
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("commit thread"))
            .collect()
    });
    Samples::from(each, start.elapsed())
}

/// One small durable commit at a time with nothing else committing (a record update, as a
/// request makes at low load): the latency group commit must not make worse.
fn lone_commits(s: &Scenario, n: usize) -> Samples {
    let store = &s.world.store;
    let (mut lead, _) = s.world.create(fixture::busy_lead());
    Samples::time(n, (n / 10).max(3), |i| {
        let mut next = lead.clone();
        next.version += 1;
        next.custom.insert("touch".into(), serde_json::json!(i));
        let mut cs = stagecraft::store::Changeset::new(TENANT);
        cs.records.push(stagecraft::store::RecordWrite::Put {
            record: Box::new(next.clone()),
            expected: Some(lead.version),
        });
        store.commit(&cs).expect("lone commit");
        lead = next;
    })
}

pub fn languages(n: usize) {
    println!("\n## 2. The same rule in other languages, through (c), {n} runs each");
    let s = Scenario::new();
    println!(
        "  {:<12} {:>10} {:>12} {:>12} {:>14} {:>12} {:>10}",
        "language", "runs/s", "p50", "p99", "instantiate", "inst. share", "fuel"
    );
    for (language, bytes) in [
        ("Rust", Some(fixture::rust_component())),
        ("Python", fixture::guest("python-lead-scoring")),
        ("JavaScript", fixture::guest("js-lead-scoring")),
    ] {
        let Some(bytes) = bytes else {
            println!("  {language:<12} not built (run scripts/install-guest-tools, then rebuild)");
            continue;
        };
        let v = s
            .world
            .publish(&format!("lead-scoring-{}", language.to_lowercase()), &bytes);
        let module = s.world.sandbox.load(&v.hash).expect("load");
        let mut inst = Duration::ZERO;
        let mut total = Duration::ZERO;
        let mut fuel = 0;
        let samples = Samples::time(n, 2, |_| {
            let r = s.run(&module, &s.event);
            check(&r, language);
            inst += Duration::from_micros(r.instantiate_us);
            total += Duration::from_micros(r.duration_us);
            fuel = r.fuel_used;
        });
        // The warm-up runs are in the sums too; shares are per run, so that is fine.
        let runs = (n + 2) as u32;
        println!(
            "  {language:<12} {:>10.0} {:>12} {:>12} {:>14} {:>11.0}% {:>10}",
            samples.per_sec(),
            fmt(samples.p50()),
            fmt(samples.p99()),
            fmt(inst / runs),
            100.0 * inst.as_secs_f64() / total.as_secs_f64().max(1e-9),
            fuel
        );
    }
}
