//! Helpers of the programs that drive the real `gitmoxi` binary against moto: the kill -9 test
//! (`tests/crash.rs`), the moto benchmarks (`benches/moto.rs`) and the moto tests (`tests/it`)
//! include this file with `#[path]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of `.venv` (moto 5.2.5), which `make test` creates.
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "moto is not installed: run `make test` (it creates .venv with moto[server]==5.2.5)");
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn write(dir: &Path, path: &str, content: &str) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().expect("has parent")).expect("mkdir");
    std::fs::write(full, content).expect("write");
}

/// A child process killed (and reaped) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto (`tests/moto/server.py`) as a child process and its URL.
pub struct Moto(pub Process, pub String);

/// Starts moto on a free port; its tasks start after `task_start_seconds`.
pub fn start_moto(task_start_seconds: &str) -> Moto {
    let port = free_port();
    let mut child = Command::new(python())
        .arg(root().join("tests/moto/server.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("GITMOXI_MOTO_TASK_START_SECONDS", task_start_seconds)
        // a "minute" of ECS bake and step times lasts a second
        .env("GITMOXI_MOTO_MINUTE_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(300));
            return Moto(Process(child), url);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("moto did not start on {url}");
}

/// Runs `tests/moto/infra.py` against moto for `cluster` with `extra` flags (`--alb`,
/// `--lambda`); returns the Terraform outputs.
pub fn infra(moto: &Moto, cluster: &str, extra: &[&str]) -> String {
    let out = tempfile::NamedTempFile::new().expect("tmp");
    let status = Command::new(python())
        .arg(root().join("tests/moto/infra.py"))
        .args(["--endpoint", &moto.1, "--cluster", cluster])
        .args(extra)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("infra.py runs");
    assert!(status.success(), "infra.py failed");
    std::fs::read_to_string(out.path()).expect("outputs")
}

/// The network block of a Fargate svcdef, from the Terraform outputs of `infra`.
pub const FARGATE_NETWORK: &str = r#""networkConfiguration": {"awsvpcConfiguration": {"subnets": {{ private_subnets | tojson }}, "securityGroups": ["{{ security_group_id }}"]}}"#;

/// The input of an app whose templates read `infra/terraform_output.json`.
pub const TERRAFORM_INPUT: &str = r#"{"ref": {"file": ["infra/terraform_output.json"], "type": "TERRAFORM"}}"#;

/// An ECS rolling app `apps/NAME/NAME` on Fargate in cluster `prod` with one task of `image`.
pub fn write_rolling_app(repo: &Path, name: &str, image: &str) {
    let p = format!("apps/{name}/{name}");
    write(
        repo,
        &format!("{p}_svcdef.json"),
        &format!(r#"{{"serviceName": "{name}", "cluster": "prod", "desiredCount": 1, "launchType": "FARGATE", {FARGATE_NETWORK}}}"#),
    );
    write(
        repo,
        &format!("{p}_taskdef.json"),
        &format!(
            r#"{{"family": "{name}", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
                "containerDefinitions": [{{"name": "{name}", "image": "{image}", "memory": 512}}]}}"#
        ),
    );
    write(repo, &format!("{p}_depdef.json"), r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#);
    write(repo, &format!("{p}_input.json"), TERRAFORM_INPUT);
}

/// A JSON answer of `url` (curl, 5 s), `None` when it fails.
pub fn get(url: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl").args(["-fs", "--max-time", "5", url]).output().ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

/// Runs a Python script against moto (its URL in `MOTO`) and reads the JSON it prints.
pub fn aws(moto: &Moto, script: &str) -> serde_json::Value {
    let out = Command::new(python()).arg("-c").arg(script).env("MOTO", &moto.1).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}
