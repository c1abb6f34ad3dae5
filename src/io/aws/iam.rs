//! IAM: the action that allows each AWS operation gitmoxi calls. The packaging test checks the
//! shipped policy (`packaging/iam-policy.json`) against the operations the adapters call and
//! the ones the test suite sent, both ways, through this one mapping.

/// An AWS operation: the request signer's service name and the API operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    /// The SigV4 signing name (`ecs`, `elasticloadbalancing`, `monitoring`, `lambda`, …).
    pub service: String,
    /// The API operation (`UpdateService`), or `METHOD /path` for a REST route it does not know.
    pub name: String,
}

impl Operation {
    /// Whether the operation only reads (`Describe*`, `List*`, `Get*`).
    pub fn is_read(&self) -> bool {
        ["Describe", "List", "Get"].iter().any(|read| self.name.starts_with(read))
    }

    /// The IAM action that allows this operation (`cloudwatch:DescribeAlarms`, `apigateway:PATCH`).
    pub fn iam_action(&self) -> String {
        match self.service.as_str() {
            "monitoring" => format!("cloudwatch:{}", self.name),
            // the one operation whose IAM action has another name
            "lambda" if self.name == "Invoke" => "lambda:InvokeFunction".to_string(),
            "apigateway" => {
                let verb = ["Get", "Create", "Update", "Delete"]
                    .iter()
                    .zip(["GET", "POST", "PATCH", "DELETE"])
                    .find(|(prefix, _)| self.name.starts_with(*prefix))
                    .map_or("GET", |(_, verb)| verb);
                format!("apigateway:{verb}")
            }
            other => format!("{other}:{}", self.name),
        }
    }
}

/// The value of `key` in a form-encoded body or query string (the query protocols' `Action=`).
pub fn form_value(form: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(form).ok()?;
    text.split('&').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')).map(str::to_string))
}

/// The credential scope of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/ecs/aws4_request, …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key: String,
    pub region: String,
    /// The signing name (`ecs`, `elasticloadbalancing`, `monitoring`, `lambda`, …).
    pub service: String,
}

/// The credential scope of an `Authorization` header, when it is a SigV4 one.
pub fn credential_scope(authorization: &str) -> Option<CredentialScope> {
    let credential = authorization.split("Credential=").nth(1)?.split(',').next()?;
    match credential.split('/').collect::<Vec<_>>().as_slice() {
        [access_key, _date, region, service, ..] => {
            Some(CredentialScope { access_key: access_key.to_string(), region: region.to_string(), service: service.to_string() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sigv4_header_names_its_key_region_and_service() {
        let scope =
            credential_scope("AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/ecs/aws4_request, SignedHeaders=host, Signature=x");
        assert_eq!(scope, Some(CredentialScope { access_key: "AKID".into(), region: "eu-west-1".into(), service: "ecs".into() }));
        assert_eq!(credential_scope("Bearer x"), None);
    }

    fn op(service: &str, name: &str) -> Operation {
        Operation { service: service.into(), name: name.into() }
    }

    #[test]
    fn each_protocol_maps_to_its_iam_action() {
        assert_eq!(op("ecs", "UpdateService").iam_action(), "ecs:UpdateService");
        assert_eq!(op("monitoring", "DescribeAlarms").iam_action(), "cloudwatch:DescribeAlarms");
        assert_eq!(op("lambda", "Invoke").iam_action(), "lambda:InvokeFunction");
        assert_eq!(op("apigateway", "UpdateRoute").iam_action(), "apigateway:PATCH");
        assert_eq!(op("apigateway", "CreateIntegration").iam_action(), "apigateway:POST");
        assert!(op("elasticloadbalancing", "DescribeTargetHealth").is_read());
        assert!(!op("lambda", "PublishVersion").is_read());
    }
}
