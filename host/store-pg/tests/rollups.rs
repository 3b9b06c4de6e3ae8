//! Hourly rollups under many hosts: runs committed at once from several backends (each its
//! own pool, as separate hosts have) while readers and compactors fold their deltas, add
//! up exactly — no increment lost, none counted twice — and no commit loses a
//! serialization race over them. A database migrated before rollups became deltas keeps
//! its totals.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use stagecraft_model::stats::Rollup;
use stagecraft_model::Outcome;
use stagecraft_store::contract::{ok, run, run_id, tenant, TENANT};
use stagecraft_store::{Backend, Changeset, List, PageRequest, Row, Scope};
use stagecraft_store_pg::{schema, PgBackend, PgOptions};

/// Hosts (backends, each with its own pool) writing one database.
const HOSTS: usize = 3;
/// Committing threads per host.
const THREADS: usize = 3;
/// Runs each thread commits.
const RUNS: usize = 60;
/// Milliseconds in an hour: runs alternate between two hours.
const HOUR: i64 = 3_600_000;

fn open(db: &common::TempDatabase) -> Arc<PgBackend> {
    Arc::new(PgBackend::open(db.config(), PgOptions::default()).expect("PostgreSQL opens"))
}

/// The rollups of `name` as the store reads them: hour → rollup.
fn rollups(b: &dyn Backend, scope: Scope, name: &str) -> Vec<(i64, Rollup)> {
    let list = List::Rollups {
        tenant: TENANT.into(),
        scope,
        name: name.into(),
        since_hour: 0,
        until_hour: i64::MAX,
    };
    b.list(&list, &PageRequest::all())
        .expect("rollups read")
        .items
        .into_iter()
        .map(|r| match r {
            Row::Rollup { hour, rollup } => (hour, rollup),
            other => panic!("not a rollup: {other:?}"),
        })
        .collect()
}

/// (rolled back, committed) transactions in the test's database, once every other
/// connection to it is gone (a server process reports its counts when it exits).
fn transactions(db: &common::TempDatabase) -> (i64, i64) {
    let mut c = db.client();
    for _ in 0..2_000 {
        let others: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("activity")
            .get(0);
        if others == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let row = c
        .query_one(
            "SELECT xact_rollback, xact_commit FROM pg_stat_database \
             WHERE datname = current_database()",
            &[],
        )
        .expect("database statistics");
    (row.get(0), row.get(1))
}

/// The run thread `t` commits as its `i`th: in one of two hours, with fuel `i + 1`, every
/// fifth a guest error.
fn nth_run(t: usize, i: usize) -> stagecraft_model::RunRecord {
    let ms = (i % 2) as i64 * HOUR + i as i64;
    let mut r = run(
        &run_id(ms, (t * 10_000 + i) as u128),
        Some("rec_1"),
        "bnd_hot",
        "hot-module",
        ms,
    );
    r.fuel_used = i as u64 + 1;
    if i.is_multiple_of(5) {
        r.outcome = Outcome::GuestError {
            message: "no".into(),
        };
    }
    r
}

/// What every run of every thread adds up to, per hour.
fn expected() -> Vec<(i64, Rollup)> {
    let mut hours: std::collections::BTreeMap<i64, Rollup> = Default::default();
    for t in 0..HOSTS * THREADS {
        for i in 0..RUNS {
            let r = nth_run(t, i);
            hours
                .entry(stagecraft_model::stats::hour_of(r.started_at))
                .or_default()
                .add(&r);
        }
    }
    hours.into_iter().collect()
}

#[test]
fn concurrent_runs_from_several_hosts_add_up_exactly_without_retries() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    let hosts: Vec<Arc<PgBackend>> = (0..HOSTS).map(|_| open(&db)).collect();
    tenant(hosts[0].as_ref(), TENANT);
    let (rolled_back_before, _) = {
        // The set-up's own transactions are not the workload's.
        let mut c = db.client();
        let row = c
            .query_one(
                "SELECT xact_rollback, xact_commit FROM pg_stat_database \
                 WHERE datname = current_database()",
                &[],
            )
            .expect("database statistics");
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    };
    let writing = AtomicBool::new(true);
    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for (h, host) in hosts.iter().enumerate() {
            for k in 0..THREADS {
                let host = host.clone();
                writers.push(s.spawn(move || {
                    let t = h * THREADS + k;
                    for i in 0..RUNS {
                        let mut cs = Changeset::new(TENANT);
                        cs.runs.push(nth_run(t, i));
                        ok(host.as_ref(), &cs);
                    }
                }));
            }
        }
        // While they write: a reader (which folds what it finds, past a threshold) and a
        // compactor folding everything, each on its own host.
        let reader = {
            let (host, writing) = (hosts[1].clone(), &writing);
            s.spawn(move || {
                while writing.load(Ordering::Relaxed) {
                    let seen: u64 = rollups(host.as_ref(), Scope::Binding, "bnd_hot")
                        .iter()
                        .map(|(_, r)| r.runs)
                        .sum();
                    assert!(
                        seen <= (HOSTS * THREADS * RUNS) as u64,
                        "never more than ran"
                    );
                }
            })
        };
        let compactor = {
            let writing = &writing;
            let mut c = db.client();
            s.spawn(move || {
                let mut folded = 0;
                while writing.load(Ordering::Relaxed) {
                    folded += stagecraft_store_pg::rollup::compact_all(&mut c, TENANT)
                        .expect("compaction");
                }
                folded
            })
        };
        for w in writers {
            w.join().expect("a writer finished");
        }
        writing.store(false, Ordering::Relaxed);
        reader.join().expect("the reader finished");
        let folded = compactor.join().expect("the compactor finished");
        eprintln!("the compactor folded {folded} deltas while the runs committed");
    });

    let want = expected();
    for host in &hosts {
        assert_eq!(
            rollups(host.as_ref(), Scope::Module, "hot-module"),
            want,
            "the module's rollups count every run exactly once"
        );
        assert_eq!(
            rollups(host.as_ref(), Scope::Binding, "bnd_hot"),
            want,
            "the binding's rollups count every run exactly once"
        );
    }
    // Everything folded: the same totals from the compacted rows alone.
    let mut c = db.client();
    stagecraft_store_pg::rollup::compact_all(&mut c, TENANT).expect("compaction");
    let left: i64 = c
        .query_one("SELECT count(*) FROM rollup_deltas", &[])
        .expect("deltas")
        .get(0);
    assert_eq!(left, 0, "a full compaction leaves no delta");
    assert_eq!(
        rollups(hosts[2].as_ref(), Scope::Module, "hot-module"),
        want
    );
    drop(c);

    drop(hosts);
    let (rolled_back, committed) = transactions(&db);
    eprintln!("transactions: {rolled_back} rolled back, {committed} committed");
    assert_eq!(
        rolled_back - rolled_back_before,
        0,
        "no commit of a run lost a serialization race (they all add to the same two rollups)"
    );
}

#[test]
fn rollups_from_before_version_7_keep_their_totals_and_deltas_add_to_them() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    // A database at version 5 with a rollups row written the old way (read, changed,
    // rewritten: the hour's whole total in one row).
    {
        let mut c = db.client();
        c.batch_execute(
            "CREATE TABLE stagecraft_schema (\
                one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL)",
        )
        .expect("schema table");
        for m in &schema::MIGRATIONS[..5] {
            c.batch_execute(m).expect("an old migration");
        }
        c.execute("INSERT INTO stagecraft_schema (version) VALUES (5)", &[])
            .expect("version 5");
    }
    let mut before = Rollup::default();
    for i in 0..3 {
        before.add(&nth_run(99, 2 * i));
    }
    db.client()
        .execute(
            "INSERT INTO rollups (tenant, scope, name, hour, value) VALUES ($1, 'b', 'bnd_hot', $2, $3)",
            &[
                &TENANT,
                &stagecraft_model::stats::hour_of(nth_run(99, 0).started_at),
                &serde_json::to_value(&before).expect("encodes"),
            ],
        )
        .expect("an old rollup row");
    // A host of this version starts: it migrates to the current version.
    let b = open(&db);
    let version: i64 = db
        .client()
        .query_one("SELECT version FROM stagecraft_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, schema::VERSION);
    assert_eq!(
        rollups(b.as_ref(), Scope::Binding, "bnd_hot"),
        vec![(
            stagecraft_model::stats::hour_of(nth_run(99, 0).started_at),
            before.clone()
        )],
        "the old row reads back as it was"
    );
    let mut cs = Changeset::new(TENANT);
    cs.runs.push(nth_run(0, 0));
    ok(b.as_ref(), &cs);
    let mut after = before;
    after.add(&nth_run(0, 0));
    let want = vec![(
        stagecraft_model::stats::hour_of(nth_run(0, 0).started_at),
        after,
    )];
    assert_eq!(
        rollups(b.as_ref(), Scope::Binding, "bnd_hot"),
        want,
        "old total + delta"
    );
    let mut c = db.client();
    stagecraft_store_pg::rollup::compact_all(&mut c, TENANT).expect("compaction");
    assert_eq!(
        rollups(b.as_ref(), Scope::Binding, "bnd_hot"),
        want,
        "folded alike"
    );
}
