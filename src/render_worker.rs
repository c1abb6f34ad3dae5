//! Rendering in a child process with a memory cap (issue 13): a template can grow a string
//! exponentially (`{% set a = a ~ a %}` repeated) before any size bound sees it, and an
//! allocation failure aborts a Rust process. So `serve` renders each new head in a child
//! (`gitmoxi render-worker`, started through `sh` with `ulimit -d`, a time bound and a bounded
//! answer). When the child dies, the apps are split in halves and rendered again until the app
//! that kills it is alone: that app is invalid ("rendering needed more than N MiB"), every other
//! app loads as usual, and the controller never stops.

use gitmoxi_deploy::spec::{group, AppFiles, AppKind, Diagnostic, InvalidApp, Limits, RenderContext, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The data (heap) a render worker may use.
pub const WORKER_MEMORY_MIB: u64 = 1024;
/// How long one worker run may take (templates run on fuel; Git reads are local).
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer read from a worker.
const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// What a worker is asked.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// The repository (a mirror, or a checkout) to read.
    pub repository: PathBuf,
    /// The commit to load (`None`: the checkout's work tree, uncommitted edits included).
    pub rev: Option<String>,
    /// Region for apps whose depdef names none.
    pub default_region: String,
    /// Size bounds.
    pub limits: Limits,
    /// The apps to load (`None`: all of them).
    pub only: Option<BTreeSet<String>>,
    /// Send every rendered document (`gitmoxi render`); the controller needs only the parsed
    /// apps, and the documents would double what crosses the pipe and what it holds per head.
    #[serde(default)]
    pub keep_rendered: bool,
}

/// `gitmoxi render-worker`: reads a [`WorkerRequest`] on stdin, writes the [`Snapshot`] as JSON.
pub fn run_worker() -> anyhow::Result<i32> {
    let mut input = String::new();
    std::io::stdin().take(1 << 20).read_to_string(&mut input)?;
    let request: WorkerRequest = serde_json::from_str(&input)?;
    let tree = crate::offline::tree_for(&request.repository, request.rev.as_deref())?;
    let ctx = RenderContext { default_region: request.default_region, limits: request.limits };
    let mut snapshot = gitmoxi_deploy::spec::load_apps(tree.as_ref(), &ctx, request.only.as_ref());
    if !request.keep_rendered {
        drop_rendered(&mut snapshot);
    }
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &snapshot)?;
    stdout.flush()?;
    Ok(0)
}

/// Why a worker run gave no snapshot.
#[derive(Debug)]
enum WorkerFailure {
    /// It could not start at all (the whole load falls back to an error for the head).
    Spawn(String),
    /// It died, ran out of time or answered nonsense: what the rendered apps did.
    Died(String),
}

/// Loads `rev` of `repository` (or its work tree) through render workers started from `worker`
/// (the gitmoxi binary). `tree` is the caller's open view of the same files: its listing is
/// read here (cheap); rendering happens in the workers.
/// Drops the rendered documents of every app (the parsed app keeps what deploys).
pub fn drop_rendered(snapshot: &mut Snapshot) {
    for app in snapshot.apps.values_mut().flatten() {
        app.rendered.clear();
    }
}

pub fn load_sandboxed(
    worker: &Path,
    tree: &dyn gitmoxi_deploy::spec::FileTree,
    repository: &Path,
    rev: Option<&str>,
    ctx: &RenderContext,
    keep_rendered: bool,
) -> Result<Snapshot, String> {
    let grouping = group(tree.paths());
    let all: Vec<String> = grouping.apps.keys().cloned().collect();
    let mut snapshot = Snapshot { apps: Default::default(), warnings: grouping.warnings };
    let mut pending = vec![all];
    while let Some(share) = pending.pop() {
        if share.is_empty() {
            continue;
        }
        let request = WorkerRequest {
            repository: repository.to_path_buf(),
            rev: rev.map(str::to_string),
            default_region: ctx.default_region.clone(),
            limits: ctx.limits,
            only: Some(share.iter().cloned().collect()),
            keep_rendered,
        };
        match run_once(worker, &request) {
            Ok(part) => snapshot.apps.extend(part.apps),
            Err(WorkerFailure::Spawn(why)) => return Err(why),
            Err(WorkerFailure::Died(why)) if share.len() == 1 => {
                let prefix = share[0].clone();
                let (kind, files) = grouping.apps.get(&prefix).cloned().unwrap_or((AppKind::Ecs, AppFiles::default()));
                let file = files.files.values().next().cloned().unwrap_or_else(|| prefix.clone());
                tracing::error!(app = %prefix, reason = %why, "rendering an app failed in its worker");
                let names: Vec<&str> = files.files.values().map(String::as_str).collect();
                let error = Diagnostic::new(
                    file,
                    format!(
                        "rendering this app's templates ({}) {why} (the bounds: {WORKER_MEMORY_MIB} MiB, {} s); look for a string doubled in a loop or repeated sets",
                        names.join(", "),
                        WORKER_TIMEOUT.as_secs()
                    ),
                );
                snapshot.apps.insert(
                    prefix.clone(),
                    Err(InvalidApp { prefix, kind, files, errors: vec![error], stage: gitmoxi_deploy::spec::InvalidStage::Render }),
                );
            }
            Err(WorkerFailure::Died(_)) => {
                let (left, right) = share.split_at(share.len() / 2);
                pending.push(left.to_vec());
                pending.push(right.to_vec());
            }
        }
    }
    Ok(snapshot)
}

/// One worker run: the request on stdin, the snapshot from stdout.
fn run_once(worker: &Path, request: &WorkerRequest) -> Result<Snapshot, WorkerFailure> {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {} && exec \"$0\" render-worker", WORKER_MEMORY_MIB * 1024))
        .arg(worker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| WorkerFailure::Spawn(format!("cannot start the render worker {}: {e}", worker.display())))?;
    let body = serde_json::to_vec(request).map_err(|e| WorkerFailure::Spawn(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // a worker that died before reading shows below, through its exit status
        let _ = stdin.write_all(&body);
    }
    let stdout = child.stdout.take().ok_or_else(|| WorkerFailure::Spawn("the render worker has no stdout".into()))?;
    // parsed as it arrives: the answer of thousands of apps is never held as text beside the
    // snapshot it becomes (the peak memory of a head's load)
    let reader = std::thread::spawn(move || {
        serde_json::from_reader::<_, Snapshot>(std::io::BufReader::new(stdout.take(MAX_ANSWER_BYTES))).map_err(|e| e.to_string())
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > WORKER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(WorkerFailure::Died(format!("ran longer than {} s", WORKER_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(WorkerFailure::Died(format!("could not be watched ({e})"))),
        }
    };
    let answer = reader.join().map_err(|_| WorkerFailure::Died("gave an unreadable answer".into()))?;
    if !status.success() {
        return Err(WorkerFailure::Died(format!("needed more than the render worker may use ({status})")));
    }
    answer.map_err(|e| WorkerFailure::Died(format!("gave an answer that is not a snapshot ({e})")))
}
