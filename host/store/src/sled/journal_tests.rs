//! The journal reads back exactly what was committed, whatever form each event's snapshot
//! was stored in: through point reads, both event lists and retention; and a data dir
//! written by format 2 (event row v1) opens and reads back identically, with new events
//! built on its old ones.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use stagecraft_model::{Actor, Cause, Event, EventKind, Record, Task};

use super::codec::Encode;
use super::journal::{stored, Stored, MAX_DEPTH};
use super::migrate::{FORMAT, FORMAT_KEY};
use super::{family, SledBackend};
use crate::change::{Changeset, RecordWrite};
use crate::contract::{at, event_id, record, tenant, TENANT};
use crate::query::{List, PageRequest, PruneRequest, Read, Row};
use crate::rows::{self, EventRow};
use crate::Backend;

/// Bytes written as they are (what an older version left).
struct Raw(Vec<u8>);

impl Encode for Raw {
    fn encode(&self, _key: &str) -> crate::Result<Vec<u8>> {
        Ok(self.0.clone())
    }
}

/// A lead's life: created, scored by a run, moved and assigned in one change, then many
/// updates (past [`MAX_DEPTH`]), with custom fields added, changed and removed, and odd
/// ids. Each step is one changeset of the record write and its events.
fn history(id: &str, start_ms: i64, steps: usize) -> Vec<(Record, Vec<Event>)> {
    let mut out = Vec::new();
    let mut r = record(id, Some("new"));
    r.email = Some("a@b.co".into());
    r.custom = json!({"job_title": "CTO", "company_size": 50, "source": "Referral"})
        .as_object()
        .unwrap()
        .clone();
    r.created_at = at(start_ms);
    r.updated_at = at(start_ms);
    let ev = |n: usize, ms: i64, kind: EventKind, r: &Record, cause: Option<Cause>| Event {
        id: event_id(ms, n as u128 + 1000 * start_ms as u128),
        tenant: TENANT.into(),
        record: Some(r.id.clone()),
        kind,
        occurred_at: at(ms),
        cause,
        snapshot: Some(r.clone()),
    };
    out.push((
        r.clone(),
        vec![ev(0, start_ms, EventKind::Created, &r, None)],
    ));
    for step in 1..=steps {
        let ms = start_ms + step as i64;
        let mut next = r.clone();
        next.version += 1;
        next.updated_at = if step % 5 == 0 { at(ms - 1) } else { at(ms) };
        let mut events = Vec::new();
        match step {
            1 => {
                next.custom.insert("score".into(), json!(70));
                next.owner = Some("ann".into());
                let cause = Cause {
                    run: format!("run_{}_0123abcdef", &event_id(start_ms, 0)[4..]),
                    binding: "lead-scoring".into(),
                    chain: vec![
                        "bnd_01arz3ndektsv4rrffq69g5fav".into(),
                        "lead-scoring".into(),
                    ],
                    depth: 1,
                };
                events.push(ev(
                    step * 10,
                    ms,
                    EventKind::Assigned {
                        from: None,
                        to: Some("ann".into()),
                    },
                    &next,
                    Some(cause.clone()),
                ));
                events.push(ev(
                    step * 10 + 1,
                    ms,
                    EventKind::Updated {
                        fields: vec!["score".into()],
                    },
                    &next,
                    Some(cause.clone()),
                ));
                // A task the run made, then one a person completed.
                let made: Task =
                    serde_json::from_value(json!({"id": "tsk_01arz3ndektsv4rrffq69g5fav",
                    "record": next.id, "title": "Call", "description": null,
                    "due_at": at(ms + 3_600_000), "priority": "high", "assignee": "ann",
                    "tags": ["x"], "status": "open",
                    "created_by": {"type": "run", "binding": cause.binding, "run": cause.run},
                    "completed_by": null, "completed_at": null, "version": 1,
                    "created_at": at(ms), "updated_at": at(ms)}))
                    .unwrap();
                events.push(ev(
                    step * 10 + 2,
                    ms,
                    EventKind::TaskCreated {
                        task: Box::new(made.clone()),
                    },
                    &next,
                    Some(cause.clone()),
                ));
                let mut done = made;
                done.status = stagecraft_model::TaskStatus::Done;
                done.record = "rec_other".into();
                done.completed_by = Some(Actor::Key {
                    key: "key_01arz3ndektsv4rrffq69g5fav".into(),
                    user: Some("bob".into()),
                });
                done.completed_at = Some(at(ms - 7));
                done.version = 2;
                done.updated_at = at(ms - 7);
                events.push(ev(
                    step * 10 + 3,
                    ms,
                    EventKind::TaskCompleted {
                        task: Box::new(done),
                    },
                    &next,
                    None,
                ));
            }
            2 => {
                next.stage = Some("won".into());
                next.custom.remove("source");
                next.custom
                    .insert("nested".into(), json!({"a": [1, 2.5, null]}));
                next.amount = Some(-0.0);
                events.push(ev(
                    step * 10,
                    ms,
                    EventKind::StageChanged {
                        from: "new".into(),
                        to: "won".into(),
                    },
                    &next,
                    None,
                ));
            }
            _ => {
                next.custom
                    .insert("job_title".into(), json!(format!("VP {step}")));
                next.name = format!("Lead {step}");
                events.push(ev(
                    step * 10,
                    ms,
                    EventKind::Updated {
                        fields: vec!["job_title".into(), "name".into()],
                    },
                    &next,
                    None,
                ));
            }
        }
        out.push((next.clone(), events));
        r = next;
    }
    out
}

fn commit(b: &SledBackend, hist: &[(Record, Vec<Event>)]) {
    for (r, events) in hist {
        let mut cs = Changeset::new(TENANT);
        cs.records.push(RecordWrite::Put {
            record: Box::new(r.clone()),
            expected: (r.version > 1).then(|| r.version - 1),
        });
        cs.events = events.clone();
        b.commit(&[&cs]).pop().unwrap().unwrap();
    }
}

fn events_of(hist: &[(Record, Vec<Event>)]) -> Vec<Event> {
    let mut all: Vec<Event> = hist.iter().flat_map(|(_, e)| e.clone()).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// Every way the journal is read gives back exactly `want`.
fn reads_back(b: &SledBackend, record: &str, want: &[Event]) {
    for e in want {
        let got = b
            .read(&Read::Event {
                tenant: TENANT.into(),
                id: e.id.clone(),
            })
            .unwrap();
        match got {
            Some(Row::Event(got)) => {
                assert_eq!(*got, *e, "point read of {}", e.id);
                assert_eq!(
                    serde_json::to_string(&*got).unwrap(),
                    serde_json::to_string(e).unwrap()
                );
            }
            other => panic!("{}: {other:?}", e.id),
        }
    }
    for list in [
        List::RecordEvents {
            tenant: TENANT.into(),
            record: record.into(),
        },
        List::Events {
            tenant: TENANT.into(),
        },
    ] {
        let page = b.list(&list, &PageRequest::all()).unwrap();
        let got: Vec<Event> = page
            .items
            .into_iter()
            .map(|r| match r {
                Row::Event(e) => *e,
                other => panic!("{other:?}"),
            })
            .filter(|e| e.record.as_deref() == Some(record))
            .collect();
        assert_eq!(got, want, "{list:?}");
    }
}

/// How each event of the tenant is stored: (delta, whole) counts and the bytes of all.
fn forms(b: &SledBackend) -> (usize, usize, usize) {
    let (mut deltas, mut whole, mut bytes) = (0, 0, 0);
    for item in b.scan_raw(&family::events(TENANT), None) {
        let (k, v) = item.unwrap();
        bytes += v.len();
        match stored(&k, &v).unwrap() {
            Stored::Delta { depth, .. } => {
                assert!(depth <= MAX_DEPTH);
                deltas += 1;
            }
            Stored::Whole(_) => whole += 1,
        }
    }
    (deltas, whole, bytes)
}

#[test]
fn events_read_back_exactly_whatever_their_snapshot_is_stored_as() {
    let dir = tempfile::tempdir().unwrap();
    let b = SledBackend::open(dir.path()).unwrap();
    let hist = history("rec_01arz3ndektsv4rrffq69g5fav", 0, 25);
    commit(&b, &hist);
    let odd = history("Legacy-ID.1", 100, 3);
    commit(&b, &odd);
    let want = events_of(&hist);
    reads_back(&b, "rec_01arz3ndektsv4rrffq69g5fav", &want);
    reads_back(&b, "Legacy-ID.1", &events_of(&odd));

    let (deltas, whole, bytes) = forms(&b);
    assert!(deltas >= 20, "{deltas} deltas");
    assert!(
        whole >= 3,
        "a chain restarts every {MAX_DEPTH}: {whole} whole"
    );
    let v1: usize = events_of(&hist)
        .iter()
        .chain(&events_of(&odd))
        .map(|e| rows::encode(&EventRow::from(e)).unwrap().len())
        .sum();
    eprintln!("journal: {bytes} B stored, {v1} B as event rows v1");
    assert!(bytes * 2 < v1, "{bytes} B against {v1} B as rows v1");
}

/// Retention drops the snapshots of old events and leaves every later one reading back
/// whole, though they were stored as changes to the dropped ones.
#[test]
fn retention_keeps_later_snapshots_whole() {
    let dir = tempfile::tempdir().unwrap();
    let b = SledBackend::open(dir.path()).unwrap();
    tenant(&b, TENANT);
    let id = "rec_01arz3ndektsv4rrffq69g5fav";
    let hist = history(id, 0, 12);
    commit(&b, &hist);
    let want = events_of(&hist);
    let cutoff = at(6);
    for batch in [1, 3] {
        let pruned = b.prune(&PruneRequest { cutoff, batch }).unwrap();
        if batch == 1 {
            let old = want.iter().filter(|e| e.occurred_at < cutoff).count();
            assert_eq!(pruned.snapshots, old as u64);
        } else {
            assert_eq!(pruned.snapshots, 0, "nothing left to drop");
        }
    }
    let expected: Vec<Event> = want
        .iter()
        .cloned()
        .map(|mut e| {
            if e.occurred_at < cutoff {
                e.snapshot = None;
            }
            e
        })
        .collect();
    reads_back(&b, id, &expected);
    // New changes after the prune build on what is left.
    let more: Vec<_> = history(id, 0, 15).into_iter().skip(13).collect();
    commit(&b, &more);
    let mut all = expected;
    all.extend(events_of(&more));
    reads_back(&b, id, &all);
}

/// A data dir written by format 2 (every event an event row v1, format 2 recorded) opens,
/// records format 3 and reads back identically; new events are built on its old ones and
/// read back too.
#[test]
fn a_format_2_data_dir_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let id = "rec_01arz3ndektsv4rrffq69g5fav";
    let hist = history(id, 0, 12);
    let (old, new) = hist.split_at(6);
    {
        let b = SledBackend::open(dir.path()).unwrap();
        commit(&b, old);
        // As format 2 stored them: event rows v1, and format 2 recorded.
        b.transact(|tx| {
            for e in events_of(old) {
                let bytes = rows::encode(&EventRow::from(&e)).unwrap();
                tx.put(&family::event(TENANT, &e.id), &Raw(bytes))?;
            }
            tx.set_counter(FORMAT_KEY, 2)
        })
        .unwrap();
        let (deltas, _, _) = forms(&b);
        assert_eq!(deltas, 0, "format 2 has no deltas");
    }
    let b = SledBackend::open(dir.path()).unwrap();
    assert_eq!(super::migrate::stored_format(&b).unwrap(), Some(FORMAT));
    reads_back(&b, id, &events_of(old));
    commit(&b, new);
    let (deltas, _, _) = forms(&b);
    assert!(deltas >= 5, "new events build on the old ones: {deltas}");
    reads_back(&b, id, &events_of(&hist));
}
