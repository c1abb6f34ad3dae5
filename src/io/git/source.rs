//! A tracked repository: a bare mirror fetched from `https://` (token auth), `ssh://`, `file://`
//! or a plain path, and trees read straight from commits.

use git2::{FetchOptions, Oid, RemoteCallbacks, Repository};
use gitmoxi_deploy::spec::FileTree;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git fetch of {url} (branch {branch}) failed: {message}; check the URL, the branch name and the credentials")]
    Fetch { url: String, branch: String, message: String },
    #[error("git repository at {path} could not be opened: {message}")]
    Open { path: String, message: String },
    #[error("git revision '{rev}' not found in {repo}: {message}")]
    Revision { repo: String, rev: String, message: String },
    #[error("git read failed: {0}")]
    Read(String),
    #[error("git push to {url} ({branch}) failed: {message}; check that the repository's credentials may push")]
    Push { url: String, branch: String, message: String },
}

/// An SSH deploy key (read on use, never logged; empty: the ssh-agent's) and the known_hosts file
/// the server's host key must be in.
#[derive(Clone)]
pub struct SshAuth {
    pub private_key: String,
    pub known_hosts: PathBuf,
}

impl std::fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshAuth").field("private_key", &"<redacted>").field("known_hosts", &self.known_hosts).finish()
    }
}

/// The port of an `ssh://` URL (22 for scp-like `user@host:path` and when absent).
pub fn ssh_port(url: &str) -> u16 {
    url.strip_prefix("ssh://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit('@').next())
        .and_then(|host_port| host_port.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(22)
}

/// One (url, branch) the controller tracks.
pub struct GitSource {
    url: String,
    branch: String,
    mirror: PathBuf,
    /// Read on use (the caller refreshes it from its source before a fetch).
    token: std::sync::Mutex<Option<String>>,
    /// An SSH deploy key and the known_hosts it checks the server against (set before a fetch).
    ssh: std::sync::Mutex<Option<SshAuth>>,
    /// Where fetched heads go in the mirror: the source loop's refs, or a preview's (a dry run
    /// that must not move what the source loop compares against).
    refs: &'static str,
    /// A fetch receiving more than this many bytes is aborted (a pull request's preview).
    max_fetch_bytes: Option<u64>,
}

impl GitSource {
    /// `mirror` is a directory under the state dir owned by this source.
    pub fn new(url: &str, branch: &str, mirror: PathBuf, token: Option<String>) -> GitSource {
        GitSource {
            url: fetchable_url(url),
            branch: branch.to_string(),
            mirror,
            token: std::sync::Mutex::new(token),
            ssh: std::sync::Mutex::new(None),
            refs: "refs/gitmoxi",
            max_fetch_bytes: None,
        }
    }

    /// Aborts a fetch that receives more than `bytes` (a pull request's preview: issue 27).
    pub fn with_fetch_limit(mut self, bytes: u64) -> GitSource {
        self.max_fetch_bytes = Some(bytes);
        self
    }

    /// A source that fetches into the same mirror under its own refs: a dry run or a preview
    /// sees the newest commit without the source loop loading it.
    pub fn for_preview(url: &str, branch: &str, mirror: PathBuf, token: Option<String>) -> GitSource {
        GitSource { refs: "refs/gitmoxi-preview", ..GitSource::new(url, branch, mirror, token) }
    }

    /// A source that fetches and writes promotions (issue 26) into the same mirror under its own
    /// refs: the source loop's refs are left to it.
    pub fn for_promotion(url: &str, branch: &str, mirror: PathBuf) -> GitSource {
        GitSource { refs: "refs/gitmoxi-promotion", ..GitSource::new(url, branch, mirror, None) }
    }

    /// The branch it tracks.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Replaces the token used by the next fetch.
    pub fn set_token(&self, token: Option<String>) {
        *crate::base::sync::lock(&self.token) = token;
    }

    /// Replaces the SSH deploy key and known_hosts used by the next fetch.
    pub fn set_ssh(&self, ssh: Option<SshAuth>) {
        *crate::base::sync::lock(&self.ssh) = ssh;
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn repo(&self) -> Result<Repository, GitError> {
        let open = |e: git2::Error| GitError::Open { path: self.mirror.display().to_string(), message: e.message().to_string() };
        match Repository::open_bare(&self.mirror) {
            Ok(r) => Ok(r),
            Err(_) => {
                std::fs::create_dir_all(&self.mirror)
                    .map_err(|e| GitError::Open { path: self.mirror.display().to_string(), message: e.to_string() })?;
                Repository::init_bare(&self.mirror).map_err(open)
            }
        }
    }

    /// Fetches the branch and returns its head commit id.
    pub fn fetch(&self) -> Result<String, GitError> {
        self.fetch_into(&format!("refs/heads/{}", self.branch), &format!("{}/{}", self.refs, self.branch))
    }

    /// Fetches another ref of the remote (a pull request's `refs/pull/7/head`, a branch
    /// `refs/heads/x`) into this source's refs; returns its commit id.
    pub fn fetch_ref(&self, remote_ref: &str) -> Result<String, GitError> {
        let safe = remote_ref.starts_with("refs/")
            && !remote_ref.contains("..")
            && remote_ref.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !safe {
            return Err(GitError::Fetch {
                url: redact(&self.url),
                branch: remote_ref.to_string(),
                message: "not a ref gitmoxi fetches (refs/… with letters, digits, / - _ .)".into(),
            });
        }
        self.fetch_into(remote_ref, &format!("{}/{}", self.refs, remote_ref.trim_start_matches("refs/")))
    }

    /// The credentials (the token only to the repository's own host over https, the SSH key)
    /// and the strict SSH host key check of every fetch and push; a refusal's own message is
    /// kept in `refusal` (libgit2 replaces it with its own).
    pub(crate) fn callbacks(&self, refusal: std::sync::Arc<std::sync::Mutex<Option<String>>>) -> RemoteCallbacks<'static> {
        let mut callbacks = RemoteCallbacks::new();
        let token = crate::base::sync::lock(&self.token).clone();
        let ssh = crate::base::sync::lock(&self.ssh).clone();
        let ssh_key = ssh.clone();
        let configured = self.url.clone();
        callbacks.credentials(move |url, username, allowed| {
            if let Some(t) = &token {
                if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                    // the token goes to the repository's own host over https, nowhere else
                    if !crate::io::repo_policy::may_send_token(&configured, url) {
                        return Err(git2::Error::from_str(&format!(
                            "refusing to send the repository's token to {}: it goes only to {} over https",
                            redact(url),
                            redact(&configured)
                        )));
                    }
                    return git2::Cred::userpass_plaintext("x-access-token", t);
                }
            }
            if allowed.contains(git2::CredentialType::SSH_KEY) {
                if let Some(auth) = ssh_key.as_ref().filter(|a| !a.private_key.is_empty()) {
                    return git2::Cred::ssh_key_from_memory(username.unwrap_or("git"), None, &auth.private_key, None);
                }
                return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
            }
            git2::Cred::default()
        });
        // SSH host keys: strictly against the configured known_hosts; TLS keeps libgit2's checks
        let port = ssh_port(&self.url);
        let refused = refusal;
        let refuse = move |why: String| {
            *crate::base::sync::lock(&refused) = Some(why.clone());
            git2::Error::from_str(&why)
        };
        callbacks.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else { return Ok(git2::CertificateCheckStatus::CertificatePassthrough) };
            let Some(auth) = &ssh else {
                return Err(refuse(format!(
                    "{host} is an SSH server and no known_hosts is configured for this repository: set known_hosts (and ssh_key) in its [[repos]] entry"
                )));
            };
            let Some(offered) = hostkey.hash_sha256() else {
                return Err(refuse(format!("{host} offered a host key without a SHA-256 fingerprint")));
            };
            let file = auth.known_hosts.display().to_string();
            let text = std::fs::read_to_string(&auth.known_hosts).map_err(|e| refuse(format!("known_hosts {file} is not readable: {e}")))?;
            crate::io::git::known_hosts::check(&text, &file, host, port, offered)
                .map(|()| git2::CertificateCheckStatus::CertificateOk)
                .map_err(&refuse)
        });
        callbacks
    }

    fn fetch_into(&self, remote_ref: &str, local_ref: &str) -> Result<String, GitError> {
        let repo = self.repo()?;
        let fetch_err =
            |e: git2::Error| GitError::Fetch { url: redact(&self.url), branch: self.branch.clone(), message: e.message().to_string() };
        let mut remote = repo.remote_anonymous(&self.url).map_err(fetch_err)?;
        // libgit2 replaces a refusal's message with its own: keep ours for the error
        let refusal: std::sync::Arc<std::sync::Mutex<Option<String>>> = std::sync::Arc::default();
        let mut callbacks = self.callbacks(refusal.clone());
        if let Some(limit) = self.max_fetch_bytes {
            let over = refusal.clone();
            callbacks.transfer_progress(move |p| {
                if p.received_bytes() as u64 <= limit {
                    return true;
                }
                *crate::base::sync::lock(&over) = Some(format!(
                    "the fetch passed {} MiB, more than a preview may fetch; preview it on a checkout with `gitmoxi plan`",
                    limit >> 20
                ));
                false
            });
        }
        if let Some(path) = local_path(&self.url) {
            // libgit2's local transport copies each object through memory whole, before any
            // progress callback could stop it: sizes are checked from object headers first
            let limit = self.max_fetch_bytes.map_or(MAX_LOCAL_OBJECT_BYTES, |l| l.min(MAX_LOCAL_OBJECT_BYTES));
            check_local_objects(&path, remote_ref, &repo, limit).map_err(|message| GitError::Fetch {
                url: redact(&self.url),
                branch: self.branch.clone(),
                message,
            })?;
        }
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks);
        let refspec = format!("+{remote_ref}:{local_ref}");
        remote.fetch(&[refspec.as_str()], Some(&mut opts), None).map_err(|e| match crate::base::sync::lock(&refusal).take() {
            Some(why) => GitError::Fetch { url: redact(&self.url), branch: self.branch.clone(), message: why },
            None => fetch_err(e),
        })?;
        let reference = repo.find_reference(local_ref).map_err(|e| GitError::Fetch {
            url: redact(&self.url),
            branch: self.branch.clone(),
            message: format!("branch not found after fetch ({})", e.message()),
        })?;
        let commit = reference.peel_to_commit().map_err(fetch_err)?;
        Ok(commit.id().to_string())
    }

    /// The bare mirror the fetches write to.
    pub fn mirror(&self) -> &std::path::Path {
        &self.mirror
    }

    /// The files of a fetched commit.
    pub fn tree(&self, commit: &str) -> Result<GitTree, GitError> {
        GitTree::open(&self.mirror, commit)
    }
}

/// The largest object a fetch from a path on this machine copies (issue 27: libgit2's local
/// transport reads each object whole into memory).
pub const MAX_LOCAL_OBJECT_BYTES: u64 = 64 << 20;

/// The directory of a `file://` URL or a plain path; `None` for network transports.
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    let network = url.contains("://") || (url.contains('@') && url.contains(':'));
    (!network).then(|| PathBuf::from(url))
}

/// Refuses a local fetch of `remote_ref` that would copy an object larger than `limit`: walks the
/// commits the mirror does not have yet (each tree once) and reads every blob's size from its
/// header, never its content. The message names the file, its commit and its size.
fn check_local_objects(source: &Path, remote_ref: &str, mirror: &Repository, limit: u64) -> Result<(), String> {
    let Ok(repo) = Repository::open(source) else { return Ok(()) }; // libgit2's fetch names what is wrong
    let Ok(head) = repo.refname_to_id(remote_ref) else { return Ok(()) };
    let odb = repo.odb().map_err(|e| e.message().to_string())?;
    let mut walk = repo.revwalk().map_err(|e| e.message().to_string())?;
    walk.push(head).map_err(|e| e.message().to_string())?;
    // what the mirror already holds is not fetched again
    if let Ok(refs) = mirror.references() {
        for target in refs.flatten().filter_map(|r| r.target()) {
            if repo.find_commit(target).is_ok() {
                let _ = walk.hide(target);
            }
        }
    }
    let mut seen_trees = std::collections::HashSet::new();
    for oid in walk {
        let oid = oid.map_err(|e| e.message().to_string())?;
        let Ok(commit) = repo.find_commit(oid) else { continue };
        let Ok(tree) = commit.tree() else { continue };
        if !seen_trees.insert(tree.id()) {
            continue;
        }
        let mut too_big: Option<String> = None;
        let _ = tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| match entry.kind() {
            Some(git2::ObjectType::Tree) if !seen_trees.insert(entry.id()) => git2::TreeWalkResult::Skip,
            Some(git2::ObjectType::Blob) => match odb.read_header(entry.id()) {
                Ok((size, _)) if size as u64 > limit => {
                    too_big = Some(format!(
                        "{root}{} in commit {} is {} MiB, more than the {} MiB gitmoxi fetches from a path on this machine; \
                         remove it from the repository's history or serve the repository over https or ssh",
                        entry.name().unwrap_or("?"),
                        &oid.to_string()[..10],
                        size >> 20,
                        limit >> 20
                    ));
                    git2::TreeWalkResult::Abort
                }
                _ => git2::TreeWalkResult::Ok,
            },
            _ => git2::TreeWalkResult::Ok,
        });
        if let Some(why) = too_big {
            return Err(why);
        }
    }
    Ok(())
}

/// Turns a plain path into an absolute path git2 can fetch from.
fn fetchable_url(url: &str) -> String {
    if url.contains("://") || url.contains('@') && url.contains(':') {
        return url.to_string();
    }
    std::fs::canonicalize(url).map(|p| p.display().to_string()).unwrap_or_else(|_| url.to_string())
}

/// Removes credentials embedded in a URL before it reaches a message.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

/// `text` (an error message) with the user-info of every URL in it replaced, so a message
/// shown on the page or in an answer never carries a password or token.
pub fn redact_in_text(text: &str) -> String {
    text.split(' ').map(|word| if word.contains("://") { redact(word) } else { word.to_string() }).collect::<Vec<_>>().join(" ")
}

/// A commit's tree, read without a work tree.
pub struct GitTree {
    repo: Repository,
    tree: Oid,
    pub commit: String,
    /// Path → blob id, built by one walk on the first read (reading path by path through large
    /// trees is quadratic in the number of files).
    index: std::sync::OnceLock<std::collections::HashMap<String, Oid>>,
}

impl GitTree {
    /// Opens `rev` (a commit id, branch, tag or HEAD) of the repository at or above `path`.
    pub fn open(path: &Path, rev: &str) -> Result<GitTree, GitError> {
        let repo = Repository::discover(path)
            .map_err(|e| GitError::Open { path: path.display().to_string(), message: e.message().to_string() })?;
        let rev_err = |e: git2::Error| GitError::Revision {
            repo: path.display().to_string(),
            rev: rev.to_string(),
            message: e.message().to_string(),
        };
        let (tree, commit) = {
            let object = repo.revparse_single(rev).map_err(rev_err)?;
            let commit = object.peel_to_commit().map_err(rev_err)?;
            let tree = commit.tree().map_err(rev_err)?.id();
            (tree, commit.id().to_string())
        };
        Ok(GitTree { repo, tree, commit, index: std::sync::OnceLock::new() })
    }
}

impl GitTree {
    /// Every blob of the tree with its id, in tree order.
    fn walk(&self) -> Vec<(String, Oid)> {
        let mut out = Vec::new();
        if let Ok(tree) = self.repo.find_tree(self.tree) {
            let _ = tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
                // a symbolic link is a blob holding its target: never a file of the repository
                if entry.kind() == Some(git2::ObjectType::Blob) && entry.filemode() != 0o120000 {
                    if let Some(name) = entry.name() {
                        out.push((format!("{root}{name}"), entry.id()));
                    }
                }
                git2::TreeWalkResult::Ok
            });
        }
        out
    }
}

impl FileTree for GitTree {
    fn paths(&self) -> Vec<String> {
        self.walk().into_iter().map(|(p, _)| p).collect()
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let index = self.index.get_or_init(|| self.walk().into_iter().collect());
        let blob = self.repo.find_blob(*index.get(path)?).ok()?;
        Some(blob.content().to_vec())
    }

    fn size(&self, path: &str) -> Option<u64> {
        let index = self.index.get_or_init(|| self.walk().into_iter().collect());
        let (size, _) = self.repo.odb().ok()?.read_header(*index.get(path)?).ok()?;
        Some(size as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27 (Low): a fetch from a path on this machine never copies an object over the
    /// bound (libgit2's local transport would read it whole into memory); the error names the
    /// file, and the mirror gets nothing.
    #[test]
    fn a_local_fetch_refuses_an_object_over_the_bound_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        let repo = Repository::init(&source).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let commit_with = |files: &[(&str, &[u8])], parent: Option<&git2::Commit<'_>>| {
            let mut builder = repo.treebuilder(None).unwrap();
            for (name, content) in files {
                builder.insert(name, repo.blob(content).unwrap(), 0o100644).unwrap();
            }
            let tree = repo.find_tree(builder.write().unwrap()).unwrap();
            let parents: Vec<&git2::Commit<'_>> = parent.into_iter().collect();
            let id = repo.commit(Some("refs/heads/main"), &sig, &sig, "c", &tree, &parents).unwrap();
            repo.find_commit(id).unwrap()
        };
        let first = commit_with(&[("app_svcdef.json", b"{}")], None);
        let mirror = dir.path().join("mirror");
        let src = GitSource::new(&source.display().to_string(), "main", mirror.clone(), None);
        let fetched = src.fetch().expect("a small repository fetches");
        assert_eq!(fetched, first.id().to_string());
        // 2 MiB over a 1 MiB preview bound (the same check as the 64 MiB default)
        let big = vec![b'x'; 2 << 20];
        commit_with(&[("app_svcdef.json", b"{}"), ("blob.bin", &big)], Some(&first));
        let limited = GitSource::new(&source.display().to_string(), "main", mirror.clone(), None).with_fetch_limit(1 << 20);
        let err = limited.fetch().expect_err("refused").to_string();
        assert!(err.contains("blob.bin") && err.contains("2 MiB") && err.contains("more than the 1 MiB"), "{err}");
        let kept = Repository::open_bare(&mirror).unwrap();
        assert_eq!(kept.refname_to_id("refs/gitmoxi/main").unwrap(), first.id(), "the mirror did not move");
        assert!(kept.odb().unwrap().read_header(repo.blob(&big).unwrap()).is_err(), "the big blob was not copied");
        assert_eq!(local_path("file:///srv/git/a"), Some(PathBuf::from("/srv/git/a")));
        assert_eq!(local_path("https://github.com/a/b"), None);
        assert_eq!(local_path("git@github.com:a/b.git"), None);
    }

    #[test]
    fn redacts_tokens_in_urls() {
        assert_eq!(redact("https://user:tok@github.com/a/b.git"), "https://***@github.com/a/b.git");
        assert_eq!(redact("/tmp/repo"), "/tmp/repo");
    }
}
