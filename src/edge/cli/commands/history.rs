//! `gitmoxi history`: an app's history, oldest first.

use super::super::args::Command;
use super::super::client::ApiClient;
use super::super::table;

/// Runs `history` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::History { app, remote } => {
            let view = ApiClient::new(&remote).app(&app).await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&view["history"])?);
            } else {
                let rows: Vec<Vec<String>> = view["history"]
                    .as_array()
                    .map(|h| {
                        h.iter()
                            .map(|e| {
                                vec![
                                    e["at"].as_str().unwrap_or("").to_string(),
                                    e["level"].as_str().unwrap_or("").to_string(),
                                    e["deployment"].as_str().unwrap_or("-").to_string(),
                                    e["message"].as_str().unwrap_or("").to_string(),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out!("{}", table::render(&["AT", "LEVEL", "DEPLOYMENT", "MESSAGE"], &rows));
            }
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi history was handed another command: {other:?}"),
    }
}
