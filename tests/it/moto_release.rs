//! Releases against moto through the real server, API and CLI (issue 26): a three-app chain
//! whose middle fails (the dependent blocked, then released by a fixing commit), an emergency
//! rollback of a steady app to the previous release pinned across an unrelated head and
//! released by `gitmoxi unpin`, and a freeze holding a change until `sync --override-freeze`.

use crate::moto::{synced, write_app, Moto, Server};
use crate::support::TestRepo;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

use crate::support::{API, DB, WORKER};

fn depdef(depends_on: &[&str]) -> String {
    crate::support::depdef_depending_on(depends_on, 1, 60)
}

fn chain(repo: &TestRepo, db: &str, api: &str, worker: &str) {
    write_app(repo, DB, "migrate", db);
    write_app(repo, API, "api", api);
    write_app(repo, WORKER, "worker", worker);
    repo.write(&format!("{API}_depdef.json"), &depdef(&[DB]));
    repo.write(&format!("{WORKER}_depdef.json"), &depdef(&[API]));
}

/// `gitmoxi ARGS --server URL` (blocking: call it from `spawn_blocking`).
fn cli(api: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(args).args(["--server", api]).output().expect("gitmoxi runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn run_cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let api = server.api.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || cli(&api, &args.iter().map(String::as_str).collect::<Vec<_>>())).await.expect("the CLI ran")
}

/// The image the service runs now, as ECS describes it.
async fn image_of(ecs: &aws_sdk_ecs::Client, service: &str) -> String {
    let described = ecs.describe_services().cluster("prod").services(service).send().await.expect("describe");
    let td = described.services()[0].task_definition().unwrap_or_default().to_string();
    let def = ecs.describe_task_definition().task_definition(td).send().await.expect("its task definition");
    def.task_definition().and_then(|t| t.container_definitions().first()).and_then(|c| c.image()).unwrap_or_default().to_string()
}

fn history(app: &Value) -> Vec<String> {
    app["history"].as_array().map(|h| h.iter().filter_map(|e| e["message"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_failing_middle_blocks_its_dependent_a_fix_releases_it_and_rollback_to_pins_the_previous_release() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    chain(&repo, "migrate:1", "api:1", "worker:1");
    repo.commit("a chain: migrate, then api, then worker");
    let server = Server::start(&moto, &repo, 100).await;
    let worker = server.wait_app(WORKER, Duration::from_secs(120), synced).await;
    assert!(history(&worker).iter().any(|h| h.contains("waits for prod/api/api (dependsOn)")), "{worker:#}");

    // the api's new image fails: it rolls back, the worker of the same commit never starts
    chain(&repo, "migrate:2", "fail:2", "worker:2");
    repo.commit("all three; the api's image fails");
    server.wait_app(API, Duration::from_secs(120), |a| a["last_outcome"] == "rolled_back" && a["phase"].is_null()).await;
    let blocked = server.wait_app(WORKER, Duration::from_secs(30), |a| a["status"] == "Blocked").await;
    assert!(blocked["held"].as_str().unwrap_or_default().contains("blocked: dependency prod/api/api rolled back"), "{blocked:#}");
    assert_eq!(image_of(&ecs, "migrate").await, "migrate:2", "the first wave went");
    assert_eq!(image_of(&ecs, "api").await, "api:1", "the api is back on its last good image");
    assert_eq!(image_of(&ecs, "worker").await, "worker:1", "the blocked worker was not touched");

    // a commit that fixes the api releases the worker
    write_app(&repo, API, "api", "api:3");
    repo.write(&format!("{API}_depdef.json"), &depdef(&[DB]));
    repo.commit("api: fixed");
    server.wait_app(WORKER, Duration::from_secs(120), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert_eq!(image_of(&ecs, "api").await, "api:3");
    assert_eq!(image_of(&ecs, "worker").await, "worker:2");

    // worker:2 breaks production: back to the previous release now, from the CLI
    let (code, out, err) = run_cli(&server, &["rollback", WORKER, "--to", "previous"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("stays pinned there until `gitmoxi unpin prod/worker/worker`"), "{out}");
    let pinned = server.wait_app(WORKER, Duration::from_secs(60), |a| a["status"] == "Pinned").await;
    let page = reqwest::get(format!("{}/ui/app?app={WORKER}", server.api)).await.expect("the page").text().await.expect("text");
    assert!(page.contains("id=\"pinned\"") && page.contains("data-command=\"unpin\""), "{page}");
    assert_eq!(image_of(&ecs, "worker").await, "worker:1", "the previous release runs again");
    assert!(pinned["pinned"]["by"].as_str().unwrap_or_default().ends_with("via cli"), "{pinned:#}");
    let (_, status, _) = run_cli(&server, &["status"]).await;
    assert!(status.lines().any(|l| l.starts_with(WORKER) && l.contains("Pinned") && l.contains("pinned at")), "{status}");
    let (code, out, _) = run_cli(&server, &["rollback", WORKER, "--to", "HEAD~1"]).await;
    assert_ne!(code, 0, "a bad --to is refused: {out}");

    // a head that does not touch the worker leaves the pin in place
    write_app(&repo, DB, "migrate", "migrate:3");
    let head = repo.commit("migrate only");
    server.wait_app(DB, Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == head.as_str()).await;
    assert_eq!(server.app(WORKER).await.unwrap()["status"], "Pinned");
    assert_eq!(image_of(&ecs, "worker").await, "worker:1");

    // unpin: the branch head's worker:2 again
    let (code, out, err) = run_cli(&server, &["unpin", WORKER]).await;
    assert_eq!(code, 0, "{out}{err}");
    server.wait_app(WORKER, Duration::from_secs(60), |a| synced(a) && a["pinned"].is_null()).await;
    assert_eq!(image_of(&ecs, "worker").await, "worker:2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_freeze_holds_a_change_until_an_override_from_the_cli_which_is_recorded() {
    use gitmoxi_deploy::release::freeze::FreezeConfig;
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, API, "api", "api:1");
    repo.commit("api");
    // frozen from the start, for a day; the first deploy is a change too
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let at = |secs: u64| gitmoxi_deploy::release::freeze::format_rfc3339(secs * 1000);
    let freeze = FreezeConfig {
        name: Some("release weekend".into()),
        reason: "the quarterly release".into(),
        prefix: Some("prod/*".into()),
        from: Some(at(now - 60)),
        until: Some(at(now + 86_400)),
        ..FreezeConfig::default()
    }
    .check(1)
    .expect("a valid freeze");
    let server = Server::start_with_freezes(&moto, &repo, vec![freeze]).await;
    let frozen = server.wait_app(API, Duration::from_secs(30), |a| a["status"] == "Frozen").await;
    let page = reqwest::get(format!("{}/ui/app?app={API}", server.api)).await.expect("the page").text().await.expect("text");
    assert!(page.contains("frozen by &#x27;release weekend&#x27;") || page.contains("frozen by 'release weekend'"), "{page}");
    assert!(page.contains("data-command=\"override_freeze\""), "{page}");
    assert!(frozen["held"].as_str().unwrap_or_default().contains("frozen by 'release weekend'"), "{frozen:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = ecs.list_services().cluster("prod").send().await.expect("list");
    assert!(listed.service_arns().is_empty(), "nothing was created under the freeze: {listed:?}");

    let (code, out, err) = run_cli(&server, &["sync", "--override-freeze", API]).await;
    assert_eq!(code, 0, "{out}{err}");
    let done = server.wait_app(API, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert!(history(&done).iter().any(|h| h.starts_with("freeze overridden by ") && h.contains("via cli")), "{done:#}");
    assert_eq!(image_of(&ecs, "api").await, "api:1");
    server.stop().await;
}

/// A dev → prod pipeline's stages: dev's apps under `dev/`, prod's under `prod/` of another
/// repository; prod needs `soak` in dev and alice's approval.
fn dev_to_prod(soak: Duration, approvers: &[&str]) -> gitmoxi_deploy::release::pipeline::Pipeline {
    use gitmoxi_deploy::release::pipeline::{Pipeline, Stage};
    let stage = |repo: &str, folder: &str| Stage::new(repo, "main", folder);
    let mut prod = stage("prod", "prod");
    prod.soak = soak;
    prod.approvers = approvers.iter().map(|a| a.to_string()).collect();
    prod.required_approvals = usize::from(!approvers.is_empty());
    Pipeline { name: "web".into(), stages: vec![stage("deploys", "dev"), prod] }
}

/// The dev repository (cluster `dev`) and a bare prod repository (cluster `prod`), each with
/// web on `web:1`; answers the dev checkout, the bare prod repository and its directory.
fn two_environments(moto: &Moto) -> (TestRepo, std::path::PathBuf, tempfile::TempDir) {
    let dev = TestRepo::new();
    dev.write("infra/terraform_output.json", &moto.infra("dev"));
    write_app(&dev, "dev/web/web", "web", "web:1");
    dev.commit("dev: web 1");
    let work = TestRepo::new();
    work.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&work, "prod/web/web", "web", "web:1");
    work.commit("prod: web 1");
    let dir = tempfile::tempdir().expect("a directory");
    let bare = dir.path().join("prod.git");
    let out = Command::new("git").args(["clone", "-q", "--bare"]).arg(work.path()).arg(&bare).output().expect("git runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dev, bare, dir)
}

/// `git --git-dir BARE ARGS`, trimmed.
fn bare_git(bare: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("--git-dir").arg(bare).args(args).output().expect("git runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The releases the API lists (none while the server is not up).
async fn releases(api: &str) -> Vec<Value> {
    let Ok(response) = reqwest::get(format!("{api}/api/v2/releases")).await else { return Vec::new() };
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    answer["releases"].as_array().cloned().unwrap_or_default()
}

async fn wait_release(api: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < limit {
        last = releases(api).await;
        if let Some(r) = last.iter().find(|r| done(r)) {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no release reached the expected state in {limit:?}: {last:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_dev_to_prod_pipeline_soaks_waits_for_an_approver_and_pushes_the_release_to_prod() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    let (dev, bare, _dir) = two_environments(&moto);
    let before = bare_git(&bare, &["rev-list", "--count", "main"]);
    let pipeline = dev_to_prod(Duration::from_secs(3), &["alice"]);
    let server = Server::start_with_pipelines(&moto, &dev, vec![("prod".into(), bare.display().to_string())], vec![pipeline], None).await;
    server.wait_app("dev/web/web", Duration::from_secs(60), synced).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;

    write_app(&dev, "dev/web/web", "web", "web:2");
    let commit = dev.commit("web 2");
    let release = wait_release(&server.api, Duration::from_secs(90), |r| {
        r["blocked_by"].as_array().is_some_and(|b| b.iter().any(|x| x.as_str().is_some_and(|s| s.starts_with("approval: 1 more of alice"))))
    })
    .await;
    let id = release["id"].as_str().expect("an id").to_string();
    assert_eq!(release["commit"], commit.as_str());
    assert_eq!(release["apps"], serde_json::json!(["dev/web/web"]));
    assert!(release["stages"][0]["healthy_at_ms"].is_u64(), "healthy in dev: {release:#}");
    assert_eq!(bare_git(&bare, &["rev-list", "--count", "main"]), before, "nothing reached prod before the approval");
    // the page's Repositories shows the release and what it waits for
    let page = reqwest::get(format!("{}/ui/repos", server.api)).await.expect("the page").text().await.expect("text");
    assert!(page.contains(&id) && page.contains("approval: 1 more of alice"), "{page}");
    assert_eq!(image_of(&ecs, "web").await, "web:1", "prod still runs web 1");

    // only a named approver counts
    let (code, _, err) = run_cli_as(&server, "mallory", &["releases", "approve", &id, "prod"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("mallory is not an approver of prod@main:prod (approvers: alice)"), "{err}");
    let (code, out, err) = run_cli_as(&server, "alice", &["releases", "approve", &id, "prod"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("promotion to prod@main:prod approved by alice"), "{out}");

    let done = wait_release(&server.api, Duration::from_secs(90), |r| r["id"] == id.as_str() && r["outcome"]["outcome"] == "done").await;
    let pushed = done["stages"][1]["commit"].as_str().expect("the prod commit").to_string();
    assert_eq!(done["stages"][1]["approvals"][0][0], "alice");
    // the push, as the prod repository holds it: dev's files under prod/, one commit, its trailer
    assert_eq!(bare_git(&bare, &["rev-parse", "main"]), pushed);
    let input = bare_git(&bare, &["show", "main:prod/web/web_input.json"]);
    assert!(input.contains("web:2"), "{input}");
    assert_eq!(
        bare_git(&bare, &["show", "main:infra/terraform_output.json"]),
        bare_git(&bare, &["show", "main~1:infra/terraform_output.json"]),
        "prod's own files are untouched"
    );
    let message = bare_git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains(&format!("Gitmoxi-Release: {id} -> prod@main:prod")), "{message}");
    assert_eq!(image_of(&ecs, "web").await, "web:2", "prod runs the release");
    server.stop().await;
}

/// `gitmoxi ARGS --server URL` as the local user `user`.
async fn run_cli_as(server: &Server, user: &str, args: &[&str]) -> (i32, String, String) {
    let api = server.api.clone();
    let (user, args): (String, Vec<String>) = (user.to_string(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
            .args(&args)
            .args(["--server", &api])
            .env("USER", &user)
            .output()
            .expect("gitmoxi runs");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    })
    .await
    .expect("the CLI ran")
}

/// The real `gitmoxi serve` with two repositories and a dev → prod pipeline, against moto.
fn serve_pipeline(
    moto: &Moto,
    dev: &std::path::Path,
    bare: &std::path::Path,
    state: &std::path::Path,
    port: u16,
    failpoint: Option<&str>,
) -> std::process::Child {
    let config = format!(
        r#"state_dir = "{state}"
listen = "127.0.0.1:{port}"
region = "us-east-1"
aws_max_attempts = 1

[[repos]]
name = "deploys"
url = "{dev}"
branches = ["main"]
poll_interval = "300ms"

[[repos]]
name = "prod"
url = "{bare}"
branches = ["main"]
poll_interval = "300ms"

[[pipelines]]
name = "web"
[[pipelines.stages]]
repo = "deploys"
folder = "dev"
[[pipelines.stages]]
repo = "prod"
folder = "prod"
"#,
        state = state.display(),
        dev = dev.display(),
        bare = bare.display()
    );
    let file = state.join("gitmoxi.toml");
    std::fs::write(&file, config).expect("the configuration is written");
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitmoxi"));
    command
        .args(["serve", "--config"])
        .arg(&file)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("GITMOXI_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(point) = failpoint {
        command.env("GITMOXI_FAILPOINT", point);
    }
    command.spawn().expect("gitmoxi serve starts")
}

/// Issue 26's crash test: the process dies (abort: what kill -9 leaves) right after its promotion
/// push landed and before it recorded it; started again, it finds its own commit by the trailer
/// and records it — prod's branch has one promotion commit, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_kill_right_after_the_promotion_push_resumes_without_a_second_commit() {
    let moto = Moto::start().await;
    let (dev, bare, _dir) = two_environments(&moto);
    let state = tempfile::tempdir().expect("a state directory");
    let port = crate::moto::free_port();
    let api = format!("http://127.0.0.1:{port}");
    let mut first = serve_pipeline(&moto, dev.path(), &bare, state.path(), port, Some("promotion_pushed"));
    // the pipeline starts from the heads it sees first: wait until both are deployed
    let start = std::time::Instant::now();
    while !releases_ready(&api).await {
        assert!(start.elapsed() < Duration::from_secs(60), "the server did not deploy both environments");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    write_app(&dev, "dev/web/web", "web", "web:2");
    dev.commit("web 2");
    // it pushes, then aborts at the failpoint
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = first.try_wait().expect("wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = first.kill();
                panic!("the server never reached the failpoint after the push");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("waited");
    assert!(!status.success(), "it died at the failpoint: {status:?}");
    let trailer_commits = |bare: &std::path::Path| bare_git(bare, &["log", "--format=%H", "--grep=Gitmoxi-Release: web-", "main"]);
    assert_eq!(trailer_commits(&bare).lines().count(), 1, "the push landed before the crash");

    let mut second = serve_pipeline(&moto, dev.path(), &bare, state.path(), port, None);
    let done = wait_release(&api, Duration::from_secs(90), |r| r["outcome"]["outcome"] == "done").await;
    assert_eq!(done["stages"][1]["commit"].as_str(), Some(bare_git(&bare, &["rev-parse", "main"]).as_str()));
    assert_eq!(trailer_commits(&bare).lines().count(), 1, "no second promotion commit after the restart");
    let _ = second.kill();
    let _ = second.wait();
}

/// Whether both environments' web apps are Synced (the API answers, by repository).
async fn releases_ready(api: &str) -> bool {
    let mut ready = true;
    for (prefix, repo) in [("dev/web/web", "deploys"), ("prod/web/web", "prod")] {
        let app: Option<Value> = match reqwest::get(format!("{api}/api/v2/apps/{prefix}?repo={repo}")).await {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
        ready &= app.is_some_and(|a| synced(&a));
    }
    ready
}

/// A GitHub that takes pull requests: `POST /repos/{owner}/{repo}/pulls` (201 with `html_url`, 422
/// when one is open for the head), `GET …/pulls?head=owner:branch` (the open ones).
async fn pull_request_stub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::extract::{Path, State};
    use axum::routing::post;
    type Shared = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;
    async fn create(
        State(opened): State<Shared>,
        Path((owner, repo)): Path<(String, String)>,
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer pr-token");
        if !authorized || (owner.as_str(), repo.as_str()) != ("acme", "prod") {
            return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"message": "Bad credentials"})));
        }
        let mut opened = opened.lock().unwrap();
        if opened.iter().any(|pr| pr["head"] == body["head"]) {
            return (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(serde_json::json!({"message": "A pull request already exists"})),
            );
        }
        let url = format!("https://github.example/acme/prod/pull/{}", opened.len() + 1);
        opened.push(serde_json::json!({"head": body["head"], "base": body["base"], "title": body["title"], "html_url": url}));
        (axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"html_url": url})))
    }
    async fn list(State(opened): State<Shared>) -> axum::Json<Value> {
        axum::Json(Value::Array(opened.lock().unwrap().clone()))
    }
    let shared: Shared = std::sync::Arc::default();
    let app = axum::Router::new().route("/api/v3/repos/{owner}/{repo}/pulls", post(create).get(list)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v3", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_promotion_by_pull_request_waits_for_the_merge() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    let (dev, bare, _dir) = two_environments(&moto);
    let (api, opened) = pull_request_stub().await;
    std::env::set_var("GITMOXI_TEST_PR_TOKEN", "pr-token");
    let forge = gitmoxi::forge::ForgeTarget {
        forge: gitmoxi::forge::Forge::GitHub,
        api_url: api,
        project: "acme/prod".into(),
        token: gitmoxi::credentials::TokenSource::Env("GITMOXI_TEST_PR_TOKEN".into()),
    };
    let mut pipeline = dev_to_prod(Duration::ZERO, &[]);
    pipeline.stages[1].via = gitmoxi_deploy::release::pipeline::Via::PullRequest;
    let before = bare_git(&bare, &["rev-parse", "main"]);
    let server =
        Server::start_with_pipelines(&moto, &dev, vec![("prod".into(), bare.display().to_string())], vec![pipeline], Some(forge)).await;
    server.wait_app("dev/web/web", Duration::from_secs(60), synced).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;
    write_app(&dev, "dev/web/web", "web", "web:2");
    dev.commit("web 2");
    let waiting = wait_release(&server.api, Duration::from_secs(90), |r| r["stages"][1]["pull_request"].is_string()).await;
    let id = waiting["id"].as_str().expect("an id").to_string();
    let branch = format!("gitmoxi/release/{id}");
    {
        let opened = opened.lock().unwrap();
        assert_eq!(opened.len(), 1, "{opened:?}");
        assert_eq!((opened[0]["head"].as_str(), opened[0]["base"].as_str()), (Some(branch.as_str()), Some("main")));
        assert!(opened[0]["title"].as_str().unwrap_or_default().starts_with(&format!("gitmoxi: promote {id} to prod@main:prod")));
    }
    let blocked = wait_release(&server.api, Duration::from_secs(30), |r| {
        r["blocked_by"].as_array().is_some_and(|b| b.iter().any(|x| x.as_str().is_some_and(|s| s.contains("waits to be merged"))))
    })
    .await;
    assert_eq!(blocked["id"], id.as_str());
    assert_eq!(bare_git(&bare, &["rev-parse", "main"]), before, "nothing is on prod's branch before the merge");
    assert!(bare_git(&bare, &["show", &format!("{branch}:prod/web/web_input.json")]).contains("web:2"));
    // someone merges it (a fast-forward here)
    bare_git(&bare, &["update-ref", "refs/heads/main", &format!("refs/heads/{branch}")]);
    wait_release(&server.api, Duration::from_secs(90), |r| r["id"] == id.as_str() && r["outcome"]["outcome"] == "done").await;
    assert_eq!(image_of(&ecs, "web").await, "web:2");
    assert_eq!(opened.lock().unwrap().len(), 1, "one pull request");
    server.stop().await;
}
