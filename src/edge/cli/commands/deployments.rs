//! `gitmoxi deployments`: the deployments, filtered by commit, status or app.

use super::super::args::Command;
use super::super::client::urlencode;
use super::super::client::ApiClient;
use super::super::table;

/// Runs `deployments` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Deployments { remote, commit, status, app, limit } => {
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [("commit", &commit), ("status", &status), ("app", &app)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(v)));
                }
            }
            let answer = ApiClient::new(&remote).get(&format!("/api/v2/deployments?{}", query.join("&"))).await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                let rows: Vec<Vec<String>> = answer["deployments"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .map(|e| {
                                let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
                                vec![
                                    s("id"),
                                    s("app"),
                                    s("commit").chars().take(10).collect(),
                                    s("strategy"),
                                    s("status"),
                                    s("outcome"),
                                    s("started_at"),
                                    s("analysis_summary"),
                                    s("cause"),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out!("{}", table::render(&["ID", "APP", "COMMIT", "STRATEGY", "STATUS", "OUTCOME", "STARTED", "ANALYSIS", "CAUSE"], &rows));
            }
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi deployments was handed another command: {other:?}"),
    }
}
