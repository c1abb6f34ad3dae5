//! The order of apps inside a commit (issue 26): `dependsOn: ["other/prefix", …]` in a depdef or
//! lambdadepdef names apps of the same repository and branch that must run the head's files
//! before this one starts. Read here ([`parse`]), checked over a whole head ([`check`]: unknown
//! prefixes, itself, cycles — each an error naming the depdef), and laid out in waves for `plan`
//! and previews ([`waves`]).

use crate::intent::{AppIntent, Intent};
use crate::spec::fields::FieldReader;
use crate::spec::{AppKind, Diagnostic, FileKind, InvalidApp, InvalidStage, Snapshot};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// At most this many dependencies per app.
pub const MAX_DEPENDENCIES: usize = 32;

/// Reads `dependsOn` (a list of app prefixes, each named once).
pub fn parse(r: &mut FieldReader<'_>, value: Option<&Value>) -> Vec<String> {
    let Some(value) = value else { return Vec::new() };
    let names = r.strings(Some(value), "dependsOn");
    if names.len() > MAX_DEPENDENCIES {
        r.error("dependsOn", format!("names {} apps; at most {MAX_DEPENDENCIES}", names.len()));
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        let trimmed = name.trim().trim_end_matches('_').to_string();
        if trimmed.is_empty() {
            r.error("dependsOn", "holds an empty name; name the other app's prefix, e.g. \"db/migrate\"");
        } else if !seen.insert(trimmed.clone()) {
            r.warn("dependsOn", format!("names {trimmed} twice"));
        } else {
            out.push(trimmed);
        }
    }
    out
}

/// The file an app's `dependsOn` is in (its depdef or lambdadepdef, else its main file).
fn depdef_file(files: &crate::spec::AppFiles, kind: AppKind, prefix: &str) -> String {
    let (depdef, main) = match kind {
        AppKind::Ecs => (FileKind::DepDef, FileKind::SvcDef),
        AppKind::Lambda => (FileKind::LambdaDepDef, FileKind::LambdaDef),
    };
    files.path(depdef).or_else(|| files.path(main)).map_or_else(|| prefix.to_string(), str::to_string)
}

/// Makes every valid app whose `dependsOn` names an unknown app, itself, or closes a cycle
/// invalid, the error naming its depdef and the apps involved. A cycle makes each app on it
/// invalid; an app depending on an invalid app stays valid (it waits as Blocked).
pub fn check(snapshot: &mut Snapshot) {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let graph: BTreeMap<&str, &[String]> = snapshot.valid().map(|a| (a.prefix.as_str(), a.depends_on())).collect();
    for (app, deps) in &graph {
        for dep in deps.iter() {
            if dep == app {
                errors.entry(app.to_string()).or_default().push("dependsOn names the app itself".into());
            } else if !snapshot.apps.contains_key(dep) {
                let known: Vec<&str> = snapshot.apps.keys().map(String::as_str).filter(|p| p != app).take(8).collect();
                errors.entry(app.to_string()).or_default().push(format!(
                    "dependsOn names \"{dep}\", which is no app of this branch (apps: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ));
            }
        }
    }
    for cycle in cycles(&graph) {
        let path = cycle.iter().chain(cycle.first()).cloned().collect::<Vec<_>>().join(" → ");
        for app in &cycle {
            errors.entry(app.clone()).or_default().push(format!("dependsOn forms a cycle: {path}; no app of it can go first"));
        }
    }
    for (prefix, why) in errors {
        let Some(Ok(app)) = snapshot.apps.get(&prefix) else { continue };
        let file = depdef_file(&app.files, app.kind, &prefix);
        let errors = why.into_iter().map(|w| Diagnostic::new(&file, w)).collect();
        let invalid =
            InvalidApp { prefix: prefix.clone(), kind: app.kind, files: app.files.clone(), errors, stage: InvalidStage::Validate };
        snapshot.apps.insert(prefix, Err(invalid));
    }
}

/// The cycles of the graph (each once, as the apps on it in order from its smallest).
fn cycles(graph: &BTreeMap<&str, &[String]>) -> Vec<Vec<String>> {
    // iterative three-colour depth-first search; a back edge closes a cycle
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&str, Colour> = graph.keys().map(|k| (*k, Colour::White)).collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in graph.keys() {
        if colour[start] != Colour::White {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        colour.insert(start, Colour::Grey);
        while let Some((node, next)) = stack.last().copied() {
            let deps = graph.get(node).copied().unwrap_or(&[]);
            if next >= deps.len() {
                colour.insert(node, Colour::Black);
                stack.pop();
                continue;
            }
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            let dep = deps[next].as_str();
            match colour.get(dep).copied() {
                Some(Colour::White) => {
                    colour.insert(dep, Colour::Grey);
                    stack.push((dep, 0));
                }
                Some(Colour::Grey) if dep != node => {
                    let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..].iter().map(|(n, _)| n.to_string()).collect();
                    let smallest = cycle.iter().enumerate().min_by(|a, b| a.1.cmp(b.1)).map_or(0, |(i, _)| i);
                    cycle.rotate_left(smallest);
                    found.insert(cycle);
                }
                // itself (reported on its own), done, or not a valid app
                Some(Colour::Grey | Colour::Black) | None => {}
            }
        }
    }
    found.into_iter().collect()
}

/// The apps a head changes, in waves: each wave starts once the ones before it succeeded (only
/// dependencies that change in the same head count). Deletes come last, dependents first.
/// Apps that change nothing are left out.
pub fn waves(snapshot: &Snapshot, intents: &[AppIntent], deleted_depends_on: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let changing: BTreeSet<&str> =
        intents.iter().filter(|e| matches!(e.intent, Intent::Deploy | Intent::Move)).map(|e| e.app.as_str()).collect();
    let deps_of = |app: &str| -> Vec<&str> {
        match snapshot.apps.get(app) {
            Some(Ok(a)) => a.depends_on().iter().map(String::as_str).filter(|d| changing.contains(d)).collect(),
            Some(Err(_)) | None => Vec::new(),
        }
    };
    let mut out = layers(&changing, deps_of);
    let deleting: BTreeSet<&str> = intents.iter().filter(|e| e.intent == Intent::Delete).map(|e| e.app.as_str()).collect();
    // reverse order: an app goes once every app being deleted that depends on it is gone
    let dependents_of = |app: &str| -> Vec<&str> {
        deleting.iter().copied().filter(|other| deleted_depends_on.get(*other).is_some_and(|deps| deps.iter().any(|d| d == app))).collect()
    };
    out.extend(layers(&deleting, dependents_of));
    out
}

/// `nodes` in layers: a node's layer is one past the deepest of `before(node)` (within `nodes`).
fn layers<'a>(nodes: &BTreeSet<&'a str>, before: impl Fn(&str) -> Vec<&'a str>) -> Vec<Vec<String>> {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    // cycles are refused by `check`; a bound keeps a stray one from looping
    for _ in 0..=nodes.len() {
        let mut changed = false;
        for node in nodes {
            let d = before(node).iter().filter(|b| nodes.contains(*b)).map(|b| depth.get(b).map_or(1, |x| x + 1)).max().unwrap_or(0);
            if depth.get(node) != Some(&d) {
                depth.insert(node, d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for (node, d) in depth {
        let d = d.min(nodes.len());
        if out.len() <= d {
            out.resize(d + 1, Vec::new());
        }
        out[d].push(node.to_string());
    }
    out.retain(|w| !w.is_empty());
    out
}

/// Numbers the waves of `entries` (see [`waves`]): each app with something to do gets its wave,
/// from 1. `deleted_depends_on`: the `dependsOn` of apps gone from the head, as they last had it.
pub fn assign_waves(snapshot: &Snapshot, entries: &mut [AppIntent], deleted_depends_on: &BTreeMap<String, Vec<String>>) {
    let numbered: BTreeMap<String, usize> = waves(snapshot, entries, deleted_depends_on)
        .into_iter()
        .enumerate()
        .flat_map(|(i, w)| w.into_iter().map(move |a| (a, i + 1)))
        .collect();
    for entry in entries.iter_mut() {
        entry.wave = numbered.get(&entry.app).copied();
    }
}
