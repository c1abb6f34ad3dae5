//! `gitmoxi status`: every app's status, phase and last outcome.

use super::super::args::Command;
use super::super::client::ApiClient;
use super::super::table;

/// Runs `status` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Status { remote } => {
            let apps = ApiClient::new(&remote).apps().await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&apps)?);
            } else {
                let rows: Vec<Vec<String>> = apps
                    .iter()
                    .map(|a| {
                        vec![
                            a.app.clone(),
                            a.kind.clone(),
                            a.status.to_string(),
                            match (&a.phase, a.traffic) {
                                (Some(p), Some(w)) => format!("{p} {}/{}", w.blue, w.green),
                                (Some(p), None) => p.clone(),
                                (None, _) => "-".into(),
                            },
                            a.commit.as_deref().map_or("-".into(), |c| c[..c.len().min(10)].to_string()),
                            a.last_outcome.clone().unwrap_or_else(|| "-".into()),
                            // why it waits (dependencies, a freeze) or its pin first: that is what it is doing
                            a.held
                                .clone()
                                .or_else(|| {
                                    a.pinned.as_ref().map(|p| format!("pinned at {} by {}", &p.commit[..p.commit.len().min(10)], p.by))
                                })
                                .or_else(|| a.last_cause.clone())
                                .or_else(|| a.problems.first().cloned())
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                if apps.iter().any(|a| a.owner.is_some()) {
                    // high availability: who acts for each app
                    let rows: Vec<Vec<String>> = rows
                        .into_iter()
                        .zip(&apps)
                        .map(|(mut row, a)| {
                            let owner = a.owner.as_ref().map_or("-".to_string(), |o| {
                                format!("{} (shard {})", o.replica.as_deref().unwrap_or("nobody yet"), o.shard)
                            });
                            row.insert(3, owner);
                            row
                        })
                        .collect();
                    out!("{}", table::render(&["APP", "KIND", "STATUS", "OWNER", "PHASE", "COMMIT", "LAST OUTCOME", "DETAIL"], &rows));
                } else {
                    out!("{}", table::render(&["APP", "KIND", "STATUS", "PHASE", "COMMIT", "LAST OUTCOME", "DETAIL"], &rows));
                }
            }
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi status was handed another command: {other:?}"),
    }
}
