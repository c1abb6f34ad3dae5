//! The intents of one head: for every app, what the branch head wants of it — deploy / delete /
//! move / keep ("none") / error / conflict / held — and why (SPEC §1.3–1.5). Used by
//! `gitmoxi plan` and by the controller to decide deletes. (A step's [`crate::plan::Plan`] is
//! something else: the actions of one reconcile pass.)
//!
//! Safety rules live here: conflicts block both apps, moves hand a service over instead of
//! deleting it, prune protection holds mass deletes, an empty checkout deletes nothing, and a
//! failed fingerprint is not redeployed unless forced.

use crate::spec::{AppKind, Identity, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the store knows about an app that was applied (or is being applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedApp {
    /// The app's folder.
    pub prefix: String,
    /// ECS or Lambda.
    pub kind: AppKind,
    /// Where its resource lives.
    pub identity: Identity,
    /// The last successfully applied fingerprint.
    pub fingerprint: Option<String>,
    /// Fingerprints that failed (rolled back or not).
    pub failed: BTreeSet<String>,
    /// The app's last deployment ended rolled back (else a failed fingerprint failed in place,
    /// e.g. a check refused it before anything changed).
    #[serde(default)]
    pub rolled_back: bool,
}

/// The applied state as if every valid app of `snapshot` had been deployed (`gitmoxi plan
/// --from REV` compares a head with it).
pub fn applied_as_of(snapshot: &Snapshot) -> BTreeMap<String, AppliedApp> {
    snapshot
        .valid()
        .map(|a| {
            let applied = AppliedApp {
                prefix: a.prefix.clone(),
                kind: a.kind,
                identity: a.identity.clone(),
                fingerprint: Some(a.fingerprint.clone()),
                failed: BTreeSet::new(),
                rolled_back: false,
            };
            (a.prefix.clone(), applied)
        })
        .collect()
}

/// Prune protection settings (SPEC §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// At most this many apps deleted by one head.
    pub max_prune: usize,
    /// With more than one delete, at most this percentage of the repository's apps.
    pub max_prune_percent: u32,
    /// Deletes are never held (`allowPrune`).
    pub allow_prune: bool,
}

impl Default for PrunePolicy {
    fn default() -> Self {
        PrunePolicy { max_prune: 3, max_prune_percent: 25, allow_prune: false }
    }
}

/// What a head wants of one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    /// The fingerprint changed: deploy it.
    Deploy,
    /// The svcdef / lambdadef is gone and the delete is allowed.
    Delete,
    /// The identity moved here from another prefix: hand it over.
    Move,
    /// Nothing to do (applied, or quarantined after a failure). Shown as "none".
    #[serde(rename = "none")]
    Keep,
    /// The app's files do not render or validate.
    Error,
    /// Another app claims the same identity.
    Conflict,
    /// A delete held by prune protection.
    Held,
}

impl Intent {
    /// The intent as `gitmoxi plan` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Deploy => "deploy",
            Intent::Delete => "delete",
            Intent::Move => "move",
            Intent::Keep => "none",
            Intent::Error => "error",
            Intent::Conflict => "conflict",
            Intent::Held => "held",
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppIntent {
    /// The app's folder.
    pub app: String,
    /// ECS or Lambda.
    pub kind: AppKind,
    /// Shown as `action` in `gitmoxi plan --json`.
    #[serde(rename = "action")]
    pub intent: Intent,
    /// Where its resource lives, when known.
    pub identity: Option<String>,
    /// Why, for an operator.
    pub reason: String,
    /// For a move: the prefix the app moves from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// What is suspicious but not wrong in the app's files (unknown fields, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The wave it goes in (from 1): a wave starts once every `dependsOn` of the waves before it
    /// succeeded; deletes come last, dependents first ([`crate::release::order::assign_waves`]).
    /// `None` for an app with nothing to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
}

/// Ownership across the whole controller (issue 27): a head's app whose service or function
/// another repository or branch already owns (`claims`: identity, in the controller's account
/// when it names none → the owner, e.g. `team-a/main:web/api`) is a `Conflict`, both sides
/// named; nothing is deployed for the newcomer and the owner is untouched. Apps going away
/// (deletes, held deletes) and errors keep their intent.
pub fn claimed_elsewhere(
    plan: Vec<AppIntent>,
    snapshot: &Snapshot,
    claims: &BTreeMap<Identity, String>,
    own_account: Option<&str>,
) -> Vec<AppIntent> {
    plan.into_iter()
        .map(|mut entry| {
            let wants = matches!(entry.intent, Intent::Deploy | Intent::Keep | Intent::Move | Intent::Held);
            let app = snapshot.apps.get(&entry.app).and_then(|a| a.as_ref().ok());
            if let (true, Some(app)) = (wants, app) {
                if let Some(owner) = claims.get(&app.identity.in_account(own_account)) {
                    entry.intent = Intent::Conflict;
                    entry.reason = format!(
                        "{} is owned by {owner}; nothing is deployed for this app and the owner's resource is untouched —                          name another service or function, or remove the app from {owner} first",
                        app.identity
                    );
                    entry.moved_from = None;
                }
            }
            entry
        })
        .collect()
}

/// Plans one head against what was applied. `force` names prefixes to redeploy regardless.
pub fn intents_of_head(
    snapshot: &Snapshot,
    applied: &BTreeMap<String, AppliedApp>,
    policy: PrunePolicy,
    force: &BTreeSet<String>,
    own_account: Option<&str>,
) -> Vec<AppIntent> {
    // an app without `account` deploys into the controller's own account: naming it is the
    // same target (conflicts and moves compare what AWS would be touched)
    let target = |identity: &Identity| identity.in_account(own_account);
    let mut by_identity: BTreeMap<Identity, Vec<&str>> = BTreeMap::new();
    for app in snapshot.valid() {
        by_identity.entry(target(&app.identity)).or_default().push(&app.prefix);
    }
    let applied_by_identity: BTreeMap<Identity, &AppliedApp> = applied.values().map(|a| (target(&a.identity), a)).collect();
    let mut moved_away: BTreeSet<&str> = BTreeSet::new();
    let mut entries = Vec::new();

    for (prefix, loaded) in &snapshot.apps {
        let app = match loaded {
            Err(invalid) => {
                let reason = invalid.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                entries.push(AppIntent {
                    app: prefix.clone(),
                    kind: invalid.kind,
                    intent: Intent::Error,
                    identity: applied.get(prefix).map(|a| a.identity.to_string()),
                    reason: format!("{reason} (nothing is deployed or deleted for this app until it is fixed)"),
                    moved_from: None,
                    warnings: Vec::new(),
                    wave: None,
                });
                continue;
            }
            Ok(app) => app,
        };
        let entry = |intent, reason: String, moved_from| AppIntent {
            app: prefix.clone(),
            kind: app.kind,
            intent,
            identity: Some(app.identity.to_string()),
            reason,
            moved_from,
            warnings: app.warnings.iter().map(ToString::to_string).collect(),
            wave: None,
        };
        let claimants = by_identity.get(&target(&app.identity)).map_or(&[][..], Vec::as_slice);
        if claimants.len() > 1 {
            let others: Vec<String> = claimants.iter().filter(|p| **p != prefix).map(|p| format!("'{p}'")).collect();
            entries.push(entry(
                Intent::Conflict,
                format!(
                    "{} is also claimed by {}; neither deploys until one of them names another service or function",
                    app.identity,
                    others.join(", ")
                ),
                None,
            ));
            continue;
        }
        let forced = force.contains(prefix);
        let short = crate::spec::fingerprint::short(&app.fingerprint);
        match applied.get(prefix) {
            Some(prev) if target(&prev.identity) != target(&app.identity) && prev.fingerprint.is_some() => entries.push(entry(
                Intent::Deploy,
                format!(
                    "identity changed from {} to {}; the old service is deleted once the new one is deployed (a function is left in place)",
                    prev.identity, app.identity
                ),
                None,
            )),
            Some(prev) if prev.fingerprint.as_deref() == Some(app.fingerprint.as_str()) && !forced => {
                entries.push(entry(Intent::Keep, format!("up to date (fingerprint {short})"), None))
            }
            Some(prev) if prev.failed.contains(&app.fingerprint) && !forced => entries.push(entry(
                Intent::Held,
                format!(
                    "fingerprint {short} failed{}; it is not retried — push a fix, or run `gitmoxi sync --force {prefix}`",
                    if prev.rolled_back { " and was rolled back" } else { " (nothing was rolled back)" }
                ),
                None,
            )),
            Some(prev) => {
                let reason = if forced {
                    "forced redeploy".to_string()
                } else {
                    match &prev.fingerprint {
                        Some(old) => format!("fingerprint changed {} → {short}", crate::spec::fingerprint::short(old)),
                        None => format!("not yet applied (fingerprint {short})"),
                    }
                };
                entries.push(entry(Intent::Deploy, reason, None));
            }
            None => match applied_by_identity.get(&target(&app.identity)) {
                Some(old) if !snapshot.apps.contains_key(&old.prefix) => {
                    moved_away.insert(old.prefix.as_str());
                    let same = old.fingerprint.as_deref() == Some(app.fingerprint.as_str());
                    let reason = format!(
                        "moved from '{}': {} is handed over, not deleted{}",
                        old.prefix,
                        app.identity,
                        if same { "" } else { "; its fingerprint changed, so it deploys after the hand-over" }
                    );
                    entries.push(entry(Intent::Move, reason, Some(old.prefix.clone())));
                }
                _ => entries.push(entry(Intent::Deploy, format!("new app (fingerprint {short})"), None)),
            },
        }
    }

    let deletes: Vec<&AppliedApp> =
        applied.values().filter(|a| !snapshot.apps.contains_key(&a.prefix) && !moved_away.contains(a.prefix.as_str())).collect();
    let total = applied.len().max(1);
    let empty = snapshot.apps.is_empty();
    // SPEC §1.4: more than max_prune, or more than one and more than max_prune_percent of the
    // repository's apps (one delete is never held by the percentage alone: a small repository
    // must be able to delete an app)
    let too_many =
        deletes.len() > policy.max_prune || (deletes.len() > 1 && deletes.len() * 100 > total * policy.max_prune_percent as usize);
    let hold = !deletes.is_empty() && !policy.allow_prune && (empty || too_many);
    for gone in deletes {
        let what = match gone.kind {
            AppKind::Ecs => "_svcdef.json",
            AppKind::Lambda => "_lambdadef.json",
        };
        let (intent, reason) = if hold {
            let why = if empty {
                "the checkout has no apps at all (empty or partial checkout)".to_string()
            } else {
                format!(
                    "this head deletes {} of {} apps, more than max_prune {} or {} %",
                    applied.values().filter(|a| !snapshot.apps.contains_key(&a.prefix)).count() - moved_away.len(),
                    applied.len(),
                    policy.max_prune,
                    policy.max_prune_percent
                )
            };
            (Intent::Held, format!("delete held by prune protection: {why}; run `gitmoxi sync --allow-prune` to delete"))
        } else {
            (Intent::Delete, format!("{}{what} is gone from the branch head", gone.prefix))
        };
        entries.push(AppIntent {
            app: gone.prefix.clone(),
            kind: gone.kind,
            intent,
            identity: Some(gone.identity.to_string()),
            reason,
            moved_from: None,
            warnings: Vec::new(),
            wave: None,
        });
    }
    entries.sort_by(|a, b| a.app.cmp(&b.app));
    warn_shared_target_groups(snapshot, &mut entries);
    entries
}

/// Two blue/green apps that share a target group (issue 27): each one's traffic shift moves the
/// other's traffic too. Both are warned, each naming the other; nothing is refused.
fn warn_shared_target_groups(snapshot: &Snapshot, entries: &mut [AppIntent]) {
    let mut users: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for app in snapshot.valid() {
        let crate::spec::AppSpec::Ecs(ecs) = &app.spec else { continue };
        if ecs.strategy != crate::spec::ecs::EcsStrategy::BlueGreen {
            continue;
        }
        for tg in crate::strategy::ecs_blue_green::target_groups(ecs) {
            users.entry(tg).or_default().push(&app.prefix);
        }
    }
    for (tg, apps) in users.iter().filter(|(_, apps)| apps.len() > 1) {
        for entry in entries.iter_mut().filter(|e| apps.contains(&e.app.as_str())) {
            let others: Vec<&str> = apps.iter().copied().filter(|a| *a != entry.app).collect();
            entry.warnings.push(format!(
                "target group {tg} is also used by {}: each app's blue/green deployment would move the other's traffic",
                others.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{load_snapshot, MemTree, RenderContext};

    fn ecs(tree: &mut MemTree, prefix: &str, service: &str, image: &str) {
        tree.insert(&format!("{prefix}_svcdef.json"), &format!(r#"{{"serviceName": "{service}", "cluster": "c"}}"#));
        tree.insert(
            &format!("{prefix}_taskdef.json"),
            &format!(r#"{{"family": "{service}", "containerDefinitions": [{{"name": "a", "image": "{image}"}}]}}"#),
        );
    }

    fn snap(tree: &MemTree) -> Snapshot {
        load_snapshot(tree, &RenderContext::new("us-east-1".into()))
    }

    fn applied_from(s: &Snapshot) -> BTreeMap<String, AppliedApp> {
        applied_as_of(s)
    }

    fn intents(entries: &[AppIntent]) -> Vec<(String, Intent)> {
        entries.iter().map(|e| (e.app.clone(), e.intent)).collect()
    }

    fn six_apps() -> MemTree {
        let mut t = MemTree::new();
        for i in 0..6 {
            ecs(&mut t, &format!("a{i}/s"), &format!("s{i}"), "img:1");
        }
        t
    }

    #[test]
    fn new_changed_and_unchanged_apps() {
        let mut t = six_apps();
        let applied = applied_from(&snap(&t));
        ecs(&mut t, "a0/s", "s0", "img:2");
        ecs(&mut t, "new/s", "snew", "img:1");
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        let a = intents(&plan);
        assert!(a.contains(&("a0/s".into(), Intent::Deploy)));
        assert!(a.contains(&("a1/s".into(), Intent::Keep)));
        assert!(a.contains(&("new/s".into(), Intent::Deploy)));
    }

    #[test]
    fn a_move_hands_the_service_over() {
        let mut t = six_apps();
        let applied = applied_from(&snap(&t));
        t.remove("a0/s_svcdef.json");
        t.remove("a0/s_taskdef.json");
        ecs(&mut t, "renamed/s", "s0", "img:1");
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        let moved = plan.iter().find(|e| e.app == "renamed/s").unwrap();
        assert_eq!(moved.intent, Intent::Move);
        assert_eq!(moved.moved_from.as_deref(), Some("a0/s"));
        assert!(!plan.iter().any(|e| e.intent == Intent::Delete), "{plan:?}");
    }

    #[test]
    fn prune_protection_holds_mass_deletes() {
        let mut t = six_apps();
        for i in 0..6 {
            ecs(&mut t, &format!("b{i}/s"), &format!("t{i}"), "img:1");
        }
        let applied = applied_from(&snap(&t));
        for i in 0..5 {
            t.remove(&format!("b{i}/s_svcdef.json"));
        }
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        let held: Vec<_> = plan.iter().filter(|e| e.intent == Intent::Held).collect();
        assert_eq!(held.len(), 5, "{plan:?}");
        assert!(held[0].reason.contains("--allow-prune"));
        let allowed = PrunePolicy { allow_prune: true, ..PrunePolicy::default() };
        let plan = intents_of_head(&snap(&t), &applied, allowed, &BTreeSet::new(), None);
        assert_eq!(plan.iter().filter(|e| e.intent == Intent::Delete).count(), 5);
    }

    #[test]
    fn one_delete_among_many_goes_ahead_and_an_empty_checkout_deletes_nothing() {
        let mut t = six_apps();
        let applied = applied_from(&snap(&t));
        t.remove("a5/s_svcdef.json");
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        assert!(intents(&plan).contains(&("a5/s".into(), Intent::Delete)));
        let lenient = PrunePolicy { max_prune: 100, max_prune_percent: 100, allow_prune: false };
        let plan = intents_of_head(&snap(&MemTree::new()), &applied, lenient, &BTreeSet::new(), None);
        assert!(plan.iter().all(|e| e.intent == Intent::Held), "{plan:?}");
    }

    #[test]
    fn one_delete_in_a_small_repository_goes_ahead_but_two_of_four_are_held() {
        let mut t = MemTree::new();
        for i in 0..2 {
            ecs(&mut t, &format!("a{i}/s"), &format!("s{i}"), "img:1");
        }
        let applied = applied_from(&snap(&t));
        t.remove("a1/s_svcdef.json");
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        assert!(intents(&plan).contains(&("a1/s".into(), Intent::Delete)), "1 of 2 (50 %) is one delete: {plan:?}");

        let mut t = MemTree::new();
        for i in 0..4 {
            ecs(&mut t, &format!("a{i}/s"), &format!("s{i}"), "img:1");
        }
        let applied = applied_from(&snap(&t));
        t.remove("a2/s_svcdef.json");
        t.remove("a3/s_svcdef.json");
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        assert_eq!(plan.iter().filter(|e| e.intent == Intent::Held).count(), 2, "2 of 4 (50 %) is over 25 %: {plan:?}");
    }

    #[test]
    fn an_app_without_account_and_one_naming_the_own_account_for_the_same_service_conflict() {
        let mut t = MemTree::new();
        ecs(&mut t, "a/s", "web", "img:1");
        ecs(&mut t, "b/s", "web", "img:1");
        t.insert("b/s_depdef.json", r#"{"environment": {"account": "123456789012"}}"#);
        let plan = intents_of_head(&snap(&t), &BTreeMap::new(), PrunePolicy::default(), &BTreeSet::new(), Some("123456789012"));
        assert!(plan.iter().all(|e| e.intent == Intent::Conflict), "{plan:?}");
        // in another account they are two services
        let plan = intents_of_head(&snap(&t), &BTreeMap::new(), PrunePolicy::default(), &BTreeSet::new(), Some("210987654321"));
        assert!(plan.iter().all(|e| e.intent == Intent::Deploy), "{plan:?}");
    }

    #[test]
    fn conflicts_block_both_apps_and_errors_delete_nothing() {
        let mut t = six_apps();
        let applied = applied_from(&snap(&t));
        ecs(&mut t, "dup/s", "s1", "img:1");
        t.insert("a2/s_svcdef.json", "{ broken");
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        let a = intents(&plan);
        assert!(a.contains(&("dup/s".into(), Intent::Conflict)));
        assert!(a.contains(&("a1/s".into(), Intent::Conflict)));
        assert!(a.contains(&("a2/s".into(), Intent::Error)));
        assert!(!a.iter().any(|(_, x)| *x == Intent::Delete));
        let c = plan.iter().find(|e| e.app == "dup/s").unwrap();
        assert!(c.reason.contains("'a1/s'"), "{}", c.reason);
    }

    #[test]
    fn an_identity_another_repository_owns_is_a_conflict_for_the_newcomer() {
        let t = six_apps();
        let snapshot = snap(&t);
        let plan = intents_of_head(&snapshot, &BTreeMap::new(), PrunePolicy::default(), &BTreeSet::new(), None);
        let taken = snapshot.apps["a1/s"].as_ref().unwrap().identity.clone();
        let claims = BTreeMap::from([(taken, "team-a/main:svc/s1".to_string())]);
        let plan = claimed_elsewhere(plan, &snapshot, &claims, None);
        let a1 = plan.iter().find(|e| e.app == "a1/s").unwrap();
        assert_eq!(a1.intent, Intent::Conflict);
        assert!(a1.reason.contains("owned by team-a/main:svc/s1"), "{}", a1.reason);
        assert!(plan.iter().filter(|e| e.app != "a1/s").all(|e| e.intent == Intent::Deploy), "{plan:?}");
    }

    #[test]
    fn blue_green_apps_sharing_a_target_group_are_both_warned() {
        const TG_A: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/1";
        const TG_B: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/2";
        let mut t = MemTree::new();
        for (prefix, service) in [("one/s", "one"), ("two/s", "two")] {
            t.insert(
                &format!("{prefix}_svcdef.json"),
                &format!(
                    r#"{{"serviceName": "{service}", "cluster": "prod", "deploymentController": {{"type": "EXTERNAL"}}, "taskDefinition": "x:1",
                        "loadBalancers": [{{"targetGroupArn": "{TG_A}", "containerName": "c", "containerPort": 80}}]}}"#
                ),
            );
            t.insert(&format!("{prefix}_depdef.json"), &format!(r#"{{"targetGroupArnPairs": [["{TG_A}", "{TG_B}"]]}}"#));
        }
        let plan = intents_of_head(&snap(&t), &BTreeMap::new(), PrunePolicy::default(), &BTreeSet::new(), None);
        for (app, other) in [("one/s", "two/s"), ("two/s", "one/s")] {
            let entry = plan.iter().find(|e| e.app == app).unwrap();
            assert!(entry.warnings.iter().any(|w| w.contains(other) && w.contains("move the other's traffic")), "{:?}", entry.warnings);
        }
    }

    #[test]
    fn failed_fingerprints_are_held_until_forced() {
        let mut t = six_apps();
        let mut applied = applied_from(&snap(&t));
        ecs(&mut t, "a0/s", "s0", "img:bad");
        let fp = snap(&t).apps["a0/s"].as_ref().unwrap().fingerprint.clone();
        applied.get_mut("a0/s").unwrap().failed.insert(fp);
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        assert!(intents(&plan).contains(&("a0/s".into(), Intent::Held)));
        let held = plan.iter().find(|e| e.app == "a0/s").unwrap();
        assert!(held.reason.contains("failed (nothing was rolled back)"), "a failure in place is no rollback: {}", held.reason);
        applied.get_mut("a0/s").unwrap().rolled_back = true;
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &BTreeSet::new(), None);
        assert!(plan.iter().find(|e| e.app == "a0/s").unwrap().reason.contains("failed and was rolled back"));
        let force = BTreeSet::from(["a0/s".to_string()]);
        let plan = intents_of_head(&snap(&t), &applied, PrunePolicy::default(), &force, None);
        assert!(intents(&plan).contains(&("a0/s".into(), Intent::Deploy)));
    }
}
