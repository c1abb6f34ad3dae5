//! A directory on disk as a [`FileTree`] (for `validate` and `render` on a work tree, with
//! uncommitted edits).
//!
//! Only regular files are part of it: a symbolic link (to a file or a directory, inside the
//! checkout or out of it) is neither listed nor read, as the server, which reads Git objects,
//! never follows one either.

use gitmoxi_deploy::spec::FileTree;
use std::path::{Path, PathBuf};

pub struct DirTree {
    root: PathBuf,
    paths: Vec<String>,
}

impl DirTree {
    /// Lists every file below `root` (skipping `.git` and hidden folders).
    pub fn open(root: &Path) -> std::io::Result<DirTree> {
        let mut paths = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let path = entry.path();
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    if let Ok(rel) = path.strip_prefix(root) {
                        paths.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
                    }
                }
            }
        }
        paths.sort();
        Ok(DirTree { root: root.to_path_buf(), paths })
    }
}

impl FileTree for DirTree {
    fn paths(&self) -> Vec<String> {
        self.paths.clone()
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        // only what the walk listed: regular files reached without following a link
        self.paths.binary_search_by(|p| p.as_str().cmp(path)).ok()?;
        let full = self.root.join(path);
        std::fs::symlink_metadata(&full).ok().filter(std::fs::Metadata::is_file)?;
        std::fs::read(full).ok()
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.paths.binary_search_by(|p| p.as_str().cmp(path)).ok()?;
        std::fs::symlink_metadata(self.root.join(path)).ok().filter(std::fs::Metadata::is_file).map(|m| m.len())
    }
}
