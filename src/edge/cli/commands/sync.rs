//! `gitmoxi sync`: fetch now, optionally force one app (and follow it), or let held deletes go ahead once.

use super::super::args::Command;
use super::super::client::ApiClient;
use super::remote::{print, wait_for};
use anyhow::bail;

/// Runs `sync` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Sync { remote, repo, branch, force, allow_prune, wait, override_freeze } => {
            if wait && force.is_none() {
                bail!("--wait follows one app: give it with --force APP");
            }
            let client = ApiClient::new(&remote);
            let since = match &force {
                Some(app) if wait => client.app(app).await?.get("last_deployment").and_then(serde_json::Value::as_str).map(str::to_string),
                _ => None,
            };
            let answer = client.command(serde_json::json!({"command": "sync", "repo": repo, "branch": branch})).await?;
            print(&remote, &answer, &format!("fetching {}", answer["repos"]))?;
            if allow_prune {
                let answer = client.command(serde_json::json!({"command": "allow_prune", "repo": repo, "branch": branch})).await?;
                print(&remote, &answer, "held deletes may go ahead once")?;
            }
            if let Some(app) = &override_freeze {
                let by = super::remote::local_user();
                let request =
                    serde_json::json!({"command": "override_freeze", "app": app, "repo": repo, "branch": branch, "by": by, "via": "cli"});
                let answer = client.command(request).await?;
                print(&remote, &answer, &format!("{app}: its next change may start during the freeze (recorded as {})", answer["by"]))?;
            }
            if let Some(app) = &force {
                let answer = client.command(serde_json::json!({"command": "force", "app": app, "repo": repo, "branch": branch})).await?;
                print(&remote, &answer, &format!("{app}: redeploy forced"))?;
                if wait {
                    return wait_for(&remote, app, since).await;
                }
            }
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi sync was handed another command: {other:?}"),
    }
}
