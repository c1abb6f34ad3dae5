use super::*;
use gitmoxi_deploy::record::RollingPhase;
use gitmoxi_deploy::record::{DeploymentStatus, Operation, Phase};
use gitmoxi_deploy::spec::Identity;

pub(crate) fn key(prefix: &str) -> AppKey {
    AppKey { repo: "r".into(), branch: "main".into(), prefix: prefix.into() }
}

pub(crate) fn record(id: &str, prefix: &str) -> DeploymentRecord {
    DeploymentRecord {
        id: id.into(),
        app: key(prefix),
        kind: AppKind::Ecs,
        commit: "c1".into(),
        fingerprint: "fp1".into(),
        identity: Identity::Ecs { account: None, region: "us-east-1".into(), cluster: "c".into(), service: "s".into() },
        account_id: None,
        operation: Operation::Deploy,
        strategy: gitmoxi_deploy::record::Strategy::Rolling,
        desired: None,
        previous_task_definition: None,
        previous_service: None,
        forced: false,
        phase: Phase::Rolling(RollingPhase::Register),
        status: DeploymentStatus::Processing,
        outcome: None,
        cause: None,
        evidence: vec![],
        traffic: None,
        task_set_scales: None,
        task_set_arns: None,
        awaiting_approval: None,
        approvals: Vec::new(),
        hooks: Vec::new(),
        analysis: None,
        desired_lambda: None,
        previous_version: None,
        started_at_ms: 1,
        updated_at_ms: 1,
        finished_at_ms: None,
        timeline: vec![],
    }
}

#[test]
fn records_survive_reopening_and_finish_moves_them_to_history() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_record(&record("d1", "a")).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let mut r = store.record(&key("a")).unwrap().expect("persisted");
    assert_eq!(r.phase, Phase::Rolling(RollingPhase::Register));
    r.finish(Outcome::Succeeded, 5);
    store
        .finish(&r, &Completion::Applied { fingerprint: "fp1".into(), commit: "c1".into(), task_definition: Some("td:1".into()) })
        .unwrap();
    assert!(store.record(&key("a")).unwrap().is_none());
    let app = store.app(&key("a")).unwrap().unwrap();
    assert_eq!(app.applied.fingerprint.as_deref(), Some("fp1"));
    assert_eq!(app.applied.task_definition.as_deref(), Some("td:1"));
    assert_eq!(store.deployment("d1").unwrap().unwrap().outcome, Some(Outcome::Succeeded));
}

#[test]
fn failed_fingerprints_are_remembered_and_removal_forgets_the_app() {
    let store = Store::temporary().unwrap();
    let mut r = record("d1", "a");
    store.put_record(&r).unwrap();
    r.finish(Outcome::RolledBack, 2);
    store.finish(&r, &Completion::Failed { fingerprint: "fp1".into() }).unwrap();
    assert!(store.app(&key("a")).unwrap().unwrap().applied.failed.contains("fp1"));
    let mut d = record("d2", "a");
    d.finish(Outcome::Deleted, 3);
    store.finish(&d, &Completion::Removed).unwrap();
    assert!(store.app(&key("a")).unwrap().is_none());
}

#[test]
fn finishing_an_old_record_keeps_a_newer_in_flight_one() {
    let store = Store::temporary().unwrap();
    let mut old = record("d1", "a");
    store.put_record(&record("d2", "a")).unwrap();
    old.finish(Outcome::Superseded, 2);
    store.finish(&old, &Completion::Nothing).unwrap();
    assert_eq!(store.record(&key("a")).unwrap().unwrap().id, "d2");
}

#[test]
fn history_is_bounded_and_ordered() {
    let store = Store::temporary().unwrap();
    for i in 0..(MAX_HISTORY_PER_APP + 10) {
        let e = HistoryEvent { at_ms: i as u64, level: Level::Info, deployment: None, commit: None, message: format!("e{i}") };
        store.append_history(&key("a"), &e).unwrap();
    }
    store
        .append_history(&key("b"), &HistoryEvent { at_ms: 0, level: Level::Info, deployment: None, commit: None, message: "b".into() })
        .unwrap();
    let h = store.history(&key("a")).unwrap();
    assert_eq!(h.len(), MAX_HISTORY_PER_APP);
    assert_eq!(h[0].message, "e10");
    assert_eq!(h.last().unwrap().message, format!("e{}", MAX_HISTORY_PER_APP + 9));
    assert_eq!(store.history(&key("b")).unwrap().len(), 1);
}

#[test]
fn moves_hand_the_state_to_the_new_prefix() {
    let store = Store::temporary().unwrap();
    let mut e = AppEntry::new(key("old"), AppKind::Ecs);
    e.applied.fingerprint = Some("fp".into());
    e.applied.owned = true;
    store.put_app(&e).unwrap();
    store.move_app(&key("old"), &key("new")).unwrap();
    assert!(store.app(&key("old")).unwrap().is_none());
    let moved = store.app(&key("new")).unwrap().unwrap();
    assert_eq!(moved.key, key("new"));
    assert!(moved.applied.owned);
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta").unwrap().insert("schema_version", b"99".to_vec()).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn commands_round_trip() {
    use gitmoxi_deploy::commands::{Command, Consumed};
    let store = Store::temporary().unwrap();
    assert_eq!(store.commands(&key("a")).unwrap(), Commands::default());
    store.submit_command(&key("a"), &Command::Force).unwrap();
    assert!(store.commands(&key("a")).unwrap().force);
    assert!(!store.commands(&key("b")).unwrap().force, "another app's log");
    let read = store.pending_commands(&key("a")).unwrap();
    store.consume_commands(&key("a"), &Consumed { force: true, ..Consumed::default() }, &read).unwrap();
    assert!(!store.commands(&key("a")).unwrap().force);
}

/// Issue 24: producers only append, the worker removes only what it read. An answer given
/// between a step's read and its consumption survives; sequence numbers grow past an imported
/// log (an HA hand-off); the log is bounded.
#[test]
fn an_answer_given_after_the_read_is_not_wiped_with_the_one_consumed() {
    use gitmoxi_deploy::commands::{AnswerChannel, Approval, Command, Consumed};
    let store = Store::temporary().unwrap();
    let answer = |approve| Command::Answer { approval: Approval { approve, by: "sre".into(), via: AnswerChannel::Api, at_ms: 1 } };
    store.submit_command(&key("a"), &answer(true)).unwrap();
    let read = store.pending_commands(&key("a")).unwrap();
    assert_eq!(read.view().approval.map(|a| a.approve), Some(true));
    // between the step's read and its clear: a second answer
    store.submit_command(&key("a"), &answer(false)).unwrap();
    store.consume_commands(&key("a"), &Consumed { approval: true, ..Consumed::default() }, &read).unwrap();
    let left = store.commands(&key("a")).unwrap();
    assert_eq!(left.approval.map(|a| a.approve), Some(false), "the later answer is kept");

    // an imported log (another replica wrote it with higher numbers): new entries go after it
    let imported = serde_json::json!([{"seq": 9_000_000_000u64, "command": "pause"}]);
    store.import_commands(&key("b"), Some(&imported)).unwrap();
    let seq = store.submit_command(&key("b"), &Command::Resume).unwrap();
    assert!(seq > 9_000_000_000, "{seq}");
    assert!(!store.commands(&key("b")).unwrap().paused, "the resume is newer than the imported pause");
    // what an older build put in the table: the folded commands
    store.import_commands(&key("c"), Some(&serde_json::json!({"force": true, "paused": true}))).unwrap();
    let c = store.commands(&key("c")).unwrap();
    assert!(c.force && c.paused);

    for _ in store.pending_commands(&key("d")).unwrap().log.len()..crate::MAX_PENDING_COMMANDS {
        store.submit_command(&key("d"), &Command::Pause).unwrap();
    }
    let err = store.submit_command(&key("d"), &Command::Pause).unwrap_err();
    assert!(err.to_string().contains("commands already wait"), "{err}");
}

/// Schema 2 → 3: the folded commands become log entries; `allow_prune` meta rows become
/// permissions.
#[test]
fn schema_2_commands_and_allowed_prunes_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta").unwrap().insert("schema_version", b"2".to_vec()).unwrap();
        db.open_tree("meta").unwrap().insert("allow_prune/repo/main", serde_json::to_vec("1").unwrap()).unwrap();
        db.open_tree("meta").unwrap().insert("allow_prune/repo/old", serde_json::to_vec("0").unwrap()).unwrap();
        let k = super::app_key_bytes(&key("web"));
        let folded = Commands { paused: true, force: true, ..Commands::default() };
        db.open_tree("commands").unwrap().insert(k, serde_json::to_vec(&folded).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let c = store.commands(&key("web")).unwrap();
    assert!(c.paused && c.force, "{c:?}");
    assert!(store.allowed_prune("repo", "main").unwrap().is_some());
    assert!(store.allowed_prune("repo", "old").unwrap().is_none());
    assert_eq!(store.meta.get("schema_version").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn each_app_keeps_its_newest_deployments_and_an_in_flight_one_reads_fresh() {
    let store = Store::temporary().unwrap();
    for (prefix, n) in [("a", MAX_DEPLOYMENTS_PER_APP + 5), ("b", 3)] {
        for i in 0..n {
            let mut r = record(&format!("{prefix}-{i:03}"), prefix);
            r.started_at_ms = i as u64 + 1;
            store.put_record(&r).unwrap();
            r.finish(Outcome::Succeeded, i as u64 + 2);
            store.finish(&r, &Completion::Nothing).unwrap();
        }
    }
    let kept: Vec<String> = store.deployments().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(kept.iter().filter(|id| id.starts_with("a-")).count(), MAX_DEPLOYMENTS_PER_APP);
    assert!(!kept.contains(&"a-004".to_string()) && kept.contains(&"a-005".to_string()), "the oldest went first");
    assert_eq!(kept.iter().filter(|id| id.starts_with("b-")).count(), 3, "another app's are untouched");
    // a step rewrites the in-flight tree only; reads by id still see the step
    let mut live = record("c-1", "c");
    store.put_record(&live).unwrap();
    live.phase = Phase::Rolling(RollingPhase::Apply { task_definition: "td:2".into() });
    store.put_record(&live).unwrap();
    assert_eq!(store.deployment("c-1").unwrap().unwrap().phase, live.phase);
    assert_eq!(store.deployments().unwrap().into_iter().find(|r| r.id == "c-1").unwrap().phase, live.phase);
    // one app's deployments through the index: the same as the full list filtered, newest first
    let of_b: Vec<String> = store.deployments_of(&key("b"), 2).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(of_b, vec!["b-002".to_string(), "b-001".to_string()]);
    let of_a: Vec<String> = store.deployments_of(&key("a"), 100).unwrap().into_iter().map(|r| r.id).collect();
    let filtered: Vec<String> = kept.iter().filter(|id| id.starts_with("a-")).cloned().collect();
    assert_eq!(of_a, filtered);
    assert_eq!(store.deployments_of(&key("c"), 5).unwrap()[0].phase, live.phase, "an in-flight one reads fresh");
}

#[test]
fn a_store_written_before_the_by_app_index_is_indexed_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut r = record("old-1", "a");
        store.put_record(&r).unwrap();
        r.finish(Outcome::Succeeded, 3);
        store.finish(&r, &Completion::Nothing).unwrap();
        store.deployments_by_app.clear().unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.deployments_by_app.len(), 1, "indexed on open");
}

#[test]
fn a_version_1_store_opens_and_its_causes_become_typed() {
    let dir = tempfile::tempdir().unwrap();
    {
        // what schema 1 wrote: the cause's text on the app, the cause itself on the deployment
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta").unwrap().insert("schema_version", b"1".to_vec()).unwrap();
        let mut failed = record("d1", "a");
        failed.cause = Some(FailureCause::StabilityTimeout { waited_secs: 300 });
        failed.finish(Outcome::RolledBack, 9);
        db.open_tree("deployments").unwrap().insert("d1", serde_json::to_vec(&failed).unwrap()).unwrap();
        let mut app = serde_json::to_value(AppEntry::new(key("a"), AppKind::Ecs)).unwrap();
        app["last_deployment"] = "d1".into();
        app["last_outcome"] = "rolled_back".into();
        app["last_cause"] = "stability timeout after 300 s".into();
        app["plan_action"] = "none".into();
        app["applied"]["fingerprint"] = "fp1".into();
        app["rendered"] = serde_json::json!({"svc_def": {"serviceName": "s", "desiredCount": 4}});
        db.open_tree("apps").unwrap().insert(app_key_bytes(&key("a")), serde_json::to_vec(&app).unwrap()).unwrap();
        let mut orphan = serde_json::to_value(AppEntry::new(key("b"), AppKind::Ecs)).unwrap();
        orphan["last_cause"] = "a cause whose record was pruned".into();
        db.open_tree("apps").unwrap().insert(app_key_bytes(&key("b")), serde_json::to_vec(&orphan).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let app = store.app(&key("a")).unwrap().unwrap();
    assert_eq!(app.last_cause, Some(FailureCause::StabilityTimeout { waited_secs: 300 }));
    assert_eq!(app.intent, Some(gitmoxi_deploy::intent::Intent::Keep));
    assert_eq!(app.applied.desired_count, Some(4), "the applied count comes from the svcdef schema 1 kept");
    assert_eq!(store.app(&key("b")).unwrap().unwrap().last_cause, None, "no record: the cause is unknown");
    assert_eq!(store.meta.get("schema_version").unwrap().as_deref(), Some(&b"3"[..]));
    drop(store);
    let again = Store::open(dir.path()).unwrap();
    assert_eq!(again.app(&key("a")).unwrap().unwrap().last_cause, Some(FailureCause::StabilityTimeout { waited_secs: 300 }));
}

fn with_desired(id: &str, prefix: &str, image: &str) -> DeploymentRecord {
    use gitmoxi_deploy::spec::{load_snapshot, AppSpec, MemTree, RenderContext};
    let tree = MemTree::new().with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "desiredCount": 2}"#).with(
        "svc/web_taskdef.json",
        &format!(r#"{{"family": "web", "containerDefinitions": [{{"name": "web", "image": "{image}", "memory": 128}}]}}"#),
    );
    let snapshot = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    let app = snapshot.apps["svc/web"].clone().expect("valid");
    let AppSpec::Ecs(ecs) = app.spec else { panic!("an ECS app") };
    DeploymentRecord { desired: Some(ecs), ..record(id, prefix) }
}

#[test]
fn a_record_refers_to_its_documents_stored_once() {
    let store = Store::temporary().unwrap();
    let mut r = with_desired("d1", "a", "registry.example/web:1.2.3");
    for step in 0..5 {
        r.updated_at_ms = step;
        store.put_record(&r).unwrap();
    }
    assert_eq!(store.document_count(), 1, "five phase changes, one document");
    let raw = store.records.get(app_key_bytes(&key("a"))).unwrap().unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("registry.example/web:1.2.3") && raw.contains("$doc"), "the stored record refers to it: {raw}");
    assert_eq!(store.record(&key("a")).unwrap().unwrap(), r, "and reads back whole");

    r.finish(Outcome::Succeeded, 9);
    store.finish(&r, &Completion::Applied { fingerprint: "fp1".into(), commit: "c1".into(), task_definition: None }).unwrap();
    assert_eq!(store.deployment("d1").unwrap().unwrap().desired, r.desired);
    let applied = store.applied_document(&key("a")).unwrap().expect("the applied documents");
    assert_eq!(applied["taskdef"]["containerDefinitions"][0]["image"], "registry.example/web:1.2.3");
    assert_eq!(store.document_count(), 1, "the finished record and the app share it");
}

#[test]
fn a_record_stored_with_its_documents_inline_still_reads() {
    let store = Store::temporary().unwrap();
    let r = with_desired("d1", "a", "nginx:1");
    store.records.insert(app_key_bytes(&key("a")), serde_json::to_vec(&r).unwrap()).unwrap();
    assert_eq!(store.record(&key("a")).unwrap().unwrap(), r);
}

#[test]
fn documents_of_pruned_deployments_go_and_the_applied_one_stays() {
    let store = Store::temporary().unwrap();
    let total = MAX_DEPLOYMENTS_PER_APP + 20;
    for i in 0..total {
        let mut r = with_desired(&format!("d{i:04}"), "a", &format!("nginx:{i}"));
        r.started_at_ms = i as u64;
        store.put_record(&r).unwrap();
        r.finish(if i == 0 { Outcome::Succeeded } else { Outcome::RolledBack }, i as u64);
        let completion = if i == 0 {
            Completion::Applied { fingerprint: "fp0".into(), commit: "c0".into(), task_definition: None }
        } else {
            Completion::Failed { fingerprint: format!("fp{i}") }
        };
        store.finish(&r, &completion).unwrap();
    }
    assert_eq!(store.deployments().unwrap().len(), MAX_DEPLOYMENTS_PER_APP);
    assert_eq!(store.document_count(), MAX_DEPLOYMENTS_PER_APP + 1, "the kept deployments' documents and the applied one");
    let applied = store.applied_document(&key("a")).unwrap().expect("the first, applied deployment's document stays");
    assert_eq!(applied["taskdef"]["containerDefinitions"][0]["image"], "nginx:0");
    for kept in store.deployments().unwrap() {
        assert!(kept.desired.is_some(), "every kept deployment still reads whole");
    }
}

#[test]
fn an_app_is_durable_only_once_its_writes_are_flushed() {
    let store = Store::temporary().unwrap();
    let (web, api) = (key("apps/web"), key("apps/api"));
    assert!(store.is_durable(&web), "nothing written yet");
    store.put_record(&record("dep-1", "apps/web")).unwrap();
    assert!(!store.is_durable(&web), "a record written and not flushed");
    assert!(store.is_durable(&api), "another app is not affected");
    store.flush().unwrap();
    assert!(store.is_durable(&web));
    // every per-app write counts: commands, the entry, a finish
    store.submit_command(&web, &gitmoxi_deploy::commands::Command::Force).unwrap();
    assert!(!store.is_durable(&web));
    store.flush().unwrap();
    store.put_app(&AppEntry::new(api.clone(), gitmoxi_deploy::AppKind::Ecs)).unwrap();
    assert!(!store.is_durable(&api) && store.is_durable(&web));
    store.flush().unwrap();
    let mut done = record("dep-1", "apps/web");
    done.finish(gitmoxi_deploy::record::Outcome::Succeeded, 5);
    store.finish(&done, &gitmoxi_deploy::plan::Completion::Nothing).unwrap();
    assert!(!store.is_durable(&web));
    store.flush().unwrap();
    assert!(store.is_durable(&web));
}

#[test]
fn a_corrupt_store_says_so_and_how_to_move_it_aside() {
    // sled cuts its log at the first bad block: a flipped data file opens as an empty store
    // (which adopts what runs, see the controller's adoption tests)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        store.put_record(&record("dep-1", "apps/web")).unwrap();
        store.flush().unwrap();
    }
    let data = path.join("db");
    let mut bytes = std::fs::read(&data).unwrap();
    for i in (0..bytes.len()).step_by(64) {
        bytes[i] ^= 0xff;
    }
    std::fs::write(&data, bytes).unwrap();
    assert!(Store::open(&path).unwrap().record(&key("apps/web")).unwrap().is_none());
    // and when sled reports corruption, the message says so and what to do, not "disk space"
    let message = StoreError::Io(sled::Error::Corruption { at: None, bt: () }).to_string();
    assert!(message.contains("corrupt") && message.contains("move the state directory aside"), "{message}");
    assert!(!message.contains("disk space"), "{message}");
}

#[test]
fn a_store_held_by_another_handle_is_refused_with_the_reason_after_a_short_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    let started = std::time::Instant::now();
    let e = Store::open(dir.path()).err().expect("the directory is locked");
    assert!(e.to_string().contains("in use by another process"), "{e}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "it waited for the lock first");
}

#[test]
fn the_journal_names_what_changed_and_an_import_elsewhere_reproduces_the_app() {
    let a = Store::temporary().unwrap();
    // no journal without HA: nothing is kept
    a.put_record(&with_desired("d0", "x", "nginx:0")).unwrap();
    assert!(a.take_changes().is_empty());
    a.enable_journal();
    let mut first = with_desired("d1", "web", "nginx:1");
    a.put_record(&first).unwrap();
    first.finish(Outcome::Succeeded, 5);
    a.finish(&first, &Completion::Applied { fingerprint: "fp1".into(), commit: "c1".into(), task_definition: Some("td:1".into()) })
        .unwrap();
    let second = with_desired("d2", "web", "nginx:2");
    a.put_record(&second).unwrap();
    a.submit_command(&key("web"), &gitmoxi_deploy::commands::Command::Pause).unwrap();
    let event = HistoryEvent { at_ms: 7, level: Level::Info, deployment: Some("d2".into()), commit: None, message: "started".into() };
    a.append_history(&key("web"), &event).unwrap();
    // issue 26: the head's row carries the app's dependsOn and an operator's pin; both go with it
    let pin = gitmoxi_deploy::release::pin::Pin {
        commit: "c1".into(),
        fingerprint: "fp1".into(),
        head_fingerprint: Some("fp2".into()),
        by: "sre via cli".into(),
        at_ms: 9,
        from_deployment: "d1".into(),
        app: gitmoxi_deploy::release::pin::desired_from_record(&first, None).expect("the record keeps its app"),
    };
    let row = HeadIntent {
        kind: AppKind::Ecs,
        problems: Vec::new(),
        intent: Some(Intent::Keep),
        intent_reason: None,
        head_commit: Some("c2".into()),
        updated_at_ms: 8,
        depends_on: vec!["db/migrate".into()],
        pin: Some(pin),
    };
    a.put_intent(&key("web"), &row).unwrap();
    let changes = a.take_changes();
    assert_eq!(changes.apps.iter().cloned().collect::<Vec<_>>(), vec![key("web")]);
    assert_eq!(changes.finished, vec![(key("web"), "d1".to_string())]);
    assert_eq!(changes.history.len(), 1);
    assert!(!a.has_pending_change(&key("web")));
    a.restore_changes(changes.clone());
    assert!(a.has_pending_change(&key("web")));

    // what the mirror copies, imported into another store, reads as the first one did
    let state = a.export_app(&key("web")).unwrap();
    assert_eq!(state.documents.len(), 2, "the in-flight record's and the applied one's");
    let b = Store::temporary().unwrap();
    let stale = record("old", "gone");
    b.put_record(&stale).unwrap();
    b.enable_journal();
    let imported = ImportedApp {
        key: key("web"),
        state: state.clone(),
        history: a.history(&key("web")).unwrap(),
        deployments: vec![a.deployment_stored("d1").unwrap().unwrap()],
    };
    // a record whose documents are missing is refused before anything is replaced
    assert!(matches!(b.import(std::slice::from_ref(&imported), &[]), Err(StoreError::MissingDocument { .. })));
    for id in &state.documents {
        b.put_document(id, &a.document(id).unwrap().unwrap()).unwrap();
    }
    b.import(&[imported], &[key("gone")]).unwrap();
    assert_eq!(b.record(&key("web")).unwrap(), a.record(&key("web")).unwrap());
    assert_eq!(b.app(&key("web")).unwrap(), a.app(&key("web")).unwrap());
    assert_eq!(b.intent(&key("web")).unwrap(), Some(row), "the pin and dependsOn reach the replica that takes the app over");
    assert_eq!(b.commands(&key("web")).unwrap(), a.commands(&key("web")).unwrap());
    assert_eq!(b.history(&key("web")).unwrap(), a.history(&key("web")).unwrap());
    assert_eq!(b.deployment("d1").unwrap(), a.deployment("d1").unwrap());
    assert_eq!(b.applied_document(&key("web")).unwrap(), a.applied_document(&key("web")).unwrap());
    assert!(b.record(&key("gone")).unwrap().is_none(), "an app the table does not hold is forgotten");
    assert!(b.take_changes().is_empty(), "an import is not copied back");
}
