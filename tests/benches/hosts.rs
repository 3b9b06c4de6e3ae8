//! Many hosts (#18), in one run: committed runs/s and end-to-end stage moves/s with 1, 2 and
//! 3 `serve` processes on one PostgreSQL database, beside one process on sled; then the
//! latency of a `records.get` host call's read (`Store::record`, what the sandbox's record
//! source does for it) on each backend, since a run's reads now cross a socket.
//!
//! Run inside a throwaway cluster (figures in BENCHMARKS.md, "Many hosts"):
//!
//! ```sh
//! pg_virtualenv -t sh -c 'cargo bench -p stagecraft-tests --bench hosts'
//! ```
//!
//! Workloads (each on a fresh database and fresh data dirs; 16 clients spread round robin
//! over the hosts):
//! - **runs/s**: 480 leads created; a background binding (the effector, setting a field)
//!   runs once per lead. Time from the first create to the last run committed.
//! - **moves/s**: each lead moved twice (new → contacted → qualified), with an inline
//!   binding on `stage_changed` that runs inside each request. Acknowledged moves per second.
//!
//! Beside them, per setup: the transactions PostgreSQL rolled back and committed in its
//! database (`pg_stat_database`, read once the hosts' connections are gone: mostly
//! serialization failures the commit loop retried), and where the CPU went during the moves
//! (the machine's busy share; CPU-seconds per second of the hosts, PostgreSQL and this
//! process, from /proc) — to tell contention from a full machine.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stagecraft_tests::hosts::{spawn, Host};
use stagecraft_tests::postgres::TempDatabase;
use stagecraft_tests::{temp_dir, ADMIN_KEY};

const CLIENTS: usize = 16;
const LEADS: usize = 480;
const READS: usize = 2_000;

struct Figures {
    setup: String,
    runs_per_s: f64,
    moves_per_s: f64,
    /// Transactions PostgreSQL rolled back in the setup's database (serialization failures
    /// retried, mostly) and committed, over both workloads; None on sled.
    rollbacks: Option<(i64, i64)>,
    /// CPU during the moves: the machine's busy share, and the seconds the hosts,
    /// PostgreSQL and this process (the clients) used.
    cpu: Cpu,
}

/// CPU seconds by who used them, over a span of time (from /proc).
#[derive(Default, Clone, Copy)]
struct Cpu {
    busy: f64,
    hosts: f64,
    postgres: f64,
    clients: f64,
    wall: f64,
}

/// Ticks (user + system) of every process whose name starts with `comm`.
fn ticks_of(comm: &str) -> u64 {
    let mut t = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(comm) {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
        t += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        t += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    t
}

/// (busy, total) jiffies of the whole machine.
fn machine() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

struct CpuMark {
    at: Instant,
    machine: (u64, u64),
    hosts: u64,
    postgres: u64,
    clients: u64,
}

impl CpuMark {
    fn now() -> CpuMark {
        CpuMark {
            at: Instant::now(),
            machine: machine(),
            hosts: ticks_of("stagecraft-serv"),
            postgres: ticks_of("postgres"),
            clients: ticks_of("hosts-"),
        }
    }

    /// What was used since this mark (ticks are 1/100 s on Linux).
    fn since(&self) -> Cpu {
        let later = CpuMark::now();
        let s = |a: u64, b: u64| b.saturating_sub(a) as f64 / 100.0;
        let (busy, total) = (
            later.machine.0.saturating_sub(self.machine.0),
            later.machine.1.saturating_sub(self.machine.1),
        );
        Cpu {
            busy: busy as f64 / total.max(1) as f64,
            hosts: s(self.hosts, later.hosts),
            postgres: s(self.postgres, later.postgres),
            clients: s(self.clients, later.clients),
            wall: self.at.elapsed().as_secs_f64(),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list.
    }
    let Some(probe) = TempDatabase::create() else {
        eprintln!("hosts bench: no PostgreSQL given; run it inside pg_virtualenv");
        return;
    };
    drop(probe);
    let mut figures = Vec::new();
    let (sled, sled_dir) = throughput(0).await;
    figures.push(sled);
    for hosts in 1..=3 {
        figures.push(throughput(hosts).await.0);
    }
    println!("\n| setup | committed runs/s | end-to-end moves/s | rolled back / committed transactions |");
    println!("|---|---:|---:|---:|");
    for f in &figures {
        let rb = f
            .rollbacks
            .map(|(r, c)| format!("{r} / {c}"))
            .unwrap_or_else(|| "—".into());
        println!(
            "| {} | {:.0} | {:.0} | {rb} |",
            f.setup, f.runs_per_s, f.moves_per_s
        );
    }
    println!("\nCPU during the moves (2 cores = 2 CPU-s per s):");
    println!("| setup | machine busy | hosts CPU-s/s | PostgreSQL CPU-s/s | clients CPU-s/s |");
    println!("|---|---:|---:|---:|---:|");
    for f in &figures {
        let c = f.cpu;
        println!(
            "| {} | {:.0}% | {:.2} | {:.2} | {:.2} |",
            f.setup,
            c.busy * 100.0,
            c.hosts / c.wall,
            c.postgres / c.wall,
            c.clients / c.wall
        );
    }
    let (sled_us, pg_us) = read_latency(sled_dir).await;
    println!("\n| backend | records.get read: median | p99 | mean |");
    println!("|---|---:|---:|---:|");
    for (name, (p50, p99, mean)) in [("sled", sled_us), ("PostgreSQL (loopback)", pg_us)] {
        println!("| {name} | {p50:.1} µs | {p99:.1} µs | {mean:.1} µs |");
    }
}

/// One setup: `hosts` processes on a fresh PostgreSQL database, or (0) one on sled. Returns
/// the figures and (for sled) the data dir, kept for the read latency.
async fn throughput(hosts: usize) -> (Figures, Option<tempfile::TempDir>) {
    let exe = env!("CARGO_BIN_EXE_stagecraft-server");
    let db = (hosts > 0).then(|| TempDatabase::create().unwrap());
    let url = db.as_ref().map(|d| d.url()).unwrap_or_default();
    let dirs: Vec<_> = (0..hosts.max(1)).map(|_| temp_dir()).collect();
    let mut started = Vec::new();
    for d in &dirs {
        started.push(spawn(exe, d.path(), &url, &[], &[]).await);
    }
    let first = &started[0];
    first.upload("effector", "effector").await;
    let background = first
        .post(
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "background",
                   "triggers": [{"on": "created"}],
                   "config": {"field": "checked", "value": true},
                   "grants": {"fields": ["checked"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    first
        .post(
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
                   "triggers": [{"on": "stage_changed"}],
                   "config": {"field": "moved", "value": true},
                   "grants": {"fields": ["moved"]}}),
        )
        .await;
    // Every host has compiled the module before the clock starts.
    for h in &started[1..] {
        warm(h).await;
    }
    let bases: Arc<Vec<String>> = Arc::new(started.iter().map(|h| h.base.clone()).collect());

    let t0 = Instant::now();
    let ids = run_clients(bases.clone(), |http, bases, n| async move {
        let mut ids = Vec::new();
        for i in 0..LEADS / CLIENTS {
            let base = &bases[(n + i) % bases.len()];
            let r = send(
                &http,
                base,
                "/v1/records",
                json!({"kind": "lead", "name": format!("L{n}-{i}")}),
            )
            .await;
            ids.push(r["id"].as_str().unwrap().to_string());
        }
        ids
    })
    .await;
    while count_runs(first, &background).await < LEADS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "runs never finished"
        );
    }
    let runs_per_s = LEADS as f64 / t0.elapsed().as_secs_f64();

    let per_client: Arc<Vec<Vec<String>>> = Arc::new(ids);
    let mark = CpuMark::now();
    let t0 = Instant::now();
    let moved = run_clients(bases.clone(), {
        let per_client = per_client.clone();
        move |http, bases, n| {
            let mine = per_client[n].clone();
            async move {
                let mut moved = 0usize;
                for (i, id) in mine.iter().enumerate() {
                    for (k, stage) in ["contacted", "qualified"].into_iter().enumerate() {
                        let base = &bases[(n + i + k) % bases.len()];
                        send(
                            &http,
                            base,
                            &format!("/v1/records/{id}/stage"),
                            json!({"stage": stage}),
                        )
                        .await;
                        moved += 1;
                    }
                }
                vec![moved.to_string()]
            }
        }
    })
    .await;
    let moves: usize = moved.iter().map(|v| v[0].parse::<usize>().unwrap()).sum();
    let moves_per_s = moves as f64 / t0.elapsed().as_secs_f64();
    let cpu = mark.since();
    let setup = match hosts {
        0 => "1 host, sled".to_string(),
        1 => "1 host, PostgreSQL".to_string(),
        n => format!("{n} hosts, PostgreSQL"),
    };
    eprintln!("{setup}: {runs_per_s:.0} runs/s, {moves_per_s:.0} moves/s");
    drop(started);
    let rollbacks = db.as_ref().map(transactions);
    drop(db);
    let keep = (hosts == 0).then(|| dirs.into_iter().next().unwrap());
    (
        Figures {
            setup,
            runs_per_s,
            moves_per_s,
            rollbacks,
            cpu,
        },
        keep,
    )
}

/// (rolled back, committed) transactions in `db`, once the hosts' connections are gone (a
/// server process reports its counts when it exits).
fn transactions(db: &TempDatabase) -> (i64, i64) {
    let others = "SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    for _ in 0..600 {
        if db.count(others) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stat = |col: &str| {
        db.count(&format!(
            "SELECT {col} FROM pg_stat_database WHERE datname = current_database()"
        ))
    };
    (stat("xact_rollback"), stat("xact_commit"))
}

/// Runs `CLIENTS` clients at once; what each returned, in client order.
async fn run_clients<F, Fut>(bases: Arc<Vec<String>>, client: F) -> Vec<Vec<String>>
where
    F: Fn(reqwest::Client, Arc<Vec<String>>, usize) -> Fut,
    Fut: std::future::Future<Output = Vec<String>> + Send + 'static,
{
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(http.clone(), bases.clone(), n)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A POST that must be acknowledged (a 503 `busy` is retried after its Retry-After).
async fn send(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    loop {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return v;
        }
        assert_eq!(status, 503, "POST {path}: {status} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The background binding's committed runs (paging through the run history).
async fn count_runs(h: &Host, binding: &str) -> usize {
    let mut n = 0;
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/v1/runs?binding={binding}&limit=200");
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let page = h.get(&path).await;
        n += page["runs"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => return n,
        }
    }
}

/// Has host `h` compile the effector (a dry run), so no compile lands in the timings.
async fn warm(h: &Host) {
    let r = h
        .post("/v1/records", json!({"kind": "lead", "name": "warm-up"}))
        .await;
    let (s, body) = h
        .try_call(
            reqwest::Method::POST,
            "/v1/modules/effector/versions/1/dry-run",
            ADMIN_KEY,
            Some(json!({"record": r["id"], "config": {}})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{body}");
}

/// Median, p99 and mean (µs) of `READS` reads of one record through the store facade, on the sled
/// data dir the first setup left and on a fresh PostgreSQL database.
async fn read_latency(sled_dir: Option<tempfile::TempDir>) -> ((f64, f64, f64), (f64, f64, f64)) {
    let dir = sled_dir.unwrap();
    let exe = env!("CARGO_BIN_EXE_stagecraft-server");
    let db = TempDatabase::create().unwrap();
    let url = db.url();
    // A record on PostgreSQL, written by a host.
    let pg_dir = temp_dir();
    let h = spawn(exe, pg_dir.path(), &url, &[], &[]).await;
    let pg_id = h
        .post(
            "/v1/records",
            json!({"kind": "lead", "name": "Read me", "email": "r@example.com"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(h);
    let sled_path = dir.path().join("db");
    tokio::task::spawn_blocking(move || {
        // The sled host was SIGKILLed when dropped: its lock goes with the process.
        let sled = open_sled(&sled_path);
        let sled_id = sled
            .records("default", &Default::default(), None, 1, &Default::default())
            .map(|p| p.records[0].id.clone())
            .unwrap();
        let pg = stagecraft::store::Store::new(Arc::new(
            stagecraft_store_pg::PgBackend::connect(&url, Default::default()).unwrap(),
        ));
        (time_reads(&sled, &sled_id), time_reads(&pg, &pg_id))
    })
    .await
    .unwrap()
}

fn open_sled(path: &std::path::Path) -> stagecraft::store::Store {
    for _ in 0..1200 {
        match stagecraft::store::Store::open(path) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the sled data dir stayed locked")
}

/// Median, p99 and mean, in µs.
fn time_reads(store: &stagecraft::store::Store, id: &str) -> (f64, f64, f64) {
    let mut us: Vec<f64> = Vec::with_capacity(READS);
    for _ in 0..READS {
        let t = Instant::now();
        let r = store.record("default", id).unwrap();
        us.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(r.is_some());
    }
    us.sort_by(|a, b| a.total_cmp(b));
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    (us[us.len() / 2], us[us.len() * 99 / 100], mean)
}
