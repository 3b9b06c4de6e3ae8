//! Section 6 of the cost bench on the store alone: first pages of a rare and a dense record
//! filter, and `records.find` as a run makes it (kind + pipeline + owner, 100 records), on
//! one large tenant. `cargo run --release -p stagecraft-store --example find_rate -- DIR
//! [records] [queries] [cache-mb]`.
//!
//! DIR keeps the data between runs (filling a million records takes minutes): it is filled
//! once, with the cost bench's records (`tests/benches/cost/indexes.rs`), and reopened after.
//! `cache-mb` is sled's page cache (the store's default when left out).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use stagecraft_model::{Record, RecordFilter, RecordKind};
use stagecraft_store::contract::{at, key, pipeline, record};
use stagecraft_store::{Changeset, Durability, ListLimits, Op, RecordWrite, Store};

const TENANT: &str = "bench";
const TEAM: [&str; 3] = ["ann", "bob", "cy"];

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("a data dir");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let queries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let cache_mb: Option<u64> = args.next().and_then(|a| a.parse().ok());
    let dir = Path::new(&dir);
    let filled = dir.join(format!("filled-{n}"));
    let open = || match cache_mb {
        Some(mb) => Store::open_with_cache(&dir.join("db"), mb << 20),
        None => Store::open(&dir.join("db")),
    };
    let start = Instant::now();
    let store = open().expect("store");
    println!("opened in {:.1} s", start.elapsed().as_secs_f64());
    if !filled.exists() {
        fill(&store, n);
        std::fs::write(&filled, b"").expect("marker");
    }
    println!(
        "{n} records, {queries} queries each, cache {}",
        cache_mb.map_or("default".to_string(), |m| format!("{m} MiB"))
    );
    let team = |owner: &str| RecordFilter {
        kind: Some(RecordKind::Lead),
        pipeline: Some("leads".into()),
        owner: Some(owner.into()),
        ..Default::default()
    };
    // Cold: the first reads after the open find none of their pages in sled's cache.
    let at = Instant::now();
    for who in TEAM {
        find(&store, &team(who), 100);
    }
    println!(
        "{:<40} {:>9.1} µs (once, right after the open)",
        "three finds, cold cache",
        us(at.elapsed())
    );
    let rare = RecordFilter {
        pipeline: Some("support".into()),
        ..Default::default()
    };
    let dense = RecordFilter {
        kind: Some(RecordKind::Lead),
        ..Default::default()
    };
    let both = RecordFilter {
        kind: Some(RecordKind::Deal),
        owner: Some("o13".into()),
        ..Default::default()
    };
    page_line(
        &store,
        "first page, rare (pipeline=support)",
        &rare,
        50,
        queries,
    );
    page_line(&store, "first page, dense (kind=lead)", &dense, 50, queries);
    page_line(
        &store,
        "first page, kind=deal & owner=o13",
        &both,
        50,
        queries,
    );
    let few = page_line(&store, "find, 10 (few)", &team("few"), 100, queries);
    let many = page_line(&store, "find, 100 (ann)", &team("ann"), 100, queries);
    for who in &TEAM[1..] {
        page_line(
            &store,
            &format!("find, 100 ({who})"),
            &team(who),
            100,
            queries,
        );
    }
    let per = (many.0.as_secs_f64() - few.0.as_secs_f64()) / (many.1 - few.1).max(1) as f64;
    println!(
        "find: {:.2} µs per record + {:.1} µs fixed (p50s)",
        per * 1e6,
        (few.0.as_secs_f64() - per * few.1 as f64) * 1e6
    );
    let mut three = time(queries, || {
        for who in TEAM {
            find(&store, &team(who), 100);
        }
    });
    three.sort_unstable();
    println!(
        "{:<40} p50 {:>9.1} µs  p99 {:>9.1} µs",
        "three finds (team of three)",
        us(three[three.len() / 2]),
        us(p99(&three))
    );
}

/// Record `n` of the tenant, as the cost bench makes it.
fn bench_record(n: usize, ms: i64) -> Record {
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
        (RecordKind::Lead, "leads", "new", TEAM[n % 5000 / 34].into())
    } else if n % 9973 == 11 && n / 9973 < 10 {
        (RecordKind::Lead, "leads", "new", "few".into())
    } else {
        (RecordKind::Lead, "leads", "new", format!("o{}", n % 200))
    };
    let id = stagecraft_model::id::id_at("rec", ms, n as u128 + 1);
    let mut r = record(&id, Some(stage));
    r.kind = kind;
    r.name = format!("Person {n}");
    r.email = Some(format!("person{n}@example.com"));
    r.pipeline = Some(pipeline.into());
    r.owner = Some(owner);
    r.custom.insert("source".into(), json!("web"));
    r.custom.insert("company_size".into(), json!(n % 5000));
    r
}

fn fill(store: &Store, n: usize) {
    let op = Op::CreateTenant {
        tenant: stagecraft_model::Tenant {
            id: TENANT.into(),
            name: TENANT.into(),
            created_at: at(0),
        },
        key: key(TENANT, "hash-bench"),
        pipelines: vec![
            pipeline("leads", &["new"]),
            pipeline("deals", &["discovery"]),
            pipeline("support", &["open"]),
        ],
    };
    store
        .commit(&Changeset::op(TENANT, op))
        .expect("tenant created");
    let ms = chrono::Utc::now().timestamp_millis();
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut cs = Changeset::new(TENANT);
        cs.durability = Durability::Lazy;
        for &i in chunk {
            cs.records.push(RecordWrite::Put {
                record: Box::new(bench_record(i, ms)),
                expected: None,
            });
        }
        store.commit(&cs).expect("records");
    }
    store.flush().expect("flush");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "filled {n} records in {secs:.1} s ({:.0}/s)",
        n as f64 / secs
    );
}

fn find(store: &Store, filter: &RecordFilter, limit: usize) -> usize {
    let page = store
        .records(TENANT, filter, None, limit, &ListLimits::default())
        .expect("a page");
    std::hint::black_box(&page.records);
    page.records.len()
}

fn time(queries: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..queries / 10 + 1 {
        f();
    }
    (0..queries)
        .map(|_| {
            let at = Instant::now();
            f();
            at.elapsed()
        })
        .collect()
}

/// Times `queries` pages of `filter` and prints p50 and p99; returns the p50 and the count.
fn page_line(
    store: &Store,
    label: &str,
    filter: &RecordFilter,
    limit: usize,
    queries: usize,
) -> (Duration, usize) {
    let mut found = 0;
    let mut each = time(queries, || found = find(store, filter, limit));
    each.sort_unstable();
    println!(
        "{label:<40} {found:>4} found  p50 {:>9.1} µs  p99 {:>9.1} µs",
        us(each[each.len() / 2]),
        us(p99(&each))
    );
    (each[each.len() / 2], found)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn p99(v: &[Duration]) -> Duration {
    v[((v.len() as f64 - 1.0) * 0.99) as usize]
}
