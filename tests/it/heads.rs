//! The one owner of the branch heads: no interleaving of replans and newer heads puts an older
//! head back, and a removed repository's head stays forgotten.

use gitmoxi::clock::Clock;
use gitmoxi::controller::heads::LoadedHead;
use gitmoxi::controller::{Controller, RepoPolicy};
use gitmoxi::metrics::Metrics;
use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::spec::Snapshot;
use gitmoxi_deploy::spec::{load_snapshot, MemTree, RenderContext};
use gitmoxi_state::Store;
use gitmoxi_testing::fake::FakeWorld;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn snapshot(image: &str) -> Snapshot {
    let tree = MemTree::new().with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "desiredCount": 1}"#).with(
        "svc/web_taskdef.json",
        &format!(r#"{{"family": "web", "containerDefinitions": [{{"name": "web", "image": "{image}", "memory": 128}}]}}"#),
    );
    load_snapshot(&tree, &RenderContext::new("us-east-1".into()))
}

fn policy() -> RepoPolicy {
    RepoPolicy { max_prune: 3, max_prune_percent: 25, drift: Default::default(), adopt_untagged: false }
}

fn loaded(commit: &str, source: &CancellationToken) -> LoadedHead {
    LoadedHead {
        repo: "r".into(),
        branch: "main".into(),
        commit: commit.into(),
        snapshot: snapshot(commit),
        policy: policy(),
        source: source.clone(),
    }
}

fn controller() -> Arc<Controller> {
    let settings = crate::support::controller_settings(1, 7);
    Controller::new(Store::temporary().expect("store"), FakeWorld::new().provider(), Clock::starting_at(0), Metrics::new(), settings)
}

#[tokio::test]
async fn a_replan_racing_a_newer_head_never_puts_the_older_head_back() {
    let controller = controller();
    let stop = CancellationToken::new();
    let owner = tokio::spawn(controller.clone().run(stop.clone()));
    let source = CancellationToken::new();
    let key = AppKey { repo: "r".into(), branch: "main".into(), prefix: "svc/web".into() };
    controller.load_head(loaded("c0", &source)).await.expect("first head");
    for n in 1..=40 {
        // replans queued before and after a newer head, from several tasks at once: the
        // interleaving that used to re-apply the head a replan had read before the newer one
        let replans: Vec<_> = (0..4)
            .map(|_| {
                let c = controller.clone();
                tokio::spawn(async move { c.request_replan("r", "main").await })
            })
            .collect();
        let newest = format!("c{n}");
        controller.load_head(loaded(&newest, &source)).await.expect("newer head");
        for r in replans {
            r.await.expect("task").expect("sent");
        }
        controller.replan_and_wait("r", "main").await.expect("replanned");
        assert_eq!(controller.head("r", "main").map(|h| h.commit.clone()), Some(newest.clone()), "round {n}");
        let entry = controller.store.app(&key).expect("store").expect("app");
        assert_eq!(entry.head_commit, Some(newest), "the stored plan follows the newest head");
    }
    stop.cancel();
    owner.await.expect("owner ends");
}

#[tokio::test]
async fn a_head_loaded_by_a_stopped_source_is_not_installed_after_the_forget() {
    let controller = controller();
    let stop = CancellationToken::new();
    let owner = tokio::spawn(controller.clone().run(stop.clone()));
    let source = CancellationToken::new();
    controller.load_head(loaded("c0", &source)).await.expect("head");
    controller.request_forget("r", "main").await.expect("sent");
    source.cancel();
    controller.load_head(loaded("c1", &source)).await.expect("answered");
    controller.replan_and_wait("r", "main").await.expect("replanned");
    assert!(controller.head("r", "main").is_none(), "a removed repository's head stays forgotten");
    stop.cancel();
    owner.await.expect("owner ends");
}
