//! Stored values are storage rows (`stagecraft_store::Stored`), never the JSON of the API's
//! model types, and a database version 5 wrote (model JSON in JSONB) is converted in place
//! when a host opens it: every kind of value reads back identically afterwards.

mod common;

use postgres::types::ToSql;
use postgres::Client;
use serde_json::{json, Value};
use stagecraft_model::stats::{hour_of, Rollup};
use stagecraft_model::{
    Cause, ChannelConfig, Effect, Event, EventKind, LogLine, Module, Notification, Outcome, Record,
    RunRecord, Tenant,
};
use stagecraft_store::contract::{self, at, TENANT};
use stagecraft_store::{
    task_due_cursor, task_status_cursor, Backend, Changeset, List, PageRequest, Read, Row, Scope,
    Stored, TimelineItem,
};
use stagecraft_store_pg::{schema, PgBackend, PgOptions, SchemaError};

/// The JSON version 5 stored for a value: the model type's serde shape.
fn v5<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("a model value serializes")
}

/// A database at schema version 5, as the binary before storage rows left it.
fn version_5(c: &mut Client) {
    c.batch_execute(
        "CREATE TABLE stagecraft_schema (\
            one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL)",
    )
    .expect("schema table");
    for sql in &schema::MIGRATIONS[..5] {
        c.batch_execute(sql).expect("migrations 1 to 5");
    }
    c.execute("INSERT INTO stagecraft_schema (version) VALUES (5)", &[])
        .expect("version 5");
}

fn insert(c: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)]) {
    c.execute(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn read(b: &PgBackend, r: Read) -> Row {
    b.read(&r)
        .unwrap_or_else(|e| panic!("{r:?}: {e}"))
        .unwrap_or_else(|| panic!("{r:?} found nothing"))
}

fn list(b: &PgBackend, l: List) -> Vec<Row> {
    b.list(&l, &PageRequest::all())
        .unwrap_or_else(|e| panic!("{l:?}: {e}"))
        .items
}

/// One value of every kind, with the fields JSON round trips are touchy about: floats,
/// nested custom fields, snapshots, tagged enums, timestamps with nanoseconds.
struct Values {
    tenant: Tenant,
    key: stagecraft_model::ApiKey,
    pipeline: stagecraft_model::Pipeline,
    record: Record,
    event: Event,
    run: RunRecord,
    rollup: Rollup,
    message: stagecraft_model::OutboxMessage,
    timer: stagecraft_model::Timer,
    job: stagecraft_model::Job,
    binding: stagecraft_model::Binding,
    module: Module,
    version: stagecraft_model::ModuleVersion,
    channels: ChannelConfig,
    notification: Notification,
    task: stagecraft_model::Task,
    comment: stagecraft_model::Comment,
}

fn values() -> Values {
    let mut record = contract::record("rec_1", Some("new"));
    record.email = Some("ada@example.com".into());
    record.amount = Some(1234.5);
    record.currency = Some("EUR".into());
    record.owner = Some("ada".into());
    record.updated_at = at(7) + chrono::Duration::nanoseconds(123_456);
    record.custom = serde_json::from_value(json!({
        "score": 70, "ratio": 0.1, "tags": ["a", "b"], "nested": {"x": 1.5, "y": null}
    }))
    .expect("custom fields");
    let event = Event {
        kind: EventKind::StageChanged {
            from: "new".into(),
            to: "won".into(),
        },
        cause: Some(Cause {
            run: "run_0".into(),
            binding: "bnd_1".into(),
            chain: vec!["bnd_1".into()],
            depth: 1,
        }),
        snapshot: Some(record.clone()),
        ..contract::event(&contract::event_id(5, 1), Some("rec_1"), 5)
    };
    let mut run = contract::run(&contract::run_id(6, 1), Some("rec_1"), "bnd_1", "scorer", 6);
    run.outcome = Outcome::GuestError {
        message: "no score".into(),
    };
    run.effects = vec![Effect::SetField {
        record: "rec_1".into(),
        field: "score".into(),
        value: json!(71),
    }];
    run.logs = vec![LogLine {
        level: "info".into(),
        message: "scored".into(),
    }];
    let mut rollup = Rollup::default();
    rollup.add(&run);
    let mut message = contract::message(&contract::message_id(6, 1), &run.id, Some("once"), 6);
    message.record = Some("rec_1".into());
    let channels: ChannelConfig = serde_json::from_value(json!({
        "email": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
                  "username": "u", "password": "secret", "from": "crm@example.com"}
    }))
    .expect("channel settings");
    let mut version = contract::version("scorer");
    version.version = 1;
    version.config_schema = Some(json!({"type": "object"}));
    Values {
        tenant: Tenant {
            id: TENANT.into(),
            name: "Acme".into(),
            created_at: at(0),
        },
        key: contract::key(TENANT, "hash-1"),
        pipeline: contract::pipeline("sales", &["new", "won", "lost"]),
        record,
        event,
        run,
        rollup,
        message,
        timer: contract::timer("tmr_1", "rec_1", Some("new"), 9, true),
        job: contract::job(TENANT, "job_1"),
        binding: contract::binding("bnd_1", "scorer", 1),
        module: Module {
            name: "scorer".into(),
            latest: 1,
            created_at: at(0),
            updated_at: at(1),
        },
        version,
        channels,
        notification: Notification {
            id: "ntf_1".into(),
            user: "ada".into(),
            subject: "s".into(),
            body: "b".into(),
            record: Some("rec_1".into()),
            created_at: at(3),
        },
        task: contract::tasks::task(
            &contract::tasks::task_id(4, 1),
            "rec_1",
            4,
            Some(10),
            Some("ada"),
        ),
        comment: contract::tasks::comment(&contract::tasks::comment_id(8, 1), "rec_1", 8),
    }
}

/// Writes `v` as version 5 did: each value's model JSON beside its columns.
fn write_version_5(c: &mut Client, v: &Values) {
    let t = TENANT;
    insert(
        c,
        "INSERT INTO tenants (tenant, value) VALUES ($1, $2)",
        &[&t, &v5(&v.tenant)],
    );
    insert(
        c,
        "INSERT INTO api_keys (tenant, hash, id, value) VALUES ($1, $2, $3, $4)",
        &[&t, &v.key.hash, &v.key.id, &v5(&v.key)],
    );
    insert(
        c,
        "INSERT INTO pipelines (tenant, id, version, value) VALUES ($1, $2, 1, $3)",
        &[&t, &v.pipeline.id, &v5(&v.pipeline)],
    );
    let r = &v.record;
    insert(
        c,
        "INSERT INTO records (tenant, id, version, kind, pipeline, stage, owner, name, email, value) \
         VALUES ($1, $2, 1, 'lead', $3, $4, $5, $6, $7, $8)",
        &[&t, &r.id, &r.pipeline, &r.stage, &r.owner, &r.name, &r.email, &v5(r)],
    );
    let e = &v.event;
    insert(
        c,
        "INSERT INTO events (tenant, id, record, occurred_ms, has_snapshot, value) \
         VALUES ($1, $2, $3, $4, TRUE, $5)",
        &[
            &t,
            &e.id,
            &e.record,
            &e.occurred_at.timestamp_millis(),
            &v5(e),
        ],
    );
    let run = &v.run;
    insert(
        c,
        "INSERT INTO runs (tenant, id, binding, module, record, outcome, started_ms, value) \
         VALUES ($1, $2, $3, $4, $5, 'guest_error', $6, $7)",
        &[
            &t,
            &run.id,
            &run.binding,
            &run.module,
            &run.record,
            &run.started_at.timestamp_millis(),
            &v5(run),
        ],
    );
    insert(
        c,
        "INSERT INTO rollups (tenant, scope, name, hour, value) VALUES ($1, 'm', 'scorer', $2, $3)",
        &[&t, &hour_of(run.started_at), &v5(&v.rollup)],
    );
    let m = &v.message;
    insert(
        c,
        "INSERT INTO messages (tenant, id, status, channel, record, run, due_ms, value) \
         VALUES ($1, $2, 'queued', 'email', $3, $4, $5, $6)",
        &[
            &t,
            &m.id,
            &m.record,
            &m.run,
            &m.created_at.timestamp_millis(),
            &v5(m),
        ],
    );
    let tm = &v.timer;
    insert(
        c,
        "INSERT INTO timers (tenant, id, due_ms, record, binding, stage, follow_up, value) \
         VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)",
        &[
            &t,
            &tm.id,
            &tm.due.timestamp_millis(),
            &tm.record,
            &tm.binding,
            &tm.stage,
            &v5(tm),
        ],
    );
    insert(
        c,
        "INSERT INTO jobs (tenant, id, value) VALUES ($1, $2, $3)",
        &[&t, &v.job.id, &v5(&v.job)],
    );
    let b = &v.binding;
    insert(
        c,
        "INSERT INTO bindings (tenant, id, revision, module, version, value) \
         VALUES ($1, $2, 1, $3, 1, $4)",
        &[&t, &b.id, &b.module, &v5(b)],
    );
    insert(
        c,
        "INSERT INTO modules (tenant, name, latest, value) VALUES ($1, $2, 1, $3)",
        &[&t, &v.module.name, &v5(&v.module)],
    );
    insert(
        c,
        "INSERT INTO module_versions (tenant, module, version, hash, bytes, value) \
         VALUES ($1, $2, 1, $3, 100, $4)",
        &[&t, &v.version.module, &v.version.hash, &v5(&v.version)],
    );
    insert(
        c,
        "INSERT INTO channels (tenant, value) VALUES ($1, $2)",
        &[&t, &v5(&v.channels)],
    );
    let n = &v.notification;
    insert(
        c,
        "INSERT INTO notifications (tenant, \"user\", id, value) VALUES ($1, $2, $3, $4)",
        &[&t, &n.user, &n.id, &v5(n)],
    );
    let k = &v.task;
    insert(
        c,
        "INSERT INTO tasks (tenant, id, record, assignee, open, status_ord, due_ms, due_ord, \
            version, value) VALUES ($1, $2, $3, $4, TRUE, $5, $6, $7, 1, $8)",
        &[
            &t,
            &k.id,
            &k.record,
            &k.assignee,
            &task_status_cursor(k),
            &k.due_at.map(|d| d.timestamp_millis()),
            &task_due_cursor(k),
            &v5(k),
        ],
    );
    insert(
        c,
        "INSERT INTO comments (tenant, id, record, value) VALUES ($1, $2, $3, $4)",
        &[&t, &v.comment.id, &v.comment.record, &v5(&v.comment)],
    );
}

#[test]
fn a_version_5_database_reads_back_identically_after_the_upgrade() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    let v = values();
    let mut c = db.client();
    version_5(&mut c);
    write_version_5(&mut c, &v);

    let b = PgBackend::open(db.config(), PgOptions::default()).expect("opens and migrates");
    let version: i64 = c
        .query_one("SELECT version FROM stagecraft_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, schema::VERSION);

    let (t, s) = (TENANT.to_string(), |s: &str| s.to_string());
    assert_eq!(list(&b, List::Tenants), vec![Row::Tenant(v.tenant.clone())]);
    assert_eq!(
        read(&b, Read::KeyByHash { hash: s("hash-1") }),
        Row::Key(v.key.clone())
    );
    assert_eq!(
        read(
            &b,
            Read::Pipeline {
                tenant: t.clone(),
                id: s("sales")
            }
        ),
        Row::Pipeline(v.pipeline.clone())
    );
    assert_eq!(
        read(
            &b,
            Read::Record {
                tenant: t.clone(),
                id: s("rec_1")
            }
        ),
        Row::Record(v.record.clone())
    );
    assert_eq!(
        read(
            &b,
            Read::Event {
                tenant: t.clone(),
                id: v.event.id.clone()
            }
        ),
        Row::Event(Box::new(v.event.clone()))
    );
    assert_eq!(
        read(
            &b,
            Read::Run {
                tenant: t.clone(),
                id: v.run.id.clone()
            }
        ),
        Row::Run(v.run.clone())
    );
    let hour = hour_of(v.run.started_at);
    assert_eq!(
        list(
            &b,
            List::Rollups {
                tenant: t.clone(),
                scope: Scope::Module,
                name: s("scorer"),
                since_hour: hour,
                until_hour: hour + 1,
            }
        ),
        vec![Row::Rollup {
            hour,
            rollup: v.rollup.clone()
        }]
    );
    assert_eq!(
        read(
            &b,
            Read::Message {
                tenant: t.clone(),
                id: v.message.id.clone()
            }
        ),
        Row::Message(v.message.clone())
    );
    assert_eq!(
        list(&b, List::Timers { tenant: t.clone() }),
        vec![Row::Timer(v.timer.clone())]
    );
    match &list(&b, List::Jobs { tenant: t.clone() })[..] {
        [Row::Job(j)] => assert_eq!(j.job.as_ref(), Ok(&v.job)),
        other => panic!("jobs: {other:?}"),
    }
    assert_eq!(
        read(
            &b,
            Read::Binding {
                tenant: t.clone(),
                id: s("bnd_1")
            }
        ),
        Row::Binding(v.binding.clone())
    );
    assert_eq!(
        read(
            &b,
            Read::Module {
                tenant: t.clone(),
                name: s("scorer")
            }
        ),
        Row::Module(v.module.clone())
    );
    assert_eq!(
        read(
            &b,
            Read::ModuleVersion {
                tenant: t.clone(),
                module: s("scorer"),
                version: 1
            }
        ),
        Row::ModuleVersion(v.version.clone())
    );
    assert_eq!(
        read(&b, Read::Channels { tenant: t.clone() }),
        Row::Channels(v.channels.clone())
    );
    assert_eq!(
        list(
            &b,
            List::Notifications {
                tenant: t.clone(),
                user: s("ada")
            }
        ),
        vec![Row::Notification(v.notification.clone())]
    );
    assert_eq!(
        read(
            &b,
            Read::Task {
                tenant: t.clone(),
                id: v.task.id.clone()
            }
        ),
        Row::Task(v.task.clone())
    );
    assert_eq!(
        list(
            &b,
            List::Timeline {
                tenant: t.clone(),
                record: s("rec_1")
            }
        ),
        vec![
            Row::Timeline(TimelineItem::Task(v.task.clone())),
            Row::Timeline(TimelineItem::Event(Box::new(v.event.clone()))),
            Row::Timeline(TimelineItem::Comment(v.comment.clone())),
        ]
    );

    // What SQL filters on became columns, filled from the JSON.
    let row = c
        .query_one("SELECT event, event_kind FROM runs", &[])
        .expect("run columns");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        (v.run.event.clone(), v.run.event_kind.clone())
    );
    let kind: String = c
        .query_one("SELECT kind FROM events", &[])
        .expect("event kind")
        .get(0);
    assert_eq!(kind, "stage_changed");

    // The converted database goes on working: the next module version is numbered after
    // the stored one, and the module's row says so.
    let mut next = contract::version("scorer");
    next.hash = "hash-2".into();
    contract::ok(
        &b,
        &Changeset::op(
            TENANT,
            stagecraft_store::Op::AddModuleVersion {
                version: next,
                quota: stagecraft_store::ModuleQuota::default(),
            },
        ),
    );
    match read(
        &b,
        Read::Module {
            tenant: t,
            name: s("scorer"),
        },
    ) {
        Row::Module(m) => {
            assert_eq!(m.latest, 2);
            assert_eq!(m.created_at, v.module.created_at);
        }
        other => panic!("module: {other:?}"),
    }
}

#[test]
fn a_version_5_value_that_cannot_be_converted_leaves_the_database_at_version_5() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    let v = values();
    let mut c = db.client();
    version_5(&mut c);
    write_version_5(&mut c, &v);
    c.execute(
        "UPDATE records SET value = value - 'created_at' WHERE id = 'rec_1'",
        &[],
    )
    .expect("a damaged value");

    let Err(e) = PgBackend::open(db.config(), PgOptions::default()) else {
        panic!("a value that does not convert was accepted");
    };
    let message = e.to_string();
    assert!(
        message.contains("records") && message.contains("created_at"),
        "{message}"
    );
    assert!(
        matches!(
            e,
            stagecraft_store_pg::backend::OpenError::Schema(SchemaError::Convert { .. })
        ),
        "{e:?}"
    );
    // Nothing changed: still version 5, still JSON.
    let version: i64 = c
        .query_one("SELECT version FROM stagecraft_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, 5);
    let tenant: Value = c
        .query_one("SELECT value FROM tenants", &[])
        .expect("the tenant's JSON")
        .get(0);
    assert_eq!(tenant, v5(&v.tenant));
}

/// PostgreSQL stores each value as its storage row (the bytes sled stores), never as the
/// model's JSON. The compiler holds the rest: `sql::enc` takes only `T: Stored`, which only
/// the store's row module implements.
#[test]
fn stored_values_are_storage_rows_not_model_json() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    let b = PgBackend::open(db.config(), PgOptions::default()).expect("opens");
    contract::tenant(&b, TENANT);
    let r = values().record;
    let mut cs = Changeset::new(TENANT);
    cs.records.push(contract::put(&r, None));
    contract::ok(&b, &cs);

    let mut c = db.client();
    let bytes: Vec<u8> = c
        .query_one("SELECT value FROM records WHERE id = 'rec_1'", &[])
        .expect("the stored record")
        .get(0);
    assert_eq!(bytes.first(), Some(&0xC2), "a storage row's format tag");
    assert!(
        serde_json::from_slice::<Value>(&bytes).is_err(),
        "the model's JSON was stored"
    );
    assert_eq!(
        Record::decode_row("rec_1", &bytes).expect("a record row"),
        r
    );
    assert_eq!(
        bytes,
        r.encode_row().expect("encodes"),
        "the same bytes as sled's"
    );
    for table in ["tenants", "api_keys", "pipelines"] {
        let tag: Vec<u8> = c
            .query_one(
                &format!("SELECT substring(value FROM 1 FOR 1) FROM {table} LIMIT 1"),
                &[],
            )
            .expect("a stored value")
            .get(0);
        assert_eq!(tag, [0xC2], "{table} stores rows");
    }
}
