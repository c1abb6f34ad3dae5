//! `gitmoxi apps`: every app the server knows, with where it deploys.

use super::super::args::Command;
use super::super::client::ApiClient;
use super::super::table;

/// Runs `apps` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Apps { remote } => {
            let apps = ApiClient::new(&remote).get("/api/v2/apps").await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&apps)?);
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = apps
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
                            let short = |k: &str| e[k].as_str().map_or("-".to_string(), |v| v.chars().take(12).collect());
                            vec![
                                s("app"),
                                format!("{}@{}", s("repo"), s("branch")),
                                s("kind"),
                                s("identity"),
                                s("status"),
                                short("applied_commit"),
                                short("fingerprint"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out!("{}", table::render(&["APP", "REPO", "KIND", "IDENTITY", "STATUS", "APPLIED", "FINGERPRINT"], &rows));
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi apps was handed another command: {other:?}"),
    }
}
