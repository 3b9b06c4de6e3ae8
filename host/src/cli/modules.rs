//! `stagecraft push` (upload a component as a module's next version, streamed with a
//! progress bar), `stagecraft modules` (what is uploaded, and which version runs where) and
//! `stagecraft dry-run` (run a version against real data, commit nothing).

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use super::client::{typed, Client};
use super::syntax::{grants_json, json_object, put};
use super::{runs, table, CliError, DryRunArgs};
use crate::model::{Binding, Effect, Event, HostCall, LogLine, Module, ModuleVersion, Outcome};

const CHUNK: usize = 64 * 1024;

/// Uploads `file` as the next version of `module` and prints what the server recorded.
pub async fn push(client: &Client, file: &Path, module: &str, json: bool) -> Result<(), CliError> {
    let failed = |e: std::io::Error| CliError::Failed(format!("{}: {e}", file.display()));
    let f = tokio::fs::File::open(file).await.map_err(failed)?;
    let len = f.metadata().await.map_err(failed)?.len();
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "uploading {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(module.to_string());
        bar
    };
    let stream = futures_util::stream::unfold(Some((f, bar.clone())), |state| async move {
        let (mut f, bar) = state?;
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => {
                bar.set_message("compiling");
                None
            }
            Ok(n) => {
                buf.truncate(n);
                bar.inc(n as u64);
                Some((Ok::<_, std::io::Error>(buf), Some((f, bar))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let result = client
        .upload(
            &["v1", "modules", module, "versions"],
            reqwest::Body::wrap_stream(stream),
            len,
            "application/wasm",
        )
        .await;
    bar.finish_and_clear();
    let v = result?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let mv: ModuleVersion = typed(&v, "module version")?;
    outln!(
        "pushed {}@{}  sha256:{}  {}  {}",
        mv.module,
        mv.version,
        mv.hash,
        table::bytes(mv.size),
        mv.language.as_deref().unwrap_or("language unknown")
    );
    Ok(())
}

/// What `POST …/dry-run` answers.
#[derive(Deserialize)]
struct DryRunView {
    event: Event,
    outcome: Outcome,
    effects: Vec<Effect>,
    logs: Vec<LogLine>,
    host_calls: Vec<HostCall>,
    fuel_used: u64,
    peak_memory: u64,
    duration_us: u64,
}

/// Runs `module@version` on a record or past event and prints what it would do.
pub async fn dry_run(client: &Client, a: DryRunArgs) -> Result<(), CliError> {
    let json = a.conn.json;
    let kind = a
        .kind
        .map(|k| json_object(&k, "--kind"))
        .transpose()
        .map_err(CliError::Usage)?;
    let inbound = kind.as_ref().is_some_and(|k| k["type"] == "inbound");
    if a.record.is_none() && a.event.is_none() && !inbound {
        return Err(CliError::Usage(format!(
            "dry-run {} needs --record REC_ID (run on that record now) or --event EVENT_ID \
             (replay a past event); only an inbound --kind needs neither",
            a.module
        )));
    }
    let mut body = Map::new();
    put(&mut body, "record", a.record.map(Value::from));
    put(&mut body, "event", a.event.map(Value::from));
    put(&mut body, "kind", kind);
    put(
        &mut body,
        "config",
        a.config
            .map(|c| json_object(&c, "--config"))
            .transpose()
            .map_err(CliError::Usage)?,
    );
    if !a.grants.is_empty() {
        body.insert("grants".into(), grants_json(&a.grants));
    }
    let version = a.module.version.to_string();
    let v = client
        .post(
            &[
                "v1",
                "modules",
                &a.module.name,
                "versions",
                &version,
                "dry-run",
            ],
            &json!(body),
        )
        .await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let r: DryRunView = typed(&v, "dry-run result")?;
    outln!("dry-run of {} (nothing committed, nothing sent)", a.module);
    outln!(
        "event    {} {}{}",
        r.event.id,
        r.event.kind.name(),
        r.event
            .record
            .as_ref()
            .map(|rec| format!(" on {rec}"))
            .unwrap_or_default()
    );
    runs::print_report(&runs::Report {
        outcome: &r.outcome,
        effects: &r.effects,
        discarded: &[],
        logs: &r.logs,
        host_calls: &r.host_calls,
        fuel_used: r.fuel_used,
        peak_memory: r.peak_memory,
        duration_us: r.duration_us,
    });
    Ok(())
}

/// Lists the modules, or `name`'s versions with the bindings that run each.
pub async fn list(client: &Client, name: Option<&str>, json: bool) -> Result<(), CliError> {
    let Some(name) = name else {
        let v = client.get(&["v1", "modules"], &[]).await?;
        if json {
            table::print_json(&v);
            return Ok(());
        }
        let modules: Vec<Module> = typed(&v["modules"], "module list")?;
        let mut t = table::new(&["MODULE", "LATEST", "UPDATED"]);
        for m in &modules {
            t.add_row([
                m.name.clone(),
                m.latest.to_string(),
                table::time(&m.updated_at),
            ]);
        }
        table::print(&t, "no modules");
        return Ok(());
    };
    let v = client.get(&["v1", "modules", name], &[]).await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let versions: Vec<ModuleVersion> = typed(&v["versions"], "module version list")?;
    let bindings: Vec<Binding> = typed(
        &client.get(&["v1", "bindings"], &[]).await?["bindings"],
        "binding list",
    )?;
    let mut t = table::new(&[
        "VERSION",
        "UPLOADED",
        "SIZE",
        "LANGUAGE",
        "SHA256",
        "ENABLED ON",
    ]);
    for mv in versions.iter().rev() {
        let on: Vec<String> = bindings
            .iter()
            .filter(|b| b.module == mv.module && b.version == mv.version)
            .map(|b| {
                let paused = if b.enabled { "" } else { " (paused)" };
                format!("{} ({}){paused}", b.pipeline, b.id)
            })
            .collect();
        t.add_row([
            format!("{}@{}", mv.module, mv.version),
            table::time(&mv.uploaded_at),
            table::bytes(mv.size),
            mv.language.clone().unwrap_or_else(|| "-".into()),
            mv.hash.chars().take(12).collect(),
            if on.is_empty() {
                "-".into()
            } else {
                on.join(", ")
            },
        ]);
    }
    table::print(&t, "no versions");
    Ok(())
}
