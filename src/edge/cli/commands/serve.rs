//! `gitmoxi serve`: loads the configuration and runs the controller until stopped.

use super::super::args::Command;
use crate::runtime::config::Config;

/// Runs `serve` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Serve(args) => {
            let config = Config::load(&args.overrides())?;
            if config.repos.is_empty() {
                tracing::warn!(
                        "no repository in the configuration: pass --repo URL, list [[repos]] in the config file, or add one with POST /api/v2/repos"
                    );
            }
            crate::edge::app::run(config).await?;
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi serve was handed another command: {other:?}"),
    }
}
