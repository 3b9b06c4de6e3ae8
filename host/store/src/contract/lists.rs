//! Lists: every one in its order, with its filters and cursor, never crossing tenants; and
//! the byte budget that ends a page early (with a cursor, never silently).

use stagecraft_model::{Attempt, Notification};

use super::*;
use crate::{ListLimits, MessageFilter, ModuleQuota, RecordFilter, RunFilter, Scope};

fn records(b: &dyn Backend, filter: RecordFilter, text: Option<&str>, limit: usize) -> Vec<String> {
    let list = List::Records {
        tenant: TENANT.into(),
        filter,
        text: text.map(str::to_string),
    };
    ids(&walk(b, &list, limit).0)
}

fn finish(b: &dyn Backend, mut m: OutboxMessage, status: MessageStatus, ms: i64) {
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

/// Every list returns what is there, in its order, through its cursor, filtered as asked,
/// and only the tenant's own.
/// A record to write: id, kind, owner, stage, name, email.
type Spec<'a> = (
    &'a str,
    RecordKind,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
);

pub fn every_list_pages_in_order(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    tenant(b, OTHER);
    // Records: creation (id) order; kinds, owners, stages, names and emails to filter on.
    let specs: [Spec<'_>; 7] = [
        (
            "rec_01",
            RecordKind::Lead,
            Some("new"),
            Some("ann"),
            "Ada Lovelace",
            None,
        ),
        (
            "rec_02",
            RecordKind::Contact,
            None,
            Some("bob"),
            "Grace Hopper",
            Some("Grace@Example.com"),
        ),
        (
            "rec_03",
            RecordKind::Lead,
            Some("won"),
            Some("ann"),
            "Alan Turing",
            None,
        ),
        (
            "rec_04",
            RecordKind::Company,
            None,
            None,
            "Adamant Ltd",
            None,
        ),
        (
            "rec_05",
            RecordKind::Deal,
            Some("won"),
            Some("bob"),
            "Big deal",
            None,
        ),
        (
            "rec_06",
            RecordKind::Lead,
            Some("new"),
            None,
            "Edsger",
            Some("ed@example.com"),
        ),
        (
            "rec_07",
            RecordKind::Contact,
            None,
            Some("ann"),
            "Barbara",
            None,
        ),
    ];
    let mut cs = Changeset::new(TENANT);
    for (id, kind, stage, owner, name, email) in specs {
        let mut r = record(id, stage);
        r.kind = kind;
        r.owner = owner.map(str::to_string);
        r.name = name.into();
        r.email = email.map(str::to_string);
        cs.records.push(put(&r, None));
    }
    ok(b, &cs);
    let mut theirs = Changeset::new(OTHER);
    theirs
        .records
        .push(put(&record("rec_00", Some("new")), None));
    theirs
        .events
        .push(event(&event_id(1, 9), Some("rec_00"), 1));
    theirs
        .runs
        .push(run(&run_id(1, 9), Some("rec_00"), "bnd_1", "m", 1));
    theirs
        .messages
        .push(message(&message_id(1, 9), "run_x", None, 1));
    theirs.jobs.push(job(OTHER, "job_9"));
    ok(b, &theirs);

    let every: Vec<String> = specs.iter().map(|s| s.0.to_string()).collect();
    let list = List::Records {
        tenant: TENANT.into(),
        filter: RecordFilter::default(),
        text: None,
    };
    let (rows, pages) = walk(b, &list, 3);
    assert_eq!(ids(&rows), every, "every record, in order");
    assert_eq!(pages, 3, "3 + 3 + 1");
    let (one_page, _) = walk(b, &list, 100);
    assert_eq!(ids(&one_page), every);
    let kind = |k| RecordFilter {
        kind: Some(k),
        ..Default::default()
    };
    assert_eq!(
        records(b, kind(RecordKind::Contact), None, 1),
        ["rec_02", "rec_07"]
    );
    let stage = RecordFilter {
        pipeline: Some("sales".into()),
        stage: Some("won".into()),
        ..Default::default()
    };
    assert_eq!(records(b, stage, None, 2), ["rec_03", "rec_05"]);
    let owner = RecordFilter {
        owner: Some("ann".into()),
        ..Default::default()
    };
    assert_eq!(records(b, owner, None, 2), ["rec_01", "rec_03", "rec_07"]);
    // Text: a name containing it, or exactly this email, either case.
    assert_eq!(
        records(b, RecordFilter::default(), Some("ADA"), 2),
        ["rec_01", "rec_04"]
    );
    assert_eq!(
        records(b, RecordFilter::default(), Some("grace@example.COM"), 2),
        ["rec_02"]
    );
    assert_eq!(
        records(b, kind(RecordKind::Lead), Some("a"), 10),
        ["rec_01", "rec_03"]
    );

    // The journal and a record's events, oldest first.
    let mut cs = Changeset::new(TENANT);
    for (n, rec) in ["rec_01", "rec_02", "rec_01", "rec_03", "rec_01"]
        .iter()
        .enumerate()
    {
        let ms = n as i64 + 1;
        cs.events.push(event(&event_id(ms, 1), Some(rec), ms));
    }
    ok(b, &cs);
    let (events, pages) = walk(
        b,
        &List::Events {
            tenant: TENANT.into(),
        },
        2,
    );
    assert_eq!(
        ids(&events),
        (1..=5).map(|n| event_id(n, 1)).collect::<Vec<_>>()
    );
    assert_eq!(pages, 3);
    let (mine, _) = walk(
        b,
        &List::RecordEvents {
            tenant: TENANT.into(),
            record: "rec_01".into(),
        },
        1,
    );
    assert_eq!(ids(&mine), [event_id(1, 1), event_id(3, 1), event_id(5, 1)]);

    // Runs: newest first; filters by record, binding, module, outcome.
    let mut cs = Changeset::new(TENANT);
    for n in 1..=5u128 {
        let ms = n as i64 * 1000;
        let mut r = run(
            &run_id(ms, n),
            Some(if n % 2 == 0 { "rec_02" } else { "rec_01" }),
            if n <= 3 { "bnd_1" } else { "bnd_2" },
            if n == 5 { "other" } else { "m" },
            ms,
        );
        if n == 2 {
            r.outcome = Outcome::Panic {
                message: "boom".into(),
            };
        }
        cs.runs.push(r);
    }
    ok(b, &cs);
    let runs = |filter: RunFilter, limit| {
        let list = List::Runs {
            tenant: TENANT.into(),
            filter,
        };
        ids(&walk(b, &list, limit).0)
    };
    let newest_first: Vec<String> = (1..=5u128)
        .rev()
        .map(|n| run_id(n as i64 * 1000, n))
        .collect();
    assert_eq!(runs(RunFilter::default(), 2), newest_first);
    let f = |record: Option<&str>,
             binding: Option<&str>,
             module: Option<&str>,
             outcome: Option<&str>| RunFilter {
        record: record.map(str::to_string),
        binding: binding.map(str::to_string),
        module: module.map(str::to_string),
        outcome: outcome.map(str::to_string),
    };
    assert_eq!(
        runs(f(Some("rec_02"), None, None, None), 1),
        [run_id(4000, 4), run_id(2000, 2)]
    );
    assert_eq!(
        runs(f(None, Some("bnd_2"), None, None), 1),
        [run_id(5000, 5), run_id(4000, 4)]
    );
    assert_eq!(
        runs(f(None, None, Some("other"), None), 1),
        [run_id(5000, 5)]
    );
    assert_eq!(
        runs(f(None, None, None, Some("panic")), 1),
        [run_id(2000, 2)]
    );

    // Binding runs: a window, the newest few, a cap.
    let brun = |since: Option<i64>, until: Option<i64>, last: Option<usize>, cap: usize| {
        let list = List::BindingRuns {
            tenant: TENANT.into(),
            binding: "bnd_1".into(),
            since: since.map(at),
            until: until.map(at),
            last,
        };
        let req = PageRequest {
            after: None,
            limit: cap,
            limits: ListLimits::default(),
        };
        ids(&b.list(&list, &req).expect("binding runs").items)
    };
    let b1: Vec<String> = (1..=3u128).map(|n| run_id(n as i64 * 1000, n)).collect();
    assert_eq!(brun(None, None, None, 100), b1);
    assert_eq!(brun(Some(2000), Some(3000), None, 100), [run_id(2000, 2)]);
    assert_eq!(brun(None, None, Some(2), 100), b1[1..]);
    assert_eq!(brun(None, None, None, 2), b1[..2]);

    // Rollups by hour window.
    let mut cs = Changeset::new(TENANT);
    cs.runs
        .push(run(&run_id(7_200_000, 9), None, "bnd_1", "m", 7_200_000));
    ok(b, &cs);
    let hour0 = at(0).timestamp().div_euclid(3600);
    let hours = |since: i64, until: i64| -> Vec<i64> {
        all(
            b,
            List::Rollups {
                tenant: TENANT.into(),
                scope: Scope::Module,
                name: "m".into(),
                since_hour: since,
                until_hour: until,
            },
        )
        .into_iter()
        .map(|r| match r {
            Row::Rollup { hour, .. } => hour,
            other => panic!("a rollup list answered {other:?}"),
        })
        .collect()
    };
    assert_eq!(hours(hour0, hour0 + 10), [hour0, hour0 + 2]);
    assert_eq!(hours(hour0 + 1, hour0 + 3), [hour0 + 2]);

    // Messages: oldest first; by status, channel, record.
    let mut cs = Changeset::new(TENANT);
    for n in 1..=4u128 {
        let ms = n as i64;
        let mut m = message(&message_id(ms, n), "run_x", None, ms);
        m.record = Some(if n == 3 { "rec_03" } else { "rec_01" }.into());
        if n == 4 {
            m.channel = Channel::Webhook;
        }
        cs.messages.push(m);
    }
    ok(b, &cs);
    let msgs = |filter: MessageFilter, limit| {
        let list = List::Messages {
            tenant: TENANT.into(),
            filter,
        };
        walk(b, &list, limit).0
    };
    let every_message: Vec<String> = (1..=4u128).map(|n| message_id(n as i64, n)).collect();
    assert_eq!(ids(&msgs(MessageFilter::default(), 3)), every_message);
    // The first one is taken (its due entry goes) and sent.
    let entry = walk(
        b,
        &List::DueMessages {
            since: None,
            until: at(1),
        },
        10,
    )
    .0
    .into_iter()
    .find_map(|r| match r {
        Row::Due(d) if d.tenant == TENANT => Some(d),
        _ => None,
    })
    .expect("the first message is due");
    let taken = b
        .lease(&crate::LeaseRequest {
            queue: crate::Queue::Message(entry),
            holder: "h".into(),
            now: at(1),
            ttl: std::time::Duration::from_secs(60),
            limit: 1,
        })
        .expect("taken");
    let first = match taken.as_slice() {
        [crate::Leased::Message(m)] => m.clone(),
        other => panic!("the message is taken: {other:?}"),
    };
    finish(b, first, MessageStatus::Sent, 10);
    let by_status = MessageFilter {
        status: Some(MessageStatus::Sent),
        ..Default::default()
    };
    assert_eq!(ids(&msgs(by_status, 1)), [message_id(1, 1)]);
    let by_channel = MessageFilter {
        channel: Some(Channel::Webhook),
        ..Default::default()
    };
    assert_eq!(ids(&msgs(by_channel, 1)), [message_id(4, 4)]);
    let by_record = MessageFilter {
        record: Some("rec_03".into()),
        ..Default::default()
    };
    assert_eq!(ids(&msgs(by_record, 1)), [message_id(3, 3)]);

    // The due index: queued messages by due time, across tenants, resumable.
    let due = |since: Option<i64>, until: i64, limit: usize| {
        let list = List::DueMessages {
            since: since.map(at),
            until: at(until),
        };
        walk(b, &list, limit)
    };
    let (entries, pages) = due(None, 3, 2);
    assert_eq!(
        ids(&entries),
        [message_id(1, 9), message_id(2, 2), message_id(3, 3)],
        "due by ms 3, either tenant (the sent one is not due)"
    );
    assert_eq!(pages, 2, "2 + 1");
    let (entries, _) = due(Some(2), 4, 10);
    assert_eq!(
        ids(&entries),
        [message_id(2, 2), message_id(3, 3), message_id(4, 4)]
    );

    // Notifications per user, oldest first.
    for (n, user) in ["ann", "bob", "ann", "ann"].iter().enumerate() {
        let note = Notification {
            id: format!("ntf_{n}"),
            user: (*user).into(),
            subject: "s".into(),
            body: "b".into(),
            record: None,
            created_at: at(n as i64),
        };
        op(b, TENANT, Op::PutNotification { notification: note }).expect("stored");
    }
    let (ann, pages) = walk(
        b,
        &List::Notifications {
            tenant: TENANT.into(),
            user: "ann".into(),
        },
        2,
    );
    assert_eq!(ids(&ann), ["ntf_0", "ntf_2", "ntf_3"]);
    assert_eq!(pages, 2);

    // Timers by due time; jobs oldest first; tenants with jobs, round-robin.
    let mut cs = Changeset::new(TENANT);
    cs.timers
        .push(timer("tmr_late", "rec_01", None, 9_000, false));
    cs.timers
        .push(timer("tmr_soon", "rec_01", None, 1_000, false));
    for n in ["job_3", "job_1", "job_2"] {
        cs.jobs.push(job(TENANT, n));
    }
    ok(b, &cs);
    assert_eq!(
        ids(&all(
            b,
            List::Timers {
                tenant: TENANT.into()
            }
        )),
        ["tmr_soon", "tmr_late"]
    );
    let jobs = |tenant: &str, limit| {
        let req = PageRequest {
            after: None,
            limit,
            limits: ListLimits::default(),
        };
        ids(&b
            .list(
                &List::Jobs {
                    tenant: tenant.into(),
                },
                &req,
            )
            .expect("jobs")
            .items)
    };
    assert_eq!(jobs(TENANT, 2), ["job_1", "job_2"]);
    assert_eq!(jobs(OTHER, 10), ["job_9"]);
    let mut zeta = Changeset::new("zeta");
    zeta.jobs.push(job("zeta", "job_z"));
    ok(b, &zeta);
    let tenants = |after: Option<&str>, limit| {
        let req = PageRequest {
            after: after.map(str::to_string),
            limit,
            limits: ListLimits::default(),
        };
        ids(&b.list(&List::JobTenants, &req).expect("job tenants").items)
    };
    assert_eq!(tenants(None, 10), [TENANT, OTHER, "zeta"]);
    assert_eq!(tenants(None, 2), [TENANT, OTHER]);
    assert_eq!(
        tenants(Some(OTHER), 10),
        ["zeta", TENANT, OTHER],
        "wraps once"
    );

    // The complete lists.
    assert_eq!(ids(&all(b, List::Tenants)), [TENANT, OTHER]);
    assert_eq!(
        ids(&all(
            b,
            List::Keys {
                tenant: TENANT.into()
            }
        )),
        [format!("key_hash-{TENANT}")]
    );
    assert_eq!(
        ids(&all(
            b,
            List::Pipelines {
                tenant: TENANT.into()
            }
        )),
        ["sales"]
    );
    for m in ["beta", "alpha"] {
        op(
            b,
            TENANT,
            Op::AddModuleVersion {
                version: version(m),
                quota: ModuleQuota::default(),
            },
        )
        .expect("version");
    }
    op(
        b,
        TENANT,
        Op::AddModuleVersion {
            version: version("alpha"),
            quota: ModuleQuota::default(),
        },
    )
    .expect("version");
    assert_eq!(
        ids(&all(
            b,
            List::Modules {
                tenant: TENANT.into()
            }
        )),
        ["alpha", "beta"]
    );
    let versions = List::ModuleVersions {
        tenant: TENANT.into(),
        module: "alpha".into(),
    };
    assert_eq!(ids(&all(b, versions)), ["1", "2"]);
    for id in ["bnd_b", "bnd_a"] {
        op(
            b,
            TENANT,
            Op::PutBinding {
                binding: binding(id, "alpha", 1),
                expected: None,
            },
        )
        .expect("bound");
    }
    assert_eq!(
        ids(&all(
            b,
            List::Bindings {
                tenant: TENANT.into()
            }
        )),
        ["bnd_a", "bnd_b"]
    );

    // Nothing of the other tenant showed anywhere above; its own lists hold only its own.
    let list = List::Records {
        tenant: OTHER.into(),
        filter: RecordFilter::default(),
        text: None,
    };
    assert_eq!(ids(&walk(b, &list, 10).0), ["rec_00"]);
    let (theirs, _) = walk(
        b,
        &List::Events {
            tenant: OTHER.into(),
        },
        10,
    );
    assert_eq!(ids(&theirs), [event_id(1, 9)]);
    assert!(all(
        b,
        List::Timers {
            tenant: OTHER.into()
        }
    )
    .is_empty());
}

/// A page ends at its byte budget (holding at least one item) with a cursor, and walking
/// the cursors finds every match exactly once; a rare filter's matches are on its first
/// page however far down the list they are.
pub fn pages_keep_their_budgets(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let mut cs = Changeset::new(TENANT);
    for n in 0..10 {
        let mut r = record(&format!("rec_{n:02}"), None);
        r.owner = Some(if n % 10 == 9 || n < 6 { "ann" } else { "bob" }.into());
        r.custom.insert("blob".into(), json!("x".repeat(1000)));
        cs.records.push(put(&r, None));
    }
    ok(b, &cs);
    let walk_with = |filter: RecordFilter, limit: usize, limits: ListLimits| {
        let list = List::Records {
            tenant: TENANT.into(),
            filter,
            text: None,
        };
        let mut req = PageRequest {
            after: None,
            limit,
            limits,
        };
        let mut pages: Vec<Vec<String>> = Vec::new();
        loop {
            let page = b.list(&list, &req).expect("a page");
            pages.push(ids(&page.items));
            match page.next {
                Some(n) => req.after = Some(n),
                None => return pages,
            }
            assert!(pages.len() < 100, "the list never ends");
        }
    };
    let flat = |pages: &[Vec<String>]| pages.concat();
    let every: Vec<String> = (0..10).map(|n| format!("rec_{n:02}")).collect();

    // Bytes per page: a record is over 1,000 bytes.
    let small = ListLimits { page_bytes: 3_000 };
    let pages = walk_with(RecordFilter::default(), 100, small);
    assert_eq!(flat(&pages), every);
    assert!(pages.len() >= 5, "{pages:?}");
    assert!(
        pages.iter().all(|p| (1..=2).contains(&p.len())),
        "{pages:?}"
    );
    let tiny = ListLimits { page_bytes: 1 };
    let pages = walk_with(RecordFilter::default(), 100, tiny);
    assert!(
        pages.iter().all(|p| p.len() == 1),
        "at least one item a page: {pages:?}"
    );

    // A filter reads its index: a rare match far down the list is on the first page,
    // and the page says nothing follows.
    let bob = RecordFilter {
        owner: Some("bob".into()),
        ..Default::default()
    };
    let list = List::Records {
        tenant: TENANT.into(),
        filter: bob,
        text: None,
    };
    let page = b
        .list(
            &list,
            &PageRequest {
                after: None,
                limit: 10,
                limits: ListLimits::default(),
            },
        )
        .expect("a page");
    assert_eq!(ids(&page.items), ["rec_06", "rec_07", "rec_08"]);
    assert_eq!(page.next, None);
    let page = b
        .list(
            &list,
            &PageRequest {
                after: None,
                limit: 3,
                limits: ListLimits::default(),
            },
        )
        .expect("a page");
    assert_eq!(ids(&page.items), ["rec_06", "rec_07", "rec_08"]);
    assert_eq!(
        page.next, None,
        "a full page with nothing after it is the last"
    );
}
