use super::freeze::{self, FreezeConfig};
use super::order;
use super::pin::{self, RollbackTo};
use super::*;
use crate::intent::{intents_of_head, PrunePolicy};
use crate::record::{AppKey, AppliedState};
use crate::spec::{load_snapshot, MemTree, RenderContext, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

fn ecs(tree: &mut MemTree, prefix: &str, image: &str, depends_on: &[&str]) {
    let service = prefix.replace('/', "-");
    tree.insert(&format!("{prefix}_svcdef.json"), &format!(r#"{{"serviceName": "{service}", "cluster": "c"}}"#));
    tree.insert(
        &format!("{prefix}_taskdef.json"),
        &format!(r#"{{"family": "{service}", "containerDefinitions": [{{"name": "a", "image": "{image}"}}]}}"#),
    );
    if !depends_on.is_empty() {
        let list: Vec<String> = depends_on.iter().map(|d| format!("\"{d}\"")).collect();
        tree.insert(&format!("{prefix}_depdef.json"), &format!(r#"{{"dependsOn": [{}]}}"#, list.join(", ")));
    }
}

fn snap(tree: &MemTree) -> Snapshot {
    load_snapshot(tree, &RenderContext::new("us-east-1".into()))
}

fn errors_of(s: &Snapshot, prefix: &str) -> String {
    match &s.apps[prefix] {
        Ok(_) => String::new(),
        Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
    }
}

#[test]
fn depends_on_is_read_from_the_depdef_and_a_chain_is_valid() {
    let mut t = MemTree::new();
    ecs(&mut t, "db/migrate", "m:1", &[]);
    ecs(&mut t, "web/api", "a:1", &["db/migrate"]);
    ecs(&mut t, "web/worker", "w:1", &["web/api"]);
    let s = snap(&t);
    let api = s.apps["web/api"].as_ref().expect("valid");
    assert_eq!(api.depends_on(), ["db/migrate".to_string()]);
    assert!(s.apps["web/worker"].is_ok(), "{}", errors_of(&s, "web/worker"));
}

#[test]
fn unknown_prefixes_itself_and_cycles_are_errors_naming_the_depdef() {
    let mut t = MemTree::new();
    ecs(&mut t, "a/one", "x:1", &["b/two"]);
    ecs(&mut t, "b/two", "x:1", &["c/three"]);
    ecs(&mut t, "c/three", "x:1", &["a/one"]);
    ecs(&mut t, "d/typo", "x:1", &["db/migrat"]);
    ecs(&mut t, "e/self", "x:1", &["e/self"]);
    ecs(&mut t, "f/fine", "x:1", &["a/one"]);
    let s = snap(&t);
    for app in ["a/one", "b/two", "c/three"] {
        let e = errors_of(&s, app);
        assert!(e.contains(&format!("{app}_depdef.json")), "{e}");
        assert!(e.contains("dependsOn forms a cycle: a/one → b/two → c/three → a/one"), "{e}");
    }
    let typo = errors_of(&s, "d/typo");
    assert!(typo.contains("d/typo_depdef.json") && typo.contains("\"db/migrat\", which is no app of this branch"), "{typo}");
    assert!(errors_of(&s, "e/self").contains("names the app itself"));
    assert!(s.apps["f/fine"].is_ok(), "an app depending on a broken one is valid (it waits as Blocked)");
}

#[test]
fn a_bad_depends_on_is_an_error_with_its_place() {
    let mut t = MemTree::new();
    ecs(&mut t, "a/one", "x:1", &[]);
    t.insert("a/one_depdef.json", r#"{"dependsOn": "b/two"}"#);
    let e = errors_of(&snap(&t), "a/one");
    assert!(e.contains("dependsOn"), "{e}");
    t.insert("a/one_depdef.json", r#"{"dependsOn": [""]}"#);
    assert!(errors_of(&snap(&t), "a/one").contains("empty name"));
}

#[test]
fn waves_order_the_changed_apps_and_deletes_go_dependents_first() {
    let mut t = MemTree::new();
    ecs(&mut t, "db/migrate", "m:1", &[]);
    ecs(&mut t, "web/api", "a:1", &["db/migrate"]);
    ecs(&mut t, "web/worker", "w:1", &["web/api", "db/migrate"]);
    ecs(&mut t, "other/x", "o:1", &[]);
    let s = snap(&t);
    let plan = intents_of_head(&s, &BTreeMap::new(), PrunePolicy::default(), &BTreeSet::new(), None);
    let waves = order::waves(&s, &plan, &BTreeMap::new());
    assert_eq!(waves, vec![vec!["db/migrate".to_string(), "other/x".into()], vec!["web/api".into()], vec!["web/worker".into()]]);

    // only dependencies that change count: with db/migrate applied, web/api is in the first wave
    let mut applied = crate::intent::applied_as_of(&s);
    ecs(&mut t, "web/api", "a:2", &["db/migrate"]);
    ecs(&mut t, "web/worker", "w:2", &["web/api", "db/migrate"]);
    let s2 = snap(&t);
    let plan = intents_of_head(&s2, &applied, PrunePolicy::default(), &BTreeSet::new(), None);
    assert_eq!(order::waves(&s2, &plan, &BTreeMap::new()), vec![vec!["web/api".to_string()], vec!["web/worker".into()]]);

    // deletes: the worker (which depends on the api) goes before the api
    let empty_but_one = {
        let mut t = MemTree::new();
        ecs(&mut t, "other/x", "o:1", &[]);
        snap(&t)
    };
    applied.retain(|k, _| k != "db/migrate");
    let allow = PrunePolicy { allow_prune: true, ..PrunePolicy::default() };
    let plan = intents_of_head(&empty_but_one, &applied, allow, &BTreeSet::new(), None);
    let deps: BTreeMap<String, Vec<String>> = [("web/worker".to_string(), vec!["web/api".to_string()])].into();
    assert_eq!(order::waves(&empty_but_one, &plan, &deps), vec![vec!["web/worker".to_string()], vec!["web/api".into()]]);
    let mut numbered = plan.clone();
    order::assign_waves(&empty_but_one, &mut numbered, &deps);
    let wave_of = |app: &str| numbered.iter().find(|e| e.app == app).and_then(|e| e.wave);
    assert_eq!((wave_of("web/worker"), wave_of("web/api"), wave_of("other/x")), (Some(1), Some(2), None));
}

fn facts<'a>(intent: Intent, head: Option<&'a str>, applied: &'a AppliedState, outcome: Option<Outcome>) -> DependencyFacts<'a> {
    DependencyFacts {
        intent: Some(intent),
        head_fingerprint: head,
        applied: Some(applied),
        last_outcome: outcome,
        last_cause: Some("stability check timed out"),
        in_flight: false,
    }
}

#[test]
fn a_dependency_is_ready_pending_or_broken() {
    let applied = AppliedState { fingerprint: Some("fp1".into()), failed: ["fp2".to_string()].into(), ..Default::default() };
    assert_eq!(dependency_state(&facts(Intent::Keep, Some("fp1"), &applied, None)), DependencyState::Ready);
    assert_eq!(dependency_state(&facts(Intent::Deploy, Some("fp3"), &applied, None)), DependencyState::Pending);
    let in_flight = DependencyFacts { in_flight: true, ..facts(Intent::Deploy, Some("fp1"), &applied, None) };
    assert_eq!(dependency_state(&in_flight), DependencyState::Pending, "a redeploy in flight is not done");
    assert_eq!(
        dependency_state(&facts(Intent::Held, Some("fp2"), &applied, Some(Outcome::RolledBack))),
        DependencyState::Broken("rolled back (stability check timed out)".into())
    );
    assert!(matches!(dependency_state(&facts(Intent::Error, None, &applied, None)), DependencyState::Broken(_)));
}

#[test]
fn a_freeze_wins_then_a_broken_dependency_then_the_pending_ones() {
    let frozen = freeze::ActiveFreeze { name: "year end".into(), reason: "holidays".into(), until_ms: 9_000_000 };
    let deps = vec![("db/migrate".to_string(), DependencyState::Pending), ("cache".to_string(), DependencyState::Broken("failed".into()))];
    let all = HoldFacts { dependencies: deps.clone(), freeze: Some(frozen.clone()), ..HoldFacts::default() };
    assert!(matches!(hold_of(&all), Some(Hold::Frozen { until_ms: 9_000_000, .. })));
    let overridden = HoldFacts { override_freeze: true, ..all.clone() };
    assert_eq!(hold_of(&overridden), Some(Hold::Blocked { dependency: "cache".into(), cause: "failed".into() }));
    let pending = HoldFacts { dependencies: deps[..1].to_vec(), ..HoldFacts::default() };
    assert_eq!(hold_of(&pending), Some(Hold::Waiting { on: vec!["db/migrate".into()] }));
    assert_eq!(hold_of(&HoldFacts::default()), None);
    let delete = HoldFacts { delete: true, dependents_still_there: vec!["web/worker".into()], ..HoldFacts::default() };
    assert_eq!(hold_of(&delete), Some(Hold::WaitingForDependents { dependents: vec!["web/worker".into()] }));
    let frozen_delete = HoldFacts { delete: true, freeze: Some(frozen), ..HoldFacts::default() };
    assert!(matches!(hold_of(&frozen_delete), Some(Hold::Frozen { .. })), "a delete is a change too");
    let text = Hold::Frozen { freeze: "year end".into(), reason: "holidays".into(), until_ms: 1_798_761_600_000 }.describe("web/api");
    assert!(text.contains("until 2027-01-01 00:00 UTC (holidays)") && text.contains("--override-freeze web/api"), "{text}");
}

fn key(repo: &str, branch: &str, prefix: &str) -> AppKey {
    AppKey { repo: repo.into(), branch: branch.into(), prefix: prefix.into() }
}

#[test]
fn freezes_match_globs_absolute_ranges_and_weekly_windows() {
    let range = FreezeConfig {
        reason: "year end".into(),
        repo: Some("deploys".into()),
        prefix: Some("prod/*".into()),
        from: Some("2026-12-20T00:00:00Z".into()),
        until: Some("2027-01-04T09:00:00+01:00".into()),
        ..FreezeConfig::default()
    }
    .check(1)
    .expect("valid");
    let inside = freeze::parse_rfc3339("2026-12-24T12:00:00Z").unwrap();
    assert_eq!(range.ends_at(inside), Some(freeze::parse_rfc3339("2027-01-04T08:00:00Z").unwrap()));
    assert_eq!(range.ends_at(freeze::parse_rfc3339("2027-01-04T08:00:00Z").unwrap()), None, "the end is outside");
    assert!(range.covers(&key("deploys", "main", "prod/web")));
    assert!(!range.covers(&key("deploys", "main", "dev/web")));
    assert!(!range.covers(&key("other", "main", "prod/web")));

    let weekend =
        FreezeConfig { reason: "no weekend deploys".into(), weekly: Some("Fri 16:00 - Mon 09:00".into()), ..FreezeConfig::default() }
            .check(2)
            .expect("valid");
    // 2026-12-11 is a Friday
    let friday_evening = freeze::parse_rfc3339("2026-12-11T17:30:00Z").unwrap();
    let monday_nine = freeze::parse_rfc3339("2026-12-14T09:00:00Z").unwrap();
    assert_eq!(weekend.ends_at(friday_evening), Some(monday_nine));
    assert_eq!(weekend.ends_at(freeze::parse_rfc3339("2026-12-13T23:59:00Z").unwrap()), Some(monday_nine), "Sunday night");
    assert_eq!(weekend.ends_at(freeze::parse_rfc3339("2026-12-11T15:59:00Z").unwrap()), None, "Friday afternoon");
    assert_eq!(weekend.ends_at(monday_nine), None);
    let both = [range, weekend];
    let active = freeze::active(&both, &key("deploys", "main", "prod/web"), friday_evening).expect("the weekend");
    assert_eq!(active.reason, "no weekend deploys");
}

#[test]
fn bad_freezes_are_errors_naming_the_entry_and_field() {
    let bad = |c: FreezeConfig| c.check(3).unwrap_err();
    let base = FreezeConfig { name: Some("eoy".into()), reason: "r".into(), ..FreezeConfig::default() };
    assert!(bad(FreezeConfig { reason: " ".into(), weekly: Some("Fri 16:00 - Mon 09:00".into()), ..base.clone() })
        .contains("`reason` is empty"));
    assert!(bad(base.clone()).contains("[[freezes]] #3 ('eoy'): set either"));
    let e = bad(FreezeConfig { from: Some("2026-12-20".into()), until: Some("2027-01-01T00:00:00Z".into()), ..base.clone() });
    assert!(e.contains("`from` is \"2026-12-20\""), "{e}");
    let e = bad(FreezeConfig { from: Some("2027-01-01T00:00:00Z".into()), until: Some("2026-12-20T00:00:00Z".into()), ..base.clone() });
    assert!(e.contains("is not after"), "{e}");
    assert!(bad(FreezeConfig { weekly: Some("Friday".into()), ..base.clone() }).contains("`weekly`"));
    assert!(bad(FreezeConfig { weekly: Some("Fri 25:00 - Mon 09:00".into()), ..base.clone() }).contains("HH:MM"));
    assert!(bad(FreezeConfig { weekly: Some("Fri 16:00 - Fri 16:00".into()), ..base }).contains("starts where it ends"));
}

#[test]
fn glob_matching() {
    for (p, t, want) in [
        ("*", "", true),
        ("prod/*", "prod/a/b", true),
        ("prod/*", "pro", false),
        ("*-api", "web-api", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b", "ab", true),
        ("a*b", "ac", false),
        ("main", "main", true),
        ("main", "mainx", false),
    ] {
        assert_eq!(freeze::glob_match(p, t), want, "{p} ~ {t}");
    }
}

#[test]
fn rollback_to_previous_or_a_commit_finds_a_successful_deployment_and_a_pin_is_released_by_a_change() {
    let mut t = MemTree::new();
    ecs(&mut t, "web/api", "a:1", &[]);
    let v1 = snap(&t).apps["web/api"].clone().expect("valid");
    ecs(&mut t, "web/api", "a:2", &[]);
    let v2 = snap(&t).apps["web/api"].clone().expect("valid");
    let record = |id: &str, commit: &str, app: &crate::spec::DesiredApp, outcome: Outcome| {
        let mut r = record_for(app, id, commit);
        r.outcome = Some(outcome);
        r
    };
    let history = vec![
        record("d3", "cccccccc", &v1, Outcome::RolledBack),
        record("d2", "bbbbbbbb", &v2, Outcome::Succeeded),
        record("d1", "aaaaaaaa", &v1, Outcome::Succeeded),
    ];
    let applied = AppliedState { fingerprint: Some(v2.fingerprint.clone()), ..Default::default() };
    assert_eq!(pin::rollback_target(&history, &applied, &RollbackTo::Previous).unwrap().id, "d1");
    assert_eq!(pin::rollback_target(&history, &applied, &RollbackTo::parse("bbbbbbb").unwrap()).unwrap().id, "d2");
    assert!(pin::rollback_target(&history, &applied, &RollbackTo::parse("ccccccc").unwrap())
        .unwrap_err()
        .contains("no successful deployment of commit ccccccc"));
    assert!(RollbackTo::parse("HEAD~1").unwrap_err().contains("give `previous` or a commit"));

    let target = pin::desired_from_record(&history[2], Some(&v2)).expect("a desired app");
    assert_eq!(target.fingerprint, v1.fingerprint);
    let the_pin = pin::Pin {
        commit: "aaaaaaaa".into(),
        fingerprint: v1.fingerprint.clone(),
        head_fingerprint: Some(v2.fingerprint.clone()),
        by: "sre".into(),
        at_ms: 1,
        from_deployment: "d1".into(),
        app: target,
    };
    // a head that does not touch the app keeps the pin: the pinned files replace the head's
    let mut head = snap(&t);
    let effects = pin::apply(&mut head, &[("web/api".into(), the_pin.clone())]);
    assert_eq!(effects, vec![("web/api".to_string(), pin::PinEffect::Kept)]);
    assert_eq!(head.apps["web/api"].as_ref().unwrap().fingerprint, v1.fingerprint);
    // one that changes its files releases it
    ecs(&mut t, "web/api", "a:3", &[]);
    let mut head = snap(&t);
    let effects = pin::apply(&mut head, &[("web/api".into(), the_pin)]);
    assert!(matches!(&effects[0].1, pin::PinEffect::Released(why) if why.contains("a newer commit changed the app's files")));
    assert_ne!(head.apps["web/api"].as_ref().unwrap().fingerprint, v1.fingerprint);
}

/// A deployment record of `app` as the strategies start one.
fn record_for(app: &crate::spec::DesiredApp, id: &str, commit: &str) -> crate::record::DeploymentRecord {
    use crate::strategy::{Desired, StepInput};
    let key = key("r", "main", &app.prefix);
    let applied = AppliedState::default();
    let observed = crate::observed::Observed::default();
    let input = StepInput { commit, new_deployment_id: id, ..StepInput::for_test(&key, Desired::Present(app), &applied, &observed) };
    crate::strategy::start(&input, app)
}

#[test]
fn a_hold_keeps_a_change_from_starting_but_never_touches_what_is_in_flight() {
    use crate::strategy::{held, look, Desired, Look, StepInput};
    let mut t = MemTree::new();
    ecs(&mut t, "web/api", "a:2", &["db/migrate"]);
    ecs(&mut t, "db/migrate", "m:1", &[]);
    let app = snap(&t).apps["web/api"].clone().expect("valid");
    let k = key("r", "main", "web/api");
    let applied = AppliedState { fingerprint: Some("old".into()), owned: true, identity: Some(app.identity.clone()), ..Default::default() };
    let observed = crate::observed::Observed::default();
    let hold = Hold::Waiting { on: vec!["db/migrate".into()] };
    let base = StepInput { hold: Some(&hold), ..StepInput::for_test(&k, Desired::Present(&app), &applied, &observed) };
    assert_eq!(held(&base), Some(&hold));
    match look(&base) {
        Look::Skip(plan) => {
            assert!(plan.actions.is_empty() && plan.next_record.is_none(), "{plan:?}");
            assert_eq!(plan.requeue_after, std::time::Duration::from_secs(10));
        }
        Look::Observe(needs) => panic!("a held change observes nothing: {needs:?}"),
    }
    let running = record_for(&app, "dep-0", "c0ffee");
    let in_flight = StepInput { record: Some(&running), ..base };
    assert_eq!(held(&in_flight), None, "a deployment in flight goes on");
    assert!(matches!(look(&in_flight), Look::Observe(_)));
    let synced = AppliedState { fingerprint: Some(app.fingerprint.clone()), ..applied.clone() };
    assert_eq!(held(&StepInput { applied: &synced, ..base }), None, "a steady app is never held");
}

mod pipelines {
    use crate::release::freeze;
    use crate::release::pipeline::*;
    use std::time::Duration;

    fn stage(repo: &str, folder: &str) -> Stage {
        Stage { name: format!("{repo}@main"), ..Stage::new(repo, "main", folder) }
    }

    fn pipeline() -> Pipeline {
        let mut prod = stage("prod", "envs/prod");
        prod.soak = Duration::from_secs(600);
        prod.approvers = vec!["alice".into(), "bob".into()];
        prod.required_approvals = 1;
        prod.window = Some(freeze::parse_weekly("Mon 09:00 - Fri 16:00").unwrap());
        Pipeline { name: "web".into(), stages: vec![stage("dev", "envs/dev"), prod] }
    }

    fn release() -> Release {
        Release {
            id: "web-0123456789".into(),
            pipeline: "web".into(),
            commit: "0123456789abcdef".into(),
            title: "api: nginx 2".into(),
            created_at_ms: 0,
            apps: vec!["envs/dev/api/api".into()],
            removed: vec!["envs/dev/old/old".into()],
            stages: vec![
                StageProgress { stage: "dev@main".into(), commit: Some("0123456789abcdef".into()), ..StageProgress::default() },
                StageProgress { stage: "prod@main".into(), ..StageProgress::default() },
            ],
            outcome: None,
        }
    }

    // Tuesday 2026-12-08 10:00 UTC: inside the window
    fn tuesday() -> u64 {
        freeze::parse_rfc3339("2026-12-08T10:00:00Z").unwrap()
    }

    #[test]
    fn a_release_waits_for_health_then_soak_approval_and_window_then_promotes() {
        let p = pipeline();
        let mut r = release();
        let now = tuesday();
        let deploying = StageHealth::Deploying("prod/api/api is Deploying".into());
        assert!(matches!(step(&r, &p, &deploying, now), Decision::Wait(b) if matches!(&b[0], Blocker::Deploying { .. })));
        assert_eq!(step(&r, &p, &StageHealth::Healthy, now), Decision::Healthy(0));
        r.stages[0].healthy_at_ms = Some(now);
        let Decision::Wait(blockers) = step(&r, &p, &StageHealth::Healthy, now + 60_000) else { panic!("waits") };
        let words: Vec<String> = blockers.iter().map(Blocker::describe).collect();
        assert_eq!(
            words,
            vec!["soak: 9 min left".to_string(), "approval: 1 more of alice, bob (`gitmoxi releases approve RELEASE STAGE`)".into()]
        );
        r.stages[1].approvals.push(("mallory".into(), now));
        assert!(matches!(step(&r, &p, &StageHealth::Healthy, now + 600_000), Decision::Wait(b) if b.len() == 1), "mallory is no approver");
        r.stages[1].approvals.push(("alice".into(), now));
        assert_eq!(step(&r, &p, &StageHealth::Healthy, now + 600_000), Decision::Promote(1));
        // Friday evening: the window is closed until Monday 09:00
        let friday = freeze::parse_rfc3339("2026-12-11T18:00:00Z").unwrap();
        let Decision::Wait(blockers) = step(&r, &p, &StageHealth::Healthy, friday) else { panic!("waits") };
        assert_eq!(blockers, vec![Blocker::Window { opens_at_ms: freeze::parse_rfc3339("2026-12-14T09:00:00Z").unwrap() }]);
        // a promotion that began is resumed whatever the conditions say now
        r.stages[1].promoting_since_ms = Some(friday);
        assert_eq!(step(&r, &p, &StageHealth::Healthy, friday), Decision::Promote(1));
    }

    #[test]
    fn a_release_whose_pipeline_changed_its_stages_ends_instead_of_going_on() {
        let mut p = pipeline();
        p.stages.push(stage("staging", "envs/staging"));
        let ended = step(&release(), &p, &StageHealth::Healthy, tuesday());
        assert!(matches!(ended, Decision::End(ReleaseOutcome::Failed { ref why, .. }) if why.contains("stages changed")), "{ended:?}");
    }

    #[test]
    fn a_failed_stage_ends_the_release_and_the_last_healthy_stage_completes_it() {
        let p = pipeline();
        let mut r = release();
        let failed = step(&r, &p, &StageHealth::Failed("envs/dev/api/api rolled back".into()), tuesday());
        assert_eq!(failed, Decision::End(ReleaseOutcome::Failed { stage: "dev@main".into(), why: "envs/dev/api/api rolled back".into() }));
        r.stages[1].commit = Some("feedface".into());
        assert_eq!(current_stage(&r), 1);
        assert_eq!(step(&r, &p, &StageHealth::Healthy, tuesday()), Decision::Healthy(1));
        r.stages[1].healthy_at_ms = Some(tuesday());
        assert_eq!(step(&r, &p, &StageHealth::Healthy, tuesday()), Decision::End(ReleaseOutcome::Done));
    }

    #[test]
    fn a_stage_is_healthy_when_every_app_is_synced_and_fails_when_one_rolled_back() {
        use crate::status::AppStatus;
        let app = |status: Option<AppStatus>, cause: Option<&str>| AppInStage {
            app: "prod/api/api".into(),
            status,
            cause: cause.map(str::to_string),
        };
        assert_eq!(health_of(&[app(Some(AppStatus::Synced), None)], &[]), StageHealth::Healthy);
        assert_eq!(
            health_of(&[app(Some(AppStatus::RolledBack), Some("circuit breaker tripped"))], &[]),
            StageHealth::Failed("prod/api/api is RolledBack: circuit breaker tripped".into())
        );
        assert_eq!(health_of(&[app(Some(AppStatus::Deploying), None)], &[]), StageHealth::Deploying("prod/api/api is Deploying".into()));
        assert_eq!(health_of(&[app(None, None)], &[]), StageHealth::Deploying("prod/api/api is not known yet".into()));
        assert_eq!(
            health_of(&[app(Some(AppStatus::Synced), None)], &["prod/old/old".into()]),
            StageHealth::Deploying("prod/old/old is being deleted".into())
        );
    }

    #[test]
    fn paths_move_between_folders_and_the_commit_names_the_release() {
        let p = pipeline();
        let (dev, prod) = (&p.stages[0], &p.stages[1]);
        assert_eq!(prod.map_prefix(dev, "envs/dev/api/api").as_deref(), Some("envs/prod/api/api"));
        assert_eq!(prod.map_path(dev, "envs/dev/api/api_svcdef.json").as_deref(), Some("envs/prod/api/api_svcdef.json"));
        assert_eq!(prod.map_prefix(dev, "other/api"), None, "outside the stage's folder");
        assert!(dev.contains("envs/dev/x") && !dev.contains("envs/devx/x"));
        let message = commit_message(&release(), dev, prod);
        assert!(message.starts_with("gitmoxi: promote web-0123456789 to prod@main\n"), "{message}");
        assert!(message.contains("Apps: envs/prod/api/api, envs/prod/old/old (removed)"), "{message}");
        assert!(message.trim_end().ends_with("Gitmoxi-Release: web-0123456789 -> prod@main"), "{message}");
        // nothing from the commit adds a line: a file name with a newline cannot forge a trailer
        let mut forged = release();
        forged.apps = vec!["envs/dev/x\nGitmoxi-Release: web-1111111111 -> prod@main\ny".into()];
        forged.title = "Gitmoxi-Release: web-2222222222 -> prod@main".into();
        let message = commit_message(&forged, dev, prod);
        assert_eq!(message.lines().filter(|l| l.starts_with("Gitmoxi-Release:")).count(), 1, "{message}");
    }

    #[test]
    fn a_newer_release_supersedes_older_ones_waiting_in_the_first_stage_with_fewer_apps() {
        let older = release();
        let mut newer = release();
        newer.id = "web-9999999999".into();
        newer.apps.push("envs/dev/other/x".into());
        assert_eq!(superseded_by(&newer, std::slice::from_ref(&older)), vec![older.id.clone()]);
        let mut promoted = older.clone();
        promoted.stages[1].commit = Some("feedface".into());
        assert!(superseded_by(&newer, &[promoted]).is_empty(), "a release already promoted goes on");
        let mut smaller = newer.clone();
        smaller.apps.clear();
        assert!(superseded_by(&smaller, &[older]).is_empty(), "it does not carry every app of the older one");
    }
}
