//! gitmoxi — a GitOps deployment controller for Amazon ECS and AWS Lambda.
//!
//! # Architecture
//! Three crates: `gitmoxi-deploy` (pure: files → desired state, plans, strategies),
//! `gitmoxi-state` (the sled store) and this one (I/O and wiring).
//!
//! ```text
//!  git source ──load_head──▶ heads owner ◀──replan── HTTP handlers (after writing a command)
//!                               │ (one task: controller/heads.rs, applies messages in order)
//!                               └──apply_head──▶ plan per app ──▶ work queue
//!                                                                      │
//!   one reconcile pass (controller/reconcile.rs), under one span (app, commit, phase):
//!     load (head intent, applied, record, commands, drift clock)
//!       → strategy::look  ── Skip(plan) ───────────────────────────┐
//!       → observe AWS (what look asked for)                        │
//!       → strategy::step (observed, or AWS's refusal as a fact)    │
//!       → execute: persist records, history, consumed commands, ◀──┘
//!         notes → flush → act (a permanent refusal → step again)
//!                                   │
//!                                   └──▶ AWS (capability traits: SDK adapters or the fake world)
//! ```
//! A reconcile is level-triggered: it never knows why it runs. Every decision about deployments
//! (operator commands, drift cadence, refusals included) is in `gitmoxi-deploy`; the executor
//! observes, persists and acts. Every long operation is a phase of a persisted record; the
//! executor writes the record and flushes before each AWS call, and every call is replay-safe,
//! so a crash at any point resumes where it stopped (the executor refuses to act for an app
//! whose writes are not durable yet).
//!
//! With `[ha]`, `ha` shares the apps among replicas by shard leases in DynamoDB: the flush also
//! copies what changed to the table in transactions fenced by the shard's lease token, a replica
//! acts only for the shards it holds, and one that takes a shard reads its state first.
//!
//! At the edges: `http/` serves the API through its own loop (header timeout, connection cap,
//! Host and Origin checks, bearer token); `repo_policy` decides where repository credentials may
//! go; `state_dir` keeps the state directory private and single-owner; rendering is bounded in
//! size (`gitmoxi_deploy::spec::Limits`).

pub mod base;
pub mod edge;
pub mod integrations;
pub mod io;
pub mod runtime;

// The modules by their old paths, for the tests, benchmarks and binaries outside the floors
// (code inside the crate names the floor: `scripts/check_floors.py` refuses these paths there).
pub use base::{clock, memory, state_dir, sync};
pub use edge::{app, cli, http};
pub use integrations::{forge, llm, notify, slack};
pub use io::{aws, credentials, git, ha, metrics, offline, outbound, render_worker, renders, repo_policy};
pub use runtime::{config, controller, diagnose, pipelines, preview, repos, source};
