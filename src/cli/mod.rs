//! The command line: `serve` runs the controller; `validate`, `render` and `plan` work offline
//! on a checkout; `status`, `sync`, `rollback`, `pause` and `resume` talk to a running server.
//!
//! Errors are one clear sentence on stderr and a non-zero exit; `--json` prints machine output.

pub mod table;

use crate::config::{Config, Overrides};
use crate::offline;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gitmoxi_deploy::intent::PrunePolicy;
use gitmoxi_deploy::spec::RenderContext;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "gitmoxi", version, about = "GitOps deployment controller for Amazon ECS and AWS Lambda")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: poll the repositories, reconcile apps, serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Render and check every app of a checkout (work tree); non-zero exit when any is invalid.
    Validate {
        /// The checkout (default: the current directory).
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Region for apps whose depdef names none.
        #[arg(long, env = "GITMOXI_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Print the rendered documents of one app as JSON.
    Render {
        /// The app's prefix, e.g. prod/web/web.
        app_prefix: String,
        /// The checkout (default: the current directory).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Read this commit instead of the work tree.
        #[arg(long)]
        rev: Option<String>,
        #[arg(long, env = "GITMOXI_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// What a reconcile at --to would do if everything at --from had been applied.
    Plan {
        #[arg(long)]
        repo: PathBuf,
        /// Applied state (default: nothing applied).
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value = "HEAD")]
        to: String,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 3)]
        max_prune: usize,
        #[arg(long, default_value_t = 25)]
        max_prune_percent: u32,
        #[arg(long, env = "GITMOXI_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Ask the server to fetch now; optionally force an app or allow held deletes.
    Sync {
        #[command(flatten)]
        remote: Remote,
        /// Only this repository (its name).
        #[arg(long)]
        repo: Option<String>,
        /// Only this branch.
        #[arg(long)]
        branch: Option<String>,
        /// Redeploy this app even if its fingerprint is applied or failed.
        #[arg(long, value_name = "APP")]
        force: Option<String>,
        /// Let the held deletes of --repo/--branch go ahead once.
        #[arg(long)]
        allow_prune: bool,
        /// With --force: wait until the deployment ends; non-zero exit when it did not succeed.
        #[arg(long)]
        wait: bool,
    },
    /// Every app the server knows: identity, status, applied commit and fingerprint.
    Apps {
        #[command(flatten)]
        remote: Remote,
    },
    /// The app's history: what happened, newest last.
    History {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deployments, newest first.
    Deployments {
        #[command(flatten)]
        remote: Remote,
        /// Only deployments of this commit (a prefix is enough).
        #[arg(long)]
        commit: Option<String>,
        /// PROCESSING, PROCESSED_SUCCESS, PROCESSED_ERROR or an outcome (succeeded, rolled_back, failed…).
        #[arg(long)]
        status: Option<String>,
        /// Only this app.
        #[arg(long)]
        app: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Explain a deployment: cause, evidence, what changed in the app, and the next step.
    Diagnose {
        deployment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Roll the app's in-flight deployment back.
    Rollback {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Hold the app at its current step (no further traffic shift) until resumed.
    Pause {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Let a paused app go on.
    Resume {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Apps with their status, phase, commit and last outcome, from a running server.
    Status {
        #[arg(long, env = "GITMOXI_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "GITMOXI_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    #[arg(long, env = "GITMOXI_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[arg(long, env = "GITMOXI_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl Remote {
    /// Sends one command; returns the server's JSON answer or its error as one sentence.
    async fn command(&self, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/api/v2/commands", self.server.trim_end_matches('/'));
        let mut request = reqwest::Client::new().post(&url).json(&body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gitmoxi server at {}; is `gitmoxi serve` running?", self.server))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let why = answer.get("error").and_then(serde_json::Value::as_str).unwrap_or("no details");
            bail!("the server refused the command ({status}): {why}");
        }
        Ok(answer)
    }

    async fn get(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path_and_query}", self.server.trim_end_matches('/'));
        let mut request = reqwest::Client::new().get(&url);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.with_context(|| format!("cannot reach the gitmoxi server at {}", self.server))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            bail!("the server answered {status}: {}", answer.get("error").and_then(serde_json::Value::as_str).unwrap_or("no details"));
        }
        Ok(answer)
    }

    async fn app(&self, app: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/api/v2/apps/{app}", self.server.trim_end_matches('/'));
        let mut request = reqwest::Client::new().get(&url);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.with_context(|| format!("cannot reach the gitmoxi server at {}", self.server))?;
        if !response.status().is_success() {
            bail!("the server does not know app {app} ({})", response.status());
        }
        Ok(response.json().await?)
    }

    fn print(&self, answer: &serde_json::Value, human: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(answer)?);
        } else {
            println!("{human}");
        }
        Ok(())
    }
}

/// Percent-encodes a query value.
fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
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
    let mut started = false;
    for _ in 0..(60 * 60 * 2) {
        let view = remote.app(app).await?;
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
            remote.print(&view, &format!("{app}: {outcome}"))?;
            return Ok(if outcome == "succeeded" { 0 } else { 1 });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    bar.finish_and_clear();
    bail!("gave up waiting for {app} after two hours")
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "GITMOXI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Repository URL (https://, ssh://, file:// or a path).
    #[arg(long, env = "GITMOXI_REPO")]
    pub repo: Option<String>,
    #[arg(long, env = "GITMOXI_BRANCH")]
    pub branch: Option<String>,
    #[arg(long, env = "GITMOXI_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, env = "GITMOXI_LISTEN")]
    pub listen: Option<String>,
    /// e.g. 30s, 5m.
    #[arg(long, env = "GITMOXI_POLL_INTERVAL")]
    pub poll_interval: Option<String>,
    #[arg(long, env = "GITMOXI_REGION")]
    pub region: Option<String>,
    #[arg(long, env = "GITMOXI_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    #[arg(long, env = "GITMOXI_CONCURRENCY")]
    pub concurrency: Option<usize>,
    #[arg(long, env = "GITMOXI_MAX_PRUNE")]
    pub max_prune: Option<usize>,
    #[arg(long, env = "GITMOXI_MAX_PRUNE_PERCENT")]
    pub max_prune_percent: Option<u32>,
    /// SDK attempts per AWS call (1 disables SDK retries).
    #[arg(long, env = "GITMOXI_AWS_MAX_ATTEMPTS")]
    pub aws_max_attempts: Option<u32>,
    /// Secret that signs GitHub push webhooks (POST /webhooks/github).
    #[arg(long, env = "GITMOXI_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// Token GitLab sends in X-Gitlab-Token (POST /webhooks/gitlab).
    #[arg(long, env = "GITMOXI_GITLAB_WEBHOOK_TOKEN", hide_env_values = true)]
    pub gitlab_webhook_token: Option<String>,
    /// Slack incoming webhook URL for deployment events.
    #[arg(long, env = "GITMOXI_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// HTTP endpoint that receives every deployment event as JSON.
    #[arg(long, env = "GITMOXI_NOTIFY_WEBHOOK_URL", hide_env_values = true)]
    pub notify_webhook_url: Option<String>,
    /// What drift leads to: heal (redeploy the applied state), report or ignore.
    #[arg(long, env = "GITMOXI_DRIFT_POLICY", value_parser = ["heal", "report", "ignore"])]
    pub drift_policy: Option<String>,
    /// How often steady apps are compared with AWS, e.g. 5m.
    #[arg(long, env = "GITMOXI_DRIFT_INTERVAL")]
    pub drift_interval: Option<String>,
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            repo: self.repo.clone(),
            branch: self.branch.clone(),
            state_dir: self.state_dir.clone(),
            listen: self.listen.clone(),
            poll_interval: self.poll_interval.clone(),
            region: self.region.clone(),
            api_token: self.api_token.clone(),
            concurrency: self.concurrency,
            max_prune: self.max_prune,
            max_prune_percent: self.max_prune_percent,
            aws_max_attempts: self.aws_max_attempts,
            github_webhook_secret: self.github_webhook_secret.clone(),
            gitlab_webhook_token: self.gitlab_webhook_token.clone(),
            slack_webhook_url: self.slack_webhook_url.clone(),
            notify_webhook_url: self.notify_webhook_url.clone(),
            drift_policy: self.drift_policy.clone(),
            drift_interval: self.drift_interval.clone(),
        }
    }
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
            crate::app::run(config).await?;
            Ok(0)
        }
        Command::Validate { path, json, region } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            let (results, warnings) = offline::validate(&path, &RenderContext { default_region: region })?;
            let bad = results.iter().filter(|r| !r.ok).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for r in &results {
                    if r.ok {
                        println!("ok      {} ({})", r.app, r.kind);
                    } else {
                        println!("INVALID {} ({})", r.app, r.kind);
                        for e in &r.errors {
                            println!("        {e}");
                        }
                    }
                }
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                println!("{} apps, {} invalid", results.len(), bad);
            }
            Ok(if bad > 0 { 1 } else { 0 })
        }
        Command::Render { app_prefix, repo, rev, region } => {
            let path = repo.unwrap_or_else(|| PathBuf::from("."));
            match offline::render(&path, &app_prefix, rev.as_deref(), &RenderContext { default_region: region })? {
                Ok(doc) => {
                    println!("{}", serde_json::to_string_pretty(&doc)?);
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
        Command::Plan { repo, from, to, json, max_prune, max_prune_percent, region } => {
            let policy = PrunePolicy { max_prune, max_prune_percent, allow_prune: false };
            let entries = offline::plan(&repo, from.as_deref(), &to, &RenderContext { default_region: region }, policy)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
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
                print!("{}", table::render(&["APP", "KIND", "ACTION", "IDENTITY", "REASON"], &rows));
            }
            Ok(0)
        }
        Command::Sync { remote, repo, branch, force, allow_prune, wait } => {
            if wait && force.is_none() {
                bail!("--wait follows one app: give it with --force APP");
            }
            let since = match &force {
                Some(app) if wait => remote.app(app).await?.get("last_deployment").and_then(serde_json::Value::as_str).map(str::to_string),
                _ => None,
            };
            let answer = remote.command(serde_json::json!({"command": "sync", "repo": repo, "branch": branch})).await?;
            remote.print(&answer, &format!("fetching {}", answer["repos"]))?;
            if allow_prune {
                let answer = remote.command(serde_json::json!({"command": "allow_prune", "repo": repo, "branch": branch})).await?;
                remote.print(&answer, "held deletes may go ahead once")?;
            }
            if let Some(app) = &force {
                let answer = remote.command(serde_json::json!({"command": "force", "app": app, "repo": repo, "branch": branch})).await?;
                remote.print(&answer, &format!("{app}: redeploy forced"))?;
                if wait {
                    return wait_for(&remote, app, since).await;
                }
            }
            Ok(0)
        }
        Command::Apps { remote } => {
            let apps = remote.get("/api/v2/apps").await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&apps)?);
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
            print!("{}", table::render(&["APP", "REPO", "KIND", "IDENTITY", "STATUS", "APPLIED", "FINGERPRINT"], &rows));
            Ok(0)
        }
        Command::History { app, remote } => {
            let view = remote.app(&app).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&view["history"])?);
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
                print!("{}", table::render(&["AT", "LEVEL", "DEPLOYMENT", "MESSAGE"], &rows));
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
            let answer = remote.get(&format!("/api/v2/deployments?{}", query.join("&"))).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
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
                print!("{}", table::render(&["ID", "APP", "COMMIT", "STRATEGY", "STATUS", "OUTCOME", "STARTED", "CAUSE"], &rows));
            }
            Ok(0)
        }
        Command::Diagnose { deployment, remote } => {
            let d = remote.get(&format!("/api/v2/deployments/{}/diagnosis", urlencode(&deployment))).await?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(0);
            }
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            println!("{}", s("summary"));
            if let Some(evidence) = d["evidence"].as_array().filter(|e| !e.is_empty()) {
                println!("\nEvidence:");
                for e in evidence {
                    println!("  - {}", e.as_str().unwrap_or(""));
                }
            }
            match d["diff"].as_array() {
                Some(lines) if !lines.is_empty() => {
                    let from = d["last_good_commit"].as_str().map_or("nothing".to_string(), |c| c.chars().take(10).collect());
                    println!("\nWhat changed in the app since {from}:");
                    for l in lines {
                        println!("  {}", l.as_str().unwrap_or(""));
                    }
                }
                Some(_) => println!("\nThe app's files did not change (a ref value or a forced redeploy)."),
                None => println!("\nNo diff: {}", s("diff_error")),
            }
            println!("\nNext step: {}", s("next_step"));
            if let Some(summary) = d["ai_summary"].as_str() {
                println!("\nSummary (model-written): {summary}");
            }
            if let Some(e) = d["ai_summary_error"].as_str() {
                eprintln!("note: no model summary: {e}");
            }
            Ok(0)
        }
        Command::Rollback { app, remote } => {
            let answer = remote.command(serde_json::json!({"command": "rollback", "app": app})).await?;
            remote.print(&answer, &format!("{app}: rollback requested; follow it with `gitmoxi status`"))?;
            Ok(0)
        }
        Command::Pause { app, remote } => {
            let answer = remote.command(serde_json::json!({"command": "pause", "app": app})).await?;
            remote.print(&answer, &format!("{app}: paused at its current step; `gitmoxi resume {app}` lets it go on"))?;
            Ok(0)
        }
        Command::Resume { app, remote } => {
            let answer = remote.command(serde_json::json!({"command": "resume", "app": app})).await?;
            remote.print(&answer, &format!("{app}: resumed"))?;
            Ok(0)
        }
        Command::Status { server, token, json } => {
            let client = reqwest::Client::new();
            let mut request = client.get(format!("{}/api/v2/apps", server.trim_end_matches('/')));
            if let Some(t) = &token {
                request = request.bearer_auth(t);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the gitmoxi server at {server}; is `gitmoxi serve` running?"))?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                bail!("the server at {server} answered {status}: {body}");
            }
            let apps: Vec<crate::http::views::AppView> =
                serde_json::from_str(&body).context("the server's answer is not a list of apps")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&apps)?);
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
                print!("{}", table::render(&["APP", "KIND", "STATUS", "PHASE", "COMMIT", "LAST OUTCOME", "DETAIL"], &rows));
            }
            Ok(0)
        }
    }
}
