//! The in-memory module cache is bounded (by versions and by bytes), an evicted version comes
//! back from its artifact on disk without a compile and runs as before, and a run in flight
//! keeps the version it started with even when the cache drops it.

#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use stagecraft::automation::source::StoreSource;
use stagecraft::config::Config;
use stagecraft::model::{Pipeline, Record, RecordFilter};
use stagecraft::sandbox::{
    CacheLimits, RecordSource, RunClass, RunInput, SandboxStats, SourceError,
};
use stagecraft_tests::{guest, json, temp_dir, Server, ADMIN_KEY};

/// `mover` plus a custom section naming `i`: a distinct module version (its own hash) with
/// the same code.
fn mover(i: u8) -> Vec<u8> {
    let name = b"stagecraft-test-variant";
    let mut out = guest("mover");
    out.push(0); // custom section id
    out.push((1 + name.len() + 1) as u8); // section size (one byte of LEB128: small)
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(i);
    out
}

fn config(dir: &std::path::Path, cache: CacheLimits) -> Config {
    let mut c = Config::new(dir);
    c.limits.module_cache = cache;
    c
}

async fn upload(s: &Server, i: u8) -> String {
    let r = s.upload(ADMIN_KEY, "mover", mover(i)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["hash"].as_str().unwrap().to_string()
}

/// Dry-runs `version` of `mover` on a fresh lead in `new`; asserts it moved it.
async fn runs_correctly(s: &Server, version: u64) {
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    let r = s
        .dry_run(ADMIN_KEY, "mover", version, json!({"record": id}))
        .await;
    assert_eq!(r.body["outcome"]["kind"], "ok", "v{version}: {:?}", r.body);
    assert_eq!(
        r.body["effects"],
        json!([{"type": "move_stage", "record": id, "from": "new", "to": "contacted"}]),
        "v{version}"
    );
}

fn stats(s: &Server) -> SandboxStats {
    s.state.sandbox.stats()
}

async fn metric(s: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = s
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_count_and_evicted_versions_return_from_their_artifacts() {
    let dir = temp_dir();
    let s = Server::start_with(config(
        dir.path(),
        CacheLimits {
            modules: 2,
            bytes: u64::MAX,
        },
    ))
    .await;
    for i in 1..=4 {
        upload(&s, i).await;
        let st = stats(&s);
        assert!(st.loaded <= 2, "after {i} uploads: {st:?}");
    }
    let st = stats(&s);
    assert_eq!(
        (st.loaded, st.evictions, st.compiles, st.artifact_loads),
        (2, 2, 4, 0),
        "versions 1 and 2 were dropped: {st:?}"
    );
    // Version 1 was dropped: it comes back from its artifact, not a compile, and runs right.
    runs_correctly(&s, 1).await;
    let st = stats(&s);
    assert_eq!(
        (st.loaded, st.evictions, st.compiles, st.artifact_loads),
        (2, 3, 4, 1),
        "{st:?}"
    );
    // Now it is held again: a second run loads nothing.
    runs_correctly(&s, 1).await;
    assert_eq!(stats(&s).artifact_loads, 1);
    // Every version still runs; the cache never holds more than two.
    for v in 1..=4 {
        runs_correctly(&s, v).await;
        assert!(stats(&s).loaded <= 2);
    }
    assert_eq!(stats(&s).compiles, 4, "nothing was compiled again");
    // Other tests in this process share the metrics recorder: at least ours are there.
    assert!(metric(&s, "stagecraft_module_evictions_total", &[]).await >= 3.0);
    assert!(
        metric(
            &s,
            "stagecraft_module_loads_total",
            &[("source", "artifact")]
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_bytes_counted_as_artifact_sizes() {
    // What one version counts for: its compiled image, the same bytes as its artifact.
    let probe = temp_dir();
    let s = Server::start(probe.path()).await;
    let hash = upload(&s, 1).await;
    let one = stats(&s).loaded_bytes;
    let artifact = |dir: &std::path::Path, hash: &str| {
        std::fs::metadata(dir.join(format!("modules/{hash}.cwasm")))
            .unwrap()
            .len()
    };
    assert_eq!(one, artifact(probe.path(), &hash));
    assert!(
        one > guest("mover").len() as u64 / 2,
        "{one} bytes is plausible"
    );

    let dir = temp_dir();
    let bound = 2 * one + one / 2;
    let s = Server::start_with(config(
        dir.path(),
        CacheLimits {
            modules: 100,
            bytes: bound,
        },
    ))
    .await;
    let mut hashes = Vec::new();
    for i in 1..=4 {
        hashes.push(upload(&s, i).await);
        let st = stats(&s);
        assert!(st.loaded_bytes <= bound, "{st:?}, bound {bound}");
    }
    for v in (1..=4).chain(1..=4) {
        runs_correctly(&s, v).await;
        let st = stats(&s);
        assert!(st.loaded_bytes <= bound && st.loaded <= 2, "{st:?}");
    }
    let st = stats(&s);
    assert_eq!(st.compiles, 4, "only the uploads compiled: {st:?}");
    assert!(st.evictions >= 8 && st.artifact_loads >= 6, "{st:?}");
    // Versions 3 and 4 ran last, reloaded from their artifacts: their sizes are the count.
    assert_eq!(
        st.loaded_bytes,
        artifact(dir.path(), &hashes[2]) + artifact(dir.path(), &hashes[3])
    );
}

/// The store's source, but `records.get` waits at a gate: the run stays in flight, in the
/// middle of its module's code, until the test opens it.
struct Gated {
    inner: Arc<dyn RecordSource>,
    entered: mpsc::SyncSender<()>,
    open: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl RecordSource for Gated {
    fn record(&self, id: &str) -> Result<Option<Record>, SourceError> {
        let _ = self.entered.try_send(());
        let _ = self
            .open
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(120));
        self.inner.record(id)
    }

    fn find(&self, filter: &RecordFilter, limit: usize) -> Result<Vec<Record>, SourceError> {
        self.inner.find(filter, limit)
    }

    fn pipeline(&self, id: &str) -> Result<Option<Pipeline>, SourceError> {
        self.inner.pipeline(id)
    }
}

#[tokio::test]
async fn a_run_in_flight_finishes_on_a_version_the_cache_dropped() {
    let dir = temp_dir();
    let s = Server::start_with(config(
        dir.path(),
        CacheLimits {
            modules: 1,
            bytes: u64::MAX,
        },
    ))
    .await;
    let first = upload(&s, 1).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let events = s.get(&format!("/v1/events?record={id}"), ADMIN_KEY).await;
    let event_id = events.body["events"][0]["id"].as_str().unwrap();
    let event = s.state.store.event("default", event_id).unwrap().unwrap();

    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (open, open_rx) = mpsc::channel();
    let source = Arc::new(Gated {
        inner: StoreSource::for_tenant(&s.state.store, "default"),
        entered: entered_tx,
        open: std::sync::Mutex::new(open_rx),
    });
    let module = s.state.sandbox.load(&first).unwrap();
    let sandbox = s.state.sandbox.clone();
    let run = std::thread::spawn(move || {
        sandbox.run(
            &module,
            RunInput {
                tenant: "default",
                class: RunClass::Background,
                source,
                event: &event,
                run_key: "run_in_flight".into(),
                config: "{}".into(),
                grants: Default::default(),
                pending: Vec::new(),
                deleted: Vec::new(),
                recorded_http: None,
            },
        )
    });
    entered
        .recv_timeout(Duration::from_secs(120))
        .expect("the run reaches records.get");
    // Version 2 takes the cache's only place while version 1 is mid-run.
    upload(&s, 2).await;
    let st = stats(&s);
    assert_eq!((st.loaded, st.evictions), (1, 1), "{st:?}");
    open.send(()).unwrap();
    let report = run.join().unwrap();
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    assert_eq!(
        serde_json::to_value(&report.effects).unwrap(),
        json!([{"type": "move_stage", "record": id, "from": "new", "to": "contacted"}])
    );
    // And it loads again, from its artifact, for the next run.
    runs_correctly(&s, 1).await;
    let st = stats(&s);
    assert_eq!((st.compiles, st.artifact_loads), (2, 1), "{st:?}");
}

/// `stagecraft serve` as a real process with `env`, on `data`; its base URL.
async fn serve(data: &std::path::Path, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncReadExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    // The timeout bounds a hang; it asserts no timing.
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut buf = [0u8; 4096];
        while !seen.contains("listening on ") || !seen.ends_with('\n') {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server exited before listening:\n{seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("the server listens within two minutes");
    let addr = seen
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    (child, format!("http://{addr}"))
}

/// One sample of `name` with `labels` from the `/metrics` of the server at `base`.
async fn scrape(http: &reqwest::Client, base: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn serve_takes_the_bound_from_its_environment_and_refuses_a_zero_bound() {
    let dir = temp_dir();
    let (child, base) = serve(
        &dir.path().join("data"),
        &[("STAGECRAFT_MODULE_CACHE_VERSIONS", "2")],
    )
    .await;
    let http = reqwest::Client::new();
    for i in 1..=4 {
        let r = http
            .post(format!("{base}/v1/modules/mover/versions"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/wasm")
            .body(mover(i))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let lead: serde_json::Value = http
        .post(format!("{base}/v1/records"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"kind": "lead", "name": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Round robin over the four versions, twice: each run finds its version dropped.
    for v in (1..=4).chain(1..=4) {
        let r: serde_json::Value = http
            .post(format!("{base}/v1/modules/mover/versions/{v}/dry-run"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"record": lead["id"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["outcome"]["kind"], "ok", "v{v}: {r}");
        let loaded = scrape(&http, &base, "stagecraft_modules_loaded", &[]).await;
        assert!((1.0..=2.0).contains(&loaded), "{loaded} versions loaded");
    }
    let count = |name, labels| {
        let (http, base) = (&http, &base);
        async move { scrape(http, base, name, labels).await }
    };
    assert_eq!(count("stagecraft_module_compiles_total", &[]).await, 4.0);
    assert_eq!(
        count("stagecraft_module_loads_total", &[("source", "artifact")]).await,
        8.0,
        "every run reloaded its version from its artifact"
    );
    assert_eq!(count("stagecraft_module_evictions_total", &[]).await, 10.0);
    drop(child);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--module-cache-versions", "0", "--data-dir"])
        .arg(dir.path().join("refused"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--module-cache-versions"), "{stderr}");
    assert!(!dir.path().join("refused").exists(), "nothing was created");
}
