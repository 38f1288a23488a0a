//! Errors: [`ApiError`] for request handling (mapped to TensorFlow Serving's HTTP
//! status codes and `{"error": "..."}` bodies) and [`ServeError`] for starting the server.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answered to a client as `{"error": "<message>"}` with
/// `content-type: application/json`.
///
/// The variants follow the canonical status codes TensorFlow Serving uses and are
/// mapped to HTTP exactly as its REST server does (`http_server.cc`):
///
/// | variant | HTTP |
/// | --- | --- |
/// | [`InvalidArgument`](Self::InvalidArgument) | 400 |
/// | [`FailedPrecondition`](Self::FailedPrecondition) | 400 (TF Serving does not use 412) |
/// | [`NotFound`](Self::NotFound) | 404 |
/// | [`PayloadTooLarge`](Self::PayloadTooLarge) | 413 (ours; TF Serving has no body limit) |
/// | [`Internal`](Self::Internal) | 500, message replaced by a generic one, detail logged |
/// | [`Unimplemented`](Self::Unimplemented) | 501 |
/// | [`Unavailable`](Self::Unavailable) | 503 |
/// | [`Overloaded`](Self::Overloaded) | 503 with `Retry-After: 1` |
/// | [`OverloadedBodyUnsent`](Self::OverloadedBodyUnsent) | 503 with `Retry-After: 1` and `Connection: close` |
/// | [`DeadlineExceeded`](Self::DeadlineExceeded) | 504 |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, a missing field, a wrong type, a value out
    /// of range. The message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is well formed but does not fit the model (e.g. `/v1/recommend`
    /// pointed at a ranking model as its retrieval model).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Unknown model, version or route.
    #[error("{0}")]
    NotFound(String),
    /// The request body is larger than [`ServeConfig::max_body_bytes`](crate::ServeConfig::max_body_bytes).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A bug or broken model. The detail is logged, never sent to the client.
    #[error("{0}")]
    Internal(String),
    /// A feature TensorFlow Serving has and this server does not (`:classify`, labels).
    #[error("{0}")]
    Unimplemented(String),
    /// The server cannot answer now (e.g. no version of the model loaded yet).
    #[error("{0}")]
    Unavailable(String),
    /// Refused at once by load shedding (see [`crate::compute`]); answered with
    /// `Retry-After: 1`.
    #[error("{0}")]
    Overloaded(String),
    /// Refused at once by load shedding before a client that sent `Expect:
    /// 100-continue` was asked for its body: answered with `Retry-After: 1` and
    /// `Connection: close` (the unsent body cannot be told apart from a next request).
    #[error("{0}")]
    OverloadedBodyUnsent(String),
    /// The request took longer than [`ServeConfig::request_timeout`](crate::ServeConfig::request_timeout).
    #[error("{0}")]
    DeadlineExceeded(String),
}

impl From<shortlist_pipeline::Error> for ApiError {
    fn from(e: shortlist_pipeline::Error) -> Self {
        match e {
            shortlist_pipeline::Error::InvalidArgument(m) => ApiError::InvalidArgument(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// Shorthand for [`ApiError::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        ApiError::InvalidArgument(msg.into())
    }

    /// The HTTP status TensorFlow Serving answers for this error class.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidArgument(_) | ApiError::FailedPrecondition(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_)
            | ApiError::Overloaded(_)
            | ApiError::OverloadedBodyUnsent(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The message sent to the client (generic for [`ApiError::Internal`]).
    pub fn public_message(&self) -> &str {
        match self {
            ApiError::Internal(_) => "Internal error; see the server log.",
            ApiError::InvalidArgument(m)
            | ApiError::FailedPrecondition(m)
            | ApiError::NotFound(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::Unimplemented(m)
            | ApiError::Unavailable(m)
            | ApiError::Overloaded(m)
            | ApiError::OverloadedBodyUnsent(m)
            | ApiError::DeadlineExceeded(m) => m,
        }
    }
}

/// Builds a JSON response from already serialized bytes.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error while serving a request");
        }
        let body = serde_json::to_vec(&serde_json::json!({ "error": self.public_message() }))
            .unwrap_or_else(|_| br#"{"error":"Internal error"}"#.to_vec());
        let mut resp = json_response(self.status(), body);
        if matches!(
            self,
            ApiError::Overloaded(_) | ApiError::OverloadedBodyUnsent(_)
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ApiError::OverloadedBodyUnsent(_)) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// An error starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The model base path is missing or not a directory.
    #[error("model base path {0} is not a directory")]
    BasePath(std::path::PathBuf),
    /// An I/O error while serving.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_tf_serving() {
        assert_eq!(ApiError::invalid("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ApiError::FailedPrecondition("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::NotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::Unavailable("x".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::DeadlineExceeded("x".into()).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ApiError::Internal("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            ApiError::PayloadTooLarge("x".into()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn overloaded_is_503_with_retry_after() {
        let resp = ApiError::Overloaded("busy".into()).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert!(resp.headers().get(header::CONNECTION).is_none());
        let resp = ApiError::OverloadedBodyUnsent("busy".into()).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let header_of = |name| resp.headers().get(name).map(|v| v.as_bytes());
        assert_eq!(header_of(header::RETRY_AFTER), Some(&b"1"[..]));
        assert_eq!(header_of(header::CONNECTION), Some(&b"close"[..]));
        let resp = ApiError::Unavailable("not ready".into()).into_response();
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn internal_detail_is_not_leaked() {
        let e = ApiError::Internal("secret path /etc/x".into());
        assert!(!e.public_message().contains("secret"));
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
    }
}
