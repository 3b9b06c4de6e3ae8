//! Section 3: record stage changes per second over HTTP on loopback, from this process as
//! the client against the real server binary in another process, with concurrency: a
//! pipeline with no bindings beside the same pipeline with one inline binding.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::fixture::{self, CONFIG};
use crate::sample::{row_of, Samples};

const KEY: &str = "bench-admin-key-0123456789";

struct ServerProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> ServerProcess {
    let dir = tempfile::Builder::new()
        .prefix("stagecraft-bench-http-")
        .tempdir()
        .expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("STAGECRAFT_BOOTSTRAP_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("stdout");
    let mut url = None;
    for line in BufReader::new(stdout).lines().take(20) {
        let line = line.expect("server output");
        if let Some(addr) = line.strip_prefix("listening on ") {
            url = Some(format!("http://{addr}"));
            break;
        }
    }
    ServerProcess {
        child,
        url: url.expect("the server printed its address"),
        _dir: dir,
    }
}

async fn call(c: &reqwest::Client, url: String, body: Value) -> Value {
    let r = c
        .post(url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// Moves `records` back and forth `moves` times in total from `concurrency` client tasks,
/// each owning a share of the records; returns every move's latency.
async fn phase(
    c: &reqwest::Client,
    base: &str,
    records: &[String],
    moves: usize,
    concurrency: usize,
) -> Samples {
    let records = Arc::new(records.to_vec());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (c, base, records) = (c.clone(), base.to_string(), records.clone());
        tasks.push(tokio::spawn(async move {
            let mine: Vec<&String> = records.iter().skip(t).step_by(concurrency).collect();
            let mut at_new = vec![true; mine.len()];
            let mut lat = Vec::new();
            for i in 0..moves / concurrency {
                let j = i % mine.len();
                let stage = if at_new[j] { "working" } else { "new" };
                at_new[j] = !at_new[j];
                let t0 = Instant::now();
                call(
                    &c,
                    format!("{base}/v1/records/{}/stage", mine[j]),
                    json!({ "stage": stage }),
                )
                .await;
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut each = Vec::new();
    for t in tasks {
        each.extend(t.await.expect("client task"));
    }
    Samples::from(each, start.elapsed())
}

pub fn section(moves: usize, concurrency: usize, records_per_pipeline: usize) {
    println!(
        "\n## 3. End to end: stage changes over HTTP on loopback, {moves} moves, {concurrency} concurrent clients"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let server = start_server();
        let base = server.url.clone();
        let c = reqwest::Client::new();
        let stages = json!([
            {"id": "new", "name": "New", "semantic": "open"},
            {"id": "working", "name": "Working", "semantic": "open"},
            {"id": "won", "name": "Won", "semantic": "won"},
            {"id": "lost", "name": "Lost", "semantic": "lost"}]);
        for p in ["plain", "bound"] {
            call(
                &c,
                format!("{base}/v1/pipelines"),
                json!({"id": p, "name": p, "kind": "lead", "stages": stages}),
            )
            .await;
        }
        let r = c
            .post(format!("{base}/v1/modules/lead-scoring/versions"))
            .bearer_auth(KEY)
            .header("content-type", "application/wasm")
            .body(fixture::rust_component())
            .send()
            .await
            .expect("upload");
        assert!(r.status().is_success(), "upload: {}", r.status());
        call(
            &c,
            format!("{base}/v1/bindings"),
            json!({"pipeline": "bound", "module": "lead-scoring", "version": 1, "mode": "inline",
                   "triggers": [{"on": "stage_changed"}],
                   "config": serde_json::from_str::<Value>(CONFIG).expect("config"),
                   "grants": {"fields": ["score", "owner"], "channels": ["notify"]}}),
        )
        .await;
        // Cold leads already scored: the rule reads its config and the lead, logs the score
        // and changes nothing, so every move runs it the same way. Enough records that none
        // reaches the per-record rate guard (120 runs a minute).
        let mut ids = std::collections::BTreeMap::new();
        for p in ["plain", "bound"] {
            let mut v = Vec::new();
            for i in 0..records_per_pipeline {
                let r = call(
                    &c,
                    format!("{base}/v1/records"),
                    json!({"kind": "lead", "name": format!("{p} {i}"), "pipeline": p,
                           "custom": {"score": 0}}),
                )
                .await;
                v.push(r["id"].as_str().expect("id").to_string());
            }
            ids.insert(p, v);
        }
        let warm = (moves / 10).max(concurrency);
        let mut results = Vec::new();
        for p in ["plain", "bound"] {
            phase(&c, &base, &ids[p], warm, concurrency).await;
            results.push(phase(&c, &base, &ids[p], moves, concurrency).await);
        }
        // The bound pipeline's moves really ran the rule inline, every one of them.
        let runs = c
            .get(format!("{base}/v1/runs?module=lead-scoring&limit=1"))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("runs")
            .json::<Value>()
            .await
            .expect("json");
        assert_eq!(runs["runs"][0]["outcome"]["kind"], "ok", "{runs}");
        let (plain, bound) = (&results[0], &results[1]);
        println!(
            "{}",
            row_of("moves", "(a) pipeline without bindings", plain)
        );
        println!(
            "{}",
            row_of("moves", "(b) same pipeline, one inline binding", bound)
        );
        println!(
            "  ratio (b)/(a) throughput: {:.2}   p50 {:+.0} µs with the binding",
            bound.per_sec() / plain.per_sec(),
            (bound.p50().as_secs_f64() - plain.p50().as_secs_f64()) * 1e6
        );
        drop(server);
    });
}
