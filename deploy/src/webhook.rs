//! Push webhook payloads (SPEC §5): which repository URLs and branch a GitHub or GitLab push
//! names. Pure parsing of untrusted bytes — fuzzed by `fuzz/fuzz_targets/webhook.rs`.
//!
//! Must never: panic on any input, or treat a tag push as a branch push.

use serde_json::Value;

/// A push, as the providers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Every URL the provider gives for the repository (clone, SSH, web).
    pub urls: Vec<String>,
    /// The branch pushed to.
    pub branch: String,
}

/// A pull request (GitHub) or merge request (GitLab) opened or pushed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Every URL the provider gives for the target repository.
    pub urls: Vec<String>,
    /// The branch it would merge into.
    pub base_branch: String,
    /// Its number (GitHub) or iid (GitLab).
    pub number: u64,
    /// The commit at its head.
    pub head_sha: String,
    /// The ref the provider keeps its head under (`refs/pull/N/head`, `refs/merge-requests/N/head`).
    pub head_ref: String,
}

/// Every URL a GitHub payload's `repository` gives (clone, SSH, git, web).
fn github_urls(v: &Value) -> Result<Vec<String>, String> {
    let repo = v.get("repository").ok_or("the payload has no \"repository\"")?;
    Ok(["clone_url", "ssh_url", "git_url", "html_url", "url"]
        .iter()
        .filter_map(|k| repo.get(*k).and_then(Value::as_str).map(str::to_string))
        .collect())
}

/// Every URL a GitLab payload's `project` and `repository` give.
fn gitlab_urls(v: &Value) -> Vec<String> {
    ["project", "repository"]
        .iter()
        .filter_map(|holder| v.get(*holder))
        .flat_map(|p| {
            ["git_http_url", "git_ssh_url", "web_url", "http_url", "url", "homepage"]
                .iter()
                .filter_map(move |k| p.get(*k).and_then(Value::as_str).map(str::to_string))
        })
        .collect()
}

/// A GitHub `pull_request` payload that asks for a preview: opened, reopened or pushed to
/// (`synchronize`); other actions (closed, labeled…) are `None`.
pub fn parse_github_pull_request(body: &[u8]) -> Result<Option<PullRequest>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let action = v.get("action").and_then(Value::as_str).unwrap_or_default();
    if !["opened", "reopened", "synchronize"].contains(&action) {
        return Ok(None);
    }
    let pr = v.get("pull_request").ok_or("the payload has no \"pull_request\"")?;
    let number = v.get("number").or_else(|| pr.get("number")).and_then(Value::as_u64).ok_or("the payload has no pull request number")?;
    let base_branch = pr.pointer("/base/ref").and_then(Value::as_str).ok_or("the payload has no pull_request.base.ref")?;
    let head_sha = pr.pointer("/head/sha").and_then(Value::as_str).ok_or("the payload has no pull_request.head.sha")?;
    let urls = github_urls(&v)?;
    Ok(Some(PullRequest {
        urls,
        base_branch: base_branch.to_string(),
        number,
        head_sha: head_sha.to_string(),
        head_ref: format!("refs/pull/{number}/head"),
    }))
}

/// A GitLab `Merge Request Hook` payload that asks for a preview: opened, reopened or updated.
pub fn parse_gitlab_merge_request(body: &[u8]) -> Result<Option<PullRequest>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let attrs = v.get("object_attributes").ok_or("the payload has no \"object_attributes\"")?;
    let action = attrs.get("action").and_then(Value::as_str).unwrap_or_default();
    if !["open", "reopen", "update"].contains(&action) {
        return Ok(None);
    }
    let number = attrs.get("iid").and_then(Value::as_u64).ok_or("the payload has no object_attributes.iid")?;
    let base_branch = attrs.get("target_branch").and_then(Value::as_str).ok_or("the payload has no object_attributes.target_branch")?;
    let head_sha = attrs.pointer("/last_commit/id").and_then(Value::as_str).ok_or("the payload has no object_attributes.last_commit.id")?;
    let urls = gitlab_urls(&v);
    Ok(Some(PullRequest {
        urls,
        base_branch: base_branch.to_string(),
        number,
        head_sha: head_sha.to_string(),
        head_ref: format!("refs/merge-requests/{number}/head"),
    }))
}

/// The push of a GitHub `push` payload.
pub fn parse_github_push(body: &[u8]) -> Result<Option<Push>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let Some(branch) = v.get("ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("refs/heads/")) else {
        return Ok(None); // a tag push or another ref: not a branch head
    };
    let urls = github_urls(&v)?;
    Ok(Some(Push { urls, branch: branch.to_string() }))
}

/// The push of a GitLab `Push Hook` payload.
pub fn parse_gitlab_push(body: &[u8]) -> Result<Option<Push>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let Some(branch) = v.get("ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("refs/heads/")) else { return Ok(None) };
    let urls = gitlab_urls(&v);
    Ok(Some(Push { urls, branch: branch.to_string() }))
}

/// `host/owner/name` of a Git URL (https, ssh, scp-style, file), lowercased, without `.git`.
/// Normalizing a normalized URL changes nothing.
pub fn normalize_url(url: &str) -> String {
    let u = trim_suffixes(&url.trim().to_ascii_lowercase()).to_string();
    let (had_scheme, rest) = match u.split_once("://") {
        Some((_, rest)) => (true, rest),
        None => (false, u.as_str()),
    };
    // user info ends at the last '@' before the path
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let without_user = rest[..authority_end].rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let joined = match without_user.split_once(':') {
        // scp-style git@host:owner/repo → host/owner/repo
        Some((host, path)) if !had_scheme && !host.contains('/') => format!("{host}/{path}"),
        // host:port/path → host/path
        Some((host, port_and_path)) if had_scheme && !host.contains('/') => {
            let path = port_and_path.split_once('/').map_or("", |(_, p)| p);
            format!("{host}/{path}")
        }
        _ => without_user.to_string(),
    };
    trim_suffixes(&joined).to_string()
}

/// Without trailing slashes and `.git`, however they alternate.
fn trim_suffixes(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_end_matches('/').trim_end_matches(".git");
        if trimmed == s {
            return s;
        }
        s = trimmed;
    }
}

#[cfg(test)]
mod pull_request_tests {
    use super::*;

    #[test]
    fn pull_and_merge_requests_name_their_base_head_and_ref() {
        let gh = br#"{"action": "synchronize", "number": 7, "pull_request": {"base": {"ref": "main"}, "head": {"sha": "abc"}}, "repository": {"clone_url": "https://github.com/acme/d.git"}}"#;
        let pr = parse_github_pull_request(gh).unwrap().unwrap();
        assert_eq!(
            (pr.base_branch.as_str(), pr.number, pr.head_sha.as_str(), pr.head_ref.as_str()),
            ("main", 7, "abc", "refs/pull/7/head")
        );
        assert_eq!(pr.urls, ["https://github.com/acme/d.git"]);
        let closed = br#"{"action": "closed", "number": 7}"#;
        assert_eq!(parse_github_pull_request(closed).unwrap(), None);
        assert!(parse_github_pull_request(br#"{"action": "opened"}"#).unwrap_err().contains("pull_request"));
        assert!(parse_github_pull_request(b"not json").is_err());
        let gl = br#"{"object_kind": "merge_request", "project": {"git_http_url": "https://gitlab.com/g/d.git"}, "object_attributes": {"action": "update", "iid": 3, "target_branch": "main", "last_commit": {"id": "def"}}}"#;
        let mr = parse_gitlab_merge_request(gl).unwrap().unwrap();
        assert_eq!((mr.number, mr.head_ref.as_str(), mr.head_sha.as_str()), (3, "refs/merge-requests/3/head", "def"));
        assert_eq!(parse_gitlab_merge_request(br#"{"object_attributes": {"action": "merge"}}"#).unwrap(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_one_repository_normalize_alike() {
        let want = "github.com/acme/deploys";
        for u in [
            "https://github.com/acme/deploys.git",
            "https://github.com/Acme/Deploys",
            "git@github.com:acme/deploys.git",
            "ssh://git@github.com:22/acme/deploys.git",
            "git://github.com/acme/deploys.git",
            "https://token@github.com/acme/deploys/",
        ] {
            assert_eq!(normalize_url(u), want, "{u}");
        }
        assert_eq!(normalize_url("file:///tmp/repo"), "/tmp/repo");
        assert_eq!(normalize_url("/tmp/repo"), "/tmp/repo");
        // found by the fuzzer: a port without a path left a trailing slash, so normalizing twice differed
        assert_eq!(normalize_url("https://gitlab.com:22.git"), "gitlab.com");
        assert_eq!(normalize_url("https://h/a@b/c"), "h/a@b/c", "an @ in the path is not user info");
    }

    #[test]
    fn pushes_are_parsed_and_tags_are_not_branch_pushes() {
        let gh = br#"{"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/acme/deploys.git", "ssh_url": "git@github.com:acme/deploys.git"}}"#;
        let push = parse_github_push(gh).unwrap().unwrap();
        assert_eq!(push.branch, "main");
        assert_eq!(push.urls.len(), 2);
        assert_eq!(parse_github_push(br#"{"ref": "refs/tags/v1", "repository": {}}"#).unwrap(), None);
        assert!(parse_github_push(b"{not json").unwrap_err().contains("not JSON"));
        assert!(parse_github_push(br#"{"ref": "refs/heads/main"}"#).unwrap_err().contains("repository"));
        let gl = br#"{"ref": "refs/heads/prod", "project": {"git_http_url": "https://gitlab.com/acme/deploys.git"}}"#;
        assert_eq!(parse_gitlab_push(gl).unwrap().unwrap().branch, "prod");
    }
}
