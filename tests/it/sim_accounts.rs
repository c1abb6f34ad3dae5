//! Many accounts in the simulation: the controller's own world and a workload account's world
//! behind its role; what each app deploys lands only in its account; an account whose role does
//! not trust the controller fails its app alone and touches nothing.

use crate::sim::{Sim, MINUTES, REGION};
use crate::support::ecs_app;
use gitmoxi_deploy::record::{FailureCause, Outcome};
use gitmoxi_testing::fake::{FakeAccount, FakeWorld, Knobs};

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 180}}"#;

fn add_app_in(sim: &mut Sim, prefix: &str, service: &str, account: &str) {
    let depdef = format!(r#"{{"environment": {{"account": "{account}"}}, "stabilityCheck": {{"pollInterval": 5, "timeout": 180}}}}"#);
    for (path, content) in ecs_app(prefix, service, "prod", "{{ image }}", 2, &depdef) {
        sim.tree.insert(&path, &content);
    }
    sim.set_image(prefix, "nginx:1");
}

fn workload(id: &str, trusts: bool) -> FakeAccount {
    let world = FakeWorld::new();
    world.set_knobs(Knobs::default());
    world.create_cluster(REGION, "prod");
    FakeAccount { id: id.into(), world, trusts }
}

#[tokio::test(start_paused = true)]
async fn each_app_lands_in_its_own_account_and_an_untrusting_role_fails_only_its_app() {
    let mut sim = Sim::new();
    let b = workload("111111111111", true);
    let c = workload("222222222222", false);
    sim.with_accounts(vec![b.clone(), c.clone()]).await;
    for (path, content) in ecs_app("own/web/web", "own", "prod", "{{ image }}", 2, DEPDEF) {
        sim.tree.insert(&path, &content);
    }
    sim.set_image("own/web/web", "nginx:1");
    add_app_in(&mut sim, "b/web/web", "workload", "111111111111");
    add_app_in(&mut sim, "c/web/web", "denied", "222222222222");
    sim.commit();
    let done = |s: &Sim| ["own/web/web", "b/web/web", "c/web/web"].iter().all(|p| s.idle(p) && s.outcome(p).is_some());
    assert!(sim.run_until(15 * MINUTES, done).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("own/web/web"), Some(Outcome::Succeeded));
    assert_eq!(sim.outcome("b/web/web"), Some(Outcome::Succeeded));
    assert!(sim.world.service(REGION, "prod", "own").is_some(), "the controller's app in its own account");
    assert!(sim.world.service(REGION, "prod", "workload").is_none(), "nothing of the workload app in the controller's account");
    let svc = b.world.service(REGION, "prod", "workload").expect("the workload app in the workload account");
    assert_eq!(svc.running_count, 2);
    assert!(b.world.service(REGION, "prod", "own").is_none());
    // the untrusting account: AssumeRole refused, nothing anywhere
    assert_eq!(sim.outcome("c/web/web"), Some(Outcome::Failed));
    let app = sim.store.app(&Sim::key("c/web/web")).unwrap().unwrap();
    match &app.last_cause {
        Some(FailureCause::AssumeRoleFailed { account, code, message }) => {
            assert_eq!((account.as_str(), code.as_str()), ("222222222222", "AccessDenied"));
            assert!(message.contains("not authorized to perform: sts:AssumeRole"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.world.mutation_count(), 0, "nothing touched in the untrusting account");
    assert!(sim.world.service(REGION, "prod", "denied").is_none(), "and nothing in ours in its place");

    // delete and drift per account: the workload app goes, only its account changes
    sim.policy.max_prune_percent = 50; // one app of three: over the default 25 % prune guard
    sim.remove_app("b/web/web");
    sim.commit();
    let gone = |w: &FakeWorld| w.service(REGION, "prod", "workload").is_none_or(|s| !s.is_active());
    assert!(sim.run_until(10 * MINUTES, |_| gone(&b.world)).await, "{} {:?}", sim.seed_note(), sim.history("b/web/web"));
    assert!(sim.world.service(REGION, "prod", "own").is_some_and(|s| s.is_active()), "the controller's app stays");
}
