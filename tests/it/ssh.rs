//! SSH repositories against a real sshd (Debian's openssh-server, installed by `make test`
//! through `scripts/ensure-sshd.sh`), started by the test on a loopback port with its own
//! configuration, host key and authorized deploy key, serving a Git repository:
//! - `gitmoxi serve` deploys from `ssh://…` with the deploy key from Secrets Manager (moto);
//! - a fetch with the key from a file works; an unknown host, a changed host key and a wrong
//!   deploy key are refused with the host, the fingerprint offered and what to do; the key never
//!   appears in an error.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use gitmoxi::config::SshConfig;
use gitmoxi::credentials::TokenSource;
use gitmoxi::git::source::SshAuth;
use gitmoxi::git::GitSource;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd";

/// sshd on a loopback port, stopped when dropped.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "gitmoxi-test", "-f"]).arg(path).output().unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

impl Sshd {
    fn start() -> Sshd {
        assert!(Path::new(SSHD).exists(), "sshd is not installed: run `make test` (scripts/ensure-sshd.sh installs openssh-server)");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        keygen(&d.join("host_key"));
        keygen(&d.join("deploy_key"));
        std::fs::copy(d.join("deploy_key.pub"), d.join("authorized_keys")).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string();
        let port = crate::moto::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\n\
             UsePAM no\nPidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nAllowUsers {user}\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // privilege separation needs its directory when sshd runs as root
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let sshd = Sshd { child, port, dir, user };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sshd;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd did not listen: {}", sshd.log());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts line for this server with `key_file`'s public key.
    fn known_hosts(&self, key_file: &str) -> PathBuf {
        let public = std::fs::read_to_string(self.path(&format!("{key_file}.pub"))).unwrap();
        let mut fields = public.split_whitespace();
        let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
        let file = self.path(&format!("known_hosts_{key_file}"));
        std::fs::write(&file, format!("[127.0.0.1]:{} {kind} {blob}\n", self.port)).unwrap();
        file
    }

    fn url(&self, repo: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, repo.display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }
}

#[test]
fn an_ssh_fetch_checks_the_host_key_strictly_and_uses_the_deploy_key() {
    let sshd = Sshd::start();
    let repo = TestRepo::new();
    repo.write("README.md", "deploys");
    let head = repo.commit("first");
    let url = sshd.url(repo.path());
    let key = std::fs::read_to_string(sshd.path("deploy_key")).unwrap();
    let fetch = |known_hosts: PathBuf, private_key: String| {
        let mirror = tempfile::tempdir().unwrap();
        let source = GitSource::new(&url, "main", mirror.path().join("m"), None);
        source.set_ssh(Some(SshAuth { private_key, known_hosts }));
        source.fetch()
    };
    let fetched = fetch(sshd.known_hosts("host_key"), key.clone()).unwrap_or_else(|e| panic!("{e}\nsshd: {}", sshd.log()));
    assert_eq!(fetched, head);

    // another host key than the one known: refused, both fingerprints named
    keygen(&sshd.path("other_key"));
    let err = fetch(sshd.known_hosts("other_key"), key.clone()).unwrap_err().to_string();
    assert!(err.contains(&format!("the host key of [127.0.0.1]:{} does not match", sshd.port)) && err.contains("SHA256:"), "{err}");
    // a host not listed: refused, with the fingerprint it offered and how to add it
    let empty = sshd.path("known_hosts_empty");
    std::fs::write(&empty, "").unwrap();
    let err = fetch(empty, key.clone()).unwrap_err().to_string();
    assert!(err.contains("is not in known_hosts") && err.contains("ssh-keyscan -p") && err.contains("SHA256:"), "{err}");
    // a deploy key the server does not know: refused, and the key is in no message
    keygen(&sshd.path("stranger"));
    let stranger = std::fs::read_to_string(sshd.path("stranger")).unwrap();
    let err = fetch(sshd.known_hosts("host_key"), stranger.clone()).unwrap_err().to_string();
    assert!(err.contains("git fetch of") && !err.contains("PRIVATE KEY"), "{err}");
    assert!(!err.contains(stranger.lines().nth(1).unwrap()), "no key material in errors: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_deploys_from_an_ssh_repository_with_a_deploy_key_from_secrets_manager() {
    let sshd = Sshd::start();
    let moto = Moto::start().await;
    let config = moto.sdk_config().await;
    let key = std::fs::read_to_string(sshd.path("deploy_key")).unwrap();
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("gitmoxi/deploy-key")
        .secret_string(key.trim())
        .send()
        .await
        .unwrap();
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_terraform_app(&repo, "apps/web/web", "web", "nginx:1", 1, r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#, "");
    let commit = repo.commit("web over ssh");
    let ssh =
        SshConfig { key: Some(TokenSource::SecretsManager(secret.arn().unwrap().to_string())), known_hosts: sshd.known_hosts("host_key") };
    let server = Server::start_at(&moto, &repo, &sshd.url(repo.path()), ssh).await;
    let app = server.wait_app("apps/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert_eq!(app["applied_commit"].as_str(), Some(commit.as_str()));
    let svc = moto.ecs().await.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert_eq!(svc.services()[0].running_count(), 1, "AWS runs what the SSH repository says");
    assert!(sshd.log().contains("Accepted publickey"), "the deploy key authenticated: {}", sshd.log());
    server.stop().await;
}

/// Issue 26: a promotion is pushed over SSH with the repository's deploy key (host key checked
/// strictly, as for fetches), and a second attempt of the same promotion finds its commit by the
/// trailer instead of writing another.
#[test]
fn a_promotion_is_pushed_over_ssh_and_a_replay_finds_it_instead_of_committing_again() {
    use gitmoxi::git::promote::{Promoted, PromotionPlan};
    let sshd = Sshd::start();
    // the first stage: its mirror holds the release's commit
    let dev = TestRepo::new();
    dev.write("dev/web/web_svcdef.json", r#"{"serviceName": "web", "cluster": "dev"}"#);
    dev.write("dev/web/web_taskdef.json", r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "web:2"}]}"#);
    let release = dev.commit("web 2");
    let dev_mirror = tempfile::tempdir().unwrap();
    let dev_source = GitSource::new(&dev.path().display().to_string(), "main", dev_mirror.path().join("m"), None);
    assert_eq!(dev_source.fetch().unwrap(), release);
    // prod: a bare repository behind sshd, with its own files
    let prod = TestRepo::new();
    prod.write("infra/terraform_output.json", "{}");
    prod.write("prod/web/web_taskdef.json", r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "web:1"}]}"#);
    prod.write("prod/web/web_input.json", r#"{"image": "web:1"}"#);
    prod.commit("prod");
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().join("prod.git");
    assert!(Command::new("git").args(["clone", "-q", "--bare"]).arg(prod.path()).arg(&bare_path).status().unwrap().success());
    let plan = PromotionPlan {
        source_mirror: dev_mirror.path().join("m"),
        source_commit: release.clone(),
        apps: vec![("dev/web/web".into(), "prod/web/web".into())],
        removed: Vec::new(),
        message: "gitmoxi: promote web-1 to prod\n\nGitmoxi-Release: web-1 -> prod@main\n".into(),
        trailer: "Gitmoxi-Release: web-1 -> prod@main".into(),
    };
    let key = std::fs::read_to_string(sshd.path("deploy_key")).unwrap();
    let promote = || {
        let mirror = tempfile::tempdir().unwrap();
        let target = GitSource::for_promotion(&sshd.url(&bare_path), "main", mirror.path().join("m"));
        target.set_ssh(Some(SshAuth { private_key: key.clone(), known_hosts: sshd.known_hosts("host_key") }));
        target.promote(&plan, "refs/heads/main")
    };
    let pushed = match promote().unwrap_or_else(|e| panic!("{e}\nsshd: {}", sshd.log())) {
        Promoted::Pushed(commit) => commit,
        Promoted::Found(commit) => panic!("nothing was pushed yet, yet {commit} was found"),
    };
    let git = |args: &[&str]| {
        let out = Command::new("git").arg("--git-dir").arg(&bare_path).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(git(&["rev-parse", "main"]), pushed);
    assert!(git(&["show", "main:prod/web/web_taskdef.json"]).contains("web:2"));
    assert!(git(&["show", "main:prod/web/web_svcdef.json"]).contains("\"cluster\": \"dev\""), "the app's files are the release's");
    assert_eq!(git(&["show", "main:infra/terraform_output.json"]), "{}", "prod's own files are untouched");
    assert_eq!(
        git(&["ls-tree", "--name-only", "main", "prod/web/"]),
        "prod/web/web_svcdef.json\nprod/web/web_taskdef.json",
        "a file the release does not have is removed"
    );
    // a replay (the process died before recording the push) finds the commit: no second one
    assert_eq!(promote().unwrap(), Promoted::Found(pushed.clone()));
    assert_eq!(git(&["rev-list", "--count", "main"]), "2");
}
