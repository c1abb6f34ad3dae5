//! gitmoxi-testing — the test doubles, kept out of the shipped binary.
//!
//! - [`fake`] (with [`fake_elb`], [`fake_lambda`]): the stateful in-memory AWS world of the
//!   simulation tests, with time, task lifecycles, Lambda states, alarms and fault knobs. It
//!   models AWS as AWS documents it, never as gitmoxi's code assumes.
//! - [`fault_proxy`]: a loopback HTTP proxy between gitmoxi and moto that counts every operation
//!   and answers a seeded share with throttling or 500/503 (some after the call took effect).
//!
//! Only tests and benchmarks depend on this crate (`gitmoxi`'s dev-dependencies); CI checks with
//! `cargo tree` that the shipped `gitmoxi` does not.

pub mod fake;
pub mod fake_elb;
pub mod fake_lambda;
pub mod fault_proxy;
