//! gitmoxi-deploy — the pure heart of gitmoxi: *what* to do, never *doing* it.
//!
//! Owns: turning the files of one app into typed desired state ([`spec`]), our own view of AWS
//! ([`observed`]), the persisted deployment cursor ([`record`]), plans of absolute, replay-safe
//! actions ([`plan`]) and the strategies that compute them ([`strategy`]).
//!
//! Must never: perform I/O, read the clock, use randomness, or depend on tokio, the AWS SDK, sled,
//! git or HTTP crates (CI checks this with `cargo tree`). Time, ids and tokens arrive as inputs, so
//! every function here is deterministic and testable by table.

#![deny(clippy::wildcard_enum_match_arm)]
#![deny(missing_docs)]

pub mod accounts;
pub mod advice;
pub mod analysis;
pub mod breaker;
pub mod checks;
pub mod commands;
pub mod compare;
pub mod drift;
pub mod explain;
pub mod intent;
pub mod observed;
pub mod plan;
pub mod progress;
pub mod record;
pub mod release;
pub mod risk;
pub mod schedule;
pub mod scope;
pub mod shards;
pub mod spec;
pub mod status;
pub mod strategy;
pub mod token;
pub mod webhook;

pub use spec::{AppKind, FileKind};
