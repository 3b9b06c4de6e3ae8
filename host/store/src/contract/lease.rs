//! Taking due work: jobs, timers and messages. Two holders never hold the same item at
//! once; an expired lease is taken over; what a holder that died held is taken again.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::{LeaseRequest, Leased, Queue};

const TTL: Duration = Duration::from_secs(60);

fn lease(b: &dyn Backend, queue: Queue, holder: &str, ms: i64, limit: usize) -> Vec<Leased> {
    let req = LeaseRequest {
        queue,
        holder: holder.into(),
        now: at(ms),
        ttl: TTL,
        limit,
    };
    b.lease(&req)
        .unwrap_or_else(|e| panic!("lease {req:?}: {e}"))
}

fn jobs(b: &dyn Backend, tenant: &str, holder: &str, ms: i64, limit: usize) -> Vec<String> {
    lease(
        b,
        Queue::Jobs {
            tenant: tenant.into(),
        },
        holder,
        ms,
        limit,
    )
    .into_iter()
    .map(|l| match l {
        Leased::Job(j) => j.id,
        other => panic!("a job lease answered {other:?}"),
    })
    .collect()
}

fn timers(b: &dyn Backend, holder: &str, ms: i64, limit: usize) -> Vec<DueTimerOf> {
    lease(b, Queue::Timers, holder, ms, limit)
        .into_iter()
        .map(|l| match l {
            Leased::Timer(t) => t,
            other => panic!("a timer lease answered {other:?}"),
        })
        .collect()
}

type DueTimerOf = crate::DueTimer;

fn names(timers: &[DueTimerOf]) -> Vec<String> {
    timers.iter().map(|t| t.timer.id.clone()).collect()
}

fn finish_job(b: &dyn Backend, tenant: &str, id: &str) {
    op(b, tenant, Op::FinishJob { id: id.into() }).expect("job finished");
}

fn fire(b: &dyn Backend, t: &DueTimerOf, job_id: &str) -> bool {
    let op = Op::FireTimer {
        timer: t.clone(),
        event: None,
        job: Some(job(&t.tenant, job_id)),
    };
    commit1(b, &Changeset::op(&t.tenant, op))
        .expect("fired")
        .fired()
        .expect("reported")
}

fn due_entries(b: &dyn Backend, until: DateTime<Utc>) -> Vec<crate::DueMessage> {
    walk(b, &List::DueMessages { since: None, until }, 1000)
        .0
        .into_iter()
        .map(|r| match r {
            Row::Due(d) => d,
            other => panic!("the due index answered {other:?}"),
        })
        .collect()
}

fn claim(b: &dyn Backend, due: &crate::DueMessage, holder: &str) -> Option<OutboxMessage> {
    match lease(b, Queue::Message(due.clone()), holder, 0, 1).as_slice() {
        [] => None,
        [Leased::Message(m)] => Some(m.clone()),
        other => panic!("a message lease answered {other:?}"),
    }
}

/// Jobs: a holder takes the oldest ones nobody else holds; its own come back to it; a
/// finished one is gone; an expired lease is anyone's. Two holders racing take every job
/// exactly once between them.
pub fn two_holders_never_hold_the_same_job(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    let mut cs = Changeset::new(TENANT);
    for n in 1..=6 {
        cs.jobs.push(job(TENANT, &format!("job_{n}")));
    }
    ok(b, &cs);
    assert_eq!(jobs(b, TENANT, "a", 0, 2), ["job_1", "job_2"]);
    assert_eq!(
        jobs(b, TENANT, "b", 0, 10),
        ["job_3", "job_4", "job_5", "job_6"]
    );
    assert_eq!(
        jobs(b, TENANT, "a", 0, 10),
        ["job_1", "job_2"],
        "its own, renewed"
    );
    assert!(jobs(b, TENANT, "c", 0, 10).is_empty(), "all held");
    finish_job(b, TENANT, "job_1");
    assert_eq!(jobs(b, TENANT, "a", 1_000, 10), ["job_2"]);
    // A's lease (renewed at 1 s) and B's (taken at 0) run out.
    let later = 1_000 + TTL.as_millis() as i64 + 1;
    assert_eq!(
        jobs(b, TENANT, "c", later, 10),
        ["job_2", "job_3", "job_4", "job_5", "job_6"],
        "expired leases are taken over"
    );

    // Two holders racing over 40 jobs, each finishing what it takes.
    let mut cs = Changeset::new(OTHER);
    for n in 0..40 {
        cs.jobs.push(job(OTHER, &format!("job_{n:02}")));
    }
    ok(b, &cs);
    let taken: Mutex<Vec<(String, String)>> = Mutex::default();
    std::thread::scope(|s| {
        for holder in ["x", "y"] {
            let taken = &taken;
            s.spawn(move || {
                for _ in 0..10_000 {
                    let mine = jobs(b, OTHER, holder, 0, 3);
                    if mine.is_empty()
                        && all(
                            b,
                            List::Jobs {
                                tenant: OTHER.into(),
                            },
                        )
                        .is_empty()
                    {
                        return;
                    }
                    for id in mine {
                        taken
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((holder.to_string(), id.clone()));
                        finish_job(b, OTHER, &id);
                    }
                }
                panic!("the queue never emptied");
            });
        }
    });
    let taken = taken.into_inner().unwrap_or_else(|p| p.into_inner());
    let unique: BTreeSet<&String> = taken.iter().map(|(_, id)| id).collect();
    assert_eq!(taken.len(), 40, "every job taken once: {taken:?}");
    assert_eq!(unique.len(), 40);
}

/// Timers: only due ones are taken, oldest first, never one another holder holds; firing
/// one writes its job once (a second fire writes nothing); an expired lease is taken over.
pub fn two_holders_never_hold_the_same_timer(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&record("rec_1", Some("new")), None));
    cs.timers
        .push(timer("tmr_2", "rec_1", Some("new"), 2_000, true));
    cs.timers
        .push(timer("tmr_1", "rec_1", Some("new"), 1_000, true));
    cs.timers
        .push(timer("tmr_3", "rec_1", Some("new"), 10_000, true));
    ok(b, &cs);
    let held = timers(b, "a", 2_500, 10);
    assert_eq!(names(&held), ["tmr_1", "tmr_2"], "due ones, oldest first");
    assert!(timers(b, "b", 2_500, 10).is_empty(), "A holds them");
    assert!(fire(b, &held[0], "job_fired"));
    assert!(!fire(b, &held[0], "job_again"), "fired already");
    let queued = ids(&all(
        b,
        List::Jobs {
            tenant: TENANT.into(),
        },
    ));
    assert_eq!(queued, ["job_fired"], "the second fire wrote nothing");
    match read(
        b,
        Read::FollowUps {
            tenant: TENANT.into(),
            binding: "bnd_1".into(),
            record: "rec_1".into(),
        },
    ) {
        Some(Row::FollowUps { pair, .. }) => assert_eq!(pair, 2, "the fired one is counted out"),
        other => panic!("{other:?}"),
    }
    // A's lease on tmr_2 runs out; tmr_3 is not due yet.
    let later = 2_500 + TTL.as_millis() as i64 + 1;
    assert!(later > 10_000);
    assert_eq!(names(&timers(b, "b", later, 10)), ["tmr_2", "tmr_3"]);

    // Two holders racing over 30 due timers: each fired exactly once.
    let mut cs = Changeset::new(OTHER);
    for n in 0..30 {
        cs.timers
            .push(timer(&format!("tmr_{n:02}"), "rec_x", None, 100, false));
    }
    ok(b, &cs);
    // Every lease is recorded: a timer leased twice (by both, or by one after the other
    // fired it) would show up twice.
    let leased: Mutex<Vec<String>> = Mutex::default();
    std::thread::scope(|s| {
        for holder in ["x", "y"] {
            let leased = &leased;
            s.spawn(move || {
                for round in 0..10_000 {
                    let mine: Vec<DueTimerOf> = timers(b, holder, 200, 4)
                        .into_iter()
                        .filter(|t| t.tenant == OTHER)
                        .collect();
                    if mine.is_empty()
                        && all(
                            b,
                            List::Timers {
                                tenant: OTHER.into(),
                            },
                        )
                        .is_empty()
                    {
                        return;
                    }
                    for t in mine {
                        leased
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(t.timer.id.clone());
                        assert!(fire(b, &t, &format!("job_{holder}_{round}_{}", t.timer.id)));
                    }
                }
                panic!("the timers never all fired");
            });
        }
    });
    let mut leased = leased.into_inner().unwrap_or_else(|p| p.into_inner());
    leased.sort();
    let expected: Vec<String> = (0..30).map(|n| format!("tmr_{n:02}")).collect();
    assert_eq!(leased, expected, "each taken and fired exactly once");
    assert_eq!(
        all(
            b,
            List::Jobs {
                tenant: OTHER.into()
            }
        )
        .len(),
        30,
        "one job per timer"
    );
}

/// Messages: a due message is claimed once (it becomes `sending`); once its attempt is
/// finished and it is due again, it can be claimed again. Two holders racing claim each
/// message once.
pub fn a_message_is_claimed_once(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let mid = message_id(1, 1);
    let mut cs = Changeset::new(TENANT);
    cs.messages.push(message(&mid, "run_x", None, 1));
    ok(b, &cs);
    let due = due_entries(b, at(10));
    assert_eq!(due.len(), 1);
    let m = claim(b, &due[0], "a").expect("claimed");
    assert_eq!(m.status, MessageStatus::Sending);
    assert_eq!(claim(b, &due[0], "b"), None, "claimed once");
    assert!(due_entries(b, at(10)).is_empty(), "no longer due");
    let mut again = m.clone();
    again.status = MessageStatus::Queued;
    again.next_attempt_at = Some(at(20));
    op(b, TENANT, Op::FinishMessage { message: again }).expect("queued again");
    let due = due_entries(b, at(30));
    assert_eq!(
        ids(&due.iter().cloned().map(Row::Due).collect::<Vec<_>>()),
        std::slice::from_ref(&mid)
    );
    assert!(claim(b, &due[0], "b").is_some(), "due again: anyone's");

    tenant(b, OTHER);
    let mut cs = Changeset::new(OTHER);
    for n in 0..20u128 {
        cs.messages
            .push(message(&message_id(5, n), "run_x", None, 5));
    }
    ok(b, &cs);
    let entries = due_entries(b, at(10));
    let claimed: Mutex<Vec<String>> = Mutex::default();
    std::thread::scope(|s| {
        for holder in ["x", "y"] {
            let (claimed, entries) = (&claimed, &entries);
            s.spawn(move || {
                for d in entries {
                    if let Some(m) = claim(b, d, holder) {
                        claimed.lock().unwrap_or_else(|p| p.into_inner()).push(m.id);
                    }
                }
            });
        }
    });
    let mut claimed = claimed.into_inner().unwrap_or_else(|p| p.into_inner());
    claimed.sort();
    let expected: Vec<String> = (0..20u128).map(|n| message_id(5, n)).collect();
    assert_eq!(claimed, expected, "each claimed exactly once");
}

/// What a holder held when it died (the storage is opened again, the host's start-up
/// `recover` runs, and the lease's time passes) is taken again by another.
pub fn what_a_dead_holder_held_is_taken_again(open: Open<'_>) {
    let mid = message_id(1, 1);
    {
        let b = open();
        let b = b.as_ref();
        tenant(b, TENANT);
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&record("rec_1", None), None));
        cs.jobs.push(job(TENANT, "job_1"));
        cs.timers.push(timer("tmr_1", "rec_1", None, 1, false));
        cs.messages.push(message(&mid, "run_x", None, 1));
        ok(b, &cs);
        assert_eq!(jobs(b, TENANT, "dead", 0, 10), ["job_1"]);
        assert_eq!(names(&timers(b, "dead", 10, 10)), ["tmr_1"]);
        let due = due_entries(b, at(10));
        assert!(claim(b, &due[0], "dead").is_some());
    }
    let b = open();
    let b = b.as_ref();
    b.recover().expect("recovered");
    let after_ttl =
        Utc::now() + chrono::Duration::from_std(TTL).expect("ttl") + chrono::Duration::seconds(1);
    let ms = (after_ttl - at(0)).num_milliseconds();
    assert_eq!(jobs(b, TENANT, "heir", ms, 10), ["job_1"]);
    assert_eq!(names(&timers(b, "heir", ms, 10)), ["tmr_1"]);
    assert_eq!(
        b.recover().expect("recovered").messages,
        0,
        "nothing left to recover"
    );
    let due = due_entries(b, after_ttl);
    let entry = due
        .iter()
        .find(|d| d.id == mid)
        .expect("the message is due again");
    let m = claim(b, entry, "heir").expect("taken again");
    assert_eq!(m.id, mid);
}
