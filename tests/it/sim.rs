//! Simulation: the real controller against the fake AWS world on a paused clock.
//!
//! Each test drives commits (heads) into the controller, lets virtual time run, and checks the
//! world and the store. Restarts abort the controller task mid-flight and rebuild it from a crash
//! image of the store: a copy of its files as they are on disk, so writes not flushed are lost.

use crate::support::ecs_app;
use gitmoxi::clock::Clock;
use gitmoxi::controller::{Controller, ControllerSettings, RepoPolicy};
use gitmoxi::metrics::Metrics;
use gitmoxi_deploy::record::{AppKey, Outcome};
use gitmoxi_deploy::spec::{load_snapshot, MemTree, RenderContext};
use gitmoxi_state::Store;
use gitmoxi_testing::fake::{FakeAccount, FakeWorld, Knobs};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) const REGION: &str = "us-east-1";
const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 180}, "gmDeploymentCircuitBreaker": {"failureThreshold": 2}}"#;

pub(crate) struct Sim {
    pub(crate) world: FakeWorld,
    pub(crate) store: Store,
    /// Where the store lives: every restart opens a crash image of it (see [`Sim::restart`]).
    pub(crate) state_dir: tempfile::TempDir,
    pub(crate) generation: u32,
    pub(crate) controller: Arc<Controller>,
    pub(crate) task: Option<JoinHandle<()>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tree: MemTree,
    pub(crate) commits: u32,
    pub(crate) seed: u64,
    pub(crate) policy: RepoPolicy,
    pub(crate) clock: Clock,
    /// Other AWS accounts (each its own world) and the roles the controller has for them.
    pub(crate) accounts: Vec<FakeAccount>,
    /// `[[freezes]]` of the controller's configuration.
    pub(crate) freezes: Vec<gitmoxi_deploy::release::freeze::Freeze>,
}

/// Copies a directory tree file by file (the store's files as they are on disk now).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the store directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a store file");
        }
    }
}

impl Sim {
    pub(crate) fn new() -> Sim {
        let world = FakeWorld::new();
        world.set_knobs(Knobs::default());
        world.create_cluster(REGION, "prod");
        let state_dir = tempfile::tempdir().expect("a state directory");
        let store = Store::open_for_simulation(&state_dir.path().join("gen-0")).expect("store");
        let seed = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
        // One clock for the whole simulation: a restarted controller reads the same virtual time.
        let clock = Clock::starting_at(1_795_000_000_000);
        let controller = Self::build(&world, &store, &clock, seed);
        let mut sim = Sim {
            world,
            store,
            state_dir,
            generation: 0,
            controller,
            task: None,
            shutdown: CancellationToken::new(),
            tree: MemTree::new(),
            commits: 0,
            seed,
            policy: RepoPolicy { max_prune: 3, max_prune_percent: 25, drift: Default::default(), adopt_untagged: false },
            clock,
            accounts: Vec::new(),
            freezes: Vec::new(),
        };
        sim.start();
        sim
    }

    pub(crate) fn build(world: &FakeWorld, store: &Store, clock: &Clock, seed: u64) -> Arc<Controller> {
        Self::build_with(world, &[], &[], store, clock, seed)
    }

    /// The controller with a role in each of `accounts` (whether or not the account trusts it)
    /// and `freezes` (`[[freezes]]`).
    pub(crate) fn build_with(
        world: &FakeWorld,
        accounts: &[FakeAccount],
        freezes: &[gitmoxi_deploy::release::freeze::Freeze],
        store: &Store,
        clock: &Clock,
        seed: u64,
    ) -> Arc<Controller> {
        let roles = accounts.iter().map(|a| (a.id.clone(), gitmoxi_deploy::accounts::AllowedRegions::Any));
        Controller::new(
            store.clone(),
            world.provider_with_accounts(accounts),
            clock.clone(),
            Metrics::new(),
            ControllerSettings {
                default_region: REGION.into(),
                concurrency: 4,
                seed,
                drift_interval: Duration::from_secs(300),
                own_account: Some("123456789012".into()),
                account_roles: gitmoxi_deploy::accounts::AccountRoles::new(roles),
                render_limits: Default::default(),
                render_worker: None,
                freezes: freezes.to_vec(),
            },
        )
    }

    pub(crate) fn start(&mut self) {
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(self.controller.clone().run(self.shutdown.clone())));
    }

    /// Aborts the controller wherever it is and rebuilds it from what a crash would leave on
    /// disk: a copy of the store's files taken now (writes not flushed yet are lost, as in a
    /// `kill -9`), reopened as a new store.
    pub(crate) async fn restart(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let from = self.state_dir.path().join(format!("gen-{}", self.generation));
        self.generation += 1;
        let to = self.state_dir.path().join(format!("gen-{}", self.generation));
        copy_dir(&from, &to);
        self.store = Store::open_for_simulation(&to).expect("the crash image of the store opens");
        let _ = std::fs::remove_dir_all(&from);
        self.seed += 1;
        self.controller = Self::build_with(&self.world, &self.accounts, &self.freezes, &self.store, &self.clock, self.seed);
        self.controller.enqueue_stored().expect("enqueue");
        self.apply();
        self.start();
    }

    /// Aborts the controller and starts it again on an empty store (the state directory was
    /// lost or moved aside), with the same AWS world.
    pub(crate) async fn restart_with_an_empty_store(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.generation += 1;
        let fresh = self.state_dir.path().join(format!("gen-{}", self.generation));
        self.store = Store::open_for_simulation(&fresh).expect("an empty store");
        self.seed += 1;
        self.controller = Self::build(&self.world, &self.store, &self.clock, self.seed);
        self.apply();
        self.start();
    }

    /// Gives the controller `freezes` (a restart with the new configuration).
    pub(crate) async fn with_freezes(&mut self, freezes: Vec<gitmoxi_deploy::release::freeze::Freeze>) {
        self.freezes = freezes;
        self.restart().await;
    }

    /// Gives the controller roles in `accounts` (a restart with the new configuration).
    pub(crate) async fn with_accounts(&mut self, accounts: Vec<FakeAccount>) {
        self.accounts = accounts;
        self.restart().await;
    }

    pub(crate) fn key(prefix: &str) -> AppKey {
        AppKey { repo: "deploys".into(), branch: "main".into(), prefix: prefix.into() }
    }

    pub(crate) fn add_app(&mut self, prefix: &str, service: &str, image: &str) {
        for (path, content) in ecs_app(prefix, service, "prod", "{{ image }}", 2, DEPDEF) {
            self.tree.insert(&path, &content);
        }
        self.set_image(prefix, image);
    }

    pub(crate) fn set_image(&mut self, prefix: &str, image: &str) {
        self.tree.insert(
            &format!("{prefix}_input.json"),
            &format!(r#"{{"image": "{image}", "subnets": ["subnet-1"], "security_groups": ["sg-1"]}}"#),
        );
    }

    pub(crate) fn remove_app(&mut self, prefix: &str) {
        for suffix in ["_svcdef.json", "_taskdef.json", "_depdef.json", "_input.json"] {
            self.tree.remove(&format!("{prefix}{suffix}"));
        }
    }

    /// Commits the tree: the controller loads it as the new head.
    pub(crate) fn commit(&mut self) {
        self.commits += 1;
        self.apply();
    }

    pub(crate) fn apply(&self) {
        let snapshot = load_snapshot(&self.tree, &RenderContext::new(REGION.into()));
        self.controller.apply_head("deploys", "main", &self.head(), snapshot, self.policy).expect("apply head");
    }

    /// Lets virtual time run until `done` holds (checked every second), at most `limit`.
    /// After every step the invariant of rule 2 is checked: no action was ever refused because
    /// its record was not flushed first.
    pub(crate) async fn run_until(&self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let start = tokio::time::Instant::now();
        while start.elapsed() < limit {
            self.assert_persisted_before_acting();
            if done(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.assert_persisted_before_acting();
        done(self)
    }

    /// Panics when the executor was about to act on a record it had not flushed, or when an app
    /// that is not at rest has no pass scheduled soon (level-triggered, issue 23).
    pub(crate) fn assert_persisted_before_acting(&self) {
        let refused = self.controller.metrics.reconcile_errors_total.with_label_values(&["not_durable"]).get();
        assert_eq!(refused, 0, "an AWS mutation was planned before the record leading to it was flushed");
        let unscheduled = self.controller.unscheduled_apps(Duration::from_secs(5), Duration::from_secs(120)).expect("store");
        assert!(unscheduled.is_empty(), "apps left without a pass ({}): {unscheduled:?}", self.seed_note());
    }

    /// Restarts the controller at every phase boundary of `prefix` and right after every AWS
    /// mutation (whose answer may have been lost), until `done` holds or `limit` of virtual time
    /// has passed; returns how many restarts it made.
    pub(crate) async fn restart_at_boundaries_until(&mut self, prefix: &str, limit: Duration, done: impl Fn(&Sim) -> bool) -> u32 {
        let key = Self::key(prefix);
        let mut last = (None, 0);
        let mut restarts = 0;
        let step = Duration::from_millis(200);
        for _ in 0..(limit.as_millis() / step.as_millis()) {
            let now = (self.store.record(&key).expect("store").map(|r| r.phase.name()), self.world.mutation_count());
            if now != last {
                self.restart().await;
                last = (now.0, self.world.mutation_count());
                restarts += 1;
            }
            if done(self) {
                break;
            }
            tokio::time::sleep(step).await;
        }
        restarts
    }

    pub(crate) fn stable_on(&self, service: &str, revision: &str) -> bool {
        self.world.service(REGION, "prod", service).is_some_and(|s| {
            s.task_definition.as_deref().is_some_and(|t| t.ends_with(revision))
                && s.running_count == s.desired_count
                && s.deployments.len() == 1
        })
    }

    pub(crate) fn idle(&self, prefix: &str) -> bool {
        self.store.record(&Self::key(prefix)).expect("store").is_none()
    }

    pub(crate) fn outcome(&self, prefix: &str) -> Option<Outcome> {
        self.store.app(&Self::key(prefix)).expect("store").and_then(|a| a.last_outcome)
    }

    pub(crate) fn history(&self, prefix: &str) -> Vec<String> {
        self.store.history(&Self::key(prefix)).expect("store").into_iter().map(|h| h.message).collect()
    }

    /// Stores an operator's answer to the gate the app's deployment waits at, as `gitmoxi approve`
    /// / `gitmoxi reject` do (via `via`).
    pub(crate) fn answer_gate(&self, prefix: &str, approve: bool, by: &str, via: gitmoxi_deploy::commands::AnswerChannel) {
        let key = Self::key(prefix);
        let approval = gitmoxi_deploy::commands::Approval { approve, by: by.into(), via, at_ms: 0 };
        self.store.submit_command(&key, &gitmoxi_deploy::commands::Command::Answer { approval }).expect("store");
    }

    /// The app's last ended deployment.
    pub(crate) fn last_deployment(&self, prefix: &str) -> gitmoxi_deploy::record::DeploymentRecord {
        let app = self.store.app(&Self::key(prefix)).expect("store").expect("the app");
        self.store.deployment(app.last_deployment.as_deref().expect("a deployment")).expect("store").expect("its record")
    }

    /// The commit id the controller got last.
    pub(crate) fn head(&self) -> String {
        format!("c{:04}", self.commits)
    }

    pub(crate) fn seed_note(&self) -> String {
        format!("(replay with SIM_SEED={})", self.seed)
    }
}

pub(crate) const MINUTES: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn rolling_deployment_creates_then_updates_the_service() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
    let svc = sim.world.service(REGION, "prod", "web").unwrap();
    assert_eq!(svc.tags.get("gitmoxi:app").map(String::as_str), Some("main:prod/web/web"));

    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:2")).await);
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
    assert_eq!(sim.world.revisions(REGION, "web"), 2);
    let history = sim.history("prod/web/web");
    assert!(history.iter().any(|h| h.contains("registered task definition web:2")), "{history:?}");
    assert!(history.iter().any(|h| h.starts_with("stable: 2/2 tasks of web:2")), "{history:?}");
}

#[tokio::test(start_paused = true)]
async fn breaker_trips_and_rolls_back_to_the_previous_task_definition() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.set_image("prod/web/web", "nginx:fail");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.idle("prod/web/web") && s.outcome("prod/web/web") == Some(Outcome::RolledBack)).await);
    assert!(sim.run_until(2 * MINUTES, |s| s.stable_on("web", "web:1")).await, "back on the last good revision");
    let app = sim.store.app(&Sim::key("prod/web/web")).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("circuit breaker tripped"), "{:?}", app.last_cause);
    let record = sim.store.deployment(app.last_deployment.as_deref().unwrap()).unwrap().unwrap();
    assert!(record.evidence.iter().any(|e| e.contains("CannotPullContainerError")), "{:?}", record.evidence);
    assert!(record.evidence.iter().any(|e| e.contains("image pull failure")), "{:?}", record.evidence);
    // issue 25: the tasks' identical stops are one line with a count
    let pulls: Vec<&String> = record.evidence.iter().filter(|e| e.contains("CannotPullContainerError")).collect();
    assert_eq!(pulls.len(), 1, "{:?}", record.evidence);
    assert!(pulls[0].starts_with("2 tasks stopped: CannotPullContainerError"), "{:?}", record.evidence);
}

/// Issue 25: without a breaker, an image that cannot be pulled ends in the stability timeout; the
/// cause is what every stopped task says — an image pull failure, with its own next step — not
/// "raise the timeout", and the evidence is one line per distinct stop.
#[tokio::test(start_paused = true)]
async fn a_timeout_whose_tasks_all_failed_to_pull_is_an_image_problem_with_grouped_evidence() {
    let mut sim = Sim::new();
    let no_breaker = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 120}}"#;
    for (path, content) in crate::support::ecs_app("prod/web/web", "web", "prod", "{{ image }}", 2, no_breaker) {
        sim.tree.insert(&path, &content);
    }
    sim.set_image("prod/web/web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.set_image("prod/web/web", "nginx:fail");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.idle("prod/web/web") && s.outcome("prod/web/web") == Some(Outcome::RolledBack)).await);
    let record = sim.last_deployment("prod/web/web");
    assert_eq!(record.cause, Some(gitmoxi_deploy::record::FailureCause::ImagePullFailure), "{:?}", record.evidence);
    let pulls: Vec<&String> = record.evidence.iter().filter(|e| e.contains("CannotPullContainerError")).collect();
    assert_eq!(pulls.len(), 1, "one line for every task that failed the same way: {:?}", record.evidence);
    let stopped: u32 = pulls[0].split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(stopped > 2, "the tasks ECS kept replacing for 120 s are counted: {:?}", record.evidence);
    assert!(gitmoxi_deploy::advice::next_step(&record).contains("image and tag"), "{}", gitmoxi_deploy::advice::next_step(&record));
}

#[tokio::test(start_paused = true)]
async fn an_autoscaled_count_survives_an_image_deployment_and_a_rollback() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    // Application Auto Scaling (or an operator) scales the service out; the svcdef still says 2
    sim.world.scale_service(REGION, "prod", "web", 3);
    assert!(
        sim.run_until(5 * MINUTES, |s| s.stable_on("web", "web:1") && s.world.service(REGION, "prod", "web").unwrap().running_count == 3)
            .await
    );

    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:2")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
    let svc = sim.world.service(REGION, "prod", "web").unwrap();
    assert_eq!((svc.desired_count, svc.running_count), (3, 3), "the image deployment kept the scaled count");
    assert!(
        sim.world.mutations("UpdateService").iter().all(|body| !body.contains("desiredCount")),
        "{:?}",
        sim.world.mutations("UpdateService")
    );

    sim.set_image("prod/web/web", "nginx:fail");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.idle("prod/web/web") && s.outcome("prod/web/web") == Some(Outcome::RolledBack)).await);
    assert!(sim.run_until(5 * MINUTES, |s| s.stable_on("web", "web:2")).await, "back on the last good revision");
    let svc = sim.world.service(REGION, "prod", "web").unwrap();
    assert_eq!((svc.desired_count, svc.running_count), (3, 3), "the rollback kept the scaled count too");
}

/// A svcdef without a taskdef file that names its task definition by family or
/// `family:revision`: ECS reports ARNs, and the deployment converges with one update.
#[tokio::test(start_paused = true)]
async fn a_task_definition_named_by_family_or_revision_converges_with_one_update() {
    let mut sim = Sim::new();
    let ecs = sim.world.provider().ecs(None, REGION);
    for image in ["nginx:1", "nginx:2"] {
        let body = serde_json::json!({"family": "api", "containerDefinitions": [{"name": "api", "image": image, "memory": 128}]});
        ecs.register_task_definition(&body).await.expect("registered");
    }
    let files = crate::support::ecs_app("prod/api/api", "api", "prod", "{{ image }}", 2, DEPDEF);
    let svcdef = |named: &str| files["prod/api/api_svcdef.json"].replacen('{', &format!("{{\"taskDefinition\": \"{named}\","), 1);
    for (path, content) in files.iter().filter(|(path, _)| !path.ends_with("_taskdef.json") && !path.ends_with("_svcdef.json")) {
        sim.tree.insert(path, content);
    }
    sim.tree.insert("prod/api/api_svcdef.json", &svcdef("api:1"));
    sim.tree.insert("prod/api/api_input.json", r#"{"image": "unused", "subnets": ["subnet-1"], "security_groups": ["sg-1"]}"#);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/api/api") && s.stable_on("api", "api:1")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/api/api"), Some(Outcome::Succeeded));
    let svc = sim.world.service(REGION, "prod", "api").unwrap();
    assert!(svc.task_definition.as_deref().unwrap().starts_with("arn:aws:ecs:"), "ECS reports the ARN: {svc:?}");

    // by family: the newest revision, one UpdateService, then steady (no update every pass)
    sim.tree.insert("prod/api/api_svcdef.json", &svcdef("api"));
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/api/api") && s.stable_on("api", "api:2")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/api/api"), Some(Outcome::Succeeded));
    let updates = sim.world.mutations("UpdateService").len();
    assert_eq!(updates, 1, "{:?}", sim.world.mutations("UpdateService"));
    sim.run_until(10 * MINUTES, |_| false).await;
    assert_eq!(sim.world.mutations("UpdateService").len(), updates, "no deployment repeats itself");
}

#[tokio::test(start_paused = true)]
async fn an_app_in_another_account_fails_and_touches_nothing() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.add_app("prod/other/other", "other", "nginx:1");
    sim.tree.insert("prod/other/other_depdef.json", r#"{"environment": {"account": "210987654321"}}"#);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    assert!(sim.run_until(MINUTES, |s| s.outcome("prod/other/other") == Some(Outcome::Failed)).await);
    let app = sim.store.app(&Sim::key("prod/other/other")).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("no role configured for account 210987654321"), "{:?}", app.last_cause);
    assert!(sim.world.service(REGION, "prod", "other").is_none(), "no service created in the controller's account");
    assert_eq!(sim.world.revisions(REGION, "other"), 0, "no task definition registered");
    sim.run_until(10 * MINUTES, |_| false).await;
    assert_eq!(sim.world.revisions(REGION, "other"), 0, "and no retry");
}

#[tokio::test(start_paused = true)]
async fn stability_timeout_rolls_back() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.set_image("prod/web/web", "nginx:stuck");
    sim.commit();
    assert!(sim.run_until(30 * MINUTES, |s| s.idle("prod/web/web") && s.outcome("prod/web/web") == Some(Outcome::RolledBack)).await);
    let app = sim.store.app(&Sim::key("prod/web/web")).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("stability timeout"), "{:?}", app.last_cause);
    assert!(sim.stable_on("web", "web:1"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_fingerprint_is_not_retried_until_a_new_commit() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.set_image("prod/web/web", "nginx:fail");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.outcome("prod/web/web") == Some(Outcome::RolledBack)).await);
    let registrations = sim.world.revisions(REGION, "web");
    // the same head again, a restart, and an hour of polling: no new attempt
    sim.commit();
    sim.restart().await;
    sim.run_until(60 * MINUTES, |_| false).await;
    assert_eq!(sim.world.revisions(REGION, "web"), registrations, "failed fingerprint retried");
    assert!(sim.idle("prod/web/web"));
    // a new commit with a fix deploys
    sim.set_image("prod/web/web", "nginx:3");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.outcome("prod/web/web") == Some(Outcome::Succeeded)).await);
    assert!(sim.stable_on("web", &format!("web:{}", registrations + 1)));
}

#[tokio::test(start_paused = true)]
async fn a_restart_mid_stability_resumes_without_a_second_registration() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    let key = Sim::key("prod/web/web");
    assert!(sim.run_until(5 * MINUTES, |s| s.store.record(&key).unwrap().is_some_and(|r| r.phase.name() == "stabilize")).await);
    sim.restart().await;
    sim.restart().await;
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:2")).await, "{}", sim.seed_note());
    assert_eq!(sim.world.revisions(REGION, "web"), 2, "exactly one registration for the deployment");
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn lost_responses_and_throttling_create_nothing_twice() {
    let mut sim = Sim::new();
    sim.world.lose_response("RegisterTaskDefinition", 1);
    sim.world.lose_response("CreateService", 1);
    sim.world.throttle("DescribeServices", 3);
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    assert_eq!(sim.world.revisions(REGION, "web"), 1);
    assert_eq!(sim.world.mutations("CreateService").len(), 1);
    assert_eq!(sim.world.calls("CreateService"), 1, "the lost create is found again, not repeated");
    assert_eq!(sim.world.calls("RegisterTaskDefinition"), 1, "the lost registration is found by its tag");
}

#[tokio::test(start_paused = true)]
async fn restarts_at_every_step_converge_with_one_registration_per_deployment() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    // abort the controller every few virtual seconds while it deploys
    for _ in 0..30 {
        sim.run_until(Duration::from_secs(3), |_| false).await;
        sim.restart().await;
        if sim.idle("prod/web/web") && sim.stable_on("web", "web:1") {
            break;
        }
    }
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    assert_eq!(sim.world.revisions(REGION, "web"), 1);
    assert_eq!(sim.world.mutations("CreateService").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_newer_commit_supersedes_the_running_deployment() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.set_image("prod/web/web", "nginx:stuck");
    sim.commit();
    let key = Sim::key("prod/web/web");
    assert!(sim.run_until(5 * MINUTES, |s| s.store.record(&key).unwrap().is_some_and(|r| r.phase.name() == "stabilize")).await);
    sim.set_image("prod/web/web", "nginx:3");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:3")).await);
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
    let superseded = sim.store.deployments().unwrap().into_iter().filter(|d| d.outcome == Some(Outcome::Superseded)).count();
    assert_eq!(superseded, 1);
    assert!(sim.history("prod/web/web").iter().any(|h| h.starts_with("superseded by commit")));
}

#[tokio::test(start_paused = true)]
async fn a_folder_move_keeps_the_service() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.remove_app("prod/web/web");
    sim.add_app("teams/storefront/web", "web", "nginx:1");
    sim.commit();
    assert!(
        sim.run_until(5 * MINUTES, |s| s.world.service(REGION, "prod", "web").is_some_and(|svc| svc
            .tags
            .get("gitmoxi:app")
            .map(String::as_str)
            == Some("main:teams/storefront/web")))
            .await
    );
    assert_eq!(sim.world.mutations("DeleteService").len(), 0);
    assert_eq!(sim.world.mutations("CreateService").len(), 1);
    assert_eq!(sim.world.revisions(REGION, "web"), 1, "same content: no redeploy");
    assert!(sim.store.app(&Sim::key("prod/web/web")).unwrap().is_none());
    let moved = sim.store.app(&Sim::key("teams/storefront/web")).unwrap().unwrap();
    assert!(moved.applied.owned);
    assert!(sim.history("teams/storefront/web").iter().any(|h| h.contains("moved from 'prod/web/web'")));
}

#[tokio::test(start_paused = true)]
async fn five_deletes_in_one_head_are_held_by_prune_protection() {
    let mut sim = Sim::new();
    for i in 0..8 {
        sim.add_app(&format!("apps/s{i}/s{i}"), &format!("s{i}"), "nginx:1");
    }
    sim.commit();
    assert!(
        sim.run_until(15 * MINUTES, |s| (0..8).all(|i| s.idle(&format!("apps/s{i}/s{i}")) && s.stable_on(&format!("s{i}"), ":1"))).await
    );
    for i in 0..5 {
        sim.remove_app(&format!("apps/s{i}/s{i}"));
    }
    sim.commit();
    sim.run_until(10 * MINUTES, |_| false).await;
    assert_eq!(sim.world.mutations("DeleteService").len(), 0, "held");
    let held = sim.store.app(&Sim::key("apps/s0/s0")).unwrap().unwrap();
    assert_eq!(held.intent, Some(gitmoxi_deploy::intent::Intent::Held));
    assert!(held.intent_reason.as_deref().unwrap().contains("--allow-prune"));

    // one delete among many goes ahead: restore four, keep one deleted
    for i in 1..5 {
        sim.add_app(&format!("apps/s{i}/s{i}"), &format!("s{i}"), "nginx:1");
    }
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s
            .world
            .service(REGION, "prod", "s0")
            .is_some_and(|svc| svc.status == gitmoxi_deploy::observed::ServiceStatus::Inactive))
            .await
    );
    assert_eq!(sim.world.mutations("DeleteService"), vec!["s0".to_string()]);
    assert!(sim.run_until(MINUTES, |s| s.store.app(&Sim::key("apps/s0/s0")).unwrap().is_none()).await);
    assert_eq!(sim.outcome("apps/s1/s1"), Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn a_missing_cluster_is_a_clear_failure_not_a_retry_loop() {
    let mut sim = Sim::new();
    for (path, content) in ecs_app("prod/api/api", "api", "nowhere", "{{ image }}", 1, "{}") {
        sim.tree.insert(&path, &content);
    }
    sim.set_image("prod/api/api", "nginx:1");
    sim.commit();
    assert!(sim.run_until(5 * MINUTES, |s| s.outcome("prod/api/api") == Some(Outcome::Failed)).await);
    let app = sim.store.app(&Sim::key("prod/api/api")).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("ClusterNotFoundException"), "{:?}", app.last_cause);
    assert!(sim.history("prod/api/api").iter().any(|h| h.contains("Cluster not found")));
    let calls = sim.world.calls("DescribeServices");
    sim.run_until(60 * MINUTES, |_| false).await;
    assert!(sim.world.calls("DescribeServices") <= calls + 1, "no retry loop on a permanent error");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_app_reports_its_error_and_is_forgotten_when_its_files_go() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    for (path, content) in ecs_app("prod/bad/bad", "bad", "prod", "{{ imagee }}", 1, "{}") {
        sim.tree.insert(&path, &content);
    }
    sim.set_image("prod/bad/bad", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    let bad = sim.store.app(&Sim::key("prod/bad/bad")).unwrap().unwrap();
    assert_eq!(bad.intent, Some(gitmoxi_deploy::intent::Intent::Error));
    assert!(bad.problems[0].to_string().starts_with("prod/bad/bad_taskdef.json:"), "{:?}", bad.problems);
    assert!(sim.history("prod/bad/bad").iter().any(|h| h.contains("'imagee'")));
    assert!(sim.world.service(REGION, "prod", "bad").is_none());
    sim.remove_app("prod/bad/bad");
    sim.commit();
    assert!(sim.store.app(&Sim::key("prod/bad/bad")).unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn drift_is_healed_by_redeploying_the_applied_state() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    // someone points the service at another revision behind gitmoxi's back
    sim.world.set_service_task_definition(REGION, "prod", "web", "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1-hotfix");
    assert!(
        sim.run_until(15 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:2")).await,
        "{:?}",
        sim.history("prod/web/web")
    );
    let history = sim.history("prod/web/web");
    assert!(history.iter().any(|h| h.starts_with("drift: service web runs web:1-hotfix instead of web:1")), "{history:?}");
    assert!(history.iter().any(|h| h.contains("redeploying the applied state")), "{history:?}");
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn drift_is_only_reported_under_the_report_policy() {
    let mut sim = Sim::new();
    sim.policy.drift.mode = gitmoxi_deploy::drift::DriftMode::Report;
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await);
    sim.world.set_service_task_definition(REGION, "prod", "web", "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1-hotfix");
    assert!(sim.run_until(15 * MINUTES, |s| s.history("prod/web/web").iter().any(|h| h.starts_with("drift:"))).await);
    sim.run_until(15 * MINUTES, |_| false).await;
    assert_eq!(sim.world.revisions(REGION, "web"), 1, "nothing redeployed");
    assert_eq!(sim.history("prod/web/web").iter().filter(|h| h.starts_with("drift:")).count(), 1, "reported once, not every check");
    let metrics = sim.controller.metrics.render();
    assert!(metrics.contains(r#"gitmoxi_drift_detected{app="prod/web/web"} 1"#), "{metrics}");
}

/// The shipped Grafana dashboard only queries series gitmoxi exports (it cannot drift from them).
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana/gitmoxi-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let metrics = Metrics::new();
    let names = metrics.names.clone();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let used: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("gitmoxi_"))
                .map(|w| w.trim_end_matches("_bucket"))
                .collect();
            assert!(!used.is_empty(), "{expr}");
            for name in used {
                assert!(names.iter().any(|n| n == name), "{name} (in {expr}) is not exported; exported: {names:?}");
                queried += 1;
            }
        }
    }
    assert!(queried >= 12);
}

/// The test world is strict about crashes: a restart keeps what was flushed and loses what was
/// not, as a `kill -9` would (issue 12: restarts reopen the store from disk).
#[tokio::test(start_paused = true)]
async fn a_restart_keeps_what_was_flushed_and_loses_what_was_not() {
    let mut sim = Sim::new();
    let (kept, lost) = (Sim::key("prod/kept/kept"), Sim::key("prod/lost/lost"));
    let force = gitmoxi_deploy::commands::Command::Force;
    sim.store.submit_command(&kept, &force).unwrap();
    sim.store.flush().unwrap();
    sim.store.submit_command(&lost, &force).unwrap();
    assert!(sim.store.commands(&lost).unwrap().force, "written, not flushed");
    sim.restart().await;
    assert!(sim.store.commands(&kept).unwrap().force, "flushed: it survives the crash");
    assert!(!sim.store.commands(&lost).unwrap().force, "not flushed: the crash lost it");
}

/// Issue 13, high: one committer's template bomb fails its own app (file named) while the
/// others deploy; nothing of it reaches AWS.
#[tokio::test(start_paused = true)]
async fn a_template_bomb_in_one_app_does_not_stop_the_others() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.add_app("prod/bomb/bomb", "bomb", "nginx:1");
    sim.tree.insert(
        "prod/bomb/bomb_taskdef.json",
        r#"{% set a = "x" * 10000000 %}{% set b = a ~ a %}{"family": "bomb", "containerDefinitions": [{"name": "b", "image": "{% for i in range(50) %}{{ b }}{% endfor %}"}]}"#,
    );
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.outcome("prod/web/web") == Some(Outcome::Succeeded)).await,
        "{:?}",
        sim.history("prod/web/web")
    );
    let bomb = sim.store.app(&Sim::key("prod/bomb/bomb")).unwrap().expect("the bomb app is known");
    let problems: Vec<String> = bomb.problems.iter().map(|d| format!("{}: {}", d.file, d.message)).collect();
    assert!(problems.iter().any(|p| p.starts_with("prod/bomb/bomb_taskdef.json: the template renders to more than")), "{problems:?}");
    assert_eq!(sim.world.revisions(REGION, "bomb"), 0, "nothing of it reached AWS");
}

/// Issue 13: a fresh state directory adopts what already runs. Three services deployed, the
/// store lost, the controller restarted: every app is recorded as applied and AWS sees no
/// mutating call (no new task definition revision, no update).
#[tokio::test(start_paused = true)]
async fn a_fresh_store_adopts_what_already_runs_with_no_mutating_call() {
    let mut sim = Sim::new();
    let apps = ["prod/a/a", "prod/b/b", "prod/c/c"];
    for (i, prefix) in apps.iter().enumerate() {
        sim.add_app(prefix, &format!("s{i}"), "nginx:1");
    }
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| apps.iter().all(|p| s.outcome(p) == Some(Outcome::Succeeded))).await);
    sim.run_until(Duration::from_secs(30), |_| false).await;
    let mutations = sim.world.mutation_count();
    let revisions: Vec<usize> = (0..3).map(|i| sim.world.revisions(REGION, &format!("s{i}"))).collect();

    sim.restart_with_an_empty_store().await;
    assert!(
        sim.run_until(5 * MINUTES, |s| apps.iter().all(|p| s
            .store
            .app(&Sim::key(p))
            .unwrap()
            .is_some_and(|a| a.applied.fingerprint.is_some())))
            .await,
        "{:?}",
        apps.iter().map(|p| sim.history(p)).collect::<Vec<_>>()
    );
    sim.run_until(Duration::from_secs(30), |_| false).await;
    assert_eq!(sim.world.mutation_count(), mutations, "no mutating call: {:?}", sim.history("prod/a/a"));
    assert_eq!((0..3).map(|i| sim.world.revisions(REGION, &format!("s{i}"))).collect::<Vec<_>>(), revisions);
    for prefix in apps {
        assert!(sim.history(prefix).iter().any(|h| h.starts_with("adopted: service")), "{:?}", sim.history(prefix));
        assert_eq!(sim.outcome(prefix), Some(Outcome::Succeeded));
    }
    // a new commit after the adoption deploys as usual
    sim.set_image("prod/a/a", "nginx:2");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.world.revisions(REGION, "s0") == revisions[0] + 1 && s.idle("prod/a/a")).await);
}
