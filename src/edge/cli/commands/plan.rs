//! `gitmoxi plan`: what a commit would do, offline on a checkout or as a running server previews it.

use super::super::args::Command;
use super::super::client::ApiClient;
use super::super::table;
use crate::io::offline;
use anyhow::bail;
use gitmoxi_deploy::intent::Intent;
use gitmoxi_deploy::intent::PrunePolicy;
use gitmoxi_deploy::spec::RenderContext;

/// `gitmoxi plan`'s exit code when an entry is `error`, `conflict` or `held` (2: it could not run).
pub const PLAN_BLOCKED: i32 = 1;

/// Runs `plan` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Plan { server: Some(server), token, name, branch, to, json, .. } => {
            let client = ApiClient::new(&crate::edge::cli::args::Remote { server, token, json });
            let mut query = reqwest::Url::parse("http://gitmoxi/api/v2/preview").map_err(|e| anyhow::anyhow!("{e}"))?;
            query.query_pairs_mut().append_pair("to", &to);
            if let Some(n) = &name {
                query.query_pairs_mut().append_pair("repo", n);
            }
            if let Some(b) = &branch {
                query.query_pairs_mut().append_pair("branch", b);
            }
            let answer = client.get(&format!("{}?{}", query.path(), query.query().unwrap_or_default())).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&answer["preview"])?);
            } else {
                out!("{}", answer["markdown"].as_str().unwrap_or_default());
            }
            let blocked = answer["preview"]["apps"]
                .as_array()
                .is_some_and(|apps| apps.iter().any(|a| matches!(a["action"].as_str(), Some("error" | "conflict" | "held"))));
            Ok(if blocked { PLAN_BLOCKED } else { 0 })
        }
        Command::Plan { repo, from, to, json, max_prune, max_prune_percent, region, .. } => {
            let Some(repo) = repo else { bail!("give --repo (a checkout) or --server (a running gitmoxi)") };
            let policy = PrunePolicy { max_prune, max_prune_percent, allow_prune: false };
            let entries = offline::plan(&repo, from.as_deref(), &to, &RenderContext::new(region), policy)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.app.clone(),
                            e.kind.as_str().into(),
                            e.intent.as_str().into(),
                            e.wave.map_or_else(String::new, |w| w.to_string()),
                            e.identity.clone().unwrap_or_default(),
                            e.reason.clone(),
                        ]
                    })
                    .collect();
                out!("{}", table::render(&["APP", "KIND", "ACTION", "WAVE", "IDENTITY", "REASON"], &rows));
            }
            // CI gates on this: an app that cannot deploy, or a held delete, is not a clean plan
            for e in &entries {
                for w in &e.warnings {
                    eprintln!("warning: {}: {w}", e.app);
                }
            }
            let blocked = entries.iter().any(|e| matches!(e.intent, Intent::Error | Intent::Conflict | Intent::Held));
            Ok(if blocked { PLAN_BLOCKED } else { 0 })
        }
        other => anyhow::bail!("gitmoxi plan was handed another command: {other:?}"),
    }
}
