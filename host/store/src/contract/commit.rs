//! Commits: all or nothing, with every rule checked inside the changeset's transaction.

use stagecraft_model::delivery::{EmailConfig, TlsMode};
use stagecraft_model::{ChannelConfig, MessageStatus, Notification};

use super::*;
use crate::{Applied, FollowUpCaps, ModuleQuota, StoreError};

fn timers_of(b: &dyn Backend, tenant: &str) -> Vec<String> {
    ids(&all(
        b,
        List::Timers {
            tenant: tenant.into(),
        },
    ))
}

fn jobs_of(b: &dyn Backend, tenant: &str) -> Vec<String> {
    ids(&all(
        b,
        List::Jobs {
            tenant: tenant.into(),
        },
    ))
}

fn follow_ups(b: &dyn Backend, record: &str) -> (i64, i64) {
    match read(
        b,
        Read::FollowUps {
            tenant: TENANT.into(),
            binding: "bnd_1".into(),
            record: record.into(),
        },
    ) {
        Some(Row::FollowUps { pair, all }) => (pair, all),
        other => panic!("follow-up counts answered {other:?}"),
    }
}

fn message_of(b: &dyn Backend, id: &str) -> Option<OutboxMessage> {
    match read(
        b,
        Read::Message {
            tenant: TENANT.into(),
            id: id.into(),
        },
    ) {
        Some(Row::Message(m)) => Some(m),
        None => None,
        other => panic!("a message read answered {other:?}"),
    }
}

/// A changeset applies whole or not at all: a failing write anywhere in it (a record
/// version, a run already committed, an op's rule) leaves nothing of the rest.
pub fn commits_are_all_or_nothing(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    ok(b, &{
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&record("rec_taken", None), None));
        cs
    });
    let rid = run_id(10, 1);
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&record("rec_a", Some("new")), None));
    cs.events.push(event(&event_id(10, 1), Some("rec_a"), 10));
    cs.runs.push(run(&rid, Some("rec_a"), "bnd_1", "mod", 10));
    cs.messages
        .push(message(&message_id(10, 1), &rid, Some("once"), 10));
    cs.timers
        .push(timer("tmr_a", "rec_a", Some("new"), 1_000, true));
    cs.jobs.push(job(TENANT, "job_a"));
    cs.ops.push(Op::PutPipeline {
        pipeline: pipeline("extra", &["one"]),
        expected: None,
    });
    // Last: a create of an id that is taken.
    cs.records.push(put(&record("rec_taken", None), None));
    let err = commit1(b, &cs).expect_err("a taken id fails the changeset");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(get_record(b, TENANT, "rec_a"), None, "no record");
    assert!(read(
        b,
        Read::Event {
            tenant: TENANT.into(),
            id: event_id(10, 1)
        }
    )
    .is_none());
    assert!(read(
        b,
        Read::Run {
            tenant: TENANT.into(),
            id: rid.clone()
        }
    )
    .is_none());
    assert_eq!(message_of(b, &message_id(10, 1)), None, "no message");
    assert!(timers_of(b, TENANT).is_empty(), "no timer");
    assert_eq!(follow_ups(b, "rec_a"), (0, 0), "no follow-up counted");
    assert!(jobs_of(b, TENANT).is_empty(), "no job");
    assert!(read(
        b,
        Read::Pipeline {
            tenant: TENANT.into(),
            id: "extra".into()
        }
    )
    .is_none());

    // An op that fails takes the record writes before it down too.
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&record("rec_b", None), None));
    cs.ops.push(Op::DeletePipeline {
        id: "missing".into(),
    });
    let err = commit1(b, &cs).expect_err("a failing op fails the changeset");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(get_record(b, TENANT, "rec_b"), None);

    // Without the bad write, all of it lands, and the idempotency key is used.
    let mut good = Changeset::new(TENANT);
    good.records.push(put(&record("rec_a", Some("new")), None));
    good.events.push(event(&event_id(10, 1), Some("rec_a"), 10));
    good.runs.push(run(&rid, Some("rec_a"), "bnd_1", "mod", 10));
    good.messages
        .push(message(&message_id(10, 1), &rid, Some("once"), 10));
    good.timers
        .push(timer("tmr_a", "rec_a", Some("new"), 1_000, true));
    good.jobs.push(job(TENANT, "job_a"));
    ok(b, &good);
    assert!(get_record(b, TENANT, "rec_a").is_some());
    assert!(message_of(b, &message_id(10, 1)).is_some());
    assert_eq!(timers_of(b, TENANT), ["tmr_a"]);
    assert_eq!(follow_ups(b, "rec_a"), (1, 1));
    assert_eq!(jobs_of(b, TENANT), ["job_a"]);
}

/// Records, pipelines and bindings are written at the version the writer saw, or not at
/// all; in a batch, a conflict rejects only its own changeset.
pub fn version_conflicts_reject_the_changeset(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let r = record("rec_1", Some("new"));
    ok(b, &{
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&r, None));
        cs
    });
    let write = |w: RecordWrite| {
        let mut cs = Changeset::new(TENANT);
        cs.records.push(w);
        commit1(b, &cs)
    };
    assert!(matches!(
        write(put(&r, None)),
        Err(StoreError::AlreadyExists(_))
    ));
    let v2 = moved(&r, "won");
    write(put(&v2, Some(1))).expect("written at the version seen");
    match write(put(&moved(&r, "lost"), Some(1))) {
        Err(StoreError::VersionConflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (1, 2)),
        other => panic!("a stale write must conflict: {other:?}"),
    }
    assert_eq!(get_record(b, TENANT, "rec_1"), Some(v2.clone()));
    assert!(matches!(
        write(put(&record("rec_none", None), Some(1))),
        Err(StoreError::NotFound(_))
    ));
    let stale_delete = RecordWrite::Delete {
        id: "rec_1".into(),
        expected: 1,
    };
    assert!(matches!(
        write(stale_delete),
        Err(StoreError::VersionConflict { .. })
    ));

    // A batch: the conflicting changeset fails alone.
    let mut good = Changeset::new(TENANT);
    good.records.push(put(&record("rec_2", None), None));
    let mut bad = Changeset::new(TENANT);
    bad.records.push(put(&moved(&r, "lost"), Some(1)));
    let results = b.commit(&[&bad, &good]);
    assert_eq!(results.len(), 2);
    assert!(matches!(
        results[0],
        Err(StoreError::VersionConflict { .. })
    ));
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(get_record(b, TENANT, "rec_2").is_some());

    // Pipelines by version.
    let mut p = pipeline("sales", &["new", "won", "lost", "extra"]);
    let put_p = |p: &Pipeline, expected| {
        op(
            b,
            TENANT,
            Op::PutPipeline {
                pipeline: p.clone(),
                expected,
            },
        )
    };
    assert!(matches!(put_p(&p, None), Err(StoreError::AlreadyExists(_))));
    p.version = 2;
    put_p(&p, Some(1)).expect("pipeline at version 1");
    assert!(matches!(
        put_p(&p, Some(1)),
        Err(StoreError::VersionConflict { .. })
    ));
    assert!(matches!(
        put_p(&pipeline("nope", &["a"]), Some(1)),
        Err(StoreError::NotFound(_))
    ));

    // Bindings by revision.
    let v = op(
        b,
        TENANT,
        Op::AddModuleVersion {
            version: version("m"),
            quota: ModuleQuota::default(),
        },
    )
    .expect("version")
    .module_version()
    .expect("numbered");
    let mut bind = binding("bnd_1", "m", v.version);
    let put_b = |bind: &Binding, expected| {
        op(
            b,
            TENANT,
            Op::PutBinding {
                binding: bind.clone(),
                expected,
            },
        )
    };
    put_b(&bind, None).expect("binding created");
    assert!(matches!(
        put_b(&bind, None),
        Err(StoreError::AlreadyExists(_))
    ));
    bind.revision = 2;
    put_b(&bind, Some(1)).expect("binding at revision 1");
    assert!(matches!(
        put_b(&bind, Some(1)),
        Err(StoreError::VersionConflict { .. })
    ));
}

/// A stage that records sit in cannot be removed from its pipeline, nor the pipeline
/// deleted; the counts follow every create, move and delete.
pub fn stage_occupancy_guards_pipelines(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let r = record("rec_1", Some("won"));
    ok(b, &{
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&r, None));
        cs
    });
    let mut without_won = pipeline("sales", &["new", "lost"]);
    without_won.version = 2;
    let drop_won = Op::PutPipeline {
        pipeline: without_won.clone(),
        expected: Some(1),
    };
    assert!(matches!(
        op(b, TENANT, drop_won.clone()),
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        op(b, TENANT, Op::DeletePipeline { id: "sales".into() }),
        Err(StoreError::Refused(_))
    ));
    // Moved out of `won`: the stage can go.
    let r2 = moved(&r, "new");
    ok(b, &{
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&r2, Some(1)));
        cs
    });
    op(b, TENANT, drop_won).expect("an empty stage can go");
    assert!(matches!(
        op(b, TENANT, Op::DeletePipeline { id: "sales".into() }),
        Err(StoreError::Refused(_))
    ));
    ok(b, &{
        let mut cs = Changeset::new(TENANT);
        cs.records.push(RecordWrite::Delete {
            id: "rec_1".into(),
            expected: 2,
        });
        cs
    });
    op(b, TENANT, Op::DeletePipeline { id: "sales".into() }).expect("an empty pipeline can go");
    assert!(read(
        b,
        Read::Pipeline {
            tenant: TENANT.into(),
            id: "sales".into()
        }
    )
    .is_none());
}

/// A run id commits once: a second changeset carrying it fails `AlreadyDone` and writes
/// nothing.
pub fn runs_commit_exactly_once(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let rid = run_id(5, 7);
    let mut first = Changeset::new(TENANT);
    first.records.push(put(&record("rec_1", None), None));
    first.runs.push(run(&rid, Some("rec_1"), "bnd_1", "m", 5));
    ok(b, &first);
    let mut again = Changeset::new(TENANT);
    again.records.push(put(&record("rec_2", None), None));
    again.runs.push(run(&rid, Some("rec_2"), "bnd_1", "m", 5));
    match commit1(b, &again) {
        Err(StoreError::AlreadyDone(id)) => assert_eq!(id, rid),
        other => panic!("a run committed twice must be refused: {other:?}"),
    }
    assert_eq!(get_record(b, TENANT, "rec_2"), None);
    match read(
        b,
        Read::Run {
            tenant: TENANT.into(),
            id: rid.clone(),
        },
    ) {
        Some(Row::Run(r)) => assert_eq!(r.record.as_deref(), Some("rec_1")),
        other => panic!("the first run stays: {other:?}"),
    }
    // The same id in another tenant is another run.
    tenant(b, OTHER);
    let mut there = Changeset::new(OTHER);
    there.runs.push(run(&rid, None, "bnd_1", "m", 5));
    ok(b, &there);
}

/// A message whose idempotency key the tenant already used is dropped; the rest of its
/// changeset commits.
pub fn idempotency_keys_drop_repeats(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    tenant(b, OTHER);
    let rid = run_id(1, 1);
    let mut first = Changeset::new(TENANT);
    first
        .messages
        .push(message(&message_id(1, 1), &rid, Some("welcome/1"), 1));
    ok(b, &first);
    let mut second = Changeset::new(TENANT);
    second
        .messages
        .push(message(&message_id(2, 1), &rid, Some("welcome/1"), 2));
    second
        .messages
        .push(message(&message_id(2, 2), &rid, None, 2));
    second.records.push(put(&record("rec_1", None), None));
    ok(b, &second);
    assert!(message_of(b, &message_id(1, 1)).is_some());
    assert_eq!(
        message_of(b, &message_id(2, 1)),
        None,
        "the repeat is dropped"
    );
    assert!(message_of(b, &message_id(2, 2)).is_some(), "no key: kept");
    assert!(get_record(b, TENANT, "rec_1").is_some());
    // Keys are per tenant.
    let mut other = Changeset::new(OTHER);
    other
        .messages
        .push(message(&message_id(3, 1), &rid, Some("welcome/1"), 3));
    ok(b, &other);
    assert!(matches!(
        read(
            b,
            Read::Message {
                tenant: OTHER.into(),
                id: message_id(3, 1)
            }
        ),
        Some(Row::Message(_))
    ));
}

/// A timer tied to a stage goes when its record leaves the stage (or is deleted), in the
/// same commit; one tied to a stage the record already left in its own changeset is born
/// cancelled. Follow-ups are counted per (binding, record) and per tenant, and a commit
/// whose follow-ups pass its caps fails `Stale`.
pub fn timers_follow_their_stage(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    let r = record("rec_1", Some("new"));
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&r, None));
    cs.timers
        .push(timer("tmr_tied", "rec_1", Some("new"), 1_000, true));
    cs.timers
        .push(timer("tmr_free", "rec_1", None, 2_000, false));
    ok(b, &cs);
    assert_eq!(timers_of(b, TENANT), ["tmr_tied", "tmr_free"]);
    assert_eq!(follow_ups(b, "rec_1"), (1, 1), "the follow-up is counted");

    let r2 = moved(&r, "won");
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&r2, Some(1)));
    // Tied to the stage this very changeset leaves: born cancelled.
    cs.timers
        .push(timer("tmr_born", "rec_1", Some("new"), 3_000, true));
    ok(b, &cs);
    assert_eq!(timers_of(b, TENANT), ["tmr_free"], "the tied timers went");
    assert_eq!(follow_ups(b, "rec_1"), (0, 0));

    // Caps: one follow-up per binding and record.
    let caps = FollowUpCaps {
        per_record: 1,
        per_tenant: 10,
    };
    let mut one = Changeset::new(TENANT);
    one.follow_up_caps = Some(caps);
    one.timers
        .push(timer("tmr_1", "rec_1", Some("won"), 4_000, true));
    ok(b, &one);
    let mut two = Changeset::new(TENANT);
    two.follow_up_caps = Some(caps);
    two.records.push(put(&record("rec_2", None), None));
    two.timers
        .push(timer("tmr_2", "rec_1", Some("won"), 5_000, true));
    assert!(matches!(commit1(b, &two), Err(StoreError::Stale(_))));
    assert_eq!(get_record(b, TENANT, "rec_2"), None);
    assert_eq!(follow_ups(b, "rec_1"), (1, 1));

    // Deleting the record takes every timer of it.
    let mut del = Changeset::new(TENANT);
    del.records.push(RecordWrite::Delete {
        id: "rec_1".into(),
        expected: 2,
    });
    ok(b, &del);
    assert!(
        timers_of(b, TENANT).is_empty(),
        "{:?}",
        timers_of(b, TENANT)
    );
    assert_eq!(follow_ups(b, "rec_1"), (0, 0));
}

/// Each op keeps its own rule: tenants and keys, bindings against module versions and
/// pipelines, version numbering and use counts, channel secrets, the webhook secret,
/// dead letters, delivery rollups; and runs bring their rollups and binding index.
pub fn ops_keep_their_rules(open: Open<'_>) {
    let b = open();
    let b = b.as_ref();
    tenant(b, TENANT);
    // Tenants and keys.
    let again = Op::CreateTenant {
        tenant: Tenant {
            id: TENANT.into(),
            name: "again".into(),
            created_at: at(0),
        },
        key: key(TENANT, "hash-other"),
        pipelines: Vec::new(),
    };
    assert!(matches!(
        op(b, TENANT, again),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(read(
        b,
        Read::KeyByHash {
            hash: "hash-other".into()
        }
    )
    .is_none());
    assert!(matches!(
        op(
            b,
            "nobody",
            Op::PutKey {
                key: key("nobody", "h2")
            }
        ),
        Err(StoreError::NotFound(_))
    ));
    op(
        b,
        TENANT,
        Op::PutKey {
            key: key(TENANT, "h3"),
        },
    )
    .expect("a second key");
    match read(b, Read::KeyByHash { hash: "h3".into() }) {
        Some(Row::Key(k)) => assert_eq!((k.tenant.as_str(), k.hash.as_str()), (TENANT, "h3")),
        other => panic!("the key by its hash: {other:?}"),
    }
    assert_eq!(
        all(
            b,
            List::Keys {
                tenant: TENANT.into()
            }
        )
        .len(),
        2
    );
    let revoke = |id: &str| {
        op(b, TENANT, Op::RevokeKey { id: id.into() })
            .expect("revoke")
            .revoked()
            .expect("reported")
    };
    assert!(revoke("key_h3"));
    assert!(!revoke("key_h3"), "gone already");
    assert!(read(b, Read::KeyByHash { hash: "h3".into() }).is_none());

    // Module versions are numbered on, never reused; a used one cannot go.
    let add = || {
        op(
            b,
            TENANT,
            Op::AddModuleVersion {
                version: version("m"),
                quota: ModuleQuota::default(),
            },
        )
        .expect("added")
        .module_version()
        .expect("reported")
        .version
    };
    assert_eq!((add(), add()), (1, 2));
    op(
        b,
        TENANT,
        Op::DeleteModuleVersion {
            module: "m".into(),
            version: 2,
        },
    )
    .expect("unused");
    assert_eq!(add(), 3);
    assert!(matches!(
        op(
            b,
            TENANT,
            Op::DeleteModuleVersion {
                module: "m".into(),
                version: 2
            }
        ),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        op(
            b,
            TENANT,
            Op::PutBinding {
                binding: binding("bnd_x", "m", 2),
                expected: None
            }
        ),
        Err(StoreError::Refused(_))
    ));
    let mut elsewhere = binding("bnd_x", "m", 1);
    elsewhere.pipeline = "nowhere".into();
    assert!(matches!(
        op(
            b,
            TENANT,
            Op::PutBinding {
                binding: elsewhere,
                expected: None
            }
        ),
        Err(StoreError::Refused(_))
    ));
    op(
        b,
        TENANT,
        Op::PutBinding {
            binding: binding("bnd_1", "m", 1),
            expected: None,
        },
    )
    .expect("bound");
    assert!(matches!(
        op(
            b,
            TENANT,
            Op::DeleteModuleVersion {
                module: "m".into(),
                version: 1
            }
        ),
        Err(StoreError::Refused(_))
    ));
    // Switching the binding to version 3 frees version 1.
    let mut switched = binding("bnd_1", "m", 3);
    switched.revision = 2;
    op(
        b,
        TENANT,
        Op::PutBinding {
            binding: switched,
            expected: Some(1),
        },
    )
    .expect("switched");
    op(
        b,
        TENANT,
        Op::DeleteModuleVersion {
            module: "m".into(),
            version: 1,
        },
    )
    .expect("freed");
    assert!(matches!(
        op(
            b,
            TENANT,
            Op::DeleteModuleVersion {
                module: "m".into(),
                version: 3
            }
        ),
        Err(StoreError::Refused(_))
    ));
    op(b, TENANT, Op::DeleteBinding { id: "bnd_1".into() }).expect("unbound");
    assert!(matches!(
        op(b, TENANT, Op::DeleteBinding { id: "bnd_1".into() }),
        Err(StoreError::NotFound(_))
    ));
    op(
        b,
        TENANT,
        Op::DeleteModuleVersion {
            module: "m".into(),
            version: 3,
        },
    )
    .expect("free");

    // Channel secrets stay while the destination does.
    let email = |host: &str, password: Option<&str>| ChannelConfig {
        email: Some(EmailConfig {
            host: host.into(),
            port: 587,
            tls: TlsMode::Starttls,
            username: Some("u".into()),
            password: password.map(str::to_string),
            from: "crm@example.com".into(),
            timeout_seconds: None,
        }),
        webhook: None,
        sms: None,
    };
    let put_channels = |c: ChannelConfig| {
        op(b, TENANT, Op::PutChannels { config: c })
            .expect("channels")
            .channels()
            .expect("reported")
    };
    put_channels(email("smtp.example.com", Some("secret")));
    let kept = put_channels(email("smtp.example.com", None));
    assert_eq!(
        kept.email.and_then(|e| e.password).as_deref(),
        Some("secret")
    );
    let moved_on = put_channels(email("smtp.other.example", None));
    assert_eq!(
        moved_on.email.and_then(|e| e.password),
        None,
        "a new host drops it"
    );
    assert!(matches!(
        read(
            b,
            Read::Channels {
                tenant: TENANT.into()
            }
        ),
        Some(Row::Channels(_))
    ));

    // The webhook secret is set once.
    let init = |s: &str| {
        op(b, TENANT, Op::InitWebhookSecret { secret: s.into() })
            .expect("secret")
            .secret()
            .expect("reported")
    };
    assert_eq!(init("whsec_first"), "whsec_first");
    assert_eq!(init("whsec_second"), "whsec_first");
    assert_eq!(
        read(
            b,
            Read::WebhookSecret {
                tenant: TENANT.into()
            }
        ),
        Some(Row::Secret("whsec_first".into()))
    );

    // Runs bring their rollups and binding index; deliveries count in their run's rollup.
    let rid = run_id(60_000, 1);
    let mut cs = Changeset::new(TENANT);
    cs.runs.push(run(&rid, None, "bnd_1", "m", 60_000));
    let mid = message_id(60_000, 1);
    cs.messages.push(message(&mid, &rid, None, 60_000));
    ok(b, &cs);
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
    assert_eq!(ids(&index), std::slice::from_ref(&rid));
    let rollups = |scope, name: &str| {
        all(
            b,
            List::Rollups {
                tenant: TENANT.into(),
                scope,
                name: name.into(),
                since_hour: 0,
                until_hour: 999_999_999_999,
            },
        )
    };
    let mut dead = message_of(b, &mid).expect("queued");
    dead.attempts.push(stagecraft_model::Attempt {
        at: at(60_000),
        status: Some(500),
        error: Some("failed".into()),
        duration_ms: 1,
    });
    dead.status = MessageStatus::Dead;
    dead.next_attempt_at = None;
    op(b, TENANT, Op::FinishMessage { message: dead }).expect("finished");
    for (scope, name) in [
        (crate::Scope::Module, "m"),
        (crate::Scope::Binding, "bnd_1"),
    ] {
        match rollups(scope, name).as_slice() {
            [Row::Rollup { rollup, .. }] => {
                assert_eq!((rollup.runs, rollup.dead), (1, 1), "{scope:?}");
            }
            other => panic!("one hour of {scope:?} rollups: {other:?}"),
        }
    }

    // Dead letters only are retried.
    let retried = op(b, TENANT, Op::RetryMessage { id: mid.clone() })
        .expect("retried")
        .message()
        .expect("reported");
    assert_eq!(retried.status, MessageStatus::Queued);
    assert!(matches!(
        op(b, TENANT, Op::RetryMessage { id: mid }),
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        op(
            b,
            TENANT,
            Op::RetryMessage {
                id: "msg_none".into()
            }
        ),
        Err(StoreError::NotFound(_))
    ));

    // Notifications by user.
    let note = Notification {
        id: "ntf_1".into(),
        user: "ann".into(),
        subject: "s".into(),
        body: "b".into(),
        record: None,
        created_at: at(0),
    };
    let c = op(b, TENANT, Op::PutNotification { notification: note }).expect("stored");
    assert_eq!(c.ops, [Applied::Done]);
    let (mine, _) = walk(
        b,
        &List::Notifications {
            tenant: TENANT.into(),
            user: "ann".into(),
        },
        10,
    );
    assert_eq!(ids(&mine), ["ntf_1"]);
}

/// What a durable commit acknowledged is there after the storage is opened again.
pub fn acknowledged_commits_survive_a_reopen(open: Open<'_>) {
    {
        let b = open();
        tenant(b.as_ref(), TENANT);
        let mut cs = Changeset::new(TENANT);
        cs.records.push(put(&record("rec_1", Some("new")), None));
        cs.jobs.push(job(TENANT, "job_1"));
        ok(b.as_ref(), &cs);
        let mut lazy = Changeset::op(TENANT, Op::FinishJob { id: "job_1".into() });
        lazy.durability = crate::Durability::Lazy;
        ok(b.as_ref(), &lazy);
        assert!(
            jobs_of(b.as_ref(), TENANT).is_empty(),
            "a lazy commit is visible at once"
        );
    }
    let b = open();
    assert!(get_record(b.as_ref(), TENANT, "rec_1").is_some());
    assert_eq!(ids(&all(b.as_ref(), List::Tenants)), [TENANT]);
}
