//! Many committers at once: whatever a backend does to commit them together (sled groups
//! the commits waiting at the same time into one batch and one flush; PostgreSQL commits
//! one transaction each), every committer gets its own, correct answer. A conflict rejects
//! only its own changeset, never a neighbour in the same batch or group; everything
//! acknowledged is there after a reopen; nothing refused is.

use std::sync::Mutex;

use super::*;
use crate::StoreError;

/// Threads committing at once.
const THREADS: usize = 8;
/// Rounds each thread runs.
const ROUNDS: usize = 40;

/// What one thread saw, to be checked after a reopen.
#[derive(Default)]
struct Seen {
    /// Records whose create was acknowledged.
    created: Vec<String>,
    /// Records whose create was refused (they must not exist).
    refused: Vec<String>,
    /// Updates of the shared record this thread won.
    won: u64,
    /// Updates of the shared record this thread lost to a version conflict.
    lost: u64,
}

/// Each round, each of [`THREADS`] threads commits, through one `commit` call, a batch of
/// three changesets: a create of its own (always succeeds), an update of one shared
/// record at the version it last read (exactly one writer per version wins; the rest get
/// `VersionConflict`), and a create that must fail (`AlreadyExists`, after a write that
/// would succeed on its own — all or nothing). Every answer must be that changeset's own;
/// after a reopen every acknowledged write is there and no refused one is, and the shared
/// record's version counts exactly the won updates.
pub fn concurrent_committers_get_their_own_results(open: Open<'_>) {
    let seen = Mutex::new(Vec::new());
    {
        let b = open();
        let b = b.as_ref();
        tenant(b, TENANT);
        let mut base = Changeset::new(TENANT);
        base.records
            .push(put(&record("rec_hot", Some("new")), None));
        base.records.push(put(&record("rec_taken", None), None));
        ok(b, &base);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let seen = &seen;
                s.spawn(move || {
                    let mine = committer(b, t);
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(mine);
                });
            }
        });
    }
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    assert_eq!(seen.len(), THREADS, "every committer finished");
    let b = open();
    let b = b.as_ref();
    let mut won = 0;
    for s in &seen {
        won += s.won;
        assert_eq!(
            s.created.len(),
            ROUNDS,
            "every create of its own was acknowledged"
        );
        for id in &s.created {
            assert!(
                get_record(b, TENANT, id).is_some(),
                "{id} was acknowledged but is missing after a reopen"
            );
        }
        for id in &s.refused {
            assert!(
                get_record(b, TENANT, id).is_none(),
                "{id} was in a refused changeset but was written"
            );
        }
        assert_eq!(s.won + s.lost, ROUNDS as u64, "every update got an answer");
    }
    assert!(
        won >= ROUNDS as u64,
        "at least one update wins per version race"
    );
    let hot = get_record(b, TENANT, "rec_hot").expect("the shared record");
    assert_eq!(
        hot.version,
        1 + won,
        "the shared record moved once per acknowledged update"
    );
    let winners = hot.custom.get("writes").and_then(|v| v.as_u64());
    assert_eq!(winners, Some(won), "the last update saw every earlier one");
}

/// One thread's rounds (see the property).
fn committer(b: &dyn Backend, t: usize) -> Seen {
    let mut seen = Seen::default();
    for round in 0..ROUNDS {
        let own = format!("rec_t{t}_r{round:03}");
        let doomed = format!("rec_t{t}_r{round:03}_doomed");
        let mut create = Changeset::new(TENANT);
        create.records.push(put(&record(&own, Some("new")), None));

        let hot = get_record(b, TENANT, "rec_hot").expect("the shared record");
        let mut next = hot.clone();
        next.version += 1;
        let writes = hot
            .custom
            .get("writes")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        next.custom.insert("writes".into(), json!(writes + 1));
        let mut update = Changeset::new(TENANT);
        update.records.push(put(&next, Some(hot.version)));

        let mut bad = Changeset::new(TENANT);
        bad.records.push(put(&record(&doomed, None), None));
        bad.records.push(put(&record("rec_taken", None), None));

        let results = b.commit(&[&create, &update, &bad]);
        assert_eq!(results.len(), 3, "one result per changeset");
        let mut results = results.into_iter();
        match results.next() {
            Some(Ok(_)) => seen.created.push(own),
            other => panic!("thread {t} round {round}: its own create answered {other:?}"),
        }
        match results.next() {
            Some(Ok(_)) => seen.won += 1,
            Some(Err(StoreError::VersionConflict { expected, .. })) => {
                assert_eq!(
                    expected, hot.version,
                    "the conflict names the version it expected"
                );
                seen.lost += 1;
            }
            other => panic!("thread {t} round {round}: the update answered {other:?}"),
        }
        match results.next() {
            Some(Err(StoreError::AlreadyExists(_))) => seen.refused.push(doomed),
            other => panic!("thread {t} round {round}: the doomed create answered {other:?}"),
        }
    }
    seen
}
