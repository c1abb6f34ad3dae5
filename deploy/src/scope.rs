//! What one repository may deploy (issue 27, `[repos.scope]`): the accounts, regions, clusters,
//! service and function name prefixes, and IAM roles its apps may use. An app outside its
//! repository's scope is invalid, naming the rule it breaks: nothing is deployed or deleted for
//! it. An empty list does not restrict.

use crate::spec::{AppSpec, DesiredApp, Diagnostic, Identity, InvalidApp, InvalidStage, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A repository's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoScope {
    /// Account ids its apps may deploy into (an app naming none deploys into the controller's).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Regions.
    #[serde(default)]
    pub regions: Vec<String>,
    /// ECS clusters (names; an ARN's name is compared).
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Prefixes of service and function names.
    #[serde(default)]
    pub name_prefixes: Vec<String>,
    /// Prefixes of the IAM role ARNs a task (`taskRoleArn`, `executionRoleArn`) or a function
    /// (`Role`) may use, e.g. `arn:aws:iam::111111111111:role/team-a-`.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl RepoScope {
    /// Whether the scope restricts anything.
    pub fn is_open(&self) -> bool {
        self.accounts.is_empty()
            && self.regions.is_empty()
            && self.clusters.is_empty()
            && self.name_prefixes.is_empty()
            && self.roles.is_empty()
    }

    /// Every rule `app` breaks, each naming the rule and the value (`own_account`: where an app
    /// naming no account deploys).
    pub fn violations(&self, app: &DesiredApp, own_account: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        let (account, region, cluster, name) = match &app.identity.in_account(own_account) {
            Identity::Ecs { account, region, cluster, service } => {
                (account.clone(), region.clone(), Some(cluster.clone()), service.clone())
            }
            Identity::Lambda { account, region, function } => (account.clone(), region.clone(), None, function.clone()),
        };
        if !self.accounts.is_empty() && !account.as_ref().is_some_and(|a| self.accounts.contains(a)) {
            out.push(format!(
                "account {} is outside the repository's scope (accounts: {})",
                account.as_deref().unwrap_or("unknown"),
                self.accounts.join(", ")
            ));
        }
        if !self.regions.is_empty() && !self.regions.contains(&region) {
            out.push(format!("region {region} is outside the repository's scope (regions: {})", self.regions.join(", ")));
        }
        if let Some(cluster) = cluster.filter(|_| !self.clusters.is_empty()) {
            let short = crate::spec::ecs::cluster_name(&cluster).to_string();
            if !self.clusters.contains(&short) {
                out.push(format!("cluster {short} is outside the repository's scope (clusters: {})", self.clusters.join(", ")));
            }
        }
        if !self.name_prefixes.is_empty() && !self.name_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            out.push(format!("name {name} does not start with one of the repository's name_prefixes ({})", self.name_prefixes.join(", ")));
        }
        if !self.roles.is_empty() {
            for (field, role) in roles_of(app) {
                if !self.roles.iter().any(|p| role.starts_with(p.as_str())) {
                    out.push(format!("{field} {role} is outside the repository's scope (roles: {})", self.roles.join(", ")));
                }
            }
        }
        out
    }
}

/// The IAM roles an app's files hand to AWS, with the field that names each.
fn roles_of(app: &DesiredApp) -> Vec<(&'static str, String)> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match &app.spec {
        AppSpec::Ecs(ecs) => {
            let td = ecs.taskdef.as_ref();
            [
                ("taskRoleArn", text(td.and_then(|t| t.get("taskRoleArn")))),
                ("executionRoleArn", text(td.and_then(|t| t.get("executionRoleArn")))),
            ]
            .into_iter()
            .filter_map(|(f, r)| Some((f, r?)))
            .collect()
        }
        AppSpec::Lambda(l) => text(l.lambdadef.get("Role")).map(|r| vec![("Role", r)]).unwrap_or_default(),
    }
}

/// The snapshot with every app outside `scope` made invalid (its files named, the rules it
/// breaks as the errors).
pub fn restrict(mut snapshot: Snapshot, scope: &RepoScope, own_account: Option<&str>) -> Snapshot {
    if scope.is_open() {
        return snapshot;
    }
    for loaded in snapshot.apps.values_mut() {
        let Ok(app) = loaded else { continue };
        let broken = scope.violations(app, own_account);
        if broken.is_empty() {
            continue;
        }
        let main = match app.kind {
            crate::spec::AppKind::Ecs => crate::spec::FileKind::SvcDef,
            crate::spec::AppKind::Lambda => crate::spec::FileKind::LambdaDef,
        };
        let file = app.files.path(main).map_or_else(|| app.prefix.clone(), str::to_string);
        let errors = broken.into_iter().map(|why| Diagnostic::new(&file, why)).collect();
        *loaded =
            Err(InvalidApp { prefix: app.prefix.clone(), kind: app.kind, files: app.files.clone(), errors, stage: InvalidStage::Validate });
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{load_snapshot, MemTree, RenderContext};

    fn snapshot() -> Snapshot {
        let tree = MemTree::new()
            .with("a/web_svcdef.json", r#"{"serviceName": "team-a-web", "cluster": "prod"}"#)
            .with(
                "a/web_taskdef.json",
                r#"{"family": "web", "taskRoleArn": "arn:aws:iam::111111111111:role/team-b-admin", "containerDefinitions": [{"name": "w", "image": "i"}]}"#,
            )
            .with("b/api_svcdef.json", r#"{"serviceName": "team-a-api", "cluster": "prod", "taskDefinition": "api:1"}"#)
            .with("c/other_svcdef.json", r#"{"serviceName": "billing", "cluster": "payments", "taskDefinition": "x:1"}"#)
            .with("c/other_depdef.json", r#"{"environment": {"region": "eu-west-1", "account": "222222222222"}}"#);
        load_snapshot(&tree, &RenderContext::new("us-east-1".into()))
    }

    #[test]
    fn apps_outside_the_scope_are_invalid_naming_the_rule() {
        let scope = RepoScope {
            accounts: vec!["111111111111".into()],
            regions: vec!["us-east-1".into()],
            clusters: vec!["prod".into()],
            name_prefixes: vec!["team-a-".into()],
            roles: vec!["arn:aws:iam::111111111111:role/team-a-".into()],
        };
        let restricted = restrict(snapshot(), &scope, Some("111111111111"));
        assert!(restricted.apps["b/api"].is_ok(), "inside the scope: {:?}", restricted.apps["b/api"]);
        let Err(web) = &restricted.apps["a/web"] else { panic!("a role of another team") };
        assert!(web.errors[0].message.contains("taskRoleArn arn:aws:iam::111111111111:role/team-b-admin is outside"), "{:?}", web.errors);
        let Err(other) = &restricted.apps["c/other"] else { panic!("outside on every count") };
        let all: Vec<&str> = other.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(all.iter().any(|m| m.contains("account 222222222222")) && all.iter().any(|m| m.contains("region eu-west-1")));
        assert!(all.iter().any(|m| m.contains("cluster payments")) && all.iter().any(|m| m.contains("name billing")));
        // an open scope restricts nothing
        assert!(restrict(snapshot(), &RepoScope::default(), None).apps.values().all(Result::is_ok));
    }
}
