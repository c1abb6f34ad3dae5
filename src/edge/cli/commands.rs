//! Runs a parsed command, one file per command (`commands/*.rs`): `serve` starts the controller,
//! `validate`, `render` and `plan` work offline on a checkout, the others ask a running server
//! through [`ApiClient`]; the one-line commands (rollback, pause, resume, approve, reject) stay
//! here beside the helpers they share.

mod apps;
mod deployments;
mod diagnose;
mod history;
mod plan;
mod releases;
mod remote;
mod render;
mod serve;
mod status;
mod sync;
mod validate;

use super::args::{Cli, Command};
use super::client::ApiClient;
pub use plan::PLAN_BLOCKED;
use remote::{answer_gate, print};

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        c @ Command::Serve(_) => serve::run(c).await,
        Command::RenderWorker => crate::io::render_worker::run_worker(),
        c @ Command::Validate { .. } => validate::run(c).await,
        c @ Command::Render { .. } => render::run(c).await,
        c @ Command::Plan { .. } => plan::run(c).await,
        c @ Command::Sync { .. } => sync::run(c).await,
        c @ Command::Apps { .. } => apps::run(c).await,
        c @ Command::Releases { .. } => releases::run(c).await,
        c @ Command::History { .. } => history::run(c).await,
        c @ Command::Deployments { .. } => deployments::run(c).await,
        c @ Command::Diagnose { .. } => diagnose::run(c).await,
        Command::Rollback { app, to: None, remote } => {
            let answer = ApiClient::new(&remote).command(serde_json::json!({"command": "rollback", "app": app})).await?;
            print(&remote, &answer, &format!("{app}: rollback requested; follow it with `gitmoxi status`"))?;
            Ok(0)
        }
        Command::Rollback { app, to: Some(to), remote } => {
            let by = remote::local_user();
            let request = serde_json::json!({"command": "rollback", "app": app, "to": to, "by": by, "via": "cli"});
            let answer = ApiClient::new(&remote).command(request).await?;
            let message = answer["message"].as_str().unwrap_or("rollback requested").to_string();
            print(&remote, &answer, &format!("{message}; follow it with `gitmoxi status {app}`"))?;
            Ok(0)
        }
        Command::Unpin { app, remote } => {
            let answer = ApiClient::new(&remote).command(serde_json::json!({"command": "unpin", "app": app})).await?;
            print(&remote, &answer, &format!("{app}: unpinned; it follows the branch head again"))?;
            Ok(0)
        }
        Command::Pause { app, remote } => {
            let answer = ApiClient::new(&remote).command(serde_json::json!({"command": "pause", "app": app})).await?;
            print(&remote, &answer, &format!("{app}: paused at its current step; `gitmoxi resume {app}` lets it go on"))?;
            Ok(0)
        }
        Command::Resume { app, remote } => {
            let answer = ApiClient::new(&remote).command(serde_json::json!({"command": "resume", "app": app})).await?;
            print(&remote, &answer, &format!("{app}: resumed"))?;
            Ok(0)
        }
        Command::Approve { app, remote } => answer_gate(&app, &remote, true).await,
        Command::Reject { app, remote } => answer_gate(&app, &remote, false).await,
        c @ Command::Status { .. } => status::run(c).await,
    }
}
