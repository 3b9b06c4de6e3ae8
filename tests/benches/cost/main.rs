//! What a rule costs, side by side, in one run: `cargo bench -p stagecraft-tests`.
//!
//! 1. per-run cost of lead-scoring four ways — native, bare wasmtime, Stagecraft's sandbox,
//!    and the sandbox plus the durable commit — with their ratios;
//! 2. the Python and JavaScript ports through the sandbox, with their instantiation share;
//! 3. stage changes per second over HTTP, without and with an inline binding;
//! 4. module upload-to-ready against restart-to-ready (cached artifact);
//! 5. per-run cost and memory with 1, 100 and 1,000 module versions loaded;
//! 6. indexed lists and `records.find` on a 1,000,000-record tenant
//!    (`STAGECRAFT_BENCH_RECORDS` scales it);
//! 7. bytes on disk per record and per run for the demo workload.
//!
//! `cargo bench` runs the full counts (release build). Anything else — `cargo test --bench
//! cost`, or `-- --smoke` — runs tiny counts so CI proves the bench still works without
//! timing anything. BENCHMARKS.md records the latest full figures.

mod bare;
mod disk;
mod fixture;
mod http;
mod indexes;
mod lifecycle;
mod run_cost;
mod sample;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--smoke");
    let only: Option<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let wants = |s: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == s));
    println!(
        "# Stagecraft benchmark ({} run, {} build, {} cores)",
        if full { "full" } else { "smoke" },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if wants("1") {
        run_cost::section(if full { 20_000 } else { 20 });
    }
    if wants("2") {
        run_cost::languages(if full { 200 } else { 2 });
    }
    if wants("3") {
        if full {
            http::section(20_000, 16, 400);
        } else {
            http::section(64, 4, 8);
        }
    }
    if wants("4") {
        lifecycle::section(full);
    }
    if wants("5") {
        if full {
            lifecycle::scale(20_000, &[1, 100, 1000]);
        } else {
            lifecycle::scale(20, &[1, 3]);
        }
    }
    if wants("6") {
        let records = std::env::var("STAGECRAFT_BENCH_RECORDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(if full { 1_000_000 } else { 2_000 });
        indexes::section(records, if full { 2_000 } else { 5 });
    }
    if wants("7") {
        disk::section(if full { 2_000 } else { 8 });
    }
}
