//! Indexes and cursors: every filter of every indexed list (alone and combined) returns
//! exactly the matching rows, in list order, across pages of any size; cursors resume
//! correctly while writes land; index entries follow a row when it changes stage, owner,
//! email or status and vanish when it is deleted or pruned; nothing crosses tenants.
//! Values carry `/` and `%` so that an index key that lets them split or collide fails.

use stagecraft_model::{Attempt, RecordFilter};

use super::*;
use crate::{MessageFilter, PruneRequest, RunFilter};

const KINDS: [RecordKind; 4] = [
    RecordKind::Lead,
    RecordKind::Deal,
    RecordKind::Contact,
    RecordKind::Company,
];
const OWNERS: [Option<&str>; 6] = [
    None,
    Some("ann"),
    Some("bob"),
    Some("a/b"),
    Some("a"),
    Some("a%2Fb"),
];

fn rec_id(n: usize) -> String {
    format!("rec_{n:03}")
}

/// Record `n` of the fixture: kinds, pipelines, stages, owners and emails spread so every
/// filter value matches several records and none matches all.
fn fixture_record(n: usize) -> Record {
    let mut r = record(&rec_id(n), None);
    r.kind = KINDS[(n / 2) % 4];
    match n % 3 {
        0 => {
            r.pipeline = Some("sales".into());
            r.stage = Some(["new", "won", "lost"][(n / 3) % 3].into());
        }
        1 => {
            r.pipeline = Some("support/2".into());
            r.stage = Some(["open", "won"][(n / 3) % 2].into());
        }
        _ => {}
    }
    r.owner = OWNERS[n % 6].map(str::to_string);
    if n.is_multiple_of(4) {
        r.email = Some(format!("Person{}@Example.com", n % 3));
    }
    r.updated_at = at(n as i64);
    r
}

fn records_of(
    b: &dyn Backend,
    tenant: &str,
    filter: &RecordFilter,
    text: Option<&str>,
    limit: usize,
) -> Vec<String> {
    let list = List::Records {
        tenant: tenant.into(),
        filter: filter.clone(),
        text: text.map(str::to_string),
    };
    ids(&walk(b, &list, limit).0)
}

fn runs_of(b: &dyn Backend, tenant: &str, filter: &RunFilter, limit: usize) -> Vec<String> {
    let list = List::Runs {
        tenant: tenant.into(),
        filter: filter.clone(),
    };
    ids(&walk(b, &list, limit).0)
}

fn messages_of(b: &dyn Backend, tenant: &str, filter: &MessageFilter, limit: usize) -> Vec<String> {
    let list = List::Messages {
        tenant: tenant.into(),
        filter: filter.clone(),
    };
    ids(&walk(b, &list, limit).0)
}

fn support(b: &dyn Backend, tenant: &str) {
    op(
        b,
        tenant,
        Op::PutPipeline {
            pipeline: pipeline("support/2", &["open", "won"]),
            expected: None,
        },
    )
    .expect("pipeline");
}

/// `m` after an attempt that left it `status`.
fn attempted(m: &OutboxMessage, status: MessageStatus, ms: i64) -> OutboxMessage {
    let mut m = m.clone();
    m.attempts.push(Attempt {
        at: at(ms),
        status: Some(200),
        error: None,
        duration_ms: 1,
    });
    m.status = status;
    m.next_attempt_at = (status == MessageStatus::Queued).then(|| at(ms));
    m.sent_at = (status == MessageStatus::Sent).then(|| at(ms));
    m
}

/// A changeset of one record write.
fn write(w: RecordWrite) -> Changeset {
    let mut cs = Changeset::new(TENANT);
    cs.records.push(w);
    cs
}

fn finish(b: &dyn Backend, tenant: &str, m: &OutboxMessage) {
    op(b, tenant, Op::FinishMessage { message: m.clone() }).expect("finished");
}

/// Every combination of record, run and message filters, through pages of 1, 3 and 100,
/// answers exactly what a filter over every row answers, in list order, and only the
/// tenant's own (the other tenant holds the same ids with the same values).
pub fn every_filter_answers_exactly_in_order(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    let all: Vec<Record> = (0..48).map(fixture_record).collect();
    for t in [TENANT, OTHER] {
        tenant(b, t);
        support(b, t);
        let mut cs = Changeset::new(t);
        for r in all.iter().filter(|r| t == TENANT || r.id < rec_id(24)) {
            cs.records.push(put(r, None));
        }
        ok(b, &cs);
    }
    let stages: [(Option<&str>, Option<&str>); 6] = [
        (None, None),
        (Some("sales"), None),
        (Some("sales"), Some("won")),
        (Some("support/2"), Some("won")),
        (Some("support/2"), None),
        (None, Some("won")),
    ];
    let kinds = [None, Some(RecordKind::Lead), Some(RecordKind::Contact)];
    for kind in kinds {
        for (pipeline, stage) in stages {
            for owner in OWNERS.iter().take(5).chain([&Some("nobody")]) {
                let filter = RecordFilter {
                    kind,
                    pipeline: pipeline.map(str::to_string),
                    stage: stage.map(str::to_string),
                    owner: owner.map(str::to_string),
                };
                let want: Vec<String> = all
                    .iter()
                    .filter(|r| filter.matches(r))
                    .map(|r| r.id.clone())
                    .collect();
                for limit in [3, 100] {
                    assert_eq!(
                        records_of(b, TENANT, &filter, None, limit),
                        want,
                        "{filter:?} by {limit}"
                    );
                }
                let theirs: Vec<String> = want
                    .iter()
                    .filter(|id| **id < rec_id(24))
                    .cloned()
                    .collect();
                assert_eq!(
                    records_of(b, OTHER, &filter, None, 2),
                    theirs,
                    "{filter:?} in {OTHER}"
                );
            }
        }
    }
    assert_eq!(
        records_of(b, TENANT, &RecordFilter::default(), None, 1),
        all.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    // The email index: exactly this address, either case, alone or with a filter.
    let person0: Vec<String> = all
        .iter()
        .filter(|r| r.email.as_deref() == Some("Person0@Example.com"))
        .map(|r| r.id.clone())
        .collect();
    assert!(person0.len() >= 3, "{person0:?}");
    assert_eq!(
        records_of(
            b,
            TENANT,
            &RecordFilter::default(),
            Some(" person0@EXAMPLE.com "),
            1
        ),
        person0
    );
    let leads = RecordFilter {
        kind: Some(RecordKind::Lead),
        ..Default::default()
    };
    let lead0: Vec<String> = all
        .iter()
        .filter(|r| r.kind == RecordKind::Lead && r.email.as_deref() == Some("Person0@Example.com"))
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        records_of(b, TENANT, &leads, Some("person0@example.com"), 1),
        lead0
    );
    assert!(records_of(
        b,
        TENANT,
        &RecordFilter::default(),
        Some("person@example.com"),
        5
    )
    .is_empty());
    // A name containing the text, with a filter.
    let named: Vec<String> = all
        .iter()
        .filter(|r| r.kind == RecordKind::Lead && r.name.contains("rec_01"))
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(records_of(b, TENANT, &leads, Some("REC_01"), 2), named);

    // Runs, newest first: record, binding, module, outcome and their combinations.
    let runs: Vec<RunRecord> = (1..=40i64)
        .map(|n| {
            let record = (n % 4 != 0).then(|| rec_id((n % 3) as usize));
            let mut r = run(
                &run_id(n, n as u128),
                record.as_deref(),
                ["b/1", "b/2", "b/3"][(n % 3) as usize],
                ["m1", "m2"][(n % 2) as usize],
                n,
            );
            if n % 5 == 0 {
                r.outcome = Outcome::Timeout;
            }
            r
        })
        .collect();
    for t in [TENANT, OTHER] {
        let mut cs = Changeset::new(t);
        cs.runs = runs
            .iter()
            .filter(|r| t == TENANT || r.id < run_id(20, 20))
            .cloned()
            .collect();
        ok(b, &cs);
    }
    for record in [None, Some(rec_id(1)), Some(rec_id(7))] {
        for binding in [None, Some("b/2")] {
            for module in [None, Some("m1")] {
                for outcome in [None, Some("timeout"), Some("ok")] {
                    let filter = RunFilter {
                        record: record.clone(),
                        binding: binding.map(str::to_string),
                        module: module.map(str::to_string),
                        outcome: outcome.map(str::to_string),
                    };
                    let mut want: Vec<String> = runs
                        .iter()
                        .filter(|r| {
                            filter
                                .record
                                .as_ref()
                                .is_none_or(|x| r.record.as_ref() == Some(x))
                                && filter.binding.as_ref().is_none_or(|x| &r.binding == x)
                                && filter.module.as_ref().is_none_or(|x| &r.module == x)
                                && filter
                                    .outcome
                                    .as_deref()
                                    .is_none_or(|x| r.outcome.name() == x)
                        })
                        .map(|r| r.id.clone())
                        .collect();
                    want.reverse();
                    for limit in [1, 4, 100] {
                        assert_eq!(
                            runs_of(b, TENANT, &filter, limit),
                            want,
                            "{filter:?} by {limit}"
                        );
                    }
                    let theirs: Vec<String> = want
                        .iter()
                        .filter(|id| **id < run_id(20, 20))
                        .cloned()
                        .collect();
                    assert_eq!(
                        runs_of(b, OTHER, &filter, 3),
                        theirs,
                        "{filter:?} in {OTHER}"
                    );
                }
            }
        }
    }

    // Messages, oldest first: status (as it moves), channel, record and their combinations.
    let mut msgs: Vec<OutboxMessage> = (1..=30i64)
        .map(|n| {
            let mut m = message(&message_id(n, n as u128), &run_id(1, 1), None, n);
            m.channel = if n % 2 == 0 {
                Channel::Email
            } else {
                Channel::Sms
            };
            m.record = (n % 3 != 0).then(|| rec_id((n % 2) as usize));
            m
        })
        .collect();
    for t in [TENANT, OTHER] {
        let mut cs = Changeset::new(t);
        cs.messages = msgs.clone();
        ok(b, &cs);
    }
    for (n, m) in msgs.iter_mut().enumerate() {
        let status = match n % 4 {
            0 => continue,
            1 => MessageStatus::Sent,
            2 => MessageStatus::Dead,
            _ => MessageStatus::Queued,
        };
        *m = attempted(m, status, 100);
        finish(b, TENANT, m);
    }
    let statuses = [
        None,
        Some(MessageStatus::Queued),
        Some(MessageStatus::Sent),
        Some(MessageStatus::Dead),
    ];
    for status in statuses {
        for channel in [None, Some(Channel::Sms)] {
            for record in [None, Some(rec_id(1))] {
                let filter = MessageFilter {
                    status,
                    channel,
                    record: record.clone(),
                };
                let want: Vec<String> = msgs
                    .iter()
                    .filter(|m| {
                        status.is_none_or(|s| m.status == s)
                            && channel.is_none_or(|c| m.channel == c)
                            && record.as_ref().is_none_or(|r| m.record.as_ref() == Some(r))
                    })
                    .map(|m| m.id.clone())
                    .collect();
                for limit in [1, 4, 100] {
                    assert_eq!(
                        messages_of(b, TENANT, &filter, limit),
                        want,
                        "{filter:?} by {limit}"
                    );
                }
                // The other tenant's messages all stayed queued.
                let theirs = messages_of(b, OTHER, &filter, 7);
                let queued = status.is_none_or(|s| s == MessageStatus::Queued);
                let want_theirs: Vec<String> = msgs
                    .iter()
                    .filter(|m| {
                        queued
                            && channel.is_none_or(|c| m.channel == c)
                            && record.as_ref().is_none_or(|r| m.record.as_ref() == Some(r))
                    })
                    .map(|m| m.id.clone())
                    .collect();
                assert_eq!(theirs, want_theirs, "{filter:?} in {OTHER}");
            }
        }
    }
}

/// A walk through a filtered list, page by page while other writes land between pages,
/// returns every row that matched all along exactly once and in order; a row that starts
/// matching ahead of the cursor is found, one that stops matching before the cursor
/// reaches it is not, and one written behind the cursor is not.
pub fn cursors_resume_while_writes_land(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let owned = |n: usize, owner: &str| {
        let mut r = record(&rec_id(n), Some("new"));
        r.owner = Some(owner.into());
        r
    };
    // Even ids are ann's, odd ones bob's.
    let mut cs = Changeset::new(TENANT);
    for n in 0..60 {
        cs.records
            .push(put(&owned(n, if n % 2 == 0 { "ann" } else { "bob" }), None));
    }
    ok(b, &cs);
    let list = List::Records {
        tenant: TENANT.into(),
        filter: RecordFilter {
            owner: Some("ann".into()),
            pipeline: Some("sales".into()),
            stage: Some("new".into()),
            ..Default::default()
        },
        text: None,
    };
    let mut req = PageRequest {
        after: None,
        limit: 4,
        limits: Default::default(),
    };
    let mut seen: Vec<String> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    let mut joined: Vec<String> = Vec::new();
    let mut behind: Vec<String> = Vec::new();
    let mut round = 0usize;
    loop {
        let page = b.list(&list, &req).expect("a page");
        seen.extend(ids(&page.items));
        let Some(next) = page.next else { break };
        req.after = Some(next.clone());
        round += 1;
        assert!(round < 100, "the walk never ends");
        let mut cs = Changeset::new(TENANT);
        // Ahead of the cursor: an ann record leaves, a bob record joins, a new one appears.
        let leave = 58 - 4 * (round - 1);
        let join = 57 - 4 * (round - 1);
        if rec_id(join) > next {
            let r = get_record(b, TENANT, &rec_id(leave)).expect("there");
            cs.records.push(put(&moved(&r, "won"), Some(r.version)));
            gone.push(r.id.clone());
            let mut j = get_record(b, TENANT, &rec_id(join)).expect("there");
            j.owner = Some("ann".into());
            j.version += 1;
            cs.records.push(put(&j, Some(j.version - 1)));
            joined.push(j.id.clone());
        }
        cs.records.push(put(&owned(100 + round, "ann"), None));
        joined.push(rec_id(100 + round));
        // Behind it: never seen by this walk.
        let back = format!("rec_000{round}");
        let mut r = owned(0, "ann");
        r.id = back.clone();
        cs.records.push(put(&r, None));
        behind.push(back);
        ok(b, &cs);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "in order, each once");
    for id in &gone {
        assert!(
            !seen.contains(id),
            "{id} left the filter before the walk got there: {seen:?}"
        );
    }
    for id in &joined {
        assert!(
            seen.contains(id),
            "{id} joined ahead of the cursor: {seen:?}"
        );
    }
    for id in &behind {
        assert!(
            !seen.contains(id),
            "{id} was written behind the cursor: {seen:?}"
        );
    }
    for n in (0..60).step_by(2) {
        let id = rec_id(n);
        assert_eq!(seen.contains(&id), !gone.contains(&id), "{id}");
    }

    // Runs, newest first: runs written while the walk goes on are newer, so behind it.
    let mut cs = Changeset::new(TENANT);
    for n in 1..=20i64 {
        cs.runs.push(run(&run_id(n, 1), Some("rec_x"), "b", "m", n));
    }
    ok(b, &cs);
    let list = List::Runs {
        tenant: TENANT.into(),
        filter: RunFilter {
            record: Some("rec_x".into()),
            binding: Some("b".into()),
            ..Default::default()
        },
    };
    let mut req = PageRequest {
        after: None,
        limit: 3,
        limits: Default::default(),
    };
    let mut seen = Vec::new();
    for n in 0.. {
        let page = b.list(&list, &req).expect("a page");
        seen.extend(ids(&page.items));
        let Some(next) = page.next else { break };
        req.after = Some(next);
        assert!(n < 100, "the walk never ends");
        let mut cs = Changeset::new(TENANT);
        cs.runs
            .push(run(&run_id(1000 + n, 1), Some("rec_x"), "b", "m", 1000 + n));
        ok(b, &cs);
    }
    let want: Vec<String> = (1..=20).rev().map(|n| run_id(n, 1)).collect();
    assert_eq!(seen, want);
}

/// Index entries move with the row: a record's stage, owner, email and pipeline, a
/// message's status through claim, finish and retry; and they vanish when the record is
/// deleted or retention prunes the run or message.
pub fn index_entries_follow_every_change(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    support(b, TENANT);
    let f = |pipeline: Option<&str>, stage: Option<&str>, owner: Option<&str>| RecordFilter {
        kind: None,
        pipeline: pipeline.map(str::to_string),
        stage: stage.map(str::to_string),
        owner: owner.map(str::to_string),
    };
    let find = |filter: RecordFilter, text: Option<&str>| records_of(b, TENANT, &filter, text, 10);
    let one = vec![rec_id(1)];
    let none: Vec<String> = Vec::new();

    let mut r = record(&rec_id(1), Some("new"));
    r.owner = Some("ann".into());
    r.email = Some("a/x@example.com".into());
    ok(b, &write(put(&r, None)));
    assert_eq!(find(f(Some("sales"), Some("new"), Some("ann")), None), one);
    assert_eq!(find(f(None, None, None), Some("A/X@example.com")), one);

    // Stage, owner and email move together in one write.
    let mut r2 = moved(&r, "won");
    r2.owner = Some("bob".into());
    r2.email = Some("b@example.com".into());
    r2.updated_at = at(5);
    ok(b, &write(put(&r2, Some(1))));
    assert_eq!(find(f(Some("sales"), Some("new"), None), None), none);
    assert_eq!(find(f(None, None, Some("ann")), None), none);
    assert_eq!(find(f(None, None, None), Some("a/x@example.com")), none);
    assert_eq!(find(f(Some("sales"), Some("won"), Some("bob")), None), one);
    assert_eq!(find(f(None, None, None), Some("b@example.com")), one);

    // Into another pipeline, and out of every pipeline and owner.
    let mut r3 = r2.clone();
    r3.pipeline = Some("support/2".into());
    r3.stage = Some("open".into());
    r3.version = 3;
    ok(b, &write(put(&r3, Some(2))));
    assert_eq!(find(f(Some("sales"), None, None), None), none);
    assert_eq!(
        find(f(Some("support/2"), Some("open"), Some("bob")), None),
        one
    );
    let mut r4 = r3.clone();
    r4.pipeline = None;
    r4.stage = None;
    r4.owner = None;
    r4.version = 4;
    ok(b, &write(put(&r4, Some(3))));
    assert_eq!(find(f(Some("support/2"), None, None), None), none);
    assert_eq!(find(f(None, None, Some("bob")), None), none);
    let leads = RecordFilter {
        kind: Some(RecordKind::Lead),
        ..Default::default()
    };
    assert_eq!(find(leads.clone(), None), one);

    // Deleted: gone from every list.
    ok(
        b,
        &write(RecordWrite::Delete {
            id: rec_id(1),
            expected: 4,
        }),
    );
    assert_eq!(find(leads, None), none);
    assert_eq!(find(f(None, None, None), Some("b@example.com")), none);
    assert_eq!(find(f(None, None, None), None), none);

    // A message's status entry follows the claim, the attempt and a retry.
    let status = |s: MessageStatus| {
        messages_of(
            b,
            TENANT,
            &MessageFilter {
                status: Some(s),
                ..Default::default()
            },
            10,
        )
    };
    let (old, new) = (50_000, 150_000);
    let rid = run_id(old, 1);
    let mut cs = Changeset::new(TENANT);
    cs.runs.push(run(&rid, Some("rec_9"), "b/1", "m", old));
    cs.runs
        .push(run(&run_id(new, 1), Some("rec_9"), "b/1", "m", new));
    let mut m = message(&message_id(old, 1), &rid, None, old);
    m.record = Some("rec_9".into());
    cs.messages.push(m.clone());
    let dead = message(&message_id(old, 2), &rid, None, old);
    cs.messages.push(dead.clone());
    ok(b, &cs);
    let mid = vec![m.id.clone()];
    assert_eq!(
        status(MessageStatus::Queued),
        [m.id.clone(), dead.id.clone()]
    );
    let due = walk(
        b,
        &List::DueMessages {
            since: None,
            until: at(old),
        },
        100,
    )
    .0
    .into_iter()
    .find_map(|r| match r {
        Row::Due(d) if d.id == m.id => Some(d),
        _ => None,
    })
    .expect("due");
    let taken = b
        .lease(&crate::LeaseRequest {
            queue: crate::Queue::Message(due),
            holder: "h".into(),
            now: at(old),
            ttl: std::time::Duration::from_secs(60),
            limit: 1,
        })
        .expect("claimed");
    assert_eq!(taken.len(), 1);
    assert_eq!(status(MessageStatus::Sending), mid);
    assert_eq!(
        status(MessageStatus::Queued),
        std::slice::from_ref(&dead.id)
    );
    finish(b, TENANT, &attempted(&m, MessageStatus::Sent, old + 1));
    finish(b, TENANT, &attempted(&dead, MessageStatus::Dead, old + 1));
    assert!(status(MessageStatus::Sending).is_empty());
    assert_eq!(status(MessageStatus::Sent), mid);
    assert_eq!(status(MessageStatus::Dead), std::slice::from_ref(&dead.id));
    op(
        b,
        TENANT,
        Op::RetryMessage {
            id: dead.id.clone(),
        },
    )
    .expect("retried");
    assert!(status(MessageStatus::Dead).is_empty());
    assert_eq!(
        status(MessageStatus::Queued),
        std::slice::from_ref(&dead.id)
    );

    // Retention: the old run and the delivered message leave every list they were in.
    b.prune(&PruneRequest {
        cutoff: at(100_000),
        batch: 1,
    })
    .expect("pruned");
    for filter in [
        RunFilter {
            record: Some("rec_9".into()),
            ..Default::default()
        },
        RunFilter {
            binding: Some("b/1".into()),
            ..Default::default()
        },
        RunFilter {
            module: Some("m".into()),
            outcome: Some("ok".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(
            runs_of(b, TENANT, &filter, 10),
            [run_id(new, 1)],
            "{filter:?}"
        );
    }
    assert!(status(MessageStatus::Sent).is_empty());
    let by_record = MessageFilter {
        record: Some("rec_9".into()),
        ..Default::default()
    };
    assert!(messages_of(b, TENANT, &by_record, 10).is_empty());
    let email = MessageFilter {
        channel: Some(Channel::Email),
        ..Default::default()
    };
    assert_eq!(
        messages_of(b, TENANT, &email, 10),
        std::slice::from_ref(&dead.id)
    );
}
