//! Input files and IaC output references (SPEC §2): the values templates are rendered with.
//!
//! Precedence: `ref` files in list order (later wins), then the input file's own keys win.
//! Invariant: every error names the input file (and the referenced file) and what to fix.

#![allow(
    clippy::wildcard_enum_match_arm,
    reason = "JSON shapes: a wildcard over serde_json::Value means \"any other JSON\"; no domain enum is matched here with a wildcard"
)]

use super::diag::{line_col, Diagnostic};
use super::tree::FileTree;
use serde_json::{Map, Value};

/// The kinds of referenced IaC output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    /// `terraform output -json`: each name → its `value`.
    Terraform,
    /// `cdk deploy --outputs-file`: each stack → map of outputs (JSON strings decoded).
    Cdk,
    /// Plain JSON: top-level keys.
    Json,
}

/// The values of an app's input, split by origin (the fingerprint needs the ref part).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputValues {
    /// Values taken from referenced files (after precedence).
    pub from_refs: Map<String, Value>,
    /// The merged context: refs, then the input file's own keys.
    pub context: Map<String, Value>,
}

/// Parses JSON bytes, reporting syntax errors with line and column.
pub fn parse_json(file: &str, bytes: &[u8], what: &str) -> Result<Value, Diagnostic> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| Diagnostic::new(file, format!("{what} is not UTF-8 text ({e}); save it as UTF-8")))?;
    serde_json::from_str(text).map_err(|e| {
        Diagnostic::new(file, format!("{what} is not valid JSON: {}", strip_position(&e.to_string())))
            .at(Some(e.line() as u32), Some(e.column() as u32))
    })
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(pos) => msg[..pos].to_string(),
        None => msg.to_string(),
    }
}

/// Loads the input file (if any) and its references.
pub fn load_input(tree: &dyn FileTree, input_path: Option<&str>) -> Result<InputValues, Vec<Diagnostic>> {
    load_input_limited(tree, input_path, &super::Limits::default())
}

/// [`load_input`] with the size bounds of the configuration.
pub fn load_input_limited(tree: &dyn FileTree, input_path: Option<&str>, limits: &super::Limits) -> Result<InputValues, Vec<Diagnostic>> {
    let Some(path) = input_path else {
        return Ok(InputValues::default());
    };
    let bytes = super::read_bounded(tree, path, limits.max_file_bytes, "the input file")
        .map_err(|d| vec![d])?
        .ok_or_else(|| vec![Diagnostic::new(path, "input file vanished while reading the commit")])?;
    let value = parse_json(path, &bytes, "input file").map_err(|d| vec![d])?;
    let Value::Object(mut own) = value else {
        return Err(vec![Diagnostic::new(path, "input file must be a JSON object of template values").at(Some(1), Some(1))]);
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut from_refs = Map::new();
    let mut errors = Vec::new();
    if let Some(reference) = own.remove("ref") {
        match parse_ref(path, &text, &reference) {
            Ok((files, ref_type)) => {
                for file in files {
                    match load_ref_file(tree, path, &file, ref_type, limits.max_ref_file_bytes) {
                        Ok(values) => from_refs.extend(values),
                        Err(d) => errors.push(d),
                    }
                }
            }
            Err(d) => errors.push(d),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut context = from_refs.clone();
    context.extend(own);
    Ok(InputValues { from_refs, context })
}

fn parse_ref(path: &str, text: &str, reference: &Value) -> Result<(Vec<String>, RefType), Diagnostic> {
    let bad = |msg: &str| Diagnostic::new(path, msg.to_string()).at_key(text, "ref");
    let Value::Object(obj) = reference else {
        return Err(bad("'ref' must be an object like {\"file\": [\"infra/out.json\"], \"type\": \"TERRAFORM\"}"));
    };
    let files = match obj.get("file") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut files = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => files.push(s.clone()),
                    _ => return Err(bad("'ref.file' must list paths as strings")),
                }
            }
            files
        }
        Some(_) => return Err(bad("'ref.file' must be a path or a list of paths")),
        None => return Err(bad("'ref' needs 'file': the path(s) of the IaC output file(s), relative to the repository root")),
    };
    let ref_type = match obj.get("type") {
        None | Some(Value::Null) => RefType::Json,
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "TERRAFORM" => RefType::Terraform,
            "CDK" => RefType::Cdk,
            "JSON" => RefType::Json,
            other => {
                return Err(bad(&format!("'ref.type' is '{other}'; use TERRAFORM, CDK or JSON")));
            }
        },
        Some(_) => return Err(bad("'ref.type' must be a string: TERRAFORM, CDK or JSON")),
    };
    Ok((files, ref_type))
}

fn load_ref_file(tree: &dyn FileTree, input_path: &str, file: &str, ref_type: RefType, max: u64) -> Result<Map<String, Value>, Diagnostic> {
    let normalized = file.trim_start_matches("./").trim_start_matches('/');
    let bytes = super::read_bounded(tree, normalized, max, "the referenced output file")?.ok_or_else(|| {
        Diagnostic::new(
            input_path,
            format!("'ref.file' names '{file}', which is not in this commit; commit it or fix the path (paths are relative to the repository root)"),
        )
    })?;
    let value = parse_json(normalized, &bytes, "referenced output file")?;
    let Value::Object(top) = value else {
        let (l, c) = line_col(&String::from_utf8_lossy(&bytes), 0);
        return Err(Diagnostic::new(normalized, "referenced output file must be a JSON object").at(Some(l), Some(c)));
    };
    match ref_type {
        RefType::Json => Ok(top),
        RefType::Terraform => {
            let text = String::from_utf8_lossy(&bytes);
            let mut out = Map::new();
            for (name, entry) in top {
                match entry {
                    Value::Object(mut o) if o.contains_key("value") => {
                        out.insert(name, o.remove("value").unwrap_or(Value::Null));
                    }
                    _ => {
                        return Err(Diagnostic::new(
                            normalized,
                            format!("Terraform output '{name}' has no 'value'; the file must be the output of 'terraform output -json' (or use \"type\": \"JSON\")"),
                        )
                        .at_key(&text, &name))
                    }
                }
            }
            Ok(out)
        }
        RefType::Cdk => {
            let mut out = Map::new();
            for (stack, outputs) in top {
                let decoded = match outputs {
                    Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, decode_cdk_value(v))).collect()),
                    other => other,
                };
                out.insert(stack, decoded);
            }
            Ok(out)
        }
    }
}

/// CDK writes every output as a string; a string holding a JSON array or object is decoded.
fn decode_cdk_value(value: Value) -> Value {
    if let Value::String(s) = &value {
        let trimmed = s.trim_start();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            if let Ok(decoded) = serde_json::from_str::<Value>(s) {
                return decoded;
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tree::MemTree;
    use serde_json::json;

    #[test]
    fn terraform_refs_take_values_and_input_keys_win() {
        let tree = MemTree::new()
            .with("infra/tf.json", r#"{"cluster":{"value":"c1","type":"string"},"subnets":{"value":["s1","s2"]}}"#)
            .with("infra/tf2.json", r#"{"cluster":{"value":"c2"}}"#)
            .with("a/x_input.json", r#"{"ref":{"file":["infra/tf.json","infra/tf2.json"],"type":"TERRAFORM"},"subnets":["mine"]}"#);
        let v = load_input(&tree, Some("a/x_input.json")).unwrap();
        assert_eq!(v.context["cluster"], json!("c2"));
        assert_eq!(v.context["subnets"], json!(["mine"]));
        assert_eq!(v.from_refs["subnets"], json!(["s1", "s2"]));
    }

    #[test]
    fn cdk_refs_decode_json_strings_and_json_is_default() {
        let tree = MemTree::new()
            .with("cdk.json", r#"{"MyStack":{"ClusterName":"c","Subnets":"[\"a\",\"b\"]"}}"#)
            .with("plain.json", r#"{"k":1}"#)
            .with("x_input.json", r#"{"ref":{"file":"cdk.json","type":"CDK"}}"#)
            .with("y_input.json", r#"{"ref":{"file":"plain.json"}}"#);
        let v = load_input(&tree, Some("x_input.json")).unwrap();
        assert_eq!(v.context["MyStack"]["Subnets"], json!(["a", "b"]));
        assert_eq!(v.context["MyStack"]["ClusterName"], json!("c"));
        let y = load_input(&tree, Some("y_input.json")).unwrap();
        assert_eq!(y.context["k"], json!(1));
    }

    #[test]
    fn missing_ref_file_and_bad_json_name_the_file() {
        let tree = MemTree::new()
            .with("x_input.json", r#"{"ref":{"file":"nope.json","type":"TERRAFORM"}}"#)
            .with("y_input.json", "{\n  \"a\": 1,\n  oops\n}");
        let e = load_input(&tree, Some("x_input.json")).unwrap_err();
        assert_eq!(e[0].file, "x_input.json");
        assert!(e[0].message.contains("nope.json"), "{}", e[0].message);
        let e = load_input(&tree, Some("y_input.json")).unwrap_err();
        assert_eq!((e[0].file.as_str(), e[0].line), ("y_input.json", Some(3)));
    }

    #[test]
    fn terraform_file_without_values_is_rejected() {
        let tree = MemTree::new().with("tf.json", "{\"a\": 1}").with("x_input.json", r#"{"ref":{"file":"tf.json","type":"TERRAFORM"}}"#);
        let e = load_input(&tree, Some("x_input.json")).unwrap_err();
        assert_eq!(e[0].file, "tf.json");
        assert!(e[0].message.contains("terraform output -json"));
    }

    #[test]
    fn unknown_ref_type_is_an_error() {
        let tree = MemTree::new().with("tf.json", "{}").with("x_input.json", r#"{"ref":{"file":"tf.json","type":"PULUMI"}}"#);
        let e = load_input(&tree, Some("x_input.json")).unwrap_err();
        assert!(e[0].message.contains("PULUMI"));
        assert_eq!(e[0].line, Some(1));
    }
}
