//! The command line's arguments (clap): every command, its flags and their environment
//! variables. Parsing only; [`super::commands`] runs them.

use crate::runtime::config::Overrides;
use clap::{Args, Parser, Subcommand};
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
    /// Internal: renders a commit's apps for `serve` in a memory-capped child process.
    #[command(hide = true)]
    RenderWorker,
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
    /// What a reconcile at --to would do if everything at --from had been applied; with
    /// --server, what merging --to would do against the server's live state (its plan preview).
    Plan {
        /// The checkout (offline plan).
        #[arg(long, required_unless_present = "server")]
        repo: Option<PathBuf>,
        /// Ask this gitmoxi server instead: --to is then a branch, pull/N, merge-requests/N or a commit.
        #[arg(long, conflicts_with = "from")]
        server: Option<String>,
        #[arg(long, env = "GITMOXI_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// With --server: the tracked repository's name (default: the only one).
        #[arg(long, requires = "server")]
        name: Option<String>,
        /// With --server: the branch merged into (default: the repository's first).
        #[arg(long, requires = "server")]
        branch: Option<String>,
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
        /// Let this app's next change start during a freeze (`[[freezes]]`); who asked is recorded.
        #[arg(long, value_name = "APP")]
        override_freeze: Option<String>,
    },
    /// Releases of the `[[pipelines]]`: each one's stages and what blocks it; or approve one's
    /// promotion to a stage.
    Releases {
        #[command(subcommand)]
        action: Option<ReleaseAction>,
        #[command(flatten)]
        remote: Remote,
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
    /// Roll the app's in-flight deployment back; with --to, roll a steady app back to an earlier
    /// release and pin it there.
    Rollback {
        app: String,
        /// `previous` (the last successful deployment with other files) or a commit: redeploy
        /// the app as that deployment did, pinned until `gitmoxi unpin` or a commit that changes it.
        #[arg(long, value_name = "COMMIT|previous")]
        to: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Release a pin (`rollback --to`): the app follows the branch head again.
    Unpin {
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
    /// Approve the deployment waiting at an approval gate (it goes on).
    Approve {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reject the deployment waiting at an approval gate (it rolls back).
    Reject {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Apps with their status, phase, commit and last outcome, from a running server.
    Status {
        #[command(flatten)]
        remote: Remote,
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
    /// Host names answered besides loopback ones, comma-separated (needed to listen beyond
    /// loopback; the file's `allowed_hosts` otherwise).
    #[arg(long, env = "GITMOXI_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// e.g. 30s, 5m.
    #[arg(long, env = "GITMOXI_POLL_INTERVAL")]
    pub poll_interval: Option<String>,
    #[arg(long, env = "GITMOXI_REGION")]
    pub region: Option<String>,
    /// Bearer token for /api. A flag's value is visible to other users of this machine (ps,
    /// /proc/PID/cmdline): prefer --api-token-file or GITMOXI_API_TOKEN.
    #[arg(long, env = "GITMOXI_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// A file holding the API token (surrounding whitespace ignored).
    #[arg(long, env = "GITMOXI_API_TOKEN_FILE", conflicts_with = "api_token")]
    pub api_token_file: Option<PathBuf>,
    #[arg(long, env = "GITMOXI_CONCURRENCY")]
    pub concurrency: Option<usize>,
    #[arg(long, env = "GITMOXI_MAX_PRUNE")]
    pub max_prune: Option<usize>,
    #[arg(long, env = "GITMOXI_MAX_PRUNE_PERCENT")]
    pub max_prune_percent: Option<u32>,
    /// SDK attempts per AWS call (1 disables SDK retries).
    #[arg(long, env = "GITMOXI_AWS_MAX_ATTEMPTS")]
    pub aws_max_attempts: Option<u32>,
    /// Secret that signs GitHub push webhooks (POST /webhooks/github). Visible to other users
    /// as a flag: prefer --github-webhook-secret-file or the variable.
    #[arg(long, env = "GITMOXI_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// A file holding the GitHub webhook secret.
    #[arg(long, env = "GITMOXI_GITHUB_WEBHOOK_SECRET_FILE", conflicts_with = "github_webhook_secret")]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// Token GitLab sends in X-Gitlab-Token (POST /webhooks/gitlab). Visible to other users as
    /// a flag: prefer --gitlab-webhook-token-file or the variable.
    #[arg(long, env = "GITMOXI_GITLAB_WEBHOOK_TOKEN", hide_env_values = true)]
    pub gitlab_webhook_token: Option<String>,
    /// A file holding the GitLab webhook token.
    #[arg(long, env = "GITMOXI_GITLAB_WEBHOOK_TOKEN_FILE", conflicts_with = "gitlab_webhook_token")]
    pub gitlab_webhook_token_file: Option<PathBuf>,
    /// Slack incoming webhook URL for deployment events (a secret: prefer
    /// --slack-webhook-url-file or the variable).
    #[arg(long, env = "GITMOXI_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// A file holding the Slack webhook URL.
    #[arg(long, env = "GITMOXI_SLACK_WEBHOOK_URL_FILE", conflicts_with = "slack_webhook_url")]
    pub slack_webhook_url_file: Option<PathBuf>,
    /// A file holding the Slack app's signing secret: gate messages get Approve / Reject buttons
    /// and `POST /webhooks/slack/interactive` checks Slack's signature with it.
    #[arg(long, env = "GITMOXI_SLACK_SIGNING_SECRET_FILE")]
    pub slack_signing_secret_file: Option<PathBuf>,
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
            allowed_hosts: self.allowed_hosts.clone(),
            poll_interval: self.poll_interval.clone(),
            region: self.region.clone(),
            api_token: self.api_token.clone(),
            api_token_file: self.api_token_file.clone(),
            github_webhook_secret_file: self.github_webhook_secret_file.clone(),
            gitlab_webhook_token_file: self.gitlab_webhook_token_file.clone(),
            slack_webhook_url_file: self.slack_webhook_url_file.clone(),
            slack_signing_secret_file: self.slack_signing_secret_file.clone(),
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

/// What `gitmoxi releases` can do besides listing.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseAction {
    /// Approve a release's promotion to a stage, as the local user (one of the stage's approvers).
    Approve {
        /// The release (as `gitmoxi releases` lists it).
        release: String,
        /// The stage (`repo@branch`, or its repository's name).
        stage: String,
        #[command(flatten)]
        remote: Remote,
    },
}
