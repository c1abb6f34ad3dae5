//! Pins (issue 26): `gitmoxi rollback APP --to COMMIT|previous` on a steady app redeploys the
//! app as a deployment that succeeded before deployed it, and pins it there: the branch head's
//! files of the app are replaced by the pinned ones until `gitmoxi unpin APP`, or until a commit
//! changes the app's files (its fingerprint in the branch head is no longer the one it had when
//! the pin was set) — so an unrelated push cannot silently undo the emergency rollback.
//!
//! The target comes from the store's deployment history: each record keeps the app as it was
//! deployed (`desired` / `desired_lambda`), which is what AWS got at that commit.

use crate::record::{AppliedState, DeploymentRecord, Operation, Outcome};
use crate::spec::{AppSpec, DesiredApp, Snapshot};
use serde::{Deserialize, Serialize};

/// Where an operator rolls back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTo {
    /// The newest deployment that succeeded with other files than the applied ones.
    Previous,
    /// The newest successful deployment of this commit (a prefix of 7 or more hex digits).
    Commit(String),
}

impl RollbackTo {
    /// `previous` or a commit.
    pub fn parse(text: &str) -> Result<RollbackTo, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("previous") {
            return Ok(RollbackTo::Previous);
        }
        if t.len() >= 7 && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(RollbackTo::Commit(t.to_ascii_lowercase()));
        }
        Err(format!("--to is \"{text}\"; give `previous` or a commit (7 to 40 hex digits)"))
    }
}

/// A pin as stored (the heads owner's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    /// The commit the app is pinned at.
    pub commit: String,
    /// The pinned fingerprint.
    pub fingerprint: String,
    /// The app's fingerprint in the branch head when the pin was set (`None`: the head had no
    /// valid app there): a head with another one releases the pin.
    pub head_fingerprint: Option<String>,
    /// Who pinned it, and how.
    pub by: String,
    /// When.
    pub at_ms: u64,
    /// The deployment it was taken from.
    pub from_deployment: String,
    /// The app as deployed then.
    pub app: DesiredApp,
}

/// The deployment `to` names among `deployments` (newest first), for an app that applied
/// `applied`: a successful deploy that kept its desired app.
pub fn rollback_target<'a>(
    deployments: &'a [DeploymentRecord],
    applied: &AppliedState,
    to: &RollbackTo,
) -> Result<&'a DeploymentRecord, String> {
    let usable = |r: &&DeploymentRecord| {
        r.outcome == Some(Outcome::Succeeded) && r.operation == Operation::Deploy && (r.desired.is_some() || r.desired_lambda.is_some())
    };
    match to {
        RollbackTo::Previous => deployments
            .iter()
            .filter(usable)
            .find(|r| applied.fingerprint.as_deref() != Some(r.fingerprint.as_str()))
            .ok_or_else(|| "no earlier successful deployment with other files is kept for this app; give a commit with --to".to_string()),
        RollbackTo::Commit(commit) => deployments.iter().filter(usable).find(|r| r.commit.starts_with(commit.as_str())).ok_or_else(|| {
            format!("no successful deployment of commit {commit} is kept for this app (the store keeps its last 100 deployments); `gitmoxi deployments APP` lists them")
        }),
    }
}

/// The app as `record` deployed it, with the paths of `current` (the head's app, when it has one).
pub fn desired_from_record(record: &DeploymentRecord, current: Option<&DesiredApp>) -> Option<DesiredApp> {
    let spec = match (&record.desired, &record.desired_lambda) {
        (Some(ecs), _) => AppSpec::Ecs(ecs.clone()),
        (None, Some(lambda)) => AppSpec::Lambda(lambda.clone()),
        (None, None) => return None,
    };
    let files = current
        .map(|c| c.files.clone())
        .unwrap_or_else(|| crate::spec::AppFiles { prefix: record.app.prefix.clone(), files: Default::default() });
    Some(DesiredApp {
        prefix: record.app.prefix.clone(),
        kind: record.kind,
        files,
        fingerprint: record.fingerprint.clone(),
        identity: record.identity.clone(),
        spec,
        rendered: Default::default(),
        warnings: Vec::new(),
    })
}

/// What a pin does to a loaded head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinEffect {
    /// The head's app is replaced by the pinned one.
    Kept,
    /// The head changed the app's files (or removed it): the pin is released, the head wins.
    Released(String),
}

/// Replaces each pinned app of `snapshot` (the branch head as loaded) by its pin, or releases
/// the pin when the head's fingerprint of the app is not the one it had when the pin was set.
pub fn apply(snapshot: &mut Snapshot, pins: &[(String, Pin)]) -> Vec<(String, PinEffect)> {
    let mut out = Vec::new();
    for (prefix, pin) in pins {
        let head_fp = snapshot.apps.get(prefix).map(|a| a.as_ref().ok().map(|a| a.fingerprint.clone()));
        let effect = match head_fp {
            None => PinEffect::Released("the app's files are gone from the branch head".into()),
            Some(fp) if fp != pin.head_fingerprint => PinEffect::Released(format!(
                "a newer commit changed the app's files ({})",
                fp.as_deref().map_or("now invalid".to_string(), |f| format!("fingerprint {}", crate::spec::fingerprint::short(f)))
            )),
            Some(_) => {
                snapshot.apps.insert(prefix.clone(), Ok(pin.app.clone()));
                PinEffect::Kept
            }
        };
        out.push((prefix.clone(), effect));
    }
    out
}
