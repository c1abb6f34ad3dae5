//! Issue 23: a seeded property test of convergence against moto through `gitmoxi serve`.
//! Random edits of svcdef, taskdef and depdef fields, new apps and deletes are pushed at random
//! moments (landing in every phase: register, update, stabilize, rollback, delete); once the
//! controller is quiet, an oracle written here — with its own small normalization, not the
//! product's — compares every field the final head's files set with what moto describes.
//!
//! `GITMOXI_CONVERGENCE_CASES` (default 2 in `make test`; `make soak` runs more) and
//! `GITMOXI_CONVERGENCE_SEED` (replay one case) steer it; a failure prints its seed.

use crate::moto::{Moto, Server};
use crate::support::TestRepo;
use std::collections::BTreeMap;
use std::time::Duration;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the test's files say of one app (the oracle's own model).
#[derive(Debug, Clone)]
struct App {
    service: String,
    image: u64,
    execute_command: bool,
    grace: u64,
    propagate_tags: &'static str,
    maximum_percent: u64,
    minimum_healthy_percent: u64,
    public_ip: bool,
    memory: u64,
}

impl App {
    fn new(service: String, rng: &mut Rng) -> App {
        let mut app = App {
            service,
            image: 1,
            execute_command: false,
            grace: 0,
            propagate_tags: "NONE",
            maximum_percent: 200,
            minimum_healthy_percent: 100,
            public_ip: true,
            memory: 512,
        };
        app.mutate(rng);
        app
    }

    /// Changes one to three fields at random.
    fn mutate(&mut self, rng: &mut Rng) {
        for _ in 0..=rng.below(3) {
            match rng.below(8) {
                0 => self.image += 1,
                1 => self.execute_command = !self.execute_command,
                2 => self.grace = rng.below(5) * 15,
                3 => self.propagate_tags = ["NONE", "SERVICE", "TASK_DEFINITION"][rng.below(3) as usize],
                4 => self.maximum_percent = 100 + rng.below(5) * 25,
                5 => self.minimum_healthy_percent = rng.below(5) * 25,
                6 => self.public_ip = !self.public_ip,
                _ => self.memory = [256, 512, 1024][rng.below(3) as usize],
            }
        }
    }

    fn prefix(&self) -> String {
        format!("apps/{0}/{0}", self.service)
    }

    fn write(&self, repo: &TestRepo) {
        let prefix = self.prefix();
        let svcdef = format!(
            r#"{{"serviceName": "{service}", "cluster": "{{{{ cluster_name }}}}", "desiredCount": 1, "launchType": "FARGATE",
  "enableExecuteCommand": {exec}, "healthCheckGracePeriodSeconds": {grace}, "propagateTags": "{propagate}",
  "deploymentConfiguration": {{"maximumPercent": {max}, "minimumHealthyPercent": {min}}},
  "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": {{{{ private_subnets | tojson }}}}, "securityGroups": ["{{{{ security_group_id }}}}"], "assignPublicIp": "{ip}"}}}}}}"#,
            service = self.service,
            exec = self.execute_command,
            grace = self.grace,
            propagate = self.propagate_tags,
            max = self.maximum_percent,
            min = self.minimum_healthy_percent,
            ip = if self.public_ip { "ENABLED" } else { "DISABLED" },
        );
        let taskdef = format!(
            r#"{{"family": "{service}", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "1024",
  "containerDefinitions": [{{"name": "{service}", "image": "nginx:{image}", "memory": {memory}, "essential": true}}]}}"#,
            service = self.service,
            image = self.image,
            memory = self.memory,
        );
        repo.write(&format!("{prefix}_svcdef.json"), &svcdef);
        repo.write(&format!("{prefix}_taskdef.json"), &taskdef);
        repo.write(&format!("{prefix}_depdef.json"), r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#);
        repo.write(&format!("{prefix}_input.json"), r#"{"ref": {"file": ["infra/terraform_output.json"], "type": "TERRAFORM"}}"#);
    }

    fn remove(&self, repo: &TestRepo) {
        for suffix in ["_svcdef.json", "_taskdef.json", "_depdef.json", "_input.json"] {
            repo.remove(&format!("{}{suffix}", self.prefix()));
        }
    }
}

/// What moto holds of `app`, each field against the file's, as "field: file ≠ AWS" lines.
async fn oracle(ecs: &aws_sdk_ecs::Client, app: &App) -> Vec<String> {
    let described = ecs.describe_services().cluster("prod").services(&app.service).send().await.expect("describe");
    let Some(svc) = described.services().first().filter(|s| s.status() == Some("ACTIVE")) else {
        return vec![format!("{}: no ACTIVE service", app.service)];
    };
    let mut wrong = Vec::new();
    let mut check = |field: &str, file: String, aws: String| {
        if file != aws {
            wrong.push(format!("{}: {field}: file {file} ≠ AWS {aws}", app.service));
        }
    };
    check("enableExecuteCommand", app.execute_command.to_string(), svc.enable_execute_command().to_string());
    check("healthCheckGracePeriodSeconds", app.grace.to_string(), svc.health_check_grace_period_seconds().unwrap_or(0).to_string());
    check("propagateTags", app.propagate_tags.to_string(), svc.propagate_tags().map_or("NONE".to_string(), |p| p.as_str().to_string()));
    let config = svc.deployment_configuration();
    check("maximumPercent", app.maximum_percent.to_string(), config.and_then(|c| c.maximum_percent()).unwrap_or(200).to_string());
    check(
        "minimumHealthyPercent",
        app.minimum_healthy_percent.to_string(),
        config.and_then(|c| c.minimum_healthy_percent()).unwrap_or(100).to_string(),
    );
    let ip = svc
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .and_then(|a| a.assign_public_ip())
        .map(|i| i.as_str().to_string());
    check("assignPublicIp", (if app.public_ip { "ENABLED" } else { "DISABLED" }).to_string(), ip.unwrap_or_else(|| "DISABLED".to_string()));
    check("runningCount", "1".to_string(), svc.running_count().to_string());
    let td_arn = svc.task_definition().unwrap_or_default().to_string();
    let td = ecs.describe_task_definition().task_definition(&td_arn).send().await.expect("task definition");
    let container = &td.task_definition().expect("td").container_definitions()[0];
    check("image", format!("nginx:{}", app.image), container.image().unwrap_or_default().to_string());
    check("memory", app.memory.to_string(), container.memory().unwrap_or(0).to_string());
    wrong
}

async fn one_case(seed: u64) {
    let mut rng = Rng(seed | 1);
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    let mut apps: BTreeMap<String, App> = BTreeMap::new();
    let mut deleted: Vec<App> = Vec::new();
    let mut next_name = 0;
    for _ in 0..3 {
        let app = App::new(format!("s{seed:x}-{next_name}").chars().take(30).collect(), &mut rng);
        next_name += 1;
        app.write(&repo);
        apps.insert(app.service.clone(), app);
    }
    repo.commit("three apps");
    let server = Server::start(&moto, &repo, 100).await;
    let pushes = 4 + rng.below(3);
    for push in 0..pushes {
        tokio::time::sleep(Duration::from_millis(rng.below(4000))).await;
        let names: Vec<String> = apps.keys().cloned().collect();
        if rng.chance(20) && apps.len() >= 2 {
            // a delete (and a new app to keep the repository busy)
            let gone = apps.remove(&names[rng.below(names.len() as u64) as usize]).expect("app");
            gone.remove(&repo);
            deleted.push(gone);
            let app = App::new(format!("s{seed:x}-{next_name}").chars().take(30).collect(), &mut rng);
            next_name += 1;
            app.write(&repo);
            apps.insert(app.service.clone(), app);
        } else {
            for name in &names {
                if !rng.chance(60) {
                    continue;
                }
                let app = apps.get_mut(name).expect("app");
                app.mutate(&mut rng);
                app.write(&repo);
            }
        }
        repo.commit(&format!("push {push}"));
    }
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    // quiescence: every app of the head synced on it, every removed app forgotten
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let mut waiting = Vec::new();
        for app in apps.values() {
            let seen = server.app(&app.prefix()).await;
            if !seen.as_ref().is_some_and(|a| a["status"] == "Synced" && a["commit"] == head.as_str() && a["deployment"].is_null()) {
                waiting.push(format!(
                    "{}: {}",
                    app.service,
                    seen.map_or("unknown".to_string(), |a| format!("{} {}", a["status"], a["reason"]))
                ));
            }
        }
        for app in &deleted {
            if server.app(&app.prefix()).await.is_some() {
                waiting.push(format!("{}: not yet deleted", app.service));
            }
        }
        if waiting.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "seed {seed}: not quiet after 180 s: {waiting:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ecs = moto.ecs().await;
    let mut wrong = Vec::new();
    for app in apps.values() {
        wrong.extend(oracle(&ecs, app).await);
    }
    for app in &deleted {
        let described = ecs.describe_services().cluster("prod").services(&app.service).send().await.expect("describe");
        if described.services().first().is_some_and(|s| s.status() == Some("ACTIVE")) {
            wrong.push(format!("{}: removed from the head but still ACTIVE", app.service));
        }
    }
    assert!(
        wrong.is_empty(),
        "seed {seed} (replay with GITMOXI_CONVERGENCE_SEED={seed}): AWS does not hold what the files say:\n{}",
        wrong.join("\n")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_random_pushes_in_every_phase_converge_on_what_the_files_say() {
    let seeds: Vec<u64> = match std::env::var("GITMOXI_CONVERGENCE_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let cases = std::env::var("GITMOXI_CONVERGENCE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2u64);
            (0..cases).map(|i| 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1)).collect()
        }
    };
    for seed in seeds {
        eprintln!("convergence case, seed {seed}");
        one_case(seed).await;
    }
}
