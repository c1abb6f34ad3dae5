//! Slack messages' side of the approval buttons (issue 24: an integration, below the HTTP edge):
//! the Slack app's settings, what a button carries, the buttons of a gate's message, and text
//! escaping for Slack's `mrkdwn`. The signed interactive callback that receives the clicks is
//! `http/slack.rs`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The action ids of the buttons.
pub const APPROVE_ACTION: &str = "gitmoxi_approve";
/// The reject button's action id.
pub const REJECT_ACTION: &str = "gitmoxi_reject";

/// The Slack app's settings.
#[derive(Clone)]
pub struct SlackInteractive {
    /// The Slack app's signing secret.
    pub signing_secret: String,
    /// Slack user ids who may answer (empty: anyone who sees the message).
    pub approvers: Vec<String>,
    /// Hosts `response_url` may point to.
    pub response_hosts: Vec<String>,
}

impl std::fmt::Debug for SlackInteractive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackInteractive").field("approvers", &self.approvers).field("response_hosts", &self.response_hosts).finish()
    }
}

/// What a button carries: the gate it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRef {
    pub repo: String,
    pub branch: String,
    pub app: String,
    pub deployment: String,
    pub gate: String,
}

/// Text for a Slack `mrkdwn` object (a message, the `text` of a reply) from names a committer or
/// a Slack user chose: `&`, `<` and `>` escaped as Slack documents, so no `<!channel>`, `<@U…>`,
/// `<#C…>` or `<https://…|label>` can be formed, and the words Slack turns into mentions on
/// their own broken ([`neutralize_mentions`]). (Slack has no escape for `*`, `_`, `~` and
/// `` ` ``: a name can still make itself bold, never a link or a mention.)
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    neutralize_mentions(&out)
}

/// `@channel`, `@here` and `@everyone` (in any case) with a zero-width space after the `@`: they
/// read the same and notify nobody.
pub fn neutralize_mentions(text: &str) -> String {
    const WORDS: [&str; 3] = ["channel", "here", "everyone"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        if WORDS.iter().any(|w| rest.get(..w.len()).is_some_and(|head| head.eq_ignore_ascii_case(w))) {
            out.push('\u{200B}');
        }
    }
    out.push_str(rest);
    out
}

/// The Approve / Reject buttons of a gate's message.
pub fn buttons(gate: &GateRef) -> Value {
    let value = serde_json::to_string(gate).unwrap_or_default();
    json!({
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "text": {"type": "plain_text", "text": "Approve"}, "value": value},
            {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "text": {"type": "plain_text", "text": "Reject"}, "value": value,
             "confirm": {"title": {"type": "plain_text", "text": "Roll back?"}, "text": {"type": "plain_text", "text": "The deployment rolls back."},
                         "confirm": {"type": "plain_text", "text": "Reject"}, "deny": {"type": "plain_text", "text": "Cancel"}}}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_form_no_mention_link_or_entity_in_slack_text() {
        assert_eq!(escape_mrkdwn("a & b <!channel> <@U1> <https://x|y>"), "a &amp; b &lt;!channel&gt; &lt;@U1&gt; &lt;https://x|y&gt;");
        assert_eq!(escape_mrkdwn("&lt;"), "&amp;lt;", "an entity is shown, not decoded");
        let broken = escape_mrkdwn("hi @channel @Here @everyone @chan @ana web@main @");
        assert_eq!(broken, "hi @\u{200B}channel @\u{200B}Here @\u{200B}everyone @chan @ana web@main @");
        assert_eq!(neutralize_mentions("@é@here"), "@é@\u{200B}here", "multi-byte text right after @");
    }
}
