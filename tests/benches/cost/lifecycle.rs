//! Sections 4 and 5: what a module costs before its first run (upload to ready, and ready
//! again after a restart from the cached artifact), and how per-run cost and memory grow
//! with the number of distinct module versions a host holds.

use std::time::Instant;

use stagecraft::sandbox::{content_hash, Limits, Sandbox};

use crate::fixture::{self, World};
use crate::run_cost::Scenario;
use crate::sample::{fmt, row, Samples};

pub fn section(with_polyglot: bool) {
    println!("\n## 4. Module lifecycle: upload to ready, and ready again after a restart");
    println!(
        "  {:<22} {:>10} {:>16} {:>20} {:>8}",
        "module", "size", "upload→ready", "restart→ready", "ratio"
    );
    let mut modules: Vec<(String, Vec<u8>)> = stagecraft::demo::EXAMPLES
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_vec()))
        .collect();
    if with_polyglot {
        for name in ["python-lead-scoring", "js-lead-scoring"] {
            if let Some(b) = fixture::guest(name) {
                modules.push((name.to_string(), b));
            }
        }
    }
    for (name, bytes) in modules {
        let w = World::new();
        let t = Instant::now();
        let v = w.publish(&name, &bytes);
        let upload = t.elapsed();
        // A restart: a new sandbox over the same folder, nothing in memory.
        let restarted =
            Sandbox::new(&w.dir.path().join("modules"), Limits::default()).expect("sandbox");
        let t = Instant::now();
        restarted.load(&v.hash).expect("load cached");
        let cached = t.elapsed();
        assert_eq!(restarted.stats().compiles, 0, "served from the cache");
        println!(
            "  {name:<22} {:>7} KB {:>16} {:>20} {:>7.0}x",
            bytes.len() / 1024,
            fmt(upload),
            fmt(cached),
            upload.as_secs_f64() / cached.as_secs_f64().max(1e-9)
        );
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `bytes` plus a custom section naming `i`: a distinct module version (its own content
/// hash) whose code is the same.
fn variant(bytes: &[u8], i: usize) -> Vec<u8> {
    let name = b"stagecraft-bench-variant";
    let payload = i.to_le_bytes();
    let mut body = Vec::new();
    leb(&mut body, name.len() as u64);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn scale(n: usize, sizes: &[usize]) {
    println!(
        "\n## 5. Scale: per-run cost with many distinct module versions loaded, {n} runs each"
    );
    println!("  (versions differ by a custom section; the first is compiled, the others load its");
    println!("   artifact from disk under their own hash, as after a restart: distinct in memory)");
    let s = Scenario::new();
    let bytes = fixture::rust_component();
    let v = s.world.publish("lead-scoring", &bytes);
    let dir = s.world.dir.path().join("modules");
    let artifact = dir.join(format!("{}.cwasm", v.hash));
    let mut loaded = vec![s.world.sandbox.load(&v.hash).expect("load")];
    let mut first: Option<f64> = None;
    for &k in sizes {
        let before = rss();
        let t = Instant::now();
        while loaded.len() < k {
            let b = variant(&bytes, loaded.len());
            let hash = content_hash(&b);
            std::fs::write(dir.join(format!("{hash}.wasm")), &b).expect("write variant");
            std::fs::copy(&artifact, dir.join(format!("{hash}.cwasm"))).expect("copy artifact");
            loaded.push(s.world.sandbox.load(&hash).expect("load variant"));
        }
        let load_time = t.elapsed();
        // One pass so every module has run once (its code paged in), then measure.
        for m in &loaded {
            let r = s.run(m, &s.event);
            assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        }
        let added = k.saturating_sub(1).max(1) as u64;
        let per_module = rss().saturating_sub(before) / added;
        let samples = Samples::time(n, 0, |i| {
            let r = s.run(&loaded[i % loaded.len()], &s.event);
            assert!(r.outcome.is_ok());
        });
        let base = *first.get_or_insert(samples.per_sec());
        println!(
            "{}   {:>5.2}x of 1   +{} KB/module   loading {}",
            row(
                &format!("{k} module version(s) loaded, round robin"),
                &samples
            ),
            base / samples.per_sec(),
            per_module / 1024,
            fmt(load_time)
        );
    }
    assert_eq!(s.world.sandbox.stats().loaded as usize, loaded.len());
}
