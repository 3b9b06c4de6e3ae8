//! Durable commits per second from 1 and from 8 threads, and the latency of a lone commit,
//! on a sled data dir in a temp dir: the store's share of the cost bench's (d), without the
//! sandbox. `cargo run --release -p stagecraft-store --example commit_rate [n]`.
//!
//! Each commit is what a background run commits: a record update, its journal event and a
//! run record, in a tenant of its own per thread (so commits never conflict).

use std::time::{Duration, Instant};

use stagecraft_model::Tenant;
use stagecraft_store::contract::{at, event, key, pipeline, record, run};
use stagecraft_store::{Changeset, Op, RecordWrite, Store};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::Builder::new()
        .prefix("commit-rate-")
        .tempdir()
        .expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let lone = rate(&store, 1, n / 4, "lone");
    let one = rate(&store, 1, n, "one");
    let eight = rate(&store, 8, n / 8, "eight");
    println!(
        "lone commit        p50 {:>9.1} µs  p99 {:>9.1} µs",
        us(lone.1[lone.1.len() / 2]),
        us(p99(&lone.1))
    );
    for (name, (per_sec, each)) in [("1 thread ", one), ("8 threads", eight)] {
        println!(
            "{name}          {per_sec:>9.0} commits/s  p50 {:>9.1} µs  p99 {:>9.1} µs",
            us(each[each.len() / 2]),
            us(p99(&each))
        );
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn p99(v: &[Duration]) -> Duration {
    v[((v.len() as f64 - 1.0) * 0.99) as usize]
}

/// `threads` threads each committing `per` changesets one after the other.
fn rate(store: &Store, threads: usize, per: usize, tag: &str) -> (f64, Vec<Duration>) {
    let tenants: Vec<String> = (0..threads).map(|t| format!("t{tag}{t}")).collect();
    for t in &tenants {
        let op = Op::CreateTenant {
            tenant: Tenant {
                id: t.clone(),
                name: t.clone(),
                created_at: at(0),
            },
            key: key(t, &format!("hash-{t}")),
            pipelines: vec![pipeline("sales", &["new", "won", "lost"])],
        };
        store.commit(&Changeset::op(t, op)).expect("tenant");
    }
    let start = Instant::now();
    let mut each: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = tenants
            .iter()
            .map(|t| {
                s.spawn(move || {
                    let mut r = record("rec_1", Some("new"));
                    let mut cs = Changeset::new(t);
                    cs.records.push(RecordWrite::Put {
                        record: Box::new(r.clone()),
                        expected: None,
                    });
                    store.commit(&cs).expect("create");
                    (0..per)
                        .map(|i| {
                            let mut next = r.clone();
                            next.version += 1;
                            next.custom.insert("i".into(), serde_json::json!(i));
                            let mut cs = Changeset::new(t);
                            cs.records.push(RecordWrite::Put {
                                record: Box::new(next.clone()),
                                expected: Some(r.version),
                            });
                            let mut e = event(&format!("evt_{i:08}"), Some("rec_1"), i as i64);
                            e.tenant = t.clone();
                            cs.events.push(e);
                            cs.runs.push(run(
                                &format!("run_{i:08}"),
                                Some("rec_1"),
                                "bnd_1",
                                "m",
                                i as i64,
                            ));
                            let at = Instant::now();
                            store.commit(&cs).expect("commit");
                            r = next;
                            at.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let wall = start.elapsed();
    each.sort_unstable();
    (each.len() as f64 / wall.as_secs_f64(), each)
}
