//! Releases in the fake world (issue 26): the order of apps inside a commit (`dependsOn`), a
//! freeze holding a change and an operator's override, and a rollback of a steady app to the
//! previous release pinned across heads. Each test checks what the fake AWS ends up running.

use crate::sim::{Sim, MINUTES};
use gitmoxi_deploy::record::Outcome;
use gitmoxi_deploy::release::freeze::{Freeze, FreezeWindow};
use gitmoxi_deploy::release::pin::RollbackTo;
use gitmoxi_deploy::status::AppStatus;

use crate::support::{API, DB, WORKER};

fn depdef(depends_on: &[&str]) -> String {
    crate::support::depdef_depending_on(depends_on, 5, 180)
}

/// The chain migrate ← api ← worker (each depends on the one before).
fn chain(sim: &mut Sim, db: &str, api: &str, worker: &str) {
    sim.add_app(DB, "migrate", db);
    sim.add_app(API, "api", api);
    sim.add_app(WORKER, "worker", worker);
    sim.tree.insert(&format!("{API}_depdef.json"), &depdef(&[DB]));
    sim.tree.insert(&format!("{WORKER}_depdef.json"), &depdef(&[API]));
}

fn status(sim: &Sim, prefix: &str) -> AppStatus {
    let entry = sim.store.app(&Sim::key(prefix)).expect("store").expect("the app");
    let head = sim.controller.head("deploys", "main");
    let record = sim.store.record(&Sim::key(prefix)).expect("store");
    sim.controller.status_of(&entry, head.as_deref(), record.as_ref(), false)
}

/// The deployments of an app, oldest first.
fn deployments(sim: &Sim, prefix: &str) -> Vec<gitmoxi_deploy::record::DeploymentRecord> {
    let mut all = sim.store.deployments_of(&Sim::key(prefix), 100).expect("store");
    all.reverse();
    all
}

#[tokio::test(start_paused = true)]
async fn a_chain_deploys_in_order_a_failing_middle_blocks_its_dependent_and_a_fixing_commit_releases_it() {
    let mut sim = Sim::new();
    chain(&mut sim, "migrate:1", "nginx:1", "worker:1");
    sim.commit();
    let all_up = |s: &Sim| s.stable_on("migrate", "migrate:1") && s.stable_on("api", "api:1") && s.stable_on("worker", "worker:1");
    assert!(sim.run_until(30 * MINUTES, |s| all_up(s) && s.idle(WORKER) && s.idle(API)).await, "{}", sim.seed_note());
    // each started only once the one it depends on had succeeded
    let (db, api, worker) = (&deployments(&sim, DB)[0], &deployments(&sim, API)[0], &deployments(&sim, WORKER)[0]);
    assert!(api.started_at_ms >= db.finished_at_ms.expect("ended"), "api started before the migration succeeded");
    assert!(worker.started_at_ms >= api.finished_at_ms.expect("ended"), "worker started before the api succeeded");
    assert!(sim.history(API).iter().any(|h| h.contains("waits for prod/db/migrate (dependsOn)")), "{:?}", sim.history(API));

    // one commit changes all three; the api's image cannot be pulled
    chain(&mut sim, "migrate:2", "nginx:fail", "worker:2");
    sim.commit();
    assert!(sim.run_until(40 * MINUTES, |s| s.idle(API) && s.outcome(API) == Some(Outcome::RolledBack)).await, "{}", sim.seed_note());
    assert!(sim.run_until(2 * MINUTES, |s| status(s, WORKER) == AppStatus::Blocked).await, "{:?}", status(&sim, WORKER));
    assert!(sim.run_until(5 * MINUTES, |s| s.stable_on("migrate", "migrate:2")).await, "the migration went first and stays");
    assert!(sim.run_until(5 * MINUTES, |s| s.stable_on("api", "api:1")).await, "the api rolled back");
    // the worker never started: it still runs its old revision, with one deployment only
    assert!(sim.run_until(5 * MINUTES, |s| s.stable_on("worker", "worker:1")).await);
    assert_eq!(deployments(&sim, WORKER).len(), 1, "the blocked worker did not deploy");
    let blocked = sim.history(WORKER);
    assert!(
        blocked
            .iter()
            .any(|h| h.contains("blocked: dependency prod/api/api rolled back") && h.contains("until a newer commit fixes prod/api/api")),
        "{blocked:?}"
    );

    // a commit that fixes the api releases the worker
    sim.set_image(API, "nginx:3");
    sim.commit();
    let fixed = |s: &Sim| s.stable_on("api", "api:3") && s.stable_on("worker", "worker:2") && s.idle(WORKER);
    assert!(sim.run_until(40 * MINUTES, fixed).await, "{:?} {}", status(&sim, WORKER), sim.seed_note());
    assert_eq!(sim.outcome(WORKER), Some(Outcome::Succeeded));
    let last_api = deployments(&sim, API).pop().expect("the fix");
    let last_worker = deployments(&sim, WORKER).pop().expect("the release");
    assert!(last_worker.started_at_ms >= last_api.finished_at_ms.expect("ended"));
}

#[tokio::test(start_paused = true)]
async fn a_cycle_is_refused_naming_the_files_and_deploys_nothing() {
    let mut sim = Sim::new();
    sim.add_app(API, "api", "nginx:1");
    sim.add_app(WORKER, "worker", "worker:1");
    sim.tree.insert(&format!("{API}_depdef.json"), &depdef(&[WORKER]));
    sim.tree.insert(&format!("{WORKER}_depdef.json"), &depdef(&[API]));
    sim.commit();
    assert!(sim.run_until(MINUTES, |s| status(s, API) == AppStatus::Invalid && status(s, WORKER) == AppStatus::Invalid).await);
    let problems = sim.store.app(&Sim::key(API)).unwrap().unwrap().problems;
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|p| p.contains("prod/api/api_depdef.json")
            && p.contains("dependsOn forms a cycle: prod/api/api → prod/worker/worker → prod/api/api")),
        "{text:?}"
    );
    sim.run_until(5 * MINUTES, |_| false).await;
    assert!(
        sim.world.service(crate::sim::REGION, "prod", "api").is_none() && sim.world.service(crate::sim::REGION, "prod", "worker").is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn deletes_run_dependents_first() {
    let mut sim = Sim::new();
    sim.policy.max_prune = 10;
    sim.policy.max_prune_percent = 100;
    chain(&mut sim, "migrate:1", "nginx:1", "worker:1");
    // a head without any app deletes nothing (an empty checkout): one app stays
    sim.add_app("prod/other/other", "other", "other:1");
    sim.commit();
    assert!(sim.run_until(30 * MINUTES, |s| s.idle(WORKER) && s.stable_on("worker", "worker:1")).await);
    for app in [DB, API, WORKER] {
        sim.remove_app(app);
    }
    sim.commit();
    let gone = |s: &Sim| {
        ["migrate", "api", "worker"].iter().all(|n| s.world.service(crate::sim::REGION, "prod", n).is_none_or(|svc| !svc.is_active()))
            && [DB, API, WORKER].iter().all(|p| s.idle(p))
    };
    assert!(sim.run_until(30 * MINUTES, gone).await, "{}", sim.seed_note());
    let deleted = |prefix: &str| {
        sim.store
            .deployments()
            .unwrap()
            .into_iter()
            .find(|d| d.app.prefix == prefix && d.operation == gitmoxi_deploy::record::Operation::Delete)
            .expect("a delete")
    };
    let (db, api, worker) = (deleted(DB), deleted(API), deleted(WORKER));
    assert!(api.started_at_ms >= worker.finished_at_ms.expect("ended"), "the api went before the worker that depends on it");
    assert!(db.started_at_ms >= api.finished_at_ms.expect("ended"), "the migration went before the api");
}

#[tokio::test(start_paused = true)]
async fn a_freeze_holds_a_change_until_an_override_which_is_recorded() {
    let mut sim = Sim::new();
    sim.add_app(API, "api", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:1")).await);
    let now = sim.clock.now_ms();
    let freeze = Freeze {
        name: "year end".into(),
        reason: "holiday change freeze".into(),
        repo: "*".into(),
        branch: "main".into(),
        prefix: "prod/*".into(),
        window: FreezeWindow::Range { from_ms: now, until_ms: now + 24 * 3_600_000 },
    };
    sim.with_freezes(vec![freeze]).await;
    sim.set_image(API, "nginx:2");
    sim.commit();
    assert!(sim.run_until(MINUTES, |s| status(s, API) == AppStatus::Frozen).await, "{:?}", status(&sim, API));
    sim.run_until(30 * MINUTES, |_| false).await;
    assert!(sim.stable_on("api", "api:1"), "nothing started under the freeze");
    assert_eq!(status(&sim, API), AppStatus::Frozen);
    assert!(
        sim.history(API).iter().any(|h| h.contains("frozen by 'year end'") && h.contains("(holiday change freeze)")),
        "{:?}",
        sim.history(API)
    );

    // an operator lets this one change through; who it was is kept with the deployment
    let by = "alice via cli".to_string();
    sim.controller
        .submit(
            &Sim::key(API),
            gitmoxi_deploy::commands::Command::OverrideFreeze { by: by.clone() },
            format!("freeze override given by {by}"),
        )
        .await
        .expect("taken");
    assert!(sim.run_until(20 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:2")).await, "{:?}", status(&sim, API));
    assert!(
        sim.history(API).iter().any(|h| h == "freeze overridden by alice via cli: this change started during a freeze"),
        "{:?}",
        sim.history(API)
    );
    // used up: the next change waits again
    sim.set_image(API, "nginx:3");
    sim.commit();
    assert!(sim.run_until(MINUTES, |s| status(s, API) == AppStatus::Frozen).await);
    sim.run_until(10 * MINUTES, |_| false).await;
    assert!(sim.stable_on("api", "api:2"));
}

#[tokio::test(start_paused = true)]
async fn rollback_to_the_previous_release_pins_the_app_until_a_commit_changes_it() {
    let mut sim = Sim::new();
    sim.add_app(API, "api", "nginx:1");
    sim.add_app(WORKER, "worker", "worker:1");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:1") && s.stable_on("worker", "worker:1")).await);
    sim.set_image(API, "nginx:2");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:2")).await);

    // production breaks on nginx:2: back to the previous release, now
    let pin = sim.controller.pin_to(&Sim::key(API), &RollbackTo::Previous, "bob via cli").await.expect("pinned");
    assert_eq!(pin.commit, "c0001");
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:3")).await, "{}", sim.seed_note());
    let svc = sim.world.service(crate::sim::REGION, "prod", "api").expect("the service");
    let images = sim.world.task_definition_images(crate::sim::REGION, svc.task_definition.as_deref().expect("a task definition"));
    assert_eq!(images, vec!["nginx:1".to_string()], "the previous release's image runs again");
    assert_eq!(status(&sim, API), AppStatus::Pinned);

    // a head that does not touch the api leaves it pinned
    sim.set_image(WORKER, "worker:2");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(WORKER) && s.stable_on("worker", "worker:2")).await);
    sim.run_until(2 * MINUTES, |_| false).await;
    assert!(sim.stable_on("api", "api:3") && status(&sim, API) == AppStatus::Pinned, "{:?}", status(&sim, API));
    // nor does a restart
    sim.restart().await;
    sim.run_until(2 * MINUTES, |_| false).await;
    assert!(sim.stable_on("api", "api:3") && status(&sim, API) == AppStatus::Pinned);

    // one that changes the api's files releases the pin
    sim.set_image(API, "nginx:4");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:4")).await, "{}", sim.seed_note());
    assert_eq!(status(&sim, API), AppStatus::Synced);
    assert!(
        sim.history(API).iter().any(|h| h.contains("pin at commit c0001 released: a newer commit changed the app's files")),
        "{:?}",
        sim.history(API)
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_to_is_refused_while_a_deployment_is_in_flight_and_unpin_follows_the_head_again() {
    let mut sim = Sim::new();
    sim.add_app(API, "api", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:1")).await);
    let e = sim.controller.pin_to(&Sim::key(API), &RollbackTo::Previous, "bob").await.unwrap_err().to_string();
    assert!(e.contains("no earlier successful deployment"), "{e}");
    sim.set_image(API, "nginx:2");
    sim.commit();
    assert!(sim.run_until(MINUTES, |s| !s.idle(API)).await);
    let e = sim.controller.pin_to(&Sim::key(API), &RollbackTo::Previous, "bob").await.unwrap_err().to_string();
    assert!(e.contains("has a deployment in flight; `gitmoxi rollback prod/api/api` (without --to)"), "{e}");
    assert!(
        sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:2")).await,
        "{:?} {:?}",
        status(&sim, API),
        sim.history(API)
    );
    // by commit (the sim's commit ids are short names, not hex: built here, not parsed)
    let e = sim.controller.pin_to(&Sim::key(API), &RollbackTo::Commit("c0009".into()), "bob").await.unwrap_err().to_string();
    assert!(e.contains("no successful deployment of commit c0009"), "{e}");
    sim.controller.pin_to(&Sim::key(API), &RollbackTo::Commit("c0001".into()), "bob").await.expect("pinned");
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:3")).await);
    sim.controller.unpin(&Sim::key(API)).await.expect("unpinned");
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:4")).await, "the head's nginx:2 again");
    assert_eq!(status(&sim, API), AppStatus::Synced);
    assert!(sim.controller.unpin(&Sim::key(API)).await.unwrap_err().to_string().contains("is not pinned"));
}

/// Review finding: an operator's emergency rollback (`rollback --to`) is not held by a freeze.
#[tokio::test(start_paused = true)]
async fn a_freeze_does_not_hold_an_emergency_rollback_to_an_earlier_release() {
    let mut sim = Sim::new();
    sim.add_app(API, "api", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:1")).await);
    sim.set_image(API, "nginx:2");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:2")).await);
    let now = sim.clock.now_ms();
    let freeze = Freeze {
        name: "year end".into(),
        reason: "holidays".into(),
        repo: "*".into(),
        branch: "*".into(),
        prefix: "*".into(),
        window: FreezeWindow::Range { from_ms: now, until_ms: now + 24 * 3_600_000 },
    };
    sim.with_freezes(vec![freeze]).await;
    sim.controller.pin_to(&Sim::key(API), &RollbackTo::Previous, "bob via cli").await.expect("pinned");
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(API) && s.stable_on("api", "api:3")).await, "{:?}", status(&sim, API));
    assert_eq!(status(&sim, API), AppStatus::Pinned);
}
