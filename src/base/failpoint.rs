//! Crash points for the kill -9 tests: `GITMOXI_FAILPOINT=NAME` makes the process abort (no
//! destructor, no flush: what a SIGKILL leaves) the moment it reaches the point of that name.
//! Unset — always, outside those tests — a point costs one environment read.

/// Aborts the process when `GITMOXI_FAILPOINT` names `point`.
pub fn hit(point: &str) {
    if std::env::var("GITMOXI_FAILPOINT").is_ok_and(|p| p == point) {
        eprintln!("gitmoxi: failpoint {point} reached: aborting");
        std::process::abort();
    }
}
