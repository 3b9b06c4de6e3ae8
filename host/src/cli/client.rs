//! The HTTP client the command line's subcommands share: the server's base URL and a bearer
//! key, JSON in and out, and every failure as a [`ClientError`] — the server's own
//! `{"error": {"code", "message"}}`, or an unreachable server named by its URL.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a request did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with its error shape.
    #[error("{code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// No connection (refused, no route, name not resolved, connect timeout).
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The connection broke, or the answer was not what the API answers.
    #[error("{url}: {detail}")]
    Protocol { url: String, detail: String },
    /// `--url` is not an http(s) URL.
    #[error("--url {url:?} is not an http(s) URL")]
    BadUrl { url: String },
}

/// A client of one server, acting with one key.
pub struct Client {
    base: Url,
    key: String,
    http: reqwest::Client,
}

/// How long one JSON request may take, and an upload (which includes compiling).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

impl Client {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:8080`) using `key`.
    pub fn new(url: &str, key: &str) -> Result<Client, ClientError> {
        let bad = || ClientError::BadUrl { url: url.into() };
        let base = Url::parse(url).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("stagecraft-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Protocol {
                url: url.into(),
                detail: chain(&e),
            })?;
        Ok(Client {
            base,
            key: key.into(),
            http,
        })
    }

    /// The server's base URL, as given.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` + path segments (each percent-encoded) + query pairs.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// `GET` with query pairs.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        let url = self.url(segments, query);
        self.send(
            self.http.request(Method::GET, url.clone()),
            &url,
            REQUEST_TIMEOUT,
        )
        .await
    }

    /// `POST` a JSON body.
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        let url = self.url(segments, &[]);
        self.send(
            self.http.post(url.clone()).json(body),
            &url,
            REQUEST_TIMEOUT,
        )
        .await
    }

    /// `PATCH` a JSON body.
    pub async fn patch(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        let url = self.url(segments, &[]);
        self.send(
            self.http.patch(url.clone()).json(body),
            &url,
            REQUEST_TIMEOUT,
        )
        .await
    }

    /// `DELETE` (the API answers 204, read as `null`).
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ClientError> {
        let url = self.url(segments, &[]);
        self.send(self.http.delete(url.clone()), &url, REQUEST_TIMEOUT)
            .await
    }

    /// `POST` a raw body of `len` bytes with `content_type` (the body may be a stream).
    pub async fn upload(
        &self,
        segments: &[&str],
        body: reqwest::Body,
        len: u64,
        content_type: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url(segments, &[]);
        let req = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        self.send(req, &url, UPLOAD_TIMEOUT).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &Url,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let resp = req
            .bearer_auth(&self.key)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport(url, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(url, &e))?;
        let body: Option<Value> = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if status.is_success() {
            return body.ok_or_else(|| ClientError::Protocol {
                url: url.to_string(),
                detail: format!("HTTP {status} with a body that is not JSON"),
            });
        }
        let error = body.as_ref().map(|b| &b["error"]);
        match error.and_then(|e| Some((e["code"].as_str()?, e["message"].as_str()?))) {
            Some((code, message)) => Err(ClientError::Server {
                status: status.as_u16(),
                code: code.into(),
                message: message.into(),
            }),
            None => Err(ClientError::Protocol {
                url: url.to_string(),
                detail: format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).trim()
                ),
            }),
        }
    }

    fn transport(&self, url: &Url, e: &reqwest::Error) -> ClientError {
        if e.is_connect() {
            // reqwest's own message repeats the URL; its causes say what went wrong.
            let detail = match std::error::Error::source(e) {
                Some(cause) => chain(cause),
                None => chain(e),
            };
            ClientError::Unreachable {
                url: self.base().into(),
                detail,
            }
        } else {
            ClientError::Protocol {
                url: url.to_string(),
                detail: chain(e),
            }
        }
    }
}

/// An error with its causes, `outer: inner: …`, without repeating a cause the outer message
/// already includes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Reads an API answer as `T`; a mismatch means the server speaks another API version.
pub fn typed<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, ClientError> {
    T::deserialize(value).map_err(|e| ClientError::Protocol {
        url: what.into(),
        detail: format!("the server's answer is not a {what} this CLI understands: {e}"),
    })
}
