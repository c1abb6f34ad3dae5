//! `gitmoxi render`: prints one app's rendered documents, offline.

use super::super::args::Command;
use crate::io::offline;
use gitmoxi_deploy::spec::RenderContext;
use std::path::PathBuf;

/// Runs `render` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Render { app_prefix, repo, rev, region } => {
            let path = repo.unwrap_or_else(|| PathBuf::from("."));
            match offline::render(&path, &app_prefix, rev.as_deref(), &RenderContext::new(region))? {
                Ok(doc) => {
                    outln!("{}", serde_json::to_string_pretty(&doc)?);
                    Ok(0)
                }
                Err(errors) => {
                    for e in errors {
                        eprintln!("error: {e}");
                    }
                    Ok(1)
                }
            }
        }
        other => anyhow::bail!("gitmoxi render was handed another command: {other:?}"),
    }
}
