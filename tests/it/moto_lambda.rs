//! Lambda against moto: a function created from a small zip, a LINEAR 50 shift seen through
//! GetAlias, an SQS mapping on the alias ARN updated in place, the API Gateway v2 integration and
//! permission, the alias as the target of a lambda target group, and the delete.

use crate::moto::{synced, Moto, Server};
use crate::support::TestRepo;
use serde_json::Value;
use std::time::Duration;

pub const PREFIX: &str = "fn/hello";
pub const ZIPS: [&str; 2] = [
    "UEsDBBQAAAAAAAAAIVzyoV+SNwAAADcAAAAGAAAAYXBwLnB5ZGVmIGhhbmRsZXIoZXZlbnQsIGNvbnRleHQpOgogICAgcmV0dXJuIHsidmVyc2lvbiI6IDF9ClBLAQIUAxQAAAAAAAAAIVzyoV+SNwAAADcAAAAGAAAAAAAAAAAAAACAAQAAAABhcHAucHlQSwUGAAAAAAEAAQA0AAAAWwAAAAAA",
    "UEsDBBQAAAAAAAAAIVyrHxmQNwAAADcAAAAGAAAAYXBwLnB5ZGVmIGhhbmRsZXIoZXZlbnQsIGNvbnRleHQpOgogICAgcmV0dXJuIHsidmVyc2lvbiI6IDJ9ClBLAQIUAxQAAAAAAAAAIVyrHxmQNwAAADcAAAAGAAAAAAAAAAAAAACAAQAAAABhcHAucHlQSwUGAAAAAAEAAQA0AAAAWwAAAAAA",
];

pub fn write_function(repo: &TestRepo, zip: &str, batch: u32) {
    write_function_with(repo, zip, batch, "");
}

/// The function with more lambdadef members (`extra`: each followed by a comma).
pub fn write_function_with(repo: &TestRepo, zip: &str, batch: u32, extra: &str) {
    repo.write(
        &format!("{PREFIX}_lambdadef.json"),
        &format!(
            r#"{{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler", "Role": "{{{{ lambda_role_arn }}}}", {extra}
  "Code": {{"ZipFile": "{zip}"}}, "Timeout": 10, "MemorySize": 128}}
"#
        ),
    );
    repo.write(
        &format!("{PREFIX}_lambdadepdef.json"),
        r#"{"alias": "live", "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "waitInterval": 1},
  "alarms": {"alarmNames": ["hello-errors"]}, "readinessCheck": {"waitInterval": 1, "maxRetries": 10}}
"#,
    );
    repo.write(
        &format!("{PREFIX}_lambdaeventsourcedef.json"),
        &format!(
            r#"{{"PushEventSources": [
    {{"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": "{{{{ lambda_target_group_arn }}}}"}},
    {{"Service": "apigateway.amazonaws.com", "ApiId": "{{{{ api_id }}}}", "RouteId": "{{{{ route_id }}}}"}}],
  "PullEventSources": {{"EventSourceMapping": {{"EventSourceArn": "{{{{ queue_arn }}}}", "BatchSize": {batch}}}}}}}
"#
        ),
    );
    repo.write(&format!("{PREFIX}_lambdainput.json"), r#"{"ref": {"file": "infra/terraform_output.json", "type": "TERRAFORM"}}"#);
}

fn output(infra: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(infra).expect("outputs");
    v[name]["value"].as_str().expect("string output").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_lambda_is_created_shifted_linear_50_wired_to_the_alias_and_deleted() {
    let moto = Moto::start().await;
    let infra = moto.infra_with_lambda("prod");
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_function(&repo, ZIPS[0], 5);
    // an unrelated app keeps the checkout from being empty when the function goes
    repo.write("notes/keep_lambdadef.json.sample", "{}");
    repo.commit("hello");
    let server = Server::start(&moto, &repo, 100).await;
    let config = moto.sdk_config().await;
    let lambda = aws_sdk_lambda::Client::new(&config);
    let alias_arn = "arn:aws:lambda:us-east-1:123456789012:function:hello:live";

    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let alias = lambda.get_alias().function_name("hello").name("live").send().await.expect("alias");
    assert_eq!(alias.function_version(), Some("1"));

    // event sources are wired to the alias
    let mappings = lambda.list_event_source_mappings().function_name(alias_arn).send().await.expect("mappings");
    let mappings = mappings.event_source_mappings();
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_eq!(mappings[0].event_source_arn(), Some(output(&infra, "queue_arn").as_str()));
    assert_eq!(mappings[0].batch_size(), Some(5));
    let policy = lambda.get_policy().function_name("hello").qualifier("live").send().await.expect("policy");
    let policy = policy.policy().unwrap_or_default();
    assert!(policy.contains("elasticloadbalancing.amazonaws.com") && policy.contains("apigateway.amazonaws.com"), "{policy}");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let health = elb.describe_target_health().target_group_arn(output(&infra, "lambda_target_group_arn")).send().await.expect("health");
    let targets: Vec<&str> = health.target_health_descriptions().iter().filter_map(|d| d.target().and_then(|t| t.id())).collect();
    assert_eq!(targets, vec![alias_arn]);
    let api = aws_sdk_apigatewayv2::Client::new(&config);
    let api_id = output(&infra, "api_id");
    let integrations = api.get_integrations().api_id(&api_id).send().await.expect("integrations");
    let integration = integrations.items().iter().find(|i| i.integration_uri() == Some(alias_arn)).expect("an integration to the alias");
    let route = api.get_route().api_id(&api_id).route_id(output(&infra, "route_id")).send().await.expect("route");
    assert_eq!(route.target(), Some(format!("integrations/{}", integration.integration_id().unwrap()).as_str()));

    // a code change shifts LINEAR 50 with a 1 s wait: 0.5 on version 2, then version 2 alone
    server.proxy.reset();
    write_function(&repo, ZIPS[1], 5);
    let commit = repo.commit("hello v2");
    let mut seen: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    let start = std::time::Instant::now();
    loop {
        let a = lambda.get_alias().function_name("hello").name("live").send().await.expect("alias");
        let mut weights: Vec<(String, f64)> = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        weights.sort_by(|x, y| x.0.cmp(&y.0));
        let now = (a.function_version().unwrap_or_default().to_string(), weights);
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now.0 == "2" && now.1.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let app = server.app(PREFIX).await;
            let deployment = app.as_ref().and_then(|a| a["last_deployment"].as_str().map(str::to_string)).unwrap_or_default();
            let record = reqwest::get(format!("{}/api/v2/deployments/{deployment}", server.api)).await.unwrap().text().await.unwrap();
            panic!("alias states seen: {seen:?}; app {app:#?}; last deployment {record}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains(&("1".to_string(), vec![("2".to_string(), 0.5)])), "weight 0.5 on version 2 first: {seen:?}");
    server.wait_app(PREFIX, Duration::from_secs(30), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
    eprintln!("calls of one Lambda deployment (new code, LINEAR 50, three event sources):\n{}", server.proxy.table());
    let mutations = server.proxy.mutations();
    let expected: Vec<(&str, u64)> = vec![("lambda:PublishVersion", 1), ("lambda:UpdateAlias", 2), ("lambda:UpdateFunctionCode", 1)];
    let seen: Vec<(&str, u64)> = mutations.iter().map(|(op, n)| (op.as_str(), *n)).collect();
    assert_eq!(seen, expected, "the minimum: new code, one version, one alias update per step");

    // a BatchSize change updates the mapping in place
    write_function(&repo, ZIPS[1], 7);
    let commit = repo.commit("batch 7");
    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
    let mappings = lambda.list_event_source_mappings().function_name(alias_arn).send().await.expect("mappings");
    assert_eq!(mappings.event_source_mappings().len(), 1);
    assert_eq!(mappings.event_source_mappings()[0].batch_size(), Some(7));

    // only the network changes (same code): a new version holds it, the alias moves to it
    write_function_with(
        &repo,
        ZIPS[1],
        7,
        r#""VpcConfig": {"SubnetIds": {{ private_subnets | tojson }}, "SecurityGroupIds": ["{{ security_group_id }}"]},"#,
    );
    let commit = repo.commit("hello joins the VPC");
    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
    let app = server.app(PREFIX).await.expect("app");
    assert_eq!(app["last_outcome"], "succeeded", "{app:#?}");
    let alias = lambda.get_alias().function_name("hello").name("live").send().await.expect("alias");
    assert_eq!(alias.function_version(), Some("3"), "the VPC change is a new version, not version 2 again");
    let live = lambda.get_function_configuration().function_name("hello").qualifier("live").send().await.expect("configuration");
    let vpc = live.vpc_config().expect("the live version is in the VPC");
    let mut subnets: Vec<String> = vpc.subnet_ids().to_vec();
    subnets.sort();
    let mut expected: Vec<String> = serde_json::from_str::<Value>(&infra).expect("outputs")["private_subnets"]["value"]
        .as_array()
        .expect("subnets")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(subnets, expected);
    assert_eq!(vpc.security_group_ids(), [output(&infra, "security_group_id")]);

    // the lambdadef is deleted: mapping, permissions and function are gone
    for suffix in ["_lambdadef.json", "_lambdadepdef.json", "_lambdaeventsourcedef.json", "_lambdainput.json"] {
        repo.remove(&format!("{PREFIX}{suffix}"));
    }
    repo.write("keep/keep_svcdef.json", "{ broken json");
    repo.commit("hello is gone");
    let start = std::time::Instant::now();
    while lambda.get_function().function_name("hello").send().await.is_ok() {
        if start.elapsed() > Duration::from_secs(60) {
            let app = server.app(PREFIX).await;
            let deployment = app.as_ref().and_then(|a| a["last_deployment"].as_str().map(str::to_string)).unwrap_or_default();
            let record = reqwest::get(format!("{}/api/v2/deployments/{deployment}", server.api)).await.unwrap().text().await.unwrap();
            panic!("the function was not deleted; app {app:#?}; last deployment {record}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mappings = lambda.list_event_source_mappings().function_name(alias_arn).send().await.expect("mappings");
    assert!(mappings.event_source_mappings().is_empty(), "{:?}", mappings.event_source_mappings());
    // all it wired is gone too: the alias's registration in the target group, the integration
    let health = elb.describe_target_health().target_group_arn(output(&infra, "lambda_target_group_arn")).send().await.expect("health");
    assert!(health.target_health_descriptions().is_empty(), "{:?}", health.target_health_descriptions());
    let integrations = api.get_integrations().api_id(&api_id).send().await.expect("integrations");
    assert!(!integrations.items().iter().any(|i| i.integration_uri() == Some(alias_arn)), "{:?}", integrations.items());
    server.stop().await;
}
