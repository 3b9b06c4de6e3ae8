//! Section 7: bytes on disk for the demo workload. The real server with `--demo` (its five
//! example modules bound as the demo binds them) takes, per unit of work, a lead that the
//! inline lead-scoring scores and assigns, an update of that lead (scored again), and every
//! fourth unit a deal moved to won (onboarding, renewal reminder, partner commission in the
//! background: runs, timers, emails) and a support ticket (SLA escalation). Then the server
//! stops and the data dir is measured: the files on disk, and the stored values by family —
//! as storage rows, and as the same values would be in storage v1's JSON.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const KEY: &str = "bench-admin-key-0123456789";

/// Families whose bytes belong to a record (its row, journal, messages, timers, counters);
/// everything under `run/`, `brun/` and `roll/` and the run indexes (by record, binding,
/// module, outcome: `ix/n*`) belongs to runs; the rest (modules, bindings, pipelines, keys,
/// meta) is fixed cost.
const RUN_FAMILIES: [&str; 7] = [
    "run/", "brun/", "roll/", "ix/nr/", "ix/nb/", "ix/nm/", "ix/no/",
];
const FIXED_FAMILIES: [&str; 12] = [
    "tenant/", "key/", "pipe/", "bind/", "mod/", "modv/", "muse/", "mvn/", "mtn/", "mtb/", "mref/",
    "meta/",
];

/// One API call; a 409 `conflict` (the change raced the demo's own background runs on the
/// same record) is sent again, at most 20 times, since none of these calls names a version.
async fn call(c: &reqwest::Client, method: reqwest::Method, url: String, body: Value) -> Value {
    let mut tries = 0;
    loop {
        let r = c
            .request(method.clone(), url.clone())
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        tries += 1;
        if status == reqwest::StatusCode::CONFLICT && tries < 20 {
            continue;
        }
        assert!(status.is_success(), "{status}: {v}");
        return v;
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = e.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A key's family: its first segment, or its first two for the secondary indexes
/// (`ix/rk/`, `ix/ru/`, …), so each index is counted on its own.
fn family_of(key: &str) -> &str {
    let first = key.split_inclusive('/').next().unwrap_or(key);
    if first != "ix/" {
        return first;
    }
    let second = key[3..].split_inclusive('/').next().unwrap_or("");
    &key[..3 + second.len()]
}

pub fn section(units: usize) {
    println!("\n## 7. Bytes on disk for the demo workload ({units} leads with their automation)");
    let dir = tempfile::Builder::new()
        .prefix("stagecraft-bench-disk-")
        .tempdir()
        .expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
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
    let base = url.expect("the server printed its address");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let deals = rt.block_on(async {
        let c = reqwest::Client::new();
        let post = reqwest::Method::POST;
        let mut deals = 0;
        for i in 0..units {
            let lead = call(
                &c,
                post.clone(),
                format!("{base}/v1/records"),
                json!({"kind": "lead", "name": format!("Lead {i}"), "pipeline": "leads",
                       "email": format!("lead{i}@example.com"),
                       "custom": {"job_title": "CTO", "company_size": 50 + i % 3000,
                                  "source": "Referral"}}),
            )
            .await;
            let id = lead["id"].as_str().expect("id");
            call(
                &c,
                reqwest::Method::PATCH,
                format!("{base}/v1/records/{id}"),
                json!({"custom": {"job_title": "VP Engineering"}}),
            )
            .await;
            if i % 4 == 0 {
                let deal = call(
                    &c,
                    post.clone(),
                    format!("{base}/v1/records"),
                    json!({"kind": "deal", "name": format!("Deal {i}"), "pipeline": "deals",
                           "amount": 1000 + i, "currency": "EUR", "owner": "ann"}),
                )
                .await;
                let id = deal["id"].as_str().expect("id");
                call(
                    &c,
                    post.clone(),
                    format!("{base}/v1/records/{id}/stage"),
                    json!({"stage": "won"}),
                )
                .await;
                deals += 1;
                call(
                    &c,
                    post.clone(),
                    format!("{base}/v1/records"),
                    json!({"kind": "lead", "name": format!("Ticket {i}"), "pipeline": "support",
                           "custom": {"priority": "high"}}),
                )
                .await;
            }
        }
        // The background runs of the won deals (three bindings each) come in; wait for
        // them (bounded) so every unit's automation is on disk.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let r = c
                .get(format!(
                    "{base}/v1/runs?module=partner-commission&limit=200"
                ))
                .bearer_auth(KEY)
                .send()
                .await
                .expect("runs")
                .json::<Value>()
                .await
                .expect("json");
            let n = r["runs"].as_array().map_or(0, Vec::len);
            if n >= deals.min(200) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        deals
    });
    let took = started.elapsed();
    // A graceful stop flushes; then sled's files are measured as they are.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let db = dir.path().join("db");
    let on_disk = dir_bytes(&db);

    let sled = sled::open(&db).expect("open the stopped server's database");
    let data = sled.open_tree("data").expect("data tree");
    // family -> (keys, bytes as stored, bytes as v1 JSON)
    let mut families: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    // Where the journal's bytes go: its keys, and each field of its rows.
    let mut event_fields: BTreeMap<&'static str, u64> = BTreeMap::new();
    // The same keys loaded into two fresh databases, once with the rows and once with v1's
    // JSON: what each encoding costs sled on disk, with no history of rewrites behind it.
    let fresh = tempfile::Builder::new()
        .prefix("stagecraft-bench-disk-fresh-")
        .tempdir()
        .expect("temp dir");
    let as_rows = sled::open(fresh.path().join("rows")).expect("fresh db");
    let as_json = sled::open(fresh.path().join("json")).expect("fresh db");
    let (rows_tree, json_tree) = (
        as_rows.open_tree("data").expect("tree"),
        as_json.open_tree("data").expect("tree"),
    );
    for kv in data.iter() {
        let (k, v) = kv.expect("entry");
        let key = String::from_utf8_lossy(&k).into_owned();
        let json = match stagecraft::store::stored_as_v1_json_in(&data, &key, &v) {
            Ok(j) => serde_json::to_vec(&j).expect("json"),
            // Counters and index entries: v1 stored counters as they are, entries as `null`.
            Err(_) if v.is_empty() => b"null".to_vec(),
            Err(_) => v.to_vec(),
        };
        if key.starts_with("evt/") {
            *event_fields.entry("key").or_default() += k.len() as u64;
            let parts = stagecraft::store::stored_breakdown(&key, &v);
            let counted: usize = parts.iter().map(|p| p.1).sum();
            *event_fields.entry("row header").or_default() +=
                v.len().saturating_sub(counted) as u64;
            for (field, n) in parts {
                *event_fields.entry(field).or_default() += n as u64;
            }
        }
        let f = families.entry(family_of(&key).to_string()).or_default();
        f.0 += 1;
        f.1 += (k.len() + v.len()) as u64;
        f.2 += (k.len() + json.len()) as u64;
        rows_tree.insert(&k, v).expect("insert");
        json_tree.insert(&k, json).expect("insert");
    }
    as_rows.flush().expect("flush");
    as_json.flush().expect("flush");
    drop((rows_tree, json_tree, as_rows, as_json));
    let fresh_rows = dir_bytes(&fresh.path().join("rows"));
    let fresh_json = dir_bytes(&fresh.path().join("json"));
    let records = families.get("rec/").map_or(0, |f| f.0);
    let runs = families.get("run/").map_or(0, |f| f.0);
    let sum = |pick: &dyn Fn(&str) -> bool| -> (u64, u64) {
        families
            .iter()
            .filter(|(f, _)| pick(f))
            .fold((0, 0), |(a, b), (_, v)| (a + v.1, b + v.2))
    };
    let (run_rows, run_json) = sum(&|f| RUN_FAMILIES.contains(&f));
    let (fixed_rows, fixed_json) = sum(&|f| FIXED_FAMILIES.contains(&f));
    let (rec_rows, rec_json) = sum(&|f| !RUN_FAMILIES.contains(&f) && !FIXED_FAMILIES.contains(&f));
    let (all_rows, all_json) = sum(&|_| true);
    println!(
        "  workload: {units} leads (+1 update each), {deals} deals won, {deals} tickets, in {:.1} s: {records} records, {runs} runs",
        took.as_secs_f64()
    );
    let per = |b: u64, n: u64| b as f64 / n.max(1) as f64;
    println!(
        "  {:<44} {:>12} {:>12}",
        "keys + values (B)", "rows (v2)", "v1 JSON"
    );
    println!(
        "  {:<44} {:>12.0} {:>12.0}",
        "per record (record, journal, messages, timers)",
        per(rec_rows, records),
        per(rec_json, records)
    );
    println!(
        "  {:<44} {:>12.0} {:>12.0}",
        "per run (run record, run index, rollups)",
        per(run_rows, runs),
        per(run_json, runs)
    );
    println!(
        "  {:<44} {:>12} {:>12}",
        "fixed (modules, bindings, pipelines, keys)", fixed_rows, fixed_json
    );
    println!(
        "  {:<44} {:>12} {:>12}",
        "all stored keys and values", all_rows, all_json
    );
    println!(
        "  files on disk: {on_disk} B = {:.0} B per record, {:.0} B per run (sled's log and its free space included; targets: 2,048 each)",
        per(on_disk, records),
        per(on_disk, runs)
    );
    println!(
        "  the same keys loaded into a fresh database: rows {fresh_rows} B ({:.0} B per record, {:.0} per run), v1 JSON {fresh_json} B ({:.0} B per record, {:.0} per run)",
        per(fresh_rows, records),
        per(fresh_rows, runs),
        per(fresh_json, records),
        per(fresh_json, runs)
    );
    let mut big: Vec<_> = families.iter().collect();
    big.sort_by_key(|(_, v)| std::cmp::Reverse(v.1));
    let top: Vec<String> = big
        .iter()
        .take(12)
        .map(|(f, v)| format!("{f} {} B/{} keys", v.1, v.0))
        .collect();
    println!("  largest families (rows): {}", top.join(", "));
    let of_records: Vec<String> = big
        .iter()
        .filter(|(f, _)| {
            !RUN_FAMILIES.contains(&f.as_str()) && !FIXED_FAMILIES.contains(&f.as_str())
        })
        .map(|(f, v)| format!("{f} {:.0}", per(v.1, records)))
        .collect();
    println!("  per record, by family (B): {}", of_records.join(", "));
    let of_runs: Vec<String> = big
        .iter()
        .filter(|(f, _)| RUN_FAMILIES.contains(&f.as_str()))
        .map(|(f, v)| format!("{f} {:.0}", per(v.1, runs)))
        .collect();
    println!("  per run, by family (B): {}", of_runs.join(", "));
    let mut fields: Vec<_> = event_fields.into_iter().collect();
    fields.sort_by_key(|f| std::cmp::Reverse(f.1));
    let fields: Vec<String> = fields
        .iter()
        .map(|(f, n)| format!("{f} {:.0}", per(*n, records)))
        .collect();
    println!("  evt/ per record, by field (B): {}", fields.join(", "));
}
