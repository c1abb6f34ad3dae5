//! The risk of a commit's changes, computed without any AI service (gmctl `commit riskiq`):
//! per app, what changes between what gitmoxi applied and what the commit renders (image,
//! CPU/memory, environment, IAM roles, network, desired count, strategy, deletes, moves), the
//! blast radius, and a score with its reasons.
//!
//! Environment and secret *values* never appear: a change names the variable, not its content.

use crate::spec::{ecs, AppSpec, DesiredApp, Identity, Snapshot};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// What merging does to one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskChangeKind {
    /// A new service or function.
    Create,
    /// An update of one gitmoxi applied.
    Update,
    /// The app's files are gone: it is deleted.
    Delete,
    /// The same service or function under another folder.
    Move,
    /// Nothing AWS would see changes.
    Unchanged,
    /// The files do not render or validate: nothing deploys.
    Blocked,
}

/// One reason the score grew.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReason {
    /// What changes, in plain words (never a secret's value).
    pub change: String,
    /// How much it adds to the score.
    pub weight: u32,
    /// Why that matters.
    pub why: String,
}

/// The assessment of one app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppRisk {
    /// The app's folder.
    pub prefix: String,
    /// What happens to it.
    pub kind: RiskChangeKind,
    /// Where it runs: service or function, cluster, region, account.
    pub target: String,
    /// The tasks (ECS) the change reaches, when known.
    pub tasks: Option<u32>,
    /// 0 (nothing) to 100 (as risky as it gets).
    pub score: u32,
    /// low, medium or high.
    pub level: RiskLevel,
    /// Every change that adds to the score.
    pub reasons: Vec<RiskReason>,
}

/// The score in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Below 20.
    Low,
    /// 20 to 49.
    Medium,
    /// 50 and above.
    High,
}

impl RiskLevel {
    /// The level of a score.
    pub fn of(score: u32) -> RiskLevel {
        match score {
            0..=19 => RiskLevel::Low,
            20..=49 => RiskLevel::Medium,
            _ => RiskLevel::High,
        }
    }

    /// As messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

/// One app as the assessment sees it: before (what gitmoxi applied) and after (the commit).
pub enum AppChange<'a> {
    /// The commit renders the app; `before` is what gitmoxi applied, if anything.
    Present {
        /// The app's folder.
        prefix: &'a str,
        /// What gitmoxi applied last.
        before: Option<&'a AppSpec>,
        /// What the commit renders.
        after: &'a AppSpec,
        /// Where it deploys.
        identity: &'a Identity,
    },
    /// The app's files are gone.
    Deleted {
        /// The app's folder.
        prefix: &'a str,
        /// What gitmoxi applied last.
        before: &'a AppSpec,
        /// Where it ran.
        identity: &'a Identity,
        /// The folder that now holds the same service or function, when it moved.
        moved_to: Option<&'a str>,
    },
    /// The app's files do not render or validate.
    Invalid {
        /// The app's folder.
        prefix: &'a str,
        /// What is wrong.
        errors: Vec<String>,
    },
}

/// The changes of commit `after` against the commit processed before it, `before` (issue 25:
/// every processed commit is assessed against its predecessor as applied): only the apps whose
/// files rendered differently, and those gone (a move when another folder now holds the same
/// identity); an app invalid in `after` and not in `before` is listed as invalid.
pub fn changes_between<'a>(before: &'a Snapshot, after: &'a Snapshot, own_account: Option<&str>) -> Vec<AppChange<'a>> {
    let mut changes = Vec::new();
    for (prefix, app) in &after.apps {
        let previous = before.apps.get(prefix);
        match (app, previous) {
            (Ok(now), Some(Ok(was))) if now.fingerprint == was.fingerprint => {}
            (Ok(now), Some(Ok(was))) => {
                changes.push(AppChange::Present { prefix, before: Some(&was.spec), after: &now.spec, identity: &now.identity })
            }
            (Ok(now), Some(Err(_)) | None) => {
                changes.push(AppChange::Present { prefix, before: None, after: &now.spec, identity: &now.identity })
            }
            (Err(invalid), Some(Err(was))) if was.errors == invalid.errors => {}
            (Err(invalid), Some(_) | None) => {
                changes.push(AppChange::Invalid { prefix, errors: invalid.errors.iter().map(ToString::to_string).collect() })
            }
        }
    }
    for (prefix, was) in &before.apps {
        let (false, Ok(was)) = (after.apps.contains_key(prefix), was) else { continue };
        let same = |a: &DesiredApp| a.identity.in_account(own_account) == was.identity.in_account(own_account);
        let moved_to = after.apps.iter().find(|(_, a)| a.as_ref().is_ok_and(same)).map(|(p, _)| p.as_str());
        changes.push(AppChange::Deleted { prefix, before: &was.spec, identity: &was.identity, moved_to });
    }
    changes
}

/// The assessment of every app a commit touches, riskiest first.
pub fn assess(changes: &[AppChange<'_>]) -> Vec<AppRisk> {
    let mut out: Vec<AppRisk> = changes.iter().map(assess_one).collect();
    out.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.prefix.cmp(&b.prefix)));
    out
}

/// The score of a whole commit: its riskiest app, raised a little by every other risky one.
pub fn commit_score(apps: &[AppRisk]) -> u32 {
    let mut scores: Vec<u32> = apps.iter().map(|a| a.score).collect();
    scores.sort_unstable_by(|a, b| b.cmp(a));
    let top = scores.first().copied().unwrap_or(0);
    let others = scores.iter().skip(1).filter(|s| **s >= 20).count() as u32;
    (top + 5 * others).min(100)
}

fn assess_one(change: &AppChange<'_>) -> AppRisk {
    let (prefix, kind, target, tasks, reasons) = match change {
        AppChange::Present { prefix, before: None, after, identity } => {
            let reasons = vec![reason(format!("creates {}", describe(identity)), 10, "a new service or function starts taking work")];
            (*prefix, RiskChangeKind::Create, describe(identity), desired_tasks(after), reasons)
        }
        AppChange::Present { prefix, before: Some(before), after, identity } => {
            let reasons = compare(before, after);
            let kind = if reasons.is_empty() { RiskChangeKind::Unchanged } else { RiskChangeKind::Update };
            (*prefix, kind, describe(identity), desired_tasks(after).or_else(|| desired_tasks(before)), reasons)
        }
        AppChange::Deleted { prefix, before, identity, moved_to: Some(to) } => {
            let reasons = vec![reason(
                format!("moves {} from {prefix} to {to}", describe(identity)),
                30,
                "the app changes owner folder: its history stays here, its next deployment starts there",
            )];
            (*prefix, RiskChangeKind::Move, describe(identity), desired_tasks(before), reasons)
        }
        AppChange::Deleted { prefix, before, identity, moved_to: None } => {
            let what = match before {
                AppSpec::Ecs(_) => "every task of the service stops and its load balancer targets go",
                AppSpec::Lambda(_) => "the function and its event sources are removed",
            };
            let reasons = vec![reason(format!("deletes {}", describe(identity)), 60, what)];
            (*prefix, RiskChangeKind::Delete, describe(identity), desired_tasks(before), reasons)
        }
        AppChange::Invalid { prefix, errors } => {
            let reasons = vec![reason(
                format!("does not render or validate: {}", errors.join("; ")),
                20,
                "nothing of this app deploys until its files are fixed",
            )];
            (*prefix, RiskChangeKind::Blocked, String::new(), None, reasons)
        }
    };
    let mut score: u32 = reasons.iter().map(|r| r.weight).sum();
    // many tasks reached: a wider blast radius
    if let (Some(n), RiskChangeKind::Update | RiskChangeKind::Delete | RiskChangeKind::Move) = (tasks, kind) {
        score += match n {
            0..=2 => 0,
            3..=10 => 5,
            _ => 10,
        };
    }
    let score = score.min(100);
    AppRisk { prefix: prefix.to_string(), kind, target, tasks, score, level: RiskLevel::of(score), reasons }
}

fn reason(change: String, weight: u32, why: &str) -> RiskReason {
    RiskReason { change, weight, why: why.to_string() }
}

/// `service web in cluster prod (us-east-1, account 1234…)` / `function f (…)`.
pub fn describe(identity: &Identity) -> String {
    let account = |a: &Option<String>| a.as_deref().map(|a| format!(", account {a}")).unwrap_or_default();
    match identity {
        Identity::Ecs { account: a, region, cluster, service } => {
            format!("service {service} in cluster {} ({region}{})", ecs::cluster_name(cluster), account(a))
        }
        Identity::Lambda { account: a, region, function } => format!("function {function} ({region}{})", account(a)),
    }
}

fn desired_tasks(spec: &AppSpec) -> Option<u32> {
    match spec {
        AppSpec::Ecs(e) => e.desired_count(),
        AppSpec::Lambda(_) => None,
    }
}

fn compare(before: &AppSpec, after: &AppSpec) -> Vec<RiskReason> {
    match (before, after) {
        (AppSpec::Ecs(b), AppSpec::Ecs(a)) => compare_ecs(b, a),
        (AppSpec::Lambda(b), AppSpec::Lambda(a)) => compare_lambda(b, a),
        (AppSpec::Ecs(_), AppSpec::Lambda(_)) | (AppSpec::Lambda(_), AppSpec::Ecs(_)) => {
            vec![reason("the app changes kind (ECS ↔ Lambda)".into(), 60, "the old resource is deleted and a new one created")]
        }
    }
}

fn compare_ecs(b: &ecs::EcsApp, a: &ecs::EcsApp) -> Vec<RiskReason> {
    let mut out = Vec::new();
    let null = Value::Null;
    let (bt, at) = (b.taskdef.as_ref().unwrap_or(&null), a.taskdef.as_ref().unwrap_or(&null));
    let containers = |t: &Value| -> Vec<(String, Value)> {
        t.get("containerDefinitions")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| (c.get("name").and_then(Value::as_str).unwrap_or("?").to_string(), c.clone())).collect())
            .unwrap_or_default()
    };
    let (bc, ac) = (containers(bt), containers(at));
    for (name, after) in &ac {
        let Some((_, before)) = bc.iter().find(|(n, _)| n == name) else {
            out.push(reason(format!("adds container {name}"), 15, "a new process runs in every task"));
            continue;
        };
        if let (Some(x), Some(y)) = (str_at(before, "image"), str_at(after, "image")) {
            if x != y {
                out.push(reason(format!("image of container {name}: {x} → {y}"), 10, "new code runs"));
            }
        }
        for field in ["cpu", "memory", "memoryReservation"] {
            resource_change(&mut out, &format!("{field} of container {name}"), before.get(field), after.get(field));
        }
        names_change(&mut out, &format!("environment of container {name}"), before, after, "environment", 10);
        names_change(&mut out, &format!("secrets of container {name}"), before, after, "secrets", 15);
        let rest = other_fields(before, after, &["image", "cpu", "memory", "memoryReservation", "environment", "secrets"]);
        if !rest.is_empty() {
            out.push(reason(format!("container {name} also changes: {}", rest.join(", ")), 5, "other container settings change"));
        }
    }
    for (name, _) in bc.iter().filter(|(n, _)| !ac.iter().any(|(m, _)| m == n)) {
        out.push(reason(format!("removes container {name}"), 20, "a process every task ran is gone"));
    }
    for field in ["cpu", "memory"] {
        resource_change(&mut out, &format!("task {field}"), bt.get(field), at.get(field));
    }
    for (field, what) in [("taskRoleArn", "the task role"), ("executionRoleArn", "the execution role")] {
        if bt.get(field) != at.get(field) {
            out.push(reason(
                format!("{what}: {} → {}", shown(bt.get(field)), shown(at.get(field))),
                25,
                "the permissions the app runs with change",
            ));
        }
    }
    let net = |s: &Value| s.pointer("/networkConfiguration/awsvpcConfiguration").cloned().unwrap_or(Value::Null);
    let (bn, an) = (net(&b.svcdef), net(&a.svcdef));
    if bn != an {
        let changed = other_fields(&bn, &an, &[]);
        out.push(reason(format!("network: {}", changed.join(", ")), 25, "where tasks run and who can reach them change"));
        if an.get("assignPublicIp").and_then(Value::as_str) == Some("ENABLED") && bn.get("assignPublicIp") != an.get("assignPublicIp") {
            out.push(reason("tasks get public IP addresses".into(), 20, "the tasks become reachable from the internet"));
        }
    }
    if b.svcdef.get("loadBalancers") != a.svcdef.get("loadBalancers") {
        out.push(reason("load balancers change".into(), 25, "traffic reaches the service another way"));
    }
    match (b.desired_count(), a.desired_count()) {
        (Some(x), Some(0)) if x > 0 => out.push(reason(format!("desired count {x} → 0"), 50, "the service stops serving")),
        (Some(x), Some(y)) if y < x => out.push(reason(format!("desired count {x} → {y}"), 15, "less capacity for the same load")),
        (Some(x), Some(y)) if y > x => out.push(reason(format!("desired count {x} → {y}"), 5, "more tasks to start and pay for")),
        (x, y) if x != y => out.push(reason(format!("desired count {} → {}", opt(x), opt(y)), 10, "the task count changes")),
        _ => {}
    }
    if b.strategy != a.strategy {
        out.push(reason(
            format!("strategy {} → {}", b.strategy.as_str(), a.strategy.as_str()),
            30,
            "the deployment controller changes: ECS replaces the service",
        ));
    }
    let depdef = |d: &ecs::EcsApp| serde_json::to_value(&d.depdef).unwrap_or(Value::Null);
    let depdef_changes = other_fields(&depdef(b), &depdef(a), &[]);
    if !depdef_changes.is_empty() {
        out.push(reason(format!("deployment settings: {}", depdef_changes.join(", ")), 10, "how the rollout is guarded changes"));
    }
    let svc_rest = other_fields(&b.svcdef, &a.svcdef, &["networkConfiguration", "loadBalancers", "desiredCount", "taskDefinition"]);
    if !svc_rest.is_empty() {
        out.push(reason(format!("service fields: {}", svc_rest.join(", ")), 5, "other service settings change"));
    }
    let td_rest = other_fields(bt, at, &["containerDefinitions", "cpu", "memory", "taskRoleArn", "executionRoleArn"]);
    if !td_rest.is_empty() {
        out.push(reason(format!("task definition fields: {}", td_rest.join(", ")), 5, "other task settings change"));
    }
    out
}

fn compare_lambda(b: &crate::spec::lambda::LambdaApp, a: &crate::spec::lambda::LambdaApp) -> Vec<RiskReason> {
    let mut out = Vec::new();
    let (bd, ad) = (&b.lambdadef, &a.lambdadef);
    if bd.get("Code") != ad.get("Code") {
        let code = |d: &Value| {
            d.pointer("/Code/ImageUri")
                .or_else(|| d.pointer("/Code/S3Key"))
                .and_then(Value::as_str)
                .map_or_else(|| "inline code".to_string(), str::to_string)
        };
        out.push(reason(format!("code: {} → {}", code(bd), code(ad)), 10, "new code runs"));
    }
    for field in ["MemorySize", "Timeout"] {
        resource_change(&mut out, field, bd.get(field), ad.get(field));
    }
    if bd.get("Role") != ad.get("Role") {
        out.push(reason(
            format!("role: {} → {}", shown(bd.get("Role")), shown(ad.get("Role"))),
            25,
            "the permissions the function runs with change",
        ));
    }
    let env = |d: &Value| d.pointer("/Environment/Variables").cloned().unwrap_or(Value::Null);
    let changed = changed_keys(&env(bd), &env(ad));
    if !changed.is_empty() {
        out.push(reason(format!("environment variables: {}", changed.join(", ")), 10, "configuration the code reads changes"));
    }
    if bd.get("VpcConfig") != ad.get("VpcConfig") {
        out.push(reason("VPC configuration changes".into(), 25, "what the function can reach changes"));
    }
    for (field, weight) in [("Runtime", 15), ("Handler", 15), ("Layers", 10), ("Architectures", 15)] {
        if bd.get(field) != ad.get(field) {
            out.push(reason(
                format!("{field}: {} → {}", shown(bd.get(field)), shown(ad.get(field))),
                weight,
                "the way the code runs changes",
            ));
        }
    }
    let rest = other_fields(
        bd,
        ad,
        &["Code", "MemorySize", "Timeout", "Role", "Environment", "VpcConfig", "Runtime", "Handler", "Layers", "Architectures"],
    );
    if !rest.is_empty() {
        out.push(reason(format!("function fields: {}", rest.join(", ")), 5, "other function settings change"));
    }
    let value = |x: &crate::spec::lambda::LambdaApp| (serde_json::to_value(&x.depdef).ok(), serde_json::to_value(&x.event_sources).ok());
    let ((bdep, bsrc), (adep, asrc)) = (value(b), value(a));
    if bdep != adep {
        out.push(reason("deployment settings change".into(), 10, "how the rollout is guarded changes"));
    }
    if bsrc != asrc {
        out.push(reason("event sources change".into(), 20, "what invokes the function changes"));
    }
    out
}

/// A CPU or memory change; a decrease weighs more (out-of-memory, throttling).
fn resource_change(out: &mut Vec<RiskReason>, what: &str, before: Option<&Value>, after: Option<&Value>) {
    if before == after {
        return;
    }
    let number = |v: Option<&Value>| v.and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let (x, y) = (number(before), number(after));
    let text = format!("{what}: {} → {}", shown(before), shown(after));
    match (x, y) {
        (Some(x), Some(y)) if y < x => out.push(reason(text, 20, "less headroom: out-of-memory kills or throttling")),
        (Some(_), Some(_)) => out.push(reason(text, 5, "more resources per task")),
        _ => out.push(reason(text, 10, "the resources per task change")),
    }
}

/// Names added, removed or whose value changed, of a `[{name, value…}]` list (values never shown).
fn names_change(out: &mut Vec<RiskReason>, what: &str, before: &Value, after: &Value, field: &str, weight: u32) {
    let entries = |c: &Value| -> Value {
        let map = c
            .get(field)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| Some((e.get("name")?.as_str()?.to_string(), e.clone())))
                    .collect::<serde_json::Map<String, Value>>()
            })
            .unwrap_or_default();
        Value::Object(map)
    };
    let changed = changed_keys(&entries(before), &entries(after));
    if !changed.is_empty() {
        out.push(reason(format!("{what}: {}", changed.join(", ")), weight, "configuration the code reads changes"));
    }
}

/// `+NAME`, `-NAME`, `~NAME` of two objects' keys.
fn changed_keys(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (b, a) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (b.get(k), a.get(k)) {
            (None, Some(_)) => Some(format!("+{k}")),
            (Some(_), None) => Some(format!("-{k}")),
            (Some(x), Some(y)) if x != y => Some(format!("~{k}")),
            _ => None,
        })
        .collect()
}

/// The top-level fields of two objects that differ, but those in `skip`.
fn other_fields(before: &Value, after: &Value, skip: &[&str]) -> Vec<String> {
    changed_keys(before, after).into_iter().filter(|k| !skip.contains(&&k[1..])).collect()
}

fn str_at<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn opt(n: Option<u32>) -> String {
    n.map_or_else(|| "(unset)".into(), |n| n.to_string())
}

/// The assessment as text (what `gmctl riskiq get` prints, and what a model is asked to summarize).
pub fn render_text(app: &AppRisk) -> String {
    let mut text = format!("{} — risk {} ({}/100)", app.prefix, app.level.as_str(), app.score);
    if !app.target.is_empty() {
        text.push_str(&format!("\ntarget: {}", app.target));
    }
    if let Some(n) = app.tasks {
        text.push_str(&format!(" — {n} task(s)"));
    }
    if app.reasons.is_empty() {
        text.push_str("\nno change AWS would see");
    }
    for r in &app.reasons {
        text.push_str(&format!("\n+{:>2}  {} — {}", r.weight, r.change, r.why));
    }
    text
}

#[cfg(test)]
mod tests;
