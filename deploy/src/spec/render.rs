//! Rendering of deployment files as Jinja2 templates (minijinja, strict undefined), then JSON.
//!
//! Invariants: undefined variables are errors that name the variable; no auto-escaping (the
//! output is JSON written by the user, values are inserted verbatim, `tojson` quotes); every error
//! names the file, line and column.

use super::diag::{line_col, Diagnostic};
use super::input::parse_json;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A rendered file: the text and its parsed JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The file's path.
    pub path: String,
    /// The rendered text.
    pub text: String,
    /// The rendered text parsed as JSON.
    pub json: Value,
    /// Variables the template reads (dotted paths for attribute access), for fingerprints.
    pub variables: BTreeSet<String>,
}

/// Template steps one file may take: a thousand times what a large real file needs, so a loop
/// over a huge range stops with an error instead of holding the controller.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env
}

/// Renders `source` (the bytes of `path`) with `context`, then parses the result as JSON.
pub fn render_file(path: &str, source: &[u8], context: &Map<String, Value>) -> Result<Rendered, Diagnostic> {
    render_file_limited(path, source, context, super::Limits::default().max_rendered_bytes)
}

/// Collects rendered text, refusing to grow past a bound (rendering stops there).
struct BoundedText {
    text: Vec<u8>,
    max: u64,
    over: bool,
}

impl std::io::Write for BoundedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() as u64 + buf.len() as u64 > self.max {
            self.over = true;
            return Err(std::io::Error::other("the rendered text is over its bound"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`render_file`] whose output may not exceed `max_rendered` bytes.
pub fn render_file_limited(path: &str, source: &[u8], context: &Map<String, Value>, max_rendered: u64) -> Result<Rendered, Diagnostic> {
    let text = std::str::from_utf8(source).map_err(|e| Diagnostic::new(path, format!("file is not UTF-8 text ({e}); save it as UTF-8")))?;
    // a depdef's analysis names each side with {{ green }}, {{ blue }}…: kept verbatim for the
    // analysis to fill (an input variable of the same name wins)
    let with_placeholders;
    let context = if path.ends_with("depdef.json") && crate::analysis::queries::PLACEHOLDERS.iter().any(|p| !context.contains_key(*p)) {
        let mut c = context.clone();
        for name in crate::analysis::queries::PLACEHOLDERS {
            c.entry(name.to_string()).or_insert_with(|| Value::String(format!("{{{{ {name} }}}}")));
        }
        with_placeholders = c;
        &with_placeholders
    } else {
        context
    };
    let env = environment();
    let template = env.template_from_named_str(path, text).map_err(|e| template_error(path, text, &e, &[]))?;
    let variables: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
    let missing: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !context.contains_key(name))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ctx = minijinja::Value::from_serialize(context);
    let mut out = BoundedText { text: Vec::new(), max: max_rendered, over: false };
    let result = template.render_captured_to(ctx, &mut out);
    if out.over {
        return Err(Diagnostic::new(
            path,
            format!("the template renders to more than {max_rendered} bytes; a deployment file is far smaller: look for a string repeated or joined in a loop"),
        ));
    }
    result.map_err(|e| template_error(path, text, &e, &missing))?;
    let rendered = String::from_utf8(out.text).map_err(|e| Diagnostic::new(path, format!("the rendered text is not UTF-8 ({e})")))?;
    let json = parse_json(path, rendered.as_bytes(), "file (after template rendering)").map_err(|mut d| {
        if rendered != text {
            d.message.push_str(" — line and column refer to the rendered text, here:\n");
            d.message.push_str(&excerpt(&rendered, d.line, d.column));
        }
        d
    })?;
    Ok(Rendered { path: path.to_string(), text: rendered, json, variables })
}

/// The lines of `text` up to `line` (1-based; the two before it too), numbered, with a caret
/// under `column`: what an operator needs to see a JSON error in text a template produced.
/// Lines are cut at 160 characters, so a one-line document cannot flood a message.
pub fn excerpt(text: &str, line: Option<u32>, column: Option<u32>) -> String {
    const WIDTH: usize = 160;
    let Some(line) = line.map(|l| l.max(1) as usize) else { return String::new() };
    let first = line.saturating_sub(2).max(1);
    let mut out = String::new();
    for (n, l) in text.lines().enumerate().map(|(i, l)| (i + 1, l)).skip(first - 1).take(line + 1 - first) {
        let start = column.map_or(0, |c| (c as usize).saturating_sub(WIDTH / 2)).min(l.chars().count());
        let shown: String = l.chars().skip(if n == line { start } else { 0 }).take(WIDTH).collect();
        let cut = if n == line && start > 0 { "…" } else { "" };
        out.push_str(&format!("{n:>5} | {cut}{shown}\n"));
        if n == line {
            if let Some(c) = column {
                let pad = (c as usize).saturating_sub(1).saturating_sub(start) + cut.chars().count();
                out.push_str(&format!("      | {}^\n", " ".repeat(pad.min(WIDTH + 1))));
            }
        }
    }
    out
}

fn template_error(path: &str, source: &str, err: &minijinja::Error, missing: &[String]) -> Diagnostic {
    let (line, column) = match (err.range(), err.line()) {
        (Some(range), _) => {
            let (l, c) = line_col(source, range.start);
            (Some(l), Some(c))
        }
        (None, Some(l)) => (Some(l as u32), None),
        (None, None) => (None, None),
    };
    let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
    // minijinja's ErrorKind is non-exhaustive: its other kinds are named by its own Display
    #[allow(clippy::wildcard_enum_match_arm, reason = "minijinja::ErrorKind is #[non_exhaustive]")]
    let message = match err.kind() {
        ErrorKind::UndefinedError if !missing.is_empty() => format!(
            "template uses undefined variable(s) {}; define them in the app's _input.json or in a file it references",
            missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")
        ),
        ErrorKind::UndefinedError => {
            format!("template reads an undefined value{detail}; check the key or attribute name against the input values")
        }
        ErrorKind::SyntaxError => format!("template syntax error{detail}"),
        ErrorKind::OutOfFuel => {
            format!("the template ran too long (over {TEMPLATE_FUEL} steps): look for a loop over a large range or a deep recursion")
        }
        kind => format!("template error ({kind}){detail}"),
    };
    Diagnostic::new(path, message).at(line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { unreachable!("test contexts are objects") };
        m
    }

    #[test]
    fn json_broken_by_a_template_shows_the_rendered_lines_with_a_caret() {
        // the source is fine JSON-wise; the value the template puts in is not
        let source = b"{\n  \"family\": \"web\",\n  \"cpu\": {{ cpu }}\n}\n";
        let err = render_file("apps/web/web_taskdef.json", source, &ctx(json!({"cpu": "256 512"}))).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("line and column refer to the rendered text, here:"), "{}", err.message);
        assert!(err.message.contains("    3 |   \"cpu\": 256 512\n"), "the rendered line, numbered: {}", err.message);
        assert!(err.message.contains("    2 |   \"family\": \"web\","), "{}", err.message);
        let caret = err.message.lines().last().expect("a caret line");
        assert_eq!(caret.find('^'), Some(8 + err.column.expect("a column") as usize - 1), "{}", err.message);
    }

    #[test]
    fn an_excerpt_of_a_huge_line_stays_short() {
        let text = format!("{{\"a\": \"{}\" x}}", "y".repeat(100_000));
        let out = excerpt(&text, Some(1), Some(100_005));
        assert!(out.len() < 500, "{}", out.len());
        assert!(out.contains("…") && out.contains("x}"), "{out}");
        assert!(out.lines().nth(1).is_some_and(|l| l.trim_end().ends_with('^')), "{out}");
    }

    #[test]
    fn a_runaway_loop_stops_with_an_error_naming_the_file() {
        let source = b"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let err = render_file("apps/web/web_taskdef.json", source, &Map::new()).unwrap_err();
        assert_eq!(err.file, "apps/web/web_taskdef.json");
        assert!(err.message.contains("the template ran too long"), "{err:?}");
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn renders_every_idiom_of_the_spec() {
        let context = ctx(json!({
            "image": "public.ecr.aws/nginx/nginx:1.27",
            "container_port": 80,
            "private_subnets": ["s-1", "s-2"],
            "target_group_arns": {"blue-tg": "arn:tg/blue"},
            "MyStack": {"ClusterName": "prod"},
            "envs": [{"k": "A", "v": "1"}, {"k": "B", "v": "2"}]
        }));
        let src = r#"{
  "image": "{{ image }}",
  "port": {{ container_port }},
  "subnets": {{ private_subnets | tojson }},
  "tg": "{{ target_group_arns['blue-tg'] }}",
  "cluster": "{{ MyStack.ClusterName }}",
  "environment": [{% for e in envs %}{"name": "{{ e.k }}", "value": "{{ e.v }}"}{% if not loop.last %},{% endif %}{% endfor %}]
}"#;
        let r = render_file("x_taskdef.json", src.as_bytes(), &context).unwrap();
        assert_eq!(
            r.json,
            json!({
                "image": "public.ecr.aws/nginx/nginx:1.27",
                "port": 80,
                "subnets": ["s-1", "s-2"],
                "tg": "arn:tg/blue",
                "cluster": "prod",
                "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
            })
        );
        assert!(r.variables.contains("MyStack.ClusterName"));
        assert!(r.variables.contains("image"));
        assert!(!r.variables.iter().any(|v| v.starts_with("e.")), "loop variables are not inputs");
    }

    #[test]
    fn undefined_variables_are_errors_that_name_them() {
        let src = "{\n  \"a\": \"{{ imagee }}\"\n}";
        let e = render_file("x_taskdef.json", src.as_bytes(), &Map::new()).unwrap_err();
        assert_eq!(e.file, "x_taskdef.json");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("'imagee'"), "{}", e.message);
    }

    #[test]
    fn missing_map_key_is_an_error() {
        let context = ctx(json!({"m": {"a": 1}}));
        let e = render_file("x.json", b"{\"v\": {{ m['b'] }}}", &context).unwrap_err();
        assert!(e.message.contains("undefined"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let src = "{\n  \"a\": \"{{ image | }}\"\n}";
        let e = render_file("x_svcdef.json", src.as_bytes(), &ctx(json!({"image": "i"}))).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.column.is_some());
        assert!(e.message.contains("syntax"), "{}", e.message);
    }

    #[test]
    fn invalid_json_after_rendering_is_located() {
        let e = render_file("x_svcdef.json", b"{\n \"a\": {{ v }}\n}", &ctx(json!({"v": "unquoted"}))).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("rendered"), "{}", e.message);
    }

    #[test]
    fn no_html_or_json_escaping_of_values() {
        let r = render_file("x_svcdef.json", b"{\"a\": \"{{ v }}\"}", &ctx(json!({"v": "a&b<c>"}))).unwrap();
        assert_eq!(r.json, json!({"a": "a&b<c>"}));
    }
}
