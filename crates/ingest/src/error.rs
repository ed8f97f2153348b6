//! Every way a request can fail, and the one place that maps each to an HTTP status and a
//! stable error code.

use http::StatusCode;

/// Why a request was not answered `200`. Messages never include secrets or signatures.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// `Content-Encoding` other than `gzip` or `identity`.
    #[error("unsupported Content-Encoding {0:?}: send gzip or identity")]
    UnsupportedEncoding(String),
    /// A trace request's `Content-Type` is not one OTLP/HTTP defines.
    #[error("unsupported Content-Type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// A trace request that is not an OTLP `ExportTraceServiceRequest` (its first bytes were
    /// kept in the dead-letter files).
    #[error("{0}; its first bytes are kept in the dead-letter files")]
    InvalidOtlp(String),
    /// The body is over `max_body_bytes`.
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The inflated body is over `max_inflated_bytes`.
    #[error("inflated body is over the limit of {limit} bytes")]
    InflatedTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body did not arrive within `body_read_timeout_secs`.
    #[error("request body did not arrive in time")]
    BodyTimeout,
    /// The client broke off the body.
    #[error("request body could not be read")]
    BodyRead,
    /// The gzip stream is corrupt.
    #[error("body is not valid gzip")]
    CorruptGzip,
    /// Nothing in the body is JSON (its first bytes were kept in the dead-letter files).
    #[error("body holds no JSON record; its first bytes are kept in the dead-letter files")]
    NoRecords,
    /// A drain secret is configured and the request carries no `x-vercel-signature`.
    #[error("missing x-vercel-signature header")]
    MissingSignature,
    /// The signature does not match the body.
    #[error("x-vercel-signature does not match the body")]
    BadSignature,
    /// The drain requires a header the request does not carry.
    #[error("missing required {0} header")]
    MissingHeader(http::HeaderName),
    /// A required header carries another value than the drain's.
    #[error("the {0} header does not match the drain's")]
    BadHeader(http::HeaderName),
    /// The drain path takes only POST, GET and HEAD.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No such path.
    #[error("not found")]
    NotFound,
    /// A per-drain path whose drain does not exist (or no longer does).
    #[error("no drain is registered at this path")]
    UnknownDrain,
    /// The pipeline is at its in-flight limit.
    #[error("receiver is at capacity; retry later")]
    Overloaded,
    /// A sink refuses writes for now (its broker is unreachable, say).
    #[error("sink {0} is unavailable; retry later")]
    SinkRefusing(&'static str),
    /// A sink failed to write the batch.
    #[error("a sink could not store the batch ({0}); retry later")]
    SinkUnavailable(record::SinkFailure),
    /// The sinks did not confirm in time.
    #[error("the sinks did not confirm the batch in time; retry later")]
    AckTimeout,
    /// The sinks are not ready (for `/readyz`).
    #[error("sinks not ready")]
    NotReady,
}

impl From<record::Refusal> for IngestError {
    fn from(refusal: record::Refusal) -> Self {
        match refusal {
            record::Refusal::Overloaded => IngestError::Overloaded,
            record::Refusal::SinkUnavailable(sink) => IngestError::SinkRefusing(sink),
        }
    }
}

impl IngestError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnsupportedEncoding(_) | IngestError::UnsupportedMediaType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::BodyTooLarge { .. } | IngestError::InflatedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            IngestError::BodyRead
            | IngestError::CorruptGzip
            | IngestError::NoRecords
            | IngestError::InvalidOtlp(_) => StatusCode::BAD_REQUEST,
            IngestError::MissingSignature | IngestError::MissingHeader(_) => {
                StatusCode::UNAUTHORIZED
            }
            IngestError::BadSignature | IngestError::BadHeader(_) => StatusCode::FORBIDDEN,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::NotFound | IngestError::UnknownDrain => StatusCode::NOT_FOUND,
            IngestError::Overloaded
            | IngestError::SinkRefusing(_)
            | IngestError::SinkUnavailable(_)
            | IngestError::AckTimeout
            | IngestError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable snake_case code for the JSON error body and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::InvalidOtlp(_) => "invalid_otlp",
            IngestError::BodyTooLarge { .. } => "body_too_large",
            IngestError::InflatedTooLarge { .. } => "inflated_body_too_large",
            IngestError::BodyTimeout => "body_timeout",
            IngestError::BodyRead => "body_read_error",
            IngestError::CorruptGzip => "corrupt_gzip",
            IngestError::NoRecords => "no_records",
            IngestError::MissingSignature => "missing_signature",
            IngestError::BadSignature => "invalid_signature",
            IngestError::MissingHeader(_) => "missing_header",
            IngestError::BadHeader(_) => "invalid_header",
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::NotFound => "not_found",
            IngestError::UnknownDrain => "unknown_drain",
            IngestError::Overloaded => "overloaded",
            IngestError::SinkRefusing(_) => "sink_unavailable",
            // A full disk is worth telling apart: it needs an operator, not just a retry.
            IngestError::SinkUnavailable(failure) if failure.code == "disk_full" => "disk_full",
            IngestError::SinkUnavailable(_) => "sink_unavailable",
            IngestError::AckTimeout => "ack_timeout",
            IngestError::NotReady => "not_ready",
        }
    }

    /// Whether the client should retry after a pause (and gets `Retry-After`).
    pub fn is_retryable(&self) -> bool {
        self.status() == StatusCode::SERVICE_UNAVAILABLE
    }
}
