//! Runs a parsed command: `serve` starts the controller, `validate`, `render` and `plan` work
//! offline on a checkout, the others ask a running server through [`ApiClient`].

use super::args::{Cli, Command, Remote};
use super::client::{urlencode, ApiClient};
use super::table;
use crate::io::offline;
use crate::runtime::config::Config;
use anyhow::bail;
use gitmoxi_deploy::intent::{Intent, PrunePolicy};

/// `gitmoxi plan`'s exit code when an entry is `error`, `conflict` or `held` (2: it could not run).
pub const PLAN_BLOCKED: i32 = 1;
use gitmoxi_deploy::spec::RenderContext;
use std::path::PathBuf;

/// `gitmoxi approve` / `gitmoxi reject`: answers the gate the app's deployment waits at, as the
/// local user.
async fn answer_gate(app: &str, remote: &Remote, approve: bool) -> anyhow::Result<i32> {
    let (command, done, then) = if approve { ("approve", "approved", "it goes on") } else { ("reject", "rejected", "it rolls back") };
    let by = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "cli".into());
    let request = serde_json::json!({"command": command, "app": app, "by": by, "via": "cli"});
    let answer = ApiClient::new(remote).command(request).await?;
    let stage = answer.get("stage").and_then(serde_json::Value::as_str).unwrap_or("its gate");
    print(remote, &answer, &format!("{app}: {done} by {by} at {stage}; {then} (follow it with `gitmoxi status`)"))?;
    Ok(0)
}

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
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
        Command::RenderWorker => crate::io::render_worker::run_worker(),
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
                            e.identity.clone().unwrap_or_default(),
                            e.reason.clone(),
                        ]
                    })
                    .collect();
                out!("{}", table::render(&["APP", "KIND", "ACTION", "IDENTITY", "REASON"], &rows));
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
        Command::Sync { remote, repo, branch, force, allow_prune, wait } => {
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
            if let Some(app) = &force {
                let answer = client.command(serde_json::json!({"command": "force", "app": app, "repo": repo, "branch": branch})).await?;
                print(&remote, &answer, &format!("{app}: redeploy forced"))?;
                if wait {
                    return wait_for(&remote, app, since).await;
                }
            }
            Ok(0)
        }
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
                                    s("cause"),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out!("{}", table::render(&["ID", "APP", "COMMIT", "STRATEGY", "STATUS", "OUTCOME", "STARTED", "CAUSE"], &rows));
            }
            Ok(0)
        }
        Command::Diagnose { deployment, remote } => {
            let d = ApiClient::new(&remote).get(&format!("/api/v2/deployments/{}/diagnosis", urlencode(&deployment))).await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(0);
            }
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            outln!("{}", s("summary"));
            if let Some(evidence) = d["evidence"].as_array().filter(|e| !e.is_empty()) {
                outln!("\nEvidence:");
                for e in evidence {
                    outln!("  - {}", e.as_str().unwrap_or(""));
                }
            }
            match d["diff"].as_array() {
                Some(lines) if !lines.is_empty() => {
                    let from = d["last_good_commit"].as_str().map_or("nothing".to_string(), |c| c.chars().take(10).collect());
                    outln!("\nWhat changed in the app since {from}:");
                    for l in lines {
                        outln!("  {}", l.as_str().unwrap_or(""));
                    }
                }
                Some(_) => outln!("\nThe app's files did not change (a ref value or a forced redeploy)."),
                None => outln!("\nNo diff: {}", s("diff_error")),
            }
            outln!("\nNext step: {}", s("next_step"));
            if let Some(summary) = d["ai_summary"].as_str() {
                outln!("\nSummary (model-written): {summary}");
            }
            if let Some(e) = d["ai_summary_error"].as_str() {
                eprintln!("note: no model summary: {e}");
            }
            Ok(0)
        }
        Command::Rollback { app, remote } => {
            let answer = ApiClient::new(&remote).command(serde_json::json!({"command": "rollback", "app": app})).await?;
            print(&remote, &answer, &format!("{app}: rollback requested; follow it with `gitmoxi status`"))?;
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
                            a.last_cause.clone().or_else(|| a.problems.first().cloned()).unwrap_or_default(),
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
    }
}

/// Prints the server's answer with `--json`, else the sentence.
fn print(remote: &Remote, answer: &serde_json::Value, human: &str) -> anyhow::Result<()> {
    if remote.json {
        outln!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        outln!("{human}");
    }
    Ok(())
}

/// Follows an app until its deployment ends, with a progress line (phase and traffic split) on
/// stderr; returns 0 on success, 1 on failure or rollback.
async fn wait_for(remote: &Remote, app: &str, since: Option<String>) -> anyhow::Result<i32> {
    let bar = if remote.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new_spinner() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let client = ApiClient::new(remote);
    let mut started = false;
    for _ in 0..(60 * 60 * 2) {
        let view = client.app(app).await?;
        let deployment = view.get("last_deployment").and_then(serde_json::Value::as_str).map(str::to_string);
        let phase = view.get("phase").and_then(serde_json::Value::as_str).unwrap_or("-").to_string();
        let traffic = view
            .get("traffic")
            .filter(|t| !t.is_null())
            .map(|t| format!(" — traffic {} % old / {} % new", t["blue"], t["green"]))
            .unwrap_or_default();
        bar.set_message(format!("{app}: {} {phase}{traffic}", view["status"].as_str().unwrap_or("?")));
        started |= phase != "-";
        if started && phase == "-" && deployment != since {
            bar.finish_and_clear();
            let outcome = view.get("last_outcome").and_then(serde_json::Value::as_str).unwrap_or("unknown");
            print(remote, &view, &format!("{app}: {outcome}"))?;
            return Ok(if outcome == "succeeded" { 0 } else { 1 });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    bar.finish_and_clear();
    bail!("gave up waiting for {app} after two hours")
}
