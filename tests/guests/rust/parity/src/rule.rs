//! Makes the calls its config lists and logs how each one ended, carrying on past errors:
//! `{"ops": [{"move": "qualified"}, {"set": "score", "value": 70}, …]}` on the event's
//! record. The same source runs natively on the SDK's `MockHost` (tests/tests/parity.rs
//! includes this file) and as a component on the real host, so the two can be compared.
//!
//! Host API 0.2 ops: `{"create": "deal", "name": "…", "pipeline": "…", "stage": "…",
//! "fields": {…}}` (a `company`/`contact` field of `"$last"` links to the record created
//! last), `{"task": "title", "due_in": 60, "assignee": "…", "description": "…", "tags": […]}`
//! (on the event's record, or `"record"`), `{"complete": "$last"}` (the task created last,
//! or a task id), `{"comment": "body"}`; any op with `"times": n` is made n times and logs
//! one verdict, the first that is not ok.

use stagecraft_sdk::prelude::*;

pub struct Parity;

fn verdict<T>(r: Result<T, HostError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(HostError::NotFound(_)) => "not-found",
        Err(HostError::Denied(_)) => "denied",
        Err(HostError::Invalid(_)) => "invalid",
        Err(HostError::Limit(_)) => "limit",
    }
}

/// Ids this run created, for `$last`.
#[derive(Default)]
struct Made {
    record: Option<String>,
    task: Option<String>,
}

fn text(v: &serde_json::Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn one(
    ctx: &mut Ctx<'_>,
    id: &str,
    op: &serde_json::Value,
    made: &mut Made,
) -> Result<&'static str, String> {
    let last = |v: Option<String>, made: &Option<String>| match v.as_deref() {
        Some("$last") => made.clone(),
        _ => v,
    };
    Ok(if let Some(stage) = op["move"].as_str() {
        verdict(ctx.move_to(id, stage))
    } else if let Some(field) = op["set"].as_str() {
        verdict(ctx.set_field(id, field, &op["value"]))
    } else if let Some(kind) = op["create"].as_str() {
        let name = text(&op["name"]).unwrap_or_else(|| "New".into());
        let pipeline = text(&op["pipeline"]);
        let mut new = match kind {
            "lead" => NewRecord::lead(pipeline.unwrap_or_default(), name),
            "deal" => NewRecord::deal(pipeline.unwrap_or_default(), name),
            "contact" => NewRecord::contact(name),
            "company" => NewRecord::company(name),
            other => return Err(format!("no record kind {other:?}")),
        };
        if let Some(p) = op.get("pipeline") {
            new.pipeline = text(p);
        }
        if let Some(stage) = text(&op["stage"]) {
            new = new.stage(stage);
        }
        for (k, v) in op["fields"].as_object().into_iter().flatten() {
            let v = match last(text(v), &made.record) {
                Some(s) if v.is_string() => serde_json::Value::String(s),
                _ => v.clone(),
            };
            new = new.field(k, &v);
        }
        match ctx.create_record(new) {
            Ok(new_id) => {
                made.record = Some(new_id);
                "ok"
            }
            Err(e) => verdict::<()>(Err(e)),
        }
    } else if let Some(title) = op["task"].as_str() {
        let record = text(&op["record"]).unwrap_or_else(|| id.to_string());
        let mut task = NewTask::new(record, title);
        if let Some(s) = op["due_in"].as_u64() {
            task = task.due_in(s);
        }
        if let Some(a) = text(&op["assignee"]) {
            task = task.assignee(a);
        }
        if let Some(d) = text(&op["description"]) {
            task = task.description(d);
        }
        for t in op["tags"].as_array().into_iter().flatten() {
            task = task.tag(t.as_str().unwrap_or_default());
        }
        match ctx.create_task(task) {
            Ok(t) => {
                made.task = Some(t);
                "ok"
            }
            Err(e) => verdict::<()>(Err(e)),
        }
    } else if op.get("complete").is_some() {
        let task = last(text(&op["complete"]), &made.task).unwrap_or_default();
        verdict(ctx.complete_task(&task))
    } else if let Some(body) = op["comment"].as_str() {
        verdict(ctx.comment(id, body))
    } else {
        return Err(format!(
            "op is neither a move, set, create, task, complete nor comment: {op}"
        ));
    })
}

impl Rule for Parity {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let id = event.record()?.id.clone();
        let config = ctx.config_value();
        let ops = config["ops"].as_array().cloned().unwrap_or_default();
        let mut made = Made::default();
        for (i, op) in ops.iter().enumerate() {
            let mut result = "ok";
            for _ in 0..op["times"].as_u64().unwrap_or(1) {
                result = one(ctx, &id, op, &mut made)?;
                if result != "ok" {
                    break;
                }
            }
            ctx.info(format!("op {i}: {result}"));
        }
        Ok(())
    }
}
