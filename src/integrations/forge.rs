//! The forge (GitHub, GitHub Enterprise, GitLab, self-hosted GitLab): each app's deployment of a
//! commit is reported as the commit status `gitmoxi/<app>` — pending while it deploys, success,
//! failure with the cause — with a link when a public URL is configured; a pull request's plan
//! preview is one comment, updated in place.
//!
//! Delivered by the notification worker ([`crate::integrations::notify`]) in a queue of each repository's own
//! (a slow forge delays no other destination; a commit's statuses keep their order): bounded
//! retries, never blocking a deployment. The token is read on use, sent only to the configured API host (https, or http on
//! loopback for tests), and never logged.

use crate::io::credentials::TokenSource;
use serde_json::{json, Value};

/// Which REST API a repository's statuses go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// `POST {api}/repos/{owner}/{repo}/statuses/{sha}` (GitHub and GitHub Enterprise).
    GitHub,
    /// `POST {api}/projects/{id}/statuses/{sha}` (GitLab.com and self-hosted).
    GitLab,
}

impl Forge {
    /// `github` or `gitlab`.
    pub fn parse(text: &str) -> Result<Forge, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "github" => Ok(Forge::GitHub),
            "gitlab" => Ok(Forge::GitLab),
            other => Err(format!("provider '{other}' is unknown; use github or gitlab")),
        }
    }
}

/// Where one repository's statuses go (`[repos.forge]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeTarget {
    pub forge: Forge,
    /// The REST API base: `https://api.github.com`, `https://ghe.example/api/v3`,
    /// `https://gitlab.com/api/v4`, …
    pub api_url: String,
    /// `owner/repo` (GitHub) or the project's path or numeric id (GitLab).
    pub project: String,
    /// The token with permission to write statuses.
    pub token: TokenSource,
}

impl ForgeTarget {
    /// Checks the API URL: https, or http to a loopback host (a local stub); the token goes
    /// nowhere else.
    pub fn check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.api_url).map_err(|e| format!("api_url '{}' is not a URL: {e}", self.api_url))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "::1" | "[::1]" | "localhost"));
        match url.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            other => Err(format!("api_url '{}' uses {other}: the status token goes only over https", self.api_url)),
        }
    }
}

/// The default API base of a repository URL's host (github.com and gitlab.com; others must be
/// configured).
pub fn default_api_url(forge: Forge, repo_url: &str) -> Option<String> {
    let host = reqwest::Url::parse(repo_url).ok()?.host_str()?.to_string();
    match (forge, host.as_str()) {
        (Forge::GitHub, "github.com") => Some("https://api.github.com".into()),
        (Forge::GitLab, "gitlab.com") => Some("https://gitlab.com/api/v4".into()),
        (Forge::GitHub, _) | (Forge::GitLab, _) => None,
    }
}

/// `owner/repo` of a repository URL (`https://host/owner/repo.git` → `owner/repo`).
pub fn project_of(repo_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(repo_url).ok()?;
    let path = url.path().trim_matches('/').trim_end_matches(".git");
    (!path.is_empty()).then(|| path.to_string())
}

/// A commit status's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    /// The deployment runs.
    Pending,
    /// It deployed (or deleted) what the commit says.
    Success,
    /// It failed or rolled back.
    Failure,
    /// A newer commit replaced it before it finished.
    Canceled,
}

impl StatusState {
    /// As each forge spells it (GitHub has no canceled: `error`).
    pub fn as_str(self, forge: Forge) -> &'static str {
        match (self, forge) {
            (StatusState::Pending, Forge::GitHub | Forge::GitLab) => "pending",
            (StatusState::Success, Forge::GitHub | Forge::GitLab) => "success",
            (StatusState::Failure, Forge::GitHub) => "failure",
            (StatusState::Failure, Forge::GitLab) => "failed",
            (StatusState::Canceled, Forge::GitHub) => "error",
            (StatusState::Canceled, Forge::GitLab) => "canceled",
        }
    }
}

/// One status to post.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitStatus {
    pub sha: String,
    /// `gitmoxi/<app>`.
    pub context: String,
    pub state: StatusState,
    /// At most 140 characters (GitHub's limit).
    pub description: String,
    pub target_url: Option<String>,
}

/// The status of a notification event, if it has one (a deployment's start, traffic and end).
pub fn status_of(event: &crate::integrations::notify::Event, public_url: Option<&str>) -> Option<CommitStatus> {
    let (state, description) = match event.stage.as_str() {
        "started" => (StatusState::Pending, format!("deploying ({})", event.strategy.as_deref().unwrap_or("deployment"))),
        "traffic" => (StatusState::Pending, event.message.clone()),
        "succeeded" => (StatusState::Success, "deployed".to_string()),
        "deleted" => (StatusState::Success, "deleted from AWS".to_string()),
        "failed" | "rolled_back" => {
            let what = if event.stage == "failed" { "failed" } else { "rolled back" };
            (StatusState::Failure, format!("{what}: {}", event.cause.as_deref().unwrap_or(&event.message)))
        }
        "superseded" => (StatusState::Canceled, "superseded by a newer commit before it finished".to_string()),
        // issue 26: a change held before it starts says why on the commit
        "blocked" => (StatusState::Failure, event.message.clone()),
        "frozen" => (StatusState::Pending, event.message.clone()),
        _ => return None,
    };
    if event.commit.len() != 40 {
        return None;
    }
    let target_url = match (public_url, &event.deployment) {
        (Some(base), Some(id)) => Some(format!("{}/api/v2/deployments/{id}", base.trim_end_matches('/'))),
        (Some(_), None) | (None, _) => None,
    };
    Some(CommitStatus {
        sha: event.commit.clone(),
        context: format!("gitmoxi/{}", event.app),
        state,
        description: clip(&description, 140),
        target_url,
    })
}

/// At most `max` characters, an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// The request of a status: URL and JSON body, as each forge documents them.
pub fn request(target: &ForgeTarget, status: &CommitStatus) -> (String, Value) {
    let base = target.api_url.trim_end_matches('/');
    match target.forge {
        Forge::GitHub => {
            let mut body =
                json!({"state": status.state.as_str(Forge::GitHub), "context": status.context, "description": status.description});
            if let Some(url) = &status.target_url {
                body["target_url"] = json!(url);
            }
            (format!("{base}/repos/{}/statuses/{}", target.project, status.sha), body)
        }
        Forge::GitLab => {
            let project = percent_encode(&target.project);
            let mut body = json!({"state": status.state.as_str(Forge::GitLab), "name": status.context, "description": status.description});
            if let Some(url) = &status.target_url {
                body["target_url"] = json!(url);
            }
            (format!("{base}/projects/{project}/statuses/{}", status.sha), body)
        }
    }
}

/// A GitLab project path as one URL segment (`group/sub/project` → `group%2Fsub%2Fproject`).
fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Posts one status; `Ok` also when GitLab answers that the status already is in that state.
pub async fn post(client: &reqwest::Client, target: &ForgeTarget, token: &str, status: &CommitStatus) -> Result<(), String> {
    let (url, body) = request(target, status);
    let request = client.post(&url).json(&body).header("User-Agent", "gitmoxi");
    let request = match target.forge {
        Forge::GitHub => {
            request.bearer_auth(token).header("Accept", "application/vnd.github+json").header("X-GitHub-Api-Version", "2022-11-28")
        }
        Forge::GitLab => request.header("PRIVATE-TOKEN", token),
    };
    let response = request.send().await.map_err(|e| format!("the forge API is unreachable: {}", e.without_url()))?;
    let code = response.status();
    if code.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    if target.forge == Forge::GitLab && code.as_u16() == 400 && text.contains("Cannot transition status") {
        return Ok(());
    }
    Err(format!("the forge answered {code}: {}", clip(&text, 200)))
}

/// The URL and method of a pull-request comment: a new one, or an update of `existing`.
pub fn comment_request(target: &ForgeTarget, number: u64, existing: Option<u64>) -> (reqwest::Method, String) {
    let base = target.api_url.trim_end_matches('/');
    match (target.forge, existing) {
        (Forge::GitHub, None) => (reqwest::Method::POST, format!("{base}/repos/{}/issues/{number}/comments", target.project)),
        (Forge::GitHub, Some(id)) => (reqwest::Method::PATCH, format!("{base}/repos/{}/issues/comments/{id}", target.project)),
        (Forge::GitLab, None) => {
            (reqwest::Method::POST, format!("{base}/projects/{}/merge_requests/{number}/notes", percent_encode(&target.project)))
        }
        (Forge::GitLab, Some(id)) => {
            (reqwest::Method::PUT, format!("{base}/projects/{}/merge_requests/{number}/notes/{id}", percent_encode(&target.project)))
        }
    }
}

/// Writes the one comment of a pull request: updates `existing` in place, or creates it (also
/// when the old one was deleted); returns the comment's id.
pub async fn upsert_comment(
    client: &reqwest::Client,
    target: &ForgeTarget,
    token: &str,
    number: u64,
    body: &str,
    existing: Option<u64>,
) -> Result<u64, String> {
    let send = |existing: Option<u64>| {
        let (method, url) = comment_request(target, number, existing);
        let request = client.request(method, url).json(&json!({"body": body})).header("User-Agent", "gitmoxi");
        let request = match target.forge {
            Forge::GitHub => {
                request.bearer_auth(token).header("Accept", "application/vnd.github+json").header("X-GitHub-Api-Version", "2022-11-28")
            }
            Forge::GitLab => request.header("PRIVATE-TOKEN", token),
        };
        request.send()
    };
    let mut response = send(existing).await.map_err(|e| format!("the forge API is unreachable: {}", e.without_url()))?;
    if existing.is_some() && response.status().as_u16() == 404 {
        response = send(None).await.map_err(|e| format!("the forge API is unreachable: {}", e.without_url()))?;
    }
    let code = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !code.is_success() {
        return Err(format!("the forge answered {code} to the plan comment: {}", clip(&answer.to_string(), 200)));
    }
    answer.get("id").and_then(Value::as_u64).ok_or_else(|| "the forge's answer has no comment id".to_string())
}

/// Opens a pull request (GitHub) or merge request (GitLab) from `head` into `base` (issue 26: a
/// promotion with `via = "pull_request"`); one that is already open for `head` is answered
/// instead of a second. Returns its web URL.
pub async fn open_pull_request(
    client: &reqwest::Client,
    target: &ForgeTarget,
    token: &str,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<String, String> {
    let api = target.api_url.trim_end_matches('/');
    let authed = |request: reqwest::RequestBuilder| match target.forge {
        Forge::GitHub => request
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "gitmoxi"),
        Forge::GitLab => request.header("PRIVATE-TOKEN", token).header("User-Agent", "gitmoxi"),
    };
    let unreachable = |e: reqwest::Error| format!("the forge API is unreachable: {}", e.without_url());
    let (create, payload, list, url_field) = match target.forge {
        Forge::GitHub => {
            let owner = target.project.split('/').next().unwrap_or_default();
            (
                format!("{api}/repos/{}/pulls", target.project),
                json!({"title": title, "head": head, "base": base, "body": body}),
                format!("{api}/repos/{}/pulls?state=open&head={}", target.project, percent_encode(&format!("{owner}:{head}"))),
                "html_url",
            )
        }
        Forge::GitLab => {
            let project = percent_encode(&target.project);
            (
                format!("{api}/projects/{project}/merge_requests"),
                json!({"title": title, "source_branch": head, "target_branch": base, "description": body}),
                format!("{api}/projects/{project}/merge_requests?state=opened&source_branch={}", percent_encode(head)),
                "web_url",
            )
        }
    };
    let response = authed(client.post(create).json(&payload)).send().await.map_err(unreachable)?;
    let code = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if code.is_success() {
        return answer
            .get(url_field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "the forge's answer has no URL".to_string());
    }
    // already open (GitHub 422, GitLab 409): the open one is the promotion's
    if matches!(code.as_u16(), 409 | 422) {
        let response = authed(client.get(list)).send().await.map_err(unreachable)?;
        let open: Value = response.json().await.unwrap_or(Value::Null);
        if let Some(url) = open.as_array().and_then(|a| a.first()).and_then(|pr| pr.get(url_field)).and_then(Value::as_str) {
            return Ok(url.to_string());
        }
    }
    Err(format!("the forge answered {code} to the pull request: {}", clip(&answer.to_string(), 200)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::notify::Event;

    fn event(stage: &str) -> Event {
        Event {
            stage: stage.into(),
            app: "apps/web/web".into(),
            repo: "deploys".into(),
            branch: "main".into(),
            commit: "a".repeat(40),
            deployment: Some("dep-1".into()),
            strategy: Some("rolling".into()),
            phase: None,
            traffic: None,
            outcome: None,
            cause: Some("stability timeout after 300 s".into()),
            analysis: None,
            message: "m".into(),
            app_webhooks: Vec::new(),
            gate: None,
        }
    }

    #[test]
    fn each_stage_maps_to_the_state_each_forge_spells() {
        let cases = [
            ("started", Some(("pending", "pending"))),
            ("traffic", Some(("pending", "pending"))),
            ("succeeded", Some(("success", "success"))),
            ("deleted", Some(("success", "success"))),
            ("failed", Some(("failure", "failed"))),
            ("rolled_back", Some(("failure", "failed"))),
            ("superseded", Some(("error", "canceled"))),
            ("blocked", Some(("failure", "failed"))),
            ("frozen", Some(("pending", "pending"))),
            ("held", None),
        ];
        for (stage, want) in cases {
            let got = status_of(&event(stage), None).map(|s| (s.state.as_str(Forge::GitHub), s.state.as_str(Forge::GitLab)));
            assert_eq!(got, want, "{stage}");
        }
        let failed = status_of(&event("rolled_back"), Some("https://gitmoxi.example/")).unwrap();
        assert_eq!(failed.description, "rolled back: stability timeout after 300 s");
        assert_eq!(failed.context, "gitmoxi/apps/web/web");
        assert_eq!(failed.target_url.as_deref(), Some("https://gitmoxi.example/api/v2/deployments/dep-1"));
        let mut long = event("failed");
        long.cause = Some("x".repeat(500));
        assert_eq!(status_of(&long, None).unwrap().description.chars().count(), 140);
    }

    #[test]
    fn requests_follow_each_forges_rest_shape_and_the_token_goes_only_over_https() {
        let status = status_of(&event("succeeded"), None).unwrap();
        let github = ForgeTarget {
            forge: Forge::GitHub,
            api_url: "https://ghe.example/api/v3/".into(),
            project: "acme/deploys".into(),
            token: TokenSource::Env("T".into()),
        };
        let (url, body) = request(&github, &status);
        assert_eq!(url, format!("https://ghe.example/api/v3/repos/acme/deploys/statuses/{}", "a".repeat(40)));
        assert_eq!(body, json!({"state": "success", "context": "gitmoxi/apps/web/web", "description": "deployed"}));
        let gitlab = ForgeTarget {
            forge: Forge::GitLab,
            api_url: "https://gitlab.example/api/v4".into(),
            project: "group/sub/deploys".into(),
            ..github.clone()
        };
        let (url, body) = request(&gitlab, &status);
        assert_eq!(url, format!("https://gitlab.example/api/v4/projects/group%2Fsub%2Fdeploys/statuses/{}", "a".repeat(40)));
        assert_eq!(body["name"], "gitmoxi/apps/web/web");
        assert!(github.check().is_ok());
        assert!(ForgeTarget { api_url: "http://127.0.0.1:9999".into(), ..github.clone() }.check().is_ok());
        let err = ForgeTarget { api_url: "http://ghe.example/api/v3".into(), ..github }.check().unwrap_err();
        assert!(err.contains("only over https"), "{err}");
        assert_eq!(project_of("https://github.com/acme/deploys.git").as_deref(), Some("acme/deploys"));
        assert_eq!(default_api_url(Forge::GitHub, "https://github.com/acme/deploys.git").as_deref(), Some("https://api.github.com"));
        assert_eq!(default_api_url(Forge::GitLab, "https://gitlab.com/g/p.git").as_deref(), Some("https://gitlab.com/api/v4"));
        assert_eq!(default_api_url(Forge::GitHub, "https://ghe.example/acme/d.git"), None);
    }

    #[test]
    fn a_preview_comment_is_created_once_then_updated_where_each_forge_documents_it() {
        let github = ForgeTarget {
            forge: Forge::GitHub,
            api_url: "https://api.github.com".into(),
            project: "acme/deploys".into(),
            token: TokenSource::Env("T".into()),
        };
        let cases = [
            (github.clone(), None, "POST", "https://api.github.com/repos/acme/deploys/issues/7/comments"),
            (github.clone(), Some(42), "PATCH", "https://api.github.com/repos/acme/deploys/issues/comments/42"),
            (
                ForgeTarget {
                    forge: Forge::GitLab,
                    api_url: "https://gitlab.example/api/v4".into(),
                    project: "g/deploys".into(),
                    ..github.clone()
                },
                None,
                "POST",
                "https://gitlab.example/api/v4/projects/g%2Fdeploys/merge_requests/7/notes",
            ),
            (
                ForgeTarget {
                    forge: Forge::GitLab,
                    api_url: "https://gitlab.example/api/v4".into(),
                    project: "g/deploys".into(),
                    ..github
                },
                Some(42),
                "PUT",
                "https://gitlab.example/api/v4/projects/g%2Fdeploys/merge_requests/7/notes/42",
            ),
        ];
        for (target, existing, method, url) in cases {
            let (m, u) = comment_request(&target, 7, existing);
            assert_eq!((m.as_str(), u.as_str()), (method, url));
        }
    }
}
