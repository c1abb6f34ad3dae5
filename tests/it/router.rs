//! Every API endpoint behind the bearer token: refused without it or with a wrong one, answered
//! with it; bad JSON is a 400 that says what is wrong; a body over 1 MiB is a 413.

use gitmoxi::clock::Clock;
use gitmoxi::controller::Controller;
use gitmoxi::http::webhooks::Webhooks;
use gitmoxi::http::{router, HttpState};
use gitmoxi::metrics::Metrics;
use gitmoxi::repos::Repos;
use gitmoxi_state::Store;
use gitmoxi_testing::fake::FakeWorld;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "router-test-token";

pub async fn serve() -> (String, CancellationToken, Arc<Repos>) {
    serve_with(Vec::new()).await
}

/// A server whose `/api/v1` needs no token from `tokenless` networks.
async fn serve_with(tokenless: Vec<ipnet::IpNet>) -> (String, CancellationToken, Arc<Repos>) {
    serve_with_access(tokenless, gitmoxi::http::access::Access::single(Some(TOKEN.into()))).await
}

/// A server with these tokens and approvers.
pub async fn serve_with_access(
    tokenless: Vec<ipnet::IpNet>,
    access: gitmoxi::http::access::Access,
) -> (String, CancellationToken, Arc<Repos>) {
    let world = FakeWorld::new();
    let settings = crate::support::controller_settings(2, 3);
    let controller = Controller::new(Store::temporary().unwrap(), world.provider(), Clock::system(), Metrics::new(), settings);
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap().keep();
    let repos = Repos::new(controller.clone(), dir.clone(), Duration::from_secs(3600), shutdown.clone(), Default::default());
    repos.start(&[]).unwrap();
    let webhooks = Arc::new(Webhooks { github_secret: Some("s".into()), gitlab_token: Some("t".into()), slack: None });
    let app = router(HttpState {
        controller,
        access: Arc::new(access),
        webhooks,
        repos: repos.clone(),
        state_dir: dir,
        llm: None,
        allowed_hosts: Default::default(),
        gmctl_tokenless_networks: Arc::new(tokenless),
        public_url: None,
        ui: gitmoxi::http::ui::shared(),
        pipelines: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gitmoxi::http::serve::serve(listener, app, shutdown.clone()));
    (url, shutdown, repos)
}

#[tokio::test]
async fn every_api_endpoint_needs_the_token_and_explains_bad_bodies() {
    let (url, shutdown, _repos) = serve().await;
    let client = reqwest::Client::new();
    let endpoints: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::GET, "/api/v2/apps", None),
        (Method::GET, "/api/v2/apps/prod/web/web", None),
        (Method::GET, "/api/v2/deployments?limit=5", None),
        (Method::GET, "/api/v2/deployments/dep-1", None),
        (Method::GET, "/api/v2/deployments/dep-1/diagnosis", None),
        (Method::POST, "/api/v2/commands", Some(r#"{"command": "sync"}"#)),
        (Method::GET, "/api/v2/repos", None),
        (Method::GET, "/api/v2/commits?n=5", None),
        (Method::POST, "/api/v2/repos", Some(r#"{"repo_url": "https://example.invalid/a.git", "branches": ["main"]}"#)),
        (Method::DELETE, "/api/v2/repos/a", None),
        (Method::GET, "/api/v1/repositories", None),
        (Method::POST, "/api/v1/repositories/add", Some(r#"{"repo_url": "https://example.invalid/b.git", "branches": ["main"]}"#)),
        (Method::DELETE, "/api/v1/repositories/delete?repo_url=https://example.invalid/b.git", None),
        (Method::POST, "/api/v1/deployments/ecs/query", Some("{}")),
        (Method::GET, "/api/v1/commits", None),
        (Method::POST, "/api/v1/commits/deploy", Some(r#"{"repo_url": "https://example.invalid/x.git"}"#)),
        (Method::POST, "/api/v1/commits/dryrun", Some(r#"{"repo_url": "https://example.invalid/x.git"}"#)),
        (Method::GET, "/api/v1/commits/abc", None),
        (Method::GET, "/api/v1/taskset?taskset_arn=arn:aws:ecs:us-east-1:1:task-set/c/s/ecs-svc/1", None),
        (Method::POST, "/api/v1/taskset/rebalance", Some(r#"{"service_arn": "arn:aws:ecs:us-east-1:1:service/c/s", "shift_all": true}"#)),
        (Method::POST, "/api/v1/commits/riskiq", Some(r#"{"repo_url": "https://example.invalid/x.git", "branch": "main"}"#)),
        (Method::GET, "/api/v1/riskiq?commit_hash=abcdef1", None),
        (Method::POST, "/api/v1/deployments/k8s/query", Some("{}")),
    ];
    for (method, path, body) in &endpoints {
        let send = |auth: Option<&str>| {
            let mut r = client.request(method.clone(), format!("{url}{path}")).header("content-type", "application/json");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            if let Some(b) = body {
                r = r.body(b.to_string());
            }
            r.send()
        };
        assert_eq!(send(None).await.unwrap().status().as_u16(), 401, "{method} {path} without a token");
        assert_eq!(send(Some("Bearer nope")).await.unwrap().status().as_u16(), 401, "{method} {path} with a wrong token");
        let ok = send(Some(&format!("Bearer {TOKEN}"))).await.unwrap();
        let status = ok.status().as_u16();
        assert!(status != 401 && status < 500 || status == 503, "{method} {path} with the token: {status}");
        let answer: serde_json::Value = ok.json().await.unwrap_or(serde_json::Value::Null);
        if status >= 400 {
            assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: errors explain themselves: {answer}");
        }
        if *method == Method::POST {
            let bad = client
                .request(method.clone(), format!("{url}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap();
            assert_eq!(bad.status().as_u16(), 400, "{method} {path} with bad JSON");
            let answer: serde_json::Value = bad.json().await.unwrap();
            assert!(answer["error"].as_str().unwrap().len() > 10, "{answer}");
            let huge = client
                .request(method.clone(), format!("{url}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024])
                .send()
                .await
                .unwrap();
            assert_eq!(huge.status().as_u16(), 413, "{method} {path} with 2 MiB");
        }
    }
    // health and metrics stay open; webhooks use their own secrets
    assert_eq!(client.get(format!("{url}/healthz")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client.get(format!("{url}/metrics")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client.post(format!("{url}/webhooks/gitlab")).body("{}").send().await.unwrap().status().as_u16(), 401);
    shutdown.cancel();
}

/// `[gmctl] tokenless_networks` opens `/api/v1` to the networks it names and nothing else: a
/// caller outside them still needs the token, and `/api/v2` always does.
#[tokio::test]
async fn gmctl_calls_need_no_token_only_from_the_configured_networks() {
    let client = reqwest::Client::new();
    let (url, shutdown, _repos) = serve_with(vec!["10.0.0.0/8".parse().unwrap()]).await;
    let r = client.get(format!("{url}/api/v1/repositories")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "loopback is not in 10.0.0.0/8");
    shutdown.cancel();
    let (url, shutdown, _repos) = serve_with(vec!["127.0.0.0/8".parse().unwrap()]).await;
    assert_eq!(client.get(format!("{url}/api/v1/repositories")).send().await.unwrap().status().as_u16(), 200);
    let r = client.post(format!("{url}/api/v1/deployments/ecs/query")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(client.get(format!("{url}/api/v2/apps")).send().await.unwrap().status().as_u16(), 401, "v2 keeps the token");
    assert_eq!(client.get(format!("{url}/api/v1x")).send().await.unwrap().status().as_u16(), 401, "only /api/v1/… opens");
    shutdown.cancel();
}

/// Issue 13, high: an API caller names the controller's own secrets as a repository's token and
/// a host they control as its URL. Every variant is refused with the reason, and the host never
/// hears from gitmoxi.
#[tokio::test]
async fn an_api_caller_cannot_send_the_controllers_secrets_to_a_host_they_control() {
    let (url, shutdown, repos) = serve().await;
    // the caller's host: records every connection it gets
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}", trap.local_addr().unwrap());
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = trap.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let attempts = [
        (format!("{trap_url}/a.git"), "env:AWS_SECRET_ACCESS_KEY", "configuration file only"),
        (format!("{trap_url}/b.git"), "GITHUB_TOKEN", "configuration file only"),
        (format!("{trap_url}/c.git"), "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-db", "accepts no access_token_arn"),
        (
            "https://evil.example/d.git".to_string(),
            "arn:aws:ssm:us-east-1:123456789012:parameter/github-token",
            "accepts no access_token_arn",
        ),
        (format!("{trap_url}/e.git"), "", "plain http"),
        ("file:///etc".to_string(), "", "allow_local"),
        ("/var/lib/gitmoxi".to_string(), "", "allow_local"),
        ("https://user:hunter2@github.com/acme/f.git".to_string(), "", "password"),
    ];
    let client = reqwest::Client::new();
    for (path, body_of) in [
        (
            "/api/v1/repositories/add",
            (|u: &str, t: &str| serde_json::json!({"repo_url": u, "branches": ["main"], "access_token_arn": t}))
                as fn(&str, &str) -> serde_json::Value,
        ),
        ("/api/v2/repos", |u: &str, t: &str| serde_json::json!({"repo_url": u, "branches": ["main"], "access_token_arn": t})),
    ] {
        for (repo_url, token, reason) in &attempts {
            let r = client
                .post(format!("{url}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .json(&body_of(repo_url, token))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let answer: serde_json::Value = r.json().await.unwrap();
            assert_eq!(status, 400, "{path} {repo_url} {token}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.contains(reason), "{path} {repo_url} {token}: {error}");
            assert!(!error.contains("hunter2"), "the password is not echoed: {error}");
        }
    }
    assert!(repos.list().is_empty(), "nothing was added");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "gitmoxi never contacted the caller's host");
    shutdown.cancel();
}

/// Issue 13, medium: DNS rebinding. A page on another site resolves its own name to 127.0.0.1
/// and drives the default server (loopback, no token) from the operator's browser. Requests
/// naming a foreign Host are refused, and so are state-changing requests from a foreign Origin.
#[tokio::test]
async fn a_rebound_host_name_and_a_foreign_origin_are_refused() {
    let (url, shutdown, _repos) = serve().await;
    let port = url.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::new();
    let foreign =
        client.get(format!("{url}/api/v2/apps")).header("host", format!("evil.example:{port}")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(foreign.status().as_u16(), 421);
    let health = client.get(format!("{url}/healthz")).header("host", "attacker.example").send().await.unwrap();
    assert_eq!(health.status().as_u16(), 421, "even unauthenticated routes");
    let ok = client.get(format!("{url}/api/v2/apps")).header("host", format!("localhost:{port}")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let cross = client
        .post(format!("{url}/api/v2/commands"))
        .header("origin", "https://evil.example")
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"command": "sync"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    let same = client
        .post(format!("{url}/api/v2/commands"))
        .header("origin", format!("http://127.0.0.1:{port}"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"command": "sync"}))
        .send()
        .await
        .unwrap();
    assert_ne!(same.status().as_u16(), 403, "the server's own page may post");
    shutdown.cancel();
}

/// The real `gitmoxi serve` on `repo`, listening on `port`, with AWS pointed at a closed port
/// (these tests need no AWS), started through `sh` with `ulimit -n open_files` when given.
fn serve_binary(repo: &crate::support::TestRepo, state: &std::path::Path, port: u16, open_files: Option<u32>) -> std::process::Child {
    let limit = open_files.map_or_else(String::new, |n| format!("ulimit -n {n} && "));
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{limit}exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_gitmoxi"))
        .args(["serve", "--repo"])
        .arg(repo.path())
        .args(["--branch", "main", "--poll-interval", "300ms", "--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
        .arg(state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    unreachable_aws(&mut command).spawn().expect("gitmoxi serve starts")
}

/// AWS at a closed loopback port, one attempt: a serve that needs no AWS answers at once.
fn unreachable_aws(command: &mut std::process::Command) -> &mut std::process::Command {
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
}

/// Issue 13, medium: 1,100 idle connections made /healthz time out (and, at the common 1,024
/// open files, broke the Git fetch) before any authentication. The real binary runs with 1,024
/// open files; under a slowloris of 2,000 connections that never send a header it keeps
/// answering and keeps fetching: idle connections are closed after the header-read timeout and
/// open connections stay below the descriptor limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_of_2000_idle_connections_does_not_stop_the_api_or_the_git_fetch() {
    let repo = crate::support::TestRepo::new();
    repo.write("README.md", "deploys");
    repo.commit("empty");
    let state = tempfile::tempdir().unwrap();
    let port = crate::moto::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve_binary(&repo, state.path(), port, Some(1024));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let up = std::time::Instant::now();
    while client.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(up.elapsed() < Duration::from_secs(30), "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut idle = Vec::new();
    for _ in 0..2000 {
        // some connects wait in the kernel's backlog: keep what connects within a moment
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(100), tokio::net::TcpStream::connect(("127.0.0.1", port))).await
        {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 1100, "the attack opened {} connections", idle.len());
    let started = std::time::Instant::now();
    let health = client.get(format!("{url}/healthz")).send().await.expect("/healthz answers under the attack");
    assert_eq!(health.status().as_u16(), 200);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(15), "/healthz took {waited:?}");
    // the Git fetch still works: a new app committed now shows up
    repo.write_all(&crate::support::ecs_app("prod/web/web", "web", "prod", "nginx:1", 1, "{}"));
    repo.commit("an app");
    let seen = std::time::Instant::now();
    loop {
        let apps: serde_json::Value = client.get(format!("{url}/api/v2/apps")).send().await.unwrap().json().await.unwrap_or_default();
        if apps.as_array().is_some_and(|a| a.iter().any(|x| x["app"] == "prod/web/web")) {
            break;
        }
        assert!(seen.elapsed() < Duration::from_secs(20), "the head with the new app was never loaded: {apps}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // an idle connection is closed by the server after the header-read timeout
    let mut first = idle.swap_remove(idle.len() - 1);
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut first, &mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle connection is closed: {closed:?}");
    eprintln!("/healthz answered in {waited:?} under {} idle connections at 1,024 open files", idle.len() + 1);
    drop(idle);
    let _ = server.kill();
    let _ = server.wait();
}

/// Issue 13, high: a template that doubles a string in repeated sets grows exponentially before
/// any size bound sees it, and an allocation failure aborts a Rust process (every restart would
/// abort again). `serve` renders heads in memory-capped workers: the bomb's app is invalid with
/// the reason, the other app loads, and the controller's own peak memory stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exponential_template_kills_a_render_worker_never_the_controller() {
    let repo = crate::support::TestRepo::new();
    repo.write_all(&crate::support::ecs_app("prod/web/web", "web", "prod", "nginx:1", 1, "{}"));
    repo.write_all(&crate::support::ecs_app("prod/bomb/bomb", "bomb", "prod", "nginx:1", 1, "{}"));
    let doublings = "{% set a = a ~ a %}".repeat(40);
    repo.write(
        "prod/bomb/bomb_taskdef.json",
        &format!("{{% set a = \"x\" * 1000000 %}}{doublings}{{\"family\": \"bomb\", \"cpu\": \"{{{{ a | length }}}}\"}}"),
    );
    repo.commit("a bomb beside a good app");
    let state = tempfile::tempdir().unwrap();
    let port = crate::moto::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve_binary(&repo, state.path(), port, None);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let started = std::time::Instant::now();
    let apps = loop {
        let apps: serde_json::Value = match client.get(format!("{url}/api/v2/apps")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if apps.as_array().is_some_and(|a| a.len() == 2) {
            break apps;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "the head was not loaded: {apps}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let bomb = apps.as_array().unwrap().iter().find(|a| a["app"] == "prod/bomb/bomb").expect("the bomb app is listed");
    let problems = bomb["problems"].to_string();
    assert!(problems.contains("render worker") || problems.contains("rendering this app"), "{problems}");
    eprintln!("the bomb app: {problems}");
    let web = apps.as_array().unwrap().iter().find(|a| a["app"] == "prod/web/web").expect("the good app is listed");
    assert_eq!(web["problems"], serde_json::json!([]), "{web}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).expect("the controller is alive");
    let peak_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    eprintln!("controller peak RSS with the bomb in its head: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 200 * 1024, "the controller itself peaked at {} MiB", peak_kib / 1024);
    assert!(server.try_wait().unwrap().is_none(), "the controller is still running");
    let _ = server.kill();
    let _ = server.wait();
}

/// Issue 11: `gitmoxi serve` restarts itself once (same pid) with one malloc arena — 93.9 MiB
/// instead of 115.7 at 2,000 apps — unless the operator set `MALLOC_ARENA_MAX`, which it keeps;
/// the API answers either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_with_one_malloc_arena_unless_the_operator_chose_otherwise() {
    let repo = crate::support::TestRepo::new();
    repo.write("README.md", "deploys");
    repo.commit("empty");
    for preset in [None, Some("4")] {
        let state = tempfile::tempdir().unwrap();
        let port = crate::moto::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gitmoxi"));
        command
            .args(["serve", "--repo"])
            .arg(repo.path())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(state.path())
            .env_remove("MALLOC_ARENA_MAX")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        unreachable_aws(&mut command);
        if let Some(v) = preset {
            command.env("MALLOC_ARENA_MAX", v);
        }
        let mut child = command.spawn().expect("gitmoxi serve starts");
        let mut healthy = false;
        for _ in 0..100 {
            if reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        assert!(healthy, "serve answers after restarting itself ({preset:?})");
        let want = format!("MALLOC_ARENA_MAX={}", preset.unwrap_or("1"));
        assert!(environ.split(|b| *b == 0).any(|v| v == want.as_bytes()), "the same pid runs with {want}");
    }
}
