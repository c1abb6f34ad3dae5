//! Slack's interactive callback (`POST /webhooks/slack/interactive`): the Approve / Reject
//! buttons of a gate's Slack message answer it. Every request is checked against the Slack
//! app's signing secret (`X-Slack-Signature`, v0 HMAC-SHA256 of `v0:{timestamp}:{body}`, compared
//! in constant time) with a timestamp at most 5 minutes old; an optional list of Slack user ids
//! restricts who may answer. The message is then replaced with the answer through Slack's
//! `response_url`, which must point to an allowed host (hooks.slack.com by default).

use super::state::HttpState;
pub use crate::integrations::slack::{
    buttons, escape_mrkdwn, neutralize_mentions, GateRef, SlackInteractive, APPROVE_ACTION, REJECT_ACTION,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gitmoxi_deploy::commands::{AnswerChannel, Approval};
use gitmoxi_deploy::record::AppKey;
use serde_json::{json, Value};

/// How old a signed request may be (Slack's advice: reject older ones, they may be replays).
const MAX_AGE_SECS: u64 = 300;
/// Whether `signature` (`v0=<hex>`) signs `v0:{timestamp}:{body}` under `secret`, and the
/// timestamp is within 5 minutes of `now_secs`.
pub fn signature_ok(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), &'static str> {
    let timestamp = timestamp.ok_or("X-Slack-Request-Timestamp is missing")?;
    let at: i64 = timestamp.trim().parse().map_err(|_| "X-Slack-Request-Timestamp is not a number")?;
    // any i64 the header says (i64::MIN too): the distance is computed without overflow
    if now_secs.abs_diff(at) > MAX_AGE_SECS {
        return Err("X-Slack-Request-Timestamp is more than 5 minutes away from now (a replay, or a wrong clock)");
    }
    let given = signature.and_then(|s| s.strip_prefix("v0=")).ok_or("X-Slack-Signature is missing or not v0=")?;
    let given = hex::decode(given.trim()).map_err(|_| "X-Slack-Signature is not hex")?;
    let prefix = format!("v0:{timestamp}:");
    if super::webhooks::hmac_sha256_matches(secret, &[prefix.as_bytes(), body], &given) {
        Ok(())
    } else {
        Err("X-Slack-Signature does not match the signing secret")
    }
}

/// The value of `key` in a form-urlencoded body.
fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (decode(k)? == key).then(|| decode(v)).flatten()
    })
}

/// Percent-decoding with `+` as space.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn outcome(state: &HttpState, result: &str) {
    state.controller.metrics.webhooks_total.with_label_values(&["slack", result]).inc();
}

fn refuse(state: &HttpState, status: StatusCode, why: &str) -> Response {
    outcome(state, "rejected");
    tracing::warn!(reason = why, "Slack interactive request refused");
    super::reply::error(status, why.to_string())
}

pub async fn interactive(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(slack) = state.webhooks.slack.clone() else {
        return refuse(&state, StatusCode::NOT_FOUND, "Slack interactivity is not configured: set slack_signing_secret");
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = (state.controller.clock.now_ms() / 1000) as i64;
    if let Err(why) = signature_ok(&slack.signing_secret, header("x-slack-request-timestamp"), header("x-slack-signature"), &body, now) {
        return refuse(&state, StatusCode::UNAUTHORIZED, why);
    }
    let Some(payload) = form_value(&body, "payload").and_then(|p| serde_json::from_str::<Value>(&p).ok()) else {
        return refuse(&state, StatusCode::BAD_REQUEST, "the body carries no JSON payload=");
    };
    let action = &payload["actions"][0];
    let approve = match action["action_id"].as_str() {
        Some(APPROVE_ACTION) => true,
        Some(REJECT_ACTION) => false,
        _ => {
            outcome(&state, "ignored");
            return StatusCode::OK.into_response();
        }
    };
    let Some(gate) = action["value"].as_str().and_then(|v| serde_json::from_str::<GateRef>(v).ok()) else {
        return refuse(&state, StatusCode::BAD_REQUEST, "the button carries no gitmoxi gate");
    };
    let user_id = payload["user"]["id"].as_str().unwrap_or_default().to_string();
    let user_name = payload["user"]["username"].as_str().or(payload["user"]["name"].as_str()).unwrap_or("someone").to_string();
    let response_url = payload["response_url"].as_str().map(str::to_string);
    let reply = |text: String, replace: bool| {
        if let Some(url) = response_url.as_deref().filter(|u| allowed_response_url(u, &slack.response_hosts)) {
            let body = json!({"replace_original": replace, "response_type": "ephemeral", "text": text});
            let url = url.to_string();
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap_or_default();
                if let Err(e) = client.post(&url).json(&body).send().await {
                    tracing::warn!(error = %e, "could not update the Slack message");
                }
            });
        }
    };
    if !slack.approvers.is_empty() && !slack.approvers.contains(&user_id) {
        outcome(&state, "not_allowed");
        reply(
            format!(
                "{}, you may not answer gates of {}: ask one of the configured approvers",
                escape_mrkdwn(&user_name),
                escape_mrkdwn(&gate.app)
            ),
            false,
        );
        return StatusCode::OK.into_response();
    }
    let key = AppKey { repo: gate.repo.clone(), branch: gate.branch.clone(), prefix: gate.app.clone() };
    let store = &state.controller.store;
    // the replica that acts for the app knows whether the gate still waits; another one hands
    // the answer to it (issue 24), and its planner notes an answer that finds no gate
    let waiting = match store.record(&key) {
        Ok(_) if !state.controller.acts_for(&key) => Some(()),
        Ok(record) => record
            .filter(|r| r.in_flight() && r.id == gate.deployment)
            .and_then(|r| r.awaiting_approval)
            .filter(|a| a.gate == gate.gate)
            .map(|_| ()),
        Err(e) => return refuse(&state, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if waiting.is_none() {
        outcome(&state, "stale");
        reply(
            format!(
                "{} no longer waits at {} (answered already, or the deployment ended)",
                escape_mrkdwn(&gate.app),
                escape_mrkdwn(&gate.gate)
            ),
            false,
        );
        return StatusCode::OK.into_response();
    }
    let by = if user_id.is_empty() { user_name.clone() } else { format!("{user_name} ({user_id})") };
    let answer = Approval { approve, by, via: AnswerChannel::Slack, at_ms: state.controller.clock.now_ms() };
    let note = format!("{answer} {}", gate.gate);
    let command = gitmoxi_deploy::commands::Command::Answer { approval: answer.clone() };
    if let Err(e) = state.controller.submit(&key, command, note).await {
        return refuse(&state, StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    outcome(&state, "accepted");
    let then = if approve { "traffic moves on" } else { "it rolls back" };
    let mark = if approve { ":white_check_mark:" } else { ":x:" };
    reply(
        format!("{mark} {} {} at {}: {then}", escape_mrkdwn(&gate.app), escape_mrkdwn(&answer.to_string()), escape_mrkdwn(&gate.gate)),
        true,
    );
    StatusCode::OK.into_response()
}

/// Whether Slack's `response_url` may be called: https to an allowed host (plain http only to a
/// loopback host listed explicitly, for tests).
fn allowed_response_url(url: &str, hosts: &[String]) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str() else { return false };
    let listed = hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
    listed && (parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn only_a_fresh_request_signed_with_the_secret_passes() {
        let body = b"payload=%7B%7D";
        let good = sign("s3cret", "1000", body);
        assert_eq!(signature_ok("s3cret", Some("1000"), Some(&good), body, 1100), Ok(()));
        assert!(signature_ok("other", Some("1000"), Some(&good), body, 1100).unwrap_err().contains("does not match"));
        assert!(signature_ok("s3cret", Some("1000"), Some(&good), b"payload=%7B%22x%22%7D", 1100).is_err(), "another body");
        assert!(signature_ok("s3cret", Some("1000"), Some(&good), body, 1000 + 301).unwrap_err().contains("5 minutes"));
        assert!(signature_ok("s3cret", None, Some(&good), body, 1000).unwrap_err().contains("Timestamp is missing"));
        assert!(signature_ok("s3cret", Some("1000"), None, body, 1000).unwrap_err().contains("missing"));
        assert!(signature_ok("s3cret", Some("1000"), Some("v0=zz"), body, 1000).unwrap_err().contains("not hex"));
    }

    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_refused_not_a_panic() {
        let body = b"payload=%7B%7D";
        for (ts, now) in [(i64::MIN, 1_000), (i64::MAX, 1_000), (i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MIN)] {
            let text = ts.to_string();
            let signed = sign("s3cret", &text, body);
            let refused = signature_ok("s3cret", Some(&text), Some(&signed), body, now).unwrap_err();
            assert!(refused.contains("5 minutes"), "{ts} at {now}: {refused}");
        }
        let ts = (i64::MIN + 100).to_string();
        assert_eq!(signature_ok("s3cret", Some(&ts), Some(&sign("s3cret", &ts, body)), body, i64::MIN), Ok(()), "near, even at the end");
    }

    #[test]
    fn the_payload_is_read_from_the_form_and_only_allowed_hosts_are_called_back() {
        assert_eq!(form_value(b"token=x&payload=%7B%22a%22%3A+1%7D", "payload").as_deref(), Some("{\"a\": 1}"));
        assert_eq!(form_value(b"payload=%zz", "payload"), None);
        let slack = vec!["hooks.slack.com".to_string()];
        assert!(allowed_response_url("https://hooks.slack.com/actions/T/1/abc", &slack));
        assert!(!allowed_response_url("http://hooks.slack.com/actions/T/1/abc", &slack), "https only");
        assert!(!allowed_response_url("https://evil.example/actions", &slack));
        assert!(allowed_response_url("http://127.0.0.1:9/x", &["127.0.0.1".to_string()]));
    }
}
