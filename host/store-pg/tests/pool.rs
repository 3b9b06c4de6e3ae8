//! The connection pool is bounded: an operation that finds every connection busy waits at
//! most the pool's wait, then fails as `Unavailable`, naming the pool.

mod common;

use std::time::{Duration, Instant};

use stagecraft_store::{Backend, Read, StoreError};
use stagecraft_store_pg::{PgBackend, PgOptions};

#[test]
fn a_full_pool_fails_after_its_wait_with_a_named_error() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    let options = PgOptions {
        pool_size: 1,
        pool_wait: Duration::from_millis(300),
    };
    let b = PgBackend::open(db.config(), options).expect("opens");
    // Another session locks the records table, so a read holds the pool's one connection.
    let mut locker = db.client();
    let mut lock = locker.transaction().expect("a transaction");
    lock.batch_execute("LOCK TABLE records IN ACCESS EXCLUSIVE MODE")
        .expect("locks");
    let read = Read::Record {
        tenant: "acme".into(),
        id: "rec_1".into(),
    };
    std::thread::scope(|s| {
        let held = s.spawn(|| b.read(&read));
        // Wait (bounded) until that read is blocked on the lock, holding the connection.
        let mut watcher = db.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND wait_event_type = 'Lock'",
                    &[],
                )
                .expect("activity")
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the read never blocked");
            std::thread::yield_now();
        }
        let started = Instant::now();
        let e = b.read(&read).expect_err("no connection was free");
        assert!(
            matches!(&e, StoreError::Unavailable(m) if m.contains("no PostgreSQL connection came free") && m.contains("at most 1")),
            "{e:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "it waited its bound"
        );
        lock.rollback().expect("unlocks");
        assert_eq!(held.join().expect("the held read").expect("reads"), None);
    });
}
