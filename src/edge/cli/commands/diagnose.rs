//! `gitmoxi diagnose`: why a deployment failed, from its record and AWS.

use super::super::args::Command;
use super::super::client::urlencode;
use super::super::client::ApiClient;

/// Runs `diagnose` (the dispatcher in [`super::run`] hands over only this command).
pub(super) async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Diagnose { deployment, remote } => {
            let d = ApiClient::new(&remote).get(&format!("/api/v2/deployments/{}/diagnosis", urlencode(&deployment))).await?;
            if remote.json {
                outln!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(0);
            }
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            outln!("{}", s("summary"));
            if let Some(evidence) = d["evidence"].as_array().filter(|e| !e.is_empty()) {
                outln!("\nEvidence:");
                for e in evidence {
                    outln!("  - {}", e.as_str().unwrap_or(""));
                }
            }
            match d["diff"].as_array() {
                Some(lines) if !lines.is_empty() => {
                    let from = d["last_good_commit"].as_str().map_or("nothing".to_string(), |c| c.chars().take(10).collect());
                    outln!("\nWhat changed in the app since {from}:");
                    for l in lines {
                        outln!("  {}", l.as_str().unwrap_or(""));
                    }
                }
                Some(_) => outln!("\nThe app's files did not change (a ref value or a forced redeploy)."),
                None => outln!("\nNo diff: {}", s("diff_error")),
            }
            outln!("\nNext step: {}", s("next_step"));
            if let Some(summary) = d["ai_summary"].as_str() {
                outln!("\nSummary (model-written): {summary}");
            }
            if let Some(e) = d["ai_summary_error"].as_str() {
                eprintln!("note: no model summary: {e}");
            }
            Ok(0)
        }
        other => anyhow::bail!("gitmoxi diagnose was handed another command: {other:?}"),
    }
}
