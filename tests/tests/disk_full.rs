//! A full disk heals: with its data on a small filesystem, a real server answers every request
//! with 503 `storage_unavailable` ("the disk is full") once a write meets the full disk, and
//! serves again without a restart once space is freed, and keeps every write it acknowledged before,
//! during and after — also across a SIGKILL and restart. Record, journal and pipeline (a
//! cached value) are checked to agree, so nothing was half-applied or served stale. Module
//! uploads, whose artifacts share the disk, get the same answer.
//!
//! Two ways to fill a disk, both run:
//! - a 16 MiB tmpfs in a private mount namespace (needs root: `unshare`, `mount`, `nsenter`),
//!   filled with a ballast file that is deleted to free space. Where it cannot be mounted the
//!   test says so on stderr and skips (`STAGECRAFT_TEST_REQUIRE_MOUNT=1` makes that a failure);
//! - a file-size limit on the server process (RLIMIT_FSIZE, set and raised with `prlimit`, with
//!   SIGXFSZ ignored so writes fail with EFBIG like a full disk), which needs no privileges.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stagecraft_tests::{temp_dir, ADMIN_KEY};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const TMPFS_SIZE: &str = "16m";

/// Where the server's data lives and how its disk is filled and freed.
enum Disk {
    /// A tmpfs mounted at `mnt` in the mount namespace of `holder` (a `sleep`); servers enter
    /// that namespace with `nsenter`, the test reaches the files through `/proc/{holder}/root`.
    Tmpfs {
        holder: Box<Child>,
        mnt: PathBuf,
        _dir: tempfile::TempDir,
    },
    /// A plain temp dir; "full" is a soft file-size limit on the server process.
    FileSize { dir: tempfile::TempDir },
}

impl Disk {
    async fn tmpfs() -> Result<Disk, String> {
        let dir = temp_dir();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        runs("nsenter", "--version").await?;
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={TMPFS_SIZE} stagecraft-test \"$0\" && echo mounted && exec sleep 600"
            ))
            .arg(&mnt)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut out = BufReader::new(holder.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), out.next_line())
            .await
            .map_err(|_| "unshare and mount did not answer within 30 s".to_string())?;
        if !matches!(line, Ok(Some(ref l)) if l == "mounted") {
            let mut err = String::new();
            if let Some(mut e) = holder.stderr.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut err)).await;
            }
            return Err(format!("cannot mount a tmpfs: {}", err.trim()));
        }
        Ok(Disk::Tmpfs {
            holder: Box::new(holder),
            mnt,
            _dir: dir,
        })
    }

    async fn file_size() -> Result<Disk, String> {
        runs("prlimit", "--version").await?;
        Ok(Disk::FileSize { dir: temp_dir() })
    }

    /// The data dir as the server sees it.
    fn data_dir(&self) -> PathBuf {
        match self {
            Disk::Tmpfs { mnt, .. } => mnt.join("data"),
            Disk::FileSize { dir } => dir.path().join("data"),
        }
    }

    /// The tmpfs as the test sees it (from outside the namespace).
    fn view(&self) -> PathBuf {
        match self {
            Disk::Tmpfs { holder, mnt, .. } => {
                let root = format!("/proc/{}/root", holder.id().unwrap());
                Path::new(&root).join(mnt.strip_prefix("/").unwrap())
            }
            Disk::FileSize { dir } => dir.path().to_path_buf(),
        }
    }

    fn command(&self) -> Command {
        let bin = env!("CARGO_BIN_EXE_stagecraft-server");
        let mut c = match self {
            Disk::Tmpfs { holder, .. } => {
                // Without --pid, nsenter execs the server: the child is the server.
                let mut c = Command::new("nsenter");
                c.arg(format!("--target={}", holder.id().unwrap()))
                    .args(["--mount", "--", bin]);
                c
            }
            Disk::FileSize { .. } => {
                // An ignored SIGXFSZ stays ignored across exec: writes past the limit fail
                // with EFBIG instead of killing the server.
                let mut c = Command::new("sh");
                c.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\"", bin]);
                c
            }
        };
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir());
        c
    }

    async fn fill(&self, server: &Proc) {
        match self {
            Disk::Tmpfs { .. } => {
                let path = self.view().join("ballast");
                tokio::task::spawn_blocking(move || {
                    let mut f = std::fs::File::create(&path).unwrap();
                    let chunk = vec![7u8; 64 * 1024];
                    // Bounded: the tmpfs holds 16 MiB.
                    for _ in 0..1024 {
                        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
                            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                            return;
                        }
                    }
                    panic!("the ballast never filled the tmpfs");
                })
                .await
                .unwrap();
            }
            Disk::FileSize { .. } => {
                // The log's current size: sled appends, so its next write does not fit, and
                // (below 1 MiB) neither does the store's space probe before a reopen.
                let log = self.data_dir().join("db").join("db");
                let size = std::fs::metadata(&log).unwrap().len();
                assert!(size < 1 << 20, "{size}");
                prlimit(server, &format!("{size}:")).await;
            }
        }
    }

    async fn free(&self, server: &Proc) {
        match self {
            Disk::Tmpfs { .. } => std::fs::remove_file(self.view().join("ballast")).unwrap(),
            Disk::FileSize { .. } => prlimit(server, "unlimited:").await,
        }
    }
}

/// Fails with a reason unless `program arg` runs.
async fn runs(program: &str, arg: &str) -> Result<(), String> {
    let out = Command::new(program)
        .arg(arg)
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {arg} failed: {}", out.status))
    }
}

async fn prlimit(server: &Proc, fsize: &str) {
    let out = Command::new("prlimit")
        .arg(format!("--pid={}", server.pid))
        .arg(format!("--fsize={fsize}"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "prlimit --fsize={fsize}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Says on stderr, past the test harness's capture, why a test did not run.
fn skip(test: &str, reason: &str) {
    if std::env::var_os("STAGECRAFT_TEST_REQUIRE_MOUNT").is_some_and(|v| v == "1") {
        panic!("{test}: {reason} (STAGECRAFT_TEST_REQUIRE_MOUNT=1)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// The real server as a child process; killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    pid: u32,
    base: String,
    client: reqwest::Client,
}

async fn spawn(disk: &Disk, log: &Arc<Mutex<Vec<String>>>) -> Proc {
    let mut child = disk
        .command()
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn,stagecraft_store=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let pid = child.id().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = err.next_line().await {
            // Shown when the test fails.
            println!("server: {l}");
            log2.lock().unwrap().push(l);
        }
    });
    let base = stagecraft_tests::listening(&mut child).await;
    Proc {
        child,
        pid,
        base,
        // No pooled connections: an upload refused before its body was read leaves the server
        // closing that connection, which a pooled next request could race.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    }
}

impl Proc {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request reaches the server");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Uploads the test guest `guest` as a version of module `guest`.
    async fn upload(&self, guest: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/v1/modules/{guest}/versions", self.base))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/wasm")
            .body(stagecraft_tests::guest(guest))
            .send()
            .await
            .expect("upload reaches the server");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Whether `(status, body)` is the store's answer to a full disk; panics on any other
/// failure.
fn refused_for_full_disk(what: &str, status: StatusCode, body: &Value) -> bool {
    if status.is_success() {
        return false;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(
        body["error"]["code"], "storage_unavailable",
        "{what}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("disk is full"), "{what}: {message}");
    true
}

/// What the server acknowledged.
#[derive(Default)]
struct Acked {
    /// Record id and name.
    records: Vec<(String, String)>,
    /// The `n` of every acknowledged PATCH of the counter record.
    counts: Vec<u64>,
    pipeline_name: String,
}

/// Write number `i`: a new record, a PATCH of the counter record, or a pipeline rename (by
/// `i % 3`). False when the disk refused it.
async fn write(p: &Proc, i: u64, counter: &str, acked: &mut Acked) -> bool {
    match i % 3 {
        0 => {
            let name = format!("Lead {i} {}", "x".repeat(400));
            let body = json!({"kind": "lead", "name": name});
            let (s, b) = p.call(Method::POST, "/v1/records", Some(body)).await;
            if refused_for_full_disk("create", s, &b) {
                return false;
            }
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let id = b["id"].as_str().unwrap().to_string();
            acked.records.push((id, name));
        }
        1 => {
            let path = format!("/v1/records/{counter}");
            let body = json!({"custom": {"n": i}});
            let (s, b) = p.call(Method::PATCH, &path, Some(body)).await;
            if refused_for_full_disk("update", s, &b) {
                return false;
            }
            assert_eq!(s, StatusCode::OK, "{b}");
            acked.counts.push(i);
        }
        _ => {
            let name = format!("Leads {i}");
            let body = json!({"name": name});
            let (s, b) = p
                .call(Method::PATCH, "/v1/pipelines/leads", Some(body))
                .await;
            if refused_for_full_disk("pipeline rename", s, &b) {
                return false;
            }
            assert_eq!(s, StatusCode::OK, "{b}");
            acked.pipeline_name = name;
        }
    }
    true
}

/// Everything acknowledged is there, the counter record and its journal agree, and the
/// (cached) pipeline is what was last acknowledged. Every acknowledged record's delayed
/// background run happens, once, whenever the disk let it.
async fn verify(p: &Proc, counter: &str, binding: &str, acked: &Acked) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let path = format!("/v1/runs?binding={binding}&limit=200");
        let (s, b) = p.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let runs = b["runs"].as_array().unwrap();
        assert!(runs.iter().all(|r| r["outcome"]["kind"] == "ok"), "{b}");
        let ran = |id: &str| runs.iter().filter(|r| r["record"] == id).count();
        let done = acked.records.iter().filter(|(id, _)| ran(id) > 0).count();
        assert!(
            acked.records.iter().all(|(id, _)| ran(id) <= 1),
            "one run per record: {b}"
        );
        if done == acked.records.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} background runs after 120 s",
            acked.records.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, name) in &acked.records {
        let (s, b) = p
            .call(Method::GET, &format!("/v1/records/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "acknowledged record {id} is there: {b}");
        assert_eq!(b["name"].as_str(), Some(name.as_str()));
        assert_eq!(b["custom"]["processed"], true, "{id} was processed");
    }
    let (s, rec) = p
        .call(Method::GET, &format!("/v1/records/{counter}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{rec}");
    let mut journaled = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/events?record={counter}&limit=500{after}");
        let (s, b) = p.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for e in b["events"].as_array().unwrap() {
            if e["type"] == "updated" {
                // The background run's update carries whatever `n` was then (maybe none).
                journaled.push(e["snapshot"]["custom"]["n"].as_u64());
            }
        }
        match b["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(
        rec["version"].as_u64().unwrap(),
        1 + journaled.len() as u64,
        "the record and its journal agree: nothing half-applied"
    );
    for n in &acked.counts {
        let n = Some(*n);
        assert!(
            journaled.contains(&n),
            "acknowledged update {n:?} is journaled"
        );
    }
    assert_eq!(
        rec["custom"]["n"].as_u64(),
        journaled.last().copied().flatten()
    );
    let (s, b) = p.call(Method::GET, "/v1/pipelines/leads", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"].as_str(), Some(acked.pipeline_name.as_str()));
    let (s, b) = p
        .call(Method::GET, "/v1/modules/mover/versions/1", None)
        .await;
    assert_eq!(s, StatusCode::OK, "the module uploaded after healing: {b}");
    let (s, b) = p
        .call(Method::GET, "/v1/modules/mover/versions/2", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "one version only: {b}");
}

async fn full_disk_heals(disk: Disk) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut p = spawn(&disk, &log).await;
    let mut acked = Acked::default();
    // Every record created gets a background run 2 s later: a timer, then a job, both
    // acknowledged with the record, that may come due while the disk is full.
    let (s, b) = p.upload("effector").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let body = json!({"pipeline": "leads", "module": "effector", "version": 1,
        "mode": "background", "triggers": [{"on": "created", "delay_seconds": 2}],
        "config": {"field": "processed", "value": true}, "grants": {"fields": ["processed"]}});
    let (s, b) = p.call(Method::POST, "/v1/bindings", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let binding = b["id"].as_str().unwrap().to_string();
    let body = json!({"kind": "lead", "name": "Counter"});
    let (s, b) = p.call(Method::POST, "/v1/records", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let counter = b["id"].as_str().unwrap().to_string();
    acked.records.push((counter.clone(), "Counter".into()));
    let mut i = 0;
    while i < 11 {
        assert!(write(&p, i, &counter, &mut acked).await, "write {i} before");
        i += 1;
    }

    // Full: writes are acknowledged until the first one is refused by name. They start with
    // a pipeline rename: where the first write is refused (the file-size limit), that is the
    // rename, whose change sled holds in memory until the store reopens; the checks after
    // healing see that nothing serves it.
    disk.fill(&p).await;
    let filled_at = i;
    let before = acked.records.len() + acked.counts.len();
    while write(&p, i, &counter, &mut acked).await {
        i += 1;
        assert!(i < filled_at + 3000, "no write was refused on a full disk");
    }
    i += 1;
    let during = acked.records.len() + acked.counts.len() - before;

    // Every kind of write is refused while the disk stays full, and so are reads: the failed
    // database would show the write that met the full disk, which the reopen drops.
    for _ in 0..3 {
        assert!(
            !write(&p, i, &counter, &mut acked).await,
            "write {i} while full"
        );
        i += 1;
    }
    let body = json!({"role": "agent", "name": "while full"});
    let (s, b) = p.call(Method::POST, "/v1/keys", Some(body)).await;
    assert!(refused_for_full_disk("new key", s, &b), "{s} {b}");
    // A module upload writes its artifact beside the database first: the same answer.
    let (s, b) = p.upload("mover").await;
    assert!(refused_for_full_disk("upload", s, &b), "{s} {b}");
    for path in [
        format!("/v1/records/{counter}"),
        "/v1/pipelines/leads".into(),
    ] {
        let (s, b) = p.call(Method::GET, &path, None).await;
        assert!(refused_for_full_disk("read", s, &b), "{s} {b}");
    }

    // Freed: writes are accepted again without a restart (the store retries every 2 s).
    disk.free(&p).await;
    let freed = Instant::now();
    loop {
        // Record creates only, so the counter's journal stays easy to read.
        let n = 3 * i;
        i += 1;
        if write(&p, n, &counter, &mut acked).await {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(60),
            "writes still refused 60 s after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed_after = freed.elapsed();
    for _ in 0..6 {
        assert!(
            write(&p, i, &counter, &mut acked).await,
            "write {i} after healing"
        );
        i += 1;
    }
    let (s, b) = p.upload("mover").await;
    assert_eq!(s, StatusCode::CREATED, "upload after healing: {b}");
    assert_eq!(b["version"], 1, "the refused upload made no version");
    verify(&p, &counter, &binding, &acked).await;

    // And it is all on disk: SIGKILL, start again on the same data.
    p.child.kill().await.unwrap();
    let p = spawn(&disk, &log).await;
    verify(&p, &counter, &binding, &acked).await;
    assert!(
        write(&p, i, &counter, &mut acked).await,
        "write after restart"
    );
    let lines = log.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("storage reopened")),
        "the server logged its recovery: {lines:#?}"
    );
    println!(
        "{during} writes acknowledged on the full disk before the first refusal; healed \
         {healed_after:?} after space was freed"
    );
}

#[tokio::test]
async fn writes_resume_after_a_full_tmpfs_is_freed() {
    match Disk::tmpfs().await {
        Ok(disk) => full_disk_heals(disk).await,
        Err(reason) => skip("writes_resume_after_a_full_tmpfs_is_freed", &reason),
    }
}

#[tokio::test]
async fn writes_resume_after_a_file_size_limit_is_raised() {
    match Disk::file_size().await {
        Ok(disk) => full_disk_heals(disk).await,
        Err(reason) => skip("writes_resume_after_a_file_size_limit_is_raised", &reason),
    }
}
