//! Table tests of the risk assessment: each change names itself and weighs what it should,
//! secrets' values never appear, deletes and moves outweigh image bumps.

use super::*;
use crate::spec::{load_snapshot, DesiredApp, MemTree, RenderContext};

fn ecs(svc_extra: &str, container_extra: &str, task_extra: &str) -> DesiredApp {
    let tree = MemTree::new()
        .with("svc/web_svcdef.json", &format!(r#"{{"serviceName": "web", "cluster": "prod", "desiredCount": 4 {svc_extra}}}"#))
        .with(
            "svc/web_taskdef.json",
            &format!(
                r#"{{"family": "web", {task_extra} "containerDefinitions": [{{"name": "web", "image": "nginx:1", "memory": 512 {container_extra}}}]}}"#
            ),
        );
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    snap.apps["svc/web"].clone().expect("valid")
}

fn lambda(extra: &str) -> DesiredApp {
    let tree = MemTree::new()
        .with(
            "fn/hello_lambdadef.json",
            &format!(
                r#"{{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler", "Role": "arn:aws:iam::1:role/r", {extra} "Code": {{"ZipFile": "x"}}}}"#
            ),
        )
        .with("fn/hello_lambdadepdef.json", r#"{"alias": "live"}"#);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    snap.apps["fn/hello"].clone().expect("valid")
}

fn update(before: &DesiredApp, after: &DesiredApp) -> AppRisk {
    let change = AppChange::Present { prefix: &after.prefix, before: Some(&before.spec), after: &after.spec, identity: &after.identity };
    assess(&[change]).remove(0)
}

#[test]
fn each_kind_of_ecs_change_is_named_and_weighed() {
    let base = ecs("", "", "");
    // (case, after, a phrase the reasons hold, the least score)
    let cases = [
        ("image", ecs("", "", "").with_image("nginx:2"), "image of container web: nginx:1 → nginx:2", 10),
        ("memory down", ecs("", "", "").with_container_field("memory", "256"), "memory of container web: 512 → 256", 20),
        ("environment", ecs("", r#", "environment": [{"name": "DB_PASSWORD", "value": "hunter2"}]"#, ""), "+DB_PASSWORD", 10),
        (
            "task role",
            ecs("", "", r#""taskRoleArn": "arn:aws:iam::1:role/admin","#),
            "the task role: (none) → arn:aws:iam::1:role/admin",
            25,
        ),
        (
            "public network",
            ecs(r#", "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["s-1"], "assignPublicIp": "ENABLED"}}"#, "", ""),
            "tasks get public IP addresses",
            45,
        ),
        ("scale to zero", ecs("", "", "").with_desired(0), "desired count 4 → 0", 50),
        ("scale down", ecs("", "", "").with_desired(2), "desired count 4 → 2", 15),
        ("blue/green", ecs(r#", "deploymentController": {"type": "EXTERNAL"}"#, "", ""), "strategy rolling → blue_green", 30),
    ];
    for (name, after, phrase, least) in cases {
        let risk = update(&base, &after);
        let text = render_text(&risk);
        assert!(text.contains(phrase), "{name}: {text}");
        assert!(risk.score >= least, "{name}: {} < {least}: {text}", risk.score);
        assert_eq!(risk.kind, RiskChangeKind::Update, "{name}");
        assert!(!text.contains("hunter2"), "{name}: a value leaked: {text}");
    }
    let same = update(&base, &ecs("", "", ""));
    assert_eq!((same.kind, same.score, same.level), (RiskChangeKind::Unchanged, 0, RiskLevel::Low));
}

#[test]
fn deletes_and_moves_outweigh_an_image_bump_and_the_commit_takes_the_riskiest() {
    let app = ecs("", "", "");
    let bumped = ecs("", "", "").with_image("nginx:2");
    let changes = [
        AppChange::Present { prefix: "svc/web", before: Some(&app.spec), after: &bumped.spec, identity: &app.identity },
        AppChange::Deleted { prefix: "svc/old", before: &app.spec, identity: &app.identity, moved_to: None },
        AppChange::Deleted { prefix: "svc/was", before: &app.spec, identity: &app.identity, moved_to: Some("svc/now") },
        AppChange::Invalid { prefix: "svc/bad", errors: vec!["svc/bad/bad_svcdef.json: not JSON".into()] },
    ];
    let risks = assess(&changes);
    assert_eq!(risks[0].kind, RiskChangeKind::Delete, "riskiest first: {risks:?}");
    assert!(risks[0].reasons[0].change.starts_with("deletes service web in cluster prod (us-east-1)"), "{risks:?}");
    assert_eq!(risks[0].level, RiskLevel::High);
    let moved = risks.iter().find(|r| r.kind == RiskChangeKind::Move).unwrap();
    assert!(moved.reasons[0].change.contains("from svc/was to svc/now"));
    let blocked = risks.iter().find(|r| r.kind == RiskChangeKind::Blocked).unwrap();
    assert!(blocked.reasons[0].change.contains("not JSON"));
    let bump = risks.iter().find(|r| r.kind == RiskChangeKind::Update).unwrap();
    assert!(bump.score < risks[0].score);
    // 4 tasks reached: the blast radius adds to the image bump
    assert_eq!(bump.score, 15);
    assert_eq!(commit_score(&risks), (risks[0].score + 5 * 2).min(100));
    assert_eq!(commit_score(&[]), 0);
}

#[test]
fn lambda_changes_are_named_without_values() {
    let base = lambda(r#""Environment": {"Variables": {"TOKEN": "old-secret"}},"#);
    let after = lambda(r#""Environment": {"Variables": {"TOKEN": "new-secret", "MODE": "x"}}, "MemorySize": 256, "Timeout": 30,"#);
    let risk = update(&base, &after);
    let text = render_text(&risk);
    assert!(text.contains("environment variables: +MODE, ~TOKEN"), "{text}");
    assert!(text.contains("MemorySize: (none) → 256"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let role = update(&base, &lambda(r#""Environment": {"Variables": {"TOKEN": "old-secret"}}, "VpcConfig": {"SubnetIds": ["s"]},"#));
    assert!(render_text(&role).contains("VPC configuration changes"));
    assert!(role.score >= 25);
    let created = assess(&[AppChange::Present { prefix: "fn/hello", before: None, after: &base.spec, identity: &base.identity }]);
    assert_eq!(created[0].kind, RiskChangeKind::Create);
    assert!(created[0].reasons[0].change.contains("creates function hello (us-east-1)"), "{created:?}");
}

/// Small edits of the test app's documents.
trait Edit {
    fn with_image(self, image: &str) -> Self;
    fn with_container_field(self, field: &str, json: &str) -> Self;
    fn with_desired(self, n: u32) -> Self;
}

impl Edit for DesiredApp {
    fn with_image(self, image: &str) -> Self {
        self.with_container_field("image", &format!("\"{image}\""))
    }
    fn with_container_field(mut self, field: &str, json: &str) -> Self {
        if let AppSpec::Ecs(e) = &mut self.spec {
            if let Some(c) = e.taskdef.as_mut().and_then(|t| t.pointer_mut("/containerDefinitions/0")) {
                c[field] = serde_json::from_str(json).expect("json");
            }
        }
        self
    }
    fn with_desired(mut self, n: u32) -> Self {
        if let AppSpec::Ecs(e) = &mut self.spec {
            e.svcdef["desiredCount"] = n.into();
        }
        self
    }
}
