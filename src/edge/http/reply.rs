//! What every HTTP answer is built from (issue 24: a leaf every handler uses, so no handler
//! reaches back up to the router): the body limit, the refusal of a bad body, the error answer,
//! and a constant-time comparison for secrets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The largest request body any route accepts (413 beyond).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The status of a refused body: 413 when it is too large, else 400 (the message says what is wrong).
pub fn rejection_status(rejection: &axum::extract::rejection::JsonRejection) -> StatusCode {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// An error answer: `error` for our clients, `message_list` for gmctl (which prints only that).
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (status, Json(json!({"error": message, "message_list": [message]}))).into_response()
}

/// Compares without an early exit, so timing does not reveal the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
