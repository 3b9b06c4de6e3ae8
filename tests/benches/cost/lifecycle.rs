//! Sections 4 and 5: what a module costs before its first run (upload to ready, and ready
//! again after a restart from the cached artifact), and how per-run cost and memory grow
//! with the number of distinct module versions a host holds.

use std::time::Instant;

use stagecraft::sandbox::{content_hash, Limits, Sandbox};

use crate::bare::Bare;
use crate::fixture::{self, World};
use crate::run_cost::{self, Scenario};
use crate::sample::{count, fmt, Samples};

pub fn section(with_polyglot: bool) {
    println!("\n## 4. Module lifecycle: upload to ready, and ready again after a restart");
    println!("  (in memory: the version's compiled image, as the module cache counts it)");
    println!(
        "  {:<22} {:>10} {:>16} {:>20} {:>8} {:>12}",
        "module", "size", "upload→ready", "restart→ready", "ratio", "in memory"
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
        let stats = restarted.stats();
        assert_eq!(stats.compiles, 0, "served from the cache");
        println!(
            "  {name:<22} {:>7} KB {:>16} {:>20} {:>7.0}x {:>9} KB",
            bytes.len() / 1024,
            fmt(upload),
            fmt(cached),
            upload.as_secs_f64() / cached.as_secs_f64().max(1e-9),
            stats.loaded_bytes / 1024
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
fn variant_bytes(bytes: &[u8], i: usize) -> Vec<u8> {
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

/// Section 5: the same rule run round robin over `sizes` distinct module versions, in the
/// sandbox (c) and in bare wasmtime with fuel and epoch armed (b'), measured back to back for
/// each size so the two ratios come from the same minutes of the same run.
///
/// For profiling: `STAGECRAFT_BENCH_VARIANT=sandbox` (or `bare`) times only that side (the
/// other runs once), `STAGECRAFT_BENCH_VERSIONS=1000` replaces the sizes,
/// `STAGECRAFT_BENCH_RUNS` the number of runs, `STAGECRAFT_BENCH_COPIES` how bare wasmtime
/// makes its copies (see [`Bare::copy_to`]), and
/// `STAGECRAFT_PERF_CTL=<control fifo>,<ack fifo>` switches a `perf stat -D -1 --control
/// fifo:…` on around the timed loops only.
pub fn scale(n: usize, sizes: &[usize]) {
    println!(
        "\n## 5. Scale: per-run cost with many distinct module versions loaded, {n} runs each"
    );
    println!("  (versions differ by a custom section; the first is compiled, the others load its");
    println!("   artifact from disk under their own hash, as after a restart: distinct in memory.");
    println!(
        "   Bare wasmtime (b'), under the sandbox's engine config, holds as many copies of the"
    );
    println!(
        "   component, each deserialized from its own artifact file; both run them round robin)"
    );
    let sizes: Vec<usize> = std::env::var("STAGECRAFT_BENCH_VERSIONS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| sizes.to_vec());
    let n = std::env::var("STAGECRAFT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let variant = std::env::var("STAGECRAFT_BENCH_VARIANT").ok();
    let n_for = |v: &str| match &variant {
        Some(only) if only != v => 1,
        _ => n,
    };
    let perf = PerfControl::from_env();
    let s = Scenario::new();
    let bytes = fixture::rust_component();
    let v = s.world.publish("lead-scoring", &bytes);
    let dir = s.world.dir.path().join("modules");
    let artifact = dir.join(format!("{}.cwasm", v.hash));
    let bare_dir = s.world.dir.path().join("bare");
    std::fs::create_dir_all(&bare_dir).expect("bare dir");
    let (canned, wit_event) = run_cost::canned(&s);
    // The sandbox's own engine configuration: the same pool (so the same slots and slot
    // affinity), the same metering, the same memory-image setting.
    let config = stagecraft::sandbox::engine_config(&World::limits());
    let mut bare = Bare::with_config(&bytes, canned, &config, true);
    let mut loaded = vec![s.world.sandbox.load(&v.hash).expect("load")];
    let mut first: Option<(f64, f64)> = None;
    println!(
        "  {:>8}   {:>28}   {:>28}   {:>9}",
        "versions", "(c) sandbox: runs/s, p50", "(b') bare: runs/s, p50", "(c)/(b')"
    );
    let mut memory = Vec::new();
    for &k in &sizes {
        let before = rss();
        let t = Instant::now();
        while loaded.len() < k {
            let b = variant_bytes(&bytes, loaded.len());
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
        let stats = s.world.sandbox.stats();
        assert_eq!(
            stats.loaded as usize,
            loaded.len(),
            "the cache holds them all"
        );
        memory.push((
            k,
            per_module,
            stats.loaded_bytes / stats.loaded.max(1),
            load_time,
        ));
        // Bare copies after the sandbox's memory was measured, so it counts only the sandbox.
        bare.copy_to(k, &bare_dir);
        for i in 0..bare.copies() {
            bare.run_copy(i, &wit_event).expect("bare run");
        }

        perf.enable();
        let c = Samples::time(n_for("sandbox"), 0, |i| {
            let r = s.run(&loaded[i % loaded.len()], &s.event);
            assert!(r.outcome.is_ok());
        });
        let b = Samples::time(n_for("bare"), 0, |i| {
            bare.run_copy(i % k, &wit_event).expect("bare run");
        });
        perf.disable();
        let (c1, b1) = *first.get_or_insert((c.per_sec(), b.per_sec()));
        let (cr, br) = (c1 / c.per_sec(), b1 / b.per_sec());
        println!(
            "  {k:>8}   {:>9} {:>9} {:>6.2}x   {:>9} {:>9} {:>6.2}x   {:>8.2}",
            count(c.per_sec()),
            fmt(c.p50()),
            cr,
            count(b.per_sec()),
            fmt(b.p50()),
            br,
            cr / br
        );
    }
    println!("  (each side's cost per run relative to 1 version; the last column is the sandbox's");
    println!("   ratio over bare wasmtime's)");
    println!(
        "  {:>8}   {:>16}   {:>22}   {:>12}",
        "versions", "RSS per version", "cache's estimate (image)", "loading all"
    );
    for (k, rss, est, load_time) in memory {
        let rss = if k > 1 {
            format!("{} KB", rss / 1024)
        } else {
            "-".to_string()
        };
        println!(
            "  {k:>8}   {rss:>16}   {:>19} KB   {:>12}",
            est / 1024,
            fmt(load_time)
        );
    }
}

/// Switches a `perf stat -D -1 --control fifo:CTL,ACK` on and off around what it measures,
/// when `STAGECRAFT_PERF_CTL=CTL,ACK` names its fifos.
struct PerfControl(Option<(String, String)>);

impl PerfControl {
    fn from_env() -> PerfControl {
        PerfControl(std::env::var("STAGECRAFT_PERF_CTL").ok().and_then(|v| {
            let (ctl, ack) = v.split_once(',')?;
            Some((ctl.to_string(), ack.to_string()))
        }))
    }

    fn send(&self, what: &str) {
        use std::io::{Read, Write};
        if let Some((ctl, ack)) = &self.0 {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(ctl)
                .expect("perf control fifo");
            f.write_all(format!("{what}\n").as_bytes())
                .expect("write perf control");
            let mut a = std::fs::File::open(ack).expect("perf ack fifo");
            let mut buf = [0u8; 5];
            let _ = a.read(&mut buf);
        }
    }

    fn enable(&self) {
        self.send("enable");
    }

    fn disable(&self) {
        self.send("disable");
    }
}
