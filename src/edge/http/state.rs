//! What every handler is given (issue 24: a leaf the handlers use, apart from the router that
//! uses them): the controller, access, webhook secrets, the repositories and the page.

use super::{access, hosts, ui};
use crate::runtime::controller::Controller;
use std::sync::Arc;

#[derive(Clone)]
pub struct HttpState {
    pub controller: Arc<Controller>,
    /// The API token, the named tokens and who may answer gates.
    pub access: Arc<access::Access>,
    /// Webhook secrets and the branches a push can wake.
    pub webhooks: Arc<Webhooks>,
    /// The tracked repositories (sources, wake-ups, mirrors for the diagnosis).
    pub repos: Arc<crate::runtime::repos::Repos>,
    pub state_dir: std::path::PathBuf,
    /// Optional model summaries for diagnoses.
    pub llm: Option<crate::integrations::llm::LlmConfig>,
    /// The `Host` names answered (DNS rebinding defense).
    pub allowed_hosts: hosts::AllowedHosts,
    /// Source networks whose `/api/v1` calls (gmctl's, which carry no token) need no token.
    pub gmctl_tokenless_networks: Arc<Vec<ipnet::IpNet>>,
    /// The URL users reach gitmoxi at (the page accepts state changes from this origin too).
    pub public_url: Option<String>,
    /// The web page's templates and live feed.
    pub ui: Arc<ui::Ui>,
    /// Releases and their promotions (`[[pipelines]]`; `None`: none configured).
    pub pipelines: Option<Arc<crate::runtime::pipelines::Pipelines>>,
}

/// Webhook secrets (what a push can wake comes from the server's repositories).
#[derive(Clone, Default)]
pub struct Webhooks {
    pub github_secret: Option<String>,
    pub gitlab_token: Option<String>,
    /// Slack's interactive callback (gate buttons).
    pub slack: Option<crate::integrations::slack::SlackInteractive>,
}
