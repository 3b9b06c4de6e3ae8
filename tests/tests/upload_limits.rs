//! Uploads cannot exhaust the machine: structural limits checked before compiling and named
//! in the 422 (the hostile suite's function and data-segment bombs), set well above what the
//! real toolchains produce; compiles on a small per-tenant-fair pool, off the request
//! threads; `/healthz` stays fast while heavy modules compile.

#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use stagecraft::config::Config;
use stagecraft::sandbox::shape::measure;
use stagecraft::sandbox::Shape;
use stagecraft_tests::{eventually, guest, json, temp_dir, Server, ADMIN_KEY};

/// Hostile components no toolchain would produce, generated here.
mod bomb {
    use wasm_encoder::{
        CodeSection, Component, ConstExpr, DataSection, Function, FunctionSection, Instruction,
        MemorySection, MemoryType, Module, ModuleSection, TypeSection,
    };

    fn component(module: &Module) -> Vec<u8> {
        let mut c = Component::new();
        c.section(&ModuleSection(module));
        c.finish()
    }

    /// A module of `n` functions of `nops` no-ops each.
    pub fn functions(n: u32, nops: usize) -> Vec<u8> {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        for _ in 0..n {
            funcs.function(0);
        }
        m.section(&funcs);
        let mut body = Function::new([]);
        for _ in 0..nops {
            body.instruction(&Instruction::Nop);
        }
        body.instruction(&Instruction::End);
        let mut code = CodeSection::new();
        for _ in 0..n {
            code.function(&body);
        }
        m.section(&code);
        component(&m)
    }

    /// A module whose memory of `pages` 64 KiB pages gets `n` one-byte data segments,
    /// `stride` bytes apart.
    pub fn data(n: u32, stride: u32, pages: u64) -> Vec<u8> {
        let mut m = Module::new();
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: pages,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&memories);
        let mut data = DataSection::new();
        for i in 0..n {
            data.active(0, &ConstExpr::i32_const((i * stride) as i32), [1u8]);
        }
        m.section(&data);
        component(&m)
    }
}

#[test]
fn toolchain_output_fits_well_within_the_upload_limits() {
    let max = Shape::maxima();
    let fixtures = [
        "python-lead-scoring",
        "python-mover",
        "js-lead-scoring",
        "js-mover",
    ];
    let shapes: Vec<Shape> = fixtures
        .iter()
        .map(|name| measure(&guest(name), &max).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    println!(
        "{:24} {:>12} {:>12} {:>12} {:>6}",
        "", "Python", "JavaScript", "limit", "ratio"
    );
    for (i, (name, limit)) in max.entries().into_iter().enumerate() {
        let found = |s: &Shape| s.entries()[i].1;
        let python = found(&shapes[0]).max(found(&shapes[1]));
        let js = found(&shapes[2]).max(found(&shapes[3]));
        let ratio = limit as f64 / python.max(js).max(1) as f64;
        println!("{name:24} {python:>12} {js:>12} {limit:>12} {ratio:>6.1}");
        assert!(
            ratio >= 4.0,
            "{name}: the toolchains produce {}, within 4x of the limit {limit}",
            python.max(js)
        );
    }
}

/// A hostile upload: what it is, and the limit that must refuse it.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    limit: &'static str,
    found: &'static str,
}

#[tokio::test]
async fn hostile_bombs_are_refused_by_name_before_compiling_and_the_server_stays_healthy() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let max = Shape::maxima();
    let cases = [
        Case {
            name: "function-bomb",
            bytes: bomb::functions(300_000, 0),
            limit: "functions",
            found: "300000",
        },
        Case {
            name: "data-segment-bomb",
            bytes: bomb::data(100_000, 1, 2),
            limit: "data_segments",
            found: "100000",
        },
        // Sparse segments cannot become a memory image: each one is compiled into start-up
        // code, so far fewer of them are allowed.
        Case {
            name: "sparse-data-bomb",
            bytes: bomb::data(10_000, 4096, 640),
            limit: "startup_items",
            found: "10000",
        },
        Case {
            name: "giant-function",
            bytes: bomb::functions(1, 3 << 20),
            limit: "largest_function_bytes",
            found: "3145730",
        },
        Case {
            name: "memory-bomb",
            bytes: bomb::data(1, 1, 16_384),
            limit: "initial_memory_bytes",
            found: "1073741824",
        },
    ];
    for case in cases {
        let started = Instant::now();
        let r = s.upload(ADMIN_KEY, case.name, case.bytes).await;
        let took = started.elapsed();
        println!("{}: refused in {took:?}: {}", case.name, r.message());
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}: {:?}",
            case.name,
            r.body
        );
        assert_eq!(r.code(), "module_over_limit", "{}: {:?}", case.name, r.body);
        let mut maximum = max
            .entries()
            .into_iter()
            .find(|(n, _)| *n == case.limit)
            .unwrap()
            .1;
        if case.limit == "initial_memory_bytes" {
            // Capped by the run's memory limit: a bigger memory could never be instantiated.
            maximum = maximum.min(Config::new(dir.path()).limits.memory_bytes as u64);
        }
        for part in [
            format!("`{}`", case.limit),
            case.found.to_string(),
            format!("at most {maximum}"),
        ] {
            assert!(
                r.message().contains(&part),
                "{}: {}",
                case.name,
                r.message()
            );
        }
        // Refused from a parse: seconds, not the minutes a compile would take.
        assert!(took < Duration::from_secs(10), "{}: {took:?}", case.name);
        assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
    }
    assert_eq!(s.state.sandbox.stats().compiles, 0, "nothing was compiled");
    assert!(
        std::fs::read_dir(dir.path().join("modules"))
            .unwrap()
            .next()
            .is_none(),
        "nothing was stored"
    );
    // And an ordinary upload still goes through.
    assert_eq!(s.upload_guest(ADMIN_KEY, "mover", "mover").await, 1);
}

/// Holds the compile pool's only compile slot until the returned sender is used.
async fn occupy_the_compile_pool(s: &Server) -> mpsc::Sender<()> {
    let (release, wait) = mpsc::channel::<()>();
    s.state
        .sandbox
        .compiler()
        .submit(
            s.state.sandbox.compiler().reserve("someone-else").unwrap(),
            move || {
                let _ = wait.recv();
            },
            |_| {},
        )
        .unwrap();
    let sandbox = s.state.sandbox.clone();
    eventually("the blocker runs", 400, || {
        let running = sandbox.compiler().queued().running;
        async move { (running == 1).then_some(()) }
    })
    .await;
    release
}

#[tokio::test]
async fn a_tenant_over_its_compile_share_gets_a_named_429_with_retry_after() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.compile.concurrent = 1;
    config.limits.compile.queued_per_tenant = 1;
    let s = std::sync::Arc::new(Server::start_with(config).await);
    let other = s.tenant("globex").await;

    let release = occupy_the_compile_pool(&s).await;
    let first = {
        let s = s.clone();
        tokio::spawn(async move { s.upload(ADMIN_KEY, "mover", guest("mover")).await })
    };
    let sandbox = s.state.sandbox.clone();
    eventually("the first upload waits for its turn", 400, || {
        let waiting = sandbox.compiler().queued().waiting;
        async move { (waiting == 1).then_some(()) }
    })
    .await;

    // The same tenant's second upload is refused at once, by name, with a time to retry.
    let resp = s
        .request(Method::POST, "/v1/modules/mover/versions")
        .bearer_auth(ADMIN_KEY)
        .body(guest("mover"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = Server::read(resp).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.code(), "compile_queue_full");
    assert!(r.message().contains("the limit is 1"), "{}", r.message());
    assert!(retry_after >= 1);

    // Another tenant still gets its turn.
    let theirs = {
        let (s, other) = (s.clone(), other.clone());
        tokio::spawn(async move { s.upload(&other, "mover", guest("mover")).await })
    };
    eventually("the other tenant's upload is queued", 400, || {
        let waiting = sandbox.compiler().queued().waiting;
        async move { (waiting == 2).then_some(()) }
    })
    .await;
    assert!(!first.is_finished());
    release.send(()).unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let theirs = theirs.await.unwrap();
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?}", theirs.body);
    // With its compile done, the tenant may upload again.
    assert_eq!(s.upload_guest(ADMIN_KEY, "mover", "mover").await, 2);
}

#[tokio::test]
async fn a_run_whose_artifact_is_gone_recompiles_on_the_compile_pool() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let dir = s.stop().await;
    for entry in std::fs::read_dir(dir.join("modules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let s = std::sync::Arc::new(Server::start(&dir).await);
    let release = occupy_the_compile_pool(&s).await;
    let run = {
        let (s, id) = (s.clone(), lead["id"].clone());
        tokio::spawn(async move {
            s.dry_run(ADMIN_KEY, "mover", 1, json!({"record": id}))
                .await
        })
    };
    let sandbox = s.state.sandbox.clone();
    eventually(
        "the recompile waits at the head of the compile queue",
        400,
        || {
            let urgent = sandbox.compiler().queued().urgent;
            async move { (urgent == 1).then_some(()) }
        },
    )
    .await;
    assert!(!run.is_finished());
    assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
    release.send(()).unwrap();
    let r = run.await.unwrap();
    assert_eq!(r.body["outcome"]["kind"], "ok", "{:?}", r.body);
    assert_eq!(s.state.sandbox.stats().compiles, 1);
}

#[tokio::test]
async fn healthz_stays_fast_while_heavy_modules_compile() {
    let dir = temp_dir();
    let s = std::sync::Arc::new(Server::start(dir.path()).await);
    let other = s.tenant("globex").await;
    let started = Instant::now();
    let uploads: Vec<_> = [ADMIN_KEY.to_string(), other]
        .into_iter()
        .map(|key| {
            let s = s.clone();
            tokio::spawn(async move { s.upload(&key, "python", guest("python-mover")).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut most_running, mut most_waiting) = (0, 0);
    while uploads.iter().any(|u| !u.is_finished()) {
        let t = Instant::now();
        let r = s.get("/healthz", ADMIN_KEY).await;
        latencies.push(t.elapsed());
        assert_eq!(r.status, StatusCode::OK);
        let queued = s.state.sandbox.compiler().queued();
        most_running = most_running.max(queued.running);
        most_waiting = most_waiting.max(queued.waiting);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for u in uploads {
        let r = u.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let (p50, p99, worst) = (at(0.5), at(0.99), latencies[latencies.len() - 1]);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("");
    println!(
        "two Python compiles took {:?}; /healthz over {} polls: p50 {p50:?}, p99 {p99:?}, max {worst:?}; process peak resident: {peak}",
        started.elapsed(),
        latencies.len()
    );
    // One compile at a time (the default pool): the second waited for its turn.
    assert_eq!(most_running, 1);
    assert!(most_waiting >= 1);
    assert!(
        latencies.len() >= 20,
        "the compiles took a while: {}",
        latencies.len()
    );
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");
}

/// The module files stored under `dir` (a server's data dir), sorted.
fn module_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("modules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm") || n.ends_with(".cwasm"))
        .collect();
    names.sort();
    names
}

fn quota(modules: u32, versions: u32, bytes: u64) -> stagecraft::store::ModuleQuota {
    stagecraft::store::ModuleQuota {
        modules,
        versions,
        bytes,
    }
}

#[test]
fn the_module_quota_defaults_to_100_modules_100_versions_and_1_gib() {
    assert_eq!(
        stagecraft::store::ModuleQuota::default(),
        quota(100, 100, 1 << 30)
    );
}

#[tokio::test]
async fn modules_and_versions_per_tenant_are_bounded_and_deleting_versions_makes_room() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.modules = quota(2, 2, u64::MAX / 2);
    let s = Server::start_with(config).await;
    let other = s.tenant("globex").await;
    assert_eq!(s.upload_guest(ADMIN_KEY, "a", "effector").await, 1);
    assert_eq!(s.upload_guest(ADMIN_KEY, "a", "gatekeeper").await, 2);
    let r = s.upload(ADMIN_KEY, "a", guest("spin")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "module_quota_exceeded");
    assert!(
        r.message().contains("already keeps 2 versions")
            && r.message().contains("delete versions no binding uses"),
        "{}",
        r.message()
    );
    // Another tenant's room is its own.
    assert_eq!(s.upload_guest(&other, "a", "spin").await, 1);

    // Deleting a version makes room; numbers are never reused.
    let r = s.delete("/v1/modules/a/versions/1", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(s.upload_guest(ADMIN_KEY, "a", "spin").await, 3);

    assert_eq!(s.upload_guest(ADMIN_KEY, "b", "panicker").await, 1);
    let r = s.upload(ADMIN_KEY, "c", guest("mover")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "module_quota_exceeded");
    assert!(
        r.message().contains("already has 2 modules"),
        "{}",
        r.message()
    );
    // A module whose versions are all deleted no longer counts.
    let r = s.delete("/v1/modules/b/versions/1", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(s.upload_guest(ADMIN_KEY, "c", "mover").await, 1);
    // The module list holds only modules with versions: never more than the quota.
    let r = s.get("/v1/modules", ADMIN_KEY).await;
    let names: Vec<&str> = r.body["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);
    // b keeps its name and numbers: its next version is 2.
    let r = s.get("/v1/modules/b", ADMIN_KEY).await;
    assert_eq!(r.body["latest"], 1, "{:?}", r.body);
    // The counts survive a restart.
    let config = {
        let mut c = Config::new(s.stop().await);
        c.modules = quota(2, 2, u64::MAX / 2);
        c
    };
    let s = Server::start_with(config).await;
    let r = s.upload(ADMIN_KEY, "d", guest("toggler")).await;
    assert_eq!(r.code(), "module_quota_exceeded", "{:?}", r.body);
    let r = s.upload(ADMIN_KEY, "a", guest("toggler")).await;
    assert_eq!(r.code(), "module_quota_exceeded", "{:?}", r.body);
}

#[tokio::test]
async fn a_tenants_module_bytes_are_bounded_and_deleted_versions_give_their_files_back() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let first = s.upload(ADMIN_KEY, "first", guest("effector")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let stored =
        first.body["size"].as_u64().unwrap() + first.body["artifact_size"].as_u64().unwrap();
    assert!(
        first.body["artifact_size"].as_u64().unwrap() > 0,
        "{:?}",
        first.body
    );
    let hash = first.body["hash"].as_str().unwrap().to_string();
    let dir = s.stop().await;
    assert_eq!(
        module_files(&dir),
        [format!("{hash}.cwasm"), format!("{hash}.wasm")]
    );

    // Room for the next component's bytes, not for its compiled artifact: it passes the
    // check before compiling and is refused when it is recorded, leaving no files behind.
    let next = guest("gatekeeper");
    let with = |bytes: u64| {
        let mut c = Config::new(&dir);
        c.modules = quota(100, 100, bytes);
        c
    };
    let s = Server::start_with(with(stored + next.len() as u64 + 10)).await;
    let r = s.upload(ADMIN_KEY, "second", next.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "module_quota_exceeded");
    assert!(
        r.message()
            .contains(&format!("already take {stored} of the"))
            && r.message().contains("delete versions no binding uses"),
        "{}",
        r.message()
    );
    assert_eq!(
        module_files(&s.dir),
        [format!("{hash}.cwasm"), format!("{hash}.wasm")]
    );
    assert_eq!(s.state.sandbox.stats().compiles, 1, "it was compiled");
    // No room even for the component: refused before compiling.
    let dir = s.stop().await;
    let s = Server::start_with(with(stored + 10)).await;
    let r = s.upload(ADMIN_KEY, "second", next.clone()).await;
    assert_eq!(r.code(), "module_quota_exceeded", "{:?}", r.body);
    assert_eq!(
        s.state.sandbox.stats().compiles,
        0,
        "refused before compiling"
    );

    // The same bytes as another version share its files, and count again.
    let r = s.upload(ADMIN_KEY, "twin", guest("effector")).await;
    assert_eq!(r.code(), "module_quota_exceeded", "{:?}", r.body);

    // Deleting the version gives its room and, as nothing else has its bytes, its files back.
    let r = s.delete("/v1/modules/first/versions/1", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(module_files(&dir).is_empty(), "{:?}", module_files(&dir));
    let r = s.upload(ADMIN_KEY, "second", next).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

#[tokio::test]
async fn module_versions_stored_before_the_quota_are_counted_at_start_up() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let v = s.upload(ADMIN_KEY, "old", guest("effector")).await;
    assert_eq!(v.status, StatusCode::CREATED, "{:?}", v.body);
    let stored = v.body["size"].as_u64().unwrap() + v.body["artifact_size"].as_u64().unwrap();
    let dir = s.stop().await;
    {
        // As an older version left it: no counters, no artifact size in the record.
        let db = stagecraft_tests::open_stopped_db(&dir.join("db")).await;
        let data = db.open_tree("data").unwrap();
        for prefix in ["meta/modules-counted", "mvn/", "mtn/", "mtb/", "mref/"] {
            for key in data.scan_prefix(prefix).keys() {
                data.remove(key.unwrap()).unwrap();
            }
        }
        let key = "modv/default/old/0000000001";
        let mut record =
            stagecraft::store::stored_as_v1_json(key, &data.get(key).unwrap().unwrap()).unwrap();
        record.as_object_mut().unwrap().remove("artifact_size");
        data.insert(key, serde_json::to_vec(&record).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let mut config = Config::new(&dir);
    config.modules = quota(100, 1, stored + 200_000);
    let s = Server::start_with(config).await;
    let r = s.get("/v1/modules/old/versions/1", ADMIN_KEY).await;
    assert_eq!(
        r.body["size"].as_u64().unwrap() + r.body["artifact_size"].as_u64().unwrap(),
        stored
    );
    let r = s.upload(ADMIN_KEY, "old", guest("gatekeeper")).await;
    assert_eq!(r.code(), "module_quota_exceeded", "{:?}", r.body);
    assert!(
        r.message().contains("already keeps 1 versions"),
        "{}",
        r.message()
    );
    let r = s.delete("/v1/modules/old/versions/1", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(module_files(&s.dir).is_empty());
    assert_eq!(s.upload_guest(ADMIN_KEY, "old", "gatekeeper").await, 2);
}
