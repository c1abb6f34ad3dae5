//! `gitmoxi validate`: renders and checks every app of a checkout, offline.

use super::super::args::Command;
use crate::io::offline;
use gitmoxi_deploy::spec::RenderContext;
use std::path::PathBuf;

/// Runs `validate` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Validate { path, json, region } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            let (results, warnings) = offline::validate(&path, &RenderContext::new(region))?;
            let bad = results.iter().filter(|r| !r.ok).count();
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if json {
                outln!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for r in &results {
                    if r.ok {
                        outln!("ok      {} ({})", r.app, r.kind);
                    } else {
                        outln!("INVALID {} ({})", r.app, r.kind);
                        for e in &r.errors {
                            outln!("        {e}");
                        }
                    }
                }
                for w in results.iter().flat_map(|r| r.warnings.iter()) {
                    eprintln!("warning: {w}");
                }
                outln!("{} apps, {} invalid", results.len(), bad);
            }
            Ok(if bad > 0 { 1 } else { 0 })
        }
        other => anyhow::bail!("gitmoxi validate was handed another command: {other:?}"),
    }
}
