//! A Lambda app's rendered files and identity (SPEC §4), as far as the repository model needs:
//! rendering, the function name, the region and the required alias.
//!
//! Deploying Lambda apps is not part of this crate version's strategies; the controller reports
//! these apps as not yet deployable instead of touching them.

use super::diag::Diagnostic;
use super::fields::FieldReader;
use super::render::Rendered;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The desired state of one Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaApp {
    pub lambdadef: Value,
    pub event_sources: Option<Value>,
    pub depdef: Value,
    pub function_name: String,
    pub alias: String,
    pub region: String,
    pub account: Option<String>,
}

pub fn build_lambda_app(
    lambdadef: &Rendered,
    event_sources: Option<&Rendered>,
    depdef: Option<&Rendered>,
    default_region: &str,
) -> Result<LambdaApp, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut r = FieldReader::new(&lambdadef.path, &lambdadef.text);
    let function_name = match &lambdadef.json {
        Value::Object(o) => r.string(o.get("FunctionName"), "FunctionName").unwrap_or_default(),
        _ => String::new(),
    };
    if function_name.is_empty() {
        r.errors.push(
            Diagnostic::new(&lambdadef.path, "FunctionName is missing; the lambdadef is the body of a Lambda CreateFunction request")
                .at(Some(1), Some(1)),
        );
    }
    errors.append(&mut r.errors);
    let mut alias = String::new();
    let mut region = None;
    let mut account = None;
    match depdef {
        Some(d) => {
            let mut dr = FieldReader::new(&d.path, &d.text);
            if let Value::Object(o) = &d.json {
                alias = dr.string(o.get("alias"), "alias").unwrap_or_default();
                let env = o.get("environment").or_else(|| o.get("environmentVariables"));
                if let Some(env) = dr.object(env, "environment") {
                    region = dr.string(env.get("region"), "environment.region");
                    account = dr.string(env.get("account"), "environment.account");
                }
            }
            if alias.is_empty() {
                dr.errors.push(
                    Diagnostic::new(&d.path, "alias is required: add \"alias\": \"live\" (gitmoxi shifts traffic through it)")
                        .at(Some(1), Some(1)),
                );
            }
            errors.append(&mut dr.errors);
        }
        None => errors
            .push(Diagnostic::new(&lambdadef.path, "a Lambda app needs a _lambdadepdef.json with \"alias\" beside its _lambdadef.json")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(LambdaApp {
        lambdadef: lambdadef.json.clone(),
        event_sources: event_sources.map(|e| e.json.clone()),
        depdef: depdef.map_or(Value::Null, |d| d.json.clone()),
        function_name,
        alias,
        region: region.unwrap_or_else(|| default_region.to_string()),
        account,
    })
}
