//! The state directory: created private (0700: it holds records, API-added repositories and
//! mirrors), and held by one gitmoxi at a time through a lock file that names the holder's pid.

use std::io::{Read, Seek, Write};
use std::path::Path;

/// The lock on a state directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateDirLock {
    _file: std::fs::File,
}

/// Creates `dir` (0700 on Unix; an existing directory is made private too) and locks it.
pub fn prepare(dir: &Path) -> anyhow::Result<StateDirLock> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create the state directory {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| anyhow::anyhow!("cannot make the state directory {} private (0700): {e}", dir.display()))?;
    }
    let path = dir.join("gitmoxi.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            let who = if pid.is_empty() { String::new() } else { format!(" (pid {pid})") };
            anyhow::bail!(
                "another gitmoxi holds this state directory {}{who}; stop it first, or give this one its own --state-dir",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("cannot lock the state directory {}: {e}", dir.display()),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(StateDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_holds_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let held = prepare(&state).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "the state directory is private");
        }
        let err = prepare(&state).unwrap_err().to_string();
        assert!(err.contains("another gitmoxi holds this state directory"), "{err}");
        assert!(err.contains(&format!("(pid {})", std::process::id())), "{err}");
        drop(held);
        prepare(&state).expect("free once the holder is gone");
    }
}
