//! `gitmoxi releases`: each release of the server's `[[pipelines]]`, the stage it is in and what
//! blocks it; `gitmoxi releases approve RELEASE STAGE` approves its promotion as the local user.

use super::super::args::{Command, ReleaseAction};
use super::super::client::ApiClient;
use super::super::table;
use super::remote::{local_user, print};

/// Runs `releases` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Releases { action: Some(ReleaseAction::Approve { release, stage, remote }), .. } => {
            let by = local_user();
            let path = format!("/api/v2/releases/{}/approve", super::super::client::urlencode(&release));
            let answer = ApiClient::new(&remote).post(&path, serde_json::json!({"stage": stage, "by": by})).await?;
            print(&remote, &answer, &format!("{release}: promotion to {} approved by {by}", answer["stage"].as_str().unwrap_or(&stage)))?;
            Ok(0)
        }
        Command::Releases { action: None, remote } => {
            let answer = ApiClient::new(&remote).get("/api/v2/releases").await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = answer["releases"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .map(|r| {
                            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                            let outcome = r["outcome"]["outcome"].as_str().map_or("in progress".to_string(), str::to_string);
                            let blocked: Vec<&str> =
                                r["blocked_by"].as_array().map(|b| b.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
                            let apps = r["apps"].as_array().map_or(0, Vec::len) + r["removed"].as_array().map_or(0, Vec::len);
                            vec![
                                s("id"),
                                s("stage"),
                                outcome,
                                apps.to_string(),
                                if blocked.is_empty() { "-".into() } else { blocked.join("; ") },
                                s("title"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out!("{}", table::render(&["RELEASE", "STAGE", "OUTCOME", "APPS", "BLOCKED BY", "TITLE"], &rows));
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi releases was handed another command: {other:?}"),
    }
}
