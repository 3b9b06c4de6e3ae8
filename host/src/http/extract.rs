//! Request extractors whose rejections use the API's error shape: JSON bodies (malformed,
//! wrong type, unknown field, too large, wrong content type), query strings and path
//! parameters. (`ensure_json_errors` in `http` turns any other non-JSON error into that
//! shape, so a rejection nobody wrapped still reads the same.)

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `Json<T>` with clear errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

pub fn json_rejection(r: JsonRejection) -> ApiError {
    match &r {
        JsonRejection::JsonDataError(e) => {
            let msg = e.body_text();
            let code = if msg.contains("unknown field") {
                "unknown_field"
            } else {
                "invalid_body"
            };
            ApiError::bad_request(code, msg)
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
        _ => ApiError::bad_request("invalid_body", r.body_text()),
    }
}

pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than this endpoint accepts",
    )
}

/// `Query<T>` with clear errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid_query", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// `Path<T>` with clear errors: a segment that is not UTF-8 once decoded (`%ff`) or not of
/// its type (`versions/-1`) is a 400 `invalid_path` naming the parameter.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => {
                // Tuple parameters fail by position; name them from the route.
                let names = match RawPathParams::from_request_parts(parts, state).await {
                    Ok(raw) => raw.iter().map(|(k, _)| k.to_string()).collect(),
                    Err(_) => Vec::new(),
                };
                Err(path_rejection(r, &names))
            }
        }
    }
}

fn path_rejection(r: PathRejection, names: &[String]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(e) = r else {
        // Route and extractor disagree: a bug of ours, not of the request.
        return ApiError::internal(r.body_text());
    };
    let expected = |t: &str| match t {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number from 0".to_string(),
        other => format!("of type {other}"),
    };
    let message = match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("path parameter {key:?} is not valid UTF-8 once percent-decoded")
        }
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => format!(
            "path parameter {key:?} must be {}, not {value:?}",
            expected(expected_type)
        ),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => match names.get(*index) {
            Some(key) => format!(
                "path parameter {key:?} must be {}, not {value:?}",
                expected(expected_type)
            ),
            None => format!(
                "path parameter {} must be {}, not {value:?}",
                index + 1,
                expected(expected_type)
            ),
        },
        ErrorKind::ParseError {
            value,
            expected_type,
        } => format!(
            "the path parameter must be {}, not {value:?}",
            expected(expected_type)
        ),
        _ => e.body_text(),
    };
    ApiError::bad_request("invalid_path", message)
}
