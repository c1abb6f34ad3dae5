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

#[cfg(test)]
mod tests {
    use super::*;

    fn op(service: &str, name: &str) -> Operation {
        Operation { service: service.into(), name: name.into() }
    }

    #[test]
    fn each_protocol_maps_to_its_iam_action() {
        assert_eq!(op("ecs", "UpdateService").iam_action(), "ecs:UpdateService");
        assert_eq!(op("monitoring", "DescribeAlarms").iam_action(), "cloudwatch:DescribeAlarms");
        assert_eq!(op("apigateway", "UpdateRoute").iam_action(), "apigateway:PATCH");
        assert_eq!(op("apigateway", "CreateIntegration").iam_action(), "apigateway:POST");
        assert!(op("elasticloadbalancing", "DescribeTargetHealth").is_read());
        assert!(!op("lambda", "PublishVersion").is_read());
    }
}
