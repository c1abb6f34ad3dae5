//! Diagnostics: every problem found in a user's files, with where it is and what to do.
//!
//! Invariant: a diagnostic always names a file; line and column are 1-based and present whenever
//! the problem has a position (JSON syntax, template syntax, a located field).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One error or warning about a file of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file's path in the repository.
    pub file: String,
    /// The line (1-based), when known.
    pub line: Option<u32>,
    /// The column (1-based), when known.
    pub column: Option<u32>,
    /// What is wrong and what to do.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about `file` with no position.
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { file: file.into(), line: None, column: None, message: message.into() }
    }

    /// The same diagnostic at `line`:`column`.
    pub fn at(mut self, line: Option<u32>, column: Option<u32>) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    /// Places the diagnostic at the first occurrence of `"key"` in `text`, when found.
    pub fn at_key(self, text: &str, key: &str) -> Self {
        let (line, column) = locate_key(text, key).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        self.at(line, column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
            (Some(l), None) => write!(f, "{}:{}: {}", self.file, l, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// 1-based (line, column) of the first `"key"` (quoted, followed by optional spaces and a colon).
pub fn locate_key(text: &str, key: &str) -> Option<(u32, u32)> {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(pos) = text[from..].find(&needle) {
        let start = from + pos;
        let rest = text[start + needle.len()..].trim_start();
        if rest.starts_with(':') {
            return Some(line_col(text, start));
        }
        from = start + needle.len();
    }
    None
}

/// 1-based (line, column) of a byte offset; columns count characters.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before[line_start..].chars().count() + 1;
    (line as u32, column as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_and_offsets() {
        let text = "{\n  \"a\": 1,\n  \"percent\" : 5\n}";
        assert_eq!(locate_key(text, "percent"), Some((3, 3)));
        assert_eq!(locate_key(text, "missing"), None);
        assert_eq!(line_col(text, 0), (1, 1));
        let d = Diagnostic::new("x.json", "bad").at_key(text, "a");
        assert_eq!(d.to_string(), "x.json:2:3: bad");
    }
}
