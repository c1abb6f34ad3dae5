//! Rendering in a child process with a memory cap (issue 13): a template can grow a string
//! exponentially (`{% set a = a ~ a %}` repeated) before any size bound sees it, and an
//! allocation failure aborts a Rust process. So `serve` renders each new head in a child
//! (`gitmoxi render-worker`, started through `sh` with `ulimit -d`, a time bound and a bounded
//! answer). When the child dies, the apps are split in halves and rendered again until the app
//! that kills it is alone: that app is invalid ("rendering needed more than N MiB"), every other
//! app loads as usual, and the controller never stops.
//!
//! A worker never outlives what it works for (issue 27): it leads its own process group, killed
//! on a timeout or when its caller cancels the render (a newer push to a pull request); and it
//! exits by itself when the controller is gone (its stdin, which the controller keeps open,
//! ends: the kernel closes it when the controller dies, however it dies).

use crate::io::renders::RenderError;
use gitmoxi_deploy::spec::{group, AppFiles, AppKind, Diagnostic, InvalidApp, Limits, RenderContext, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
    /// Stdin stays open after the request (one line): the worker exits as soon as it ends, when
    /// the controller closes it or dies. Unset: stdin is not watched.
    #[serde(default)]
    pub exit_with_parent: bool,
}

/// `gitmoxi render-worker`: reads a [`WorkerRequest`] on stdin, writes the [`Snapshot`] as JSON.
pub fn run_worker() -> anyhow::Result<i32> {
    let mut input = String::new();
    // one line (compact JSON has no raw newline), or everything up to the end when none ends it
    std::io::stdin().lock().take(1 << 20).read_line(&mut input)?;
    let request: WorkerRequest = serde_json::from_str(&input)?;
    if request.exit_with_parent {
        exit_when_stdin_ends();
    }
    let tree = crate::io::offline::tree_for(&request.repository, request.rev.as_deref())?;
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

/// A thread that ends the worker once its stdin ends: the controller closed it, or died (the
/// kernel closes a dead process's pipes). What `PR_SET_PDEATHSIG` would do, without `unsafe`.
fn exit_when_stdin_ends() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(1);
    });
}

/// Why a worker run gave no snapshot.
#[derive(Debug)]
enum WorkerFailure {
    /// It could not start at all (the whole load falls back to an error for the head).
    Spawn(String),
    /// It died, ran out of time or answered nonsense: what the rendered apps did.
    Died(String),
    /// Its caller cancelled the render; the worker was killed.
    Cancelled,
}

/// Drops the rendered documents of every app (the parsed app keeps what deploys).
pub fn drop_rendered(snapshot: &mut Snapshot) {
    for app in snapshot.apps.values_mut().flatten() {
        app.rendered.clear();
    }
}

/// Loads `rev` of `repository` (or its work tree) through render workers started from `worker`
/// (the gitmoxi binary). `tree` is the caller's open view of the same files: its listing is
/// read here (cheap); rendering happens in the workers.
pub fn load_sandboxed(
    worker: &Path,
    tree: &dyn gitmoxi_deploy::spec::FileTree,
    repository: &Path,
    rev: Option<&str>,
    ctx: &RenderContext,
    keep_rendered: bool,
) -> Result<Snapshot, String> {
    load_sandboxed_until(worker, tree, repository, rev, ctx, keep_rendered, &CancellationToken::new()).map_err(|e| e.to_string())
}

/// [`load_sandboxed`] until `cancel` fires: then the running worker is killed with its process
/// group and the load ends with [`RenderError::Cancelled`] (no app is judged by a killed worker).
pub fn load_sandboxed_until(
    worker: &Path,
    tree: &dyn gitmoxi_deploy::spec::FileTree,
    repository: &Path,
    rev: Option<&str>,
    ctx: &RenderContext,
    keep_rendered: bool,
    cancel: &CancellationToken,
) -> Result<Snapshot, RenderError> {
    let grouping = group(tree.paths());
    let all: Vec<String> = grouping.apps.keys().cloned().collect();
    let mut snapshot = Snapshot { apps: Default::default(), warnings: grouping.warnings };
    let mut pending = vec![all];
    while let Some(share) = pending.pop() {
        if cancel.is_cancelled() {
            return Err(RenderError::Cancelled);
        }
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
            exit_with_parent: true,
        };
        match run_once(worker, &request, cancel) {
            Ok(part) => snapshot.apps.extend(part.apps),
            Err(WorkerFailure::Spawn(why)) => return Err(RenderError::Failed(why)),
            Err(WorkerFailure::Cancelled) => return Err(RenderError::Cancelled),
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
    // the order of apps (`dependsOn`) is checked over the whole head, once its shares are joined
    gitmoxi_deploy::release::order::check(&mut snapshot);
    Ok(snapshot)
}

/// One worker run: the request on stdin (kept open until the worker ends: see
/// [`WorkerRequest::exit_with_parent`]), the snapshot from stdout. The worker leads its own
/// process group, killed when it runs too long or `cancel` fires.
fn run_once(worker: &Path, request: &WorkerRequest, cancel: &CancellationToken) -> Result<Snapshot, WorkerFailure> {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -d {} && exec \"$0\" render-worker", WORKER_MEMORY_MIB * 1024))
        .arg(worker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child =
        command.spawn().map_err(|e| WorkerFailure::Spawn(format!("cannot start the render worker {}: {e}", worker.display())))?;
    let mut body = serde_json::to_vec(request).map_err(|e| WorkerFailure::Spawn(e.to_string()))?;
    body.push(b'\n');
    // held until the worker ends: its end tells the worker that the controller is gone
    let mut stdin = child.stdin.take();
    if let Some(pipe) = stdin.as_mut() {
        // a worker that died before reading shows below, through its exit status
        let _ = pipe.write_all(&body).and_then(|()| pipe.flush());
    }
    let Some(stdout) = child.stdout.take() else {
        kill_group(&mut child);
        return Err(WorkerFailure::Spawn("the render worker has no stdout".into()));
    };
    // parsed as it arrives: the answer of thousands of apps is never held as text beside the
    // snapshot it becomes (the peak memory of a head's load)
    let reader = std::thread::spawn(move || {
        serde_json::from_reader::<_, Snapshot>(std::io::BufReader::new(stdout.take(MAX_ANSWER_BYTES))).map_err(|e| e.to_string())
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if cancel.is_cancelled() => {
                kill_group(&mut child);
                return Err(WorkerFailure::Cancelled);
            }
            Ok(None) if started.elapsed() > WORKER_TIMEOUT => {
                kill_group(&mut child);
                return Err(WorkerFailure::Died(format!("ran longer than {} s", WORKER_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_group(&mut child);
                return Err(WorkerFailure::Died(format!("could not be watched ({e})")));
            }
        }
    };
    drop(stdin);
    let answer = reader.join().map_err(|_| WorkerFailure::Died("gave an unreadable answer".into()))?;
    if !status.success() {
        return Err(WorkerFailure::Died(format!("needed more than the render worker may use ({status})")));
    }
    answer.map_err(|e| WorkerFailure::Died(format!("gave an answer that is not a snapshot ({e})")))
}

/// Kills a worker that runs and everything in its process group (it leads one:
/// `process_group(0)` makes the group's id its pid). std has no `killpg` and gitmoxi forbids
/// `unsafe`, so the shell's `kill` signals the group; the worker itself is killed and reaped
/// either way. Only for a worker not reaped yet: its pid, the group's id, cannot be reused.
fn kill_group(child: &mut std::process::Child) {
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -KILL -{} 2>/dev/null", child.id()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether process `pid` is gone or a zombie (dead, not reaped yet).
    fn dead(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
            .unwrap_or(true)
    }

    #[test]
    fn a_killed_worker_takes_what_it_started_with_it() {
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg("sleep 30 & echo $!; wait").stdout(std::process::Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let grandchild = line.trim().to_string();
        assert!(!dead(&grandchild), "the worker's own child runs");
        kill_group(&mut child);
        let started = Instant::now();
        while !dead(&grandchild) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dead(&grandchild), "the worker's child died with its group");
    }
}
