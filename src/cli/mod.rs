//! The command line: `serve` runs the controller; `validate`, `render` and `plan` work offline
//! on a checkout; `status` asks a running server.
//!
//! Errors are one clear sentence on stderr and a non-zero exit; `--json` prints machine output.

pub mod table;

use crate::config::{Config, Overrides};
use crate::offline;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gitmoxi_deploy::repo_plan::PrunePolicy;
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
    Serve(ServeArgs),
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
        }
    }
}

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args.overrides())?;
            if config.repos.is_empty() {
                bail!("no repository to watch: pass --repo URL (or GITMOXI_REPO), or list [[repos]] in the config file");
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
                            e.action.as_str().into(),
                            e.identity.clone().unwrap_or_default(),
                            e.reason.clone(),
                        ]
                    })
                    .collect();
                print!("{}", table::render(&["APP", "KIND", "ACTION", "IDENTITY", "REASON"], &rows));
            }
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
                            a.status.clone(),
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
