//! The differential test (issue 12): one scripted scenario — create, update, a failing update
//! and delete of an ECS rolling service, a blue/green service and a Lambda function with its
//! event sources — runs against the fake world and against moto, from the same files. After
//! every step, what AWS holds agrees field by field on what both model: the services' desired
//! counts, task definitions and images, the registered revisions, the task sets and the listener
//! and rule weights, the alias, the published versions, the code they run, the mappings and the
//! target registrations. Where they disagree, one of the two worlds is wrong about AWS.

use crate::moto::{synced, Moto, Server};
use crate::sim::{Sim, MINUTES, REGION};
use crate::support::TestRepo;
use gitmoxi_deploy::observed::TaskSetStatus;
use gitmoxi_deploy::spec::{FileTree, MemTree};
use serde_json::Value;
use std::time::Duration;

const ROLLING: &str = "prod/api/api";
const BLUE_GREEN: &str = crate::moto_blue_green::PREFIX;
const LAMBDA: &str = crate::moto_lambda::PREFIX;
const APPS: [&str; 3] = [ROLLING, BLUE_GREEN, LAMBDA];

/// What both worlds model, after one step.
#[derive(Debug, Clone, PartialEq, Default)]
struct View {
    /// The rolling service: desired count, `family:revision`, images; revisions registered.
    rolling: Option<(i64, String, Vec<String>)>,
    rolling_revisions: usize,
    /// The rolling service's settings the files set (issue 23): enableExecuteCommand,
    /// healthCheckGracePeriodSeconds, assignPublicIp, propagateTags.
    rolling_settings: Option<(bool, i64, String, String)>,
    /// The blue/green service: live task sets (status, `family:revision`, images).
    task_sets: Vec<(String, String, Vec<String>)>,
    /// (listener or rule, [(target group, weight)]) for both listeners and the rule.
    weights: Vec<(String, Vec<(String, u32)>)>,
    /// The alias: (version, routing); the published versions; the live version's code.
    alias: Option<(String, Vec<(String, String)>)>,
    versions: Vec<String>,
    live_code: Option<String>,
    /// Mappings on the alias: (event source, batch size); the lambda target group's targets.
    mappings: Vec<(String, Option<i64>)>,
    lambda_targets: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Create,
    Update,
    FailingUpdate,
    Delete,
}

const STEPS: [Step; 4] = [Step::Create, Step::Update, Step::FailingUpdate, Step::Delete];

fn output(infra: &str, name: &str) -> Value {
    let v: Value = serde_json::from_str(infra).expect("outputs");
    v[name]["value"].clone()
}

/// Writes the files of `step` into the repository (both worlds read these same files).
fn write_step(repo: &TestRepo, step: Step) {
    match step {
        Step::Create | Step::Update => {
            let (image, zip) = if step == Step::Create { ("nginx:1", 0) } else { ("nginx:2", 1) };
            crate::moto::write_terraform_app(
                repo,
                ROLLING,
                "api",
                image,
                1,
                r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#,
                "",
            );
            if step == Step::Update {
                // svcdef fields change with the image: both worlds must hold them
                let path = format!("{ROLLING}_svcdef.json");
                let svcdef = std::fs::read_to_string(repo.path().join(&path)).expect("svcdef");
                let edited = svcdef.replacen(
                    '{',
                    r#"{"enableExecuteCommand": true, "healthCheckGracePeriodSeconds": 30, "propagateTags": "SERVICE","#,
                    1,
                );
                repo.write(&path, &edited);
            }
            crate::moto_blue_green::write_app(repo, image);
            crate::moto_lambda::write_function(repo, crate::moto_lambda::ZIPS[zip], 5);
        }
        Step::FailingUpdate => {
            // each app's new files do not render: nothing may change in AWS
            for (path, broken) in [
                (
                    format!("{ROLLING}_taskdef.json"),
                    r#"{"family": "api", "containerDefinitions": [{"name": "api", "image": "{{ no_such_output }}"}]}"#,
                ),
                (
                    format!("{BLUE_GREEN}_taskdef.json"),
                    r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "{{ no_such_output }}"}]}"#,
                ),
                (format!("{LAMBDA}_lambdadef.json"), r#"{"FunctionName": "hello", "Runtime": "{{ no_such_output }}"}"#),
            ] {
                repo.write(&path, broken);
            }
        }
        Step::Delete => {
            for prefix in APPS {
                for suffix in [
                    "_svcdef.json",
                    "_taskdef.json",
                    "_depdef.json",
                    "_input.json",
                    "_lambdadef.json",
                    "_lambdadepdef.json",
                    "_lambdaeventsourcedef.json",
                    "_lambdainput.json",
                ] {
                    let path = repo.path().join(format!("{prefix}{suffix}"));
                    if path.exists() {
                        repo.remove(&format!("{prefix}{suffix}"));
                    }
                }
            }
            // another app stays (the checkout is not empty), so the deletes go ahead
            repo.write("keep/keep_svcdef.json", "{ not yet written");
        }
    }
}

/// The work tree of `repo` as an in-memory tree (what the simulation loads).
fn tree_of(repo: &TestRepo) -> MemTree {
    let work_tree = gitmoxi::git::DirTree::open(repo.path()).expect("read the work tree");
    let mut tree = MemTree::new();
    for path in work_tree.paths() {
        let bytes = work_tree.read(&path).expect("a listed file");
        tree.insert(&path, std::str::from_utf8(&bytes).expect("a text file"));
    }
    tree
}

fn revision_of(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// The fake world's view.
fn fake_view(sim: &Sim, infra: &str) -> View {
    let w = &sim.world;
    let rolling = w.service(REGION, "prod", "api").filter(|s| s.is_active()).map(|s| {
        let td = s.task_definition.clone().unwrap_or_default();
        (i64::from(s.desired_count), revision_of(&td), w.task_definition_images(REGION, &td))
    });
    let rolling_settings = w.service(REGION, "prod", "api").filter(|s| s.is_active()).and_then(|s| s.settings).map(|v| {
        (
            v["enableExecuteCommand"].as_bool().unwrap_or(false),
            v["healthCheckGracePeriodSeconds"].as_i64().unwrap_or(0),
            v.pointer("/networkConfiguration/awsvpcConfiguration/assignPublicIp").and_then(Value::as_str).unwrap_or("DISABLED").to_string(),
            v["propagateTags"].as_str().unwrap_or("NONE").to_string(),
        )
    });
    let task_sets = sorted(
        w.task_sets(REGION, "prod", "web")
            .into_iter()
            .filter(|t| t.status != TaskSetStatus::Other("INACTIVE".into()))
            .map(|t| (t.status.as_str().to_string(), revision_of(&t.task_definition), w.task_definition_images(REGION, &t.task_definition)))
            .collect(),
    );
    let mut weights = Vec::new();
    for (name, arn) in forward_arns(infra) {
        weights.push((name, sorted(w.forward_weights(&arn))));
    }
    let alias = w
        .lambda_alias(REGION, "hello", "live")
        .map(|(v, extra)| (v, sorted(extra.into_iter().map(|(k, w)| (k, format!("{w:.2}"))).collect())));
    let versions = if w.lambda_exists(REGION, "hello") { w.lambda_versions(REGION, "hello") } else { Vec::new() };
    let live_code = alias.as_ref().and_then(|(v, _)| w.lambda_code_sha(REGION, "hello", v));
    let mappings = sorted(w.lambda_mappings().into_iter().map(|(source, _, batch)| (source, batch.map(i64::from))).collect());
    let lambda_targets = w.lambda_targets(output(infra, "lambda_target_group_arn").as_str().unwrap_or_default());
    View {
        rolling,
        rolling_revisions: w.revisions(REGION, "api"),
        rolling_settings,
        task_sets,
        weights,
        alias,
        versions,
        live_code,
        mappings,
        lambda_targets,
    }
}

/// The listeners' and the rule's ARNs by a name both views use.
fn forward_arns(infra: &str) -> Vec<(String, String)> {
    let listeners = output(infra, "listener_arns");
    vec![
        ("listener 80".into(), listeners["80"].as_str().unwrap_or_default().to_string()),
        ("listener 8080".into(), listeners["8080"].as_str().unwrap_or_default().to_string()),
        ("rule /api/*".into(), output(infra, "api_rule_arn").as_str().unwrap_or_default().to_string()),
    ]
}

/// Moto's view, read through the SDK as an operator would.
async fn moto_view(moto: &Moto, infra: &str) -> View {
    let config = moto.sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let images = |arn: String| {
        let ecs = ecs.clone();
        async move {
            let td = ecs.describe_task_definition().task_definition(&arn).send().await.expect("task definition");
            td.task_definition()
                .map(|t| t.container_definitions().iter().filter_map(|c| c.image().map(str::to_string)).collect())
                .unwrap_or_default()
        }
    };
    let services = ecs.describe_services().cluster("prod").services("api").send().await.expect("services");
    let mut rolling = None;
    let mut rolling_settings = None;
    if let Some(s) = services.services().iter().find(|s| s.status() == Some("ACTIVE")) {
        let ip = s.network_configuration().and_then(|n| n.awsvpc_configuration()).and_then(|a| a.assign_public_ip());
        rolling_settings = Some((
            s.enable_execute_command(),
            i64::from(s.health_check_grace_period_seconds().unwrap_or(0)),
            ip.map_or("DISABLED".to_string(), |i| i.as_str().to_string()),
            s.propagate_tags().map_or("NONE".to_string(), |p| p.as_str().to_string()),
        ));
        let td = s.task_definition().unwrap_or_default().to_string();
        rolling = Some((i64::from(s.desired_count()), revision_of(&td), images(td).await));
    }
    let rolling_revisions = ecs.list_task_definitions().family_prefix("api").send().await.expect("revisions").task_definition_arns().len();
    let mut task_sets = Vec::new();
    if let Ok(out) = ecs.describe_task_sets().cluster("prod").service("web").send().await {
        for t in out.task_sets().iter().filter(|t| t.status() != Some("INACTIVE")) {
            let td = t.task_definition().unwrap_or_default().to_string();
            task_sets.push((t.status().unwrap_or_default().to_string(), revision_of(&td), images(td).await));
        }
    }
    let mut weights = Vec::new();
    for (name, arn) in forward_arns(infra) {
        let actions = if name.starts_with("rule") {
            elb.describe_rules()
                .rule_arns(&arn)
                .send()
                .await
                .expect("rules")
                .rules()
                .first()
                .map(|r| r.actions().to_vec())
                .unwrap_or_default()
        } else {
            elb.describe_listeners()
                .listener_arns(&arn)
                .send()
                .await
                .expect("listeners")
                .listeners()
                .first()
                .map(|l| l.default_actions().to_vec())
                .unwrap_or_default()
        };
        let forward = actions.iter().find(|a| a.r#type().is_some_and(|t| t.as_str() == "forward"));
        let split: Vec<(String, u32)> = match forward.and_then(|f| f.forward_config()).map(|c| c.target_groups()).filter(|t| !t.is_empty())
        {
            Some(groups) => {
                groups.iter().map(|g| (g.target_group_arn().unwrap_or_default().to_string(), g.weight().unwrap_or(1) as u32)).collect()
            }
            None => forward.and_then(|f| f.target_group_arn()).map(|tg| vec![(tg.to_string(), 100)]).unwrap_or_default(),
        };
        weights.push((name, sorted(split)));
    }
    let alias = lambda.get_alias().function_name("hello").name("live").send().await.ok().map(|a| {
        let routing = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), format!("{v:.2}"))).collect())
            .unwrap_or_default();
        (a.function_version().unwrap_or_default().to_string(), sorted(routing))
    });
    let versions: Vec<String> = match lambda.list_versions_by_function().function_name("hello").send().await {
        Ok(out) => out.versions().iter().filter_map(|v| v.version()).filter(|v| *v != "$LATEST").map(str::to_string).collect(),
        Err(_) => Vec::new(),
    };
    let mut live_code = None;
    if let Some((version, _)) = &alias {
        live_code = lambda
            .get_function_configuration()
            .function_name("hello")
            .qualifier(version)
            .send()
            .await
            .ok()
            .and_then(|c| c.code_sha256().map(str::to_string));
    }
    let alias_arn = "arn:aws:lambda:us-east-1:123456789012:function:hello:live";
    let mappings = match lambda.list_event_source_mappings().function_name(alias_arn).send().await {
        Ok(out) => sorted(
            out.event_source_mappings()
                .iter()
                .map(|m| (m.event_source_arn().unwrap_or_default().to_string(), m.batch_size().map(i64::from)))
                .collect(),
        ),
        Err(_) => Vec::new(),
    };
    let health = elb
        .describe_target_health()
        .target_group_arn(output(infra, "lambda_target_group_arn").as_str().unwrap_or_default())
        .send()
        .await
        .expect("health");
    let lambda_targets =
        health.target_health_descriptions().iter().filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string)).collect();
    View {
        rolling,
        rolling_revisions,
        rolling_settings,
        task_sets: sorted(task_sets),
        weights,
        alias,
        versions,
        live_code,
        mappings,
        lambda_targets,
    }
}

/// The scenario in the fake world (its own runtime on a paused clock): the view after each step.
fn run_fake(infra: &str) -> Vec<View> {
    let infra = infra.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
        runtime.block_on(async move {
            let mut sim = Sim::new();
            sim.policy.max_prune_percent = 100;
            let tg = |name: &str| output(&infra, "target_group_arns")[name].as_str().unwrap_or_default().to_string();
            let lb = output(&infra, "load_balancer_arn").as_str().unwrap_or_default().to_string();
            for name in ["web-a", "web-b", "admin-c", "admin-d"] {
                sim.world.add_target_group(&tg(name), Some(&lb));
            }
            let arns = forward_arns(&infra);
            sim.world.add_listener(&arns[0].1, &lb, &[(&tg("web-a"), 100)]);
            sim.world.add_listener(&arns[1].1, &lb, &[(&tg("admin-c"), 100)]);
            sim.world.add_rule(&arns[2].1, &lb, &[(&tg("web-a"), 100)]);
            sim.world.set_alarm("web-5xx", "OK");
            sim.world.set_alarm("hello-errors", "OK");
            sim.world.add_target_group(output(&infra, "lambda_target_group_arn").as_str().unwrap_or_default(), None);
            sim.world.add_http_api(
                output(&infra, "api_id").as_str().unwrap_or_default(),
                output(&infra, "route_id").as_str().unwrap_or_default(),
            );
            let repo = TestRepo::new();
            repo.write("infra/terraform_output.json", &infra);
            let mut views = Vec::new();
            for step in STEPS {
                write_step(&repo, step);
                sim.tree = tree_of(&repo);
                sim.commit();
                let settled = sim
                    .run_until(20 * MINUTES, |s| match step {
                        Step::Create | Step::Update => APPS.iter().all(|p| {
                            let applied = s.store.app(&Sim::key(p)).unwrap().and_then(|a| a.applied.commit);
                            s.idle(p) && applied == Some(format!("c{:04}", s.commits))
                        }),
                        Step::FailingUpdate => {
                            APPS.iter().all(|p| s.store.app(&Sim::key(p)).unwrap().is_some_and(|a| !a.problems.is_empty()))
                        }
                        Step::Delete => APPS.iter().all(|p| s.store.app(&Sim::key(p)).unwrap().is_none()),
                    })
                    .await;
                assert!(settled, "fake world, {step:?}: {:?}", APPS.iter().map(|p| sim.history(p)).collect::<Vec<_>>());
                // let the last writes land (cleanups after the outcome)
                sim.run_until(Duration::from_secs(30), |_| false).await;
                views.push(fake_view(&sim, &infra));
            }
            views
        })
    })
    .join()
    .expect("the fake world's scenario")
}

#[test]
fn the_fake_world_and_moto_agree_on_what_aws_holds_after_every_step() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let moto = Moto::start().await;
        let infra = moto.infra_with("prod", &["--alb", "--lambda"]);
        let fake = run_fake(&infra);

        let repo = TestRepo::new();
        repo.write("infra/terraform_output.json", &infra);
        write_step(&repo, Step::Create);
        let mut commit = repo.commit("create");
        let server = Server::start(&moto, &repo, 100).await;
        for (i, step) in STEPS.iter().enumerate() {
            if *step != Step::Create {
                write_step(&repo, *step);
                commit = repo.commit(&format!("{step:?}"));
            }
            for prefix in APPS {
                match step {
                    Step::Create | Step::Update => {
                        server.wait_app(prefix, Duration::from_secs(120), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
                    }
                    Step::FailingUpdate => {
                        server.wait_app(prefix, Duration::from_secs(60), |a| a["problems"].as_array().is_some_and(|p| !p.is_empty())).await;
                    }
                    Step::Delete => {
                        let start = std::time::Instant::now();
                        while server.app(prefix).await.is_some() {
                            assert!(start.elapsed() < Duration::from_secs(120), "moto, {step:?}: {prefix} was not deleted");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let seen = moto_view(&moto, &infra).await;
            eprintln!("after {step:?}: {seen:?}");
            assert_eq!(fake[i], seen, "after {step:?}, the fake world (left) and moto (right) disagree on what AWS holds");
        }
        server.stop().await;
    });
}
