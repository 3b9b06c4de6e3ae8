//! The console's only way to data: requests dispatched in-process to the real API router,
//! as the signed-in caller (a [`Preauthenticated`] extension instead of a bearer key). Every
//! rule, validation and automation path is the API's; its errors come back with the API's own
//! code and message.

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::http::{Caller, Preauthenticated};

/// What the API said when it refused.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiFailure {
    fn local(message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal".into(),
            message: message.into(),
        }
    }
}

/// The API router plus who is calling.
#[derive(Clone)]
pub struct Api {
    router: Router,
    caller: Caller,
    max_response: usize,
}

impl Api {
    pub fn new(router: Router, caller: Caller) -> Api {
        Api {
            router,
            caller,
            max_response: 64 * 1024 * 1024,
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Sends one request and returns the status and body bytes on success.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Bytes, ApiFailure> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let mut req = req
            .body(Body::from(body))
            .map_err(|e| ApiFailure::local(format!("building request {path}: {e}")))?;
        req.extensions_mut()
            .insert(Preauthenticated(self.caller.clone()));
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| ApiFailure::local(e.to_string()))?;
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), self.max_response)
            .await
            .map_err(|e| ApiFailure::local(format!("reading the API's answer: {e}")))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(ApiFailure {
            status,
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("error")
                .to_string(),
            message: body["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
        })
    }

    fn decode<T: DeserializeOwned>(path: &str, bytes: &Bytes) -> Result<T, ApiFailure> {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiFailure::local(format!("the API's answer to {path}: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        let bytes = self.send(Method::GET, path, None, Bytes::new()).await?;
        Self::decode(path, &bytes)
    }

    /// A JSON request; `Value::Null` as the answer when the API returns no body.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        let bytes = serde_json::to_vec(body).map_err(|e| ApiFailure::local(e.to_string()))?;
        let out = self
            .send(method, path, Some("application/json"), bytes.into())
            .await?;
        if out.is_empty() {
            return Ok(Value::Null);
        }
        Self::decode(path, &out)
    }
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
