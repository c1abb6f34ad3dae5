//! What the commands that ask a running server share: printing an answer (`--json` or the
//! sentence), following an app until its deployment ends, answering a gate as the local user.

use super::super::args::Remote;
use super::super::client::ApiClient;
use anyhow::bail;

/// `gitmoxi approve` / `gitmoxi reject`: answers the gate the app's deployment waits at, as the
/// local user.
pub(super) async fn answer_gate(app: &str, remote: &Remote, approve: bool) -> anyhow::Result<i32> {
    let (command, done, then) = if approve { ("approve", "approved", "it goes on") } else { ("reject", "rejected", "it rolls back") };
    let by = local_user();
    let request = serde_json::json!({"command": command, "app": app, "by": by, "via": "cli"});
    let answer = ApiClient::new(remote).command(request).await?;
    let stage = answer.get("stage").and_then(serde_json::Value::as_str).unwrap_or("its gate");
    print(remote, &answer, &format!("{app}: {done} by {by} at {stage}; {then} (follow it with `gitmoxi status`)"))?;
    Ok(0)
}

/// The local user, as the history records who asked.
pub(super) fn local_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "cli".into())
}

/// Prints the server's answer with `--json`, else the sentence.
pub(super) fn print(remote: &Remote, answer: &serde_json::Value, human: &str) -> anyhow::Result<()> {
    if remote.json {
        outln!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        outln!("{human}");
    }
    Ok(())
}

/// Follows an app until its deployment ends, with a progress line (phase and traffic split) on
/// stderr; returns 0 on success, 1 on failure or rollback.
pub(super) async fn wait_for(remote: &Remote, app: &str, since: Option<String>) -> anyhow::Result<i32> {
    let bar = if remote.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new_spinner() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let client = ApiClient::new(remote);
    let mut started = false;
    for _ in 0..(60 * 60 * 2) {
        let view = client.app(app).await?;
        let deployment = view.get("last_deployment").and_then(serde_json::Value::as_str).map(str::to_string);
        let phase = view.get("phase").and_then(serde_json::Value::as_str).unwrap_or("-").to_string();
        let traffic = view
            .get("traffic")
            .filter(|t| !t.is_null())
            .map(|t| format!(" — traffic {} % old / {} % new", t["blue"], t["green"]))
            .unwrap_or_default();
        bar.set_message(format!("{app}: {} {phase}{traffic}", view["status"].as_str().unwrap_or("?")));
        started |= phase != "-";
        if started && phase == "-" && deployment != since {
            bar.finish_and_clear();
            let outcome = view.get("last_outcome").and_then(serde_json::Value::as_str).unwrap_or("unknown");
            print(remote, &view, &format!("{app}: {outcome}"))?;
            return Ok(if outcome == "succeeded" { 0 } else { 1 });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    bar.finish_and_clear();
    bail!("gave up waiting for {app} after two hours")
}
