//! File kinds and grouping of files into apps by prefix (SPEC §1.1–1.2).
//!
//! Invariant: a group becomes an app only with its svcdef (ECS) or lambdadef (Lambda); any other
//! group is reported as a lonely-file warning and never deployed.

use super::diag::Diagnostic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kinds of deployment files, by name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// `_svcdef.json`: the CreateService body.
    SvcDef,
    /// `_taskdef.json`: the RegisterTaskDefinition body.
    TaskDef,
    /// `_depdef.json`: how the ECS app deploys.
    DepDef,
    /// `_input.json`: variables for the ECS app's templates.
    Input,
    /// `_lambdadef.json`: the CreateFunction body.
    LambdaDef,
    /// `_lambdaeventsourcedef.json`: what invokes the function.
    LambdaEventSourceDef,
    /// `_lambdadepdef.json`: how the Lambda app deploys.
    LambdaDepDef,
    /// `_lambdainput.json`: variables for the Lambda app's templates.
    LambdaInput,
}

impl FileKind {
    /// Every kind, ECS first.
    pub const ALL: [FileKind; 8] = [
        FileKind::SvcDef,
        FileKind::TaskDef,
        FileKind::DepDef,
        FileKind::Input,
        FileKind::LambdaDef,
        FileKind::LambdaEventSourceDef,
        FileKind::LambdaDepDef,
        FileKind::LambdaInput,
    ];

    /// The file name suffix of this kind.
    pub fn suffix(self) -> &'static str {
        match self {
            FileKind::SvcDef => "_svcdef.json",
            FileKind::TaskDef => "_taskdef.json",
            FileKind::DepDef => "_depdef.json",
            FileKind::Input => "_input.json",
            FileKind::LambdaDef => "_lambdadef.json",
            FileKind::LambdaEventSourceDef => "_lambdaeventsourcedef.json",
            FileKind::LambdaDepDef => "_lambdadepdef.json",
            FileKind::LambdaInput => "_lambdainput.json",
        }
    }

    /// Splits a path into (prefix, kind) when it is a deployment file.
    pub fn classify(path: &str) -> Option<(&str, FileKind)> {
        FileKind::ALL.iter().find_map(|kind| {
            path.strip_suffix(kind.suffix()).filter(|prefix| !prefix.is_empty() && !prefix.ends_with('/')).map(|prefix| (prefix, *kind))
        })
    }

    /// Whether the kind belongs to an ECS or a Lambda app.
    pub fn platform(self) -> AppKind {
        match self {
            FileKind::SvcDef | FileKind::TaskDef | FileKind::DepDef | FileKind::Input => AppKind::Ecs,
            FileKind::LambdaDef | FileKind::LambdaEventSourceDef | FileKind::LambdaDepDef | FileKind::LambdaInput => AppKind::Lambda,
        }
    }
}

/// What an app deploys to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// An ECS service.
    Ecs,
    /// A Lambda function.
    Lambda,
}

impl AppKind {
    /// The kind as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Ecs => "ecs",
            AppKind::Lambda => "lambda",
        }
    }
}

/// The files of one app: path per kind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppFiles {
    /// The app's folder: the common prefix of its files.
    pub prefix: String,
    /// Each file's path by kind.
    pub files: BTreeMap<FileKind, String>,
}

impl AppFiles {
    /// The path of the app's file of `kind`, if it has one.
    pub fn path(&self, kind: FileKind) -> Option<&str> {
        self.files.get(&kind).map(String::as_str)
    }
}

/// The result of grouping a commit's paths.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    /// Apps by prefix.
    pub apps: BTreeMap<String, (AppKind, AppFiles)>,
    /// Lonely files and groups mixing platforms.
    pub warnings: Vec<Diagnostic>,
}

/// Groups deployment files by prefix into ECS and Lambda apps.
pub fn group<I, S>(paths: I) -> Grouping
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut groups: BTreeMap<String, BTreeMap<FileKind, String>> = BTreeMap::new();
    let mut out = Grouping::default();
    for path in paths {
        let path = path.as_ref();
        if path.chars().any(char::is_control) {
            // a newline in a file name would forge lines of every log and message that names it
            if FileKind::classify(path).is_some() {
                let shown: String = path.escape_debug().collect();
                out.warnings.push(Diagnostic::new(
                    shown.clone(),
                    format!("the file name \"{shown}\" has control characters (a newline, a tab…); it is not deployed: rename it"),
                ));
            }
            continue;
        }
        if let Some((prefix, kind)) = FileKind::classify(path) {
            groups.entry(prefix.to_string()).or_default().insert(kind, path.to_string());
        }
    }
    for (prefix, files) in groups {
        let ecs = files.contains_key(&FileKind::SvcDef);
        let lambda = files.contains_key(&FileKind::LambdaDef);
        let kind = match (ecs, lambda) {
            (true, false) => AppKind::Ecs,
            (false, true) => AppKind::Lambda,
            (true, true) => {
                for path in files.values() {
                    out.warnings.push(Diagnostic::new(
                        path,
                        format!(
                            "prefix '{prefix}' has both a _svcdef.json and a _lambdadef.json; \
                             give the ECS and Lambda files different prefixes. Neither is deployed."
                        ),
                    ));
                }
                continue;
            }
            (false, false) => {
                for path in files.values() {
                    out.warnings.push(Diagnostic::new(
                        path,
                        format!(
                            "not part of any app: no '{prefix}_svcdef.json' or '{prefix}_lambdadef.json' \
                             beside it, so it is never deployed; add the missing file or rename this one"
                        ),
                    ));
                }
                continue;
            }
        };
        let mut kept = BTreeMap::new();
        for (file_kind, path) in files {
            if file_kind.platform() == kind {
                kept.insert(file_kind, path);
            } else {
                out.warnings.push(Diagnostic::new(
                    &path,
                    format!(
                        "a {} file beside a {} app is ignored; rename it to the app's platform suffix",
                        file_kind.platform().as_str(),
                        kind.as_str()
                    ),
                ));
            }
        }
        out.apps.insert(prefix.clone(), (kind, AppFiles { prefix, files: kept }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_match_with_their_underscore() {
        assert_eq!(FileKind::classify("a/x_depdef.json"), Some(("a/x", FileKind::DepDef)));
        assert_eq!(FileKind::classify("a/x_lambdadepdef.json"), Some(("a/x", FileKind::LambdaDepDef)));
        assert_eq!(FileKind::classify("a/x_lambdainput.json"), Some(("a/x", FileKind::LambdaInput)));
        assert_eq!(FileKind::classify("x_lambdaeventsourcedef.json"), Some(("x", FileKind::LambdaEventSourceDef)));
        assert_eq!(FileKind::classify("a/xdepdef.json"), None);
        assert_eq!(FileKind::classify("a/_svcdef.json"), None);
        assert_eq!(FileKind::classify("README.md"), None);
        assert_eq!(FileKind::classify("infra/terraform_output.json"), None);
    }

    #[test]
    fn a_file_name_with_control_characters_is_never_an_app() {
        let g = group(["prod/web/web_svcdef.json\n2026-01-01 INFO deployment succeeded: prod/x/x_svcdef.json", "ok/a_svcdef.json"]);
        assert_eq!(g.apps.keys().collect::<Vec<_>>(), vec!["ok/a"]);
        assert_eq!(g.warnings.len(), 1);
        let w = &g.warnings[0];
        assert!(!w.file.contains('\n') && !w.message.contains('\n'), "escaped: {w:?}");
        assert!(w.message.contains("web_svcdef.json\\n2026"), "{w:?}");
    }

    #[test]
    fn groups_apps_and_warns_about_lonely_files() {
        let g = group([
            "prod/web/web_svcdef.json",
            "prod/web/web_taskdef.json",
            "prod/web/web_depdef.json",
            "prod/api/api_taskdef.json",
            "fn/hello_lambdadef.json",
            "fn/hello_lambdadepdef.json",
            "README.md",
        ]);
        assert_eq!(g.apps.len(), 2);
        let (kind, files) = &g.apps["prod/web/web"];
        assert_eq!(*kind, AppKind::Ecs);
        assert_eq!(files.path(FileKind::TaskDef), Some("prod/web/web_taskdef.json"));
        assert_eq!(g.apps["fn/hello"].0, AppKind::Lambda);
        assert_eq!(g.warnings.len(), 1);
        assert_eq!(g.warnings[0].file, "prod/api/api_taskdef.json");
        assert!(g.warnings[0].message.contains("never deployed"));
    }
}
