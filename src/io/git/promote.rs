//! Writing a promotion (issue 26): a commit on the next stage's branch that carries the release's
//! app files (copied from the first stage's commit, folders swapped), pushed with the
//! repository's credentials. Replay-safe: before writing, the branch is fetched and its recent
//! history searched for the release's trailer; a commit already there is answered, never a
//! second one. A push the server refuses (the branch moved) is an error: the next attempt
//! fetches again and rebuilds on the new head.
//!
//! Blocking (git2): callers run it on `spawn_blocking`. Must never write into a user's checkout
//! (only the controller's bare mirror) or force-push a branch.

use super::source::{GitError, GitSource};
use git2::{Oid, Repository};
use gitmoxi_deploy::spec::FileKind;
use std::path::Path;

/// How far back the branch's history is searched for a promotion's trailer.
const TRAILER_DEPTH: usize = 200;
/// At most this many bytes of app files in one promotion.
const MAX_PROMOTION_BYTES: usize = 16 << 20;

/// What a promotion writes.
#[derive(Debug, Clone)]
pub struct PromotionPlan {
    /// The first stage's mirror and the release's commit in it.
    pub source_mirror: std::path::PathBuf,
    pub source_commit: String,
    /// Apps whose files are copied: (prefix in the source, prefix in the target).
    pub apps: Vec<(String, String)>,
    /// Apps removed in the target (prefixes in the target).
    pub removed: Vec<String>,
    /// The commit message (ends with the trailer).
    pub message: String,
    /// The trailer that identifies the promotion.
    pub trailer: String,
}

/// How a promotion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promoted {
    /// A new commit was pushed.
    Pushed(String),
    /// The branch already carries it (an earlier attempt's push landed).
    Found(String),
}

impl GitSource {
    /// Writes `plan` onto this source's branch and pushes it (`to_ref`: `refs/heads/<branch>`, or
    /// a new branch for a pull request, built on this source's branch).
    pub fn promote(&self, plan: &PromotionPlan, to_ref: &str) -> Result<Promoted, GitError> {
        let base = self.fetch()?;
        let repo = Repository::open_bare(self.mirror()).map_err(|e| open_err(self.mirror(), e))?;
        if let Some(found) = find_trailer(&repo, &base, &plan.trailer)? {
            return Ok(Promoted::Found(found));
        }
        let existing = if to_ref == self.branch_ref() { None } else { self.fetch_ref(to_ref).ok() };
        if let Some(found) = existing.as_deref().map(|c| find_trailer(&repo, c, &plan.trailer)).transpose()?.flatten() {
            return Ok(Promoted::Found(found));
        }
        let commit = write_commit(&repo, &base, plan)?;
        let local = format!("refs/gitmoxi-promote/{}", commit);
        repo.reference(&local, Oid::from_str(&commit).map_err(read_err)?, true, "gitmoxi promotion").map_err(read_err)?;
        self.push(&repo, &local, to_ref)?;
        Ok(Promoted::Pushed(commit))
    }

    fn branch_ref(&self) -> String {
        format!("refs/heads/{}", self.branch())
    }

    /// Pushes `local` to `remote_ref` (never forced: a moved branch refuses it).
    fn push(&self, repo: &Repository, local: &str, remote_ref: &str) -> Result<(), GitError> {
        let push_err = |message: String| GitError::Push { url: super::source::redact(self.url()), branch: remote_ref.to_string(), message };
        let mut remote = repo.remote_anonymous(self.url()).map_err(|e| push_err(e.message().to_string()))?;
        let refusal: std::sync::Arc<std::sync::Mutex<Option<String>>> = std::sync::Arc::default();
        let mut callbacks = self.callbacks(refusal.clone());
        let rejected: std::sync::Arc<std::sync::Mutex<Option<String>>> = std::sync::Arc::default();
        let note = rejected.clone();
        callbacks.push_update_reference(move |name, status| {
            if let Some(why) = status {
                *crate::base::sync::lock(&note) = Some(format!("{name}: {why}"));
            }
            Ok(())
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(callbacks);
        let refspec = format!("{local}:{remote_ref}");
        remote
            .push(&[refspec.as_str()], Some(&mut opts))
            .map_err(|e| push_err(crate::base::sync::lock(&refusal).take().unwrap_or_else(|| e.message().to_string())))?;
        if let Some(why) = crate::base::sync::lock(&rejected).take() {
            return Err(push_err(format!("the server refused the update ({why}); the next attempt builds on the branch's new head")));
        }
        Ok(())
    }
}

fn open_err(path: &Path, e: git2::Error) -> GitError {
    GitError::Open { path: path.display().to_string(), message: e.message().to_string() }
}

fn read_err(e: git2::Error) -> GitError {
    GitError::Read(e.message().to_string())
}

/// The newest commit within [`TRAILER_DEPTH`] of `from` whose message carries `trailer`.
pub fn find_trailer(repo: &Repository, from: &str, trailer: &str) -> Result<Option<String>, GitError> {
    let mut walk = repo.revwalk().map_err(read_err)?;
    walk.push(Oid::from_str(from).map_err(read_err)?).map_err(read_err)?;
    for oid in walk.take(TRAILER_DEPTH) {
        let oid = oid.map_err(read_err)?;
        let commit = repo.find_commit(oid).map_err(read_err)?;
        if commit.message_bytes().split(|b| *b == b'\n').any(|line| line == trailer.as_bytes()) {
            return Ok(Some(oid.to_string()));
        }
    }
    Ok(None)
}

/// The app files of `prefix` in `tree` (every file [`FileKind::classify`] assigns to it).
fn app_files(repo: &Repository, tree: &git2::Tree<'_>, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, GitError> {
    let mut out = Vec::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let Some(name) = entry.name() else { return git2::TreeWalkResult::Ok };
        let path = format!("{dir}{name}");
        if entry.kind() == Some(git2::ObjectType::Blob) && FileKind::classify(&path).is_some_and(|(p, _)| p == prefix) {
            match repo.find_blob(entry.id()) {
                Ok(blob) => out.push((path, blob.content().to_vec())),
                Err(e) => {
                    failure = Some(read_err(e));
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(read_err)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The paths of `prefix`'s app files in `tree`.
fn app_paths(tree: &git2::Tree<'_>, prefix: &str) -> Result<Vec<String>, GitError> {
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if let Some(name) = entry.name() {
            let path = format!("{dir}{name}");
            if entry.kind() == Some(git2::ObjectType::Blob) && FileKind::classify(&path).is_some_and(|(p, _)| p == prefix) {
                out.push(path);
            }
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(read_err)?;
    Ok(out)
}

/// Builds the promotion commit on `base` in `repo` (the target's mirror): the source's app files
/// copied (blobs read from the source mirror), files the source no longer has removed.
fn write_commit(repo: &Repository, base: &str, plan: &PromotionPlan) -> Result<String, GitError> {
    let source = Repository::open_bare(&plan.source_mirror).map_err(|e| open_err(&plan.source_mirror, e))?;
    let source_tree = source.find_commit(Oid::from_str(&plan.source_commit).map_err(read_err)?).and_then(|c| c.tree()).map_err(read_err)?;
    let parent = repo.find_commit(Oid::from_str(base).map_err(read_err)?).map_err(read_err)?;
    let base_tree = parent.tree().map_err(read_err)?;
    let mut index = git2::Index::new().map_err(read_err)?;
    index.read_tree(&base_tree).map_err(read_err)?;
    let mut bytes = 0usize;
    for (from, to) in &plan.apps {
        let wanted = app_files(&source, &source_tree, from)?;
        let mut keep = std::collections::BTreeSet::new();
        for (path, content) in wanted {
            bytes += content.len();
            if bytes > MAX_PROMOTION_BYTES {
                return Err(GitError::Read(format!(
                    "the release's app files pass {} MiB; promote fewer apps at once",
                    MAX_PROMOTION_BYTES >> 20
                )));
            }
            let target = format!("{to}{}", &path[from.len()..]);
            // the blob goes into the target's mirror; the index (in memory) only names it
            let blob = repo.blob(&content).map_err(read_err)?;
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: u32::try_from(content.len()).unwrap_or(u32::MAX),
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: target.clone().into_bytes(),
            };
            index.add(&entry).map_err(read_err)?;
            keep.insert(target);
        }
        for stale in app_paths(&base_tree, to)?.into_iter().filter(|p| !keep.contains(p)) {
            index.remove_path(Path::new(&stale)).map_err(read_err)?;
        }
    }
    for gone in &plan.removed {
        for path in app_paths(&base_tree, gone)? {
            index.remove_path(Path::new(&path)).map_err(read_err)?;
        }
    }
    let tree_id = index.write_tree_to(repo).map_err(read_err)?;
    let tree = repo.find_tree(tree_id).map_err(read_err)?;
    let signature = git2::Signature::now("gitmoxi", "gitmoxi@localhost").map_err(read_err)?;
    let oid = repo.commit(None, &signature, &signature, &plan.message, &tree, &[&parent]).map_err(read_err)?;
    Ok(oid.to_string())
}

/// Whether `head` carries `commit` in `mirror`: it is `commit` or descends from it, or (a pull
/// request merged by squash or rebase) its recent history has a commit with `trailer`.
pub fn carries(mirror: &Path, head: &str, commit: &str, trailer: Option<&str>) -> bool {
    let Ok(repo) = Repository::open_bare(mirror) else { return false };
    let (Ok(h), Ok(c)) = (Oid::from_str(head), Oid::from_str(commit)) else { return false };
    if h == c || repo.graph_descendant_of(h, c).unwrap_or(false) {
        return true;
    }
    trailer.is_some_and(|t| find_trailer(&repo, head, t).ok().flatten().is_some())
}
