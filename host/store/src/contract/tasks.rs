//! Tasks, comments and the timeline: their ops commit atomically with a changeset's other
//! writes, task writes check versions, every list pages in its order with its cursor and
//! stays in its tenant, overdue lists read by due time, overdue timers follow their task,
//! and the caps hold with their named error.

use chrono::{DateTime, Utc};
use stagecraft_model::id::id_at;
use stagecraft_model::{Actor, Comment, Priority, Task, TaskStatus, TimerKind};

use super::*;
use crate::{StoreError, TaskCaps, TaskFilter, TimelineItem};

pub fn task_id(ms: i64, n: u128) -> String {
    id_at("tsk", at(ms).timestamp_millis(), n)
}

pub fn comment_id(ms: i64, n: u128) -> String {
    id_at("cmt", at(ms).timestamp_millis(), n)
}

fn person() -> Actor {
    Actor::Key {
        key: "key_1".into(),
        user: Some("ann".into()),
    }
}

/// An open task on `record`, created at `ms`, due at `due` (ms), assigned to `assignee`.
pub fn task(id: &str, record: &str, ms: i64, due: Option<i64>, assignee: Option<&str>) -> Task {
    Task {
        id: id.into(),
        record: record.into(),
        title: format!("Task {id}"),
        description: None,
        due_at: due.map(at),
        priority: Priority::Normal,
        assignee: assignee.map(str::to_string),
        tags: vec!["call".into()],
        status: TaskStatus::Open,
        created_by: person(),
        completed_by: None,
        completed_at: None,
        version: 1,
        created_at: at(ms),
        updated_at: at(ms),
    }
}

pub fn comment(id: &str, record: &str, ms: i64) -> Comment {
    Comment {
        id: id.into(),
        record: record.into(),
        body: format!("comment {id}"),
        author: person(),
        created_at: at(ms),
    }
}

fn create(t: &Task) -> Op {
    Op::CreateTask {
        task: t.clone(),
        caps: TaskCaps::default(),
    }
}

fn add(c: &Comment) -> Op {
    Op::AddComment {
        comment: c.clone(),
        caps: TaskCaps::default(),
    }
}

fn get_task(b: &dyn Backend, tenant: &str, id: &str) -> Option<Task> {
    match read(
        b,
        Read::Task {
            tenant: tenant.into(),
            id: id.into(),
        },
    ) {
        Some(Row::Task(t)) => Some(t),
        None => None,
        other => panic!("a task read answered {other:?}"),
    }
}

fn row_ids(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| match r {
            Row::Task(t) => t.id.clone(),
            Row::Comment(c) => c.id.clone(),
            Row::Timeline(i) => i.id().to_string(),
            other => panic!("not a task, comment or timeline entry: {other:?}"),
        })
        .collect()
}

fn tasks(b: &dyn Backend, tenant: &str, filter: TaskFilter, limit: usize) -> Vec<String> {
    let list = List::Tasks {
        tenant: tenant.into(),
        filter,
    };
    row_ids(&walk(b, &list, limit).0)
}

fn overdue(assignee: Option<&str>, now: DateTime<Utc>) -> TaskFilter {
    TaskFilter {
        assignee: assignee.map(str::to_string),
        status: None,
        overdue_at: Some(now),
    }
}

fn task_timers(b: &dyn Backend, tenant: &str) -> Vec<(String, DateTime<Utc>)> {
    all(
        b,
        List::Timers {
            tenant: tenant.into(),
        },
    )
    .into_iter()
    .filter_map(|r| match r {
        Row::Timer(t) => match t.kind {
            TimerKind::TaskOverdue { task } => Some((task, t.due)),
            _ => None,
        },
        _ => None,
    })
    .collect()
}

/// A run's record, task, comment and journal event commit together or not at all: a
/// version conflict anywhere in the changeset leaves no task and no comment; a task or
/// comment on a missing record is `NotFound`; one on a record the same changeset creates
/// is fine.
pub fn tasks_commit_with_the_run(open: Open<'_>) {
    let b = open();
    tenant(&*b, TENANT);
    let lead = record("rec_1", Some("new"));
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&lead, None));
    cs.events.push(event(&event_id(1, 1), Some("rec_1"), 1));
    let t1 = task(&task_id(1, 1), "rec_1", 1, None, Some("ann"));
    let c1 = comment(&comment_id(1, 2), "rec_1", 1);
    cs.ops.push(create(&t1));
    cs.ops.push(add(&c1));
    ok(&*b, &cs);
    assert_eq!(get_task(&*b, TENANT, &t1.id), Some(t1.clone()));

    // The same run again on stale state: the record write conflicts, so nothing lands.
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&moved(&lead, "won"), Some(7)));
    let t2 = task(&task_id(2, 1), "rec_1", 2, Some(60_000), Some("ann"));
    cs.ops.push(create(&t2));
    cs.ops.push(add(&comment(&comment_id(2, 2), "rec_1", 2)));
    assert!(matches!(
        commit1(&*b, &cs),
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(get_task(&*b, TENANT, &t2.id), None, "the task was not kept");
    let list = List::Timeline {
        tenant: TENANT.into(),
        record: "rec_1".into(),
    };
    assert_eq!(
        row_ids(&walk(&*b, &list, 10).0),
        vec![event_id(1, 1), t1.id.clone(), comment_id(1, 2)],
        "neither the comment nor the task of the rejected changeset is on the timeline"
    );
    assert!(task_timers(&*b, TENANT).is_empty(), "no timer was armed");

    // A task or comment on a record that does not exist.
    let ghost = task(&task_id(3, 1), "rec_missing", 3, None, None);
    assert!(matches!(
        op(&*b, TENANT, create(&ghost)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        op(
            &*b,
            TENANT,
            add(&comment(&comment_id(3, 2), "rec_missing", 3))
        ),
        Err(StoreError::NotFound(_))
    ));
    // The same task id twice.
    assert!(matches!(
        op(&*b, TENANT, create(&t1)),
        Err(StoreError::AlreadyExists(_))
    ));
    // Another tenant cannot put a task on this tenant's record, nor read one.
    assert!(matches!(
        op(
            &*b,
            OTHER,
            create(&task(&task_id(4, 1), "rec_1", 4, None, None))
        ),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(get_task(&*b, OTHER, &t1.id), None);
}

/// Updates and completions check the task's version; completing twice is refused; a
/// completed task's overdue timer is cancelled, and a moved due time moves it.
pub fn task_updates_check_versions(open: Open<'_>) {
    let b = open();
    tenant(&*b, TENANT);
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&record("rec_1", None), None));
    ok(&*b, &cs);
    let t = task(&task_id(1, 1), "rec_1", 1, Some(10_000), Some("ann"));
    op(&*b, TENANT, create(&t)).expect("created");
    assert_eq!(task_timers(&*b, TENANT), vec![(t.id.clone(), at(10_000))]);

    let mut moved_due = t.clone();
    moved_due.due_at = Some(at(20_000));
    moved_due.version = 2;
    let stale = Op::UpdateTask {
        task: moved_due.clone(),
        expected: 5,
    };
    match op(&*b, TENANT, stale) {
        Err(StoreError::VersionConflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (5, 1)),
        other => panic!("a stale update must conflict, got {other:?}"),
    }
    let fresh = Op::UpdateTask {
        task: moved_due.clone(),
        expected: 1,
    };
    op(&*b, TENANT, fresh).expect("updated");
    assert_eq!(get_task(&*b, TENANT, &t.id), Some(moved_due.clone()));
    assert_eq!(
        task_timers(&*b, TENANT),
        vec![(t.id.clone(), at(20_000))],
        "the overdue timer moved with the due time"
    );

    let mut elsewhere = moved_due.clone();
    elsewhere.record = "rec_2".into();
    elsewhere.version = 3;
    assert!(matches!(
        op(
            &*b,
            TENANT,
            Op::UpdateTask {
                task: elsewhere,
                expected: 2
            }
        ),
        Err(StoreError::Refused(_))
    ));

    let complete = |expected| Op::CompleteTask {
        id: t.id.clone(),
        by: person(),
        at: at(15_000),
        expected,
    };
    assert!(matches!(
        op(&*b, TENANT, complete(Some(1))),
        Err(StoreError::VersionConflict { .. })
    ));
    let done = op(&*b, TENANT, complete(Some(2)))
        .expect("completed")
        .task()
        .expect("the completed task");
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.version, 3);
    assert_eq!(done.completed_at, Some(at(15_000)));
    assert_eq!(done.completed_by, Some(person()));
    assert_eq!(get_task(&*b, TENANT, &t.id), Some(done));
    assert!(
        task_timers(&*b, TENANT).is_empty(),
        "completing the task cancelled its overdue timer"
    );
    assert!(matches!(
        op(&*b, TENANT, complete(None)),
        Err(StoreError::Refused(_))
    ));
    let missing = Op::CompleteTask {
        id: task_id(9, 9),
        by: person(),
        at: at(15_000),
        expected: None,
    };
    assert!(matches!(
        op(&*b, TENANT, missing),
        Err(StoreError::NotFound(_))
    ));
}

/// Every task list, the comments and the timeline page in their order with their cursor,
/// and never show another tenant's.
pub fn task_lists_page_in_order(open: Open<'_>) {
    let b = open();
    for t in [TENANT, OTHER] {
        tenant(&*b, t);
        let mut cs = Changeset::new(t);
        cs.records.push(put(&record("rec_1", None), None));
        cs.records.push(put(&record("rec_2", None), None));
        ok(&*b, &cs);
    }
    // Interleaved in time: events, tasks and comments of rec_1, and a task of rec_2.
    let mut expected_timeline = Vec::new();
    let mut ann = Vec::new();
    let mut all_tasks = Vec::new();
    for i in 0..5i64 {
        let ms = 100 * i;
        let e = event_id(ms, 1);
        let mut cs = Changeset::new(TENANT);
        cs.events.push(event(&e, Some("rec_1"), ms));
        ok(&*b, &cs);
        expected_timeline.push(e);
        let c = comment_id(ms + 10, 2);
        op(&*b, TENANT, add(&comment(&c, "rec_1", ms + 10))).expect("comment");
        expected_timeline.push(c);
        let who = if i % 2 == 0 { "ann" } else { "bob" };
        let t = task_id(ms + 20, 3);
        op(
            &*b,
            TENANT,
            create(&task(&t, "rec_1", ms + 20, None, Some(who))),
        )
        .expect("task");
        expected_timeline.push(t.clone());
        if who == "ann" {
            ann.push(t.clone());
        }
        all_tasks.push(t);
        let other = task_id(ms + 30, 4);
        op(
            &*b,
            TENANT,
            create(&task(&other, "rec_2", ms + 30, None, None)),
        )
        .expect("task");
        all_tasks.push(other);
    }
    // The same shapes in the other tenant, which must never show.
    op(
        &*b,
        OTHER,
        create(&task(&task_id(5, 9), "rec_1", 5, None, Some("ann"))),
    )
    .expect("other tenant's task");
    op(&*b, OTHER, add(&comment(&comment_id(5, 9), "rec_1", 5))).expect("other comment");

    let timeline = List::Timeline {
        tenant: TENANT.into(),
        record: "rec_1".into(),
    };
    for limit in [1, 2, 4, 100] {
        let (rows, pages) = walk(&*b, &timeline, limit);
        assert_eq!(
            row_ids(&rows),
            expected_timeline,
            "timeline, {limit} a page"
        );
        assert!(pages >= expected_timeline.len().div_ceil(limit));
    }
    let (rows, _) = walk(&*b, &timeline, 100);
    assert!(matches!(rows[0], Row::Timeline(TimelineItem::Event(_))));
    assert!(matches!(rows[1], Row::Timeline(TimelineItem::Comment(_))));
    assert!(matches!(rows[2], Row::Timeline(TimelineItem::Task(_))));

    let record_tasks = List::RecordTasks {
        tenant: TENANT.into(),
        record: "rec_1".into(),
    };
    let on_rec_1: Vec<String> = expected_timeline
        .iter()
        .filter(|id| id.starts_with("tsk_"))
        .cloned()
        .collect();
    assert_eq!(row_ids(&walk(&*b, &record_tasks, 2).0), on_rec_1);
    let comments = List::RecordComments {
        tenant: TENANT.into(),
        record: "rec_1".into(),
    };
    let on_rec_1: Vec<String> = expected_timeline
        .iter()
        .filter(|id| id.starts_with("cmt_"))
        .cloned()
        .collect();
    assert_eq!(row_ids(&walk(&*b, &comments, 2).0), on_rec_1);

    let by = |assignee: Option<&str>, status| TaskFilter {
        assignee: assignee.map(str::to_string),
        status,
        overdue_at: None,
    };
    assert_eq!(tasks(&*b, TENANT, by(Some("ann"), None), 1), ann);
    assert_eq!(tasks(&*b, TENANT, by(None, None), 3), all_tasks);
    // Completing one moves it behind the open ones, and out of the open list.
    let first = ann[0].clone();
    op(
        &*b,
        TENANT,
        Op::CompleteTask {
            id: first.clone(),
            by: person(),
            at: at(1_000),
            expected: None,
        },
    )
    .expect("completed");
    let mut ann_after: Vec<String> = ann[1..].to_vec();
    ann_after.push(first.clone());
    assert_eq!(tasks(&*b, TENANT, by(Some("ann"), None), 2), ann_after);
    assert_eq!(
        tasks(&*b, TENANT, by(Some("ann"), Some(TaskStatus::Open)), 1),
        ann[1..].to_vec()
    );
    assert_eq!(
        tasks(&*b, TENANT, by(Some("ann"), Some(TaskStatus::Done)), 1),
        vec![first.clone()]
    );
    assert_eq!(
        tasks(&*b, TENANT, by(None, Some(TaskStatus::Done)), 5),
        vec![first]
    );
    assert_eq!(
        tasks(&*b, TENANT, by(Some("carol"), None), 5),
        Vec::<String>::new()
    );
    assert_eq!(tasks(&*b, OTHER, by(None, None), 5), vec![task_id(5, 9)]);
}

/// Overdue lists hold the open tasks due at or before the time asked, by due time (per
/// tenant and per assignee); completing a task or moving its due time takes it out.
pub fn overdue_tasks_list_by_due_time(open: Open<'_>) {
    let b = open();
    tenant(&*b, TENANT);
    tenant(&*b, OTHER);
    for t in [TENANT, OTHER] {
        let mut cs = Changeset::new(t);
        cs.records.push(put(&record("rec_1", None), None));
        ok(&*b, &cs);
    }
    // Created in one order, due in another.
    let dues = [5_000i64, 1_000, 4_000, 2_000, 9_000];
    let mut made = Vec::new();
    for (i, due) in dues.iter().enumerate() {
        let id = task_id(i as i64, 1);
        let who = if i % 2 == 0 { "ann" } else { "bob" };
        let t = task(&id, "rec_1", i as i64, Some(*due), Some(who));
        op(&*b, TENANT, create(&t)).expect("task");
        made.push(t);
    }
    op(
        &*b,
        TENANT,
        create(&task(&task_id(9, 2), "rec_1", 9, None, Some("ann"))),
    )
    .expect("a task without a due time is never overdue");
    op(
        &*b,
        OTHER,
        create(&task(&task_id(9, 3), "rec_1", 9, Some(1), Some("ann"))),
    )
    .expect("the other tenant's overdue task");

    let ids = |idx: &[usize]| -> Vec<String> { idx.iter().map(|i| made[*i].id.clone()).collect() };
    // At 4 s: due 1 s, 2 s, 4 s, in due order.
    for limit in [1, 2, 10] {
        assert_eq!(
            tasks(&*b, TENANT, overdue(None, at(4_000)), limit),
            ids(&[1, 3, 2]),
            "{limit} a page"
        );
    }
    assert_eq!(
        tasks(&*b, TENANT, overdue(Some("ann"), at(4_000)), 1),
        ids(&[2])
    );
    assert_eq!(
        tasks(&*b, TENANT, overdue(Some("bob"), at(4_000)), 1),
        ids(&[1, 3])
    );
    assert_eq!(
        tasks(&*b, TENANT, overdue(None, at(999)), 1),
        Vec::<String>::new()
    );
    assert_eq!(
        tasks(&*b, TENANT, overdue(None, at(100_000)), 2),
        ids(&[1, 3, 2, 0, 4])
    );
    assert_eq!(
        tasks(&*b, OTHER, overdue(None, at(100_000)), 2),
        vec![task_id(9, 3)]
    );
    let done_and_overdue = TaskFilter {
        status: Some(TaskStatus::Done),
        ..overdue(None, at(100_000))
    };
    assert_eq!(
        tasks(&*b, TENANT, done_and_overdue, 2),
        Vec::<String>::new()
    );

    // Completing the 1 s task and moving the 2 s one to 8 s.
    op(
        &*b,
        TENANT,
        Op::CompleteTask {
            id: made[1].id.clone(),
            by: person(),
            at: at(4_500),
            expected: Some(1),
        },
    )
    .expect("completed");
    let mut later = made[3].clone();
    later.due_at = Some(at(8_000));
    later.version = 2;
    op(
        &*b,
        TENANT,
        Op::UpdateTask {
            task: later,
            expected: 1,
        },
    )
    .expect("moved");
    assert_eq!(tasks(&*b, TENANT, overdue(None, at(4_000)), 1), ids(&[2]));
    assert_eq!(
        tasks(&*b, TENANT, overdue(Some("bob"), at(9_000)), 1),
        ids(&[3])
    );
    let mut timers = task_timers(&*b, TENANT);
    timers.sort_by_key(|(_, due)| *due);
    assert_eq!(
        timers,
        vec![
            (made[2].id.clone(), at(4_000)),
            (made[0].id.clone(), at(5_000)),
            (made[3].id.clone(), at(8_000)),
            (made[4].id.clone(), at(9_000)),
        ],
        "one overdue timer per open task with a due time, at that time"
    );
}

/// Past a cap the op fails with `Limit` naming it, and nothing of its changeset is kept.
pub fn task_caps_hold(open: Open<'_>) {
    let b = open();
    tenant(&*b, TENANT);
    let mut cs = Changeset::new(TENANT);
    cs.records.push(put(&record("rec_1", None), None));
    cs.records.push(put(&record("rec_2", None), None));
    ok(&*b, &cs);
    let caps = TaskCaps {
        tasks_per_record: 2,
        open_tasks_per_tenant: 3,
        comments_per_record: 1,
    };
    let make = |id: String, record: &str| Op::CreateTask {
        task: task(&id, record, 1, None, None),
        caps,
    };
    op(&*b, TENANT, make(task_id(1, 1), "rec_1")).expect("first");
    op(&*b, TENANT, make(task_id(1, 2), "rec_1")).expect("second");
    match op(&*b, TENANT, make(task_id(1, 3), "rec_1")) {
        Err(StoreError::Limit(m)) => assert!(m.contains("per record"), "{m}"),
        other => panic!("a third task on a record must be refused, got {other:?}"),
    }
    op(&*b, TENANT, make(task_id(1, 4), "rec_2")).expect("third open task");
    let mut cs = Changeset::new(TENANT);
    cs.events.push(event(&event_id(2, 1), Some("rec_2"), 2));
    cs.ops.push(make(task_id(1, 5), "rec_2"));
    match commit1(&*b, &cs) {
        Err(StoreError::Limit(m)) => assert!(m.contains("open tasks"), "{m}"),
        other => panic!("a fourth open task must be refused, got {other:?}"),
    }
    let list = List::RecordEvents {
        tenant: TENANT.into(),
        record: "rec_2".into(),
    };
    assert!(walk(&*b, &list, 10).0.is_empty(), "the event went with it");
    assert_eq!(get_task(&*b, TENANT, &task_id(1, 5)), None);
    // Completing one frees room for another open task.
    op(
        &*b,
        TENANT,
        Op::CompleteTask {
            id: task_id(1, 4),
            by: person(),
            at: at(3),
            expected: None,
        },
    )
    .expect("completed");
    op(&*b, TENANT, make(task_id(1, 5), "rec_2")).expect("room again");

    let note = |id: String| Op::AddComment {
        comment: comment(&id, "rec_1", 1),
        caps,
    };
    op(&*b, TENANT, note(comment_id(1, 1))).expect("first comment");
    match op(&*b, TENANT, note(comment_id(1, 2))) {
        Err(StoreError::Limit(m)) => assert!(m.contains("comments"), "{m}"),
        other => panic!("a second comment must be refused, got {other:?}"),
    }
}
