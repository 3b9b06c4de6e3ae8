//! Retention: what a prune pass removes (old runs with their index entries, old journal
//! snapshots, delivered messages) and what it keeps (the events themselves, rollups,
//! everything newer and everything not delivered).

use stagecraft_model::Attempt;

use super::*;
use crate::{PruneRequest, Pruned, Scope};

fn has(b: &dyn Backend, r: Read) -> bool {
    read(b, r).is_some()
}

fn deliver(b: &dyn Backend, id: &str, status: MessageStatus, ms: i64) {
    let mut m = match read(
        b,
        Read::Message {
            tenant: TENANT.into(),
            id: id.into(),
        },
    ) {
        Some(Row::Message(m)) => m,
        other => panic!("{other:?}"),
    };
    let due = walk(
        b,
        &List::DueMessages {
            since: None,
            until: at(ms),
        },
        1000,
    )
    .0
    .into_iter()
    .find_map(|r| match r {
        Row::Due(d) if d.id == id => Some(d),
        _ => None,
    })
    .expect("due");
    let taken = b
        .lease(&crate::LeaseRequest {
            queue: crate::Queue::Message(due),
            holder: "h".into(),
            now: at(ms),
            ttl: std::time::Duration::from_secs(60),
            limit: 1,
        })
        .expect("taken");
    assert_eq!(taken.len(), 1);
    m.attempts.push(Attempt {
        at: at(ms),
        status: Some(200),
        error: None,
        duration_ms: 1,
    });
    m.status = status;
    m.next_attempt_at = None;
    if status == MessageStatus::Sent {
        m.sent_at = Some(at(ms));
    }
    op(b, TENANT, Op::FinishMessage { message: m }).expect("finished");
}

/// A pass removes what is older than its cutoff and keeps the rest; a second pass finds
/// nothing left to do.
pub fn retention_removes_only_what_is_old(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let (old, new) = (50_000, 150_000);
    let cutoff = at(100_000);
    let (r_old, r_new) = (run_id(old, 1), run_id(new, 1));
    let (e_old, e_new) = (event_id(old, 1), event_id(new, 1));
    let mut cs = Changeset::new(TENANT);
    cs.runs.push(run(&r_old, None, "bnd_1", "m", old));
    cs.runs.push(run(&r_new, None, "bnd_1", "m", new));
    cs.events.push(event(&e_old, Some("rec_1"), old));
    cs.events.push(event(&e_new, Some("rec_1"), new));
    let ids_of = ["sent_old", "sent_new", "dead_old", "queued_old"];
    for (n, _) in ids_of.iter().enumerate() {
        cs.messages
            .push(message(&message_id(old, n as u128), &r_old, None, old));
    }
    ok(b, &cs);
    deliver(b, &message_id(old, 0), MessageStatus::Sent, old + 1);
    deliver(b, &message_id(old, 1), MessageStatus::Sent, new);
    deliver(b, &message_id(old, 2), MessageStatus::Dead, old + 1);

    let pruned = b.prune(&PruneRequest { cutoff, batch: 1 }).expect("pruned");
    assert_eq!(
        pruned,
        Pruned {
            runs: 1,
            snapshots: 1,
            messages: 1,
            unreadable: 0
        }
    );
    let run_read = |id: &str| Read::Run {
        tenant: TENANT.into(),
        id: id.into(),
    };
    assert!(!has(b, run_read(&r_old)));
    assert!(has(b, run_read(&r_new)));
    let index = all(
        b,
        List::BindingRuns {
            tenant: TENANT.into(),
            binding: "bnd_1".into(),
            since: None,
            until: None,
            last: None,
        },
    );
    assert_eq!(
        ids(&index),
        std::slice::from_ref(&r_new),
        "the index entry went with the run"
    );
    let event_of = |id: &str| match read(
        b,
        Read::Event {
            tenant: TENANT.into(),
            id: id.into(),
        },
    ) {
        Some(Row::Event(e)) => e,
        other => panic!("the event stays: {other:?}"),
    };
    assert!(event_of(&e_old).snapshot.is_none(), "its snapshot went");
    assert!(event_of(&e_new).snapshot.is_some());
    let msg = |n: u128| Read::Message {
        tenant: TENANT.into(),
        id: message_id(old, n),
    };
    assert!(!has(b, msg(0)), "delivered before the cutoff: gone");
    assert!(has(b, msg(1)), "delivered after it");
    assert!(has(b, msg(2)), "dead letters stay");
    assert!(has(b, msg(3)), "queued ones stay");
    let rollups = all(
        b,
        List::Rollups {
            tenant: TENANT.into(),
            scope: Scope::Module,
            name: "m".into(),
            since_hour: 0,
            until_hour: 999_999_999_999,
        },
    );
    let runs: u64 = rollups
        .iter()
        .map(|r| match r {
            Row::Rollup { rollup, .. } => rollup.runs,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(runs, 2, "rollups outlive the runs they count");

    let again = b.prune(&PruneRequest { cutoff, batch: 1 }).expect("pruned");
    assert_eq!(again, Pruned::default());
}
