//! One test per row of the normalization table, each against a DescribeServices service shape
//! as ECS's API reference shows it (camelCase members of botocore's `Service` shape).

use super::*;
use serde_json::json;

/// A DescribeServices `services[0]` as the API reference's Fargate example answers it.
fn described() -> Value {
    json!({
        "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
        "serviceName": "web",
        "status": "ACTIVE",
        "desiredCount": 2,
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "schedulingStrategy": "REPLICA",
        "propagateTags": "NONE",
        "enableECSManagedTags": false,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": true, "rollback": true},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100
        },
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-b", "subnet-a"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}},
        "loadBalancers": [{"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc",
            "containerName": "web", "containerPort": 80}],
        "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}, {"type": "binpack", "field": "MEMORY"}],
        "healthCheckGracePeriodSeconds": 30
    })
}

fn diff(svcdef: Value) -> Vec<Difference> {
    ecs_service(&svcdef, &described(), ServiceKind::Ecs)
}

#[test]
fn the_same_fields_are_no_difference_and_unset_fields_are_not_compared() {
    let svcdef = json!({"serviceName": "web", "cluster": "prod", "desiredCount": 7, "taskDefinition": "web:3",
        "launchType": "FARGATE", "deploymentConfiguration": {"maximumPercent": 200},
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-1"]}}});
    assert_eq!(diff(svcdef), vec![]);
}

#[test]
fn a_number_sent_as_a_string_equals_the_number() {
    assert_eq!(diff(json!({"healthCheckGracePeriodSeconds": "30"})), vec![]);
    assert_eq!(diff(json!({"deploymentConfiguration": {"minimumHealthyPercent": "100"}})), vec![]);
    let d = diff(json!({"healthCheckGracePeriodSeconds": "45"}));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].pointer, "/healthCheckGracePeriodSeconds");
    assert_eq!(d[0].aws, Some(json!(30)));
}

#[test]
fn an_absent_aws_value_equals_its_documented_default() {
    // DescribeServices leaves enableExecuteCommand out when it is false
    assert_eq!(diff(json!({"enableExecuteCommand": false})), vec![]);
    let d = diff(json!({"enableExecuteCommand": true}));
    assert_eq!(d[0].to_string(), "AWS holds false for /enableExecuteCommand; the file says true");
    assert_eq!(diff(json!({"networkConfiguration": {"awsvpcConfiguration": {"assignPublicIp": "DISABLED"}}})), vec![]);
    let without_base = json!({"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]});
    let aws = json!({"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]});
    assert_eq!(ecs_service(&without_base, &aws, ServiceKind::Ecs), vec![]);
}

#[test]
fn an_empty_list_equals_an_absent_one() {
    assert_eq!(diff(json!({"serviceRegistries": [], "placementConstraints": []})), vec![]);
    let d = diff(json!({"serviceRegistries": [{"registryArn": "arn:aws:servicediscovery:us-east-1:1:service/srv-1"}]}));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].aws, None);
    assert!(d[0].to_string().starts_with("AWS holds nothing for /serviceRegistries"));
}

#[test]
fn order_does_not_matter_in_sets_but_does_in_placement_strategy() {
    assert_eq!(diff(json!({"networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a", "subnet-b"]}}})), vec![]);
    let d = diff(json!({"networkConfiguration": {"awsvpcConfiguration": {"securityGroups": ["sg-1", "sg-2"]}}}));
    assert_eq!(d[0].pointer, "/networkConfiguration/awsvpcConfiguration/securityGroups");
    let swapped = json!({"placementStrategy": [{"type": "binpack", "field": "memory"}, {"type": "spread", "field": "attribute:ecs.availability-zone"}]});
    assert_eq!(diff(swapped)[0].pointer, "/placementStrategy");
}

#[test]
fn enum_strings_compare_in_any_case() {
    let same = json!({"placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}, {"type": "binpack", "field": "memory"}],
        "propagateTags": "none", "launchType": "fargate"});
    assert_eq!(diff(same), vec![]);
    assert_eq!(diff(json!({"propagateTags": "SERVICE"}))[0].pointer, "/propagateTags");
}

#[test]
fn a_name_equals_an_arn_ending_in_it() {
    let aws = json!({"capacityProviderStrategy": [{"capacityProvider": "arn:aws:ecs:us-east-1:1:capacity-provider/cp-1", "weight": 1}]});
    let file = json!({"capacityProviderStrategy": [{"capacityProvider": "cp-1", "weight": "1"}]});
    assert_eq!(ecs_service(&file, &aws, ServiceKind::Ecs), vec![]);
    let other = json!({"capacityProviderStrategy": [{"capacityProvider": "cp-2", "weight": 1}]});
    assert_eq!(ecs_service(&other, &aws, ServiceKind::Ecs).len(), 1);
}

#[test]
fn load_balancers_of_a_blue_green_service_belong_to_its_task_sets() {
    let file = json!({"loadBalancers": [{"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/x", "containerName": "web", "containerPort": 80}]});
    assert_eq!(ecs_service(&file, &described(), ServiceKind::Ecs).len(), 1);
    assert_eq!(ecs_service(&file, &described(), ServiceKind::External), vec![]);
}

#[test]
fn a_capacity_provider_change_needs_a_new_deployment_and_launch_type_cannot_be_updated() {
    let d = diff(json!({"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}], "launchType": "EC2"}));
    assert!(needs_new_deployment(&d));
    assert_eq!(updatable(&d).count(), 1, "{d:?}");
}

#[test]
fn restoring_fields_put_back_the_previous_file_and_clear_what_the_failed_one_added() {
    let previous = json!({"serviceName": "web", "enableExecuteCommand": true, "healthCheckGracePeriodSeconds": 10});
    let failed = json!({"serviceName": "web", "enableExecuteCommand": false, "serviceRegistries": [{"registryArn": "x"}], "propagateTags": "SERVICE"});
    let body = restoring_fields(&previous, Some(&failed));
    assert_eq!(body.get("enableExecuteCommand"), Some(&json!(true)));
    assert_eq!(body.get("healthCheckGracePeriodSeconds"), Some(&json!(10)));
    assert_eq!(body.get("serviceRegistries"), Some(&json!([])));
    assert_eq!(body.get("propagateTags"), Some(&json!("NONE")));
    assert!(!body.contains_key("serviceName"));
}

#[test]
fn a_long_value_is_shortened_in_messages() {
    let groups: Vec<String> = (0..40).map(|i| format!("sg-{i:08}")).collect();
    let d = diff(json!({"networkConfiguration": {"awsvpcConfiguration": {"securityGroups": groups}}}));
    assert!(d[0].to_string().len() < 400);
}
