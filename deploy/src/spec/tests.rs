//! Tests of the whole per-app pipeline: grouping, rendering with refs, fingerprints.

use super::*;

const SVC: &str = r#"{
  "serviceName": "web",
  "cluster": "{{ cluster }}",
  "desiredCount": 2
}"#;
const TASK: &str = r#"{
  "family": "web",
  "containerDefinitions": [{"name": "web", "image": "{{ image }}", "memory": 256}]
}"#;
const INPUT: &str = r#"{"ref": {"file": ["infra/tf.json"], "type": "TERRAFORM"}, "image": "nginx:1"}"#;
const TF: &str = r#"{"cluster": {"value": "prod"}, "unused": {"value": "x"}}"#;

fn ctx() -> RenderContext {
    RenderContext::new("us-east-1".into())
}

fn base() -> MemTree {
    MemTree::new()
        .with("apps/web/web_svcdef.json", SVC)
        .with("apps/web/web_taskdef.json", TASK)
        .with("apps/web/web_input.json", INPUT)
        .with("apps/web/web_depdef.json", r#"{"stabilityCheck": {"timeout": 60}}"#)
        .with("infra/tf.json", TF)
}

fn fingerprint_of(tree: &MemTree) -> String {
    let snap = load_snapshot(tree, &ctx());
    snap.apps["apps/web/web"].as_ref().expect("valid app").fingerprint.clone()
}

#[test]
fn loads_an_ecs_app_with_terraform_refs() {
    let snap = load_snapshot(&base(), &ctx());
    let app = snap.apps["apps/web/web"].as_ref().unwrap();
    assert_eq!(app.identity.to_string(), "ecs:default/us-east-1/prod/web");
    let AppSpec::Ecs(ecs) = &app.spec else { panic!("ecs app expected") };
    assert_eq!(ecs.taskdef.as_ref().unwrap()["containerDefinitions"][0]["image"], "nginx:1");
    assert_eq!(ecs.depdef.stability.timeout_secs, 60);
    assert!(app.rendered.contains_key(&FileKind::DepDef));
}

#[test]
fn whitespace_edit_changes_the_fingerprint() {
    let before = fingerprint_of(&base());
    let mut tree = base();
    tree.insert("apps/web/web_taskdef.json", &format!("{TASK}\n"));
    assert_ne!(before, fingerprint_of(&tree));
}

#[test]
fn depdef_only_edit_keeps_the_fingerprint() {
    let before = fingerprint_of(&base());
    let mut tree = base();
    tree.insert("apps/web/web_depdef.json", r#"{"stabilityCheck": {"timeout": 600}}"#);
    assert_eq!(before, fingerprint_of(&tree));
}

#[test]
fn a_used_ref_value_change_changes_the_fingerprint_and_an_unused_one_does_not() {
    let before = fingerprint_of(&base());
    let mut tree = base();
    tree.insert("infra/tf.json", r#"{"cluster": {"value": "prod"}, "unused": {"value": "changed"}}"#);
    assert_eq!(before, fingerprint_of(&tree), "unused output");
    tree.insert("infra/tf.json", r#"{"cluster": {"value": "prod2"}, "unused": {"value": "changed"}}"#);
    assert_ne!(before, fingerprint_of(&tree), "used output");
}

#[test]
fn moved_files_keep_their_fingerprint() {
    let before = fingerprint_of(&base());
    // the app's folder moves (the input still names the same Terraform file)
    let mut moved = MemTree::new().with("infra/tf.json", TF);
    for (path, content) in &base().files {
        if let Some(rest) = path.strip_prefix("apps/web/") {
            moved.insert(&format!("services/frontend/{rest}"), std::str::from_utf8(content).unwrap());
        }
    }
    let snap = load_snapshot(&moved, &ctx());
    assert!(!snap.apps.contains_key("apps/web/web"), "the files really moved");
    let app = snap.apps["services/frontend/web"].as_ref().expect("valid at its new place");
    assert_eq!(before, app.fingerprint, "same rendered documents, same fingerprint");
    // a change of content at the new place is a new fingerprint
    moved.insert("services/frontend/web_taskdef.json", &format!("{TASK}\n"));
    assert_ne!(before, load_snapshot(&moved, &ctx()).apps["services/frontend/web"].as_ref().expect("valid").fingerprint);
}

#[test]
fn a_bad_app_does_not_affect_its_neighbour() {
    let tree = base().with("apps/bad/bad_svcdef.json", "{\n  \"serviceName\": \"{{ nope }}\"\n}").with("apps/bad/bad_taskdef.json", TASK);
    let snap = load_snapshot(&tree, &ctx());
    assert!(snap.apps["apps/web/web"].is_ok());
    let bad = snap.apps["apps/bad/bad"].as_ref().unwrap_err();
    assert_eq!(bad.errors[0].file, "apps/bad/bad_svcdef.json");
    assert_eq!(bad.errors[0].line, Some(2));
    assert!(bad.errors[0].message.contains("'nope'"));
}

#[test]
fn invalid_depdef_makes_the_app_invalid_with_the_field_named() {
    let mut tree = base();
    tree.insert("apps/web/web_depdef.json", "{\n  \"trafficShiftingConfig\": {\"percent\": 0}\n}");
    let snap = load_snapshot(&tree, &ctx());
    let bad = snap.apps["apps/web/web"].as_ref().unwrap_err();
    assert_eq!(bad.errors[0].file, "apps/web/web_depdef.json");
    assert_eq!(bad.errors[0].line, Some(2));
    assert!(bad.errors[0].message.contains("trafficShiftingConfig.percent"));
}

#[test]
fn lambda_apps_are_recognised_with_their_identity() {
    let tree = MemTree::new()
        .with(
            "fn/hello_lambdadef.json",
            r#"{"FunctionName": "hello", "Runtime": "python3.12", "Code": {"S3Bucket": "b", "S3Key": "k.zip"}}"#,
        )
        .with("fn/hello_lambdadepdef.json", r#"{"alias": "live", "environment": {"region": "eu-west-1"}}"#);
    let snap = load_snapshot(&tree, &ctx());
    let app = snap.apps["fn/hello"].as_ref().unwrap();
    assert_eq!(app.identity.to_string(), "lambda:default/eu-west-1/hello");
}

#[test]
fn unknown_fields_of_a_lambda_depdef_and_its_event_sources_are_warnings() {
    let tree = MemTree::new()
        .with("fn/hello_lambdadef.json", r#"{"FunctionName": "hello", "Runtime": "python3.12", "Role": "arn:aws:iam::1:role/r", "Handler": "a.h", "Code": {"ZipFile": "UEsDBA=="}}"#)
        .with("fn/hello_lambdadepdef.json", r#"{"alias": "live", "trafficShiftingConfg": {"type": "LINEAR"}}"#)
        .with("fn/hello_lambdaeventsourcedef.json", r#"{"PushEventSources": [], "PullEventSource": {}}"#);
    let snap = load_snapshot(&tree, &ctx());
    let app = snap.apps["fn/hello"].as_ref().expect("a warning is not an error");
    let said: Vec<String> = app.warnings.iter().map(ToString::to_string).collect();
    assert!(said.iter().any(|w| w.contains("trafficShiftingConfg") && w.contains("unknown field")), "{said:?}");
    assert!(said.iter().any(|w| w.contains("PullEventSource")), "{said:?}");
}

/// Issue 23, item 14: what the files alone can refuse is refused by `validate` / `plan` too,
/// never after a service was created.
#[test]
fn blue_green_files_that_cannot_work_are_invalid_before_anything_deploys() {
    const TG_A: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/1";
    const TG_B: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/2";
    const TG_C: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/c/3";
    let depdef = format!(r#"{{"targetGroupArnPairs": [["{TG_A}", "{TG_B}"]]}}"#);
    let svcdef = |lbs: &str| format!(r#"{{"serviceName": "web", "cluster": "prod", "deploymentController": {{"type": "EXTERNAL"}}{lbs}}}"#);
    let message = |svc: &str| {
        let tree = base().with("apps/web/web_svcdef.json", svc).with("apps/web/web_depdef.json", &depdef);
        match &load_snapshot(&tree, &ctx()).apps["apps/web/web"] {
            Ok(_) => String::new(),
            Err(invalid) => format!("{invalid:?}"),
        }
    };
    assert!(message(&svcdef("")).contains("has no loadBalancers"), "{}", message(&svcdef("")));
    let other = format!(r#", "loadBalancers": [{{"targetGroupArn": "{TG_C}", "containerName": "web", "containerPort": 80}}]"#);
    assert!(message(&svcdef(&other)).contains("in no pair"), "{}", message(&svcdef(&other)));
    let good = format!(r#", "loadBalancers": [{{"targetGroupArn": "{TG_A}", "containerName": "web", "containerPort": 80}}]"#);
    assert_eq!(message(&svcdef(&good)), "");
    let both = r#"{"serviceName": "web", "cluster": "prod", "launchType": "FARGATE", "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]}"#;
    assert!(message(both).contains("not both"), "{}", message(both));
    let express = r#"{"serviceName": "web", "cluster": "prod", "resourceManagementType": "ECS"}"#;
    assert!(message(express).contains("Express Mode"), "{}", message(express));
}

#[test]
fn analysis_on_a_rolling_service_is_a_warning_naming_the_depdef_and_placeholders_survive_rendering() {
    let depdef = r#"{"analysis": {"checks": [{"metric": {"namespace": "W", "metricName": "L", "dimensions": {"TargetGroup": "{{ green }}"}}, "max": 1}]}}"#;
    let snap = load_snapshot(&base().with("apps/web/web_depdef.json", depdef), &ctx());
    let app = snap.apps["apps/web/web"].as_ref().expect("valid");
    assert!(
        app.warnings.iter().any(|w| w.file == "apps/web/web_depdef.json" && w.message.contains("this rolling update ignores them")),
        "{:?}",
        app.warnings
    );
    let AppSpec::Ecs(ecs) = &app.spec else { panic!("ecs app expected") };
    let check = &ecs.depdef.analysis.as_ref().expect("analysis").checks[0];
    match &check.source {
        crate::analysis::MetricSource::Metric(m) => assert_eq!(m.dimensions, vec![("TargetGroup".to_string(), "{{ green }}".to_string())]),
        other @ crate::analysis::MetricSource::Expression { .. } => panic!("{other:?}"),
    }
}
