//! Section 6: lists and `records.find` on a large tenant, read from the sled indexes.
//!
//! One tenant holds `STAGECRAFT_BENCH_RECORDS` records (1,000,000 in a full run): nine in
//! ten are leads in `leads`, one in a thousand sits in a `support` pipeline (the rare
//! filter), and ann, bob and cy own 100 leads each (the lead-scoring team). Measured:
//! - the first page (50) of a rare filter (`pipeline=support`) and of a dense one
//!   (`kind=lead`), p50 and p99;
//! - `records.find` as a run makes it (the sandbox's `RecordSource`), for 10 and for 100
//!   records returned: the difference gives µs per record, the rest the fixed cost;
//! - the demo's inline lead-scoring run (three team members: three finds of 100 leads)
//!   in the sandbox on that tenant, p50 and p99.

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use stagecraft::automation::source::StoreSource;
use stagecraft::model::{Grants, Pipeline, Record, RecordFilter, RecordKind};
use stagecraft::sandbox::{RunClass, RunInput};
use stagecraft::store::{Changeset, Durability, ListLimits, Op, RecordWrite};

use crate::fixture::{self, World, TENANT};
use crate::sample::{count, fmt, Samples};

const TEAM: [&str; 3] = ["ann", "bob", "cy"];

/// Record `n` of the tenant (ids in creation order).
fn record(n: usize, now: chrono::DateTime<Utc>) -> Record {
    let id = stagecraft::model::id::id_at("rec", now.timestamp_millis(), n as u128 + 1);
    let (kind, pipeline, stage, owner) = if n % 1000 == 7 {
        (RecordKind::Lead, "support", "open", format!("o{}", n % 200))
    } else if n % 10 == 3 {
        (
            RecordKind::Deal,
            "deals",
            "discovery",
            format!("o{}", n % 200),
        )
    } else if n % 5000 < 3 * 34 && (n % 5000).is_multiple_of(34) && n / 5000 < 100 {
        // 100 leads for each team member, spread over the first half-million ids.
        (
            RecordKind::Lead,
            "leads",
            "new",
            TEAM[n % 5000 / 34].to_string(),
        )
    } else if n % 9973 == 11 && n / 9973 < 10 {
        (RecordKind::Lead, "leads", "new", "few".to_string())
    } else {
        (RecordKind::Lead, "leads", "new", format!("o{}", n % 200))
    };
    serde_json::from_value(json!({
        "id": id, "kind": kind, "name": format!("Person {n}"),
        "email": format!("person{n}@example.com"), "pipeline": pipeline, "stage": stage,
        "owner": owner, "custom": {"source": "web", "company_size": n % 5000},
        "version": 1, "created_at": now, "updated_at": now,
    }))
    .expect("a record")
}

fn fill(w: &World, n: usize) {
    let now = Utc::now();
    let mut support: Pipeline = w
        .store
        .pipeline(TENANT, "leads")
        .expect("read")
        .expect("leads");
    support.id = "support".into();
    support.stages.truncate(1);
    support.stages[0].id = "open".into();
    let put = Op::PutPipeline {
        pipeline: support,
        expected: None,
    };
    w.store
        .commit(&Changeset::op(TENANT, put))
        .expect("support pipeline");
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut cs = Changeset::new(TENANT);
        cs.durability = Durability::Lazy;
        for &i in chunk {
            cs.records.push(RecordWrite::Put {
                record: Box::new(record(i, now)),
                expected: None,
            });
        }
        w.store.commit(&cs).expect("records");
    }
    w.store.flush().expect("flush");
    println!(
        "  {} records written in {:.1} s ({} records/s with their indexes)",
        count(n as f64),
        start.elapsed().as_secs_f64(),
        count(n as f64 / start.elapsed().as_secs_f64().max(1e-9))
    );
}

fn first_page(w: &World, filter: &RecordFilter, queries: usize) -> (Samples, usize) {
    let mut found = 0;
    let s = Samples::time(queries, queries / 10 + 1, |_| {
        let page = w
            .store
            .records(TENANT, filter, None, 50, &ListLimits::default())
            .expect("a page");
        found = page.records.len();
        black_box(page);
    });
    (s, found)
}

fn finds(w: &World, owner: &str, queries: usize) -> (Samples, usize) {
    let source = StoreSource::for_tenant(&w.store, TENANT);
    let filter = RecordFilter {
        kind: Some(RecordKind::Lead),
        pipeline: Some("leads".into()),
        owner: Some(owner.into()),
        ..Default::default()
    };
    let mut found = 0;
    let s = Samples::time(queries, queries / 10 + 1, |_| {
        let r = source.find(&filter, 100).expect("find");
        found = r.len();
        black_box(r);
    });
    (s, found)
}

pub fn section(records: usize, queries: usize) {
    println!(
        "\n## 6. Indexed lists and records.find on a {}-record tenant, {queries} queries each",
        count(records as f64)
    );
    let w = World::new();
    fill(&w, records);
    let line = |label: &str, s: &Samples, found: usize| {
        println!(
            "  {label:<46} {found:>5} found   p50 {:>10}   p99 {:>10}",
            fmt(s.p50()),
            fmt(s.p99())
        );
    };
    let rare = RecordFilter {
        pipeline: Some("support".into()),
        ..Default::default()
    };
    let (s, n) = first_page(&w, &rare, queries);
    line("first page, rare filter (pipeline=support)", &s, n);
    let dense = RecordFilter {
        kind: Some(RecordKind::Lead),
        ..Default::default()
    };
    let (s, n) = first_page(&w, &dense, queries);
    line("first page, dense filter (kind=lead)", &s, n);
    let both = RecordFilter {
        kind: Some(RecordKind::Deal),
        owner: Some("o13".into()),
        ..Default::default()
    };
    let (s, n) = first_page(&w, &both, queries);
    line("first page, kind=deal & owner=o13 (intersected)", &s, n);

    let (few, n_few) = finds(&w, "few", queries);
    let (many, n_many) = finds(&w, "ann", queries);
    line("records.find, kind+pipeline+owner (few)", &few, n_few);
    line("records.find, kind+pipeline+owner (ann)", &many, n_many);
    let per = (many.p50().as_secs_f64() - few.p50().as_secs_f64())
        / (n_many.saturating_sub(n_few).max(1)) as f64;
    let fixed = few.p50().as_secs_f64() - per * n_few as f64;
    println!(
        "  records.find: {:.2} µs per record returned + {:.1} µs fixed (p50s)",
        per * 1e6,
        fixed * 1e6
    );

    // The demo's inline lead-scoring with three team members, in the sandbox.
    let v = w.publish("lead-scoring", &fixture::rust_component());
    let module = w.sandbox.load(&v.hash).expect("load");
    let (_, event) = w.create(fixture::hot_lead("Ada Lovelace"));
    let grants: Grants =
        serde_json::from_value(json!({"fields": ["score", "owner"], "channels": ["notify"]}))
            .expect("grants");
    let config = json!({"team": TEAM}).to_string();
    let s = Samples::time(queries, queries / 10 + 1, |i| {
        let r = w.sandbox.run(
            &module,
            RunInput {
                tenant: TENANT,
                class: RunClass::Inline,
                source: StoreSource::for_tenant(&w.store, TENANT),
                event: &event,
                run_key: format!("run_bench_ix_{i}"),
                config: config.clone(),
                grants: grants.clone(),
                pending: Vec::new(),
                deleted: Vec::new(),
                recorded_http: None,
            },
        );
        assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        black_box(r);
    });
    line("lead-scoring inline run, team of three", &s, 3 * n_many);
}
