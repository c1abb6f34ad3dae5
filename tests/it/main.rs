//! Integration tests: one binary so the AWS SDK links once.
//!
//! - `sim`: the controller against the fake AWS world on a paused tokio clock.
//! - `moto`: the real SDK adapters against moto (with the project's ECS scheduler extension).
//! - `accounts`: one controller, several AWS accounts (moto AssumeRole).
//! - `cli`: the binary's offline commands on real Git repositories.

#![allow(clippy::unwrap_used)]

mod accounts;
#[path = "../common/binary_harness.rs"]
mod binary_harness;
mod cli;
mod commands;
mod convergence;
mod differential;
mod fault_proxy;
mod floods;
mod forge;
mod gmctl;
mod ha_table;
mod heads;
mod moto;
mod moto_analysis;
mod moto_blue_green;
mod moto_lambda;
mod moto_level;
mod moto_native;
mod moto_release;
mod notify;
mod packaging;
mod repos;
mod router;
mod sim;
mod sim_accounts;
mod sim_blue_green;
mod sim_lambda;
mod sim_level;
mod sim_many;
mod sim_native;
mod sim_release;
mod ssh;
mod support;
mod tenancy;
mod web_browser;
mod web_page;
mod webdriver;
mod webhooks;
