//! The read-only view of one commit's files that rendering needs.
//!
//! The git layer implements [`FileTree`] over a commit tree (no work tree); tests use [`MemTree`].
//! Must never write; reads are by repository-relative path with `/` separators.

use std::collections::BTreeMap;

/// Files of one commit.
pub trait FileTree {
    /// Every file path of the commit (any order).
    fn paths(&self) -> Vec<String>;
    /// The bytes of a file, or `None` when the commit has no such file.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// The size of a file in bytes, without reading it when the tree can tell (a Git tree
    /// reads the object header); `None` when the commit has no such file.
    fn size(&self, path: &str) -> Option<u64> {
        self.read(path).map(|b| b.len() as u64)
    }
}

/// An in-memory tree, for tests, fuzzing and offline tools.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    /// File contents by path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl MemTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree with `content` at `path`.
    pub fn with(mut self, path: &str, content: &str) -> Self {
        self.files.insert(path.to_string(), content.as_bytes().to_vec());
        self
    }

    /// Puts `content` at `path`.
    pub fn insert(&mut self, path: &str, content: &str) {
        self.files.insert(path.to_string(), content.as_bytes().to_vec());
    }

    /// Removes the file at `path`.
    pub fn remove(&mut self, path: &str) {
        self.files.remove(path);
    }
}

impl FileTree for MemTree {
    fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(path).cloned()
    }
}
