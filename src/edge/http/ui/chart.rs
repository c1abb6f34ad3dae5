//! The metric analysis chart of a deployment (issue 25): per check, green against blue at each
//! run (its step), drawn as an SVG the template renders from the geometry computed here — no
//! script, no image request, readable with the page's styles off (each point has a title).
//!
//! Invariants: only numbers and the record's own words reach the template, which escapes them;
//! a check without a finite value at any run draws no line but still lists its runs.

use gitmoxi_deploy::analysis::verdict::{show, CheckResult};
use gitmoxi_deploy::record::{AnalysisState, DeploymentRecord};
use serde_json::{json, Value};

const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 120.0;
const PAD_X: f64 = 64.0;
const PAD_Y: f64 = 14.0;

/// The value a run's check shows for a side: its median (a comparison), else its mean.
fn shown(side: Option<&gitmoxi_deploy::analysis::verdict::SideValues>) -> Option<f64> {
    side.and_then(|s| s.median.or(s.mean)).filter(|v| v.is_finite())
}

fn with_unit(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if unit.is_empty() => show(v),
        Some(v) => format!("{} {unit}", show(v)),
        None => "no data".to_string(),
    }
}

/// The unit the depdef gives check `name` ("" when none).
fn unit_of(record: &DeploymentRecord, name: &str) -> String {
    let spec = record
        .desired
        .as_ref()
        .and_then(|d| d.depdef.analysis.as_ref())
        .or_else(|| record.desired_lambda.as_ref().and_then(|l| l.depdef.analysis.as_ref()));
    spec.and_then(|s| s.checks.iter().find(|c| c.name == name)).and_then(|c| c.unit.clone()).unwrap_or_default()
}

/// The charts of `record`'s analysis, one per check (empty without analysis).
pub fn charts(record: &DeploymentRecord) -> Vec<Value> {
    match &record.analysis {
        Some(analysis) => charts_of(analysis, &|name| unit_of(record, name)),
        None => Vec::new(),
    }
}

/// The charts of `analysis`, one per check; `unit` gives each check's unit.
fn charts_of(analysis: &AnalysisState, unit: &dyn Fn(&str) -> String) -> Vec<Value> {
    let mut names: Vec<String> = Vec::new();
    for run in &analysis.runs {
        for c in &run.checks {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    names
        .iter()
        .map(|name| {
            let unit = unit(name);
            let runs: Vec<(&str, &str, &CheckResult)> = analysis
                .runs
                .iter()
                .filter_map(|r| r.checks.iter().find(|c| &c.name == name).map(|c| (r.step.as_str(), r.decision_word(), c)))
                .collect();
            let values: Vec<f64> = runs.iter().flat_map(|(_, _, c)| [shown(Some(&c.green)), shown(c.blue.as_ref())]).flatten().collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if values.is_empty() { (0.0, 1.0) } else if hi - lo < 1e-9 { (lo - 1.0, hi + 1.0) } else { (lo, hi) };
            let n = runs.len().max(1) as f64;
            let x = |i: usize| if n <= 1.0 { WIDTH / 2.0 } else { PAD_X + (WIDTH - 2.0 * PAD_X) * i as f64 / (n - 1.0) };
            let y = |v: f64| HEIGHT - PAD_Y - (HEIGHT - 2.0 * PAD_Y) * (v - lo) / (hi - lo);
            let line = |pick: &dyn Fn(&CheckResult) -> Option<f64>| -> String {
                runs.iter()
                    .enumerate()
                    .filter_map(|(i, (_, _, c))| pick(c).map(|v| format!("{:.1},{:.1}", x(i), y(v))))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let points: Vec<Value> = runs
                .iter()
                .enumerate()
                .map(|(i, (step, decision, c))| {
                    let (g, b) = (shown(Some(&c.green)), shown(c.blue.as_ref()));
                    json!({
                        "x": format!("{:.1}", x(i)),
                        "yg": g.map(|v| format!("{:.1}", y(v))),
                        "yb": b.map(|v| format!("{:.1}", y(v))),
                        "step": step,
                        "verdict": c.verdict.to_string(),
                        "title": format!("{step}: green {}, blue {} — {} ({decision}): {}", with_unit(g, &unit), with_unit(b, &unit), c.verdict, c.message),
                    })
                })
                .collect();
            json!({
                "name": name,
                "width": WIDTH,
                "height": HEIGHT,
                "green": line(&|c| shown(Some(&c.green))),
                "blue": line(&|c| shown(c.blue.as_ref())),
                "points": points,
                "top": with_unit(Some(hi), &unit),
                "bottom": with_unit(Some(lo), &unit),
                "last": runs.last().map(|(_, _, c)| c.message.clone()),
            })
        })
        .collect()
}

trait DecisionWord {
    fn decision_word(&self) -> &'static str;
}

impl DecisionWord for gitmoxi_deploy::analysis::verdict::AnalysisRun {
    fn decision_word(&self) -> &'static str {
        use gitmoxi_deploy::analysis::verdict::Decision;
        match self.decision {
            Decision::Proceed => "went on",
            Decision::Retry => "ran again",
            Decision::Hold => "held for a person",
            Decision::Rollback => "rolled back",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitmoxi_deploy::analysis::verdict::{AnalysisRun, Decision, SideValues, Verdict};

    fn run(step: &str, green: f64, blue: f64, verdict: Verdict, message: &str) -> AnalysisRun {
        let side = |v: f64| SideValues { samples: 24, mean: Some(v), median: Some(v), values: vec![v; 3] };
        AnalysisRun {
            at_ms: 1,
            step: step.into(),
            window_ms: (0, 1),
            verdict,
            decision: if verdict == Verdict::Pass { Decision::Proceed } else { Decision::Rollback },
            checks: vec![CheckResult {
                name: "p99 <latency>".into(),
                verdict,
                green: side(green),
                blue: Some(side(blue)),
                p_value: Some(0.001),
                change_pct: Some(0.0),
                rule: String::new(),
                message: message.into(),
            }],
        }
    }

    #[test]
    fn the_chart_draws_green_and_blue_per_step_marks_the_failure_and_escapes_every_word() {
        let analysis = AnalysisState {
            sides: None,
            pending: None,
            runs: vec![
                run("20 %", 181.0, 180.0, Verdict::Pass, "fine"),
                run("50 %", 414.0, 182.0, Verdict::Fail, "p99 green 414 ms vs blue 182 ms <script>"),
            ],
        };
        let charts = charts_of(&analysis, &|_| "ms".to_string());
        assert_eq!(charts.len(), 1);
        let c = &charts[0];
        assert_eq!(c["top"], "414 ms");
        assert_eq!(c["bottom"], "180 ms");
        assert_eq!(c["green"], "64.0,105.6 296.0,14.0", "green climbs from near the bottom to the top");
        assert_eq!(c["points"][1]["verdict"], "fail");
        let ui = crate::edge::http::ui::Ui::new();
        let html = ui.templates.get_template("analysis.html").and_then(|t| t.render(json!({"d": {"charts": charts}}))).expect("renders");
        assert!(html.contains(r#"<polyline class="green" points="64.0,105.6 296.0,14.0"/>"#), "{html}");
        assert!(html.contains(r#"<circle class="green fail""#), "{html}");
        assert!(html.contains("50 %: green 414 ms, blue 182 ms — fail (rolled back)"), "{html}");
        assert!(!html.contains("<script>") && !html.contains("<latency>"), "{html}");
    }

    /// The README's screenshot: with `GITMOXI_CHART_PAGE=path`, the chart of a canary whose p99
    /// latency got worse at 25 % is written as a page (the web page's own CSS and template), for
    /// `chromium --headless --screenshot`.
    #[test]
    fn the_chart_of_a_canary_that_went_bad_renders_as_a_page() {
        let mut runs =
            vec![run("5 %", 181.0, 180.0, Verdict::Pass, "p99 latency green 181 ms vs blue 180 ms (+0.6 %, tolerance 25 %, p = 0.41)")];
        runs.push(run("25 %", 414.0, 182.0, Verdict::Fail, "p99 latency green 414 ms vs blue 182 ms (+127 %, tolerance 25 %, p < 0.001)"));
        for r in &mut runs {
            r.checks[0].name = "p99 latency".into();
        }
        let mut rate = runs.clone();
        for (r, (g, verdict)) in rate.iter_mut().zip([(0.2, Verdict::Pass), (0.4, Verdict::Pass)]) {
            r.checks[0] = CheckResult {
                name: "5xx rate".into(),
                verdict,
                green: SideValues { samples: 10, mean: Some(g), median: None, values: vec![] },
                blue: None,
                p_value: None,
                change_pct: None,
                rule: "max 1 %".into(),
                message: format!("5xx rate green {g} % within max 1 %"),
            };
        }
        for (r, extra) in runs.iter_mut().zip(rate) {
            r.checks.extend(extra.checks);
        }
        let analysis = AnalysisState { sides: None, runs, pending: None };
        let charts = charts_of(&analysis, &|name| if name == "5xx rate" { "%".into() } else { "ms".into() });
        assert_eq!(charts.len(), 2);
        let ui = crate::edge::http::ui::Ui::new();
        let html = ui.templates.get_template("analysis.html").and_then(|t| t.render(json!({"d": {"charts": charts}}))).expect("renders");
        assert!(html.contains("<svg"));
        if let Ok(path) = std::env::var("GITMOXI_CHART_PAGE") {
            let css = include_str!("static/app.css");
            let page = format!("<!doctype html><html><head><meta charset=utf-8><style>{css}</style></head><body><main style=\"padding:12px\">{html}</main></body></html>");
            std::fs::write(path, page).expect("write the page");
        }
    }
}
