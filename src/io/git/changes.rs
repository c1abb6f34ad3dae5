//! The deployment files a commit changed (Gitmoxi's `relevant_files` shape): for ECS and for
//! Lambda, `added_or_modified` and `deleted`, each `{prefix: [files]}`. Read-only on the mirror.

use git2::{Delta, Oid, Repository};
use gitmoxi_deploy::spec::{AppKind, FileKind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

type ByPrefix = BTreeMap<String, Vec<String>>;

/// `{"ecs": {"ecs_relevant_files": …}, "lambda": {"lambda_relevant_files": …}}` between two
/// commits (`from` None: everything in `to` is added).
pub fn relevant_files(mirror: &Path, from: Option<&str>, to: &str) -> Result<Value, String> {
    let repo = Repository::open_bare(mirror).map_err(|e| format!("the repository mirror is not readable: {}", e.message()))?;
    let tree_of = |rev: &str| -> Result<git2::Tree<'_>, String> {
        let oid = resolve_commit(&repo, rev)?;
        repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| format!("commit {rev} is not in the mirror: {}", e.message()))
    };
    let new = tree_of(to)?;
    let old = from.map(tree_of).transpose()?;
    let diff = repo.diff_tree_to_tree(old.as_ref(), Some(&new), None).map_err(|e| e.message().to_string())?;
    let mut buckets: BTreeMap<(AppKind, bool), ByPrefix> = BTreeMap::new();
    for delta in diff.deltas() {
        let deleted = delta.status() == Delta::Deleted;
        let file = if deleted { delta.old_file() } else { delta.new_file() };
        let Some(path) = file.path().and_then(|p| p.to_str()) else { continue };
        let Some((prefix, kind)) = FileKind::classify(path) else { continue };
        buckets.entry((kind.platform(), deleted)).or_default().entry(prefix.to_string()).or_default().push(path.to_string());
    }
    let section = |kind: AppKind| -> Value {
        let pick = |deleted: bool| -> Value {
            let m: Map<String, Value> =
                buckets.get(&(kind, deleted)).map(|b| b.iter().map(|(p, f)| (p.clone(), json!(f))).collect()).unwrap_or_default();
            Value::Object(m)
        };
        json!({"added_or_modified": pick(false), "deleted": pick(true)})
    };
    Ok(json!({
        "ecs": {"ecs_relevant_files": section(AppKind::Ecs)},
        "lambda": {"lambda_relevant_files": section(AppKind::Lambda)},
    }))
}

/// The full id and first parent of a commit in the mirror, named by its id or an unambiguous
/// prefix of at least 7 hex digits (as `git log --oneline` shows it).
pub fn parent_of(mirror: &Path, commit: &str) -> Result<(String, Option<String>), String> {
    let repo = Repository::open_bare(mirror).map_err(|e| e.message().to_string())?;
    let oid = resolve_commit(&repo, commit)?;
    let c = repo.find_commit(oid).map_err(|e| format!("commit {commit} is not in the mirror: {}", e.message()))?;
    Ok((oid.to_string(), c.parent_ids().next().map(|p| p.to_string())))
}

/// Whether `rev` can name a commit: 7 to 40 hex digits.
pub fn is_commit_id(rev: &str) -> bool {
    (7..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A commit id or an unambiguous prefix of one (never a branch or an expression).
fn resolve_commit(repo: &Repository, rev: &str) -> Result<Oid, String> {
    if !is_commit_id(rev) {
        return Err(format!("'{rev}' is not a commit id: use 7 to 40 hex digits"));
    }
    if rev.len() == 40 {
        return Oid::from_str(rev).map_err(|e| format!("'{rev}' is not a commit id: {}", e.message()));
    }
    let object = repo.revparse_single(rev).map_err(|e| match e.code() {
        git2::ErrorCode::Ambiguous => format!("'{rev}' names more than one object; give more digits"),
        _ => format!("commit {rev} is not in the mirror: {}", e.message()),
    })?;
    object.peel_to_commit().map(|c| c.id()).map_err(|e| format!("'{rev}' is not a commit: {}", e.message()))
}

/// The apps a commit changed against `from` (issue 26: a release's apps), split into those whose
/// files are still at `to` and those removed, with the commit's title. Prefixes only.
pub fn changed_apps(mirror: &Path, from: &str, to: &str) -> Result<(Vec<String>, Vec<String>, String), String> {
    let repo = Repository::open_bare(mirror).map_err(|e| format!("the repository mirror is not readable: {}", e.message()))?;
    let commit_of = |rev: &str| -> Result<git2::Commit<'_>, String> {
        let oid = resolve_commit(&repo, rev)?;
        repo.find_commit(oid).map_err(|e| format!("commit {rev} is not in the mirror: {}", e.message()))
    };
    let (old, new) = (commit_of(from)?, commit_of(to)?);
    let (old_tree, new_tree) = (old.tree().map_err(|e| e.message().to_string())?, new.tree().map_err(|e| e.message().to_string())?);
    let diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None).map_err(|e| e.message().to_string())?;
    let mut touched = std::collections::BTreeSet::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some((prefix, _)) = file.path().and_then(|p| p.to_str()).and_then(FileKind::classify) {
                touched.insert(prefix.to_string());
            }
        }
    }
    // an app is there when its main file is (svcdef or lambdadef)
    let mut present = std::collections::BTreeSet::new();
    new_tree
        .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if let Some((prefix, kind)) =
                entry.name().and_then(|n| FileKind::classify(&format!("{dir}{n}")).map(|(p, k)| (p.to_string(), k)))
            {
                if matches!(kind, FileKind::SvcDef | FileKind::LambdaDef) {
                    present.insert(prefix);
                }
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(|e| e.message().to_string())?;
    let (apps, removed): (Vec<String>, Vec<String>) = touched.into_iter().partition(|p| present.contains(p));
    let title = new.summary().unwrap_or_default().chars().take(200).collect();
    Ok((apps, removed, title))
}
