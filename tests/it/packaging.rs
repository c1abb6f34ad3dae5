//! The shipped IAM policy matches the calls the SDK adapters make, both ways: every operation an
//! adapter can send is allowed (else a deployment fails with AccessDenied), and the policy allows
//! nothing the adapters never call (least privilege). The other packaging files parse.

use gitmoxi::aws::iam::Operation;
use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// IAM actions of every `AwsError::from_sdk(service, "Operation", …)` in the adapters.
fn actions_called() -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("src/io/aws")).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_str().unwrap().starts_with("sdk_") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let label = text.split("const SERVICE: &str = \"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string);
        for call in text.split("from_sdk(").skip(1) {
            let mut args = call.splitn(3, ',');
            let service = args.next().unwrap().trim().trim_matches('"').to_string();
            let op = args.next().unwrap().trim().trim_matches('"').to_string();
            let service = if service == "SERVICE" { label.clone().expect("SERVICE is defined") } else { service };
            let action = Operation { service, name: op }.iam_action();
            actions.insert(action);
        }
    }
    // high availability's table: every `self.aws("Operation", …)` of its one DynamoDB module
    let table = std::fs::read_to_string(root().join("src/io/ha/table.rs")).unwrap();
    for call in table.split("self.aws(\"").skip(1) {
        let op = call.split('"').next().unwrap().to_string();
        actions.insert(Operation { service: "dynamodb".into(), name: op }.iam_action());
    }
    actions
}

/// Every action `packaging/iam-policy.json` allows.
pub fn actions_allowed() -> BTreeSet<String> {
    actions_of("packaging/iam-policy.json")
}

fn policy(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

/// Every action the policy at `path` allows.
fn actions_of(path: &str) -> BTreeSet<String> {
    let policy = policy(path);
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            serde_json::Value::String(a) => {
                allowed.insert(a.clone());
            }
            serde_json::Value::Array(list) => allowed.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("unexpected Action {other}"),
        }
    }
    allowed
}

#[test]
fn the_iam_policy_allows_exactly_what_gitmoxi_calls() {
    let called = actions_called();
    assert!(called.len() > 40, "{called:?}");
    let allowed = actions_allowed();
    let missing: Vec<&String> = called.difference(&allowed).collect();
    assert!(missing.is_empty(), "the policy lacks {missing:?}");
    // implied by calls gitmoxi makes: passing task/function roles, tagging at CreateFunction,
    // decrypting SecureString parameters, the lease check inside the HA table's transactions
    let implied: BTreeSet<String> =
        ["iam:PassRole", "lambda:TagResource", "kms:Decrypt", "dynamodb:ConditionCheckItem"].iter().map(|s| s.to_string()).collect();
    let extra: Vec<&String> = allowed.difference(&called).filter(|a| !implied.contains(*a)).collect();
    assert!(extra.is_empty(), "the policy allows actions gitmoxi never calls: {extra:?}");
}

#[test]
fn a_workload_account_role_allows_what_gitmoxi_calls_there_and_trusts_the_controller() {
    let controller = actions_allowed();
    let workload = actions_of("packaging/account-deploy-policy.json");
    let expected: BTreeSet<String> = controller.iter().filter(|a| !a.starts_with("sts:") && !a.starts_with("dynamodb:")).cloned().collect();
    assert_eq!(workload, expected, "the workload role's policy is the controller's without STS and the HA table");
    let assume = policy("packaging/iam-policy.json")["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "sts:AssumeRole")
        .cloned()
        .expect("the controller may assume workload roles");
    assert_eq!(assume["Resource"], "arn:aws:iam::*:role/gitmoxi-*", "only roles named gitmoxi-… (as the README's set-up)");
    // issue 27: roles are passed only from the workloads' path, and only to ECS tasks and Lambda
    for file in ["packaging/iam-policy.json", "packaging/account-deploy-policy.json"] {
        let pass = policy(file)["Statement"].as_array().unwrap().iter().find(|s| s["Action"] == "iam:PassRole").cloned().expect("PassRole");
        assert_eq!(pass["Resource"], "arn:aws:iam::*:role/gitmoxi-workloads/*", "{file}: not every role");
        assert!(pass["Condition"]["StringLike"]["iam:PassedToService"].is_array(), "{file}");
    }
    let trust = &policy("packaging/account-trust-policy.json")["Statement"][0];
    assert_eq!(trust["Action"], "sts:AssumeRole");
    assert!(trust["Principal"]["AWS"].as_str().unwrap().ends_with(":role/gitmoxi"), "{trust}");
    assert!(trust["Condition"]["StringEquals"]["sts:ExternalId"].is_string(), "{trust}");
}

#[test]
fn the_packaging_files_are_well_formed() {
    let taskdef: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("packaging/ecs-task-definition.json")).unwrap()).unwrap();
    assert_eq!(taskdef["family"], "gitmoxi");
    assert_eq!(taskdef["containerDefinitions"][0]["command"][0], "serve");
    let dockerfile = std::fs::read_to_string(root().join("packaging/Dockerfile")).unwrap();
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
    // the HA table: the key gitmoxi writes, on demand, and the name the policy allows
    let table: serde_json::Value = policy("packaging/dynamodb-table.json");
    assert_eq!(
        table["KeySchema"],
        serde_json::json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    let ha = policy("packaging/iam-policy.json")["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "HighAvailabilityTable")
        .cloned()
        .expect("the HA statement");
    assert_eq!(ha["Resource"], format!("arn:aws:dynamodb:*:*:table/{}", table["TableName"].as_str().unwrap()));
    let unit = std::fs::read_to_string(root().join("packaging/gitmoxi.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/gitmoxi serve"));
}
