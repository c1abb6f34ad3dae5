//! One error type for every AWS call, mapped at the adapter, that knows whether retrying helps.
//!
//! Invariant: no SDK error type escapes the adapters; messages name the service, operation and
//! AWS error code; `metric_label()` never carries an ARN.

use std::fmt;

/// The classes of AWS failure the controller treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Throttled: back off and retry.
    Throttled,
    /// 5xx, timeouts, network: retry.
    Unavailable,
    /// IAM denied the call: a permission the operator must grant.
    AccessDenied,
    /// The resource (cluster, service, …) does not exist.
    NotFound,
    /// Any other refusal (invalid parameter, limits, …): retrying will not help.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub code: String,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed: {}: {}", self.service, self.operation, self.code, self.message)?;
        match self.kind {
            AwsErrorKind::AccessDenied => write!(f, " (grant the IAM permission {}:{} to gitmoxi's role)", self.service, self.operation),
            AwsErrorKind::Throttled | AwsErrorKind::Unavailable => write!(f, " (will retry)"),
            AwsErrorKind::NotFound | AwsErrorKind::Rejected => Ok(()),
        }
    }
}

impl std::error::Error for AwsError {}

impl AwsError {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        kind: AwsErrorKind,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AwsError { service, operation, kind, code: code.into(), message: message.into() }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Throttled | AwsErrorKind::Unavailable)
    }

    pub fn metric_label(&self) -> &'static str {
        match self.kind {
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Unavailable => "unavailable",
            AwsErrorKind::AccessDenied => "access_denied",
            AwsErrorKind::NotFound => "not_found",
            AwsErrorKind::Rejected => "rejected",
        }
    }

    /// Classifies an AWS error code (and HTTP status when known).
    pub fn classify(code: &str, status: Option<u16>) -> AwsErrorKind {
        match code {
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ThrottledException"
            | "RequestThrottled"
            | "SlowDown"
            | "ProvisionedThroughputExceededException" => AwsErrorKind::Throttled,
            "AccessDeniedException"
            | "AccessDenied"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch" => AwsErrorKind::AccessDenied,
            "ServerException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "InternalError"
            | "InternalServerError" => AwsErrorKind::Unavailable,
            c if c.ends_with("NotFoundException") || c == "ResourceNotFound" => AwsErrorKind::NotFound,
            _ => match status {
                Some(429) => AwsErrorKind::Throttled,
                Some(s) if s >= 500 => AwsErrorKind::Unavailable,
                Some(403) => AwsErrorKind::AccessDenied,
                _ => AwsErrorKind::Rejected,
            },
        }
    }

    /// Maps any SDK error.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ) -> AwsError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        match &err {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se.err().code().unwrap_or("Unknown").to_string();
                let message = se.err().message().unwrap_or("").to_string();
                let kind = Self::classify(&code, Some(status));
                AwsError::new(service, operation, kind, code, message)
            }
            SdkError::TimeoutError(_) => AwsError::new(service, operation, AwsErrorKind::Unavailable, "Timeout", "the request timed out"),
            SdkError::DispatchFailure(d) => {
                AwsError::new(service, operation, AwsErrorKind::Unavailable, "DispatchFailure", format!("could not reach AWS: {d:?}"))
            }
            SdkError::ResponseError(r) => {
                let status = r.raw().status().as_u16();
                let kind = if status == 429 {
                    AwsErrorKind::Throttled
                } else if status >= 500 {
                    AwsErrorKind::Unavailable
                } else {
                    AwsErrorKind::Rejected
                };
                AwsError::new(service, operation, kind, format!("HTTP{status}"), "unreadable response")
            }
            SdkError::ConstructionFailure(_) => AwsError::new(
                service,
                operation,
                AwsErrorKind::Rejected,
                "ConstructionFailure",
                format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&err)),
            ),
            _ => AwsError::new(
                service,
                operation,
                AwsErrorKind::Unavailable,
                "Unknown",
                format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&err)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(AwsError::classify("ThrottlingException", Some(400)), AwsErrorKind::Throttled);
        assert_eq!(AwsError::classify("ClusterNotFoundException", Some(400)), AwsErrorKind::NotFound);
        assert_eq!(AwsError::classify("AccessDeniedException", Some(400)), AwsErrorKind::AccessDenied);
        assert_eq!(AwsError::classify("Whatever", Some(503)), AwsErrorKind::Unavailable);
        assert_eq!(AwsError::classify("InvalidParameterException", Some(400)), AwsErrorKind::Rejected);
        let e = AwsError::new("ecs", "CreateService", AwsErrorKind::AccessDenied, "AccessDeniedException", "no");
        assert!(e.to_string().contains("grant the IAM permission ecs:CreateService"));
        assert!(!e.is_transient());
    }
}
