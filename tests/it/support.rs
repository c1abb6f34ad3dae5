//! Shared test helpers: Git repositories built from file maps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A throw-away Git repository with a `main` branch.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = TestRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@gitmoxi.dev"]);
        repo.git(&["config", "user.name", "gitmoxi test"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(self.path()).output().expect("git runs");
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, path: &str, content: &str) {
        let full: PathBuf = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("has parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("remove");
    }

    pub fn write_all(&self, files: &BTreeMap<String, String>) {
        for (p, c) in files {
            self.write(p, c);
        }
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// The files of a small ECS rolling app.
pub fn ecs_app(prefix: &str, service: &str, cluster: &str, image_expr: &str, desired: u32, depdef: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert(
        format!("{prefix}_svcdef.json"),
        format!(
            r#"{{
  "serviceName": "{service}",
  "cluster": "{cluster}",
  "desiredCount": {desired},
  "launchType": "FARGATE",
  "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": {{{{ subnets | tojson }}}}, "securityGroups": {{{{ security_groups | tojson }}}}, "assignPublicIp": "ENABLED"}}}}
}}
"#
        ),
    );
    files.insert(
        format!("{prefix}_taskdef.json"),
        format!(
            r#"{{
  "family": "{service}",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [
    {{"name": "{service}", "image": "{image_expr}", "memory": 512, "essential": true,
      "portMappings": [{{"containerPort": 80, "protocol": "tcp"}}]}}
  ]
}}
"#
        ),
    );
    files.insert(format!("{prefix}_depdef.json"), depdef.to_string());
    files
}

/// The settings of a controller in a test: region us-east-1, the controller's account
/// 123456789012, no roles, drift every 5 minutes, renders in this process.
pub fn controller_settings(concurrency: usize, seed: u64) -> gitmoxi::controller::ControllerSettings {
    gitmoxi::controller::ControllerSettings {
        default_region: "us-east-1".into(),
        concurrency,
        seed,
        drift_interval: std::time::Duration::from_secs(300),
        own_account: Some("123456789012".into()),
        account_roles: Default::default(),
        render_limits: Default::default(),
        render_worker: None,
        freezes: Vec::new(),
    }
}

/// Issue 26's chain of apps: the migration job, the API (depends on it), the worker (depends on
/// the API).
pub const DB: &str = "prod/db/migrate";
pub const API: &str = "prod/api/api";
pub const WORKER: &str = "prod/worker/worker";

/// A depdef with `dependsOn`, a stability check polled every `poll` s for up to `timeout` s, and
/// a circuit breaker at 2 failed tasks.
pub fn depdef_depending_on(depends_on: &[&str], poll: u32, timeout: u32) -> String {
    let list: Vec<String> = depends_on.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"dependsOn": [{}], "stabilityCheck": {{"pollInterval": {poll}, "timeout": {timeout}}}, "gmDeploymentCircuitBreaker": {{"failureThreshold": 2}}}}"#,
        list.join(", ")
    )
}
