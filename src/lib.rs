//! gitmoxi — a GitOps deployment controller for Amazon ECS and AWS Lambda.
//!
//! # Architecture
//! Three crates: `gitmoxi-deploy` (pure: files → desired state, plans, strategies),
//! `gitmoxi-state` (the sled store) and this one (I/O and wiring).
//!
//! ```text
//!  git source ──head──▶ controller::apply_head ──▶ plan per app ──▶ work queue
//!                                                                      │
//!            store (sled) ◀── persist+flush ◀── executor ◀── strategy::step(desired, applied,
//!                                   │                              record, observed, now)
//!                                   └──▶ AWS (capability traits: SDK adapters or the fake world)
//! ```
//! A reconcile is level-triggered: it never knows why it runs. Every long operation is a phase of
//! a persisted record; the executor writes the record and flushes before each AWS call, and every
//! call is replay-safe, so a crash at any point resumes where it stopped.

pub mod app;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
pub mod credentials;
pub mod diagnose;
pub mod git;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod notify;
pub mod offline;
pub mod repos;
pub mod source;
