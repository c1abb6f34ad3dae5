//! Floor 1, io: talking to the outside (AWS, git, DynamoDB for high availability, secrets, outbound webhooks, render workers) and the metrics of those calls; nothing here knows the controller.
//!
//! Imports go down only: a file here uses its own floor and those below it
//! (`scripts/check_floors.py`, in `make test`).

pub mod aws;
pub mod credentials;
pub mod git;
pub mod ha;
pub mod metrics;
pub mod offline;
pub mod outbound;
pub mod render_worker;
pub mod renders;
pub mod repo_policy;
