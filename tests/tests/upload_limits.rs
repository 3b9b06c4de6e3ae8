//! Uploads cannot exhaust the machine: structural limits checked before compiling and named
//! in the 422 (the hostile suite's function and data-segment bombs), set well above what the
//! real toolchains produce.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use stagecraft::config::Config;
use stagecraft::sandbox::shape::measure;
use stagecraft::sandbox::Shape;
use stagecraft_tests::{guest, temp_dir, Server, ADMIN_KEY};

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
