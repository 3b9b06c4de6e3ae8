//! What the outbound HTTP tests share: the remote on 127.0.0.1 and the `caller` fixture's
//! binding and run helpers.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use stagecraft::config::Config;
use stagecraft_tests::{json, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request the remote received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: usize,
}

/// The other side: a loopback HTTP server. `/ok` answers `{"value": 42}`; `/pad` 16 KiB of
/// text; `/big` a 64 MiB
/// body; `/slow` drips its body a byte at a time; `/redirect?to=PORT` points at
/// `127.0.0.1:PORT`. It counts connections and keeps what it was sent.
pub struct Remote {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Remote {
    pub async fn start() -> Remote {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (count, keep) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let keep = keep.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.trim_end().split_once(':') {
                            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let shown = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    keep.lock().unwrap().push(Seen {
                        path: path.clone(),
                        headers,
                        body: len,
                    });
                    answer(&path, shown, &mut w).await;
                });
            }
        });
        Remote {
            port,
            accepted,
            seen,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn grant(&self) -> Value {
        json!({"destinations": [format!("127.0.0.1:{}", self.port)], "allow_http": true})
    }
}

async fn answer(path: &str, seen_headers: Vec<String>, w: &mut tokio::net::tcp::OwnedWriteHalf) {
    if path.starts_with("/ok") {
        let body = r#"{"value":42}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = w.write_all(format!("{head}{body}").as_bytes()).await;
    } else if path.starts_with("/pad") {
        // 16 KiB of text: as much of a body as a run record keeps.
        let body = "p".repeat(16 * 1024);
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let _ = w.write_all(format!("{head}{body}").as_bytes()).await;
    } else if path.starts_with("/big") {
        let total = 64usize << 20;
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n");
        if w.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..total / chunk.len() {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
    } else if path.starts_with("/slow") {
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
        if w.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..100_000 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if w.write_all(b".").await.is_err() {
                return;
            }
        }
    } else if path.starts_with("/v1/companies?domain=acme.io") {
        // An enrichment service: answers only with its API key.
        let (status, body) = if seen_headers
            .iter()
            .any(|h| h == "authorization: Bearer enrich-key-123")
        {
            ("200 OK", r#"{"size":1200,"industry":"software"}"#)
        } else {
            ("401 Unauthorized", r#"{"error":"bad key"}"#)
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = w.write_all(format!("{head}{body}").as_bytes()).await;
    } else if path.starts_with("/echo") {
        // Says back what it was sent, secrets included (the host must scrub them).
        let body = format!("{path}\n{}", seen_headers.join("\n"));
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-echo: {}\r\n\r\n",
            body.len(),
            seen_headers.join(" | ")
        );
        let _ = w.write_all(format!("{head}{body}").as_bytes()).await;
    } else if let Some(to) = path.strip_prefix("/redirect?to=") {
        let head = format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{to}/internal\r\ncontent-length: 0\r\n\r\n"
        );
        let _ = w.write_all(head.as_bytes()).await;
    } else {
        let _ = w
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await;
    }
}

pub fn config(dir: &std::path::Path, allow_internal: bool) -> Config {
    let mut c = Config::new(dir);
    c.delivery.allow_internal_destinations = allow_internal;
    c
}

/// Uploads `caller` and binds it inline on leads created, with `grants` and `config`.
pub async fn bind_caller(s: &Server, key: &str, grants: Value, config: Value) -> String {
    s.upload_guest(key, "caller", "caller").await;
    s.bind(
        key,
        json!({"pipeline": "leads", "module": "caller", "version": 1, "mode": "inline",
            "triggers": [{"on": "created"}], "grants": grants, "config": config}),
    )
    .await
}

/// Creates a lead (running the inline binding) and returns the binding's run record.
pub async fn run_once(s: &Server, key: &str, binding: &str) -> (Value, Value) {
    let lead = s.record(key, json!({"kind": "lead", "name": "Ada"})).await;
    let runs = s.runs(key, &format!("binding={binding}")).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    (lead, runs[0].clone())
}

pub fn logs(run: &Value) -> String {
    run["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn get(url: String) -> Value {
    json!({"method": "GET", "url": url, "headers": {"accept": "application/json"}})
}
