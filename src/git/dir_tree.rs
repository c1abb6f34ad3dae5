//! A directory on disk as a [`FileTree`] (for `validate` and `render` on a work tree, with
//! uncommitted edits).

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
        if path.split('/').any(|seg| seg == "..") {
            return None;
        }
        std::fs::read(self.root.join(path)).ok()
    }
}
