//! The memory of a long-running `gitmoxi serve` (issue 11: < 100 MiB at 2,000 apps).
//!
//! glibc gives each thread that allocates its own arena (up to eight per core) and keeps what
//! is freed there for reuse: with tokio's workers and the blocking pool, a burst of 2,000
//! deployments leaves ~20 MiB more resident than one arena does (`cargo bench --bench moto --
//! rss 2000`: 115.7 MiB with glibc's default, 100.8 with two arenas, 93.9 with one). The arena
//! limit is read once, when the process starts, from `MALLOC_ARENA_MAX`; setting it from Rust
//! needs `unsafe` (`mallopt`), which this crate forbids. So `serve` restarts itself once through
//! `exec` (same pid, same arguments) with `MALLOC_ARENA_MAX=1` when the variable is unset; an
//! operator's own value is kept.

/// Restarts `gitmoxi serve` with one malloc arena unless `MALLOC_ARENA_MAX` is set. Returns
/// (only) when nothing needs doing or the restart failed (then memory use is higher, not wrong).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        if args.first().is_none_or(|a| a != "serve") || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let error = std::process::Command::new(exe).args(&args).env("MALLOC_ARENA_MAX", "1").exec();
        eprintln!("warning: gitmoxi serve could not restart itself with MALLOC_ARENA_MAX=1 ({error}); it runs with glibc's default arenas and uses more memory");
    }
}
