//! The API's error shape: every 4xx/5xx is `{"error": {"code", "message"}}` naming the problem.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::automation::AutomationError;
use crate::crm::CrmError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After`. Every 429 and 503 carries one: 1 s unless the error
    /// says otherwise.
    pub retry_after: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid`, `unknown_field`, `conflict`, …
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Asks the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 503 `busy` with `Retry-After`: no run slot came free in time; nothing was done.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }

    /// A failure that is not the caller's: the detail (which may name internal key layouts)
    /// goes to the log with the request id; the caller gets only that id to quote.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        let id = crate::telemetry::request_id();
        tracing::error!(error = %e, request_id = id.as_deref().unwrap_or("-"), "internal error");
        let message = match id {
            Some(id) => {
                format!("internal error; the server log has the details under request id {id}")
            }
            None => "internal error; the server log has the details".to_string(),
        };
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        // Every 429 and 503 says when to come back (1 s unless the error says otherwise).
        let retry_after = self.retry_after.or(matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then_some(1));
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::NotFound(w) => ApiError::not_found(w),
            CrmError::Invalid(m) => ApiError::invalid(m),
            CrmError::UnknownField(m) => ApiError::bad_request("unknown_field", m),
            CrmError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CrmError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "refused", m),
            CrmError::Limit(m) => ApiError::new(StatusCode::CONFLICT, "limit_exceeded", m),
            // The disk is full or failing; the store heals by itself once it can.
            CrmError::Store(StoreError::Unavailable(m)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", m)
            }
            CrmError::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<AutomationError> for ApiError {
    fn from(e: AutomationError) -> Self {
        match e {
            AutomationError::Rejected { run, message } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected_by_automation",
                format!("{message} (run {run})"),
            ),
            AutomationError::Busy { message } => ApiError::busy(format!(
                "automation is busy; nothing was changed, try again: {message}"
            )),
            AutomationError::Crm(e) => e.into(),
            AutomationError::Task(m) => ApiError::internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        CrmError::from(e).into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_429_and_503_says_when_to_come_back() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let r = ApiError::new(status, "x", "busy").into_response();
            assert_eq!(
                r.headers()[axum::http::header::RETRY_AFTER],
                "1",
                "{status}"
            );
            let r = ApiError::new(status, "x", "busy")
                .retry_after(7)
                .into_response();
            assert_eq!(
                r.headers()[axum::http::header::RETRY_AFTER],
                "7",
                "{status}"
            );
        }
        let r = ApiError::invalid("no").into_response();
        assert!(r.headers().get(axum::http::header::RETRY_AFTER).is_none());
        // The errors other parts turn into 503s, too.
        let full = CrmError::Store(StoreError::Unavailable("the disk is full".into()));
        let r = ApiError::from(full).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn a_failed_automation_task_is_a_server_error_not_a_refusal() {
        let join = tokio::spawn(async { panic!("the cascade panicked") })
            .await
            .err()
            .unwrap();
        let e = ApiError::from(AutomationError::from(join));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code, "internal");
        assert!(!e.message.contains("panicked"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_internal_error_shows_the_request_id_not_the_detail() {
        let e = crate::telemetry::with_request_id("req-1".into(), async {
            ApiError::internal("stored value under rec/tenantb/rec_1 is corrupt")
        })
        .await;
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("rec/"), "{}", e.message);
        assert!(e.message.contains("req-1"), "{}", e.message);
    }
}
