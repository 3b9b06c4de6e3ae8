//! `stagecraft enable`: put a module version to work on a pipeline. Creates the module's
//! binding there, or — when it already has one — switches that binding to the version (and
//! any options given), which is also how a rollback is done.

use serde_json::{json, Map, Value};

use super::client::{typed, Client};
use super::syntax::{grants_json, json_object, put};
use super::{table, CliError, EnableArgs};
use crate::model::{Binding, Pipeline};

/// Creates or updates the binding of `a.module` on `a.pipeline`.
pub async fn enable(client: &Client, a: EnableArgs) -> Result<(), CliError> {
    let json = a.conn.json;
    let config = a
        .config
        .as_deref()
        .map(|c| json_object(c, "--config"))
        .transpose()
        .map_err(CliError::Usage)?;
    let pipeline = pipeline(client, &a.pipeline).await?;
    let existing = match &a.binding {
        Some(id) => {
            let b: Binding = typed(&client.get(&["v1", "bindings", id], &[]).await?, "binding")?;
            if b.module != a.module.name || b.pipeline != pipeline.id {
                return Err(CliError::Failed(format!(
                    "binding {id} runs {} on pipeline {}, not {} on {}",
                    b.module, b.pipeline, a.module.name, pipeline.id
                )));
            }
            Some(b)
        }
        None => {
            let v = client
                .get(&["v1", "bindings"], &[("pipeline", pipeline.id.clone())])
                .await?;
            let mut all: Vec<Binding> = typed(&v["bindings"], "binding list")?;
            all.retain(|b| b.module == a.module.name);
            if all.len() > 1 {
                let ids: Vec<&str> = all.iter().map(|b| b.id.as_str()).collect();
                return Err(CliError::Failed(format!(
                    "module {} has {} bindings on pipeline {}: pick one with --binding ({})",
                    a.module.name,
                    all.len(),
                    pipeline.id,
                    ids.join(", ")
                )));
            }
            all.pop()
        }
    };

    let mut body = Map::new();
    body.insert("version".into(), json!(a.module.version));
    put(&mut body, "mode", a.mode.map(Value::from));
    put(&mut body, "order", a.order.map(Value::from));
    put(&mut body, "config", config);
    if !a.on.is_empty() {
        body.insert(
            "triggers".into(),
            Value::Array(a.on.into_iter().map(|t| t.0).collect()),
        );
    }
    if !a.grants.is_empty() {
        body.insert("grants".into(), grants_json(&a.grants));
    }
    let (v, previous) = match &existing {
        Some(b) => {
            body.insert("enabled".into(), json!(true));
            body.insert("revision".into(), json!(b.revision));
            let v = client
                .patch(&["v1", "bindings", &b.id], &Value::Object(body))
                .await?;
            (v, Some(b))
        }
        None => {
            body.insert("pipeline".into(), json!(pipeline.id));
            body.insert("module".into(), json!(a.module.name));
            (
                client
                    .post(&["v1", "bindings"], &Value::Object(body))
                    .await?,
                None,
            )
        }
    };
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let b: Binding = typed(&v, "binding")?;
    let how = match previous {
        Some(p) if p.version != b.version => format!("switched from version {}", p.version),
        Some(_) => "updated".to_string(),
        None => "new binding".to_string(),
    };
    outln!(
        "enabled {}@{} on pipeline {} ({how}; binding {}, revision {})",
        b.module,
        b.version,
        b.pipeline,
        b.id,
        b.revision
    );
    let mode = serde_json::to_value(b.mode)
        .ok()
        .and_then(|m| m.as_str().map(String::from))
        .unwrap_or_default();
    let triggers: Vec<String> = b.triggers.iter().map(|t| trigger(&json!(t))).collect();
    outln!("mode     {mode}");
    outln!("on       {}", triggers.join(", "));
    outln!("config   {}", b.config);
    outln!(
        "grants   fields [{}], channels [{}], backward moves {}",
        b.grants.fields.join(", "),
        b.grants
            .channels
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if b.grants.backward { "yes" } else { "no" }
    );
    Ok(())
}

/// The pipeline whose id, or else name (any case), is `wanted`.
async fn pipeline(client: &Client, wanted: &str) -> Result<Pipeline, CliError> {
    let v = client.get(&["v1", "pipelines"], &[]).await?;
    let all: Vec<Pipeline> = typed(&v["pipelines"], "pipeline list")?;
    if let Some(p) = all.iter().find(|p| p.id == wanted) {
        return Ok(p.clone());
    }
    let by_name: Vec<&Pipeline> = all
        .iter()
        .filter(|p| p.name.eq_ignore_ascii_case(wanted))
        .collect();
    match by_name.as_slice() {
        [p] => Ok((*p).clone()),
        [] => {
            let known: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
            Err(CliError::Failed(format!(
                "no pipeline with id or name {wanted:?} (pipelines: {})",
                known.join(", ")
            )))
        }
        many => Err(CliError::Failed(format!(
            "{} pipelines are named {wanted:?}; give the id ({})",
            many.len(),
            many.iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A trigger back in `--on` form.
fn trigger(t: &Value) -> String {
    let on = t["on"].as_str().unwrap_or("?");
    let mut s = match on {
        "entered_stage" => format!("entered_stage:{}", t["stage"].as_str().unwrap_or("")),
        "inbound" => format!("inbound:{}", t["name"].as_str().unwrap_or("")),
        "updated" => match t["fields"].as_array() {
            Some(f) if !f.is_empty() => format!(
                "updated:{}",
                f.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => "updated".into(),
        },
        other => other.to_string(),
    };
    if let Some(d) = t["delay_seconds"].as_u64().filter(|d| *d > 0) {
        let (n, unit) = match d {
            d if d % 86_400 == 0 => (d / 86_400, "d"),
            d if d % 3600 == 0 => (d / 3600, "h"),
            d if d % 60 == 0 => (d / 60, "m"),
            d => (d, "s"),
        };
        s.push_str(&format!("+{n}{unit}"));
    }
    s
}
