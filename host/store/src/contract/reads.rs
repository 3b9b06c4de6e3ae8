//! What a reader sees while commits land: never part of a changeset. Once one write of a
//! changeset is visible to a read, every write of it is visible to every later read. (A
//! list is not a snapshot: a page read meanwhile may show some commits and not others.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

const COMMITS: usize = 150;

/// A writer commits changesets of two new records and an update of a shared one with its
/// event, while a reader keeps checking: whenever the first record of a changeset is
/// visible, so is the second; whenever its event is, the shared record is at least at its
/// version; and the shared record's version never goes back.
pub fn readers_never_see_part_of_a_commit(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let shared = record("rec_shared", Some("new"));
    ok(b, &{
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&shared, None));
        cs
    });
    let written = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let checks = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut current = shared.clone();
            for i in 0..COMMITS {
                let mut next = current.clone();
                next.version += 1;
                next.custom.insert("i".into(), json!(i));
                let mut cs = Changeset::new(TENANT);
                cs.records
                    .push(put(&record(&format!("rec_a{i:04}"), None), None));
                cs.records.push(put(&next, Some(current.version)));
                cs.events
                    .push(event(&event_id(i as i64, 1), Some("rec_shared"), i as i64));
                cs.records
                    .push(put(&record(&format!("rec_b{i:04}"), None), None));
                ok(b, &cs);
                written.store(i + 1, Ordering::Release);
                current = next;
            }
            done.store(true, Ordering::Release);
        });
        s.spawn(|| {
            let mut highest = 1;
            loop {
                let finished = done.load(Ordering::Acquire);
                // The newest changesets first: the ones most likely in flight.
                let upto = (written.load(Ordering::Acquire) + 2).min(COMMITS);
                for i in (upto.saturating_sub(4)..upto).rev() {
                    if get_record(b, TENANT, &format!("rec_a{i:04}")).is_some() {
                        assert!(
                            get_record(b, TENANT, &format!("rec_b{i:04}")).is_some(),
                            "changeset {i}: its first record is visible, its last is not"
                        );
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                    let ev = Read::Event {
                        tenant: TENANT.into(),
                        id: event_id(i as i64, 1),
                    };
                    if read(b, ev).is_some() {
                        let v = get_record(b, TENANT, "rec_shared").expect("shared").version;
                        assert!(
                            v >= i as u64 + 2,
                            "changeset {i}: its event is visible, its update is not"
                        );
                    }
                    let v = get_record(b, TENANT, "rec_shared").expect("shared").version;
                    assert!(
                        v >= highest,
                        "the shared record went back from {highest} to {v}"
                    );
                    highest = v;
                }
                if finished {
                    return;
                }
            }
        });
    });
    assert_eq!(
        get_record(b, TENANT, "rec_shared").map(|r| r.version),
        Some(COMMITS as u64 + 1)
    );
    assert!(
        checks.load(Ordering::Relaxed) > 0,
        "the reader saw commits land"
    );
}
