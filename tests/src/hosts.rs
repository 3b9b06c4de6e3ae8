//! Real `stagecraft serve --database` processes for the many-hosts tests: each with a data
//! dir of its own, on one PostgreSQL database, killed (SIGKILL) when dropped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::ADMIN_KEY;

/// A host process and a client for it.
pub struct Host {
    pub child: Child,
    pub base: String,
    pub c: reqwest::Client,
}

/// Starts `serve` (the binary at `exe`: a test's `env!("CARGO_BIN_EXE_stagecraft-server")`)
/// on `dir` and the database at `url`, with `env` besides (e.g. `STAGECRAFT_LEASE_SECONDS`)
/// and `args` after the ones every host gets. An empty `url` starts a host on sled in `dir`.
pub async fn spawn(exe: &str, dir: &Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> Host {
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if !url.is_empty() {
        cmd.env("STAGECRAFT_DATABASE_URL", url);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the server");
    let base = crate::listening(&mut child).await;
    Host {
        child,
        base,
        c: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client"),
    }
}

impl Host {
    /// `(status, JSON body)` of a request with `key`; Err when no answer came (the host is
    /// gone).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut r = self
            .c
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A GET with the admin key that must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .try_call(reqwest::Method::GET, path, ADMIN_KEY, None)
            .await
            .expect("the host answers");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A POST with the admin key that must answer 2xx.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self
            .try_call(reqwest::Method::POST, path, ADMIN_KEY, Some(body))
            .await
            .expect("the host answers");
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    /// Uploads test guest `guest` as the next version of module `name` (admin key).
    pub async fn upload(&self, name: &str, guest: &str) {
        let up = self
            .c
            .post(format!("{}/v1/modules/{name}/versions", self.base))
            .bearer_auth(ADMIN_KEY)
            .body(crate::guest(guest))
            .send()
            .await
            .expect("upload");
        assert_eq!(up.status(), 201, "uploading {guest}");
    }
}
