//! Test harness: a real Stagecraft server (real sled in a temp dir, the real router on a real
//! 127.0.0.1 socket) and a small JSON client, shared by the integration tests.

pub mod browser;
pub mod hosts;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use serde_json::json;

/// The admin key every test server bootstraps with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A running server plus what is needed to restart it on the same data dir.
pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    pub state: stagecraft::http::AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    client: reqwest::Client,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl Response {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// Reads a `serve` child's standard output until its `listening on ADDR` line (bounded:
/// 120 s), then keeps draining it in the background so the child never blocks on a full
/// pipe; returns `http://ADDR`. The child must have been spawned with a piped stdout.
pub async fn listening(child: &mut tokio::process::Child) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(a) = line.strip_prefix("listening on ") {
                return a.to_string();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts listening");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    format!("http://{addr}")
}

/// Opens a stopped server's sled database directly (to plant old or broken rows), waiting
/// (bounded: 30 s) for the old server's last handle, dropping on another thread, to let go
/// of sled's file lock; see [`Server::start_with`].
pub async fn open_stopped_db(path: &Path) -> sled::Db {
    for _ in 0..1200 {
        match sled::open(path) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other.expect("the stopped server's database opens"),
        }
    }
    panic!(
        "{} stayed locked for 30 s after its server stopped",
        path.display()
    )
}

impl Server {
    /// Starts a server on `dir` (created if needed) with the default config.
    pub async fn start(dir: &Path) -> Server {
        Self::start_with(stagecraft::config::Config::new(dir)).await
    }

    pub async fn start_with(config: stagecraft::config::Config) -> Server {
        let dir = config.data_dir.clone();
        // After a stop in this process, the last clone of the old server's state may still be
        // dropping on another runtime thread (a connection task lets go of the router a moment
        // after the server's future completes), holding sled's file lock until it does: wait
        // for the lock, not for a time.
        let mut tries = 0;
        let started = loop {
            match stagecraft::server::start(config.clone(), Some(ADMIN_KEY)) {
                Err(e) if format!("{e:#}").contains("could not acquire lock") && tries < 1200 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                other => break other.expect("server starts"),
            }
        };
        let state = started.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(stagecraft::http::serve(listener, started.state, async {
            let _ = rx.await;
        }));
        Server {
            base,
            dir,
            state,
            stop: Some(tx),
            task: Some(task),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(180))
                .build()
                .expect("client"),
        }
    }

    /// Stops the server gracefully and waits until its store is flushed and released.
    pub async fn stop(mut self) -> PathBuf {
        self.shutdown().await;
        self.dir.clone()
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    /// Stops and starts again on the same data dir.
    pub async fn restart(self) -> Server {
        let dir = self.stop().await;
        Server::start(&dir).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        Self::read(resp).await
    }

    pub async fn read(resp: reqwest::Response) -> Response {
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Response { status, body }
    }

    /// A raw request builder for cases the JSON helpers can't express.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Response {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Response {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Response {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Creates tenant `id` (named after its id) with the bootstrap admin key; returns the new
    /// tenant's admin key.
    pub async fn tenant(&self, id: &str) -> String {
        let r = self
            .post("/v1/tenants", ADMIN_KEY, json!({"id": id, "name": id}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["admin_key"]
            .as_str()
            .expect("the new tenant's admin key")
            .to_string()
    }

    /// Mints a key of `role` in the admin key's tenant.
    pub async fn key(&self, admin: &str, role: &str) -> String {
        let r = self
            .post(
                "/v1/keys",
                admin,
                json!({"role": role, "name": format!("{role} key")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["secret"].as_str().expect("secret").to_string()
    }

    /// Creates a record and returns its JSON.
    pub async fn record(&self, key: &str, body: Value) -> Value {
        let r = self.post("/v1/records", key, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh temp dir for a server's data.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("stagecraft-test-")
        .tempdir()
        .expect("temp dir")
}

/// The bytes of a guest built by build.rs (`mover`, `spin`, `python-mover`, …).
pub fn guest(name: &str) -> Vec<u8> {
    let dir = env!("STAGECRAFT_GUESTS_DIR");
    let path = Path::new(dir).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "guest {name} was not built ({}: {e}); for Python/JavaScript guests run scripts/install-guest-tools",
            path.display()
        )
    })
}

impl Server {
    /// Uploads `bytes` as a new version of module `name`.
    pub async fn upload(&self, key: &str, name: &str, bytes: Vec<u8>) -> Response {
        let resp = self
            .request(Method::POST, &format!("/v1/modules/{name}/versions"))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("upload reaches the server");
        Self::read(resp).await
    }

    /// Uploads a built guest and returns its version number.
    pub async fn upload_guest(&self, key: &str, name: &str, guest_name: &str) -> u64 {
        let r = self.upload(key, name, guest(guest_name)).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "upload {guest_name}: {:?}",
            r.body
        );
        r.body["version"].as_u64().expect("version")
    }

    /// Dry-runs `module` version `n` with `body` and returns the result.
    pub async fn dry_run(&self, key: &str, module: &str, n: u64, body: Value) -> Response {
        self.post(
            &format!("/v1/modules/{module}/versions/{n}/dry-run"),
            key,
            body,
        )
        .await
    }
}

/// Polls `check` until it returns Some, at most `tries` times 50 ms apart; panics with
/// `what` when it never does. For waiting on background work, never for timing it.
pub async fn eventually<T, F, Fut>(what: &str, tries: u32, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

impl Server {
    /// Creates a binding and returns its id.
    pub async fn bind(&self, key: &str, body: Value) -> String {
        let r = self.post("/v1/bindings", key, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("binding id").to_string()
    }

    /// The runs matching a query string (`binding=…&outcome=…`), newest first.
    pub async fn runs(&self, key: &str, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/runs?{query}"), key).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["runs"].as_array().cloned().unwrap_or_default()
    }
}
