//! The binary's offline commands on real Git repositories.

use crate::support::{ecs_app, TestRepo};
use std::process::Command;

fn gitmoxi(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(args).output().expect("binary runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const INPUT: &str = r#"{"ref": {"file": "infra/tf.json", "type": "TERRAFORM"}, "image": "nginx:1"}"#;
const TF: &str = r#"{"subnets": {"value": ["subnet-1"]}, "security_groups": {"value": ["sg-1"]}}"#;

fn repo_with_two_apps() -> TestRepo {
    let repo = TestRepo::new();
    repo.write_all(&ecs_app("prod/web/web", "web", "prod", "{{ image }}", 2, "{}"));
    repo.write("prod/web/web_input.json", INPUT);
    repo.write_all(&ecs_app("prod/api/api", "api", "prod", "{{ image }}", 1, "{}"));
    repo.write("prod/api/api_input.json", INPUT);
    repo.write("infra/tf.json", TF);
    repo.commit("two apps");
    repo
}

#[test]
fn validate_reports_the_bad_app_with_file_and_line_and_exits_non_zero() {
    let repo = repo_with_two_apps();
    repo.write(
        "prod/api/api_taskdef.json",
        "{\n  \"family\": \"api\",\n  \"containerDefinitions\": [{\"name\": \"a\", \"image\": \"{{ imagee }}\"}]\n}",
    );
    repo.write("orphans/x_taskdef.json", "{}");
    let (code, stdout, _) = gitmoxi(&["validate", repo.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{stdout}");
    let results: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let api = results.as_array().unwrap().iter().find(|r| r["app"] == "prod/api/api").unwrap();
    assert_eq!(api["ok"], false);
    assert_eq!(api["kind"], "ecs");
    assert_eq!(api["errors"][0]["file"], "prod/api/api_taskdef.json");
    assert_eq!(api["errors"][0]["line"], 3);
    assert!(api["errors"][0]["message"].as_str().unwrap().contains("'imagee'"));
    let web = results.as_array().unwrap().iter().find(|r| r["app"] == "prod/web/web").unwrap();
    assert_eq!(web["ok"], true);
    let (code, _, stderr) = gitmoxi(&["validate", repo.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("orphans/x_taskdef.json") && stderr.contains("never deployed"), "{stderr}");
}

#[test]
fn render_prints_documents_from_the_work_tree_or_a_revision() {
    let repo = repo_with_two_apps();
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.write("prod/web/web_input.json", &INPUT.replace("nginx:1", "nginx:2"));
    let (code, stdout, stderr) = gitmoxi(&["render", "prod/web/web", "--repo", repo.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["documents"]["taskdef"]["containerDefinitions"][0]["image"], "nginx:2");
    assert_eq!(doc["documents"]["svcdef"]["networkConfiguration"]["awsvpcConfiguration"]["subnets"][0], "subnet-1");
    let (_, stdout, _) = gitmoxi(&["render", "prod/web/web", "--repo", repo.path().to_str().unwrap(), "--rev", &first]);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["documents"]["taskdef"]["containerDefinitions"][0]["image"], "nginx:1");
    let (code, _, stderr) = gitmoxi(&["render", "nope/x", "--repo", repo.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no app with prefix 'nope/x'") && stderr.contains("prod/web/web"), "{stderr}");
}

#[test]
fn plan_between_revisions_shows_deploy_delete_move_and_none() {
    let repo = repo_with_two_apps();
    let from = repo.git(&["rev-parse", "HEAD"]);
    for i in 0..4 {
        repo.write_all(&ecs_app(&format!("more/m{i}"), &format!("m{i}"), "prod", "nginx:1", 1, "{}"));
        repo.write(&format!("more/m{i}_input.json"), INPUT);
    }
    let from_more = repo.commit("more apps");
    let _ = from;
    // change web's image (deploy), move api (move), delete m0 (delete), keep the rest (none)
    repo.write("prod/web/web_input.json", &INPUT.replace("nginx:1", "nginx:2"));
    for suffix in ["_svcdef.json", "_taskdef.json", "_depdef.json", "_input.json"] {
        let content = std::fs::read_to_string(repo.path().join(format!("prod/api/api{suffix}"))).unwrap();
        repo.remove(&format!("prod/api/api{suffix}"));
        repo.write(&format!("teams/api/api{suffix}"), &content);
        repo.remove(&format!("more/m0{suffix}"));
    }
    repo.commit("change, move, delete");
    let (code, stdout, stderr) = gitmoxi(&["plan", "--repo", repo.path().to_str().unwrap(), "--from", &from_more, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let plan: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let action = |app: &str| plan.iter().find(|e| e["app"] == app).map(|e| e["action"].as_str().unwrap().to_string());
    assert_eq!(action("prod/web/web").as_deref(), Some("deploy"));
    assert_eq!(action("teams/api/api").as_deref(), Some("move"));
    assert_eq!(action("more/m0").as_deref(), Some("delete"));
    assert_eq!(action("more/m1").as_deref(), Some("none"));
    assert_eq!(action("prod/api/api"), None, "a moved app is not deleted");
    for e in &plan {
        for field in ["app", "kind", "action", "identity", "reason"] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
    }
    let (_, human, _) = gitmoxi(&["plan", "--repo", repo.path().to_str().unwrap()]);
    assert!(human.starts_with("APP"), "{human}");
    assert!(human.contains("new app"));
}

#[test]
fn plan_exits_non_zero_for_an_app_that_cannot_deploy_and_survives_a_closed_pipe() {
    let repo = repo_with_two_apps();
    let path = repo.path().to_str().unwrap().to_string();
    let (code, _, stderr) = gitmoxi(&["plan", "--repo", &path]);
    assert_eq!(code, 0, "two new apps: a clean plan: {stderr}");
    repo.write("prod/api/api_svcdef.json", "{ broken");
    repo.commit("break api");
    let (code, stdout, _) = gitmoxi(&["plan", "--repo", &path, "--json"]);
    assert_eq!(code, 1, "an `error` entry must fail CI: {stdout}");
    assert!(stdout.contains("\"action\": \"error\""), "{stdout}");

    // `gitmoxi plan | head -1`: the reader goes away; no panic, SIGPIPE's exit code
    use std::io::{BufRead, BufReader};
    // more output than a pipe buffers (64 KiB), so the writer meets the closed pipe
    for i in 0..1000 {
        repo.write_all(&ecs_app(&format!("many/m{i}"), &format!("m{i}"), "prod", "nginx:1", 1, "{}"));
        repo.write(&format!("many/m{i}_input.json"), INPUT);
    }
    repo.commit("many apps");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
        .args(["plan", "--repo", &path])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("one line");
    assert!(first.starts_with("APP"), "{first}");
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn validate_json_keeps_each_apps_warnings() {
    let repo = repo_with_two_apps();
    repo.write("prod/web/web_depdef.json", r#"{"trafficShiftingConfg": {"type": "LINEAR"}}"#);
    let (code, stdout, _) = gitmoxi(&["validate", repo.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "a warning is not an error: {stdout}");
    let results: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let web = results.as_array().unwrap().iter().find(|r| r["app"] == "prod/web/web").unwrap();
    assert!(web["warnings"].to_string().contains("trafficShiftingConfg"), "{web}");
    repo.commit("a typo in the depdef");
    let (code, stdout, stderr) = gitmoxi(&["plan", "--repo", repo.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: prod/web/web") && stderr.contains("trafficShiftingConfg"), "{stderr}");
    let plan: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let web = plan.iter().find(|e| e["app"] == "prod/web/web").unwrap();
    assert!(web["warnings"].to_string().contains("trafficShiftingConfg"), "{web}");
}

#[test]
fn a_missing_path_is_reported_once() {
    let (code, _, stderr) = gitmoxi(&["validate", "/nonexistent/checkout"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read /nonexistent/checkout"), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "the reason once: {stderr}");
    let (code, _, stderr) = gitmoxi(&["serve", "--config", "/nonexistent/gitmoxi.toml"]);
    assert_eq!(code, 2);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "the reason once: {stderr}");
}

/// Runs the binary and returns its exit code, output and peak resident set (KiB). A fresh
/// python3 runs it and reads `RUSAGE_CHILDREN`: the peak of that one child, nothing else.
fn gitmoxi_peak_rss(args: &[&str]) -> (i32, String, String, i64) {
    const MEASURE: &str = "import json, resource, subprocess, sys\n\
p = subprocess.run(sys.argv[1:], capture_output=True)\n\
print(json.dumps({'code': p.returncode, 'out': p.stdout.decode(errors='replace'), 'err': p.stderr.decode(errors='replace'),\n\
                  'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n";
    let out = Command::new("python3").arg("-c").arg(MEASURE).arg(env!("CARGO_BIN_EXE_gitmoxi")).args(args).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the measurement");
    (
        v["code"].as_i64().unwrap_or(-1) as i32,
        v["out"].as_str().unwrap_or_default().to_string(),
        v["err"].as_str().unwrap_or_default().to_string(),
        v["peak_kib"].as_i64().unwrap_or(i64::MAX),
    )
}

/// Issue 13, high: a 413-byte template that rendered 1 GB (validate peaked at 3 GB, serve
/// aborted under a 4 GiB limit, again at every restart). Its app is refused with the file named,
/// the other app stays valid, and the process's peak memory stays bounded.
#[test]
fn a_template_bomb_is_refused_with_its_file_named_and_memory_stays_bounded() {
    let repo = repo_with_two_apps();
    let bomb = r#"{% set a = "x" * 10000000 %}{% set b = a ~ a %}{% set c = b ~ b %}
{"family": "api", "containerDefinitions": [{"name": "a", "image": "{% for i in range(25) %}{{ c }}{% endfor %}"}]}
"#;
    assert!(bomb.len() < 420, "{}", bomb.len());
    repo.write("prod/api/api_taskdef.json", bomb);
    repo.commit("bomb");
    let path = repo.path().display().to_string();
    let (code, out, err, peak_kib) = gitmoxi_peak_rss(&["validate", &path]);
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("prod/api/api_taskdef.json") && all.contains("renders to more than 1048576 bytes"), "{all}");
    assert!(!all.contains("prod/web/web_") || !all.contains("prod/web/web_taskdef.json:"), "the other app is fine: {all}");
    eprintln!("peak RSS of gitmoxi validate on the bomb: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 256 * 1024, "validate peaked at {} MiB rendering the bomb", peak_kib / 1024);
    // a deployment file over the size bound is refused before it is read
    repo.write("prod/api/api_taskdef.json", &format!("{{\"family\": \"api\", \"pad\": \"{}\"}}", "y".repeat(2 << 20)));
    repo.commit("huge");
    let (code, out, err) = gitmoxi(&["validate", &path]);
    assert_eq!(code, 1);
    assert!(format!("{out}{err}").contains("over the limit of 1048576 bytes"), "{out}{err}");
}

/// Issue 13, low: offline `render`/`validate` followed symbolic links committed in the
/// repository (a link to a file outside the checkout was printed by `render`); the server never
/// did. Now neither does: the link is not a file of the app.
#[test]
fn a_symlink_to_a_file_outside_the_checkout_is_never_read() {
    let repo = repo_with_two_apps();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, r#"{"subnets": {"value": ["TOP-SECRET-VALUE"]}, "security_groups": {"value": ["sg-1"]}}"#).unwrap();
    std::fs::remove_file(repo.path().join("infra/tf.json")).unwrap();
    std::os::unix::fs::symlink(&secret, repo.path().join("infra/tf.json")).unwrap();
    repo.commit("tf is a link");
    let path = repo.path().display().to_string();
    for args in
        [vec!["render", "prod/web/web", "--repo", path.as_str()], vec!["render", "prod/web/web", "--repo", path.as_str(), "--rev", "HEAD"]]
    {
        let (code, out, err) = gitmoxi(&args);
        assert_ne!(code, 0, "{args:?}: {out}{err}");
        assert!(!out.contains("TOP-SECRET-VALUE") && !err.contains("TOP-SECRET-VALUE"), "{args:?} printed the linked file: {out}{err}");
        assert!(err.contains("infra/tf.json"), "{args:?}: the error names the file: {err}");
    }
    let (code, out, err) = gitmoxi(&["validate", &path]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("TOP-SECRET-VALUE") && !err.contains("TOP-SECRET-VALUE"));
}

/// Issue 13, high: an exponential template (a string doubled by repeated sets) grows past every
/// size bound before one sees it; `validate` renders in a memory-capped worker, so it ends with
/// the app invalid and the reason, instead of exhausting the machine.
#[test]
fn an_exponential_template_is_stopped_by_the_render_worker_cap() {
    let repo = repo_with_two_apps();
    let doublings = "{% set a = a ~ a %}".repeat(40);
    repo.write(
        "prod/api/api_taskdef.json",
        &format!("{{% set a = \"x\" * 1000000 %}}{doublings}{{\"family\": \"api\", \"cpu\": \"{{{{ a | length }}}}\"}}"),
    );
    repo.commit("exponential");
    let path = repo.path().display().to_string();
    let (code, out, err, peak_kib) = gitmoxi_peak_rss(&["validate", &path]);
    let all = format!("{out}{err}");
    assert_eq!(code, 1, "{all}");
    assert!(all.contains("prod/api/api") && all.contains("render worker"), "{all}");
    assert!(all.contains("prod/web/web: ok") || !all.contains("prod/web/web_"), "the other app is fine: {all}");
    eprintln!("peak RSS of validate and its workers on the exponential template: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 1300 * 1024, "{} MiB", peak_kib / 1024);
}

#[test]
fn the_strategy_examples_validate_without_a_warning() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/strategies");
    let (code, stdout, stderr) = gitmoxi(&["validate", dir, "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let apps: Vec<&str> = results.as_array().unwrap().iter().map(|r| r["app"].as_str().unwrap()).collect();
    assert_eq!(
        apps,
        [
            "gitmoxi-blue-green/web",
            "gitmoxi-canary-analysis/web",
            "lambda-canary-analysis/checkout",
            "native-blue-green/web",
            "native-canary/web",
            "native-linear/web",
            "other-account/web"
        ]
    );
    for r in results.as_array().unwrap() {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
    }
}

/// Issue 26: `plan` shows the waves `dependsOn` sets, and refuses a cycle naming the depdefs.
#[test]
fn plan_shows_the_waves_of_depends_on_and_refuses_a_cycle() {
    let repo = repo_with_two_apps();
    repo.write_all(&ecs_app("prod/db/migrate", "migrate", "prod", "{{ image }}", 1, "{}"));
    repo.write("prod/db/migrate_input.json", INPUT);
    repo.write("prod/api/api_depdef.json", r#"{"dependsOn": ["prod/db/migrate"]}"#);
    repo.write("prod/web/web_depdef.json", r#"{"dependsOn": ["prod/api/api"]}"#);
    repo.commit("a chain");
    let path = repo.path().to_str().unwrap().to_string();
    let (code, stdout, stderr) = gitmoxi(&["plan", "--repo", &path, "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let plan: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let wave = |app: &str| plan.iter().find(|e| e["app"] == app).and_then(|e| e["wave"].as_u64());
    assert_eq!((wave("prod/db/migrate"), wave("prod/api/api"), wave("prod/web/web")), (Some(1), Some(2), Some(3)));
    let (_, human, _) = gitmoxi(&["plan", "--repo", &path]);
    assert!(human.lines().next().unwrap_or_default().contains("WAVE"), "{human}");

    repo.write("prod/db/migrate_depdef.json", r#"{"dependsOn": ["prod/web/web"]}"#);
    repo.commit("a cycle");
    let (code, stdout, _) = gitmoxi(&["plan", "--repo", &path, "--json"]);
    assert_eq!(code, 1, "a cycle cannot deploy: {stdout}");
    assert!(stdout.contains("prod/db/migrate_depdef.json") && stdout.contains("dependsOn forms a cycle"), "{stdout}");
}

/// Issue 26's example: the chain validates without a warning, plans in three waves, and its
/// configuration (pipelines, freezes) loads.
#[test]
fn the_releases_example_validates_plans_in_waves_and_its_configuration_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/releases");
    let (code, stdout, stderr) = gitmoxi(&["validate", dir, "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    for r in results.as_array().unwrap() {
        assert_eq!((r["ok"].as_bool(), &r["warnings"]), (Some(true), &serde_json::json!([])), "{r}");
    }
    let repo = TestRepo::new();
    for app in ["db/migrate", "api/api", "worker/worker"] {
        for kind in ["svcdef", "taskdef", "depdef"] {
            let path = format!("dev/{app}_{kind}.json");
            repo.write(&path, &std::fs::read_to_string(format!("{dir}/{path}")).unwrap());
        }
    }
    repo.commit("the example");
    let (code, stdout, stderr) = gitmoxi(&["plan", "--repo", repo.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let plan: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let waves: Vec<(String, u64)> = plan.iter().map(|e| (e["app"].as_str().unwrap().to_string(), e["wave"].as_u64().unwrap())).collect();
    assert_eq!(waves, vec![("dev/api/api".to_string(), 2), ("dev/db/migrate".into(), 1), ("dev/worker/worker".into(), 3)]);
    for (var, value) in [
        ("GITHUB_TOKEN", "ghp_example"),
        ("GITMOXI_TOKEN_ALICE", "alice-token-0123456789"),
        ("GITMOXI_TOKEN_BOB", "bob-token-0123456789ab"),
    ] {
        std::env::set_var(var, value);
    }
    let config = gitmoxi::config::Config::load(&gitmoxi::config::Overrides {
        config: Some(format!("{dir}/gitmoxi.toml").into()),
        ..Default::default()
    })
    .expect("the example configuration loads");
    assert_eq!(config.pipelines[0].stages.len(), 2);
    assert_eq!(config.freezes.len(), 2);
}
