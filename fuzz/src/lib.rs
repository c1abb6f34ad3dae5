//! What the fuzz targets exercise, as plain functions: `cargo fuzz` calls them with libFuzzer's
//! inputs, and `deploy/tests/fuzz_regressions.rs` replays the corpus and every input that ever
//! crashed through them in `cargo test`. Each must return normally for any input; a panic is a bug.

use gitmoxi_deploy::spec::ecs_depdef::parse_ecs_depdef;
use gitmoxi_deploy::spec::lambda::{parse_event_sources, parse_lambda_depdef};
use gitmoxi_deploy::spec::{load_snapshot, MemTree, RenderContext};
use gitmoxi_deploy::webhook::{normalize_url, parse_github_pull_request, parse_github_push, parse_gitlab_merge_request, parse_gitlab_push};
use serde_json::Value;

/// The files of a valid ECS app and a valid Lambda function; the fuzzer replaces one of them.
pub const FILES: [(&str, &str); 9] = [
    (
        "apps/web/web_svcdef.json",
        r#"{"serviceName": "web", "cluster": "{{ cluster_name }}", "desiredCount": 2, "launchType": "FARGATE",
  "networkConfiguration": {"awsvpcConfiguration": {"subnets": {{ private_subnets | tojson }}, "securityGroups": ["{{ security_group_id }}"]}}}"#,
    ),
    (
        "apps/web/web_taskdef.json",
        r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "{{ image }}", "memory": 512,
  "environment": [{% for k, v in env | items %}{"name": "{{ k }}", "value": "{{ v }}"}{% if not loop.last %},{% endif %}{% endfor %}]}]}"#,
    ),
    (
        "apps/web/web_depdef.json",
        r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 120}, "gmDeploymentCircuitBreaker": {"failureThreshold": 2}}"#,
    ),
    (
        "apps/web/web_input.json",
        r#"{"ref": {"file": ["infra/terraform_output.json"], "type": "TERRAFORM"}, "image": "nginx:1", "env": {"A": "1"}}"#,
    ),
    (
        "infra/terraform_output.json",
        r#"{"cluster_name": {"value": "prod"}, "private_subnets": {"value": ["s-1", "s-2"]}, "security_group_id": {"value": "sg-1"},
  "lambda_role_arn": {"value": "arn:aws:iam::123456789012:role/fn"}, "queue_arn": {"value": "arn:aws:sqs:us-east-1:123456789012:q"}}"#,
    ),
    (
        "fn/hello_lambdadef.json",
        r#"{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler", "Role": "{{ lambda_role_arn }}",
  "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}, "Timeout": 10}"#,
    ),
    (
        "fn/hello_lambdadepdef.json",
        r#"{"alias": "live", "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "waitInterval": 1}, "alarms": {"alarmNames": ["e"]}}"#,
    ),
    (
        "fn/hello_lambdaeventsourcedef.json",
        r#"{"PullEventSources": {"EventSourceMapping": {"EventSourceArn": "{{ queue_arn }}", "BatchSize": 5}}}"#,
    ),
    ("fn/hello_lambdainput.json", r#"{"ref": {"file": "infra/terraform_output.json", "type": "TERRAFORM"}}"#),
];

/// Target `render_and_load`: the first byte picks one of [`FILES`], the rest replaces it; the
/// whole repository is rendered and loaded twice, and both loads must agree.
pub fn render_and_load(data: &[u8]) {
    let Some((&pick, content)) = data.split_first() else { return };
    let mut tree = MemTree::new();
    for (path, text) in FILES {
        tree.insert(path, text);
    }
    let (path, _) = FILES[usize::from(pick) % FILES.len()];
    tree.files.insert(path.to_string(), content.to_vec());
    let ctx = RenderContext::new("us-east-1".into());
    let first = load_snapshot(&tree, &ctx);
    let second = load_snapshot(&tree, &ctx);
    let fingerprints = |s: &gitmoxi_deploy::spec::Snapshot| -> Vec<(String, Option<String>)> {
        s.apps.iter().map(|(k, v)| (k.clone(), v.as_ref().ok().map(|a| a.fingerprint.clone()))).collect()
    };
    assert_eq!(fingerprints(&first), fingerprints(&second), "loading is deterministic");
    for invalid in first.apps.values().filter_map(|a| a.as_ref().err()) {
        assert!(!invalid.errors.is_empty(), "an invalid app says why: {}", invalid.prefix);
        assert!(invalid.errors.iter().all(|e| !e.file.is_empty() && !e.message.is_empty()), "{:?}", invalid.errors);
    }
}

/// Target `depdef`: the input as an ECS depdef, a Lambda depdef and an event source file.
pub fn depdef(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(json) = serde_json::from_str::<Value>(text) else { return };
    if let Err(problems) = parse_ecs_depdef("a/x_depdef.json", text, &json) {
        assert!(!problems.is_empty(), "a refused ECS depdef names a problem");
    }
    if let Err(problems) = parse_lambda_depdef("f/x_lambdadepdef.json", text, &json) {
        assert!(!problems.is_empty(), "a refused Lambda depdef names a problem");
    }
    if let Err(problems) = parse_event_sources("f/x_lambdaeventsourcedef.json", text, &json) {
        assert!(!problems.is_empty(), "a refused event source file names a problem");
    }
}

/// Target `webhook`: the input as a GitHub and a GitLab push payload; every URL is normalized.
pub fn webhook(data: &[u8]) {
    for push in [parse_github_push(data), parse_gitlab_push(data)].into_iter().flatten().flatten() {
        for url in &push.urls {
            let normal = normalize_url(url);
            assert_eq!(normal, normal.to_ascii_lowercase(), "{url:?}");
            assert!(!normal.ends_with('/') && !normal.ends_with(".git"), "{url:?} → {normal:?}");
        }
    }
    for pr in [parse_github_pull_request(data), parse_gitlab_merge_request(data)].into_iter().flatten().flatten() {
        // the ref a preview fetches is always one of the two shapes, whatever the payload says
        assert!(pr.head_ref.starts_with("refs/pull/") || pr.head_ref.starts_with("refs/merge-requests/"), "{pr:?}");
        assert!(pr.head_ref.ends_with("/head") && pr.head_ref.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-".contains(&b)), "{pr:?}");
    }
    let _ = normalize_url(&String::from_utf8_lossy(data));
}
