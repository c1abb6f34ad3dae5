//! The decisions the executor used to make, one table each: the head's intent, pause, operator
//! rollback, force, the drift cadence, whether to observe at all, rebalance and AWS refusals.

use super::*;
use crate::commands::{Consumed, OperatorCommands, Rebalance, RebalanceDirection};
use crate::drift::{DriftClock, DriftMode, DriftSeen};
use crate::observed::{ObservedService, ObservedTaskSet};
use crate::record::RollingPhase;
use crate::record::{AppKey, AppliedState, Phase};
use crate::spec::{load_snapshot, MemTree, RenderContext};

fn app(image: &str) -> DesiredApp {
    let tree = MemTree::new().with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "desiredCount": 2}"#).with(
        "svc/web_taskdef.json",
        &format!(r#"{{"family": "web", "containerDefinitions": [{{"name": "web", "image": "{image}", "memory": 128}}]}}"#),
    );
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    snap.apps["svc/web"].clone().expect("valid")
}

fn key() -> AppKey {
    AppKey { repo: "repo".into(), branch: "main".into(), prefix: "svc/web".into() }
}

fn applied(a: &DesiredApp) -> AppliedState {
    AppliedState {
        fingerprint: Some(a.fingerprint.clone()),
        task_definition: Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into()),
        owned: true,
        identity: Some(a.identity.clone()),
        ..Default::default()
    }
}

const HEAL_EVERY_5_MIN: DriftClock<'static> = DriftClock {
    policy: DriftPolicy { mode: DriftMode::Heal, ignore_task_definition: false, ignore_function_version: false, ignore_existence: false },
    interval: Duration::from_secs(300),
    last: None,
};

/// An input with no command, drift off, nothing observed; tests change what they decide on.
fn input<'a>(
    key: &'a AppKey,
    desired: Desired<'a>,
    applied: &'a AppliedState,
    record: Option<&'a DeploymentRecord>,
    observed: &'a Observed,
) -> StepInput<'a> {
    StepInput {
        key,
        commit: "c0ffee",
        desired,
        applied,
        record,
        observed,
        now_ms: 1_000_000,
        new_deployment_id: "dep-new",
        commands: &crate::commands::NO_COMMANDS,
        drift: DriftClock::off(),
        moved: false,
        refusal: None,
        own_account: Some("123456789012"),
        account_roles: &crate::accounts::NO_ROLES,
        adopt_untagged: false,
        hold: None,
    }
}

/// A record of `a` in flight at `phase`.
fn in_flight(a: &DesiredApp, phase: Phase) -> DeploymentRecord {
    let key = key();
    let nothing = AppliedState::default();
    let observed = Observed::default();
    let mut record = start(&input(&key, Desired::Present(a), &nothing, None, &observed), a);
    record.id = "dep-old".into();
    record.enter(phase, 1);
    record
}

fn skipped(look: Look) -> Plan {
    match look {
        Look::Skip(plan) => plan,
        Look::Observe(needs) => panic!("expected no observation, got {needs:?}"),
    }
}

fn observes(look: Look) -> ObserveNeeds {
    match look {
        Look::Observe(needs) => needs,
        Look::Skip(plan) => panic!("expected an observation, got {plan:?}"),
    }
}

#[test]
fn the_heads_intent_maps_to_what_the_step_may_do() {
    let a = app("nginx:1");
    let table: [(Option<Intent>, bool, &str); 12] = [
        (Some(Intent::Deploy), true, "present"),
        (Some(Intent::Keep), true, "present"),
        (Some(Intent::Move), true, "present"),
        (Some(Intent::Held), true, "present"),
        (Some(Intent::Held), false, "delete held"),
        (Some(Intent::Delete), false, "deleted"),
        (Some(Intent::Delete), true, "deleted"),
        (Some(Intent::Error), false, "blocked"),
        (Some(Intent::Conflict), true, "blocked"),
        (Some(Intent::Deploy), false, "blocked"),
        (None, true, "blocked"),
        (None, false, "blocked"),
    ];
    for (intent, valid, want) in table {
        let got = match Desired::from_intent(intent, valid.then_some(&a)) {
            Desired::Present(_) => "present",
            Desired::Blocked => "blocked",
            Desired::Deleted => "deleted",
            Desired::DeleteHeld => "delete held",
            Desired::Invalid(_) => "invalid",
        };
        assert_eq!(got, want, "{intent:?} valid={valid}");
    }
}

#[test]
fn a_paused_app_starts_nothing_and_keeps_its_commands() {
    let (key, a, obs) = (key(), app("nginx:2"), Observed::default());
    let applied = AppliedState::default();
    let mut i = input(&key, Desired::Present(&a), &applied, None, &obs);
    let commands = OperatorCommands { paused: true, force: true, rollback: true, ..Default::default() };
    i.commands = &commands;
    let plan = skipped(look(&i));
    assert_eq!(plan.requeue_after, PAUSED_REQUEUE);
    assert_eq!(plan.consumed, Consumed::default(), "a pause uses up nothing");
    assert!(plan.actions.is_empty() && plan.next_record.is_none() && plan.notes.is_empty());
}

#[test]
fn a_paused_deployment_holds_its_step_but_still_rolls_back_when_a_guard_fires() {
    let (key, a) = (key(), app("nginx:2"));
    let applied = AppliedState { fingerprint: Some("old".into()), ..applied(&a) };
    let stabilizing = in_flight(&a, Phase::Rolling(RollingPhase::Stabilize { task_definition: "td:2".into(), deadline_ms: 2_000_000 }));
    let service = ObservedService { status: "ACTIVE".into(), arn: "arn:svc".into(), desired_count: 2, ..Default::default() };
    let stable = Observed {
        service: Some(ObservedService {
            task_definition: Some("td:2".into()),
            deployments: vec![crate::observed::ObservedDeployment {
                status: "PRIMARY".into(),
                task_definition: "td:2".into(),
                running_count: 2,
                ..Default::default()
            }],
            ..service
        }),
        tasks: (0..2)
            .map(|n| crate::observed::ObservedTask {
                arn: format!("t{n}"),
                task_definition: "td:2".into(),
                last_status: "RUNNING".into(),
                desired_status: "RUNNING".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut i = input(&key, Desired::Present(&a), &applied, Some(&stabilizing), &stable);
    let commands = OperatorCommands { paused: true, ..i.commands.clone() };
    i.commands = &commands;
    observes(look(&i));
    let held = step(&i);
    assert!(held.finished.is_none() && held.next_record.is_none() && held.actions.is_empty(), "stable, but held: {held:?}");
    assert_eq!(held.requeue_after, PAUSED_WATCH, "still watched");

    // the same deployment past its budget: the timeout is a guard, and its plan goes ahead
    let starting = Observed { tasks: Vec::new(), ..stable.clone() };
    let late = StepInput { now_ms: 3_000_000, observed: &starting, ..i };
    let plan = step(&late);
    let next = plan.next_record.clone().or(plan.finished.clone().map(|(r, _)| r)).unwrap_or_else(|| panic!("{plan:?}"));
    assert!(matches!(next.cause, Some(FailureCause::StabilityTimeout { .. })), "{:?}", next.cause);
    assert!(next.phase != stabilizing.phase, "not held: the guard's plan goes ahead ({:?})", next.phase);
}

#[test]
fn a_rollback_with_nothing_in_flight_is_consumed_with_a_note_saying_why() {
    let (key, a, obs) = (key(), app("nginx:1"), Observed::default());
    let applied = applied(&a);
    let mut i = input(&key, Desired::Present(&a), &applied, None, &obs);
    let commands = OperatorCommands { rollback: true, ..i.commands.clone() };
    i.commands = &commands;
    let plan = skipped(look(&i));
    assert_eq!(plan.consumed, Consumed { rollback: true, ..Default::default() });
    assert_eq!(plan.requeue_after, Duration::ZERO, "the rest of the pass runs at once");
    assert_eq!(plan.notes.len(), 1);
    assert!(plan.notes[0].message.contains("no deployment is in flight"), "{:?}", plan.notes);
}

#[test]
fn an_operator_rollback_is_consumed_whether_or_not_the_phase_can_roll_back() {
    let (key, a) = (key(), app("nginx:2"));
    let applied = AppliedState { fingerprint: Some("old".into()), ..applied(&a) };
    let obs = Observed {
        service: Some(ObservedService { status: "ACTIVE".into(), arn: "arn:svc".into(), ..Default::default() }),
        ..Default::default()
    };
    // Stabilize has changed the service: it rolls back
    let stabilizing = in_flight(&a, Phase::Rolling(RollingPhase::Stabilize { task_definition: "td:2".into(), deadline_ms: 2_000_000 }));
    let mut i = input(&key, Desired::Present(&a), &applied, Some(&stabilizing), &obs);
    let commands = OperatorCommands { rollback: true, ..i.commands.clone() };
    i.commands = &commands;
    let plan = step(&i);
    assert!(plan.consumed.rollback);
    let next = plan.next_record.as_ref().or(plan.finished.as_ref().map(|(r, _)| r)).expect("a record");
    assert_eq!(next.cause, Some(FailureCause::OperatorRollback));
    assert!(plan.notes.is_empty());

    // Register has changed nothing: the command is used up with a note and the step continues
    let registering = in_flight(&a, Phase::Rolling(RollingPhase::Register));
    let mut i = input(&key, Desired::Present(&a), &applied, Some(&registering), &obs);
    let commands = OperatorCommands { rollback: true, ..i.commands.clone() };
    i.commands = &commands;
    let plan = step(&i);
    assert!(plan.consumed.rollback);
    assert!(plan.notes[0].message.contains("cannot roll back"), "{:?}", plan.notes);
    assert!(matches!(&plan.actions[..], [crate::plan::Action::EcsRegisterTaskDefinition { .. }]), "{plan:?}");
}

#[test]
fn force_is_consumed_by_the_deployment_it_starts_and_only_then() {
    let (key, a, obs) = (key(), app("nginx:1"), Observed::default());
    let applied = applied(&a);
    let mut i = input(&key, Desired::Present(&a), &applied, None, &obs);
    assert!(skipped(look(&i)).next_record.is_none(), "applied and not forced: nothing to look at");
    let commands = OperatorCommands { force: true, ..i.commands.clone() };
    i.commands = &commands;
    observes(look(&i));
    let plan = step(&i);
    assert!(plan.starts_deployment(None));
    assert_eq!(plan.consumed, Consumed { force: true, ..Default::default() });

    // an in-flight deployment of the same fingerprint continues: force waits for a start
    let running = in_flight(&a, Phase::Rolling(RollingPhase::Register));
    let i = StepInput { record: Some(&running), ..i };
    let plan = step(&i);
    assert!(!plan.consumed.force, "{plan:?}");
}

#[test]
fn a_steady_app_is_observed_only_when_something_asks_for_it() {
    let (key, a, obs) = (key(), app("nginx:1"), Observed::default());
    let applied = applied(&a);
    let seen_recently = DriftSeen { at_ms: 999_000, found: None };
    let seen_long_ago = DriftSeen { at_ms: 1_000, found: None };
    // (case, desired, drift clock, moved, rebalance, observes)
    type Case<'a> = (&'a str, Desired<'a>, DriftClock<'a>, bool, Option<Rebalance>, bool);
    let cases: [Case; 8] = [
        ("steady, drift off", Desired::Present(&a), DriftClock::off(), false, None, false),
        ("steady, drift never looked", Desired::Present(&a), HEAL_EVERY_5_MIN, false, None, true),
        (
            "steady, drift looked a second ago",
            Desired::Present(&a),
            DriftClock { last: Some(&seen_recently), ..HEAL_EVERY_5_MIN },
            false,
            None,
            false,
        ),
        (
            "steady, drift looked long ago",
            Desired::Present(&a),
            DriftClock { last: Some(&seen_long_ago), ..HEAL_EVERY_5_MIN },
            false,
            None,
            true,
        ),
        ("moved to this prefix", Desired::Present(&a), DriftClock::off(), true, None, true),
        ("rebalance asked", Desired::Present(&a), DriftClock::off(), false, Some(Rebalance::Scales(100.0, 0.0)), true),
        ("blocked (invalid)", Desired::Blocked, HEAL_EVERY_5_MIN, false, None, false),
        ("deleted and owned", Desired::Deleted, DriftClock::off(), false, None, true),
    ];
    for (name, desired, drift, moved, rebalance, want) in cases {
        let mut i = input(&key, desired, &applied, None, &obs);
        i.drift = drift;
        i.moved = moved;
        let commands = OperatorCommands { rebalance, ..i.commands.clone() };
        i.commands = &commands;
        match look(&i) {
            Look::Observe(needs) => {
                assert!(want, "{name}: observed {needs:?}");
                assert_eq!(needs.task_sets, rebalance.is_some(), "{name}");
            }
            Look::Skip(plan) => {
                assert!(!want, "{name}: skipped");
                assert_eq!(plan.requeue_after, STEADY_REQUEUE.min(drift.interval.max(MIN_DRIFT_REQUEUE)), "{name}");
            }
        }
    }
}

#[test]
fn no_look_is_later_than_the_next_drift_comparison() {
    let (key, a, obs) = (key(), app("nginx:1"), Observed::default());
    let applied = applied(&a);
    let mut i = input(&key, Desired::Present(&a), &applied, None, &obs);
    let seen = DriftSeen { at_ms: i.now_ms, found: None };
    i.drift = DriftClock { interval: Duration::from_secs(30), last: Some(&seen), ..HEAL_EVERY_5_MIN };
    assert_eq!(skipped(look(&i)).requeue_after, Duration::from_secs(30));
    i.drift.interval = Duration::from_millis(10);
    assert_eq!(skipped(look(&i)).requeue_after, MIN_DRIFT_REQUEUE, "never a busy loop");
}

#[test]
fn a_drift_finding_is_noted_once_and_reported_every_look() {
    let (key, a) = (key(), app("nginx:1"));
    let applied = applied(&a);
    let gone = Observed::default();
    let mut i = input(&key, Desired::Present(&a), &applied, None, &gone);
    i.drift = DriftClock { policy: DriftPolicy { mode: DriftMode::Report, ..DriftPolicy::default() }, ..HEAL_EVERY_5_MIN };
    let plan = step(&i);
    let found = plan.drift.clone().expect("a drift check").expect("a finding");
    assert!(found.contains("gone"), "{found}");
    assert_eq!(plan.notes.len(), 1);
    assert_eq!(plan.notes[0].commit.as_deref(), Some("c0ffee"));
    assert!(plan.next_record.is_none(), "report only");

    let seen = DriftSeen { at_ms: 0, found: Some(found) };
    i.drift.last = Some(&seen);
    let plan = step(&i);
    assert!(plan.drift.is_some(), "the check ran and is remembered");
    assert!(plan.notes.is_empty(), "the same finding is not noted again");

    i.drift.policy.mode = DriftMode::Heal;
    let plan = step(&i);
    assert!(plan.starts_deployment(None), "heal redeploys the applied state");
}

fn task_set(external_id: &str, status: &str, scale: f64) -> ObservedTaskSet {
    ObservedTaskSet {
        id: format!("ecs-svc/{external_id}"),
        arn: format!("arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/{external_id}"),
        status: status.into(),
        external_id: external_id.into(),
        scale_percent: scale,
        ..Default::default()
    }
}

#[test]
fn a_rebalance_sets_absolute_scales_and_is_consumed_once_aws_shows_them() {
    let (key, a) = (key(), app("nginx:1"));
    let applied = applied(&a);
    let obs = Observed {
        task_sets: vec![task_set("dep-1-green", "PRIMARY", 25.0), task_set("dep-1-fallback", "ACTIVE", 75.0)],
        ..Default::default()
    };
    let mut i = input(&key, Desired::Present(&a), &applied, None, &obs);
    let commands = OperatorCommands { rebalance: Some(Rebalance::Scales(100.0, 0.0)), ..i.commands.clone() };
    i.commands = &commands;
    let plan = step(&i);
    assert_eq!(plan.actions.len(), 2, "{plan:?}");
    assert!(plan.consumed.is_empty(), "kept until AWS shows the scales: a crash replays the same targets");
    assert_eq!(plan.requeue_after, Duration::ZERO);

    let set = Observed {
        task_sets: vec![task_set("dep-1-green", "PRIMARY", 100.0), task_set("dep-1-fallback", "ACTIVE", 0.0)],
        ..Default::default()
    };
    let plan = step(&StepInput { observed: &set, ..i });
    assert!(plan.actions.is_empty());
    assert_eq!(plan.consumed, Consumed { rebalance: true, ..Default::default() });
    assert!(plan.notes[0].message.contains("rebalanced by an operator: 100 % primary, 0 % fallback"), "{:?}", plan.notes);

    let alone = Observed { task_sets: vec![task_set("dep-1-green", "PRIMARY", 100.0)], ..Default::default() };
    let plan = step(&StepInput { observed: &alone, ..i });
    assert!(plan.consumed.rebalance && plan.actions.is_empty());
    assert!(plan.notes[0].message.contains("no fallback task set"), "{:?}", plan.notes);
}

#[test]
fn a_rebalance_moves_scale_the_way_gitmoxi_documents_spot_fallback() {
    let (key, a) = (key(), app("nginx:1"));
    let applied = applied(&a);
    // desired 8: the primary (Spot) asks for 4 at 50 % and runs 1; the fallback runs its 4
    let primary = ObservedTaskSet { computed_desired_count: 4, running_count: 1, ..task_set("dep-1-green", "PRIMARY", 50.0) };
    let fallback = ObservedTaskSet { computed_desired_count: 4, running_count: 4, ..task_set("dep-1-fallback", "ACTIVE", 50.0) };
    let service = ObservedService { desired_count: 8, ..Default::default() };
    let obs = Observed { service: Some(service), task_sets: vec![primary, fallback], ..Default::default() };
    let to = |direction, all| Rebalance::Move { direction, all };
    // (case, asked, primary %, fallback %)
    let cases = [
        ("everything to on-demand", to(RebalanceDirection::ToFallback, true), 0.0, 100.0),
        ("only the 3 tasks Spot cannot place", to(RebalanceDirection::ToFallback, false), 12.5, 87.5),
        ("back to Spot, all", to(RebalanceDirection::ToPrimary, true), 100.0, 0.0),
        ("back to Spot, as needed: the fallback's whole share", to(RebalanceDirection::ToPrimary, false), 100.0, 0.0),
        ("absolute scales of an older store", Rebalance::Scales(70.0, 30.0), 70.0, 30.0),
    ];
    for (name, asked, primary_percent, fallback_percent) in cases {
        let mut i = input(&key, Desired::Present(&a), &applied, None, &obs);
        let commands = OperatorCommands { rebalance: Some(asked), ..i.commands.clone() };
        i.commands = &commands;
        let plan = step(&i);
        let scales: Vec<f64> = plan
            .actions
            .iter()
            .filter_map(
                |action| if let crate::plan::Action::EcsUpdateTaskSetScale { percent, .. } = action { Some(*percent) } else { None },
            )
            .collect();
        assert_eq!(scales.len(), plan.actions.len(), "{name}: only scale changes: {:?}", plan.actions);
        assert_eq!(scales, vec![primary_percent, fallback_percent], "{name}");
    }
    // nothing to move: the primary runs every task it asks for
    let placed = Observed {
        task_sets: vec![
            ObservedTaskSet { computed_desired_count: 4, running_count: 4, ..task_set("dep-1-green", "PRIMARY", 50.0) },
            task_set("dep-1-fallback", "ACTIVE", 50.0),
        ],
        ..obs.clone()
    };
    let mut i = input(&key, Desired::Present(&a), &applied, None, &placed);
    let commands = OperatorCommands { rebalance: Some(to(RebalanceDirection::ToFallback, false)), ..i.commands.clone() };
    i.commands = &commands;
    let plan = step(&i);
    assert!(plan.actions.is_empty() && plan.consumed.rebalance, "{plan:?}");
    // stored commands of both shapes read back
    for asked in [to(RebalanceDirection::ToPrimary, false), Rebalance::Scales(100.0, 0.0)] {
        let text = serde_json::to_string(&asked).unwrap();
        assert_eq!(serde_json::from_str::<Rebalance>(&text).unwrap(), asked, "{text}");
    }
    assert_eq!(serde_json::from_str::<Rebalance>("[100.0, 0.0]").unwrap(), Rebalance::Scales(100.0, 0.0), "schema-2 stores");
}

#[test]
fn a_refusal_fails_what_is_in_flight_starts_nothing_new_and_drops_a_rebalance() {
    let (key, a, obs) = (key(), app("nginx:2"), Observed::default());
    let denied = FailureCause::PermissionDenied { operation: "ecs:UpdateService".into() };
    let applied = AppliedState { fingerprint: Some("old".into()), ..applied(&a) };

    // in flight: the deployment fails with the cause, its fingerprint is quarantined
    let record = in_flight(&a, Phase::Rolling(RollingPhase::Apply { task_definition: "td:2".into() }));
    let mut i = input(&key, Desired::Present(&a), &applied, Some(&record), &obs);
    i.refusal = Some(&denied);
    let plan = step(&i);
    let (failed, completion) = plan.finished.expect("failed");
    assert_eq!((failed.outcome, failed.cause.as_ref()), (Some(Outcome::Failed), Some(&denied)));
    assert_eq!(completion, Completion::Failed { fingerprint: a.fingerprint.clone() });
    assert!(plan.actions.is_empty());

    // a deployment due to start is recorded as failed, not retried in a loop
    let i = StepInput { record: None, ..i };
    let plan = step(&i);
    assert_eq!(plan.finished.expect("failed").0.cause, Some(denied.clone()));

    // a steady app waits for the next look
    let steady = super::tests::applied(&a);
    let plan = step(&StepInput { applied: &steady, ..i });
    assert!(plan.finished.is_none() && plan.next_record.is_none() && plan.actions.is_empty());
    assert_eq!(plan.requeue_after, STEADY_REQUEUE);

    // a rebalance is dropped with the reason
    let mut i = StepInput { applied: &steady, ..i };
    let commands = OperatorCommands { rebalance: Some(Rebalance::Scales(100.0, 0.0)), ..i.commands.clone() };
    i.commands = &commands;
    let plan = step(&i);
    assert_eq!(plan.consumed, Consumed { rebalance: true, ..Default::default() });
    assert!(plan.notes[0].message.starts_with("rebalance failed"), "{:?}", plan.notes);
}

#[test]
fn a_task_definition_named_by_family_is_resolved_to_the_arn_before_the_deployment_starts() {
    let tree = MemTree::new().with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "taskDefinition": "web:3"}"#);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    let a = snap.apps["svc/web"].clone().expect("valid");
    let key = key();
    let nothing = AppliedState::default();
    let unobserved = Observed::default();
    let i = input(&key, Desired::Present(&a), &nothing, None, &unobserved);
    assert_eq!(observes(look(&i)).resolve_task_definition.as_deref(), Some("web:3"));
    // a steady app looked at for drift is not resolved again on every look
    let steady = AppliedState { fingerprint: Some(a.fingerprint.clone()), identity: Some(a.identity.clone()), ..AppliedState::default() };
    let drift_look = StepInput { applied: &steady, drift: HEAL_EVERY_5_MIN, ..i };
    assert_eq!(observes(look(&drift_look)).resolve_task_definition, None);

    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3";
    let resolved = Observed { resolved_task_definition: Some(ARN.into()), ..Default::default() };
    let plan = step(&StepInput { observed: &resolved, ..i });
    let record = plan.next_record.expect("started");
    assert_eq!(record.phase, Phase::Rolling(RollingPhase::Apply { task_definition: ARN.into() }), "ECS reports ARNs: compare ARNs");

    // a record from before the rule, holding the name, switches to the ARN and goes on
    let mut old = record.clone();
    old.phase = Phase::Rolling(RollingPhase::Apply { task_definition: "web:3".into() });
    let i = StepInput { record: Some(&old), observed: &unobserved, ..i };
    assert_eq!(observes(look(&i)).resolve_task_definition.as_deref(), Some("web:3"));
    let plan = step(&StepInput { observed: &resolved, ..i });
    assert_eq!(plan.next_record.expect("switched").phase, Phase::Rolling(RollingPhase::Apply { task_definition: ARN.into() }));
    assert!(plan.actions.is_empty(), "persisted before acting");
}

#[test]
fn an_app_in_another_account_fails_before_anything_is_observed_or_changed() {
    let tree = MemTree::new()
        .with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "taskDefinition": "web:3"}"#)
        .with("svc/web_depdef.json", r#"{"environment": {"account": "210987654321"}}"#);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    let a = snap.apps["svc/web"].clone().expect("valid");
    let key = key();
    let nothing = AppliedState::default();
    let unobserved = Observed::default();
    let i = input(&key, Desired::Present(&a), &nothing, None, &unobserved);
    let plan = skipped(look(&i));
    assert!(plan.actions.is_empty() && plan.next_record.is_none());
    let (failed, completion) = plan.finished.expect("failed");
    assert_eq!(failed.outcome, Some(Outcome::Failed));
    let cause = failed.cause.expect("a cause").to_string();
    assert!(cause.contains("no role configured for account 210987654321") && cause.contains("123456789012"), "{cause}");
    assert_eq!(completion, Completion::Failed { fingerprint: a.fingerprint.clone() }, "quarantined: no retry loop");

    // naming the controller's own account is the same as naming none
    let own = StepInput { own_account: Some("210987654321"), ..i };
    observes(look(&own));
    // the quarantined fingerprint is not tried again until forced
    let failed_before = AppliedState { failed: [a.fingerprint.clone()].into(), ..AppliedState::default() };
    let again = StepInput { applied: &failed_before, ..i };
    assert!(skipped(look(&again)).finished.is_none());

    // a role for the account: observed and deployed through it, in its allowed regions only
    use crate::accounts::{AccountRoles, AllowedRegions};
    let any = AccountRoles::new([("210987654321".to_string(), AllowedRegions::Any)]);
    observes(look(&StepInput { account_roles: &any, ..i }));
    let elsewhere = AccountRoles::new([("210987654321".to_string(), AllowedRegions::Only(vec!["eu-west-1".into()]))]);
    let (failed, _) = skipped(look(&StepInput { account_roles: &elsewhere, ..i })).finished.expect("refused");
    assert_eq!(
        failed.cause,
        Some(FailureCause::AccountRegionNotAllowed {
            account: "210987654321".into(),
            region: "us-east-1".into(),
            allowed: vec!["eu-west-1".into()]
        })
    );
}

/// Issue 23, item 6: a depdef-only change of region (or account) leaves the fingerprint as it
/// was; the app still deploys, to the new place, and the old service is no rollback target.
#[test]
fn a_region_change_in_the_depdef_alone_deploys_the_app_there() {
    let (key, a, obs) = (key(), app("nginx:1"), Observed::default());
    let mut applied = applied(&a);
    let Identity::Ecs { account, cluster, service, .. } = a.identity.clone() else { panic!("ECS") };
    applied.identity = Some(Identity::Ecs { account, region: "eu-west-1".into(), cluster, service });
    let i = input(&key, Desired::Present(&a), &applied, None, &obs);
    assert!(matches!(look(&i), Look::Observe(_)), "the move is looked at");
    let plan = step(&i);
    let record = plan.next_record.expect("a deployment starts in the new region");
    assert_eq!(record.identity, a.identity);
    assert_eq!(record.previous_task_definition, None, "the other region's revision is no rollback target");
    // the same region, the same fingerprint: nothing to do
    let steady = super::tests::applied(&a);
    assert!(matches!(look(&input(&key, Desired::Present(&a), &steady, None, &obs)), Look::Skip(_)));
    // a failed move is not retried unless forced
    let failed = AppliedState { failed: [a.fingerprint.clone()].into(), ..applied.clone() };
    assert!(matches!(look(&input(&key, Desired::Present(&a), &failed, None, &obs)), Look::Skip(_)));
}

/// Issue 23, item 11: files that do not render leave a failed deployment record (once per
/// commit) with the cause and every diagnostic; AWS is not looked at or touched.
#[test]
fn an_app_whose_files_do_not_render_gets_a_failed_record_once_per_commit() {
    let tree = MemTree::new().with("svc/web_svcdef.json", r#"{"serviceName": "{{ missing }}", "cluster": "prod"}"#);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    let Err(invalid) = &snap.apps["svc/web"] else { panic!("invalid") };
    assert_eq!(invalid.stage, crate::spec::InvalidStage::Render);
    let (key, obs) = (key(), Observed::default());
    let nothing = AppliedState::default();
    let plan = skipped(look(&input(&key, Desired::Invalid(invalid), &nothing, None, &obs)));
    let (record, completion) = plan.finished.expect("a failed record");
    assert_eq!(record.cause, Some(FailureCause::TemplateError));
    assert_eq!(record.outcome, Some(Outcome::Failed));
    assert!(record.evidence.iter().any(|e| e.contains("svc/web_svcdef.json")), "{:?}", record.evidence);
    assert!(plan.actions.is_empty());
    let Completion::Failed { fingerprint } = completion else { panic!("{completion:?}") };
    // the same commit again: recorded already
    let recorded = AppliedState { failed: [fingerprint].into(), ..AppliedState::default() };
    let again = skipped(look(&input(&key, Desired::Invalid(invalid), &recorded, None, &obs)));
    assert!(again.finished.is_none() && again.next_record.is_none());
    // files that render but are not a valid app: a validation error
    let tree = MemTree::new().with("svc/web_svcdef.json", r#"{"cluster": "prod"}"#);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    let Err(invalid) = &snap.apps["svc/web"] else { panic!("invalid") };
    let plan = skipped(look(&input(&key, Desired::Invalid(invalid), &nothing, None, &obs)));
    assert_eq!(plan.finished.expect("failed").0.cause, Some(FailureCause::ValidationError));
}

/// Issue 23, item 16: after a `serviceName` change the app runs under its new identity; the
/// service it owned under the old one is deleted (and forgotten), the app kept.
#[test]
fn a_renamed_service_deletes_the_former_one_once_the_new_one_is_deployed() {
    let (key, a, _) = (key(), app("nginx:1"), Observed::default());
    let Identity::Ecs { account, region, cluster, .. } = a.identity.clone() else { panic!("ECS") };
    let former = Identity::Ecs { account, region, cluster, service: "web-old".into() };
    let applied = AppliedState { retired: vec![former.clone()], ..applied(&a) };
    let old_service = ObservedService {
        status: "ACTIVE".into(),
        arn: "arn:svc-old".into(),
        tags: [(ecs_rolling::TAG_APP.to_string(), key.tag_value()), (ecs_rolling::TAG_REPO.to_string(), "repo".to_string())].into(),
        ..Default::default()
    };
    let obs = Observed {
        service: Some(ObservedService { status: "ACTIVE".into(), arn: "arn:svc".into(), ..Default::default() }),
        ..Default::default()
    };
    let i = input(&key, Desired::Present(&a), &applied, None, &obs);
    assert!(matches!(look(&i), Look::Observe(_)));
    let record = step(&i).next_record.expect("a delete of the former service");
    assert_eq!(record.operation, Operation::Delete);
    assert_eq!(record.identity, former);
    assert_eq!(
        observe_needs(&Desired::Present(&a), &applied, Some(&record)).identity,
        Some(former.clone()),
        "the former service is looked at"
    );
    let at_old = Observed { service: Some(old_service), ..Default::default() };
    let plan = step(&StepInput { record: Some(&record), observed: &at_old, ..input(&key, Desired::Present(&a), &applied, None, &at_old) });
    assert!(
        plan.actions.iter().any(|a| matches!(a, crate::plan::Action::EcsDeleteService { service, .. } if service == "web-old")),
        "{plan:?}"
    );
    let gone = Observed::default();
    let plan = step(&StepInput { record: Some(&record), observed: &gone, ..input(&key, Desired::Present(&a), &applied, None, &gone) });
    let (done, completion) = plan.finished.expect("deleted");
    assert_eq!(done.outcome, Some(Outcome::Deleted));
    assert_eq!(completion, Completion::Retired { identity: former }, "the app is kept, the former service forgotten");
}
