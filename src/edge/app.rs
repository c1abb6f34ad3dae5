//! Wiring in one place (rule 9): open the store, build clients, spawn the Git sources, the
//! controller and the HTTP server under one shutdown signal, and join them all.

use crate::base::clock::Clock;
use crate::edge::http::webhooks::Webhooks;
use crate::io::aws::pool::SdkProvider;
use crate::io::aws::AwsProvider;
use crate::io::metrics::Metrics;
use crate::runtime::config::Config;
use crate::runtime::controller::{Controller, ControllerSettings};
use gitmoxi_state::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let aws: Arc<dyn AwsProvider> = Arc::new(
        SdkProvider::load(config.aws_max_attempts, metrics.aws.clone())
            .await
            .with_roles(&config.accounts)
            .with_limits(Arc::new(crate::io::aws::limits::Limiter::new(config.aws_limits.clone(), metrics.aws_rate_limited.clone()))),
    );
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing the passes in flight");
        signal.cancel();
    });
    run_with(config, aws, metrics, Clock::system(), rand::random(), shutdown).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs with injected AWS, clock and seed (simulation tests use this) until `shutdown`.
pub async fn run_with(
    config: Config,
    aws: Arc<dyn AwsProvider>,
    metrics: Metrics,
    clock: Clock,
    seed: u64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _lock = crate::base::state_dir::prepare(&config.state_dir)?;
    let store = Store::open(&config.state_dir.join("db"))?;
    let own_account = match aws.caller_account().await {
        Ok(account) => {
            tracing::info!(account = %account, "AWS credentials belong to this account");
            Some(account)
        }
        Err(e) => {
            tracing::warn!(error = %e, "STS GetCallerIdentity failed: apps whose depdef names an account will fail until gitmoxi starts with working credentials");
            None
        }
    };
    let controller = Controller::new(
        store,
        aws,
        clock,
        metrics,
        ControllerSettings {
            default_region: config.default_region.clone(),
            concurrency: config.concurrency,
            seed,
            drift_interval: config.drift_interval,
            own_account,
            account_roles: gitmoxi_deploy::accounts::AccountRoles::new(
                config.accounts.iter().map(|(id, role)| (id.clone(), role.regions.clone())),
            ),
            render_limits: config.limits,
            render_worker: Some(match &config.render_worker {
                Some(path) => path.clone(),
                None => {
                    std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find the gitmoxi binary for the render workers: {e}"))?
                }
            }),
            freezes: config.freezes.clone(),
        },
    );
    let ha = match &config.ha {
        Some(settings) => {
            let ha = Arc::new(crate::io::ha::Ha::connect(settings.clone(), &config.default_region, &controller.metrics).await);
            tracing::info!(table = %settings.table, replica = %settings.replica, shards = settings.shards, "high availability: apps are shared with the other replicas through shard leases");
            controller.set_ha(ha.clone());
            Some(ha)
        }
        None => None,
    };
    controller.enqueue_stored()?;
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(ha) = &ha {
        tasks.spawn(ha.clone().run(controller.clone(), shutdown.clone()));
    }
    let sinks = crate::integrations::notify::Sinks {
        slack_webhook_url: config.slack_webhook_url.clone(),
        webhook_url: config.notify_webhook_url.clone(),
        statuses: config.repos.iter().filter_map(|r| Some((r.name.clone(), r.forge.clone()?))).collect(),
        credentials: Some(controller.credentials.clone()),
        public_url: config.public_url.clone(),
        slack_buttons: config.slack.is_some(),
        outbound: crate::io::outbound::OutboundPolicy { allowed_hosts: config.webhook_hosts.clone(), own_listener: Some(config.listen) },
    };
    let (notifier, worker) = crate::integrations::notify::channel(sinks, &controller.metrics);
    controller.set_notifier(notifier);
    tasks.spawn(worker.run(shutdown.clone()));
    let repos = crate::runtime::repos::Repos::new(
        controller.clone(),
        config.state_dir.clone(),
        default_poll(&config),
        shutdown.clone(),
        config.api_repos.clone(),
    );
    repos.start(&config.repos).map_err(|e| anyhow::anyhow!("cannot start the repositories: {e}"))?;
    if let Some(ha) = controller.ha() {
        tasks.spawn(repos.clone().follow_shared(follow_shared_every(ha)));
    }
    {
        // previews a crash left behind (scratch repositories, old preview refs)
        let (dir, tracked) = (config.state_dir.clone(), config.repos.clone());
        tokio::task::spawn_blocking(move || crate::runtime::preview::sweep_previews(&dir, &tracked));
    }
    let webhooks = Arc::new(Webhooks {
        github_secret: config.github_webhook_secret.clone(),
        gitlab_token: config.gitlab_webhook_token.clone(),
        slack: config.slack.clone(),
    });
    tasks.spawn(controller.clone().run(shutdown.clone()));
    let pipelines = (!config.pipelines.is_empty()).then(|| {
        let runner = crate::runtime::pipelines::Pipelines::new(
            controller.clone(),
            config.pipelines.clone(),
            &config.repos,
            config.state_dir.clone(),
            repos.clone(),
        );
        tasks.spawn(runner.clone().run(shutdown.clone()));
        runner
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}; choose another --listen address", config.listen))?;
    tracing::info!(listen = %config.listen, repos = repos.list().len(), "gitmoxi serving");
    let ui = crate::edge::http::ui::shared();
    if let Some(ha) = controller.ha() {
        tasks.spawn(crate::edge::http::ui::follow_signouts(ui.clone(), controller.clone(), follow_shared_every(ha), shutdown.clone()));
    }
    {
        // open pages see the server go: their event streams end with it
        let (ui, stopping) = (ui.clone(), shutdown.clone());
        tasks.spawn(async move {
            stopping.cancelled().await;
            ui.live.close();
        });
    }
    let http_state = crate::edge::http::HttpState {
        controller: controller.clone(),
        access: Arc::new(crate::edge::http::access::Access::new(
            config.api_token.clone(),
            config.api_tokens.clone(),
            config.approvers.clone(),
        )),
        webhooks,
        repos: repos.clone(),
        pipelines,
        state_dir: config.state_dir.clone(),
        llm: config.llm.clone(),
        allowed_hosts: {
            let open: Vec<&str> = config.repos.iter().filter(|r| r.scope.is_open()).map(|r| r.name.as_str()).collect();
            if config.repos.len() > 1 && !open.is_empty() {
                tracing::warn!(
                    repositories = %open.join(", "),
                    "more than one repository and these have no [repos.scope]: each may deploy into every configured account, region and cluster"
                );
            }
            let any = !config.listen.ip().is_loopback() && config.allowed_hosts.is_empty();
            if any {
                tracing::warn!(
                    "listening beyond loopback with no allowed_hosts: every Host name is answered (the API token protects /api)"
                );
            }
            crate::edge::http::hosts::AllowedHosts::new(&config.allowed_hosts, any)
        },
        gmctl_tokenless_networks: {
            let nets = &config.gmctl_tokenless_networks;
            if !nets.is_empty() {
                let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
                tracing::warn!(
                    networks = %list.join(", "),
                    "[gmctl] tokenless_networks is set: /api/v1 (gmctl's API, which can deploy and delete repositories) answers these networks WITHOUT the API token; every other path still needs it"
                );
            }
            Arc::new(nets.clone())
        },
        public_url: config.public_url.clone(),
        ui,
    };
    if let Some(inbox) = ha.as_ref().and_then(|ha| ha.take_commands()) {
        tasks.spawn(crate::edge::http::commands::apply_forwarded(http_state.clone(), inbox, shutdown.clone()));
    }
    let router = crate::edge::http::router(http_state);
    let stop = shutdown.clone();
    tasks.spawn(crate::edge::http::serve::serve(listener, router, stop));
    while tasks.join_next().await.is_some() {}
    repos.join().await;
    controller.flush_store().await?;
    if let Some(ha) = &ha {
        ha.leave(controller.as_ref()).await;
    }
    Ok(())
}

/// The poll interval of repositories added through the API (the first configured one's, or 60 s).
fn default_poll(config: &Config) -> std::time::Duration {
    config.repos.first().map_or(std::time::Duration::from_secs(60), |r| r.poll_interval)
}

/// How often a replica reads what the others shared through the HA table (repositories added
/// through the API, signed-out sessions): five lease renewals, so following costs a fifth of a
/// query per renewal and kind, and a change reaches every replica within seconds.
fn follow_shared_every(ha: &crate::io::ha::Ha) -> std::time::Duration {
    ha.config.renew * 5
}
