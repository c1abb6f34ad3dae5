//! Typed reading of JSON objects with errors that name the field and where it is.
//!
//! Used by the depdef parsers: numbers may be given as JSON numbers or numeric strings (templates
//! often render `"{{ n }}"`); every rejected value names its dotted field path and the fix.

#![allow(
    clippy::wildcard_enum_match_arm,
    reason = "JSON shapes: a wildcard over serde_json::Value means \"any other JSON\"; no domain enum is matched here with a wildcard"
)]

use super::diag::Diagnostic;
use serde_json::{Map, Value};

/// Reads fields of one rendered document, collecting diagnostics.
pub struct FieldReader<'a> {
    /// The file's path, for diagnostics.
    pub file: &'a str,
    /// The file's rendered text, to find line and column of a key.
    pub text: &'a str,
    /// Errors found so far.
    pub errors: Vec<Diagnostic>,
    /// Warnings found so far.
    pub warnings: Vec<Diagnostic>,
}

impl<'a> FieldReader<'a> {
    /// A reader of `file` whose rendered text is `text`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        FieldReader { file, text, errors: Vec::new(), warnings: Vec::new() }
    }

    fn last_segment(path: &str) -> &str {
        let last = path.rsplit('.').next().unwrap_or(path);
        last.split('[').next().unwrap_or(last)
    }

    /// Records an error at the field `path` (dotted).
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = Diagnostic::new(self.file, format!("{path}: {}", message.into())).at_key(self.text, Self::last_segment(path));
        self.errors.push(d);
    }

    /// Records a warning at the field `path` (dotted).
    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        let d = Diagnostic::new(self.file, format!("{path}: {}", message.into())).at_key(self.text, Self::last_segment(path));
        self.warnings.push(d);
    }

    /// Warns about keys of `obj` not in `known`.
    pub fn warn_unknown(&mut self, obj: &Map<String, Value>, prefix: &str, known: &[&str]) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                self.warn(&path, "unknown field, ignored; check its spelling against the documentation");
            }
        }
    }

    /// The field as an object; absent or null is `None`, anything else an error.
    pub fn object<'v>(&mut self, value: Option<&'v Value>, path: &str) -> Option<&'v Map<String, Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(other) => {
                self.error(path, format!("must be an object, got {}", kind_of(other)));
                None
            }
        }
    }

    /// The field as a boolean (`"true"`/`"false"` accepted); absent or null is `None`.
    pub fn bool(&mut self, value: Option<&Value>, path: &str) -> Option<bool> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(other) => {
                self.error(path, format!("must be true or false, got {}", show(other)));
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, value: Option<&Value>, path: &str, min: i64, max: i64) -> Option<i64> {
        let n = match value {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                let range = if max == i64::MAX { format!("at least {min}") } else { format!("between {min} and {max}") };
                self.error(path, format!("must be {range}, got {n}"));
                None
            }
            None => {
                self.error(path, format!("must be a whole number, got {}", value.map_or_else(String::new, show)));
                None
            }
        }
    }

    /// A finite number in `min..=max` (a numeric string accepted).
    pub fn number(&mut self, value: Option<&Value>, path: &str, min: f64, max: f64) -> Option<f64> {
        let n = match value {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        match n.filter(|n| n.is_finite()) {
            Some(n) if n >= min && n <= max => Some(n),
            Some(n) => {
                self.error(path, format!("must be between {min} and {max}, got {n}"));
                None
            }
            None => {
                self.error(path, format!("must be a number, got {}", value.map_or_else(String::new, show)));
                None
            }
        }
    }

    /// The field as a string; absent or null is `None`, anything else an error.
    pub fn string(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(path, format!("must be a string, got {}", show(other)));
                None
            }
        }
    }

    /// The field as a list of strings; absent or null is empty, each wrong item an error.
    pub fn strings(&mut self, value: Option<&Value>, path: &str) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(&format!("{path}[{i}]"), format!("must be a string, got {}", show(other))),
                    }
                }
                out
            }
            Some(other) => {
                self.error(path, format!("must be a list of strings, got {}", show(other)));
                Vec::new()
            }
        }
    }
}

/// What kind of JSON value `v` is, for messages (`a string`, `a list`…).
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `v` as JSON, cut to 60 characters, for messages.
pub fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}
