//! The error shape at the edges of the router: responses that no handler of ours wrote (a
//! rejection from an extractor nobody wrapped, a layer's refusal) still read
//! `{"error": {"code", "message"}}`, and a URI too long to serve is refused in that shape
//! before anything else looks at it.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The longest request target (path and query) the server reads, in bytes. Longer ones are
/// 414 `uri_too_long`. (Beyond 65,534 bytes hyper itself answers 414, with an empty body,
/// before any of this runs; ARCHITECTURE.md says why that stays.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses request targets longer than [`MAX_URI_BYTES`].
pub async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {len} bytes; the limit is {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Rewrites a 4xx/5xx that is not JSON into the API's error shape, keeping its status, its
/// headers and (for 4xx) its text as the message.
pub async fn ensure_json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = if status.is_server_error() {
        let mut e = ApiError::internal(format!("{status} without a JSON body: {text}"));
        e.status = status;
        e
    } else {
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_string()
        } else {
            text
        };
        ApiError::new(status, code_for(status), message)
    };
    let mut out = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

/// A stable code for a status nobody named.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        _ => "refused",
    }
}
