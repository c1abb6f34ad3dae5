//! The repository model (SPEC §1–2): files of one commit → typed desired state per app.
//!
//! Pipeline per app: group by prefix → load the input and its refs → render every file (strict
//! Jinja2) → parse and validate → fingerprint. An invalid app carries its diagnostics and is never
//! deployed; it never affects other apps.

pub mod approval;
pub mod diag;
pub mod ecs;
pub mod ecs_depdef;
pub mod fields;
pub mod fingerprint;
pub mod group;
pub mod hooks;
pub mod input;
pub mod lambda;
pub mod render;
pub mod steps;
pub mod tree;

pub use diag::Diagnostic;
pub use ecs::{EcsApp, EcsStrategy};
pub use ecs_depdef::EcsDepdef;
pub use group::{group, AppFiles, AppKind, FileKind, Grouping};
pub use lambda::LambdaApp;
pub use tree::{FileTree, MemTree};

use render::Rendered;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Settings rendering needs from the controller's configuration.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// Region for apps whose depdef names none.
    pub default_region: String,
    /// How much a commit may make gitmoxi read and produce.
    pub limits: Limits,
}

impl RenderContext {
    /// A context with the default limits.
    pub fn new(default_region: String) -> RenderContext {
        RenderContext { default_region, limits: Limits::default() }
    }
}

/// Size bounds on what one commit may make gitmoxi read and produce (issue 13): a file over a
/// bound is an error naming it, its app does not deploy, the others do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// A deployment file (svcdef, taskdef, depdef, input, lambda files), in bytes.
    pub max_file_bytes: u64,
    /// A file an input references (Terraform, CloudFormation, CDK outputs), in bytes.
    pub max_ref_file_bytes: u64,
    /// The text one template renders to, in bytes.
    pub max_rendered_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_file_bytes: 1 << 20, max_ref_file_bytes: 16 << 20, max_rendered_bytes: 1 << 20 }
    }
}

/// Reads `path` unless it is over `max` bytes (then an error naming the file, the size and the
/// bound); `Ok(None)` when the commit has no such file.
pub fn read_bounded(tree: &dyn FileTree, path: &str, max: u64, what: &str) -> Result<Option<Vec<u8>>, Diagnostic> {
    match tree.size(path) {
        None => Ok(None),
        Some(size) if size > max => Err(Diagnostic::new(
            path,
            format!("{what} is {size} bytes, over the limit of {max} bytes; make it smaller (or raise the limit in the configuration)"),
        )),
        Some(_) => Ok(tree.read(path)),
    }
}

/// The AWS identity an app deploys to; two apps with one identity conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Identity {
    /// An ECS service.
    Ecs {
        /// The account the app names; `None`: the controller's own.
        account: Option<String>,
        /// The AWS region.
        region: String,
        /// The cluster's name or ARN.
        cluster: String,
        /// The service's name.
        service: String,
    },
    /// A Lambda function.
    Lambda {
        /// The account the app names; `None`: the controller's own.
        account: Option<String>,
        /// The AWS region.
        region: String,
        /// The function's name.
        function: String,
    },
}

impl Identity {
    /// Whether this is a service or a function.
    pub fn kind(&self) -> AppKind {
        match self {
            Identity::Ecs { .. } => AppKind::Ecs,
            Identity::Lambda { .. } => AppKind::Lambda,
        }
    }

    /// The same identity with a missing account taken as `own` (the controller's own account):
    /// what AWS would be touched.
    pub fn in_account(&self, own: Option<&str>) -> Identity {
        let mut identity = self.clone();
        let (Identity::Ecs { account, .. } | Identity::Lambda { account, .. }) = &mut identity;
        if account.is_none() {
            *account = own.map(str::to_string);
        }
        identity
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Ecs { account, region, cluster, service } => {
                write!(f, "ecs:{}/{region}/{}/{service}", account.as_deref().unwrap_or("default"), ecs::cluster_name(cluster))
            }
            Identity::Lambda { account, region, function } => {
                write!(f, "lambda:{}/{region}/{function}", account.as_deref().unwrap_or("default"))
            }
        }
    }
}

/// What an app deploys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AppSpec {
    /// An ECS service (rolling or blue/green).
    Ecs(EcsApp),
    /// A Lambda function behind an alias.
    Lambda(LambdaApp),
}

/// A valid app at one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredApp {
    /// The app's folder: the common prefix of its files.
    pub prefix: String,
    /// ECS or Lambda.
    pub kind: AppKind,
    /// The paths of the app's files.
    pub files: AppFiles,
    /// The fingerprint of its rendered files (what decides whether it deploys).
    pub fingerprint: String,
    /// Where it deploys.
    pub identity: Identity,
    /// What it deploys, parsed.
    pub spec: AppSpec,
    /// Every rendered document by file kind (what `gitmoxi render` prints).
    pub rendered: BTreeMap<FileKind, Value>,
    /// What is suspicious but not wrong (unknown fields and the like).
    pub warnings: Vec<Diagnostic>,
}

impl DesiredApp {
    /// The apps of the same branch that must run the head's files before this one starts
    /// (`dependsOn` in its depdef or lambdadepdef).
    pub fn depends_on(&self) -> &[String] {
        match &self.spec {
            AppSpec::Ecs(ecs) => &ecs.depdef.depends_on,
            AppSpec::Lambda(lambda) => &lambda.depdef.depends_on,
        }
    }
}

/// An app whose files do not render or validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvalidApp {
    /// The app's folder: the common prefix of its files.
    pub prefix: String,
    /// ECS or Lambda, as far as its files tell.
    pub kind: AppKind,
    /// The paths of the app's files.
    pub files: AppFiles,
    /// Every error found, each naming the file and the place.
    pub errors: Vec<Diagnostic>,
    /// Where it failed: its templates did not render, or what they rendered is not a valid app.
    #[serde(default)]
    pub stage: InvalidStage,
}

/// Where an app's files failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidStage {
    /// An input or a template did not render (or its render worker died).
    Render,
    /// The files rendered, but they are not a valid app.
    #[default]
    Validate,
}

/// Every app of one commit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Each app by its prefix: valid, or why not.
    pub apps: BTreeMap<String, Result<DesiredApp, InvalidApp>>,
    /// Lonely files and other repository-level warnings.
    pub warnings: Vec<Diagnostic>,
}

impl Snapshot {
    /// The apps that are valid.
    pub fn valid(&self) -> impl Iterator<Item = &DesiredApp> {
        self.apps.values().filter_map(|a| a.as_ref().ok())
    }
}

/// Loads every app of a commit.
pub fn load_snapshot(tree: &dyn FileTree, ctx: &RenderContext) -> Snapshot {
    load_apps(tree, ctx, None)
}

/// [`load_snapshot`] restricted to the apps of `only` (all when `None`): a render worker loads
/// a share of a commit's apps.
pub fn load_apps(tree: &dyn FileTree, ctx: &RenderContext, only: Option<&BTreeSet<String>>) -> Snapshot {
    let grouping = group(tree.paths());
    let mut snapshot = Snapshot { apps: BTreeMap::new(), warnings: grouping.warnings };
    for (prefix, (kind, files)) in grouping.apps {
        if only.is_none_or(|o| o.contains(&prefix)) {
            let app = load_app(tree, kind, files, ctx);
            snapshot.apps.insert(prefix, app);
        }
    }
    if only.is_none() {
        // a share (a render worker's) is checked once the shares are joined
        crate::release::order::check(&mut snapshot);
    }
    snapshot
}

/// Loads one app from its files.
pub fn load_app(tree: &dyn FileTree, kind: AppKind, files: AppFiles, ctx: &RenderContext) -> Result<DesiredApp, InvalidApp> {
    let invalid = |files: &AppFiles, errors: Vec<Diagnostic>| InvalidApp {
        prefix: files.prefix.clone(),
        kind,
        files: files.clone(),
        errors,
        stage: InvalidStage::Render,
    };
    let (input_kind, fingerprinted, others): (FileKind, &[(FileKind, &str)], &[FileKind]) = match kind {
        AppKind::Ecs => (
            FileKind::Input,
            &[(FileKind::SvcDef, "svcdef"), (FileKind::TaskDef, "taskdef"), (FileKind::Input, "input")],
            &[FileKind::DepDef],
        ),
        AppKind::Lambda => (
            FileKind::LambdaInput,
            &[
                (FileKind::LambdaDef, "lambdadef"),
                (FileKind::LambdaEventSourceDef, "eventsourcedef"),
                (FileKind::LambdaInput, "lambdainput"),
            ],
            &[FileKind::LambdaDepDef],
        ),
    };
    let inputs = match input::load_input_limited(tree, files.path(input_kind), &ctx.limits) {
        Ok(v) => v,
        Err(errors) => return Err(invalid(&files, errors)),
    };
    let mut raw: BTreeMap<FileKind, Vec<u8>> = BTreeMap::new();
    let mut rendered: BTreeMap<FileKind, Rendered> = BTreeMap::new();
    let mut errors = Vec::new();
    let template_kinds = fingerprinted.iter().map(|(k, _)| *k).chain(others.iter().copied()).filter(|k| *k != input_kind);
    for file_kind in template_kinds {
        let Some(path) = files.path(file_kind) else { continue };
        let bytes = match read_bounded(tree, path, ctx.limits.max_file_bytes, "the file") {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                errors.push(Diagnostic::new(path, "file vanished while reading the commit"));
                continue;
            }
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        match render::render_file_limited(path, &bytes, &inputs.context, ctx.limits.max_rendered_bytes) {
            Ok(r) => {
                rendered.insert(file_kind, r);
            }
            Err(d) => errors.push(d),
        }
        raw.insert(file_kind, bytes);
    }
    if let Some(path) = files.path(input_kind) {
        if let Ok(Some(bytes)) = read_bounded(tree, path, ctx.limits.max_file_bytes, "the input file") {
            raw.insert(input_kind, bytes);
        }
    }
    if !errors.is_empty() {
        return Err(invalid(&files, errors));
    }

    let mut fp = fingerprint::Fingerprinter::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for (file_kind, role) in fingerprinted {
        fp.file(role, raw.get(file_kind).map(Vec::as_slice));
        if let Some(r) = rendered.get(file_kind) {
            used.extend(r.variables.iter().cloned());
        }
    }
    fp.ref_values(&inputs.from_refs, &used);
    let fingerprint = fp.finish();

    let mut warnings = Vec::new();
    let built = match kind {
        AppKind::Ecs => {
            let depdef = match rendered.get(&FileKind::DepDef) {
                Some(d) => match ecs_depdef::parse_ecs_depdef(&d.path, &d.text, &d.json) {
                    Ok((depdef, w)) => {
                        warnings.extend(w);
                        Ok(depdef)
                    }
                    Err(e) => Err(e),
                },
                None => Ok(EcsDepdef::default()),
            };
            let svcdef = rendered.get(&FileKind::SvcDef);
            match (depdef, svcdef) {
                (Ok(depdef), Some(svc)) => {
                    ecs::build_ecs_app(svc, rendered.get(&FileKind::TaskDef), depdef, &ctx.default_region).map(|mut app| {
                        let file = rendered.get(&FileKind::DepDef).map_or(files.prefix.as_str(), |d| d.path.as_str());
                        let native = crate::strategy::ecs_rolling::native::strategy_of(&app.svcdef).is_some();
                        if app.strategy == ecs::EcsStrategy::Rolling && !native && (app.depdef.analysis.is_some() || app.depdef.shift_steps.is_some()) {
                            warnings.push(Diagnostic::new(
                                file,
                                "analysis and trafficShiftingConfig.steps are run by gitmoxi's task-set blue/green (the svcdef's deploymentController EXTERNAL) and, for analysis, by ECS's BLUE_GREEN / LINEAR / CANARY; this rolling update ignores them",
                            ));
                        }
                        if native && app.depdef.shift_steps.is_some() {
                            warnings.push(Diagnostic::new(file, "trafficShiftingConfig.steps is ignored: ECS's own strategy moves the traffic (linearConfiguration / canaryConfiguration)"));
                        }
                        if let (true, Some(analysis)) = (native, app.depdef.analysis.as_ref()) {
                            ecs::pause_for_analysis(&mut app.svcdef, analysis.hold_timeout_secs);
                        }
                        let identity = Identity::Ecs {
                            account: app.account.clone(),
                            region: app.region.clone(),
                            cluster: ecs::cluster_name(&app.cluster).to_string(),
                            service: app.service_name.clone(),
                        };
                        (identity, AppSpec::Ecs(app))
                    })
                }
                (Err(e), _) => Err(e),
                (Ok(_), None) => Err(vec![Diagnostic::new(&files.prefix, "the svcdef could not be read")]),
            }
        }
        AppKind::Lambda => match rendered.get(&FileKind::LambdaDef) {
            Some(def) => lambda::build_lambda_app(
                def,
                rendered.get(&FileKind::LambdaEventSourceDef),
                rendered.get(&FileKind::LambdaDepDef),
                &ctx.default_region,
            )
            .map(|(app, w)| {
                warnings.extend(w);
                let identity =
                    Identity::Lambda { account: app.account.clone(), region: app.region.clone(), function: app.function_name.clone() };
                (identity, AppSpec::Lambda(app))
            }),
            None => Err(vec![Diagnostic::new(&files.prefix, "the lambdadef could not be read")]),
        },
    };
    match built {
        Ok((identity, spec)) => Ok(DesiredApp {
            prefix: files.prefix.clone(),
            kind,
            fingerprint,
            identity,
            spec,
            rendered: rendered.into_iter().map(|(k, r)| (k, r.json)).collect(),
            warnings,
            files,
        }),
        Err(errors) => Err(InvalidApp { stage: InvalidStage::Validate, ..invalid(&files, errors) }),
    }
}

#[cfg(test)]
mod tests;
