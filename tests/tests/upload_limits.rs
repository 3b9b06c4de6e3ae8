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
    let other = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    let other = other.body["admin_key"].as_str().unwrap().to_string();

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
    let other = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    let other = other.body["admin_key"].as_str().unwrap().to_string();
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
