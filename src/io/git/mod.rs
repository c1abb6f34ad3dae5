//! Git: fetching the tracked branches and reading a commit's files without a work tree.
//!
//! Blocking (git2): callers run it on `spawn_blocking`. Must never write into a user's checkout;
//! the controller keeps its own bare mirror under the state directory.

pub mod changes;
pub mod dir_tree;
pub mod known_hosts;
pub mod promote;
pub mod source;

pub use dir_tree::DirTree;
pub use source::{GitError, GitSource, GitTree};
